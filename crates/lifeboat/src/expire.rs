//! Expiring file backups: a retention policy applied to the catalog and the store.
//!
//! Two steps, like every change Lifeboat makes: [`plan_expiry`] reads the
//! catalog (records, holds, verifications) and asks [`crate::retention`] what
//! to keep, changing nothing; [`apply_expiry`] carries a plan out.
//!
//! Deleting a backup, in this order:
//! 1. its record is marked `deleted` (a conditional update from `completed` or
//!    `failed`), so a half-done run never leaves a `completed` record pointing
//!    at a missing manifest;
//! 2. its manifest object is deleted;
//! 3. the deletion is appended to the audit trail (`backup.deleted`).
//!
//! Chunk data (packs, index) is not touched: other backups may share it, and
//! garbage collection removes what no manifest references any more.

use std::collections::HashSet;

use jiff::Timestamp;
use serde::Serialize;

use crate::audit::{AuditEvent, AuditTrail};
use crate::catalog::{BackupRecord, BackupStatus, Catalog, CatalogError, VerificationStatus};
use crate::repo::Repository;
use crate::retention::{
    plan_retention, BackupInfo, BackupState, Doomed, Kept, RetentionError, RetentionPlan, RetentionPolicy,
};

#[derive(Debug, thiserror::Error)]
pub enum ExpiryError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Retention(#[from] RetentionError),
    #[error("backup {id} in catalog table {table} has an unreadable {field} ({value:?}): fix or remove the record before applying retention; nothing was deleted")]
    BadRecord {
        id: String,
        table: String,
        field: &'static str,
        value: String,
    },
}

/// A planned deletion that was not carried out, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotExpired {
    pub id: String,
    pub reason: String,
}

/// What [`apply_expiry`] did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpirySummary {
    pub at: Timestamp,
    /// Backups now `deleted`, with their manifests removed.
    pub deleted: Vec<Doomed>,
    /// Backups the plan kept.
    pub kept: Vec<Kept>,
    /// Planned deletions left alone because the world changed since the plan
    /// (a hold placed, the record changed) or the backup is in another store.
    pub skipped: Vec<NotExpired>,
    /// Deletions that failed part-way: the record may say `deleted` while the
    /// manifest is still there (garbage collection removes it), or the audit
    /// trail may lack the event.
    pub failed: Vec<NotExpired>,
}

fn parse_time(record: &BackupRecord, table: &str, field: &'static str, text: &str) -> Result<Timestamp, ExpiryError> {
    text.parse::<Timestamp>().map_err(|_| ExpiryError::BadRecord {
        id: record.id.clone(),
        table: table.to_owned(),
        field,
        value: text.to_owned(),
    })
}

/// Reads the backups of `source` (all sources when `None`) from the catalog,
/// with their holds and verifications, and plans `policy` at time `now`.
/// Backups already `deleted` are not part of the plan. A backup counts as
/// verified when any of its verifications passed (only the newest verified
/// backup of each source is looked for: older ones are not asked about, as
/// they change nothing); its `retentionUntil` (the
/// retention promised when it was taken) protects it like an Object Lock.
pub async fn plan_expiry(
    catalog: &Catalog,
    source: Option<&str>,
    policy: &RetentionPolicy,
    now: Timestamp,
) -> Result<RetentionPlan, ExpiryError> {
    policy.validate()?;
    let mut records = catalog.list(source).await?;
    // Newest first (the catalog lists so; made explicit for the verification look-up below).
    records.sort_by(|a, b| (&b.created_at, &b.id).cmp(&(&a.created_at, &a.id)));
    let holds: HashSet<String> = catalog
        .list_holds()
        .await?
        .into_iter()
        .map(|hold| hold.backup_id)
        .collect();
    let mut backups = Vec::with_capacity(records.len());
    let mut sources_verified: HashSet<String> = HashSet::new();
    for record in records {
        let status = match record.status {
            BackupStatus::Pending => BackupState::Pending,
            BackupStatus::InProgress => BackupState::InProgress,
            BackupStatus::Completed => BackupState::Completed,
            BackupStatus::Failed => BackupState::Failed,
            BackupStatus::Deleted => continue,
        };
        // Only the newest verified backup of each source matters to the plan:
        // newest first, stop asking once a source has one.
        let verified = status == BackupState::Completed
            && !sources_verified.contains(&record.source)
            && catalog
                .verifications(&record.id, None)
                .await?
                .iter()
                .any(|v| v.status == VerificationStatus::Passed);
        if verified {
            sources_verified.insert(record.source.clone());
        }
        let created_at = parse_time(&record, catalog.table(), "createdAt", &record.created_at)?;
        let locked_until = match &record.retention_until {
            Some(text) => Some(parse_time(&record, catalog.table(), "retentionUntil", text)?),
            None => None,
        };
        backups.push(BackupInfo {
            held: holds.contains(&record.id),
            id: record.id,
            created_at,
            status,
            backup_type: record.backup_type,
            parent: record.parent_backup,
            source: record.source,
            locked_until,
            verified,
        });
    }
    Ok(plan_retention(&backups, policy, now)?)
}

/// Carries out `plan` on `repo`'s store and the catalog, recording each
/// deletion in `audit` when given. Holds are read again first: a backup held
/// since the plan was made is skipped, as is one whose record changed or
/// whose manifest lives in another store. A failure part-way through one
/// backup is reported in [`ExpirySummary::failed`] and the run goes on.
pub async fn apply_expiry(
    repo: &Repository,
    catalog: &Catalog,
    audit: Option<&AuditTrail>,
    plan: &RetentionPlan,
) -> Result<ExpirySummary, ExpiryError> {
    let mut summary = ExpirySummary {
        at: plan.at,
        deleted: Vec::new(),
        kept: plan.keep.clone(),
        skipped: Vec::new(),
        failed: Vec::new(),
    };
    if plan.delete.is_empty() {
        return Ok(summary);
    }
    let held: HashSet<String> = catalog
        .list_holds()
        .await?
        .into_iter()
        .map(|hold| hold.backup_id)
        .collect();
    for doomed in &plan.delete {
        let skip = |reason: String| NotExpired {
            id: doomed.id.clone(),
            reason,
        };
        if held.contains(&doomed.id) {
            summary.skipped.push(skip("held since the plan was made".into()));
            continue;
        }
        let record = match catalog.get(&doomed.id).await {
            Ok(record) => record,
            Err(CatalogError::UnknownBackup { .. }) => {
                summary.skipped.push(skip("no longer in the catalog".into()));
                continue;
            }
            Err(other) => return Err(other.into()),
        };
        let manifest = repo.layout.manifest(&record.id);
        let here = repo.storage.describe(&manifest);
        if record.storage_location != here {
            summary.skipped.push(skip(format!(
                "its manifest is in another store ({}): apply retention with that --store",
                record.storage_location
            )));
            continue;
        }
        match catalog.mark_deleted(&record.id, &crate::times::now_text()).await {
            Ok(()) => {}
            Err(CatalogError::Conflict { .. }) => {
                summary.skipped.push(skip(format!(
                    "its record changed since the plan was made (was {}, is no longer completed or failed)",
                    record.status.as_str()
                )));
                continue;
            }
            Err(other) => return Err(other.into()),
        }
        if let Err(e) = repo.storage.delete(&manifest).await {
            summary.failed.push(skip(format!(
                "marked deleted, but its manifest {here} could not be deleted ({e}): garbage collection will remove it"
            )));
            continue;
        }
        if let Some(audit) = audit {
            let event = AuditEvent::new(
                "backup.deleted",
                &record.id,
                serde_json::json!({
                    "source": record.source,
                    "type": record.backup_type.as_str(),
                    "createdAt": record.created_at,
                    "manifest": here,
                    "reason": doomed.reason.describe(),
                    "policy": plan.policy,
                    "planAt": plan.at.to_string(),
                }),
            );
            if let Err(e) = audit.append(event).await {
                summary
                    .failed
                    .push(skip(format!("deleted, but the audit trail did not record it ({e})")));
            }
        }
        summary.deleted.push(doomed.clone());
    }
    Ok(summary)
}
