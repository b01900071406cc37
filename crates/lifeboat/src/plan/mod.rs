//! Backup plans: what to back up, when, where to copy it, how long to keep it.
//!
//! Pure: no AWS type, no I/O, no clock. [`check_plans`] reads a plan file's
//! text (TOML, format in README.md, "Backup plans"; a documented sample is
//! `examples/plans.toml`) and returns every plan it could validate plus
//! **every** problem it found, each naming the plan, the field and what to do.
//! [`parse_plans`] is the same for callers that need all plans or nothing.
//!
//! Submodules: `schedule` (EventBridge cron/rate, next runs, DST), `parse`
//! (TOML to plans, every problem), `checks` (the SQL checks model of a
//! restore test or a checks file), and, with the `aws` feature, `load` (the
//! plan file read from a path, S3 or a setting).

use std::collections::BTreeMap;
use std::fmt;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};
use serde::Serialize;

use crate::db::url::{is_database_url, is_secret_arn, redact};
use crate::retention::RetentionPolicy;

pub mod checks;
#[cfg(feature = "aws")]
pub mod load;
mod parse;
pub mod schedule;

pub use checks::{Check, Checks};
pub use schedule::{Cron, Rate, Schedule, ScheduleError};

// ---------------------------------------------------------------------------
// Problems
// ---------------------------------------------------------------------------

/// One thing wrong with a plan file: which plan (by name, or `#N` when it has
/// none), which field, and what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanProblem {
    /// The plan's name, `#N` (1-based) when it has none, or `None` for the file as a whole.
    pub plan: Option<String>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for PlanProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.plan {
            Some(plan) => write!(f, "plan {plan}, field {}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

/// Every problem of a plan file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PlanErrors(pub Vec<PlanProblem>);

impl fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the plan file has {} problem(s):", self.0.len())?;
        for problem in &self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Plans
// ---------------------------------------------------------------------------

/// How much a plan matters (as in the EventChain plan).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Critical,
    Important,
    Standard,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Critical => "critical",
            Tier::Important => "important",
            Tier::Standard => "standard",
        }
    }
}

/// A resource named explicitly: an RDS DB instance or Aurora cluster ARN, or an identifier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Resource {
    DbInstance { arn: String, region: String, id: String },
    Cluster { arn: String, region: String, id: String },
    Identifier { id: String },
}

impl Resource {
    fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("arn:") {
            let parts: Vec<&str> = text.splitn(7, ':').collect();
            let ok = parts.len() == 7 && parts[2] == "rds" && !parts[3].is_empty() && !parts[6].is_empty();
            return match (ok, parts.get(5)) {
                (true, Some(&"db")) => Ok(Resource::DbInstance {
                    arn: text.to_owned(),
                    region: parts[3].to_owned(),
                    id: parts[6].to_owned(),
                }),
                (true, Some(&"cluster")) => Ok(Resource::Cluster {
                    arn: text.to_owned(),
                    region: parts[3].to_owned(),
                    id: parts[6].to_owned(),
                }),
                _ => Err(format!(
                    "{text:?} is not an RDS DB instance or Aurora cluster ARN: write arn:aws:rds:REGION:ACCOUNT:db:NAME or arn:aws:rds:REGION:ACCOUNT:cluster:NAME"
                )),
            };
        }
        let valid = text.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && text.len() <= 63
            && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if valid {
            Ok(Resource::Identifier { id: text.to_owned() })
        } else {
            Err(format!(
                "{text:?} is neither an ARN nor a DB identifier (a letter, then letters, digits and hyphens, at most 63)"
            ))
        }
    }

    pub fn describe(&self) -> &str {
        match self {
            Resource::DbInstance { arn, .. } | Resource::Cluster { arn, .. } => arn,
            Resource::Identifier { id } => id,
        }
    }
}

/// A region the plan copies its snapshots to, and the KMS key to re-encrypt them with there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyRegion {
    pub region: String,
    pub kms_key: String,
}

/// A validated plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub name: String,
    pub description: Option<String>,
    pub schedule: Schedule,
    /// The schedule as written, e.g. `cron(0 2 * * ? *)`.
    pub schedule_text: String,
    pub timezone: String,
    pub zone: TimeZone,
    pub tags: BTreeMap<String, String>,
    pub resources: Vec<Resource>,
    pub sources: Vec<String>,
    pub copy_regions: Vec<CopyRegion>,
    pub retention: RetentionPolicy,
    pub rpo: SignedDuration,
    pub tier: Tier,
    /// `[plan.restore_test]`: restore the newest snapshot of each resource
    /// this often and run SQL checks against it (`crate::snapshot::restore_tests`).
    pub restore_test: Option<RestoreTestPlan>,
}

/// A plan's scheduled restore tests: how often, on what instance, and the
/// SQL assertions (a checks file's `url` and `[[check]]` tables, inline;
/// `crate::validate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreTestPlan {
    pub checks: Checks,
    /// A resource's restore test starts when its last one finished longer ago than this.
    pub every: SignedDuration,
    /// The temporary instance's class.
    pub instance_class: String,
    /// The DB subnet group to restore into (default: the account's default VPC).
    pub subnet_group: Option<String>,
    /// VPC security groups for the temporary instance, so the checks can reach it.
    pub security_groups: Vec<String>,
    /// How long the instance may take to become available before the test fails.
    pub timeout: SignedDuration,
}

/// A restore test's default interval: weekly.
pub const RESTORE_TEST_EVERY: SignedDuration = SignedDuration::from_hours(7 * 24);
/// A restore test's default time limit for the restore.
pub const RESTORE_TEST_TIMEOUT: SignedDuration = SignedDuration::from_hours(2);
/// A restore test's default instance class.
pub const RESTORE_TEST_CLASS: &str = "db.t3.micro";

impl Plan {
    /// The sources that are databases to dump, by URL or by the ARN of the
    /// secret holding their connection (the rest are S3 locations).
    pub fn database_sources(&self) -> Vec<&str> {
        self.sources
            .iter()
            .map(String::as_str)
            .filter(|s| is_database_url(s) || is_secret_arn(s))
            .collect()
    }

    /// The next `n` runs after `after`, in the plan's time zone.
    pub fn next_runs(&self, after: Timestamp, n: usize) -> Result<Vec<Zoned>, ScheduleError> {
        self.schedule.next_runs(after, &self.zone, n)
    }

    /// What `lifeboat plan check` shows.
    pub fn summary(&self, now: Timestamp) -> PlanSummary {
        let (next_runs, next_runs_note) = match self.next_runs(now, 3) {
            Ok(runs) if runs.is_empty() => (Vec::new(), Some("no run after now".to_owned())),
            Ok(runs) => (runs.iter().map(|z| z.to_string()).collect(), None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        PlanSummary {
            name: self.name.clone(),
            description: self.description.clone(),
            schedule: self.schedule_text.clone(),
            schedule_words: self.schedule.describe(),
            timezone: self.timezone.clone(),
            next_runs,
            next_runs_note,
            tags: self.tags.clone(),
            resources: self.resources.clone(),
            sources: self.sources.iter().map(|s| redact(s)).collect(),
            copy_regions: self.copy_regions.clone(),
            retention: self.retention.clone(),
            rpo: duration_words(self.rpo),
            rpo_seconds: self.rpo.as_secs(),
            tier: self.tier,
            restore_test: self.restore_test.as_ref().map(|t| RestoreTestSummary {
                every: duration_words(t.every),
                checks: t.checks.checks.iter().map(|c| c.name.clone()).collect(),
                instance_class: t.instance_class.clone(),
                timeout: duration_words(t.timeout),
            }),
        }
    }
}

/// One plan as `lifeboat plan check` shows it (the CLI's JSON output).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanSummary {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub schedule: String,
    pub schedule_words: String,
    pub timezone: String,
    /// RFC 9557 times in the plan's time zone, e.g. `2026-11-24T02:00:00+01:00[Europe/Berlin]`.
    pub next_runs: Vec<String>,
    /// Why `next_runs` is empty, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_runs_note: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub resources: Vec<Resource>,
    /// The sources, each database URL without its password (`db::url::redact`).
    pub sources: Vec<String>,
    pub copy_regions: Vec<CopyRegion>,
    pub retention: RetentionPolicy,
    pub rpo: String,
    pub rpo_seconds: i64,
    pub tier: Tier,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_test: Option<RestoreTestSummary>,
}

/// A plan's restore test as `lifeboat plan check` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreTestSummary {
    pub every: String,
    /// The checks' names.
    pub checks: Vec<String>,
    pub instance_class: String,
    pub timeout: String,
}

/// The outcome of checking a plan file: the plans that are valid, and every problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanCheck {
    pub plans: Vec<PlanSummary>,
    pub problems: Vec<PlanProblem>,
}

impl PlanCheck {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// "24 h", "90 min", "45 s".
pub fn duration_words(d: SignedDuration) -> String {
    let secs = d.as_secs();
    if secs != 0 && secs % 3600 == 0 {
        format!("{} h", secs / 3600)
    } else if secs != 0 && secs % 60 == 0 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// Reads a plan file; all plans, or every problem.
pub fn parse_plans(text: &str, now: Timestamp) -> Result<Vec<Plan>, PlanErrors> {
    let (plans, problems) = parse::read(text, now);
    if problems.is_empty() {
        Ok(plans)
    } else {
        Err(PlanErrors(problems))
    }
}

/// Reads a plan file: the valid plans' summaries and every problem, as of `now`.
pub fn check_plans(text: &str, now: Timestamp) -> PlanCheck {
    let (plans, problems) = parse::read(text, now);
    PlanCheck {
        plans: plans.iter().map(|p| p.summary(now)).collect(),
        problems,
    }
}
