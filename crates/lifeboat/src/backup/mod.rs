//! A file backup from start to finish: claim it in the catalog, read what
//! changed through the pipeline on blocking threads, upload packs in
//! parallel, then index, manifest and the catalog's `completed`, in the order
//! FORMAT.md ("Write ordering") requires.
//!
//! [`attempt`] reads a source against its parent (change detection, the
//! workers); [`stream`] backs up one stream (a database dump); this module
//! chooses the parent, claims the record and does the last writes both share.

use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::catalog::{BackupRecord, BackupStatus, Begin, Catalog, CatalogError, ClaimTarget, Completion, Heartbeat};
use crate::format::{BackupType, Entry, IndexPack, Manifest, SealedPack, SkippedEntry, FORMAT_VERSION};
use crate::ids::BackupId;
use crate::pipeline::{PackSink, PipelineError};
use crate::repo::{Attribution, RepoError, Repository};
use crate::source::Source;
use crate::storage::{Location, StorageError};
use crate::times;

mod attempt;
mod stream;

use attempt::Attempt;
pub use stream::{run_stream_backup, StreamError, StreamSpec};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("source {source_name}: {error}")]
    Source { source_name: String, error: StorageError },
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("backup {id} failed: {message}")]
    Internal { id: String, message: String },
    #[error("{error}")]
    Stream { source_name: String, error: StreamError },
    #[error("backup {id} of {source_name} is still running (its heartbeat was {heartbeat_at}): this delivery made no backup and fails so that it is retried; a backup whose heartbeat stops is taken over after {stale_after}")]
    InProgress {
        id: String,
        source_name: String,
        heartbeat_at: String,
        stale_after: String,
    },
    #[error("source {source_name} is being backed up by another run (lease {holder}, heartbeat {heartbeat_at}) and was not free after {waited}: nothing was backed up; retry later")]
    SourceBusy {
        source_name: String,
        holder: String,
        heartbeat_at: String,
        waited: String,
    },
    #[error("source {source_name}: {} object(s) to back up no longer exist: {}; nothing was backed up (deleted after the event was sent?); the source's next scheduled backup records it as it is", paths.len(), paths.join(", "))]
    ObjectsGone { source_name: String, paths: Vec<String> },
}

/// What to back up, and how.
#[derive(Clone, Debug)]
pub struct BackupOptions {
    pub source: Location,
    pub backup_type: BackupType,
    /// Entries read at once (each on its own blocking thread).
    pub concurrency: usize,
    /// Packs uploaded at once.
    pub upload_concurrency: usize,
    /// A delivery's identity (an EventBridge event id): a second backup with
    /// the same key is not made.
    pub idempotency_key: Option<String>,
    pub retention_days: Option<u32>,
    /// Back up only these entries (paths relative to the source, e.g. the
    /// objects an S3 event names): the backup's tree is its parent's (the
    /// newest completed backup of the source) with these entries read anew,
    /// so it is complete on its own. An entry that no longer exists fails
    /// the backup. With no completed backup to build on, the whole source
    /// is read (a full backup).
    pub objects: Option<Vec<String>>,
}

impl BackupOptions {
    pub fn new(source: Location, backup_type: BackupType) -> Self {
        Self {
            source,
            backup_type,
            concurrency: 4,
            upload_concurrency: 4,
            idempotency_key: None,
            retention_days: None,
            objects: None,
        }
    }
}

/// The outcome, also logged as the backup's final structured log line.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupSummary {
    pub backup_id: String,
    #[serde(rename = "type")]
    pub backup_type: BackupType,
    pub status: BackupStatus,
    pub source: String,
    pub parent_backup: Option<String>,
    /// True when this delivery was a duplicate and no new backup was made.
    pub duplicate: bool,
    pub entries_scanned: u64,
    pub entries_changed: u64,
    pub bytes_scanned: u64,
    pub bytes_read: u64,
    /// Plaintext bytes of chunks the store did not have.
    pub bytes_new: u64,
    /// Bytes written to the store (packs, index, manifest).
    pub bytes_stored: u64,
    /// bytes_read / bytes_stored: what deduplication and compression saved.
    pub reduction_ratio: f64,
    pub packs_written: u64,
    pub duration_seconds: f64,
    /// Entries of a directory source the backup could not read (also in its
    /// manifest): the backup completed without them.
    pub skipped: Vec<SkippedEntry>,
}

impl BackupSummary {
    fn from_record(record: &BackupRecord, duplicate: bool) -> Self {
        Self {
            backup_id: record.id.clone(),
            backup_type: record.backup_type,
            status: record.status,
            source: record.source.clone(),
            parent_backup: record.parent_backup.clone(),
            duplicate,
            entries_scanned: record.entry_count,
            entries_changed: record.changed_count,
            bytes_scanned: record.size,
            bytes_read: 0,
            bytes_new: 0,
            bytes_stored: record.compressed_size,
            reduction_ratio: 0.0,
            packs_written: 0,
            duration_seconds: 0.0,
            skipped: Vec::new(),
        }
    }
}

/// Sends finished packs to the uploader; blocks when it is behind, which
/// bounds the memory of a backup.
pub(super) struct ChannelSink(pub(super) mpsc::Sender<SealedPack>);

impl PackSink for ChannelSink {
    fn pack_ready(&self, pack: SealedPack) -> Result<(), PipelineError> {
        self.0
            .blocking_send(pack)
            .map_err(|_| PipelineError::Sink("the upload of an earlier pack failed".into()))
    }
}

/// Runs one backup. The catalog record is the last thing written; on any
/// error the record is marked failed with the error, and nothing the backup
/// wrote is referenced.
///
/// The backup first takes its source's lease (`catalog::claims`), waiting
/// for a running backup of the same source to finish, and only then chooses
/// its parent: backups of one source run one after the other, each on the
/// newest completed one, so a burst of S3 events loses no object. While it
/// runs, a [`Heartbeat`] refreshes its record and the lease.
pub async fn run_backup(
    repo: Arc<Repository>,
    catalog: &Catalog,
    s3: &aws_sdk_s3::Client,
    region: &str,
    options: &BackupOptions,
) -> Result<BackupSummary, BackupError> {
    let started = Instant::now();
    let source = Arc::new(Source::new(&options.source, s3, region));
    let source_name = source.name();
    repo.bind_catalog(catalog.table(), catalog.region()).await?;
    let lease = match catalog.acquire_source_lease(&source_name).await? {
        Ok(lease) => lease,
        Err(other) => {
            return Err(BackupError::SourceBusy {
                source_name,
                holder: other.holder,
                heartbeat_at: other.heartbeat_at,
                waited: times::duration_text(
                    jiff::SignedDuration::try_from(catalog.claim_timing().lease_wait).unwrap_or_default(),
                ),
            })
        }
    };
    let lease_heartbeat = Heartbeat::start(catalog, vec![lease.target()]);
    let result = backup_under_lease(repo, catalog, source, options, started).await;
    drop(lease_heartbeat);
    catalog.release_source_lease(lease).await;
    result
}

/// [`run_backup`] once the source's lease is held.
async fn backup_under_lease(
    repo: Arc<Repository>,
    catalog: &Catalog,
    source: Arc<Source>,
    options: &BackupOptions,
    started: Instant,
) -> Result<BackupSummary, BackupError> {
    let source_name = source.name();
    // Named objects always build on the newest backup, whatever the type asked.
    let parent = match (options.backup_type, &options.objects) {
        (BackupType::Full, None) => None,
        (_, Some(_)) | (BackupType::Incremental, None) => latest_in_store(&repo, catalog, &source_name, false).await?,
        (BackupType::Differential, None) => latest_in_store(&repo, catalog, &source_name, true).await?,
    };
    let backup_type = if parent.is_none() && options.backup_type != BackupType::Full {
        tracing::info!(source = %source_name, requested = options.backup_type.as_str(), "no completed backup to build on: running a full backup");
        BackupType::Full
    } else if parent.is_some() && options.objects.is_some() {
        BackupType::Incremental
    } else {
        options.backup_type
    };
    let mut record = pending_record(&repo, &source_name, backup_type);
    record.parent_backup = parent.as_ref().map(|p| p.id.clone());
    record.retention_until = options.retention_days.map(|d| retention_until(&record.created_at, d));
    match catalog.begin(&record, options.idempotency_key.as_deref()).await? {
        Begin::Started => {}
        Begin::Duplicate(existing) => {
            tracing::info!(backup_id = %existing.id, status = existing.status.as_str(), idempotency_key = ?options.idempotency_key, "duplicate delivery: this event already made a backup");
            return Ok(BackupSummary::from_record(&existing, true));
        }
        Begin::Busy(existing) => return Err(in_progress(catalog, &existing)),
    }
    let _heartbeat = Heartbeat::start(catalog, vec![ClaimTarget::Backup(record.id.clone())]);
    let attempt = Attempt {
        repo,
        catalog,
        source,
        record: &record,
        parent: parent.as_ref(),
        options,
        started,
    };
    match attempt.run().await {
        Ok(summary) => {
            tracing::info!(
                backup_id = %summary.backup_id,
                backup_type = summary.backup_type.as_str(),
                source = %summary.source,
                entries_scanned = summary.entries_scanned,
                entries_changed = summary.entries_changed,
                bytes_read = summary.bytes_read,
                bytes_new = summary.bytes_new,
                bytes_stored = summary.bytes_stored,
                reduction_ratio = summary.reduction_ratio,
                duration_seconds = summary.duration_seconds,
                entries_skipped = summary.skipped.len(),
                "backup completed"
            );
            for skipped in &summary.skipped {
                tracing::warn!(backup_id = %summary.backup_id, path = %skipped.path, reason = %skipped.reason, "entry skipped");
            }
            record_completion(catalog, &summary).await;
            Ok(summary)
        }
        Err(error) => {
            record_failure(catalog, &record.id, &error).await;
            Err(error)
        }
    }
}

/// The newest completed backup of `source_name` in this store (a full one
/// when `full` is set): a parent must be in the store its child is written
/// to, or the child would reference chunks and a manifest this store does
/// not have. A record older than store ids counts when it is certainly this
/// store's, or when its manifest is here.
async fn latest_in_store(
    repo: &Repository,
    catalog: &Catalog,
    source_name: &str,
    full: bool,
) -> Result<Option<BackupRecord>, BackupError> {
    for record in catalog.list(Some(source_name)).await? {
        if record.status != BackupStatus::Completed || (full && record.backup_type != BackupType::Full) {
            continue;
        }
        let here = match repo.attribute(&record).await {
            Attribution::Ours => true,
            Attribution::Other => false,
            Attribution::Uncertain => repo.has_manifest(&record.id).await?,
        };
        if here {
            return Ok(Some(record));
        }
    }
    Ok(None)
}

/// The error of a delivery that found its event's backup still running.
pub(super) fn in_progress(catalog: &Catalog, existing: &BackupRecord) -> BackupError {
    tracing::warn!(backup_id = %existing.id, heartbeat_at = existing.last_alive(), "the event's backup is still running: this delivery fails so that it is retried");
    BackupError::InProgress {
        id: existing.id.clone(),
        source_name: existing.source.clone(),
        heartbeat_at: existing.last_alive().to_owned(),
        stale_after: times::duration_text(catalog.claim_timing().stale_after),
    }
}

/// Appends `backup.completed` to the audit trail. The backup is already
/// complete: a trail that cannot be written is logged, not a failure.
async fn record_completion(catalog: &Catalog, summary: &BackupSummary) {
    let event = crate::audit::AuditEvent::new(
        "backup.completed",
        &summary.backup_id,
        serde_json::json!({
            "type": summary.backup_type.as_str(),
            "source": summary.source,
            "parentBackup": summary.parent_backup,
            "entries": summary.entries_scanned,
            "bytes": summary.bytes_scanned,
            "bytesStored": summary.bytes_stored,
        }),
    );
    if let Err(error) = catalog.audit_trail().append(event).await {
        tracing::warn!(backup_id = %summary.backup_id, error = %error, "backup completed but could not be recorded in the audit trail");
    }
}

/// Marks a backup failed with `error`; a catalog that cannot be updated is logged.
pub(super) async fn record_failure(catalog: &Catalog, id: &str, error: &BackupError) {
    let message = error.to_string();
    tracing::error!(backup_id = %id, error = %message, "backup failed");
    if let Err(mark) = catalog.fail(id, &message).await {
        tracing::error!(backup_id = %id, error = %mark, "could not mark the backup failed in the catalog");
    }
}

/// Uploads the packs sent on `packs`, `concurrency` at once; yields their index entries.
pub(super) fn spawn_uploader(
    repo: Arc<Repository>,
    concurrency: usize,
    mut packs: mpsc::Receiver<SealedPack>,
) -> tokio::task::JoinHandle<Result<Vec<IndexPack>, RepoError>> {
    tokio::spawn(async move {
        futures::stream::poll_fn(move |cx| packs.poll_recv(cx))
            .map(|pack| {
                let repo = repo.clone();
                async move { repo.put_pack(pack).await }
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect::<Vec<IndexPack>>()
            .await
    })
}

/// A new backup's record, `pending`, created now: its id, where its
/// manifest will be, the store's id and key.
pub(super) fn pending_record(repo: &Repository, source_name: &str, backup_type: BackupType) -> BackupRecord {
    let now = times::now();
    let id = BackupId::new(now);
    BackupRecord {
        id: id.to_string(),
        backup_type,
        status: BackupStatus::Pending,
        source: source_name.to_owned(),
        size: 0,
        compressed_size: 0,
        entry_count: 0,
        changed_count: 0,
        created_at: times::format(now),
        heartbeat_at: Some(times::format(now)),
        completed_at: None,
        retention_until: None,
        checksum: None,
        storage_location: repo.storage.describe(&repo.layout.manifest(id.as_str())),
        store_id: Some(repo.config.store_id.clone()),
        parent_backup: None,
        kms_key_id: repo.config.kms_key_id.clone(),
        error: None,
        engine: None,
        server_version: None,
        database: None,
        gc_ticket: None,
    }
}

/// When a backup created at `created_at` (as the record has it) and kept for
/// `days` may go: that time plus whole days.
pub(super) fn retention_until(created_at: &str, days: u32) -> String {
    let created = times::parse(created_at).unwrap_or_else(|_| times::now());
    times::format(created + jiff::SignedDuration::from_hours(i64::from(days) * 24))
}

/// What the last writes of a backup stored.
pub(super) struct Stored {
    /// Plaintext bytes of every entry.
    pub(super) size: u64,
    pub(super) entry_count: u64,
    /// Bytes of packs, index and manifest written.
    pub(super) bytes_stored: u64,
    pub(super) packs_written: u64,
    pub(super) skipped: Vec<SkippedEntry>,
}

/// The last writes of a backup, in FORMAT.md's order: the index of its
/// packs, its manifest, then the catalog's `completed`.
pub(super) async fn store_and_complete(
    repo: &Repository,
    catalog: &Catalog,
    record: &BackupRecord,
    packs: Vec<IndexPack>,
    entries: Vec<Entry>,
    skipped: Vec<SkippedEntry>,
    changed: u64,
) -> Result<Stored, BackupError> {
    let mut bytes_stored: u64 = packs.iter().map(|p| p.size).sum();
    let packs_written = packs.len() as u64;
    if !packs.is_empty() {
        repo.put_index(packs).await?;
    }
    let manifest = Manifest {
        version: FORMAT_VERSION,
        backup_id: record.id.clone(),
        source: record.source.clone(),
        backup_type: record.backup_type,
        parent_backup: record.parent_backup.clone(),
        created_at: record.created_at.clone(),
        entries,
        skipped,
    };
    let checksum = repo.put_manifest(&manifest).await?;
    bytes_stored += manifest.seal(&repo.keys).map(|m| m.len() as u64).unwrap_or(0);
    let size = manifest.size();
    let entry_count = manifest.entries.len() as u64;
    catalog
        .complete(
            &record.id,
            &Completion {
                size,
                compressed_size: bytes_stored,
                entry_count,
                changed_count: changed,
                checksum,
            },
        )
        .await?;
    Ok(Stored {
        size,
        entry_count,
        bytes_stored,
        packs_written,
        skipped: manifest.skipped,
    })
}

impl BackupSummary {
    /// A completed backup's summary: what was stored, what was read and found new.
    pub(super) fn completed(
        record: &BackupRecord,
        stored: &Stored,
        changed: u64,
        bytes_read: u64,
        bytes_new: u64,
        started: Instant,
    ) -> Self {
        Self {
            backup_id: record.id.clone(),
            backup_type: record.backup_type,
            status: BackupStatus::Completed,
            source: record.source.clone(),
            parent_backup: record.parent_backup.clone(),
            duplicate: false,
            entries_scanned: stored.entry_count,
            entries_changed: changed,
            bytes_scanned: stored.size,
            bytes_read,
            bytes_new,
            bytes_stored: stored.bytes_stored,
            reduction_ratio: if stored.bytes_stored == 0 {
                0.0
            } else {
                bytes_read as f64 / stored.bytes_stored as f64
            },
            packs_written: stored.packs_written,
            duration_seconds: started.elapsed().as_secs_f64(),
            skipped: stored.skipped.clone(),
        }
    }
}
