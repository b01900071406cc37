//! Garbage collection: removing chunk data no completed backup references,
//! safely while backups run. FORMAT.md, "Garbage collection", is the protocol:
//!
//! 1. **Mark.** Chunks that no completed backup's manifest references, in
//!    packs that are mostly such garbage (or packs no index lists), go into
//!    a candidate list `gc/ID`. Backups that start after the list exists do
//!    not deduplicate against its chunks, nor against chunks stored only in
//!    the packs it names (`Index::dedup_chunks`).
//! 2. **Sweep**, in a later run once the list is older than the grace period,
//!    every backup that may have loaded the index before the list existed
//!    has finished (its ticket of the store's GC sequence is at most the
//!    list's `sequence`: an order from the catalog, not a clock), and no
//!    registered restore of the store is live: references are recomputed
//!    from all completed manifests;
//!    candidates referenced meanwhile are rescued (copied into new packs if
//!    their pack goes); a consolidated index is written, the old index
//!    objects deleted, then the packs, then the list.
//!
//! Invariant: a chunk referenced by a completed, running or held backup of
//! this store is never deleted. The store's backups are found by store
//! identity (`references::store_backups`), never by a location string; a
//! run stops before writing or deleting anything when a referenced chunk is
//! in no index (`references`, `lifeboat index rebuild` repairs that), when
//! the store is bound to another catalog table, or when one sweep would
//! delete more than `max_delete_share` of the store without `force`.
//!
//! A backup that started before the mark and is still running blocks the
//! sweep (it may have deduplicated against a candidate); one unfinished for
//! longer than `assume_dead_after` is marked failed, so it can never complete
//! afterwards (its completion is a conditional update from `in_progress`).
//!
//! A run holds the store's GC lease (`catalog::leases`) throughout, renewed
//! by a heartbeat and confirmed before anything is deleted, so two
//! collections never act on different views of one store. The parents of
//! unfinished backups count as referenced when marking, and manifests no
//! live backup owns are collected (`orphans`).

mod orphans;

use std::collections::HashSet;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::catalog::leases::{lease_ttl, run_owner, Lease, LeaseError};
use crate::catalog::{BackupRecord, BackupStatus, Catalog, CatalogError};
use crate::format::{BlobLocation, CandidateList, IndexPack, PackBuilder, PackHeaderEntry};
use crate::ids::{ChunkId, PackId};
use crate::repo::{Index, RepoError, Repository};
use crate::times;

mod rebuild;
pub mod references;

pub use rebuild::{rebuild_index, RebuildOptions, RebuildReport};
pub use references::MissingChunks;
use references::{missing_text, referenced_chunks, store_backups, References};

/// A referenced chunk missing from the index is looked for again this many
/// times (a backup completing while the collector reads) before the run
/// concludes the index is incomplete.
const VIEW_ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error("backup {id} is completed but its manifest cannot be read ({error}): garbage collection stopped without deleting anything; run `lifeboat verify {id}`")]
    UnreadableManifest { id: String, error: RepoError },
    #[error("pack {pack} is damaged: chunk {chunk} lies outside its {size} bytes; garbage collection stopped before deleting anything of this list")]
    DamagedPack { pack: String, chunk: ChunkId, size: usize },
    #[error("{} completed backup(s) of this store reference chunks that no index object lists: {}; garbage collection stopped without writing or deleting anything (it would have deleted the packs holding them as packs no index lists): run `lifeboat index rebuild` to index the store's packs again from their headers, then run gc again", .0.len(), missing_text(.0))]
    MissingReferences(Vec<MissingChunks>),
    #[error("the store's index changed each of the {0} times garbage collection read it (backups completing meanwhile): nothing was written or deleted; run gc again")]
    IndexChanging(u32),
    #[error("this sweep would delete {packs} of the store's {store_packs} packs ({bytes} of its {store_bytes} bytes), more than the {limit_percent}% one sweep may delete: garbage collection stopped before writing or deleting anything; if that much garbage is expected (retention just expired most backups), run gc again with --force (or a higher --max-delete-share)")]
    TooMuchToDelete {
        packs: u64,
        store_packs: u64,
        bytes: u64,
        store_bytes: u64,
        limit_percent: f64,
    },
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
    /// The largest share (0 to 1) of the store's packs, or of its bytes,
    /// one sweep may delete without `force`.
    pub max_delete_share: f64,
    /// Sweep whatever share of the store is garbage.
    pub force: bool,
    /// This run, as the GC lease names its holder.
    pub owner: String,
    /// How long the GC lease lasts without renewal.
    pub lease_ttl: SignedDuration,
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
            max_delete_share: 0.5,
            force: false,
            owner: run_owner(&crate::audit::actor_from_env()),
            lease_ttl: lease_ttl(),
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
    /// Backups whose manifest was collected (or would be, in a dry run):
    /// their record is absent, failed or deleted.
    pub orphan_manifests: Vec<String>,
}

fn parse_time(text: &str) -> Option<Timestamp> {
    times::parse(text).ok()
}

/// Whether `blob` of `pack` is the copy restores use and is referenced.
fn is_live(index: &Index, referenced: &HashSet<ChunkId>, pack: &PackId, blob: &BlobLocation) -> bool {
    referenced.contains(&blob.id) && index.chunks.get(&blob.id).is_some_and(|l| l.pack == *pack)
}

/// Chunks of the parents of unfinished backups: such a backup may reuse its
/// parent's chunk lists for unchanged entries even if retention deleted the
/// parent meanwhile. A parent whose manifest is already gone is skipped: the
/// backup then checks the chunks it reuses against the candidate lists
/// (`backup::attempt`), and the sweep waits for it as the sequence says.
async fn running_parents_chunks(repo: &Repository, records: &[BackupRecord]) -> HashSet<ChunkId> {
    let mut chunks = HashSet::new();
    let parents: HashSet<&str> = records
        .iter()
        .filter(|r| matches!(r.status, BackupStatus::Pending | BackupStatus::InProgress))
        .filter_map(|r| r.parent_backup.as_deref())
        .collect();
    for parent in parents {
        match repo.get_manifest(parent, None).await {
            Ok(manifest) => chunks.extend(manifest.entries.into_iter().flat_map(|e| e.chunks)),
            Err(error) => tracing::info!(parent, %error, "an unfinished backup's parent manifest is not readable"),
        }
    }
    chunks
}

/// Runs one garbage collection under the store's GC lease: sweeps the
/// candidate lists that are due, then marks new garbage, then collects
/// orphan manifests. A dry run takes no lease (it changes nothing).
pub async fn collect_garbage(repo: &Repository, catalog: &Catalog, options: &GcOptions) -> Result<GcReport, GcError> {
    if options.dry_run {
        return collect_all(repo, catalog, options, None).await;
    }
    let lease = catalog
        .acquire_gc_lease(&repo.config.store_id, &options.owner, times::now(), options.lease_ttl)
        .await?
        .with_heartbeat();
    let result = collect_all(repo, catalog, options, Some(&lease)).await;
    let released = lease.release().await;
    let report = result?;
    released?;
    Ok(report)
}

async fn collect_all(
    repo: &Repository,
    catalog: &Catalog,
    options: &GcOptions,
    lease: Option<&Lease>,
) -> Result<GcReport, GcError> {
    let mut report = collect(repo, catalog, options, lease).await?;
    report.orphan_manifests = orphans::collect_orphan_manifests(repo, catalog, options, lease).await?;
    Ok(report)
}

/// Why an unfinished backup must finish before `list` (whose sequence is
/// `sequence`) is swept: it took its GC ticket no later than the list's
/// sequence was read, or, a record without a ticket, it was created before
/// the list plus the clock margin.
fn may_predate(record: &BackupRecord, list: &CandidateList, sequence: u64, options: &GcOptions) -> bool {
    match record.gc_ticket {
        Some(ticket) => ticket <= sequence,
        None => {
            let created = parse_time(&list.created_at).unwrap_or(options.now);
            parse_time(&record.created_at).unwrap_or(options.now) < created + options.clock_margin
        }
    }
}

/// Why the sweep of a list must wait for restores: the live registrations
/// of this store's restores, as a reason; `None` if there are none.
async fn restores_running(repo: &Repository, catalog: &Catalog) -> Result<Option<String>, GcError> {
    let live = catalog.live_restores(&repo.config.store_id, times::now()).await?;
    Ok(live.first().map(|r| {
        format!(
            "a restore or verification of {} by {} is running (registered until {}){}",
            r.backup_id.as_deref().unwrap_or("the store"),
            r.owner,
            r.expires_at,
            match live.len() {
                1 => String::new(),
                n => format!(", and {} more", n - 1),
            }
        )
    }))
}

/// The list's sequence: recorded by the mark, or (a list written before
/// lists were ordered, or by a mark interrupted before ordering it) read
/// now and recorded, which is later than the list was stored, as the
/// argument needs. `key` is replaced by the ordered list's key.
async fn list_sequence(
    repo: &Repository,
    catalog: &Catalog,
    key: &mut String,
    list: &CandidateList,
    options: &GcOptions,
) -> Result<u64, GcError> {
    if let Some(sequence) = list.sequence {
        return Ok(sequence);
    }
    if options.dry_run {
        return Ok(catalog.gc_sequence(&repo.config.store_id).await?);
    }
    let (ordered, sequence) = order_list(repo, catalog, key, list.clone()).await?;
    *key = ordered;
    Ok(sequence)
}

/// Records in a stored list the store's GC sequence read now (after the
/// list at `key` is durable): stores the ordered list, then deletes the
/// one at `key`. Returns the ordered list's key and its sequence.
async fn order_list(
    repo: &Repository,
    catalog: &Catalog,
    key: &str,
    mut list: CandidateList,
) -> Result<(String, u64), GcError> {
    let sequence = catalog.gc_sequence(&repo.config.store_id).await?;
    list.sequence = Some(sequence);
    let ordered = repo.put_gc_candidates(&list).await?;
    if ordered != key {
        repo.storage.delete(key).await.map_err(RepoError::from)?;
    }
    Ok((ordered, sequence))
}

async fn collect(
    repo: &Repository,
    catalog: &Catalog,
    options: &GcOptions,
    lease: Option<&Lease>,
) -> Result<GcReport, GcError> {
    let mut report = GcReport {
        dry_run: options.dry_run,
        ..GcReport::default()
    };
    if options.dry_run {
        repo.check_catalog(catalog.table(), catalog.region()).await?;
    } else {
        repo.bind_catalog(catalog.table(), catalog.region()).await?;
    }
    let (index, mut records, references) = checked_view(repo, catalog).await?;
    for (stored_key, list) in &index.candidate_lists {
        let key = &mut stored_key.clone();
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
        let sequence = list_sequence(repo, catalog, key, list, options).await?;
        let mut blocked = None;
        for record in records
            .iter()
            .filter(|r| matches!(r.status, BackupStatus::Pending | BackupStatus::InProgress))
        {
            if !may_predate(record, list, sequence, options) {
                continue;
            }
            let started = parse_time(&record.created_at).unwrap_or(options.now);
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
        if let Some(reason) = restores_running(repo, catalog).await? {
            report.waiting.push(Waiting {
                list: key.clone(),
                reason,
            });
            continue;
        }
        let mut referenced = if options.dry_run {
            references.chunks.clone()
        } else {
            // Re-read: backups may have completed (or been failed just now).
            records = store_backups(repo, catalog).await?;
            let current = referenced_chunks(repo, catalog, &records, &index).await?;
            if current.any_unindexed() {
                ensure_indexed(repo, &current).await?;
                report.waiting.push(Waiting {
                    list: key.clone(),
                    reason: "backups completed while this run read the index; the next run sweeps".into(),
                });
                return Ok(report);
            }
            current.chunks
        };
        referenced.extend(running_parents_chunks(repo, &records).await);
        if let Some(lease) = lease {
            lease.confirm().await?;
        }
        report
            .swept
            .push(sweep(repo, &index, key, list, &referenced, options, lease).await?);
        if !options.dry_run {
            // One list per run: the index changed under the next one.
            return Ok(report);
        }
    }
    let mut referenced = references.chunks;
    referenced.extend(running_parents_chunks(repo, &records).await);
    report.marked = mark(repo, catalog, &index, &referenced, options).await?;
    Ok(report)
}

/// The index (with the candidate lists), then this store's records (a
/// backup that began before a list existed is then among them), then the
/// chunks their manifests reference, each of them in that index.
async fn checked_view(repo: &Repository, catalog: &Catalog) -> Result<(Index, Vec<BackupRecord>, References), GcError> {
    for _ in 0..VIEW_ATTEMPTS {
        let index = repo.load_index().await?;
        let records = store_backups(repo, catalog).await?;
        let references = referenced_chunks(repo, catalog, &records, &index).await?;
        if !references.any_unindexed() {
            return Ok((index, records, references));
        }
        ensure_indexed(repo, &references).await?;
    }
    Err(GcError::IndexChanging(VIEW_ATTEMPTS))
}

/// Referenced chunks were missing from the index read before the records: a
/// backup that completed in between has its index object now (Ok: read
/// again); chunks a fresh index lacks too are lost from the index (Err,
/// naming the backups).
async fn ensure_indexed(repo: &Repository, references: &References) -> Result<(), GcError> {
    let fresh = repo.load_index().await?;
    let missing = references.missing_from(&fresh);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(GcError::MissingReferences(missing))
    }
}

/// The safety interlock: one sweep deletes at most `max_delete_share` of the
/// store's packs and of its bytes, unless forced.
async fn check_deletion_share(repo: &Repository, retired: &[PackId], options: &GcOptions) -> Result<(), GcError> {
    if options.force {
        return Ok(());
    }
    let packs = repo
        .storage
        .list(&repo.layout.data_dir())
        .await
        .map_err(RepoError::from)?;
    let store_packs = packs.len() as u64;
    let store_bytes: u64 = packs.iter().map(|p| p.size).sum();
    let retired: HashSet<String> = retired.iter().map(|p| repo.pack_key(p)).collect();
    let deleting = retired.len() as u64;
    let bytes: u64 = packs.iter().filter(|p| retired.contains(&p.key)).map(|p| p.size).sum();
    let too_much = |part: u64, whole: u64| part > 0 && part as f64 > options.max_delete_share * whole as f64;
    if too_much(deleting, store_packs) || too_much(bytes, store_bytes) {
        return Err(GcError::TooMuchToDelete {
            packs: deleting,
            store_packs,
            bytes,
            store_bytes,
            limit_percent: (options.max_delete_share * 100.0).round(),
        });
    }
    Ok(())
}

async fn sweep(
    repo: &Repository,
    index: &Index,
    key: &str,
    list: &CandidateList,
    referenced: &HashSet<ChunkId>,
    options: &GcOptions,
    lease: Option<&Lease>,
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
    check_deletion_share(repo, &retired, options).await?;
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
    if let Some(lease) = lease {
        lease.confirm().await?;
    }
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
    catalog: &Catalog,
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
        // The list's time is the wall clock, not `options.now`: the grace
        // period and the rule for backups without a ticket count from it.
        // Its order against backups is the sequence read once it is stored.
        let list = CandidateList::new(times::now_text(), chunks, packs);
        let key = repo.put_gc_candidates(&list).await?;
        report.list = Some(order_list(repo, catalog, &key, list).await?.0);
    }
    Ok(Some(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unfinished(created_at: &str, gc_ticket: Option<u64>) -> BackupRecord {
        let mut record: BackupRecord = serde_json::from_value(serde_json::json!({
            "id": "bk-20261207T210000Z-0000abcd", "type": "full", "status": "in_progress",
            "source": "s3://src/app", "size": 0, "compressedSize": 0, "entryCount": 0,
            "changedCount": 0, "createdAt": created_at,
            "storageLocation": "s3://store/manifests/bk-20261207T210000Z-0000abcd", "kmsKeyId": "k",
        }))
        .unwrap();
        record.gc_ticket = gc_ticket;
        record
    }

    #[test]
    fn the_sweep_waits_for_backups_by_ticket_whatever_their_clocks_say() {
        let now: Timestamp = "2026-12-07T22:00:00Z".parse().unwrap();
        let options = GcOptions::new(now);
        let list = CandidateList {
            sequence: Some(5),
            ..CandidateList::new("2026-12-07T20:00:00.000Z".into(), vec![], vec![])
        };
        // A backup whose host clock runs two hours ahead took its ticket
        // before the list's sequence was read: it may have loaded the index
        // before the list existed.
        assert!(may_predate(
            &unfinished("2026-12-07T22:00:00.000Z", Some(5)),
            &list,
            5,
            &options
        ));
        // One whose clock runs a day behind took its ticket after: it saw the list.
        assert!(!may_predate(
            &unfinished("2026-12-06T20:00:00.000Z", Some(6)),
            &list,
            5,
            &options
        ));
        // Records without a ticket (older writers) keep the clock rule.
        assert!(may_predate(
            &unfinished("2026-12-07T20:04:00.000Z", None),
            &list,
            5,
            &options
        ));
        assert!(!may_predate(
            &unfinished("2026-12-07T20:06:00.000Z", None),
            &list,
            5,
            &options
        ));
    }
}
