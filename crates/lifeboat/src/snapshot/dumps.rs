//! A plan's logical dumps: the database URLs among its `sources`, dumped on
//! its schedule into the store with `crate::dump`, once per scheduled run.
//!
//! Each (plan, database, scheduled time) is claimed in the catalog first
//! ([`DumpClaim`]), so a redelivered event dumps nothing twice; a claim
//! that failed, or whose heartbeat stopped (`catalog::claims`: the dump
//! refreshes it while it runs), is taken over by the next delivery; a claim
//! still running fails the delivery (a failure in the summary) so that it is
//! retried rather than reported done. The dump itself is a
//! backup record like `lifeboat backup dump` makes (its source the URL
//! without the password). Passwords do not belong in the plan file: a
//! source may be the ARN of a Secrets Manager secret holding the database's
//! URL or RDS-style credentials JSON (`crate::db::secret::resolve_database`), read
//! at each run, so a rotated password is picked up.

use std::sync::Arc;

use jiff::Timestamp;

use super::records::{DumpClaim, SnapshotStatus};
use super::{time_text, SnapshotError, SnapshotFailure, SnapshotSummary};
use crate::catalog::{Catalog, ClaimTarget, Heartbeat};
use crate::db::secret::resolve_database;
use crate::dump::{run_dump_backup, DumpBackupOptions};
use crate::plan::Plan;
use crate::repo::Repository;

/// Dumps each database source of `plan` for the run at `scheduled` (to the
/// minute), adding what happened to `summary`: `dumps` (backup ids),
/// `already_taken` (sources an earlier delivery dumped), `failures`.
/// Sources named by a secret's ARN are read with `secrets`.
pub async fn run_plan_dumps(
    repo: Arc<Repository>,
    catalog: &Catalog,
    secrets: &aws_sdk_secretsmanager::Client,
    plan: &Plan,
    scheduled: Timestamp,
    now: Timestamp,
    summary: &mut SnapshotSummary,
) -> Result<(), SnapshotError> {
    let claims = catalog.snapshots();
    let scheduled = super::scheduled_minute(scheduled);
    for source in plan.database_sources() {
        let url = match resolve_database(source, secrets).await {
            Ok(url) => url,
            Err(error) => {
                summary.failures.push(SnapshotFailure {
                    plan: plan.name.clone(),
                    resource: error_source(source),
                    snapshot_id: None,
                    region: None,
                    error: error.to_string(),
                });
                continue;
            }
        };
        let mut claim = DumpClaim {
            plan: plan.name.clone(),
            source: url.to_string(),
            scheduled_time: time_text(scheduled),
            status: SnapshotStatus::InProgress,
            backup_id: None,
            error: None,
            created_at: crate::times::format(now),
            heartbeat_at: Some(crate::times::now_text()),
            holder: Some(format!("{:016x}", rand::random::<u64>())),
        };
        match claims.claim_dump(&claim).await? {
            None => {}
            Some(existing) if existing.status == SnapshotStatus::InProgress => {
                // Still running elsewhere: fail this delivery (retryably) rather than report the dump taken.
                let heartbeat = existing.heartbeat_at.unwrap_or(existing.created_at);
                tracing::warn!(plan = %plan.name, source = %claim.source, heartbeat_at = %heartbeat, "dump still in progress by another delivery");
                summary.failures.push(SnapshotFailure {
                    plan: plan.name.clone(),
                    resource: claim.source,
                    snapshot_id: None,
                    region: None,
                    error: format!("the dump for this scheduled run is still in progress in another delivery (heartbeat {heartbeat}); it is taken over if its heartbeat stops"),
                });
                continue;
            }
            Some(existing) => {
                tracing::info!(plan = %plan.name, source = %claim.source, status = existing.status.as_str(), "dump already taken for this scheduled run");
                summary.already_taken.push(claim.source);
                continue;
            }
        }
        let options = DumpBackupOptions {
            url,
            retention_days: None,
        };
        let heartbeat = Heartbeat::start(catalog, vec![ClaimTarget::Dump(claim.pk())]);
        let dumped = run_dump_backup(repo.clone(), catalog, &options).await;
        drop(heartbeat);
        match dumped {
            Ok(backup) => {
                tracing::info!(plan = %plan.name, source = %claim.source, backup_id = %backup.backup_id, bytes_stored = backup.bytes_stored, "dump completed");
                claim.status = SnapshotStatus::Completed;
                claim.backup_id = Some(backup.backup_id.clone());
                claims.finish_dump(&claim).await?;
                summary.dumps.push(backup.backup_id);
            }
            Err(error) => {
                tracing::warn!(plan = %plan.name, source = %claim.source, error = %error, "dump failed");
                claim.status = SnapshotStatus::Failed;
                claim.error = Some(error.to_string());
                claims.finish_dump(&claim).await?;
                summary.failures.push(SnapshotFailure {
                    plan: plan.name.clone(),
                    resource: claim.source,
                    snapshot_id: None,
                    region: None,
                    error: error.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// A source that did not parse, named without anything after its `@`'s user part.
fn error_source(source: &str) -> String {
    match (source.find("://"), source.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…@{}", &source[..scheme], &source[at + 1..]),
        _ => source.to_owned(),
    }
}
