//! Restoring a file backup, every byte verified on the way.
//!
//! To a directory, restore works pack by pack (as restic's restorer does):
//! each needed pack is downloaded once, its blobs are authenticated,
//! decompressed and checked against their chunk ids, and written straight to
//! their places in every file that holds them. A file is written under a
//! temporary name and renamed only after its SHA-256 matches the manifest.
//! Memory is bounded by the packs in flight, whatever the backup's size.
//!
//! To S3, each object is rebuilt chunk by chunk (ranged reads of its blobs)
//! into a multipart upload that is completed only when the object's SHA-256
//! matches; otherwise the upload is aborted and no object appears.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalog::{BackupStatus, Catalog, CatalogError};
use crate::format::{open_blob, Entry, FormatError};
use crate::ids::{ChunkId, PackId};
use crate::repo::{ChunkLocation, Index, RepoError, Repository};
use crate::storage::{Location, Storage, StorageError};

/// Size of the parts of a multipart upload to S3 (S3's minimum is 5 MiB).
const PART_SIZE: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(
        "backup {id} is {status}, not completed: only completed backups can be restored (see `lifeboat backups list`)"
    )]
    NotCompleted { id: String, status: String },
    #[error("--include {pattern:?} is not a valid glob: {message}")]
    BadGlob { pattern: String, message: String },
    #[error("--include {pattern:?} matches none of the {entries} entries of backup {id}")]
    NothingMatched {
        pattern: String,
        entries: usize,
        id: String,
    },
    #[error("restore target {target}: {message}")]
    Target { target: String, message: String },
    #[error("restore of backup {id} is incomplete: {restored} entries restored, {} could not be:\n{}", failed.len(), render_failed(failed))]
    Incomplete {
        id: String,
        restored: u64,
        failed: Vec<FailedEntry>,
    },
}

fn render_failed(failed: &[FailedEntry]) -> String {
    let mut lines: Vec<String> = failed
        .iter()
        .take(50)
        .map(|f| format!("  {}: {}", f.path, f.reason))
        .collect();
    if failed.len() > 50 {
        lines.push(format!("  … and {} more", failed.len() - 50));
    }
    lines.join("\n")
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailedEntry {
    pub path: String,
    pub reason: String,
}

#[derive(Clone, Debug)]
pub struct RestoreOptions {
    pub backup_id: String,
    pub target: Location,
    pub include: Option<String>,
    /// Packs (to a directory) or objects (to S3) in flight at once.
    pub concurrency: usize,
    /// Bytes restored so far, for a progress display.
    pub progress: Arc<AtomicU64>,
}

impl RestoreOptions {
    pub fn new(backup_id: &str, target: Location) -> Self {
        Self {
            backup_id: backup_id.to_owned(),
            target,
            include: None,
            concurrency: 4,
            progress: Arc::default(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSummary {
    pub backup_id: String,
    pub target: String,
    pub entries_restored: u64,
    pub bytes_restored: u64,
    pub duration_seconds: f64,
}

/// Everything a restore needs to know before it fetches data.
pub struct RestorePlan {
    pub backup_id: String,
    pub entries: Vec<Entry>,
    pub total_bytes: u64,
}

/// Checks the backup is complete and selects its entries.
pub async fn plan_restore(
    repo: &Repository,
    catalog: &Catalog,
    options: &RestoreOptions,
) -> Result<RestorePlan, RestoreError> {
    let record = catalog.get(&options.backup_id).await?;
    if record.status != BackupStatus::Completed {
        return Err(RestoreError::NotCompleted {
            id: record.id,
            status: record.status.as_str().to_owned(),
        });
    }
    let manifest = repo.get_manifest(&record.id, record.checksum.as_deref()).await?;
    let total = manifest.entries.len();
    let entries: Vec<Entry> = match &options.include {
        None => manifest.entries,
        Some(pattern) => {
            let matcher = globset::GlobBuilder::new(pattern)
                .literal_separator(false)
                .build()
                .map_err(|e| RestoreError::BadGlob {
                    pattern: pattern.clone(),
                    message: e.to_string(),
                })?
                .compile_matcher();
            let selected: Vec<Entry> = manifest
                .entries
                .into_iter()
                .filter(|e| matcher.is_match(&e.path))
                .collect();
            if selected.is_empty() {
                return Err(RestoreError::NothingMatched {
                    pattern: pattern.clone(),
                    entries: total,
                    id: record.id,
                });
            }
            selected
        }
    };
    let total_bytes = entries.iter().map(|e| e.size).sum();
    Ok(RestorePlan {
        backup_id: record.id,
        entries,
        total_bytes,
    })
}

pub async fn run_restore(
    repo: Arc<Repository>,
    s3: &aws_sdk_s3::Client,
    region: &str,
    plan: RestorePlan,
    options: &RestoreOptions,
) -> Result<RestoreSummary, RestoreError> {
    let started = Instant::now();
    let index = Arc::new(repo.load_index().await?);
    let (restored, failed) = match &options.target {
        Location::Dir(dir) => restore_to_dir(repo, index, &plan.entries, dir, options).await?,
        Location::S3 { bucket, prefix } => {
            let target = Storage::s3(s3.clone(), bucket, region);
            target.check().await.map_err(|e| RestoreError::Target {
                target: options.target.to_string(),
                message: e.to_string(),
            })?;
            restore_to_s3(repo, index, &plan.entries, s3, bucket, prefix, options).await
        }
    };
    if !failed.is_empty() {
        return Err(RestoreError::Incomplete {
            id: plan.backup_id,
            restored,
            failed,
        });
    }
    let summary = RestoreSummary {
        backup_id: plan.backup_id,
        target: options.target.to_string(),
        entries_restored: restored,
        bytes_restored: plan.total_bytes,
        duration_seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(backup_id = %summary.backup_id, target = %summary.target, entries = summary.entries_restored, bytes = summary.bytes_restored, "restore completed");
    Ok(summary)
}

/// Refuses entry paths that would escape the target directory.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let relative = Path::new(path);
    let safe = !path.is_empty() && relative.components().all(|c| matches!(c, Component::Normal(_)));
    safe.then(|| relative.to_path_buf())
}

fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.lifeboat-tmp-{:08x}", rand::random::<u32>()))
}

const READ_BUFFER_LEN: usize = 256 << 10;

thread_local! {
    /// Where `FileSlot::finish` reads a restored file back to check it.
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One file being restored.
struct FileSlot {
    entry: Entry,
    final_path: PathBuf,
    temporary: PathBuf,
    file: Mutex<Option<File>>,
    remaining: AtomicUsize,
    failure: Mutex<Option<String>>,
}

impl FileSlot {
    fn fail(&self, reason: &str) {
        let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        failure.get_or_insert_with(|| reason.to_owned());
    }

    fn failed(&self) -> bool {
        self.failure.lock().map(|f| f.is_some()).unwrap_or(true)
    }

    /// Checks the whole file and moves it to its final name.
    fn finish(&self) {
        let file = self.file.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(file) = file else { return };
        if self.failed() {
            return;
        }
        let result = (|| -> Result<(), String> {
            file.sync_all()
                .map_err(|e| format!("writing {}: {e}", self.temporary.display()))?;
            let mut reader = File::open(&self.temporary).map_err(|e| e.to_string())?;
            let mut sha = Sha256::new();
            // One buffer per thread for all files: a fresh zeroed 1 MiB (and
            // a BufReader's) per file cost a memset of 2 MiB per file.
            READ_BUFFER.with_borrow_mut(|buffer| -> Result<(), String> {
                buffer.resize(READ_BUFFER_LEN, 0);
                loop {
                    let n = reader.read(buffer).map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Ok(());
                    }
                    sha.update(&buffer[..n]);
                }
            })?;
            let found = hex::encode(sha.finalize());
            if found != self.entry.sha256 {
                return Err(format!(
                    "restored content has SHA-256 {found}, the manifest says {}",
                    self.entry.sha256
                ));
            }
            if let Some(mode) = self.entry.mode {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&self.temporary, std::fs::Permissions::from_mode(mode));
            }
            if let Some(mtime) = self.entry.mtime.as_deref().and_then(|t| crate::times::parse(t).ok()) {
                let _ = file.set_modified(std::time::SystemTime::from(mtime));
            }
            std::fs::rename(&self.temporary, &self.final_path).map_err(|e| format!("renaming into place: {e}"))
        })();
        if let Err(reason) = result {
            self.fail(&reason);
        }
    }
}

/// Where one chunk goes: (file slot, offset in the file) for every use.
type Targets = Vec<(usize, u64)>;
/// The chunks to take from one pack.
type PackWork = (PackId, Vec<(ChunkId, ChunkLocation, Targets)>);

async fn restore_to_dir(
    repo: Arc<Repository>,
    index: Arc<Index>,
    entries: &[Entry],
    dir: &Path,
    options: &RestoreOptions,
) -> Result<(u64, Vec<FailedEntry>), RestoreError> {
    let Prepared {
        slots,
        work,
        unsafe_entries,
    } = create_files(&index, entries, dir)?;
    let slots = Arc::new(slots);
    // Entries with no chunks (empty files), or already failed, finish now.
    for slot in slots.iter() {
        if slot.entry.chunks.is_empty() || slot.failed() {
            slot.finish();
        }
    }
    write_packs(&repo, &index, work, &slots, options).await;
    Ok(tally(&slots, unsafe_entries))
}

/// The files a restore into a directory writes, and what goes into them.
struct Prepared {
    slots: Vec<FileSlot>,
    work: Vec<PackWork>,
    /// Entries refused because their path would leave the directory.
    unsafe_entries: Vec<FailedEntry>,
}

/// Creates the temporary file of every entry under `dir` (those whose path
/// would leave it are refused), and sorts the chunks to write by pack.
fn create_files(index: &Index, entries: &[Entry], dir: &Path) -> Result<Prepared, RestoreError> {
    let target_error = |e: std::io::Error| RestoreError::Target {
        target: dir.display().to_string(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(target_error)?;
    let mut slots = Vec::with_capacity(entries.len());
    let mut by_pack: HashMap<PackId, HashMap<ChunkId, (ChunkLocation, Targets)>> = HashMap::new();
    let mut unsafe_entries = Vec::new();
    for entry in entries {
        let Some(relative) = safe_relative(&entry.path) else {
            unsafe_entries.push(FailedEntry {
                path: entry.path.clone(),
                reason: "its path would leave the target directory; skipped".into(),
            });
            continue;
        };
        let final_path = dir.join(relative);
        if let Some(parent) = final_path.parent() {
            std::fs::create_dir_all(parent).map_err(target_error)?;
        }
        let temporary = temporary_path(&final_path);
        let file = File::create(&temporary).map_err(target_error)?;
        file.set_len(entry.size).map_err(target_error)?;
        let slot_index = slots.len();
        let slot = FileSlot {
            entry: entry.clone(),
            final_path,
            temporary,
            file: Mutex::new(Some(file)),
            remaining: AtomicUsize::new(entry.chunks.len()),
            failure: Mutex::new(None),
        };
        let mut offset = 0u64;
        for chunk in &entry.chunks {
            match index.chunks.get(chunk) {
                Some(location) => {
                    by_pack
                        .entry(location.pack)
                        .or_default()
                        .entry(*chunk)
                        .or_insert_with(|| (*location, Vec::new()))
                        .1
                        .push((slot_index, offset));
                    offset += u64::from(location.raw_length);
                }
                None => {
                    slot.fail(&format!(
                        "chunk {chunk} is in no index of the store (the store is missing data)"
                    ));
                    break;
                }
            }
        }
        slots.push(slot);
    }
    let work: Vec<PackWork> = by_pack
        .into_iter()
        .map(|(pack, chunks)| {
            (
                pack,
                chunks
                    .into_iter()
                    .map(|(id, (loc, targets))| (id, loc, targets))
                    .collect(),
            )
        })
        .collect();
    Ok(Prepared {
        slots,
        work,
        unsafe_entries,
    })
}

/// Downloads every pack of `work` (`options.concurrency` at a time) and
/// writes its chunks into their files.
async fn write_packs(
    repo: &Arc<Repository>,
    index: &Index,
    work: Vec<PackWork>,
    slots: &Arc<Vec<FileSlot>>,
    options: &RestoreOptions,
) {
    futures::stream::iter(work)
        .map(|(pack, chunks)| {
            let (repo, slots, progress) = (repo.clone(), slots.clone(), options.progress.clone());
            async move {
                let key = repo.pack_key(&pack);
                let fetched = repo.get_pack_of_size(&pack, index.packs.get(&pack).copied()).await;
                let described = repo.storage.describe(&key);
                let _ = tokio::task::spawn_blocking(move || {
                    write_pack(&repo, &described, fetched, &chunks, &slots, &progress);
                })
                .await;
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect::<Vec<()>>()
        .await;
}

/// How many entries were restored, and which failed (`unsafe_entries` with
/// them), by path; the temporary files of the failed ones are removed.
fn tally(slots: &[FileSlot], unsafe_entries: Vec<FailedEntry>) -> (u64, Vec<FailedEntry>) {
    let mut failed = unsafe_entries;
    let mut restored = 0;
    for slot in slots {
        let failure = slot.failure.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match failure {
            Some(reason) => {
                drop(slot.file.lock().unwrap_or_else(|p| p.into_inner()).take());
                let _ = std::fs::remove_file(&slot.temporary);
                failed.push(FailedEntry {
                    path: slot.entry.path.clone(),
                    reason,
                });
            }
            None if slot.remaining.load(Ordering::SeqCst) == 0 || slot.entry.chunks.is_empty() => restored += 1,
            None => {
                let _ = std::fs::remove_file(&slot.temporary);
                failed.push(FailedEntry {
                    path: slot.entry.path.clone(),
                    reason: "not all of its chunks were written".into(),
                });
            }
        }
    }
    failed.sort_by(|a, b| a.path.cmp(&b.path));
    (restored, failed)
}

/// Decrypts the needed blobs of one downloaded pack into their files.
fn write_pack(
    repo: &Repository,
    described: &str,
    fetched: Result<Bytes, StorageError>,
    chunks: &[(ChunkId, ChunkLocation, Targets)],
    slots: &[FileSlot],
    progress: &AtomicU64,
) {
    for (id, location, targets) in chunks {
        let plaintext = match &fetched {
            Err(StorageError::NotFound(_)) => Err(format!("pack {described} is missing from the store")),
            Err(other) => Err(format!("pack {described} could not be read: {other}")),
            Ok(pack) => {
                let (start, end) = (
                    location.offset as usize,
                    location.offset as usize + location.length as usize,
                );
                match pack.get(start..end) {
                    None => Err(format!(
                        "pack {described} is truncated: chunk {id} should be at bytes {start}..{end} but the pack has {} bytes",
                        pack.len()
                    )),
                    Some(sealed) => open_blob(&repo.keys, id, sealed, location.raw_length as usize).map_err(|e| match e {
                        FormatError::Crypto(_) => format!("chunk {id} in pack {described} failed authentication: the pack is corrupted"),
                        other => format!("chunk {id} in pack {described}: {other}"),
                    }),
                }
            }
        };
        for &(slot_index, offset) in targets {
            let slot = &slots[slot_index];
            match &plaintext {
                Err(reason) => slot.fail(reason),
                Ok(data) if !slot.failed() => {
                    let written = slot
                        .file
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .as_ref()
                        .map(|f| f.write_all_at(data, offset));
                    match written {
                        Some(Ok(())) => {
                            progress.fetch_add(data.len() as u64, Ordering::Relaxed);
                        }
                        Some(Err(e)) => slot.fail(&format!("writing {}: {e}", slot.temporary.display())),
                        None => {}
                    }
                }
                Ok(_) => {}
            }
            if slot.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
                slot.finish();
            }
        }
    }
}

async fn restore_to_s3(
    repo: Arc<Repository>,
    index: Arc<Index>,
    entries: &[Entry],
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    options: &RestoreOptions,
) -> (u64, Vec<FailedEntry>) {
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    let results: Vec<(String, Result<(), String>)> = futures::stream::iter(entries.iter().cloned())
        .map(|entry| {
            let (repo, index, s3, progress) = (repo.clone(), index.clone(), s3.clone(), options.progress.clone());
            let key = format!("{prefix}{}", entry.path);
            async move {
                let result = restore_object(&repo, &index, &s3, bucket, &key, &entry, &progress).await;
                (entry.path, result)
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    let mut failed = Vec::new();
    let mut restored = 0;
    for (path, result) in results {
        match result {
            Ok(()) => restored += 1,
            Err(reason) => failed.push(FailedEntry { path, reason }),
        }
    }
    failed.sort_by(|a, b| a.path.cmp(&b.path));
    (restored, failed)
}

/// Reads and verifies one chunk with a ranged read of its blob.
pub(crate) async fn fetch_chunk(repo: &Repository, index: &Index, id: &ChunkId) -> Result<Vec<u8>, String> {
    let location = index
        .chunks
        .get(id)
        .ok_or_else(|| format!("chunk {id} is in no index of the store"))?;
    let key = repo.pack_key(&location.pack);
    let described = repo.storage.describe(&key);
    let sealed = repo
        .storage
        .get_range(&key, u64::from(location.offset), u64::from(location.length))
        .await
        .map_err(|e| match e {
            StorageError::NotFound(_) => format!("pack {described} is missing from the store"),
            other => format!("pack {described} could not be read: {other}"),
        })?;
    if sealed.len() != location.length as usize {
        return Err(format!("pack {described} is truncated: chunk {id} is cut short"));
    }
    let keys = repo.keys.clone();
    let id = *id;
    let raw = location.raw_length as usize;
    tokio::task::spawn_blocking(move || open_blob(&keys, &id, &sealed, raw))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| match e {
            FormatError::Crypto(_) => {
                format!("chunk {id} in pack {described} failed authentication: the pack is corrupted")
            }
            other => format!("chunk {id} in pack {described}: {other}"),
        })
}

/// Uploads `part` as the next part of the multipart upload `upload_id` of
/// `s3://bucket/key`, and adds it to `parts`.
async fn upload_part(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    parts: &mut Vec<CompletedPart>,
    part: Vec<u8>,
) -> Result<(), aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::upload_part::UploadPartError>> {
    let number = parts.len() as i32 + 1;
    let output = s3
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .body(ByteStream::from(part))
        .send()
        .await?;
    parts.push(
        CompletedPart::builder()
            .part_number(number)
            .set_e_tag(output.e_tag)
            .build(),
    );
    Ok(())
}

async fn restore_object(
    repo: &Repository,
    index: &Index,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    entry: &Entry,
    progress: &AtomicU64,
) -> Result<(), String> {
    let s3_message = |e: &dyn std::fmt::Display| format!("writing s3://{bucket}/{key}: {e}");
    let mut sha = Sha256::new();
    let mut buffer: Vec<u8> = Vec::with_capacity(PART_SIZE.min(entry.size as usize + 1));
    let mut upload: Option<(String, Vec<CompletedPart>)> = None;
    let result = async {
        for id in &entry.chunks {
            let data = fetch_chunk(repo, index, id).await?;
            sha.update(&data);
            progress.fetch_add(data.len() as u64, Ordering::Relaxed);
            buffer.extend_from_slice(&data);
            if buffer.len() >= PART_SIZE {
                if upload.is_none() {
                    let created = s3
                        .create_multipart_upload()
                        .bucket(bucket)
                        .key(key)
                        .send()
                        .await
                        .map_err(|e| s3_message(&aws_sdk_s3::error::DisplayErrorContext(e)))?;
                    upload = Some((created.upload_id().unwrap_or_default().to_owned(), Vec::new()));
                }
                if let Some((upload_id, parts)) = upload.as_mut() {
                    upload_part(s3, bucket, key, upload_id, parts, std::mem::take(&mut buffer))
                        .await
                        .map_err(|e| s3_message(&aws_sdk_s3::error::DisplayErrorContext(e)))?;
                }
            }
        }
        let found = hex::encode(sha.clone().finalize());
        if found != entry.sha256 {
            return Err(format!(
                "restored content has SHA-256 {found}, the manifest says {}",
                entry.sha256
            ));
        }
        match upload.as_mut() {
            None => {
                s3.put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(ByteStream::from(std::mem::take(&mut buffer)))
                    .send()
                    .await
                    .map_err(|e| s3_message(&aws_sdk_s3::error::DisplayErrorContext(e)))?;
            }
            Some((upload_id, parts)) => {
                if !buffer.is_empty() {
                    upload_part(s3, bucket, key, upload_id, parts, std::mem::take(&mut buffer))
                        .await
                        .map_err(|e| s3_message(&aws_sdk_s3::error::DisplayErrorContext(e)))?;
                }
                s3.complete_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(upload_id.as_str())
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts.clone()))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| s3_message(&aws_sdk_s3::error::DisplayErrorContext(e)))?;
            }
        }
        Ok(())
    }
    .await;
    if result.is_err() {
        if let Some((upload_id, _)) = upload {
            let _ = s3
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .send()
                .await;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_escape_are_refused() {
        for (path, ok) in [
            ("a/b.txt", true),
            ("../etc/passwd", false),
            ("/abs", false),
            ("a/../../b", false),
            ("", false),
            ("./a", false),
        ] {
            assert_eq!(safe_relative(path).is_some(), ok, "{path}");
        }
    }
}
