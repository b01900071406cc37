//! Garbage collection: removing chunk data no completed backup references,
//! safely while backups run. FORMAT.md, "Garbage collection", is the protocol:
//!
//! 1. **Mark.** Chunks that no completed backup's manifest references, in
//!    packs that are mostly such garbage (or packs no index lists), go into
//!    a candidate list `gc/ID`. Backups that start after the list exists do
//!    not deduplicate against its chunks, nor against chunks stored only in
//!    the packs it names (`Index::dedup_chunks`).
//! 2. **Sweep**, in a later run once the list is older than the grace period
//!    and every backup created before the list (plus a clock margin) has
//!    finished: references are recomputed from all completed manifests;
//!    candidates referenced meanwhile are rescued (copied into new packs if
//!    their pack goes); a consolidated index is written, the old index
//!    objects deleted, then the packs, then the list.
//!
//! A backup that started before the mark and is still running blocks the
//! sweep (it may have deduplicated against a candidate); one unfinished for
//! longer than `assume_dead_after` is marked failed, so it can never complete
//! afterwards (its completion is a conditional update from `in_progress`).

use std::collections::HashSet;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::catalog::{BackupRecord, BackupStatus, Catalog, CatalogError};
use crate::format::{BlobLocation, CandidateList, IndexPack, PackBuilder, PackHeaderEntry};
use crate::ids::{ChunkId, PackId};
use crate::repo::{Index, RepoError, Repository};
use crate::times;

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("backup {id} is completed but its manifest cannot be read ({error}): garbage collection stopped without deleting anything; run `lifeboat verify {id}`")]
    UnreadableManifest { id: String, error: RepoError },
    #[error("pack {pack} is damaged: chunk {chunk} lies outside its {size} bytes; garbage collection stopped before deleting anything of this list")]
    DamagedPack { pack: String, chunk: ChunkId, size: usize },
}

#[derive(Clone, Debug)]
pub struct GcOptions {
    /// "Now", a parameter so runs are reproducible.
    pub now: Timestamp,
    /// A candidate list is swept only once it is this old.
    pub grace: SignedDuration,
    /// Allowance for clocks between writers and the duration of a PUT.
    pub clock_margin: SignedDuration,
    /// An unfinished backup older than this is treated as dead and marked failed.
    pub assume_dead_after: SignedDuration,
    /// A pack whose bytes are at least this share garbage is rewritten.
    pub rewrite_threshold: f64,
    /// Report what would happen; change nothing.
    pub dry_run: bool,
}

impl GcOptions {
    pub fn new(now: Timestamp) -> Self {
        Self {
            now,
            grace: SignedDuration::from_hours(1),
            clock_margin: SignedDuration::from_mins(5),
            assume_dead_after: SignedDuration::from_hours(24),
            rewrite_threshold: 0.5,
            dry_run: false,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MarkReport {
    /// The candidate list written (none in a dry run).
    pub list: Option<String>,
    pub chunks: u64,
    pub packs_to_delete: u64,
    pub packs_to_rewrite: u64,
    pub unindexed_packs: u64,
    pub garbage_bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub list: String,
    pub packs_deleted: u64,
    pub packs_rewritten: u64,
    pub packs_written: u64,
    pub chunks_removed: u64,
    pub chunks_rescued: u64,
    pub bytes_freed: u64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Waiting {
    pub list: String,
    pub reason: String,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    pub dry_run: bool,
    pub swept: Vec<SweepReport>,
    pub waiting: Vec<Waiting>,
    pub abandoned_backups: Vec<String>,
    pub marked: Option<MarkReport>,
}

fn parse_time(text: &str) -> Option<Timestamp> {
    times::parse(text).ok()
}

/// The backups whose manifests live in this store.
async fn store_backups(repo: &Repository, catalog: &Catalog) -> Result<Vec<BackupRecord>, GcError> {
    let manifests = repo.storage.describe(&repo.layout.manifest(""));
    Ok(catalog
        .list(None)
        .await?
        .into_iter()
        .filter(|r| r.storage_location.starts_with(&manifests))
        .collect())
}

/// Every chunk a completed backup of this store references. Any manifest
/// that cannot be read stops garbage collection: deciding on partial
/// knowledge could delete live data.
async fn referenced_chunks(repo: &Repository, records: &[BackupRecord]) -> Result<HashSet<ChunkId>, GcError> {
    let mut referenced = HashSet::new();
    for record in records.iter().filter(|r| r.status == BackupStatus::Completed) {
        let manifest = repo
            .get_manifest(&record.id, record.checksum.as_deref())
            .await
            .map_err(|error| GcError::UnreadableManifest {
                id: record.id.clone(),
                error,
            })?;
        for entry in manifest.entries {
            referenced.extend(entry.chunks);
        }
    }
    Ok(referenced)
}

/// Whether `blob` of `pack` is the copy restores use and is referenced.
fn is_live(index: &Index, referenced: &HashSet<ChunkId>, pack: &PackId, blob: &BlobLocation) -> bool {
    referenced.contains(&blob.id) && index.chunks.get(&blob.id).is_some_and(|l| l.pack == *pack)
}

/// Runs one garbage collection: sweeps the candidate lists that are due,
/// then marks new garbage.
pub async fn collect_garbage(repo: &Repository, catalog: &Catalog, options: &GcOptions) -> Result<GcReport, GcError> {
    let mut report = GcReport {
        dry_run: options.dry_run,
        ..GcReport::default()
    };
    // The index (with the candidate lists) before the records: a backup that
    // began before a list existed is then among the records read.
    let index = repo.load_index().await?;
    let mut records = store_backups(repo, catalog).await?;
    for (key, list) in &index.candidate_lists {
        let created = parse_time(&list.created_at).unwrap_or(options.now);
        if created + options.grace > options.now {
            report.waiting.push(Waiting {
                list: key.clone(),
                reason: format!(
                    "marked at {}, sweepable after the grace period ({})",
                    list.created_at,
                    times::duration_text(options.grace)
                ),
            });
            continue;
        }
        let cutoff = created + options.clock_margin;
        let mut blocked = None;
        for record in records
            .iter()
            .filter(|r| matches!(r.status, BackupStatus::Pending | BackupStatus::InProgress))
        {
            let started = parse_time(&record.created_at).unwrap_or(options.now);
            if started >= cutoff {
                continue;
            }
            if started + options.assume_dead_after <= options.now {
                if !options.dry_run {
                    let message = format!(
                        "abandoned: unfinished for more than {}; garbage collection marked it failed",
                        times::duration_text(options.assume_dead_after)
                    );
                    match catalog.fail(&record.id, &message).await {
                        Ok(()) | Err(CatalogError::Conflict { .. }) => {}
                        Err(other) => return Err(other.into()),
                    }
                }
                report.abandoned_backups.push(record.id.clone());
            } else {
                blocked = Some(record.id.clone());
                break;
            }
        }
        if let Some(id) = blocked {
            report.waiting.push(Waiting {
                list: key.clone(),
                reason: format!("backup {id} started before the mark and is still running"),
            });
            continue;
        }
        if !options.dry_run {
            // Re-read: backups may have completed (or been failed just now).
            records = store_backups(repo, catalog).await?;
        }
        let referenced = referenced_chunks(repo, &records).await?;
        report
            .swept
            .push(sweep(repo, &index, key, list, &referenced, options).await?);
        if !options.dry_run {
            // One list per run: the index changed under the next one.
            return Ok(report);
        }
    }
    let referenced = referenced_chunks(repo, &records).await?;
    report.marked = mark(repo, &index, &referenced, options).await?;
    Ok(report)
}

async fn sweep(
    repo: &Repository,
    index: &Index,
    key: &str,
    list: &CandidateList,
    referenced: &HashSet<ChunkId>,
    options: &GcOptions,
) -> Result<SweepReport, GcError> {
    let mut report = SweepReport {
        list: key.to_owned(),
        ..SweepReport::default()
    };
    let mut retired: Vec<PackId> = Vec::new();
    let mut rescue: Vec<(PackId, Vec<BlobLocation>)> = Vec::new();
    let listed: HashSet<&PackId> = list.packs.iter().collect();
    for pack in &list.packs {
        let Some(blobs) = index.pack_contents.get(pack) else {
            // Not in any index: an interrupted backup's pack. Delete it.
            report.packs_deleted += 1;
            retired.push(*pack);
            continue;
        };
        let live: Vec<BlobLocation> = blobs
            .iter()
            .filter(|b| is_live(index, referenced, pack, b))
            .copied()
            .collect();
        let candidates_rescued = live.iter().filter(|b| list.chunks.contains(&b.id)).count() as u64;
        report.chunks_rescued += candidates_rescued;
        report.chunks_removed += (blobs.len() - live.len()) as u64;
        let live_bytes: u64 = live.iter().map(|b| u64::from(b.length)).sum();
        report.bytes_freed += index
            .packs
            .get(pack)
            .copied()
            .unwrap_or_default()
            .saturating_sub(live_bytes);
        if live.is_empty() {
            report.packs_deleted += 1;
        } else {
            report.packs_rewritten += 1;
            rescue.push((*pack, live));
        }
        retired.push(*pack);
    }
    if options.dry_run {
        return Ok(report);
    }
    // Copy live blobs of rewritten packs into new packs (sealed blobs move as
    // they are: their AAD binds them to their chunk id, not to a pack).
    let mut new_packs: Vec<IndexPack> = Vec::new();
    let mut builder = PackBuilder::new();
    for (pack, live) in &rescue {
        let bytes = repo
            .get_pack_of_size(pack, index.packs.get(pack).copied())
            .await
            .map_err(RepoError::from)?;
        for blob in live {
            let (start, end) = (blob.offset as usize, blob.offset as usize + blob.length as usize);
            let sealed = bytes.get(start..end).ok_or_else(|| GcError::DamagedPack {
                pack: repo.pack_key(pack),
                chunk: blob.id,
                size: bytes.len(),
            })?;
            let entry = PackHeaderEntry {
                id: blob.id,
                length: blob.length,
                raw_length: blob.raw_length,
            };
            builder.push_sealed(entry, sealed);
            if builder.is_full() {
                let full = std::mem::take(&mut builder)
                    .finish(&repo.keys)
                    .map_err(RepoError::from)?;
                new_packs.push(repo.put_pack(full).await?);
            }
        }
    }
    if !builder.is_empty() {
        new_packs.push(
            repo.put_pack(builder.finish(&repo.keys).map_err(RepoError::from)?)
                .await?,
        );
    }
    report.packs_written = new_packs.len() as u64;
    // One index for everything that stays, written before anything goes.
    let mut packs: Vec<IndexPack> = index
        .pack_contents
        .iter()
        .filter(|(id, _)| !listed.contains(id))
        .map(|(id, blobs)| IndexPack {
            id: *id,
            size: index.packs.get(id).copied().unwrap_or_default(),
            blobs: blobs.clone(),
        })
        .collect();
    packs.extend(new_packs);
    packs.sort_by_key(|p| p.id);
    let consolidated = repo.put_index(packs).await?;
    let consolidated_key = repo.layout.index(&consolidated);
    for old in index.index_keys.iter().filter(|k| **k != consolidated_key) {
        repo.storage.delete(old).await.map_err(RepoError::from)?;
    }
    for pack in &retired {
        repo.storage
            .delete(&repo.pack_key(pack))
            .await
            .map_err(RepoError::from)?;
    }
    repo.storage.delete(key).await.map_err(RepoError::from)?;
    tracing::info!(
        list = key,
        packs_deleted = report.packs_deleted,
        packs_rewritten = report.packs_rewritten,
        chunks_rescued = report.chunks_rescued,
        bytes_freed = report.bytes_freed,
        "garbage collection swept"
    );
    Ok(report)
}

async fn mark(
    repo: &Repository,
    index: &Index,
    referenced: &HashSet<ChunkId>,
    options: &GcOptions,
) -> Result<Option<MarkReport>, GcError> {
    let mut report = MarkReport::default();
    let mut chunks = Vec::new();
    let mut packs = Vec::new();
    for (pack, blobs) in &index.pack_contents {
        if index.candidate_packs.contains(pack) {
            continue; // already on a pending list
        }
        let size = index.packs.get(pack).copied().unwrap_or_default();
        let garbage: Vec<&BlobLocation> = blobs.iter().filter(|b| !is_live(index, referenced, pack, b)).collect();
        let garbage_bytes: u64 = garbage.iter().map(|b| u64::from(b.length)).sum();
        if garbage.is_empty() || (garbage_bytes as f64) < options.rewrite_threshold * size.max(1) as f64 {
            continue;
        }
        if garbage.len() == blobs.len() {
            report.packs_to_delete += 1;
        } else {
            report.packs_to_rewrite += 1;
        }
        report.garbage_bytes += garbage_bytes;
        packs.push(*pack);
        // Only copies restores would use need excluding from dedup.
        chunks.extend(
            garbage
                .iter()
                .filter(|b| index.chunks.get(&b.id).is_some_and(|l| l.pack == *pack))
                .map(|b| b.id),
        );
    }
    // Packs no index lists: left by interrupted backups (or being written by
    // a running one, which the sweep waits for).
    let listed: HashSet<String> = index.pack_contents.keys().map(|p| repo.pack_key(p)).collect();
    for object in repo
        .storage
        .list(&repo.layout.data_dir())
        .await
        .map_err(RepoError::from)?
    {
        if listed.contains(&object.key) {
            continue;
        }
        let Some(id) = object.key.rsplit('/').next().and_then(PackId::from_hex) else {
            continue;
        };
        if index.candidate_packs.contains(&id) {
            continue;
        }
        report.unindexed_packs += 1;
        report.garbage_bytes += object.size;
        packs.push(id);
    }
    if packs.is_empty() {
        return Ok(None);
    }
    report.chunks = chunks.len() as u64;
    if !options.dry_run {
        chunks.sort();
        packs.sort();
        // The list's time is the wall clock, not `options.now`: the sweep
        // compares it with backups' creation times, which are wall-clock too.
        let list = CandidateList::new(times::now_text(), chunks, packs);
        report.list = Some(repo.put_gc_candidates(&list).await?);
    }
    Ok(Some(report))
}
