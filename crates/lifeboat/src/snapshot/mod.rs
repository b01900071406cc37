//! RDS and Aurora snapshots on a plan's schedule, copied to other regions.
//!
//! A plan (`crate::plan`) selects DB instances and Aurora clusters by tags
//! (every tag must match; instances that belong to a cluster are taken
//! through their cluster) and by explicit ARNs or identifiers. On each
//! scheduled run, [`run_scheduled`]:
//!
//! 1. **claims** a record per selected resource in the catalog, keyed by
//!    (plan, resource, scheduled time), so a redelivered event creates
//!    nothing new (a failed record is taken over: a retry);
//! 2. **creates** a manual snapshot named [`snapshot_name`]
//!    (`lifeboat-PLAN-RESOURCE-YYYYMMDD-HHMM`, UTC) tagged
//!    `lifeboat:plan`, `lifeboat:created-by`, `lifeboat:scheduled-time`,
//!    `lifeboat:resource` and, when the plan's retention has a time limit,
//!    `lifeboat:retention-until`; the record stays `in_progress`;
//! 3. **advances** every plan's open work, as [`advance`] does on an RDS
//!    snapshot event or any later run (polling covers lost events): a
//!    snapshot RDS reports `available` becomes `completed` and gets a
//!    `queued` copy per copy region; queued copies start, re-encrypted with
//!    that region's KMS key (checked with DescribeKey first; the default
//!    `aws/rds` key is never used), at most [`MAX_COPIES_IN_FLIGHT`] per
//!    destination region (RDS's limit on concurrent cross-region copies,
//!    counted over every plan of the plan file; copies made outside Lifeboat
//!    are not seen, and RDS refusing one is handled as throttling), oldest
//!    first; the rest stay queued for the next run. A copy in flight
//!    is one whose destination snapshot RDS does not yet report available.
//!    A throttled copy request goes back to the queue with a growing delay
//!    ([`backoff`]); the SDK's own retries handle throttling within a call.
//!
//! Every failure is recorded on its item with the AWS error (`Code:
//! message`) and listed in the run's [`SnapshotSummary`]; the other
//! resources proceed.
//!
//! # Reading the records
//!
//! Other parts of Lifeboat (status, retention, verify, alerts) read the
//! records through [`SnapshotCatalog`] (`Catalog::snapshots()`):
//!
//! - [`SnapshotCatalog::latest_completed`]`(resource_arn)`: a resource's
//!   newest completed snapshot with its copies, each with its region and
//!   status (`queued`, `copying`, `completed`, `failed`);
//! - [`SnapshotCatalog::history`]`(resource_arn)`: all of a resource's
//!   snapshots, newest scheduled time first, each with its copies;
//! - [`SnapshotCatalog::get`]`(plan, resource, scheduled_time)`: one run's;
//! - [`SnapshotCatalog::list`]: every snapshot record (a scan);
//! - [`SnapshotCatalog::open_work`]`(plan)`: what is still in progress.
//!
//! The keys are in `records.rs` and ARCHITECTURE.md ("The catalog table").
//! The RDS calls are behind the [`SnapshotApi`] trait ([`crate::rds::Rds`] in production), so
//! tests can script the states the emulator never shows.
//!
//! A plan's `sources` that are database URLs are dumped on its schedule
//! too ([`run_plan_dumps`], `dumps.rs`), once per scheduled run.

pub mod alerts;
pub mod api;
pub mod checks;
mod copies;
mod dumps;
pub mod error;
pub mod names;
pub mod observe;
pub mod plans;
pub mod records;
pub mod restore_tests;
pub mod retention;
mod summary;
pub mod trial_restore;
pub mod verifications;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

pub use crate::rds::{DbResource, RdsError, ResourceKind, SnapshotState};
pub use api::SnapshotApi;
pub use checks::{ProblemKind, SnapshotProblem};
use copies::{advance_copies, copy_failure};
pub use dumps::run_plan_dumps;
pub use error::SnapshotOpsError;
pub use names::*;
pub use plans::select_plans;
pub use records::{
    Claim, CopyRecord, CopyStatus, DumpClaim, OpenWork, SnapshotCatalog, SnapshotHistory, SnapshotRecord,
    SnapshotStatus,
};
pub use summary::{SnapshotError, SnapshotFailure, SnapshotSummary};
pub use verifications::{SnapshotChecks, SnapshotVerification};

use crate::plan::{Plan, Resource};
use crate::times;

/// The plan named `name`.
fn find_plan<'a>(plans: &'a [Plan], name: &str) -> Result<&'a Plan, SnapshotError> {
    plans
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| SnapshotError::UnknownPlan {
            name: name.to_owned(),
            known: plans.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "),
        })
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

/// A scheduled run of the plan named `plan` (one of `plans`, the plan
/// file): snapshots of everything it selects for the run at `scheduled` (to
/// the minute), then [`advance`] of every plan's open work (copies to one
/// region count against one limit, whichever plan they belong to).
pub async fn run_scheduled<R: SnapshotApi>(
    rds: &R,
    catalog: &SnapshotCatalog,
    plans: &[Plan],
    plan: &str,
    scheduled: Timestamp,
    now: Timestamp,
) -> Result<SnapshotSummary, SnapshotError> {
    let plan = find_plan(plans, plan)?;
    let scheduled = scheduled_minute(scheduled);
    let mut summary = SnapshotSummary {
        plans: vec![plan.name.clone()],
        scheduled_time: Some(time_text(scheduled)),
        ..SnapshotSummary::default()
    };
    take_snapshots(rds, catalog, plan, scheduled, now, &mut summary).await?;
    advance_plans(rds, catalog, plans, now, &mut summary).await?;
    Ok(summary)
}

/// Advances the open work of `plans` (on an RDS snapshot event, or a run
/// with nothing new to snapshot): completes available snapshots, queues and
/// starts their copies, completes finished copies.
pub async fn advance<R: SnapshotApi>(
    rds: &R,
    catalog: &SnapshotCatalog,
    plans: &[Plan],
    now: Timestamp,
) -> Result<SnapshotSummary, SnapshotError> {
    let mut summary = SnapshotSummary {
        plans: plans.iter().map(|p| p.name.clone()).collect(),
        ..SnapshotSummary::default()
    };
    advance_plans(rds, catalog, plans, now, &mut summary).await?;
    Ok(summary)
}

/// What a plan selects: resources found, and failures for named ones that
/// could not be found (resource as written, the error).
async fn select<R: SnapshotApi>(
    rds: &R,
    plan: &Plan,
) -> Result<(Vec<DbResource>, Vec<(Resource, String)>), SnapshotError> {
    let listed = if plan.tags.is_empty() {
        Vec::new()
    } else {
        rds.list_resources().await.map_err(|error| SnapshotError::List {
            region: rds.region().to_owned(),
            error,
        })?
    };
    let mut selected = select_by_tags(plan, &listed);
    let mut missing = Vec::new();
    for named in &plan.resources {
        let (id, kind, region) = match named {
            Resource::DbInstance { region, id, .. } => (id, Some(ResourceKind::DbInstance), Some(region)),
            Resource::Cluster { region, id, .. } => (id, Some(ResourceKind::Cluster), Some(region)),
            Resource::Identifier { id } => (id, None, None),
        };
        if let Some(region) = region.filter(|r| r.as_str() != rds.region()) {
            missing.push((
                named.clone(),
                format!(
                    "{} is in {region}, but this function snapshots {}: deploy Lifeboat in {region} for it",
                    named.describe(),
                    rds.region()
                ),
            ));
            continue;
        }
        match rds.find_resource(id, kind).await {
            Ok(resource) => selected.push(resource),
            Err(error) => missing.push((named.clone(), error.to_string())),
        }
    }
    let mut seen = BTreeSet::new();
    selected.retain(|r| seen.insert(r.arn.clone()));
    Ok((selected, missing))
}

async fn take_snapshots<R: SnapshotApi>(
    rds: &R,
    catalog: &SnapshotCatalog,
    plan: &Plan,
    scheduled: Timestamp,
    now: Timestamp,
    summary: &mut SnapshotSummary,
) -> Result<(), SnapshotError> {
    let (selected, missing) = select(rds, plan).await?;
    let scheduled_text = time_text(scheduled);
    let retention = retention_until(&plan.retention, scheduled).map(time_text);
    for (named, error) in missing {
        let (resource, id, kind) = match &named {
            Resource::DbInstance { arn, id, .. } => (arn.clone(), id.clone(), ResourceKind::DbInstance),
            Resource::Cluster { arn, id, .. } => (arn.clone(), id.clone(), ResourceKind::Cluster),
            Resource::Identifier { id } => (id.clone(), id.clone(), ResourceKind::DbInstance),
        };
        tracing::warn!(plan = %plan.name, resource = %resource, error = %error, "resource not found");
        let record = SnapshotRecord {
            plan: plan.name.clone(),
            resource: resource.clone(),
            resource_id: id.clone(),
            resource_kind: kind,
            region: rds.region().to_owned(),
            scheduled_time: scheduled_text.clone(),
            snapshot_id: snapshot_name(&plan.name, &id, scheduled),
            snapshot_arn: None,
            status: SnapshotStatus::Failed,
            created_at: times::format(now),
            completed_at: None,
            retention_until: None,
            engine: None,
            error: Some(error.clone()),
            failed_at: Some(times::format(now)),
        };
        catalog.record_failure(&record).await?;
        summary.failures.push(SnapshotFailure {
            plan: plan.name.clone(),
            resource,
            snapshot_id: None,
            region: Some(rds.region().to_owned()),
            error,
        });
    }
    for resource in selected {
        summary.selected.push(resource.arn.clone());
        let snapshot_id = snapshot_name(&plan.name, &resource.id, scheduled);
        let mut record = SnapshotRecord {
            plan: plan.name.clone(),
            resource: resource.arn.clone(),
            resource_id: resource.id.clone(),
            resource_kind: resource.kind,
            region: rds.region().to_owned(),
            scheduled_time: scheduled_text.clone(),
            snapshot_id: snapshot_id.clone(),
            snapshot_arn: None,
            status: SnapshotStatus::InProgress,
            created_at: times::format(now),
            completed_at: None,
            retention_until: retention.clone(),
            engine: None,
            error: None,
            failed_at: None,
        };
        if let Claim::Exists(existing) = catalog.claim(&record).await? {
            tracing::info!(plan = %plan.name, resource = %resource.arn, snapshot = %existing.snapshot_id, status = existing.status.as_str(), "snapshot already taken for this scheduled run");
            summary.already_taken.push(existing.snapshot_id);
            continue;
        }
        let tags = snapshot_tags(plan, &resource.arn, scheduled);
        match rds.create_snapshot(&resource, &snapshot_id, &tags).await {
            Ok(state) => {
                tracing::info!(plan = %plan.name, resource = %resource.arn, snapshot = %snapshot_id, status = %state.status, "snapshot started");
                record.snapshot_arn = state.arn;
                record.engine = state.engine;
                if !catalog.update_snapshot(&record, SnapshotStatus::InProgress).await? {
                    tracing::info!(snapshot = %snapshot_id, "another run advanced the record first");
                }
                summary.created.push(snapshot_id);
            }
            Err(error) if error.is_already_exists() => {
                // An earlier attempt of this run started it; the claim is ours now.
                tracing::info!(plan = %plan.name, snapshot = %snapshot_id, "snapshot exists from an earlier attempt");
                summary.created.push(snapshot_id);
            }
            Err(error) => {
                tracing::warn!(plan = %plan.name, resource = %resource.arn, snapshot = %snapshot_id, error = %error, "snapshot failed");
                let message = format!("creating snapshot {snapshot_id} of {} failed: {error}", resource.id);
                record.status = SnapshotStatus::Failed;
                record.error = Some(message.clone());
                record.failed_at = Some(times::format(now));
                if !catalog.update_snapshot(&record, SnapshotStatus::InProgress).await? {
                    continue;
                }
                summary.failures.push(SnapshotFailure {
                    plan: plan.name.clone(),
                    resource: resource.arn.clone(),
                    snapshot_id: Some(snapshot_id),
                    region: Some(rds.region().to_owned()),
                    error: message,
                });
            }
        }
    }
    Ok(())
}

/// Every plan's open snapshots, then every open copy, by destination region.
async fn advance_plans<R: SnapshotApi>(
    rds: &R,
    catalog: &SnapshotCatalog,
    plans: &[Plan],
    now: Timestamp,
    summary: &mut SnapshotSummary,
) -> Result<(), SnapshotError> {
    let mut copies = Vec::new();
    for plan in plans {
        let work = catalog.open_work(&plan.name).await?;
        copies.extend(work.copies);
        for record in work.snapshots {
            if let Some(queued) = advance_snapshot(rds, catalog, plan, record, now, summary).await? {
                copies.extend(queued);
            }
        }
    }
    let mut by_region: BTreeMap<String, Vec<CopyRecord>> = BTreeMap::new();
    for copy in copies {
        by_region.entry(copy.region.clone()).or_default().push(copy);
    }
    for (region, copies) in by_region {
        advance_copies(rds, catalog, plans, &region, copies, now, summary).await?;
    }
    Ok(())
}

/// Checks one in-progress snapshot; when it completed, returns its new copies.
async fn advance_snapshot<R: SnapshotApi>(
    rds: &R,
    catalog: &SnapshotCatalog,
    plan: &Plan,
    mut record: SnapshotRecord,
    now: Timestamp,
    summary: &mut SnapshotSummary,
) -> Result<Option<Vec<CopyRecord>>, SnapshotError> {
    let failure = match rds
        .describe_snapshot(&record.region, record.resource_kind, &record.snapshot_id)
        .await
    {
        Err(error) if error.is_retryable() => {
            tracing::warn!(snapshot = %record.snapshot_id, error = %error, "describing the snapshot failed; next run retries");
            summary.creating.push(record.snapshot_id);
            return Ok(None);
        }
        Err(error) => format!("describing snapshot {} failed: {error}", record.snapshot_id),
        Ok(None) => format!(
            "snapshot {} does not exist in {}: it was deleted, or RDS never made it",
            record.snapshot_id, record.region
        ),
        Ok(Some(state)) => match phase(&state.status) {
            Phase::Working => {
                summary.creating.push(record.snapshot_id);
                return Ok(None);
            }
            Phase::Failed => format!("RDS reports snapshot {} as {:?}", record.snapshot_id, state.status),
            Phase::Available => {
                record.status = SnapshotStatus::Completed;
                record.completed_at = Some(times::format(now));
                record.snapshot_arn = state.arn.or(record.snapshot_arn);
                record.engine = state.engine.or(record.engine);
                if !catalog.update_snapshot(&record, SnapshotStatus::InProgress).await? {
                    // Another run completed it (and queued its copies).
                    return Ok(None);
                }
                tracing::info!(plan = %plan.name, snapshot = %record.snapshot_id, "snapshot completed");
                summary.completed.push(record.snapshot_id.clone());
                let Some(source_arn) = record.snapshot_arn.clone() else {
                    return Ok(Some(Vec::new()));
                };
                let mut queued = Vec::new();
                for target in &plan.copy_regions {
                    let mut copy = CopyRecord {
                        plan: plan.name.clone(),
                        resource: record.resource.clone(),
                        resource_kind: record.resource_kind,
                        scheduled_time: record.scheduled_time.clone(),
                        source_snapshot_arn: source_arn.clone(),
                        region: target.region.clone(),
                        kms_key_id: target.kms_key.clone(),
                        snapshot_id: record.snapshot_id.clone(),
                        snapshot_arn: None,
                        status: CopyStatus::Queued,
                        queued_at: times::format(now),
                        started_at: None,
                        completed_at: None,
                        attempts: 0,
                        next_attempt_at: None,
                        error: None,
                        failed_at: None,
                    };
                    if target.region == record.region {
                        // A copy into its own region would be the snapshot itself.
                        let error = format!(
                            "copy_regions names {}, the snapshot's own region: copies go to other regions; fix the plan",
                            target.region
                        );
                        copy.status = CopyStatus::Failed;
                        copy.error = Some(error.clone());
                        copy.failed_at = Some(times::format(now));
                        if catalog.queue_copy(&copy).await? {
                            summary.failures.push(copy_failure(&copy, &error));
                        }
                        continue;
                    }
                    if catalog.queue_copy(&copy).await? {
                        queued.push(copy);
                    }
                }
                return Ok(Some(queued));
            }
        },
    };
    tracing::warn!(plan = %plan.name, snapshot = %record.snapshot_id, error = %failure, "snapshot failed");
    record.status = SnapshotStatus::Failed;
    record.error = Some(failure.clone());
    record.failed_at = Some(times::format(now));
    if !catalog.update_snapshot(&record, SnapshotStatus::InProgress).await? {
        return Ok(None);
    }
    summary.failures.push(SnapshotFailure {
        plan: plan.name.clone(),
        resource: record.resource,
        snapshot_id: Some(record.snapshot_id),
        region: Some(record.region),
        error: failure,
    });
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::parse_plans;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn plan(extra: &str) -> Plan {
        let text = format!(
            "[[plan]]\nname = \"db-nightly\"\nschedule = \"cron(0 2 * * ? *)\"\nrpo = \"26h\"\ntier = \"critical\"\n{extra}"
        );
        parse_plans(&text, at("2026-11-23T00:00:00Z")).unwrap().remove(0)
    }

    fn resource(kind: ResourceKind, id: &str, tags: &[(&str, &str)], cluster: Option<&str>) -> DbResource {
        DbResource {
            kind,
            id: id.to_owned(),
            arn: format!(
                "arn:aws:rds:eu-central-1:123456789012:{}:{id}",
                if kind == ResourceKind::Cluster { "cluster" } else { "db" }
            ),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            cluster: cluster.map(str::to_owned),
        }
    }

    fn queued(resource: &str, scheduled: &str, next_attempt_at: Option<&str>) -> CopyRecord {
        CopyRecord {
            plan: "p".into(),
            resource: resource.into(),
            resource_kind: ResourceKind::DbInstance,
            scheduled_time: scheduled.into(),
            source_snapshot_arn: "arn".into(),
            region: "us-west-2".into(),
            kms_key_id: "k".into(),
            snapshot_id: format!("lifeboat-p-{resource}"),
            snapshot_arn: None,
            status: CopyStatus::Queued,
            queued_at: scheduled.into(),
            started_at: None,
            completed_at: None,
            attempts: 0,
            next_attempt_at: next_attempt_at.map(str::to_owned),
            error: None,
            failed_at: None,
        }
    }

    #[test]
    fn names_and_times_are_predictable() {
        let scheduled = scheduled_minute(at("2026-11-23T02:00:41.5Z"));
        assert_eq!(time_text(scheduled), "2026-11-23T02:00:00Z");
        assert_eq!(
            snapshot_name("db-nightly", "Orders-1", scheduled),
            "lifeboat-db-nightly-orders-1-20261123-0200"
        );
        assert_eq!(times::format(at("2026-11-23T02:00:41.5Z")), "2026-11-23T02:00:41.500Z");
        assert_eq!(scheduled_minute(at("2026-11-23T01:59:59Z")), at("2026-11-23T01:59:00Z"));
    }

    #[test]
    fn retention_until_is_the_furthest_rule() {
        let scheduled = at("2026-11-23T02:00:00Z");
        for (extra, expected) in [
            ("retention = { keep_days = 2 }", Some("2026-11-25T02:00:00Z")),
            (
                "retention = { keep_days = 2, daily = 30, monthly = 12 }",
                Some("2027-11-30T02:00:00Z"),
            ),
            ("retention = { weekly = 8 }", Some("2027-01-18T02:00:00Z")),
            ("retention = { keep_last = 7 }", None),
        ] {
            let plan = plan(&format!("tags = {{ backup = \"daily\" }}\n{extra}"));
            assert_eq!(
                retention_until(&plan.retention, scheduled).map(time_text).as_deref(),
                expected,
                "{extra}"
            );
        }
        let tags = snapshot_tags(
            &plan("tags = { backup = \"daily\" }\nretention = { keep_days = 2 }"),
            "arn:x",
            scheduled,
        );
        let keys: Vec<&str> = tags.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                TAG_PLAN,
                TAG_CREATED_BY,
                TAG_SCHEDULED_TIME,
                TAG_RESOURCE,
                TAG_RETENTION_UNTIL
            ]
        );
    }

    #[test]
    fn tags_select_standalone_resources_with_every_tag() {
        let listed = [
            resource(
                ResourceKind::DbInstance,
                "a",
                &[("backup", "daily"), ("team", "x")],
                None,
            ),
            resource(ResourceKind::DbInstance, "b", &[("backup", "weekly")], None),
            resource(ResourceKind::DbInstance, "c", &[], None),
            resource(ResourceKind::Cluster, "d", &[("backup", "daily")], None),
            resource(ResourceKind::DbInstance, "d-1", &[("backup", "daily")], Some("d")),
        ];
        let ids = |plan: &Plan| {
            select_by_tags(plan, &listed)
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        };
        let daily = plan("tags = { backup = \"daily\" }\nretention = { daily = 7 }");
        assert_eq!(ids(&daily), ["a", "d"]);
        let both = plan("tags = { backup = \"daily\", team = \"x\" }\nretention = { daily = 7 }");
        assert_eq!(ids(&both), ["a"]);
        let none = plan("resources = [\"a\"]\nretention = { daily = 7 }");
        assert!(ids(&none).is_empty());
    }

    #[test]
    fn statuses_read_as_phases() {
        for (status, expected) in [
            ("available", Phase::Available),
            ("creating", Phase::Working),
            ("copying", Phase::Working),
            ("pending", Phase::Working),
            ("failed", Phase::Failed),
            ("incompatible-restore", Phase::Failed),
        ] {
            assert_eq!(phase(status), expected, "{status}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let minutes: Vec<i64> = [1, 2, 3, 4, 7, 8, 40]
            .iter()
            .map(|n| backoff(*n).as_secs() / 60)
            .collect();
        assert_eq!(minutes, [5, 10, 20, 40, 320, 360, 360]);
        assert_eq!(backoff(0).as_secs(), 300);
    }

    #[test]
    fn due_copies_fill_the_free_slots_oldest_first_and_skip_backoff() {
        let now = at("2026-11-23T03:00:00Z");
        let queue: Vec<CopyRecord> = (0..7)
            .map(|i| queued(&format!("r{i}"), &format!("2026-11-23T0{}:00:00Z", 2 - i % 3), None))
            .collect();
        let (start, wait) = due_copies(queue.clone(), 0, now);
        assert_eq!((start.len(), wait.len()), (5, 2));
        assert!(start.windows(2).all(|w| w[0].scheduled_time <= w[1].scheduled_time));
        assert!(wait
            .iter()
            .all(|w| start.iter().all(|s| s.scheduled_time <= w.scheduled_time)));
        let (start, wait) = due_copies(queue.clone(), 3, now);
        assert_eq!((start.len(), wait.len()), (2, 5));
        let (start, wait) = due_copies(queue, 5, now);
        assert_eq!((start.len(), wait.len()), (0, 7));

        let backing_off = vec![
            queued("a", "2026-11-23T01:00:00Z", Some("2026-11-23T03:05:00.000Z")),
            queued("b", "2026-11-23T02:00:00Z", Some("2026-11-23T02:59:00.000Z")),
        ];
        let (start, wait) = due_copies(backing_off, 0, now);
        assert_eq!(start.iter().map(|c| c.resource.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(wait.iter().map(|c| c.resource.as_str()).collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn database_sources_are_dumps_and_other_schemes_are_refused() {
        let plan = plan(
            "sources = [\"s3://reports/x/\", \"postgres://postgres@db:5432/shop\", \"sqlite:///var/app.db\"]\nretention = { daily = 7 }",
        );
        assert_eq!(
            plan.database_sources(),
            ["postgres://postgres@db:5432/shop", "sqlite:///var/app.db"]
        );
        let text = "[[plan]]\nname = \"p\"\nschedule = \"cron(0 2 * * ? *)\"\nrpo = \"26h\"\ntier = \"critical\"\nsources = [\"oracle://db/x\"]\nretention = { daily = 7 }";
        let errors = parse_plans(text, at("2026-11-23T00:00:00Z")).unwrap_err();
        assert!(
            errors.to_string().contains("nor a Secrets Manager secret ARN"),
            "{errors}"
        );
    }
}
