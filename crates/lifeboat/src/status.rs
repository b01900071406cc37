//! `lifeboat status`: is every database the plans protect actually protected?
//!
//! For each plan and each RDS database it selects (its explicit `resources`,
//! and the instances and clusters RDS lists with the plan's `tags`):
//!
//! - the newest available snapshot Lifeboat made for the plan, read from RDS
//!   (DescribeDBSnapshots / DescribeDBClusterSnapshots, manual snapshots
//!   tagged `lifeboat:plan = PLAN`), the ground truth; the catalog's newest
//!   completed snapshot record (`crate::snapshot`) is shown beside it, and a
//!   disagreement is noted;
//! - that snapshot's copy in every copy region (same identifier there):
//!   `available`, still `copying`, or `missing`;
//! - its age against the plan's RPO, and the plan's next scheduled run.
//!
//! A database is **breached** when it has no snapshot, its newest snapshot
//! is older than the RPO, or the copy of it is missing (or failed) in a copy
//! region. [`assess`] decides this from what was read and a "now" it is
//! given, so it is unit-tested without AWS.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::catalog::Catalog;
use crate::plan::{duration_words, Plan, Resource, Tier};
use crate::rds::{DbResource, ListedSnapshot, Rds, RdsError, ResourceKind};
use crate::snapshot::{select_by_tags, TAG_PLAN};

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("listing the DB instances and clusters of region {region} failed ({error}): the role needs rds:DescribeDBInstances and rds:DescribeDBClusters there")]
    List { region: String, error: RdsError },
    #[error("reading snapshots of {resource} in region {region} failed ({message}): the role needs rds:DescribeDBSnapshots, rds:DescribeDBClusterSnapshots and rds:ListTagsForResource there")]
    Snapshots {
        resource: String,
        region: String,
        message: String,
    },
}

/// A snapshot as RDS shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeenSnapshot {
    pub id: String,
    pub status: String,
    /// When its data is from (for a copy: the original's time when RDS says).
    pub created_at: Timestamp,
}

/// What was read about one protected database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Whether RDS has the database (an explicit resource may be gone).
    pub exists: bool,
    /// The plan's snapshots of it in its region, any status.
    pub snapshots: Vec<SeenSnapshot>,
    /// Per copy region, the plan's snapshots of it there.
    pub copies: BTreeMap<String, Vec<SeenSnapshot>>,
    /// The catalog's newest completed snapshot id, if the catalog has records.
    pub catalog_latest: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyState {
    /// The newest snapshot's copy is available there.
    Available,
    /// Being copied now.
    Copying,
    /// Not there, or failed.
    Missing,
}

impl CopyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "ok",
            Self::Copying => "copying",
            Self::Missing => "MISSING",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyStatus {
    pub region: String,
    pub state: CopyState,
    /// The newest available copy there (perhaps of an older snapshot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_available: Option<SeenSnapshot>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Ok,
    Breached,
}

/// One protected database's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    pub plan: String,
    pub tier: Tier,
    pub kind: ResourceKind,
    pub id: String,
    pub region: String,
    /// `resources` or `tags`.
    pub selected_by: String,
    pub rpo: String,
    pub rpo_seconds: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_snapshot: Option<SeenSnapshot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<i64>,
    pub copies: Vec<CopyStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_latest: Option<String>,
    /// RFC 9557, in the plan's time zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run: Option<String>,
    pub health: Health,
    /// Why it is breached, and notes, each a sentence.
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

/// Every protected database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub at: Timestamp,
    pub resources: Vec<ResourceStatus>,
    /// Plans that select RDS databases by tags but found none.
    pub plans_without_databases: Vec<String>,
}

impl StatusReport {
    pub fn breached(&self) -> usize {
        self.resources.iter().filter(|r| r.health == Health::Breached).count()
    }
}

/// A database a plan protects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protected {
    pub kind: ResourceKind,
    pub id: String,
    pub arn: Option<String>,
    pub region: String,
    pub selected_by: &'static str,
}

/// Decides a database's state from what was read, as of `now`.
pub fn assess(plan: &Plan, protected: &Protected, observed: &Observed, now: Timestamp) -> ResourceStatus {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let available = |list: &[SeenSnapshot]| {
        list.iter()
            .filter(|s| s.status == "available")
            .max_by_key(|s| s.created_at)
            .cloned()
    };
    let last = available(&observed.snapshots);
    let age = last.as_ref().map(|s| now.duration_since(s.created_at));
    let what = format!("{} {}", kind_words(protected.kind), protected.id);
    if !observed.exists {
        problems.push(format!(
            "{what} is not in region {}: fix the plan's resources, or restore it",
            protected.region
        ));
    }
    match (&last, age) {
        (None, _) => problems.push(format!(
            "{what} has no available snapshot from plan {}: check the snapshot function's runs and logs",
            plan.name
        )),
        (Some(_), Some(age)) if age > plan.rpo => problems.push(format!(
            "newest snapshot of {what} is {} old, beyond the RPO of {}: check the snapshot function's runs and logs",
            age_words(age),
            duration_words(plan.rpo)
        )),
        _ => {}
    }
    let mut copies = Vec::new();
    for copy in &plan.copy_regions {
        let there = observed.copies.get(&copy.region).map(Vec::as_slice).unwrap_or(&[]);
        let state = match &last {
            None => CopyState::Missing,
            Some(last) => match there.iter().find(|s| s.id == last.id).map(|s| s.status.as_str()) {
                Some("available") => CopyState::Available,
                Some("creating" | "copying" | "pending") => CopyState::Copying,
                _ => CopyState::Missing,
            },
        };
        let newest_available = available(there);
        match (state, &last) {
            (CopyState::Missing, Some(last)) => problems.push(format!(
                "snapshot {} of {what} has no copy in {}{}: check the snapshot function's logs (its next run retries copies) and that the plan's KMS key there is enabled",
                last.id,
                copy.region,
                newest_available
                    .as_ref()
                    .map(|s| format!(" (newest copy there: {}, {} old)", s.id, age_words(now.duration_since(s.created_at))))
                    .unwrap_or_default()
            )),
            (CopyState::Copying, Some(last)) => notes.push(format!("snapshot {} is being copied to {}", last.id, copy.region)),
            _ => {}
        }
        copies.push(CopyStatus {
            region: copy.region.clone(),
            state,
            newest_available,
        });
    }
    if let (Some(catalog), Some(last)) = (&observed.catalog_latest, &last) {
        if *catalog != last.id {
            notes.push(format!(
                "the catalog's newest completed snapshot is {catalog}, RDS's is {}",
                last.id
            ));
        }
    }
    let next_run = plan
        .next_runs(now, 1)
        .ok()
        .and_then(|runs| runs.into_iter().next())
        .map(|z| z.to_string());
    ResourceStatus {
        plan: plan.name.clone(),
        tier: plan.tier,
        kind: protected.kind,
        id: protected.id.clone(),
        region: protected.region.clone(),
        selected_by: protected.selected_by.to_owned(),
        rpo: duration_words(plan.rpo),
        rpo_seconds: plan.rpo.as_secs(),
        age_seconds: age.map(|a| a.as_secs()),
        last_snapshot: last,
        copies,
        catalog_latest: observed.catalog_latest.clone(),
        next_run,
        health: if problems.is_empty() {
            Health::Ok
        } else {
            Health::Breached
        },
        problems,
        notes,
    }
}

pub fn kind_words(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::DbInstance => "DB instance",
        ResourceKind::Cluster => "Aurora cluster",
    }
}

/// "2 d 3 h", "3 h 5 min", "12 min", "40 s".
pub fn age_words(age: SignedDuration) -> String {
    let secs = age.as_secs().max(0);
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

/// The databases `plan` protects: its explicit resources (ARNs in their own
/// region, identifiers in `region`) and what its tags select among `listed`.
pub fn protected_by(plan: &Plan, region: &str, listed: &[DbResource]) -> Vec<Protected> {
    let mut out: Vec<Protected> = Vec::new();
    for resource in &plan.resources {
        let protected = match resource {
            Resource::DbInstance { arn, region, id } => Protected {
                kind: ResourceKind::DbInstance,
                id: id.clone(),
                arn: Some(arn.clone()),
                region: region.clone(),
                selected_by: "resources",
            },
            Resource::Cluster { arn, region, id } => Protected {
                kind: ResourceKind::Cluster,
                id: id.clone(),
                arn: Some(arn.clone()),
                region: region.clone(),
                selected_by: "resources",
            },
            Resource::Identifier { id } => {
                let found = listed.iter().find(|r| r.id == *id);
                Protected {
                    kind: found.map_or(ResourceKind::DbInstance, |r| r.kind),
                    id: id.clone(),
                    arn: found.map(|r| r.arn.clone()),
                    region: region.to_owned(),
                    selected_by: "resources",
                }
            }
        };
        out.push(protected);
    }
    for resource in select_by_tags(plan, listed) {
        if out.iter().any(|p| p.id == resource.id && p.region == region) {
            continue;
        }
        out.push(Protected {
            kind: resource.kind,
            id: resource.id.clone(),
            arn: Some(resource.arn.clone()),
            region: region.to_owned(),
            selected_by: "tags",
        });
    }
    out
}

/// The plan's manual snapshots of a database in one region.
async fn plan_snapshots(
    rds: &Rds,
    region: &str,
    plan: &str,
    protected: &Protected,
) -> Result<Vec<SeenSnapshot>, StatusError> {
    let failed = |error: RdsError| StatusError::Snapshots {
        resource: format!("{} {}", kind_words(protected.kind), protected.id),
        region: region.to_owned(),
        message: error.message,
    };
    let listed = rds
        .manual_snapshots(protected.kind, &protected.id)
        .await
        .map_err(failed)?;
    let mut out = Vec::new();
    for ListedSnapshot { id, state, mut tags } in listed {
        let Some(at) = state.taken_at else { continue };
        // DescribeDB*Snapshots lists tags on AWS; where it does not, ask, but only
        // about snapshots named as Lifeboat names its own (`snapshot::snapshot_name`).
        if tags.is_empty() && id.starts_with(&format!("lifeboat-{plan}-")) {
            if let Some(arn) = &state.arn {
                tags = rds.tags_of(arn).await.map_err(failed)?;
            }
        }
        if tags.iter().any(|(k, v)| k == TAG_PLAN && v == plan) {
            out.push(SeenSnapshot {
                id,
                status: state.status,
                created_at: at,
            });
        }
    }
    Ok(out)
}

/// Reads and assesses every database `plans` protect, as of `now`. `config`
/// is the primary region's; copy regions and ARNs' regions get clients of their own.
pub async fn protection_status(
    config: &SdkConfig,
    catalog: Option<&Catalog>,
    plans: &[Plan],
    now: Timestamp,
) -> Result<StatusReport, StatusError> {
    let primary = Rds::new(config);
    let region = primary.region().to_owned();
    let selects_databases = |p: &Plan| !p.tags.is_empty() || !p.resources.is_empty();
    let listed = if plans.iter().any(selects_databases) {
        primary.resources().await.map_err(|error| StatusError::List {
            region: region.clone(),
            error,
        })?
    } else {
        Vec::new()
    };
    let mut resources = Vec::new();
    let mut plans_without_databases = Vec::new();
    for plan in plans.iter().filter(|p| selects_databases(p)) {
        let protected = protected_by(plan, &region, &listed);
        if protected.is_empty() {
            plans_without_databases.push(plan.name.clone());
        }
        for db in protected {
            let home = primary.in_region(&db.region);
            let exists = if db.region == region {
                listed.iter().any(|r| r.id == db.id && r.kind == db.kind)
            } else {
                home.find_resource(&db.id, Some(db.kind)).await.is_ok()
            };
            let snapshots = plan_snapshots(&home, &db.region, &plan.name, &db).await?;
            let mut copies = BTreeMap::new();
            for copy in &plan.copy_regions {
                let there = primary.in_region(&copy.region);
                copies.insert(
                    copy.region.clone(),
                    plan_snapshots(&there, &copy.region, &plan.name, &db).await?,
                );
            }
            let catalog_latest = match (catalog, &db.arn) {
                (Some(catalog), Some(arn)) => match catalog.snapshots().latest_completed(arn).await {
                    Ok(latest) => latest.map(|h| h.snapshot.snapshot_id),
                    Err(error) => {
                        tracing::warn!(%error, resource = %arn, "catalog snapshot records unreadable; RDS alone decides");
                        None
                    }
                },
                _ => None,
            };
            let observed = Observed {
                exists,
                snapshots,
                copies,
                catalog_latest,
            };
            resources.push(assess(plan, &db, &observed, now));
        }
    }
    Ok(StatusReport {
        at: now,
        resources,
        plans_without_databases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::parse_plans;

    const NOW: &str = "2026-11-23T12:30:00Z";

    fn at(text: &str) -> Timestamp {
        text.parse().expect("time")
    }

    fn plan() -> Plan {
        let text = r#"
[[plan]]
name = "orders-hourly"
schedule = "cron(0 * * * ? *)"
tags = { backup = "hourly" }
copy_regions = [{ region = "us-west-2", kms_key = "arn:aws:kms:us-west-2:123456789012:key/k" }]
retention = { keep_last = 24 }
rpo = "1h"
tier = "critical"
"#;
        parse_plans(text, at(NOW)).expect("plan").remove(0)
    }

    fn db() -> Protected {
        Protected {
            kind: ResourceKind::DbInstance,
            id: "orders".into(),
            arn: Some("arn:aws:rds:us-east-1:123456789012:db:orders".into()),
            region: "us-east-1".into(),
            selected_by: "tags",
        }
    }

    fn snap(id: &str, status: &str, time: &str) -> SeenSnapshot {
        SeenSnapshot {
            id: id.into(),
            status: status.into(),
            created_at: at(time),
        }
    }

    fn observed(snapshots: Vec<SeenSnapshot>, copies: Vec<SeenSnapshot>) -> Observed {
        Observed {
            exists: true,
            snapshots,
            copies: BTreeMap::from([("us-west-2".to_owned(), copies)]),
            catalog_latest: None,
        }
    }

    #[test]
    fn fresh_snapshot_with_its_copy_is_ok() {
        let s = snap(
            "lifeboat-orders-hourly-orders-20261123-1200",
            "available",
            "2026-11-23T12:00:05Z",
        );
        let status = assess(&plan(), &db(), &observed(vec![s.clone()], vec![s]), at(NOW));
        assert_eq!(status.health, Health::Ok, "{:?}", status.problems);
        assert_eq!(status.age_seconds, Some(29 * 60 + 55));
        assert_eq!(status.copies[0].state, CopyState::Available);
        assert_eq!(status.next_run.as_deref(), Some("2026-11-23T13:00:00+00:00[UTC]"));
    }

    #[test]
    fn a_snapshot_older_than_the_rpo_is_a_breach() {
        let s = snap("old", "available", "2026-11-23T11:00:00Z");
        let status = assess(&plan(), &db(), &observed(vec![s.clone()], vec![s]), at(NOW));
        assert_eq!(status.health, Health::Breached);
        assert!(
            status.problems[0].contains("1 h 30 min old, beyond the RPO of 1 h"),
            "{:?}",
            status.problems
        );
    }

    #[test]
    fn the_newest_available_snapshot_counts_not_one_being_made() {
        let status = assess(
            &plan(),
            &db(),
            &observed(
                vec![
                    snap("new", "creating", "2026-11-23T12:29:00Z"),
                    snap("ok", "available", "2026-11-23T12:00:00Z"),
                ],
                vec![snap("ok", "available", "2026-11-23T12:00:00Z")],
            ),
            at(NOW),
        );
        assert_eq!(status.last_snapshot.map(|s| s.id), Some("ok".to_owned()));
        assert_eq!(status.health, Health::Ok);
    }

    #[test]
    fn a_missing_copy_is_a_breach_and_names_the_newest_copy_there() {
        let status = assess(
            &plan(),
            &db(),
            &observed(
                vec![snap("new", "available", "2026-11-23T12:00:00Z")],
                vec![snap("older", "available", "2026-11-23T11:00:00Z")],
            ),
            at(NOW),
        );
        assert_eq!(status.health, Health::Breached);
        assert_eq!(status.copies[0].state, CopyState::Missing);
        assert!(
            status.problems[0].contains("snapshot new of DB instance orders has no copy in us-west-2 (newest copy there: older, 1 h 30 min old)"),
            "{:?}",
            status.problems
        );
    }

    #[test]
    fn a_copy_in_progress_is_noted_not_breached() {
        let status = assess(
            &plan(),
            &db(),
            &observed(
                vec![snap("new", "available", "2026-11-23T12:00:00Z")],
                vec![snap("new", "copying", "2026-11-23T12:00:00Z")],
            ),
            at(NOW),
        );
        assert_eq!(status.health, Health::Ok);
        assert_eq!(status.copies[0].state, CopyState::Copying);
        assert_eq!(status.notes, ["snapshot new is being copied to us-west-2"]);
    }

    #[test]
    fn no_snapshot_or_no_database_is_a_breach() {
        let status = assess(&plan(), &db(), &observed(vec![], vec![]), at(NOW));
        assert_eq!(status.health, Health::Breached);
        assert!(status.problems[0].contains("has no available snapshot from plan orders-hourly"));
        let gone = Observed {
            exists: false,
            ..observed(vec![], vec![])
        };
        let status = assess(&plan(), &db(), &gone, at(NOW));
        assert!(
            status.problems[0].contains("is not in region us-east-1"),
            "{:?}",
            status.problems
        );
    }

    #[test]
    fn tags_and_explicit_resources_select_each_database_once() {
        let text = r#"
[[plan]]
name = "mixed"
schedule = "cron(0 2 * * ? *)"
tags = { backup = "daily" }
resources = ["orders", "arn:aws:rds:eu-west-1:123456789012:cluster:billing"]
retention = { daily = 7 }
rpo = "26h"
tier = "important"
"#;
        let plan = parse_plans(text, at(NOW)).expect("plan").remove(0);
        let listed = |id: &str, kind, tags: &[(&str, &str)], cluster: Option<&str>| DbResource {
            kind,
            id: id.into(),
            arn: format!("arn:aws:rds:us-east-1:123456789012:db:{id}"),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            cluster: cluster.map(str::to_owned),
        };
        let all = vec![
            listed("orders", ResourceKind::DbInstance, &[("backup", "daily")], None),
            listed("users", ResourceKind::DbInstance, &[("backup", "daily")], None),
            listed("member", ResourceKind::DbInstance, &[("backup", "daily")], Some("c")),
            listed("other", ResourceKind::DbInstance, &[("backup", "never")], None),
        ];
        let picked: Vec<(String, String, &str)> = protected_by(&plan, "us-east-1", &all)
            .into_iter()
            .map(|p| (p.id, p.region, p.selected_by))
            .collect();
        assert_eq!(
            picked,
            [
                ("orders".to_owned(), "us-east-1".to_owned(), "resources"),
                ("billing".to_owned(), "eu-west-1".to_owned(), "resources"),
                ("users".to_owned(), "us-east-1".to_owned(), "tags"),
            ]
        );
    }

    #[test]
    fn ages_read_well() {
        for (secs, words) in [
            (40, "40 s"),
            (720, "12 min"),
            (3 * 3600 + 300, "3 h 5 min"),
            (2 * 86_400 + 3 * 3600, "2 d 3 h"),
        ] {
            assert_eq!(age_words(SignedDuration::from_secs(secs)), words);
        }
    }
}
