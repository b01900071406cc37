//! The report of a failover, failback or drill: measured RTO and RPO per
//! database, as JSON (for programs) and Markdown (for the incident record),
//! both written to a directory under the job's id.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dns::RecordSwitch;
use super::plan::Strategy;
use crate::jobs::{JobKind, StepRecord, StepStatus};
use crate::validate::ValidationReport;

/// The data-loss window of one database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Rpo {
    /// Restored from a snapshot: everything written after it was taken is lost.
    #[serde(rename_all = "camelCase")]
    Snapshot {
        snapshot: String,
        taken_at: String,
        /// From the snapshot to the moment of the restore (or of the report, before one).
        seconds: i64,
    },
    /// A promoted replica: what it had not replicated yet is lost.
    #[serde(rename_all = "camelCase")]
    Replica {
        /// The replication lag, when known; RDS's DescribeDBInstances does not
        /// report it (CloudWatch's `ReplicaLag` metric does).
        lag_seconds: Option<i64>,
        note: String,
    },
}

impl Rpo {
    pub fn words(&self) -> String {
        match self {
            Self::Snapshot { snapshot, seconds, .. } => format!("{} (snapshot {snapshot})", seconds_words(*seconds)),
            Self::Replica {
                lag_seconds: Some(lag), ..
            } => format!("{} (replica lag)", seconds_words(*lag)),
            Self::Replica { note, .. } => format!("replica: {note}"),
        }
    }
}

/// What a failover did to an instance of the primary region that could
/// still take writes (the old primary, or the instance an earlier failback
/// made): fencing keeps clients that still reach it from writing data the
/// DR database never sees.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Fence {
    /// Stopped (`StopDBInstance`) and tagged `lifeboat:fenced` with the job.
    Stopped { instance: String, region: String },
    /// It was stopped (or stopping) already.
    AlreadyStopped { instance: String, region: String },
    /// The primary region has no such instance: nothing to fence.
    Absent { instance: String, region: String },
    /// NOT fenced: why, and what the operator must do.
    NotFenced {
        instance: String,
        region: String,
        reason: String,
        todo: String,
    },
}

impl Fence {
    pub fn words(&self) -> String {
        match self {
            Self::Stopped { instance, region } => {
                format!("old primary {instance} ({region}) stopped and tagged lifeboat:fenced")
            }
            Self::AlreadyStopped { instance, region } => {
                format!("old primary {instance} ({region}) was stopped already")
            }
            Self::Absent { instance, region } => format!("no instance {instance} in {region}: nothing to fence"),
            Self::NotFenced {
                instance,
                region,
                reason,
                todo,
            } => format!("old primary {instance} ({region}) was NOT fenced: {reason}. {todo}"),
        }
    }
}

/// One database's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseReport {
    pub name: String,
    pub strategy: Strategy,
    /// The instance that serves now (failover, failback) or was rehearsed on (drill).
    pub instance: String,
    pub region: String,
    pub endpoint: Option<String>,
    /// From the job's start (a drill: the database's first step) to validated
    /// (or available, without checks); `None` if it never got there.
    pub rto_seconds: Option<f64>,
    pub ready_at: Option<String>,
    pub rpo: Option<Rpo>,
    /// How many checks the plan gives it.
    pub checks: usize,
    pub validation: Option<ValidationReport>,
    pub records: Vec<RecordSwitch>,
    /// Failover: what became of the primary region's instances that could take writes.
    #[serde(default)]
    pub fence: Vec<Fence>,
    /// What happened to it besides the steps (nothing to do, adopted, torn down).
    pub notes: Vec<String>,
}

/// The outcome of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
    NothingToDo,
}

/// A job's report, stored in the job record and written as files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrReport {
    pub job_id: String,
    pub kind: JobKind,
    pub plan: String,
    pub primary_region: String,
    pub dr_region: String,
    pub started_at: String,
    pub finished_at: String,
    /// How many times the job was run (1 unless it was resumed).
    pub runs: u32,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub databases: Vec<DatabaseReport>,
    pub steps: Vec<StepRecord>,
    /// What the run as a whole must tell (a stale lease taken over).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Seconds from `from` to `to` (RFC 3339 times), if both parse.
pub fn seconds_between(from: &str, to: &str) -> Option<f64> {
    let (from, to) = (crate::times::parse(from).ok()?, crate::times::parse(to).ok()?);
    let span = to.duration_since(from);
    Some((span.as_millis() as f64) / 1000.0)
}

/// 42 → "42 s", 4000 → "1 h 6 min 40 s".
pub fn seconds_words(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s} s"),
        (0, _) => format!("{m} min {s} s"),
        _ => format!("{h} h {m} min {s} s"),
    }
}

impl DrReport {
    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let title = match self.kind {
            JobKind::Failover => "Failover",
            JobKind::Failback => "Failback",
            JobKind::Drill => "DR drill",
            JobKind::RestoreDb | JobKind::RestoreSnapshot => "Restore",
        };
        let outcome = match self.outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "FAILED",
            Outcome::NothingToDo => "nothing to do",
        };
        let _ = writeln!(out, "# {title} of plan `{}`: {outcome}\n", self.plan);
        let _ = writeln!(out, "| | |\n|---|---|");
        let _ = writeln!(out, "| job | `{}` |", self.job_id);
        let _ = writeln!(out, "| primary region | {} |", self.primary_region);
        let _ = writeln!(out, "| DR region | {} |", self.dr_region);
        let _ = writeln!(out, "| started | {} |", self.started_at);
        let _ = writeln!(out, "| finished | {} |", self.finished_at);
        let _ = writeln!(out, "| runs | {} |", self.runs);
        if let Some(error) = &self.error {
            let _ = writeln!(out, "| error | {} |", error.replace('|', "\\|").replace('\n', " "));
        }
        let _ = writeln!(out, "\n## Databases\n");
        let _ = writeln!(
            out,
            "| database | strategy | instance | RTO (to validated) | RPO (data-loss window) | validation |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for db in &self.databases {
            let rto = match db.rto_seconds {
                None => "not reached".to_owned(),
                Some(s) if s < 60.0 => format!("{s:.1} s"),
                Some(s) => seconds_words(s.round() as i64),
            };
            let rpo = db.rpo.as_ref().map_or_else(|| "unknown".to_owned(), Rpo::words);
            let validation = match &db.validation {
                Some(v) if v.passed() => format!("{n}/{n} checks passed", n = v.results.len()),
                Some(v) => v.failure_message().unwrap_or_default(),
                None if db.checks == 0 => "none".to_owned(),
                None => format!("{} checks not passed (see notes)", db.checks),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} ({}) | {rto} | {rpo} | {} |",
                db.name,
                db.strategy.as_str(),
                db.instance,
                db.region,
                validation.replace('|', "\\|")
            );
        }
        let records: Vec<(&str, &RecordSwitch)> = self
            .databases
            .iter()
            .flat_map(|db| db.records.iter().map(move |r| (db.name.as_str(), r)))
            .collect();
        if !records.is_empty() {
            let _ = writeln!(out, "\n## DNS\n");
            let _ = writeln!(out, "| database | record | was | now | change |");
            let _ = writeln!(out, "|---|---|---|---|---|");
            for (db, r) in records {
                let _ = writeln!(
                    out,
                    "| {db} | {} {} | {} | {} | {} |",
                    r.record_type,
                    r.name,
                    r.from.as_deref().unwrap_or("(none)"),
                    r.to,
                    r.change_id.as_deref().unwrap_or("already pointed there")
                );
            }
        }
        let fences: Vec<(&str, &Fence)> = self
            .databases
            .iter()
            .flat_map(|db| db.fence.iter().map(move |f| (db.name.as_str(), f)))
            .collect();
        if !fences.is_empty() {
            let _ = writeln!(out, "\n## Old primary (fencing)\n");
            for (db, fence) in fences {
                let _ = writeln!(out, "- {db}: {}", fence.words());
            }
        }
        let notes: Vec<(&str, &String)> = self
            .notes
            .iter()
            .map(|n| ("run", n))
            .chain(
                self.databases
                    .iter()
                    .flat_map(|db| db.notes.iter().map(move |n| (db.name.as_str(), n))),
            )
            .collect();
        if !notes.is_empty() {
            let _ = writeln!(out, "\n## Notes\n");
            for (db, note) in notes {
                let _ = writeln!(out, "- {db}: {note}");
            }
        }
        let _ = writeln!(out, "\n## Steps\n");
        let _ = writeln!(out, "| step | status | attempts | started | duration | error |");
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for step in &self.steps {
            let status = match step.status {
                StepStatus::Running => "running",
                StepStatus::Done => "done",
                StepStatus::Failed => "failed",
            };
            let duration = step
                .duration_ms
                .map_or_else(String::new, |ms| format!("{:.1} s", ms as f64 / 1000.0));
            let _ = writeln!(
                out,
                "| {} | {status} | {} | {} | {duration} | {} |",
                step.name,
                step.attempts,
                step.started_at,
                step.error
                    .as_deref()
                    .unwrap_or("")
                    .replace('|', "\\|")
                    .replace('\n', " ")
            );
        }
        out
    }

    /// Writes `JOBID.json` and `JOBID.md` into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf), std::io::Error> {
        std::fs::create_dir_all(dir)?;
        let json_path = dir.join(format!("{}.json", self.job_id));
        let markdown_path = dir.join(format!("{}.md", self.job_id));
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&json_path, json + "\n")?;
        std::fs::write(&markdown_path, self.to_markdown())?;
        Ok((json_path, markdown_path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_words() {
        for (seconds, words) in [(0, "0 s"), (42, "42 s"), (60, "1 min 0 s"), (4000, "1 h 6 min 40 s")] {
            assert_eq!(seconds_words(seconds), words);
        }
        assert_eq!(
            seconds_between("2026-11-23T10:00:00.000Z", "2026-11-23T10:01:30.500Z"),
            Some(90.5)
        );
        assert_eq!(seconds_between("yesterday", "2026-11-23T10:01:30Z"), None);
    }

    #[test]
    fn the_markdown_report_has_rto_rpo_and_dns() {
        let report = DrReport {
            job_id: "job-1".into(),
            kind: JobKind::Failover,
            plan: "prod".into(),
            primary_region: "eu-central-1".into(),
            dr_region: "us-west-2".into(),
            started_at: "2026-11-23T10:00:00.000Z".into(),
            finished_at: "2026-11-23T10:05:00.000Z".into(),
            runs: 2,
            outcome: Outcome::Succeeded,
            error: None,
            databases: vec![DatabaseReport {
                name: "orders".into(),
                strategy: Strategy::Snapshot,
                instance: "orders-db".into(),
                region: "us-west-2".into(),
                endpoint: Some("orders-db.x.us-west-2.rds.amazonaws.com".into()),
                rto_seconds: Some(272.4),
                ready_at: Some("2026-11-23T10:04:32.400Z".into()),
                rpo: Some(Rpo::Snapshot {
                    snapshot: "orders-copy".into(),
                    taken_at: "2026-11-23T09:00:00Z".into(),
                    seconds: 3600,
                }),
                checks: 0,
                validation: None,
                records: vec![RecordSwitch {
                    zone_id: "Z1".into(),
                    name: "orders.example.internal".into(),
                    record_type: "CNAME".into(),
                    from: Some("orders-db.x.eu-central-1.rds.amazonaws.com".into()),
                    to: "orders-db.x.us-west-2.rds.amazonaws.com".into(),
                    change_id: Some("C1".into()),
                }],
                fence: vec![Fence::NotFenced {
                    instance: "orders-db".into(),
                    region: "eu-central-1".into(),
                    reason: "the region did not answer".into(),
                    todo: "Stop it.".into(),
                }],
                notes: vec![],
            }],
            steps: vec![],
            notes: vec![],
        };
        let markdown = report.to_markdown();
        assert!(markdown.contains("# Failover of plan `prod`: succeeded"), "{markdown}");
        assert!(markdown.contains("| orders | snapshot | orders-db (us-west-2) | 4 min 32 s | 1 h 0 min 0 s (snapshot orders-copy) | none |"), "{markdown}");
        assert!(
            markdown.contains(
                "- orders: old primary orders-db (eu-central-1) was NOT fenced: the region did not answer. Stop it."
            ),
            "{markdown}"
        );
        assert!(markdown.contains("| orders | CNAME orders.example.internal | orders-db.x.eu-central-1.rds.amazonaws.com | orders-db.x.us-west-2.rds.amazonaws.com | C1 |"), "{markdown}");
        let dir = tempfile::tempdir().expect("tempdir");
        let (json, md) = report.write(&dir.path().join("reports")).expect("written");
        let back: DrReport = serde_json::from_str(&std::fs::read_to_string(json).expect("json")).expect("parses");
        assert_eq!(back, report);
        assert!(md.ends_with("job-1.md"));
    }
}
