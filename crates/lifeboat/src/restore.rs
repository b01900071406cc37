//! Restoring a file backup, every byte verified on the way: to a directory
//! pack by pack ([`to_dir`]), to S3 object by object ([`to_s3`]). Memory is
//! bounded by the packs (or parts) in flight, whatever the backup's size.
//!
//! Invariant: one entry that cannot be restored (a name the target cannot
//! hold, two entries landing on one file, an existing file without
//! `overwrite`, a symbolic link on its way, damaged data) never stops the
//! others and is never silent: the restore ends with
//! [`RestoreError::Incomplete`], naming each such entry and why. Nothing is
//! written outside the target, and nothing appears under its name before
//! its SHA-256 matched the manifest.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::catalog::{BackupStatus, Catalog, CatalogError};
use crate::format::{open_blob, Entry, FormatError};
use crate::ids::ChunkId;
use crate::repo::{Index, RepoError, Repository};
use crate::storage::{Location, Storage, StorageError};

mod to_dir;
mod to_s3;

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
    /// Replace files (objects) that exist in the target; without it each
    /// is an entry not restored.
    pub overwrite: bool,
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
            overwrite: false,
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
        Location::Dir(dir) => to_dir::restore_to_dir(repo, index, &plan.entries, dir, options).await?,
        Location::S3 { bucket, prefix } => {
            let target = Storage::s3(s3.clone(), bucket, region);
            target.check().await.map_err(|e| RestoreError::Target {
                target: options.target.to_string(),
                message: e.to_string(),
            })?;
            to_s3::restore_to_s3(repo, index, &plan.entries, s3, bucket, prefix, options).await
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
