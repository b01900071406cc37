//! Deep verification: every pack the backup uses downloaded once and
//! checked (its name is its SHA-256, its header agrees with the index), then
//! every entry read back chunk by chunk, each blob authenticated and hashed.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::{paths, CheckedIndex, Problem, ProblemKind, Usage, VerifyError, VerifyOptions, VerifyReport};
use crate::format::{open_blob, read_pack_header, BlobLocation, FormatError, Manifest};
use crate::ids::{ChunkId, PackId};
use crate::repo::{ChunkLocation, Repository};
use crate::storage::StorageError;

/// What deep mode found wrong with one pack's whole object.
struct PackFinding {
    pack: PackId,
    object: String,
    /// The pack's SHA-256 when it is not its name.
    wrong_sha: Option<String>,
    /// The header failed to decrypt or disagrees with the index.
    header: Option<(ProblemKind, String)>,
    /// It could not be downloaded.
    unreadable: Option<(ProblemKind, String)>,
}

/// What deep mode found wrong reading one chunk of an entry.
struct ChunkFailure {
    pack: PackId,
    chunk: ChunkId,
    kind: ProblemKind,
}

pub(super) async fn deep_check(
    repo: Arc<Repository>,
    manifest: &Manifest,
    checked: &CheckedIndex,
    usage: &Usage,
    intact_packs: Vec<PackId>,
    options: &VerifyOptions,
    report: &mut VerifyReport,
) -> Result<(), VerifyError> {
    let concurrency = options.concurrency.max(1);
    // Whole packs: name, header. Each downloaded once, `concurrency` at a time.
    let pack_blobs = &checked.pack_blobs;
    let findings: Vec<PackFinding> = futures::stream::iter(intact_packs.iter().copied())
        .map(|pack| {
            let repo = repo.clone();
            let expected = pack_blobs.get(&pack).cloned().unwrap_or_default();
            async move { check_pack(repo, pack, expected).await }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;

    // Entries, each read back chunk by chunk, in order. Chunks in packs
    // already found missing or of the wrong size are not read again.
    let index = &checked.index;
    let intact: HashSet<PackId> = intact_packs.iter().copied().collect();
    let readable = |chunk: &ChunkId| index.chunks.get(chunk).filter(|l| intact.contains(&l.pack)).copied();
    let results: Vec<(usize, EntryCheck)> = futures::stream::iter(manifest.entries.iter().enumerate())
        .map(|(i, entry)| {
            let repo = repo.clone();
            let locations: Vec<(ChunkId, Option<ChunkLocation>)> =
                entry.chunks.iter().map(|c| (*c, readable(c))).collect();
            let expected = entry.sha256.clone();
            let size = entry.size;
            async move { (i, check_entry(&repo, &locations, &expected, size).await) }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;

    let failures = group_chunk_failures(results, usage)?;
    report_findings(&repo, manifest, usage, findings, failures, report);
    Ok(())
}

/// Chunk failures grouped by pack and kind (with the entries they
/// affect), and entries whose content does not match the manifest.
type EntryFailures = (
    BTreeMap<(PackId, ProblemKind), (BTreeSet<ChunkId>, BTreeSet<usize>)>,
    Vec<(usize, String)>,
);

fn group_chunk_failures(results: Vec<(usize, EntryCheck)>, usage: &Usage) -> Result<EntryFailures, VerifyError> {
    // Chunk failures, grouped by pack and kind, with the entries they affect.
    let mut by_pack: BTreeMap<(PackId, ProblemKind), (BTreeSet<ChunkId>, BTreeSet<usize>)> = BTreeMap::new();
    let mut content_mismatch = Vec::new();
    for (i, result) in results {
        match result {
            EntryCheck::Ok => {}
            EntryCheck::Skipped => {}
            EntryCheck::Chunks(failures) => {
                for failure in failures {
                    let users = usage.chunk_entries.get(&failure.chunk).cloned().unwrap_or_default();
                    let slot = by_pack.entry((failure.pack, failure.kind)).or_default();
                    slot.0.insert(failure.chunk);
                    slot.1.extend(users);
                    slot.1.insert(i);
                }
            }
            EntryCheck::Content(detail) => content_mismatch.push((i, detail)),
            EntryCheck::Error(e) => return Err(e.into()),
        }
    }

    Ok((by_pack, content_mismatch))
}

/// The problems deep mode found, one per pack and kind, then per entry.
fn report_findings(
    repo: &Repository,
    manifest: &Manifest,
    usage: &Usage,
    findings: Vec<PackFinding>,
    (by_pack, content_mismatch): EntryFailures,
    report: &mut VerifyReport,
) {
    if findings.iter().any(|f| f.wrong_sha.is_some()) {
        report.checksum_valid = false;
    }
    let mut findings: BTreeMap<PackId, PackFinding> = findings.into_iter().map(|f| (f.pack, f)).collect();
    for ((pack, kind), (chunks, entries)) in by_pack {
        let object = repo.storage.describe(&repo.pack_key(&pack));
        let first = chunks.iter().next().map(|c| c.to_hex()).unwrap_or_default();
        let what = match kind {
            ProblemKind::ChecksumMismatch => "decrypt but do not hash to their ids",
            ProblemKind::Missing => "are beyond the end of the pack",
            ProblemKind::Unreadable => "could not be read",
            _ => "failed authentication: the pack is corrupted",
        };
        let mut detail = format!("{} of its chunks (first: {first}) {what}", chunks.len());
        if let Some(found) = findings.get_mut(&pack).and_then(|f| f.wrong_sha.take()) {
            detail.push_str(&format!("; its SHA-256 is {found}, not its name"));
        }
        report.problems.push(Problem {
            object,
            kind,
            detail,
            entries: paths(manifest, entries),
        });
    }
    for finding in findings.into_values() {
        let problem = |kind, detail: String| Problem {
            object: finding.object.clone(),
            kind,
            detail,
            entries: Vec::new(),
        };
        if let Some((kind, detail)) = finding.unreadable {
            let users = usage.pack_entries.get(&finding.pack).cloned().unwrap_or_default();
            report.problems.push(Problem {
                entries: paths(manifest, users),
                ..problem(kind, detail)
            });
            continue;
        }
        if let Some(found) = finding.wrong_sha {
            report.problems.push(problem(
                ProblemKind::ChecksumMismatch,
                format!("its SHA-256 is {found}, not its name: bytes this backup does not use were altered (other backups' chunks or the header)"),
            ));
        }
        if let Some((kind, detail)) = finding.header {
            report.problems.push(problem(kind, detail));
        }
    }
    let manifest_object = repo.storage.describe(&repo.layout.manifest(&manifest.backup_id));
    for (i, detail) in content_mismatch {
        report.problems.push(Problem {
            object: manifest_object.clone(),
            kind: ProblemKind::ChecksumMismatch,
            detail,
            entries: paths(manifest, [i]),
        });
    }
}

/// Downloads one pack and checks its name and header.
async fn check_pack(repo: Arc<Repository>, pack: PackId, expected: Vec<BlobLocation>) -> PackFinding {
    let key = repo.pack_key(&pack);
    let object = repo.storage.describe(&key);
    let mut finding = PackFinding {
        pack,
        object: object.clone(),
        wrong_sha: None,
        header: None,
        unreadable: None,
    };
    let bytes = match repo.storage.get(&key).await {
        Ok(bytes) => bytes,
        Err(StorageError::NotFound(_)) => {
            finding.unreadable = Some((ProblemKind::Missing, "the pack disappeared during verification".into()));
            return finding;
        }
        Err(other) => {
            finding.unreadable = Some((ProblemKind::Unreadable, format!("the pack could not be read: {other}")));
            return finding;
        }
    };
    let keys = repo.keys.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let found = hex::encode(Sha256::digest(&bytes));
        let sha_ok = found == pack.to_hex();
        let header = match read_pack_header(&keys, &bytes, &object) {
            Ok(blobs) if blobs == expected => None,
            Ok(blobs) => Some((
                ProblemKind::HeaderMismatch,
                format!(
                    "its header lists {} blobs that differ from the index's {}: the index cannot be trusted for this pack",
                    blobs.len(),
                    expected.len()
                ),
            )),
            Err(FormatError::Crypto(_)) if sha_ok => Some((
                ProblemKind::ForeignKey,
                "its SHA-256 is its name but its header does not decrypt: it is encrypted under a key this store does not have".into(),
            )),
            Err(FormatError::Crypto(_)) => Some((
                ProblemKind::FailedAuthentication,
                "its header failed authentication: the pack is corrupted".into(),
            )),
            Err(other) => Some((ProblemKind::Unreadable, other.to_string())),
        };
        ((!sha_ok).then_some(found), header)
    })
    .await;
    match checked {
        Ok((wrong_sha, header)) => {
            finding.wrong_sha = wrong_sha;
            finding.header = header;
        }
        Err(e) => finding.unreadable = Some((ProblemKind::Unreadable, format!("checking the pack failed: {e}"))),
    }
    finding
}

enum EntryCheck {
    Ok,
    /// Every chunk read was sound, but some could not be read (in no index,
    /// or in a pack already reported), so the content cannot be checked.
    Skipped,
    Chunks(Vec<ChunkFailure>),
    /// Every chunk is sound but the content is not what the manifest says.
    Content(String),
    Error(StorageError),
}

/// Reads an entry back chunk by chunk and recomputes its SHA-256. Chunks
/// without a location (not indexed, or in a pack already reported) are not
/// read, and then the entry's SHA-256 cannot be checked.
async fn check_entry(
    repo: &Repository,
    chunks: &[(ChunkId, Option<ChunkLocation>)],
    expected: &str,
    size: u64,
) -> EntryCheck {
    let complete = chunks.iter().all(|(_, location)| location.is_some());
    let mut sha = Some(Sha256::new());
    let mut length = 0u64;
    let mut failures = Vec::new();
    for (chunk, location) in chunks {
        let Some(location) = location else { continue };
        let key = repo.pack_key(&location.pack);
        let failure = |kind| ChunkFailure {
            pack: location.pack,
            chunk: *chunk,
            kind,
        };
        let sealed = match repo
            .storage
            .get_range(&key, u64::from(location.offset), u64::from(location.length))
            .await
        {
            Ok(sealed) => sealed,
            Err(StorageError::NotFound(_)) => {
                failures.push(failure(ProblemKind::Missing));
                continue;
            }
            Err(other) => return EntryCheck::Error(other),
        };
        if sealed.len() != location.length as usize {
            failures.push(failure(ProblemKind::Missing));
            continue;
        }
        let keys = repo.keys.clone();
        let id = *chunk;
        let raw = location.raw_length as usize;
        // Hashing stays on the blocking thread with the decryption; once a
        // chunk has failed, the entry's hash is no longer computed.
        let hasher = if failures.is_empty() { sha.take() } else { None };
        let opened = tokio::task::spawn_blocking(move || {
            open_blob(&keys, &id, &sealed, raw).map(|plaintext| {
                hasher.map(|mut hasher| {
                    hasher.update(&plaintext);
                    (hasher, plaintext.len() as u64)
                })
            })
        })
        .await;
        match opened {
            Ok(Ok(Some((hasher, n)))) => {
                sha = Some(hasher);
                length += n;
            }
            Ok(Ok(None)) => {}
            Ok(Err(FormatError::ChunkIdMismatch(_))) => failures.push(failure(ProblemKind::ChecksumMismatch)),
            Ok(Err(_)) => failures.push(failure(ProblemKind::FailedAuthentication)),
            Err(_) => failures.push(failure(ProblemKind::Unreadable)),
        }
    }
    if !failures.is_empty() {
        return EntryCheck::Chunks(failures);
    }
    let (true, Some(sha)) = (complete, sha) else {
        return EntryCheck::Skipped;
    };
    let found = hex::encode(sha.finalize());
    if found != expected || length != size {
        return EntryCheck::Content(format!(
            "its chunks, read back, are {length} bytes with SHA-256 {found}; the manifest says {size} bytes with SHA-256 {expected}"
        ));
    }
    EntryCheck::Ok
}
