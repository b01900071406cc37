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
mod dumps;
pub mod error;
pub mod observe;
pub mod plans;
pub mod records;
pub mod restore_tests;
pub mod retention;
pub mod trial_restore;
pub mod verifications;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

pub use crate::rds::{DbResource, RdsError, ResourceKind, SnapshotState};
pub use api::SnapshotApi;
pub use checks::{ProblemKind, SnapshotProblem};
pub use dumps::run_plan_dumps;
pub use error::SnapshotOpsError;
pub use plans::{load_plans, plan_source, select_plans, PlanLoadError, PlanSource};
pub use records::{
    Claim, CopyRecord, CopyStatus, DumpClaim, OpenWork, SnapshotCatalog, SnapshotHistory, SnapshotRecord,
    SnapshotStatus,
};
pub use verifications::{SnapshotChecks, SnapshotVerification};

use crate::catalog::CatalogError;
use crate::plan::{Plan, Resource};
use crate::retention::RetentionPolicy;
use crate::times;

/// RDS allows this many cross-region snapshot copies in flight per
/// destination region (per account).
pub const MAX_COPIES_IN_FLIGHT: usize = 5;
/// The value of the `lifeboat:created-by` tag.
pub const CREATED_BY: &str = "lifeboat-snapshot";
pub const TAG_PLAN: &str = "lifeboat:plan";
pub const TAG_CREATED_BY: &str = "lifeboat:created-by";
pub const TAG_SCHEDULED_TIME: &str = "lifeboat:scheduled-time";
pub const TAG_RESOURCE: &str = "lifeboat:resource";
pub const TAG_RETENTION_UNTIL: &str = "lifeboat:retention-until";
/// The first wait after a throttled copy request; doubled per attempt.
pub const BACKOFF_FIRST: SignedDuration = SignedDuration::from_mins(5);
/// The longest wait between copy requests.
pub const BACKOFF_MAX: SignedDuration = SignedDuration::from_hours(6);
/// A copy RDS accepted but does not show in its region after this long failed.
pub const COPY_VANISHED_AFTER: SignedDuration = SignedDuration::from_hours(1);

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("listing the DB instances and clusters of {region} failed ({error}): the role needs rds:DescribeDBInstances and rds:DescribeDBClusters there")]
    List { region: String, error: RdsError },
    #[error("no plan named {name:?} in the plan file (it has: {known}): fix the schedule's event or the plan file")]
    UnknownPlan { name: String, known: String },
}

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
// Pure parts: names, times, selection, tags, the copy queue
// ---------------------------------------------------------------------------

/// A scheduled event's time, to the minute (EventBridge's schedules have
/// minute resolution; seconds are delivery delay).
pub fn scheduled_minute(time: Timestamp) -> Timestamp {
    let seconds = time.as_second().div_euclid(60) * 60;
    Timestamp::from_second(seconds).unwrap_or(time)
}

/// A time as the records write it: RFC 3339, UTC, seconds.
pub fn time_text(time: Timestamp) -> String {
    time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The snapshot's identifier, in its region and in every copy region:
/// `lifeboat-PLAN-RESOURCE-YYYYMMDD-HHMM` (UTC), lower case. Plan names and
/// RDS identifiers have no double or trailing hyphens, so neither has this.
pub fn snapshot_name(plan: &str, resource_id: &str, scheduled: Timestamp) -> String {
    format!(
        "lifeboat-{plan}-{}-{}",
        resource_id.to_ascii_lowercase(),
        scheduled.strftime("%Y%m%d-%H%M")
    )
}

/// The longest a plan's retention rules could keep a snapshot taken at
/// `scheduled`: the furthest of `keep_days`, `daily` days, `weekly` weeks,
/// `monthly` months (31 days) and `yearly` years (366 days). `None` when
/// only `keep_last` limits it (no time limit).
pub fn retention_until(policy: &RetentionPolicy, scheduled: Timestamp) -> Option<Timestamp> {
    let days = [
        policy.keep_days.map(i64::from),
        policy.daily.map(i64::from),
        policy.weekly.map(|w| i64::from(w) * 7),
        policy.monthly.map(|m| i64::from(m) * 31),
        policy.yearly.map(|y| i64::from(y) * 366),
    ]
    .into_iter()
    .flatten()
    .max()?;
    scheduled.checked_add(SignedDuration::from_hours(days * 24)).ok()
}

/// The tags a plan's snapshot (and its copies) carry.
pub fn snapshot_tags(plan: &Plan, resource: &str, scheduled: Timestamp) -> Vec<(String, String)> {
    let mut tags = vec![
        (TAG_PLAN.to_owned(), plan.name.clone()),
        (TAG_CREATED_BY.to_owned(), CREATED_BY.to_owned()),
        (TAG_SCHEDULED_TIME.to_owned(), time_text(scheduled)),
        (TAG_RESOURCE.to_owned(), resource.to_owned()),
    ];
    if let Some(until) = retention_until(&plan.retention, scheduled) {
        tags.push((TAG_RETENTION_UNTIL.to_owned(), time_text(until)));
    }
    tags
}

/// The resources among `listed` that a plan's tags select: every plan tag
/// present with its value. Instances in an Aurora cluster are left to the
/// cluster's snapshot. A plan without tags selects nothing by tags.
pub fn select_by_tags(plan: &Plan, listed: &[DbResource]) -> Vec<DbResource> {
    if plan.tags.is_empty() {
        return Vec::new();
    }
    listed
        .iter()
        .filter(|r| r.cluster.is_none())
        .filter(|r| plan.tags.iter().all(|(k, v)| r.tags.get(k) == Some(v)))
        .cloned()
        .collect()
}

/// Where RDS stands with a snapshot or copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Usable.
    Available,
    /// Still being made or copied.
    Working,
    /// Ended without a usable snapshot.
    Failed,
}

/// RDS's snapshot statuses, read.
pub fn phase(status: &str) -> Phase {
    match status {
        "available" => Phase::Available,
        "creating" | "pending" | "copying" | "backing-up" | "modifying" | "" => Phase::Working,
        _ => Phase::Failed,
    }
}

/// How long to wait before asking again after the `attempts`-th throttled
/// copy request: 5 minutes, doubling, at most 6 hours.
pub fn backoff(attempts: u32) -> SignedDuration {
    let doublings = attempts.saturating_sub(1).min(16);
    let delay = BACKOFF_FIRST.as_secs().saturating_mul(1i64 << doublings);
    SignedDuration::from_secs(delay.min(BACKOFF_MAX.as_secs()))
}

/// Which queued copies of one destination region may start now, given how
/// many are in flight: those not backing off, oldest scheduled time first,
/// up to the free slots. Returns (start, keep waiting).
pub fn due_copies(queued: Vec<CopyRecord>, in_flight: usize, now: Timestamp) -> (Vec<CopyRecord>, Vec<CopyRecord>) {
    let now_text = times::format(now);
    let (mut due, mut waiting): (Vec<_>, Vec<_>) = queued
        .into_iter()
        .partition(|c| c.next_attempt_at.as_deref().is_none_or(|at| at <= now_text.as_str()));
    due.sort_by(|a, b| {
        (&a.scheduled_time, &a.resource, &a.queued_at).cmp(&(&b.scheduled_time, &b.resource, &b.queued_at))
    });
    let slots = MAX_COPIES_IN_FLIGHT.saturating_sub(in_flight).min(due.len());
    waiting.extend(due.split_off(slots));
    (due, waiting)
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

/// One failure of a run: the resource, the snapshot, the region, the error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotFailure {
    pub plan: String,
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// Where it failed; none for a database dump.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub error: String,
}

/// What one run did. Snapshots by identifier; copies as `ID@REGION`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotSummary {
    pub plans: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_time: Option<String>,
    /// Resources the plan selected (ARNs).
    pub selected: Vec<String>,
    /// Snapshots this run started.
    pub created: Vec<String>,
    /// Snapshots an earlier delivery of the same scheduled run started.
    pub already_taken: Vec<String>,
    /// Snapshots RDS still reports as being created.
    pub creating: Vec<String>,
    /// Snapshots that became available (completed) in this run.
    pub completed: Vec<String>,
    pub copies_started: Vec<String>,
    pub copies_in_flight: Vec<String>,
    /// Copies waiting for a free slot in their region, or backing off.
    pub copies_queued: Vec<String>,
    pub copies_completed: Vec<String>,
    /// Backups (ids) of the plan's databases dumped in this run ([`run_plan_dumps`]).
    pub dumps: Vec<String>,
    pub failures: Vec<SnapshotFailure>,
}

impl SnapshotSummary {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

fn copy_label(copy: &CopyRecord) -> String {
    format!("{}@{}", copy.snapshot_id, copy.region)
}

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

fn copy_failure(copy: &CopyRecord, error: &str) -> SnapshotFailure {
    SnapshotFailure {
        plan: copy.plan.clone(),
        resource: copy.resource.clone(),
        snapshot_id: Some(copy.snapshot_id.clone()),
        region: Some(copy.region.clone()),
        error: error.to_owned(),
    }
}

/// Marks a copy failed (unless another run changed it first).
async fn fail_copy(
    catalog: &SnapshotCatalog,
    mut copy: CopyRecord,
    from: CopyStatus,
    error: String,
    now: Timestamp,
    summary: &mut SnapshotSummary,
) -> Result<(), SnapshotError> {
    tracing::warn!(snapshot = %copy.snapshot_id, region = %copy.region, error = %error, "copy failed");
    copy.status = CopyStatus::Failed;
    copy.error = Some(error.clone());
    copy.failed_at = Some(times::format(now));
    copy.next_attempt_at = None;
    if catalog.update_copy(&copy, from).await? {
        summary.failures.push(copy_failure(&copy, &error));
    }
    Ok(())
}

/// One destination region's copies: finished ones completed, queued ones
/// started while fewer than [`MAX_COPIES_IN_FLIGHT`] are in flight.
async fn advance_copies<R: SnapshotApi>(
    rds: &R,
    catalog: &SnapshotCatalog,
    plans: &[Plan],
    region: &str,
    copies: Vec<CopyRecord>,
    now: Timestamp,
    summary: &mut SnapshotSummary,
) -> Result<(), SnapshotError> {
    let (copying, queued): (Vec<_>, Vec<_>) = copies.into_iter().partition(|c| c.status == CopyStatus::Copying);
    let mut in_flight = 0;
    for mut copy in copying {
        let state = rds
            .describe_snapshot(region, copy.resource_kind, &copy.snapshot_id)
            .await;
        match state {
            Ok(Some(state)) => match phase(&state.status) {
                Phase::Available => {
                    copy.status = CopyStatus::Completed;
                    copy.completed_at = Some(times::format(now));
                    copy.snapshot_arn = state.arn.or(copy.snapshot_arn);
                    copy.error = None;
                    if catalog.update_copy(&copy, CopyStatus::Copying).await? {
                        tracing::info!(snapshot = %copy.snapshot_id, region, "copy completed");
                        summary.copies_completed.push(copy_label(&copy));
                    }
                }
                Phase::Working => {
                    in_flight += 1;
                    summary.copies_in_flight.push(copy_label(&copy));
                }
                Phase::Failed => {
                    let error = format!(
                        "RDS reports the copy {} in {region} as {:?}",
                        copy.snapshot_id, state.status
                    );
                    fail_copy(catalog, copy, CopyStatus::Copying, error, now, summary).await?;
                }
            },
            Ok(None) => {
                let started = copy.started_at.as_deref().and_then(|t| t.parse::<Timestamp>().ok());
                let vanished = started.is_some_and(|at| now.duration_since(at) > COPY_VANISHED_AFTER);
                if vanished {
                    let error = format!(
                        "the copy {} does not exist in {region} although RDS accepted it: it was deleted, or the copy failed",
                        copy.snapshot_id
                    );
                    fail_copy(catalog, copy, CopyStatus::Copying, error, now, summary).await?;
                } else {
                    in_flight += 1;
                    summary.copies_in_flight.push(copy_label(&copy));
                }
            }
            Err(error) => {
                // Unknown: count it, so that the limit holds.
                tracing::warn!(snapshot = %copy.snapshot_id, region, error = %error, "describing the copy failed; next run retries");
                in_flight += 1;
                summary.copies_in_flight.push(copy_label(&copy));
            }
        }
    }
    let (start, waiting) = due_copies(queued, in_flight, now);
    summary.copies_queued.extend(waiting.iter().map(copy_label));
    let mut keys: BTreeMap<String, Result<(), RdsError>> = BTreeMap::new();
    let mut throttled = false;
    for copy in start {
        if throttled {
            summary.copies_queued.push(copy_label(&copy));
            continue;
        }
        if !keys.contains_key(&copy.kms_key_id) {
            let checked = rds.check_key(region, &copy.kms_key_id).await;
            keys.insert(copy.kms_key_id.clone(), checked);
        }
        if let Some(Err(error)) = keys.get(&copy.kms_key_id) {
            let error = format!(
                "the copy region's KMS key {} cannot be used: {error}; fix copy_regions in the plan",
                copy.kms_key_id
            );
            fail_copy(catalog, copy, CopyStatus::Queued, error, now, summary).await?;
            continue;
        }
        let mut started = copy.clone();
        started.status = CopyStatus::Copying;
        started.attempts += 1;
        started.started_at = Some(times::format(now));
        started.next_attempt_at = None;
        if !catalog.update_copy(&started, CopyStatus::Queued).await? {
            continue;
        }
        let mut tags = vec![
            (TAG_PLAN.to_owned(), copy.plan.clone()),
            (TAG_CREATED_BY.to_owned(), CREATED_BY.to_owned()),
            (TAG_SCHEDULED_TIME.to_owned(), copy.scheduled_time.clone()),
            (TAG_RESOURCE.to_owned(), copy.resource.clone()),
        ];
        // The copy is kept as long as its source: its plan's retention.
        let until = plans
            .iter()
            .find(|p| p.name == copy.plan)
            .zip(copy.scheduled_time.parse::<Timestamp>().ok())
            .and_then(|(plan, scheduled)| retention_until(&plan.retention, scheduled));
        if let Some(until) = until {
            tags.push((TAG_RETENTION_UNTIL.to_owned(), time_text(until)));
        }
        let result = rds
            .copy_snapshot(
                region,
                copy.resource_kind,
                &copy.source_snapshot_arn,
                &copy.snapshot_id,
                &copy.kms_key_id,
                &tags,
            )
            .await;
        match result {
            Ok(state) => {
                tracing::info!(snapshot = %copy.snapshot_id, region, kms_key = %copy.kms_key_id, "copy started");
                started.snapshot_arn = state.arn;
                started.error = None;
                catalog.update_copy(&started, CopyStatus::Copying).await?;
                summary.copies_started.push(copy_label(&copy));
            }
            Err(error) if error.is_already_exists() => {
                tracing::info!(snapshot = %copy.snapshot_id, region, "copy exists from an earlier attempt");
                summary.copies_started.push(copy_label(&copy));
            }
            Err(error) if error.is_retryable() => {
                let delay = backoff(started.attempts);
                let next = now.checked_add(delay).unwrap_or(now);
                tracing::warn!(snapshot = %copy.snapshot_id, region, error = %error, attempts = started.attempts, retry_after = %time_text(next), "copy throttled; queued again");
                let mut again = started.clone();
                again.status = CopyStatus::Queued;
                again.started_at = None;
                again.next_attempt_at = Some(times::format(next));
                again.error = Some(error.to_string());
                catalog.update_copy(&again, CopyStatus::Copying).await?;
                summary.copies_queued.push(copy_label(&copy));
                throttled = true;
            }
            Err(error) => {
                let message = format!("copying snapshot {} to {region} failed: {error}", copy.snapshot_id);
                fail_copy(catalog, started, CopyStatus::Copying, message, now, summary).await?;
            }
        }
    }
    Ok(())
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

    #[test]
    fn plan_sources_parse() {
        assert_eq!(
            PlanSource::parse("s3://cfg/lifeboat/plans.toml").unwrap(),
            PlanSource::S3 {
                bucket: "cfg".into(),
                key: "lifeboat/plans.toml".into()
            }
        );
        assert_eq!(
            PlanSource::parse("/var/task/plans.toml").unwrap(),
            PlanSource::Path("/var/task/plans.toml".into())
        );
        for bad in ["s3://bucket", "s3:///key", "", "https://x/plans.toml"] {
            assert!(PlanSource::parse(bad).is_err(), "{bad}");
        }
    }
}
