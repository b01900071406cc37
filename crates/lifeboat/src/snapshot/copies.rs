//! The copies of completed snapshots to the plans' copy regions: those in
//! flight checked, queued ones started (each region's KMS key checked
//! first) while the region has a free slot, throttled ones backed off.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::api::SnapshotApi;
use super::names::{
    backoff, due_copies, phase, retention_until, time_text, Phase, COPY_VANISHED_AFTER, CREATED_BY, TAG_CREATED_BY,
    TAG_PLAN, TAG_RESOURCE, TAG_RETENTION_UNTIL, TAG_SCHEDULED_TIME,
};
use super::records::{CopyRecord, CopyStatus, SnapshotCatalog};
use super::summary::{copy_label, SnapshotError, SnapshotFailure, SnapshotSummary};
use crate::plan::Plan;
use crate::rds::RdsError;
use crate::times;

pub(super) fn copy_failure(copy: &CopyRecord, error: &str) -> SnapshotFailure {
    SnapshotFailure {
        plan: copy.plan.clone(),
        resource: copy.resource.clone(),
        snapshot_id: Some(copy.snapshot_id.clone()),
        region: Some(copy.region.clone()),
        error: error.to_owned(),
    }
}

/// Marks a copy failed (unless another run changed it first).
pub(super) async fn fail_copy(
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
/// started while fewer than [`MAX_COPIES_IN_FLIGHT`](super::MAX_COPIES_IN_FLIGHT) are in flight.
pub(super) async fn advance_copies<R: SnapshotApi>(
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
    for copy in copying {
        if check_copying(rds, catalog, region, copy, now, summary).await? {
            in_flight += 1;
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
        throttled = start_copy(rds, catalog, plans, region, copy, now, summary).await?;
    }
    Ok(())
}

/// Checks one copy in flight: completes it when available, fails it when
/// RDS says so (or it vanished); `true` if it still counts as in flight.
async fn check_copying<R: SnapshotApi>(
    rds: &R,
    catalog: &SnapshotCatalog,
    region: &str,
    mut copy: CopyRecord,
    now: Timestamp,
    summary: &mut SnapshotSummary,
) -> Result<bool, SnapshotError> {
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
                Ok(false)
            }
            Phase::Working => {
                summary.copies_in_flight.push(copy_label(&copy));
                Ok(true)
            }
            Phase::Failed => {
                let error = format!(
                    "RDS reports the copy {} in {region} as {:?}",
                    copy.snapshot_id, state.status
                );
                fail_copy(catalog, copy, CopyStatus::Copying, error, now, summary).await?;
                Ok(false)
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
                Ok(false)
            } else {
                summary.copies_in_flight.push(copy_label(&copy));
                Ok(true)
            }
        }
        Err(error) => {
            // Unknown: count it, so that the limit holds.
            tracing::warn!(snapshot = %copy.snapshot_id, region, error = %error, "describing the copy failed; next run retries");
            summary.copies_in_flight.push(copy_label(&copy));
            Ok(true)
        }
    }
}

/// The tags of a copy: its source's, with the retention of its plan.
fn copy_tags(plans: &[Plan], copy: &CopyRecord) -> Vec<(String, String)> {
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
    tags
}

/// Claims a queued copy and asks RDS to start it; `true` if RDS throttled
/// it (the copy is queued again with a backoff, and so are the rest).
async fn start_copy<R: SnapshotApi>(
    rds: &R,
    catalog: &SnapshotCatalog,
    plans: &[Plan],
    region: &str,
    copy: CopyRecord,
    now: Timestamp,
    summary: &mut SnapshotSummary,
) -> Result<bool, SnapshotError> {
    let mut started = copy.clone();
    started.status = CopyStatus::Copying;
    started.attempts += 1;
    started.started_at = Some(times::format(now));
    started.next_attempt_at = None;
    if !catalog.update_copy(&started, CopyStatus::Queued).await? {
        return Ok(false);
    }
    let tags = copy_tags(plans, &copy);
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
            return Ok(true);
        }
        Err(error) => {
            let message = format!("copying snapshot {} to {region} failed: {error}", copy.snapshot_id);
            fail_copy(catalog, started, CopyStatus::Copying, message, now, summary).await?;
        }
    }
    Ok(false)
}
