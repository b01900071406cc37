//! Sample verification: a walk of the whole store, a share at a time.
//!
//! Each run reads `percent` of the store's packs whole, in key order,
//! starting after the pack the previous run stopped at (the cursor lives in
//! the catalog), so `100 / percent` runs read every pack once. Each pack read
//! must hash to its name, its header must decrypt and list what the index
//! says, and every blob in it must decrypt and hash to its chunk id. Every
//! run also compares one listing of `data/` with the index (no data read):
//! an indexed pack that is missing or has the wrong size is found the first
//! time, whatever the cursor.
//!
//! When damage is found, the manifests of the store's completed backups are
//! read to name what it affects (`BACKUP:path`), and a failed verification
//! of type `sample` is recorded on each affected backup, which the alert
//! function reports.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{load_index, CheckedIndex, Problem, ProblemKind, VerifyCounts, VerifyError, VerifyMode, VerifyReport};
use crate::catalog::{BackupStatus, Catalog, SampleCursor, VerificationRecord, VerificationStatus, VerificationType};
use crate::format::{open_blob, read_pack_header, BlobLocation, FormatError, Manifest};
use crate::ids::{ChunkId, PackId};
use crate::repo::Repository;
use crate::storage::StorageError;

#[derive(Clone, Debug)]
pub struct SampleOptions {
    /// The share of the store's packs read this run, in percent (0 < p ≤ 100).
    pub percent: f64,
    /// Packs read at once; each in flight holds up to about 20 MiB.
    pub concurrency: usize,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SampleReport {
    /// The store, as `s3://bucket/prefix/`.
    pub store: String,
    pub percent: f64,
    pub ok: bool,
    pub started_at: String,
    pub completed_at: String,
    /// Packs in the store's `data/`.
    pub packs_in_store: u64,
    /// Packs read whole this run, and their bytes.
    pub packs_checked: u64,
    pub bytes_checked: u64,
    pub chunks_checked: u64,
    /// The first and last pack read this run (keys), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_pack: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_pack: Option<String>,
    /// This run reached the end of the store (a walk completed).
    pub walk_completed: bool,
    /// Complete walks of the store so far, this run's included.
    pub passes: u64,
    pub problems: Vec<Problem>,
    /// Backups with an entry the damage makes unrestorable.
    pub affected_backups: Vec<String>,
}

/// Damage found in one pack.
struct PackDamage {
    pack: PackId,
    kind: ProblemKind,
    detail: String,
    /// Chunks made unreadable; empty means every chunk the index places in the pack.
    chunks: BTreeSet<ChunkId>,
}

/// Runs one step of the store walk and records it.
pub async fn run_sample(
    repo: Arc<Repository>,
    catalog: &Catalog,
    options: &SampleOptions,
) -> Result<SampleReport, VerifyError> {
    let started_at = crate::times::now_text();
    let store = repo.storage.describe("");
    let percent = options.percent.clamp(f64::MIN_POSITIVE, 100.0);

    // The index, checked as quick mode checks it.
    let mut scratch = VerifyReport {
        backup_id: String::new(),
        mode: VerifyMode::Sample,
        ok: false,
        checksum_valid: true,
        started_at: started_at.clone(),
        completed_at: String::new(),
        checked: VerifyCounts::default(),
        problems: Vec::new(),
    };
    let checked = load_index(&repo, &mut scratch).await?;
    let mut problems = scratch.problems;
    let mut damage: Vec<PackDamage> = Vec::new();

    let packs = list_packs(&repo).await?;
    damage.extend(size_damage(&checked, &packs));
    let sized_wrong: HashSet<PackId> = damage.iter().map(|d| d.pack).collect();

    // This run's share, after the cursor, wrapping around.
    let cursor = catalog.sample_cursor(&store).await?.unwrap_or_default();
    let total = packs.len();
    let keys: Vec<&str> = packs.iter().map(|p| p.0.as_str()).collect();
    let (start, share, walk_completed) = share_of(&keys, &cursor.after, percent);
    let selected: Vec<(String, u64, PackId)> = packs.iter().cycle().skip(start).take(share).cloned().collect();

    let to_read: Vec<(String, u64, PackId)> = selected
        .iter()
        .filter(|p| !sized_wrong.contains(&p.2))
        .cloned()
        .collect();
    let (packs_checked, bytes_checked, chunks_checked) =
        check_share(&repo, &checked, to_read, options.concurrency, &mut damage).await?;

    // What the damage affects.
    let mut doomed: HashMap<ChunkId, PackId> = HashMap::new();
    for d in &damage {
        if d.chunks.is_empty() {
            let whole = checked.index.chunks.iter().filter(|(_, l)| l.pack == d.pack);
            doomed.extend(whole.map(|(c, _)| (*c, d.pack)));
        } else {
            doomed.extend(d.chunks.iter().map(|c| (*c, d.pack)));
        }
    }
    let affected = if doomed.is_empty() {
        BTreeMap::new()
    } else {
        affected_entries(&repo, catalog, &doomed).await?
    };
    for d in &damage {
        let entries: BTreeSet<String> = affected
            .iter()
            .flat_map(|(backup, uses)| {
                uses.iter()
                    .filter(|(_, pack)| *pack == d.pack)
                    .map(move |(path, _)| format!("{backup}:{path}"))
            })
            .collect();
        problems.push(Problem {
            object: repo.storage.describe(&repo.pack_key(&d.pack)),
            kind: d.kind,
            detail: d.detail.clone(),
            entries: entries.into_iter().collect(),
        });
    }

    let completed_at = crate::times::now_text();
    let passes = cursor.passes + u64::from(walk_completed);
    if let Some(last) = selected.last() {
        catalog
            .set_sample_cursor(
                &store,
                &SampleCursor {
                    after: last.0.clone(),
                    passes,
                    updated_at: completed_at.clone(),
                },
            )
            .await?;
    }
    let affected_backups: Vec<String> = affected.keys().cloned().collect();
    record_affected(catalog, &affected_backups, &problems, &started_at, &completed_at).await?;
    let report = SampleReport {
        store,
        percent,
        ok: problems.is_empty(),
        started_at,
        completed_at,
        packs_in_store: total as u64,
        packs_checked,
        bytes_checked,
        chunks_checked,
        first_pack: selected.first().map(|p| p.0.clone()),
        last_pack: selected.last().map(|p| p.0.clone()),
        walk_completed,
        passes,
        problems,
        affected_backups,
    };
    tracing::info!(store = %report.store, packs = report.packs_checked, problems = report.problems.len(), "sample verification finished");
    Ok(report)
}

/// The store's packs (key, size, id), in key order.
async fn list_packs(repo: &Repository) -> Result<Vec<(String, u64, PackId)>, VerifyError> {
    let mut packs: Vec<(String, u64, PackId)> = repo
        .storage
        .list(&repo.layout.data_dir())
        .await?
        .into_iter()
        .filter_map(|o| {
            let id = PackId::from_hex(o.key.rsplit('/').next().unwrap_or_default())?;
            Some((o.key, o.size, id))
        })
        .collect();
    packs.sort();
    Ok(packs)
}

/// Every indexed pack: present, with the size the index records.
fn size_damage(checked: &CheckedIndex, packs: &[(String, u64, PackId)]) -> Vec<PackDamage> {
    let sizes: BTreeMap<PackId, u64> = packs.iter().map(|p| (p.2, p.1)).collect();
    let mut damage = Vec::new();
    for (pack, expected) in &checked.index.packs {
        let (kind, detail) = match sizes.get(pack) {
            None => (ProblemKind::Missing, "the pack does not exist".to_owned()),
            Some(size) if size != expected => (
                ProblemKind::WrongSize,
                format!("the pack has {size} bytes, the index records {expected}: it was truncated or replaced"),
            ),
            Some(_) => continue,
        };
        damage.push(PackDamage {
            pack: *pack,
            kind,
            detail,
            chunks: BTreeSet::new(),
        });
    }
    damage
}

/// Reads each pack of this run's share whole, `concurrency` at a time; the
/// damage found goes to `damage`. Packs, bytes and chunks checked.
async fn check_share(
    repo: &Arc<Repository>,
    checked: &CheckedIndex,
    to_read: Vec<(String, u64, PackId)>,
    concurrency: usize,
    damage: &mut Vec<PackDamage>,
) -> Result<(u64, u64, u64), VerifyError> {
    let pack_blobs = &checked.pack_blobs;
    let findings: Vec<(u64, u64, Result<Option<PackDamage>, StorageError>)> = futures::stream::iter(to_read)
        .map(|(key, size, pack)| {
            let repo = repo.clone();
            let expected = pack_blobs.get(&pack).cloned();
            async move {
                let blobs = expected.as_ref().map_or(0, |b| b.len() as u64);
                (size, blobs, check_whole_pack(repo, key, pack, expected).await)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut bytes_checked = 0;
    let mut chunks_checked = 0;
    let mut packs_checked = 0;
    for (size, blobs, finding) in findings {
        packs_checked += 1;
        bytes_checked += size;
        chunks_checked += blobs;
        if let Some(found) = finding? {
            damage.push(found);
        }
    }
    Ok((packs_checked, bytes_checked, chunks_checked))
}

/// A failed sample verification on each affected backup, naming the first
/// problem that touches it.
async fn record_affected(
    catalog: &Catalog,
    affected_backups: &[String],
    problems: &[Problem],
    started_at: &str,
    completed_at: &str,
) -> Result<(), VerifyError> {
    for backup in affected_backups {
        let first = problems
            .iter()
            .find(|p| p.entries.iter().any(|e| e.starts_with(&format!("{backup}:"))));
        let error = first.map(|p| format!("{}: {}: {}", p.object, p.kind.describe(), p.detail));
        catalog
            .record_verification(&VerificationRecord {
                backup_id: backup.clone(),
                verification_type: VerificationType::Sample,
                status: VerificationStatus::Failed,
                started_at: started_at.to_owned(),
                completed_at: completed_at.to_owned(),
                checksum_valid: false,
                restore_test_passed: None,
                error,
            })
            .await?;
    }
    Ok(())
}

/// This run's share of the store's sorted pack keys: where it starts (the
/// first key after the cursor, wrapping to the beginning), how many packs,
/// and whether it reaches the end of the store (a walk completes).
fn share_of(keys: &[&str], after: &str, percent: f64) -> (usize, usize, bool) {
    let total = keys.len();
    if total == 0 {
        return (0, 0, false);
    }
    let share = ((total as f64 * percent / 100.0).ceil() as usize).clamp(1, total);
    let start = keys.iter().position(|k| *k > after).unwrap_or(0);
    (start, share, start + share >= total)
}

/// Entries of the store's completed backups that use a doomed chunk:
/// backup id → (entry path, the damaged pack).
async fn affected_entries(
    repo: &Repository,
    catalog: &Catalog,
    doomed: &HashMap<ChunkId, PackId>,
) -> Result<BTreeMap<String, BTreeSet<(String, PackId)>>, VerifyError> {
    let manifests = repo.storage.describe(&repo.layout.manifest(""));
    let mut affected: BTreeMap<String, BTreeSet<(String, PackId)>> = BTreeMap::new();
    for record in catalog.list(None).await? {
        if record.status != BackupStatus::Completed || !record.storage_location.starts_with(&manifests) {
            continue;
        }
        let bytes = match repo.storage.get(&repo.layout.manifest(&record.id)).await {
            Ok(bytes) => bytes,
            // A missing manifest is quick verification's finding, not this one's.
            Err(StorageError::NotFound(_)) => continue,
            Err(other) => return Err(other.into()),
        };
        let Ok(manifest) = Manifest::open(&repo.keys, &record.id, &bytes) else {
            continue;
        };
        for entry in &manifest.entries {
            for chunk in &entry.chunks {
                if let Some(pack) = doomed.get(chunk) {
                    affected
                        .entry(record.id.clone())
                        .or_default()
                        .insert((entry.path.clone(), *pack));
                }
            }
        }
    }
    Ok(affected)
}

/// Reads one pack whole: its SHA-256 must be its name, its header must
/// decrypt (and list what the index says, when the index knows the pack),
/// and every blob must decrypt and hash to its chunk id.
async fn check_whole_pack(
    repo: Arc<Repository>,
    key: String,
    pack: PackId,
    expected: Option<Vec<BlobLocation>>,
) -> Result<Option<PackDamage>, StorageError> {
    let bytes = match repo.storage.get(&key).await {
        Ok(bytes) => bytes,
        // Collected by garbage collection since the listing.
        Err(StorageError::NotFound(_)) => return Ok(None),
        Err(other) => return Err(other),
    };
    let keys = repo.keys.clone();
    let object = repo.storage.describe(&key);
    let checked = tokio::task::spawn_blocking(move || {
        let found = hex::encode(Sha256::digest(&bytes));
        let sha_ok = found == pack.to_hex();
        let damage = |kind, detail: String, chunks| {
            Some(PackDamage {
                pack,
                kind,
                detail,
                chunks,
            })
        };
        let blobs = match read_pack_header(&keys, &bytes, &object) {
            Ok(blobs) => blobs,
            Err(FormatError::Crypto(_)) if sha_ok => {
                return damage(
                    ProblemKind::ForeignKey,
                    "its SHA-256 is its name but its header does not decrypt: it is encrypted under a key this store does not have".into(),
                    BTreeSet::new(),
                )
            }
            Err(FormatError::Crypto(_)) => {
                return damage(
                    ProblemKind::FailedAuthentication,
                    format!("its header failed authentication (its SHA-256 is {found}, not its name): the pack is corrupted"),
                    BTreeSet::new(),
                )
            }
            Err(other) => return damage(ProblemKind::Unreadable, other.to_string(), BTreeSet::new()),
        };
        if let Some(expected) = expected.filter(|e| *e != blobs) {
            return damage(
                ProblemKind::HeaderMismatch,
                format!(
                    "its header lists {} blobs that differ from the index's {}: the index cannot be trusted for this pack",
                    blobs.len(),
                    expected.len()
                ),
                BTreeSet::new(),
            );
        }
        let mut bad = BTreeSet::new();
        let mut kind = ProblemKind::FailedAuthentication;
        for blob in &blobs {
            let start = blob.offset as usize;
            let sealed = bytes.get(start..start + blob.length as usize);
            match sealed.map(|s| open_blob(&keys, &blob.id, s, blob.raw_length as usize)) {
                Some(Ok(_)) => {}
                Some(Err(FormatError::ChunkIdMismatch(_))) => {
                    kind = ProblemKind::ChecksumMismatch;
                    bad.insert(blob.id);
                }
                Some(Err(_)) | None => {
                    bad.insert(blob.id);
                }
            }
        }
        if let Some(first) = bad.iter().next() {
            let detail = format!(
                "{} of its {} chunks (first: {first}) do not decrypt or do not hash to their ids: the pack is corrupted",
                bad.len(),
                blobs.len()
            );
            return damage(kind, detail, bad);
        }
        if !sha_ok {
            return damage(
                ProblemKind::ChecksumMismatch,
                format!("its SHA-256 is {found}, not its name, though every chunk reads back: bytes between its blobs were altered"),
                BTreeSet::new(),
            );
        }
        None
    })
    .await;
    Ok(checked.unwrap_or_else(|e| {
        Some(PackDamage {
            pack,
            kind: ProblemKind::Unreadable,
            detail: format!("checking the pack failed: {e}"),
            chunks: BTreeSet::new(),
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_shares_walk_the_whole_store_once() {
        let keys: Vec<String> = (0..10).map(|i| format!("data/{i:02}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut after = String::new();
        let mut seen = Vec::new();
        let mut walks = 0;
        for _ in 0..4 {
            let (start, share, completed) = share_of(&keys, &after, 30.0);
            assert_eq!(share, 3);
            walks += u32::from(completed);
            let selected: Vec<&str> = keys.iter().cycle().skip(start).take(share).copied().collect();
            seen.extend(selected.iter().copied());
            after = selected.last().unwrap().to_string();
        }
        // Runs 1-4 read 00-02, 03-05, 06-08, then 09 and wrap to 00-01.
        assert_eq!(&seen[..10], &keys[..]);
        assert_eq!(&seen[10..], &["data/00", "data/01"]);
        assert_eq!(walks, 1);
    }

    #[test]
    fn a_share_is_at_least_one_pack_and_at_most_all() {
        let keys = ["a", "b", "c"];
        assert_eq!(share_of(&keys, "", 0.001), (0, 1, false));
        assert_eq!(share_of(&keys, "", 100.0), (0, 3, true));
        assert_eq!(share_of(&keys, "b", 50.0), (2, 2, true));
        // A cursor past every key (the packs it named were collected) starts over.
        assert_eq!(share_of(&keys, "z", 10.0), (0, 1, false));
        assert_eq!(share_of(&[], "", 50.0), (0, 0, false));
    }
}
