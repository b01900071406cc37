//! Verifying a backup: is everything it needs in the store, and intact?
//!
//! Quick mode reads no data: the manifest (its SHA-256 against the catalog
//! record's `checksum`, then it must decrypt), every index object (its name
//! is its SHA-256, it must decrypt), and one listing of `data/`: every chunk
//! of every entry must be in the index, and every pack the backup uses must
//! exist with the size the index records.
//!
//! Deep mode also downloads every pack the backup uses, once each and a few
//! at a time (so memory is bounded by the packs in flight): its SHA-256 must
//! be its name and its sealed header must decrypt and list exactly what the
//! index says. Then every entry is read back chunk by chunk, in order (ranged
//! reads of its blobs): each blob must authenticate and hash to its chunk id,
//! and the entry's SHA-256 must be the manifest's.
//!
//! Damage is reported as [`Problem`]s, each naming the object and the entries
//! it affects; only failures to reach the store or the catalog are errors.
//! Every verification is recorded in the catalog.
//!
//! Sample mode ([`sample`]) checks the store rather than one backup: a share
//! of its packs each run, read whole, continuing where the last run stopped.

mod deep;
pub mod sample;
pub mod selection;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalog::{BackupRecord, BackupStatus, Catalog, CatalogError, VerificationRecord, VerificationStatus};
use crate::format::{BlobLocation, FormatError, IndexFile, Manifest};
use crate::ids::{ChunkId, PackId};
use crate::repo::{ChunkLocation, Index, Repository};
use crate::storage::{ObjectInfo, StorageError};

pub use crate::catalog::VerificationType as VerifyMode;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(
        "backup {id} is {status}, not completed: only a completed backup has a manifest to verify (see `lifeboat backups list`)"
    )]
    NotCompleted { id: String, status: String },
}

#[derive(Clone, Debug)]
pub struct VerifyOptions {
    pub backup_id: String,
    pub mode: VerifyMode,
    /// Packs (deep mode: also entries) read at once. Each pack in flight
    /// holds up to about 20 MiB in memory.
    pub concurrency: usize,
}

impl VerifyOptions {
    pub fn new(backup_id: &str, mode: VerifyMode) -> Self {
        Self {
            backup_id: backup_id.to_owned(),
            mode,
            concurrency: 4,
        }
    }
}

/// What is wrong with an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The object does not exist.
    Missing,
    /// A pack's size is not the size the index records.
    WrongSize,
    /// The object's SHA-256 is not its name (packs, index objects), not the
    /// catalog's checksum (manifest), or an entry's content is not the
    /// manifest's SHA-256.
    ChecksumMismatch,
    /// Decryption failed: the object was altered or truncated.
    FailedAuthentication,
    /// The object is intact (its SHA-256 is right) but does not decrypt: it
    /// is encrypted under a key this store does not have.
    ForeignKey,
    /// Chunks of the backup are in no index object.
    NotInIndex,
    /// A pack's header does not list what the index says the pack holds.
    HeaderMismatch,
    /// The object could not be read or parsed.
    Unreadable,
}

impl ProblemKind {
    pub fn describe(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::WrongSize => "wrong size",
            Self::ChecksumMismatch => "checksum mismatch",
            Self::FailedAuthentication => "failed authentication",
            Self::ForeignKey => "encrypted under a key this store does not have",
            Self::NotInIndex => "not in the index",
            Self::HeaderMismatch => "header disagrees with the index",
            Self::Unreadable => "unreadable",
        }
    }
}

/// One thing wrong, and the entries of the backup it makes unrestorable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// The object: `s3://bucket/prefix/data/XY/PACKID`, an index object, the manifest.
    pub object: String,
    pub kind: ProblemKind,
    pub detail: String,
    /// Paths of the affected entries, sorted (empty when none of this
    /// backup's entries are affected, or when they cannot be listed).
    pub entries: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyCounts {
    pub entries: u64,
    /// Distinct chunks of the backup.
    pub chunks: u64,
    /// Distinct packs the backup uses.
    pub packs: u64,
    /// Plaintext bytes of the entries (deep mode: read back and hashed).
    pub bytes: u64,
    /// Stored bytes of the packs the backup uses (deep mode: downloaded and hashed).
    pub pack_bytes: u64,
    pub index_objects: u64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub backup_id: String,
    pub mode: VerifyMode,
    /// No problem found.
    pub ok: bool,
    /// Every checksum checked matched: the manifest's SHA-256 against the
    /// catalog's, index objects' (deep: and packs') against their names,
    /// packs' sizes against the index, (deep) entries' against the manifest.
    pub checksum_valid: bool,
    pub started_at: String,
    pub completed_at: String,
    pub checked: VerifyCounts,
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// The catalog's record of this verification.
    pub fn verification_record(&self) -> VerificationRecord {
        let error = self.problems.first().map(|first| {
            let more = match self.problems.len() {
                1 => String::new(),
                n => format!(" (and {} more problems)", n - 1),
            };
            format!("{}: {}: {}{more}", first.object, first.kind.describe(), first.detail)
        });
        VerificationRecord {
            backup_id: self.backup_id.clone(),
            verification_type: self.mode,
            status: if self.ok {
                VerificationStatus::Passed
            } else {
                VerificationStatus::Failed
            },
            started_at: self.started_at.clone(),
            completed_at: self.completed_at.clone(),
            checksum_valid: self.checksum_valid,
            restore_test_passed: None,
            error,
        }
    }
}

/// Verifies a completed backup and records the verification in the catalog.
pub async fn run_verify(
    repo: Arc<Repository>,
    catalog: &Catalog,
    options: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    let started_at = crate::times::now_text();
    let record = catalog.get(&options.backup_id).await?;
    if record.status != BackupStatus::Completed {
        return Err(VerifyError::NotCompleted {
            id: record.id,
            status: record.status.as_str().to_owned(),
        });
    }
    let report = check_backup(repo, &record, options, started_at).await?;
    catalog.record_verification(&report.verification_record()).await?;
    tracing::info!(backup_id = %report.backup_id, mode = report.mode.as_str(), problems = report.problems.len(), "verification finished");
    Ok(report)
}

/// The checks themselves, without recording them.
pub async fn check_backup(
    repo: Arc<Repository>,
    record: &BackupRecord,
    options: &VerifyOptions,
    started_at: String,
) -> Result<VerifyReport, VerifyError> {
    let mut report = VerifyReport {
        backup_id: record.id.clone(),
        mode: options.mode,
        ok: false,
        checksum_valid: false,
        started_at,
        completed_at: String::new(),
        checked: VerifyCounts::default(),
        problems: Vec::new(),
    };
    let manifest_checked = check_manifest(&repo, record, &mut report).await?;
    if let Some(manifest) = manifest_checked {
        let index = load_index(&repo, &mut report).await?;
        check_data(repo, &manifest, &index, options, &mut report).await?;
    }
    report.ok = report.problems.is_empty();
    report.checksum_valid = report.checksum_valid
        && !report
            .problems
            .iter()
            .any(|p| matches!(p.kind, ProblemKind::ChecksumMismatch | ProblemKind::WrongSize));
    report.completed_at = crate::times::now_text();
    Ok(report)
}

/// The manifest, if it can be read: checked against the catalog's checksum.
async fn check_manifest(
    repo: &Repository,
    record: &BackupRecord,
    report: &mut VerifyReport,
) -> Result<Option<Manifest>, VerifyError> {
    let key = repo.layout.manifest(&record.id);
    let object = repo.storage.describe(&key);
    let problem = |kind, detail: String| Problem {
        object: object.clone(),
        kind,
        detail,
        entries: Vec::new(),
    };
    let bytes = match repo.storage.get(&key).await {
        Ok(bytes) => bytes,
        Err(StorageError::NotFound(_)) => {
            report.problems.push(problem(
                ProblemKind::Missing,
                "the backup's manifest does not exist, so none of its entries can be restored".into(),
            ));
            return Ok(None);
        }
        Err(other) => return Err(other.into()),
    };
    let found = hex::encode(Sha256::digest(&bytes));
    let checksum_ok = record.checksum.as_deref() == Some(found.as_str());
    report.checksum_valid = checksum_ok;
    if !checksum_ok {
        let expected = record.checksum.as_deref().unwrap_or("no checksum");
        report.problems.push(problem(
            ProblemKind::ChecksumMismatch,
            format!("its SHA-256 is {found}, the catalog record says {expected}: the manifest was altered or replaced"),
        ));
    }
    match Manifest::open(&repo.keys, &record.id, &bytes) {
        Ok(manifest) => Ok(Some(manifest)),
        Err(FormatError::Crypto(_)) if checksum_ok => {
            report.problems.push(problem(
                ProblemKind::ForeignKey,
                "it is the object the backup stored (its SHA-256 matches the catalog) but it does not decrypt: it is encrypted under a key this store does not have, so none of the backup's entries can be listed".into(),
            ));
            Ok(None)
        }
        Err(FormatError::Crypto(_)) => {
            report.problems.push(problem(
                ProblemKind::FailedAuthentication,
                "it does not decrypt with this store's keys: it was altered or truncated, so none of the backup's entries can be listed".into(),
            ));
            Ok(None)
        }
        Err(other) => {
            report
                .problems
                .push(problem(ProblemKind::Unreadable, other.to_string()));
            Ok(None)
        }
    }
}

/// The store's index, from every index object that checks out; each one
/// that does not is a problem (its chunks then show up as not in the index).
pub(crate) struct CheckedIndex {
    pub(crate) index: Index,
    /// What the index says each pack holds (for deep mode's header check).
    pub(crate) pack_blobs: HashMap<PackId, Vec<BlobLocation>>,
}

pub(crate) async fn load_index(repo: &Repository, report: &mut VerifyReport) -> Result<CheckedIndex, VerifyError> {
    let objects = repo.storage.list(&repo.layout.index_dir()).await?;
    let fetched: Vec<(ObjectInfo, Result<bytes::Bytes, StorageError>)> = futures::stream::iter(objects)
        .map(|object| async move {
            let bytes = repo.storage.get(&object.key).await;
            (object, bytes)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut checked = CheckedIndex {
        index: Index::default(),
        pack_blobs: HashMap::new(),
    };
    for (object, bytes) in fetched {
        let bytes = match bytes {
            Ok(bytes) => bytes,
            // Deleted since the listing: whatever it indexed shows up as not in the index.
            Err(StorageError::NotFound(_)) => continue,
            Err(other) => return Err(other.into()),
        };
        let what = repo.storage.describe(&object.key);
        let name = object.key.rsplit('/').next().unwrap_or_default();
        let found = hex::encode(Sha256::digest(&bytes));
        let name_ok = found == name;
        let problem = |kind, detail: String| Problem {
            object: what.clone(),
            kind,
            detail,
            entries: Vec::new(),
        };
        if !name_ok {
            report.problems.push(problem(
                ProblemKind::ChecksumMismatch,
                format!("its SHA-256 is {found}, not its name: the index object was altered or replaced"),
            ));
        }
        match IndexFile::open(&repo.keys, &bytes, &what) {
            Ok(file) => {
                checked.index.index_objects += 1;
                for pack in file.packs {
                    checked.index.packs.insert(pack.id, pack.size);
                    for blob in &pack.blobs {
                        let location = ChunkLocation {
                            pack: pack.id,
                            offset: blob.offset,
                            length: blob.length,
                            raw_length: blob.raw_length,
                        };
                        checked.index.chunks.entry(blob.id).or_insert(location);
                    }
                    checked.pack_blobs.entry(pack.id).or_insert(pack.blobs);
                }
            }
            Err(FormatError::Crypto(_)) if name_ok => report.problems.push(problem(
                ProblemKind::ForeignKey,
                "its SHA-256 is its name but it does not decrypt: it is encrypted under a key this store does not have; its chunks are ignored".into(),
            )),
            Err(FormatError::Crypto(_)) => report.problems.push(problem(
                ProblemKind::FailedAuthentication,
                "it does not decrypt with this store's keys: it was altered or truncated; its chunks are ignored".into(),
            )),
            Err(other) => report
                .problems
                .push(problem(ProblemKind::Unreadable, format!("{other}; its chunks are ignored"))),
        }
    }
    report.checked.index_objects = checked.index.index_objects as u64;
    Ok(checked)
}

/// Which entries use which chunks and packs.
pub(crate) struct Usage {
    /// Chunk → indices of the entries that use it.
    chunk_entries: HashMap<ChunkId, BTreeSet<usize>>,
    /// Pack → indices of the entries that use a chunk of it.
    pack_entries: BTreeMap<PackId, BTreeSet<usize>>,
    /// Chunks in no index object → the entries that use them.
    not_indexed: BTreeMap<ChunkId, BTreeSet<usize>>,
}

fn usage(manifest: &Manifest, index: &Index) -> Usage {
    let mut usage = Usage {
        chunk_entries: HashMap::new(),
        pack_entries: BTreeMap::new(),
        not_indexed: BTreeMap::new(),
    };
    for (i, entry) in manifest.entries.iter().enumerate() {
        for chunk in &entry.chunks {
            usage.chunk_entries.entry(*chunk).or_default().insert(i);
            match index.chunks.get(chunk) {
                Some(location) => {
                    usage.pack_entries.entry(location.pack).or_default().insert(i);
                }
                None => {
                    usage.not_indexed.entry(*chunk).or_default().insert(i);
                }
            }
        }
    }
    usage
}

pub(crate) fn paths(manifest: &Manifest, entries: impl IntoIterator<Item = usize>) -> Vec<String> {
    let set: BTreeSet<&str> = entries
        .into_iter()
        .filter_map(|i| manifest.entries.get(i).map(|e| e.path.as_str()))
        .collect();
    set.into_iter().map(str::to_owned).collect()
}

async fn check_data(
    repo: Arc<Repository>,
    manifest: &Manifest,
    checked: &CheckedIndex,
    options: &VerifyOptions,
    report: &mut VerifyReport,
) -> Result<(), VerifyError> {
    let index = &checked.index;
    let usage = usage(manifest, index);
    report.checked.entries = manifest.entries.len() as u64;
    report.checked.chunks = usage.chunk_entries.len() as u64;
    report.checked.packs = usage.pack_entries.len() as u64;
    report.checked.bytes = manifest.size();
    report.checked.pack_bytes = usage
        .pack_entries
        .keys()
        .map(|p| index.packs.get(p).copied().unwrap_or(0))
        .sum();

    if let Some(first) = usage.not_indexed.keys().next() {
        let entries = usage.not_indexed.values().flatten().copied();
        report.problems.push(Problem {
            object: repo.storage.describe(&repo.layout.index_dir()),
            kind: ProblemKind::NotInIndex,
            detail: format!(
                "{} chunks of the backup (first: {first}) are in no index object: an index object is missing, damaged or was never written",
                usage.not_indexed.len()
            ),
            entries: paths(manifest, entries),
        });
    }

    // One listing of every pack, with sizes.
    let listed: HashMap<String, u64> = repo
        .storage
        .list(&repo.layout.data_dir())
        .await?
        .into_iter()
        .map(|o| (o.key, o.size))
        .collect();
    let mut intact_packs = Vec::new();
    for (pack, entries) in &usage.pack_entries {
        let key = repo.pack_key(pack);
        let object = repo.storage.describe(&key);
        let expected = index.packs.get(pack).copied().unwrap_or(0);
        match listed.get(&key) {
            None => report.problems.push(Problem {
                object,
                kind: ProblemKind::Missing,
                detail: "the pack does not exist".into(),
                entries: paths(manifest, entries.iter().copied()),
            }),
            Some(&size) if size != expected => report.problems.push(Problem {
                object,
                kind: ProblemKind::WrongSize,
                detail: format!(
                    "the pack has {size} bytes, the index records {expected}: it was truncated or replaced"
                ),
                entries: paths(manifest, entries.iter().copied()),
            }),
            Some(_) => intact_packs.push(*pack),
        }
    }

    if options.mode == VerifyMode::Deep {
        deep::deep_check(repo, manifest, checked, &usage, intact_packs, options, report).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{BackupType, Entry, FORMAT_VERSION};

    fn manifest(entries: &[(&str, &[u8])]) -> Manifest {
        Manifest {
            version: FORMAT_VERSION,
            backup_id: "bk-20261123T105300Z-0000abcd".into(),
            source: "s3://b/p/".into(),
            backup_type: BackupType::Full,
            parent_backup: None,
            created_at: "2026-11-23T10:53:00Z".into(),
            skipped: vec![],
            entries: entries
                .iter()
                .map(|(path, chunks)| Entry {
                    path: (*path).into(),
                    size: 1,
                    sha256: String::new(),
                    mtime: None,
                    mode: None,
                    etag: None,
                    version_id: None,
                    raw_path: None,
                    ctime: None,
                    inode: None,
                    chunks: chunks.iter().map(|c| ChunkId([*c; 32])).collect(),
                })
                .collect(),
        }
    }

    fn index(chunks: &[(u8, u8)]) -> Index {
        let mut index = Index::default();
        for (chunk, pack) in chunks {
            index.chunks.insert(
                ChunkId([*chunk; 32]),
                ChunkLocation {
                    pack: PackId([*pack; 32]),
                    offset: 0,
                    length: 1,
                    raw_length: 1,
                },
            );
        }
        index
    }

    #[test]
    fn usage_maps_packs_and_unindexed_chunks_to_their_entries() {
        let manifest = manifest(&[("a", &[1, 2]), ("b", &[2, 3]), ("c", &[4]), ("empty", &[])]);
        let usage = usage(&manifest, &index(&[(1, 10), (2, 10), (3, 11)]));
        assert_eq!(usage.chunk_entries.len(), 4);
        assert_eq!(usage.pack_entries[&PackId([10; 32])], BTreeSet::from([0, 1]));
        assert_eq!(usage.pack_entries[&PackId([11; 32])], BTreeSet::from([1]));
        assert_eq!(
            usage.not_indexed.into_iter().collect::<Vec<_>>(),
            vec![(ChunkId([4; 32]), BTreeSet::from([2]))]
        );
        assert_eq!(paths(&manifest, [1, 0, 1]), vec!["a".to_owned(), "b".to_owned()]);
    }

    #[test]
    fn a_report_becomes_a_catalog_record() {
        let mut report = VerifyReport {
            backup_id: "bk-1".into(),
            mode: VerifyMode::Quick,
            ok: true,
            checksum_valid: true,
            started_at: "2026-11-23T11:00:00.000Z".into(),
            completed_at: "2026-11-23T11:00:01.000Z".into(),
            checked: VerifyCounts::default(),
            problems: Vec::new(),
        };
        let passed = report.verification_record();
        assert_eq!(passed.status, VerificationStatus::Passed);
        assert_eq!((passed.error, passed.restore_test_passed), (None, None));
        report.ok = false;
        for object in ["s3://b/p/data/ab/x", "s3://b/p/data/cd/y"] {
            report.problems.push(Problem {
                object: object.into(),
                kind: ProblemKind::Missing,
                detail: "the pack does not exist".into(),
                entries: vec!["a".into()],
            });
        }
        let failed = report.verification_record();
        assert_eq!(failed.status, VerificationStatus::Failed);
        assert_eq!(
            failed.error.as_deref(),
            Some("s3://b/p/data/ab/x: missing: the pack does not exist (and 1 more problems)")
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["mode"], "quick");
        assert_eq!(json["problems"][0]["kind"], "missing");
        assert_eq!(json["checked"]["packBytes"], 0);
    }
}
