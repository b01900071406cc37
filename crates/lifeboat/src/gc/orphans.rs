//! Orphan manifests (FORMAT.md, "Garbage collection"): a manifest in
//! `manifests/` whose backup record is absent, `failed` or `deleted`, and
//! that is older than the grace period, is deleted. Such a backup can never
//! become usable: a backup writes its record before its manifest, a
//! completion is a conditional update from `in_progress`, and retention marks
//! a record `deleted` before it deletes the manifest (a crash between the two
//! leaves this kind of orphan). Never a manifest of a `completed`,
//! `pending` or `in_progress` backup, nor of a held one, nor of the parent
//! of an unfinished backup, nor an object whose name is not a backup id.

use std::collections::{HashMap, HashSet};

use super::{parse_time, GcError, GcOptions};
use crate::catalog::leases::Lease;
use crate::catalog::{BackupStatus, Catalog, CatalogError};
use crate::ids::BackupId;
use crate::repo::{RepoError, Repository};

/// Whether a backup in this state may still need (or be) its manifest.
fn owns_manifest(status: BackupStatus) -> bool {
    matches!(
        status,
        BackupStatus::Completed | BackupStatus::Pending | BackupStatus::InProgress
    )
}

/// Deletes the orphan manifests (only lists them in a dry run); returns
/// their backup ids.
pub(super) async fn collect_orphan_manifests(
    repo: &Repository,
    catalog: &Catalog,
    options: &GcOptions,
    lease: Option<&Lease>,
) -> Result<Vec<String>, GcError> {
    let objects = repo
        .storage
        .list(&repo.layout.manifest(""))
        .await
        .map_err(RepoError::from)?;
    if objects.is_empty() {
        return Ok(Vec::new());
    }
    let records = catalog.list(None).await?;
    // A running incremental reads its parent's manifest: kept while it runs.
    let parents: HashSet<String> = records
        .iter()
        .filter(|r| matches!(r.status, BackupStatus::Pending | BackupStatus::InProgress))
        .filter_map(|r| r.parent_backup.clone())
        .collect();
    let listed: HashMap<String, BackupStatus> = records.into_iter().map(|r| (r.id, r.status)).collect();
    let held: HashSet<String> = catalog.list_holds().await?.into_iter().map(|h| h.backup_id).collect();
    let mut orphans = Vec::new();
    for object in objects {
        let Some(id) = object.key.rsplit('/').next().and_then(BackupId::parse) else {
            continue;
        };
        let id = id.as_str();
        // An unknown age is never old enough.
        let old = object
            .modified
            .as_deref()
            .and_then(parse_time)
            .is_some_and(|at| at + options.grace <= options.now);
        if !old || held.contains(id) || parents.contains(id) || listed.get(id).is_some_and(|s| owns_manifest(*s)) {
            continue;
        }
        // The listing is read through an index, eventually consistent:
        // confirm with a consistent read of the record itself.
        match catalog.get(id).await {
            Ok(record) if owns_manifest(record.status) => continue,
            Ok(_) | Err(CatalogError::UnknownBackup { .. }) => {}
            Err(other) => return Err(other.into()),
        }
        orphans.push((id.to_owned(), object.key));
    }
    if !options.dry_run && !orphans.is_empty() {
        if let Some(lease) = lease {
            lease.confirm().await?;
        }
        for (id, key) in &orphans {
            repo.storage.delete(key).await.map_err(RepoError::from)?;
            tracing::info!(backup = id, "garbage collection deleted an orphan manifest");
        }
    }
    Ok(orphans.into_iter().map(|(id, _)| id).collect())
}
