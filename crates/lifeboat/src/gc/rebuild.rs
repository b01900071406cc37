//! `lifeboat index rebuild`: index entries recovered from the packs' own
//! headers (FORMAT.md, "Index rebuild"), then what completed backups of the
//! store still miss.
//!
//! Every pack in `data/` that no index object lists is read whole, its
//! SHA-256 checked against its name and its sealed header opened; the
//! recovered packs go into one new index object, written in one PUT. A
//! crash before it leaves the store as it was, after it the index is the
//! union as always; a second run finds nothing left to recover. Packs are
//! never deleted or rewritten here.

use futures::StreamExt;
use serde::Serialize;

use super::references::{referenced_chunks, store_backups, MissingChunks};
use super::GcError;
use crate::catalog::leases::{lease_ttl, run_owner};
use crate::catalog::Catalog;
use crate::format::{IndexFile, IndexPack};
use crate::ids::PackId;
use crate::repo::{RepoError, Repository};
use crate::storage::StorageError;
use crate::times;

#[derive(Clone, Debug)]
pub struct RebuildOptions {
    /// Report what would be recovered; write nothing.
    pub dry_run: bool,
    /// Packs read at once.
    pub concurrency: usize,
}

/// A pack whose header could not be recovered.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DamagedPack {
    pub pack: String,
    pub error: String,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildReport {
    pub dry_run: bool,
    /// Packs in the store.
    pub packs: u64,
    /// Packs no index object listed.
    pub unindexed_packs: u64,
    /// Of those, packs whose headers were read and indexed.
    pub packs_recovered: u64,
    pub chunks_recovered: u64,
    /// The index object written (none in a dry run, or with nothing recovered).
    pub index: Option<String>,
    pub damaged_packs: Vec<DamagedPack>,
    /// Completed backups of the store checked against the index.
    pub backups_checked: u64,
    /// Completed backups that still reference chunks in no index (or, in a
    /// dry run, in no index once the recovered packs are indexed).
    pub damaged_backups: Vec<MissingChunks>,
}

impl RebuildReport {
    /// Whether every completed backup's chunks are indexed.
    pub fn complete(&self) -> bool {
        self.damaged_backups.is_empty()
    }
}

/// Indexes every pack no index lists from its header, then checks every
/// completed backup of the store against the index. A rebuild that writes
/// holds the store's GC lease, so no sweep deletes a pack the new index
/// object is about to name.
pub async fn rebuild_index(
    repo: &Repository,
    catalog: &Catalog,
    options: &RebuildOptions,
) -> Result<RebuildReport, GcError> {
    repo.check_catalog(catalog.table(), catalog.region()).await?;
    if options.dry_run {
        return rebuild(repo, catalog, options).await;
    }
    let owner = run_owner(&crate::audit::actor_from_env());
    let lease = catalog
        .acquire_gc_lease(&repo.config.store_id, &owner, times::now(), lease_ttl())
        .await?
        .with_heartbeat();
    let result = rebuild(repo, catalog, options).await;
    let released = lease.release().await;
    let report = result?;
    released?;
    Ok(report)
}

async fn rebuild(repo: &Repository, catalog: &Catalog, options: &RebuildOptions) -> Result<RebuildReport, GcError> {
    let mut index = repo.load_index().await?;
    let objects = repo
        .storage
        .list(&repo.layout.data_dir())
        .await
        .map_err(RepoError::from)?;
    let mut report = RebuildReport {
        dry_run: options.dry_run,
        packs: objects.len() as u64,
        ..RebuildReport::default()
    };
    let unindexed: Vec<PackId> = objects
        .iter()
        .filter_map(|o| o.key.rsplit('/').next().and_then(PackId::from_hex))
        .filter(|id| !index.pack_contents.contains_key(id))
        .collect();
    report.unindexed_packs = unindexed.len() as u64;
    let read: Vec<(PackId, Result<IndexPack, RepoError>)> = futures::stream::iter(unindexed)
        .map(|id| async move { (id, repo.index_pack_from_header(&id).await) })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    let mut recovered = Vec::new();
    for (id, result) in read {
        match result {
            Ok(pack) => recovered.push(pack),
            // Gone since the listing (swept, or never there): nothing to index.
            Err(RepoError::Storage(StorageError::NotFound(_))) => report.unindexed_packs -= 1,
            Err(damage @ (RepoError::Checksum { .. } | RepoError::Format(_))) => {
                report.damaged_packs.push(DamagedPack {
                    pack: repo.storage.describe(&repo.pack_key(&id)),
                    error: damage.to_string(),
                })
            }
            Err(other) => return Err(other.into()),
        }
    }
    recovered.sort_by_key(|p| p.id);
    report.packs_recovered = recovered.len() as u64;
    report.chunks_recovered = recovered.iter().map(|p| p.blobs.len() as u64).sum();
    if !recovered.is_empty() {
        if !options.dry_run {
            let id = repo.put_index(recovered.clone()).await?;
            report.index = Some(repo.storage.describe(&repo.layout.index(&id)));
        }
        index.add(IndexFile::new(recovered));
    }
    let records = store_backups(repo, catalog).await?;
    report.backups_checked = records
        .iter()
        .filter(|r| r.status == crate::catalog::BackupStatus::Completed)
        .count() as u64;
    report.damaged_backups = referenced_chunks(repo, catalog, &records, &index)
        .await?
        .missing_from(&index);
    tracing::info!(
        recovered = report.packs_recovered,
        damaged_packs = report.damaged_packs.len(),
        damaged_backups = report.damaged_backups.len(),
        dry_run = options.dry_run,
        "index rebuilt"
    );
    Ok(report)
}
