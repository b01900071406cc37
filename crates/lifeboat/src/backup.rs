//! A file backup from start to finish: claim it in the catalog, read what
//! changed through the pipeline on blocking threads, upload packs in
//! parallel, then index, manifest and the catalog's `completed`, in the order
//! FORMAT.md ("Write ordering") requires.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::catalog::{format_time, BackupRecord, BackupStatus, Begin, Catalog, CatalogError, Completion};
use crate::crypto::Keys;
use crate::format::{BackupType, Entry, FormatError, IndexPack, Manifest, PackBuilder, SealedPack, FORMAT_VERSION};
use crate::ids::BackupId;
use crate::pipeline::{ChunkSet, PackSink, PipelineError, Worker};
use crate::repo::{RepoError, Repository};
use crate::source::{Source, SourceEntry};
use crate::storage::{Location, StorageError};

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
        }
    }
}

/// Sends finished packs to the uploader; blocks when it is behind, which
/// bounds the memory of a backup.
struct ChannelSink(mpsc::Sender<SealedPack>);

impl PackSink for ChannelSink {
    fn pack_ready(&self, pack: SealedPack) -> Result<(), PipelineError> {
        self.0
            .blocking_send(pack)
            .map_err(|_| PipelineError::Sink("the upload of an earlier pack failed".into()))
    }
}

/// Whether the parent's entry still describes the source's entry.
fn unchanged(previous: &Entry, now: &SourceEntry) -> bool {
    previous.size == now.size
        && match (&previous.etag, &now.etag) {
            (Some(a), Some(b)) => a == b,
            (None, None) => previous.mtime == now.mtime && previous.mode == now.mode,
            _ => false,
        }
}

/// Runs one backup. The catalog record is the last thing written; on any
/// error the record is marked failed with the error, and nothing the backup
/// wrote is referenced.
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
    // Named objects always build on the newest backup, whatever the type asked.
    let parent = match (options.backup_type, &options.objects) {
        (BackupType::Full, None) => None,
        (_, Some(_)) | (BackupType::Incremental, None) => catalog.latest_completed(&source_name, |_| true).await?,
        (BackupType::Differential, None) => {
            catalog
                .latest_completed(&source_name, |r| r.backup_type == BackupType::Full)
                .await?
        }
    };
    let backup_type = if parent.is_none() && options.backup_type != BackupType::Full {
        tracing::info!(source = %source_name, requested = options.backup_type.as_str(), "no completed backup to build on: running a full backup");
        BackupType::Full
    } else if parent.is_some() && options.objects.is_some() {
        BackupType::Incremental
    } else {
        options.backup_type
    };
    let now = time::OffsetDateTime::now_utc();
    let id = BackupId::new(now);
    let record = BackupRecord {
        id: id.to_string(),
        backup_type,
        status: BackupStatus::Pending,
        source: source_name.clone(),
        size: 0,
        compressed_size: 0,
        entry_count: 0,
        changed_count: 0,
        created_at: format_time(now),
        completed_at: None,
        retention_until: options
            .retention_days
            .map(|d| format_time(now + time::Duration::days(d.into()))),
        checksum: None,
        storage_location: repo.storage.describe(&repo.layout.manifest(id.as_str())),
        parent_backup: parent.as_ref().map(|p| p.id.clone()),
        kms_key_id: repo.config.kms_key_id.clone(),
        error: None,
        engine: None,
        server_version: None,
        database: None,
    };
    if let Begin::Duplicate(existing) = catalog.begin(&record, options.idempotency_key.as_deref()).await? {
        tracing::info!(backup_id = %existing.id, status = existing.status.as_str(), idempotency_key = ?options.idempotency_key, "duplicate delivery: this event already made a backup");
        return Ok(BackupSummary::from_record(&existing, true));
    }
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
                "backup completed"
            );
            record_completion(catalog, &summary).await;
            Ok(summary)
        }
        Err(error) => {
            record_failure(catalog, &record.id, &error).await;
            Err(error)
        }
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
async fn record_failure(catalog: &Catalog, id: &str, error: &BackupError) {
    let message = error.to_string();
    tracing::error!(backup_id = %id, error = %message, "backup failed");
    if let Err(mark) = catalog.fail(id, &message).await {
        tracing::error!(backup_id = %id, error = %mark, "could not mark the backup failed in the catalog");
    }
}

/// Uploads the packs sent on `packs`, `concurrency` at once; yields their index entries.
fn spawn_uploader(
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

struct Attempt<'a> {
    repo: Arc<Repository>,
    catalog: &'a Catalog,
    source: Arc<Source>,
    record: &'a BackupRecord,
    parent: Option<&'a BackupRecord>,
    options: &'a BackupOptions,
    started: Instant,
}

/// Counters shared by the workers.
#[derive(Default)]
struct Counters {
    bytes_read: AtomicU64,
    bytes_new: AtomicU64,
}

impl Attempt<'_> {
    /// The parent's entries as a listing would show them, with `objects`
    /// looked up anew in the source (added, or replacing the parent's).
    async fn parent_with(
        &self,
        objects: &[String],
        previous: &HashMap<String, Entry>,
    ) -> Result<Vec<SourceEntry>, BackupError> {
        let mut listed: std::collections::BTreeMap<String, SourceEntry> = previous
            .values()
            .map(|e| {
                let entry = SourceEntry {
                    path: e.path.clone(),
                    size: e.size,
                    mtime: e.mtime.clone(),
                    mode: e.mode,
                    etag: e.etag.clone(),
                };
                (e.path.clone(), entry)
            })
            .collect();
        let mut gone = Vec::new();
        for path in objects {
            let found = self.source.stat(path).await.map_err(|error| BackupError::Source {
                source_name: self.source.name(),
                error,
            })?;
            match found {
                Some(entry) => {
                    listed.insert(path.clone(), entry);
                }
                None => gone.push(path.clone()),
            }
        }
        if !gone.is_empty() {
            return Err(BackupError::ObjectsGone {
                source_name: self.source.name(),
                paths: gone,
            });
        }
        Ok(listed.into_values().collect())
    }

    async fn run(&self) -> Result<BackupSummary, BackupError> {
        let id = &self.record.id;
        self.catalog.mark_in_progress(id).await?;
        let index = self.repo.load_index().await?;
        let chunks = Arc::new(ChunkSet::new(index.dedup_chunks()));
        let previous: HashMap<String, Entry> = match self.parent {
            Some(parent) => self
                .repo
                .get_manifest(&parent.id, parent.checksum.as_deref())
                .await?
                .entries
                .into_iter()
                .map(|e| (e.path.clone(), e))
                .collect(),
            None => HashMap::new(),
        };
        let source_name = self.source.name();
        let listed = match (&self.options.objects, self.parent) {
            (Some(objects), Some(_)) => self.parent_with(objects, &previous).await?,
            _ => self.source.list().await.map_err(|error| BackupError::Source {
                source_name: source_name.clone(),
                error,
            })?,
        };
        let mut entries: Vec<Option<Entry>> = Vec::with_capacity(listed.len());
        let mut jobs = Vec::new();
        for (i, item) in listed.iter().enumerate() {
            match previous.get(&item.path) {
                Some(prev) if unchanged(prev, item) => entries.push(Some(prev.clone())),
                _ => {
                    entries.push(None);
                    jobs.push(i);
                }
            }
        }
        let changed = jobs.len() as u64;
        let listed = Arc::new(listed);
        let counters = Arc::new(Counters::default());

        let (pack_tx, pack_rx) = mpsc::channel::<SealedPack>(2);
        let uploader = spawn_uploader(self.repo.clone(), self.options.upload_concurrency, pack_rx);

        let jobs = Arc::new(jobs);
        let cursor = Arc::new(AtomicUsize::new(0));
        let abort = Arc::new(AtomicBool::new(false));
        let handle = tokio::runtime::Handle::current();
        let mut workers = Vec::new();
        for _ in 0..self.options.concurrency.clamp(1, jobs.len().max(1)) {
            let (keys, config) = (self.repo.keys.clone(), self.repo.config.clone());
            let (source, listed, jobs, cursor, abort) = (
                self.source.clone(),
                listed.clone(),
                jobs.clone(),
                cursor.clone(),
                abort.clone(),
            );
            let (chunks, counters, sink, handle) = (
                chunks.clone(),
                counters.clone(),
                ChannelSink(pack_tx.clone()),
                handle.clone(),
            );
            workers.push(tokio::task::spawn_blocking(
                move || -> Result<WorkerOutput, BackupError> {
                    let mut worker = Worker::new(keys, config.chunker, config.compression.level)?;
                    let mut done = Vec::new();
                    let result = (|| {
                        loop {
                            let next = cursor.fetch_add(1, Ordering::Relaxed);
                            if next >= jobs.len() || abort.load(Ordering::Relaxed) {
                                break;
                            }
                            let item = &listed[jobs[next]];
                            let (reader, meta) =
                                source
                                    .open_blocking(item, &handle)
                                    .map_err(|error| BackupError::Source {
                                        source_name: source.name(),
                                        error,
                                    })?;
                            let digest = worker.process_entry(reader, &item.path, &chunks, &sink)?;
                            counters.bytes_read.fetch_add(digest.size, Ordering::Relaxed);
                            counters.bytes_new.fetch_add(digest.new_bytes, Ordering::Relaxed);
                            done.push((
                                jobs[next],
                                Entry {
                                    path: item.path.clone(),
                                    size: digest.size,
                                    sha256: digest.sha256,
                                    mtime: item.mtime.clone(),
                                    mode: item.mode,
                                    etag: meta.etag.or_else(|| item.etag.clone()),
                                    version_id: meta.version_id,
                                    chunks: digest.chunks,
                                },
                            ));
                        }
                        Ok(())
                    })();
                    if result.is_err() {
                        abort.store(true, Ordering::Relaxed);
                    }
                    result.map(|()| (done, worker.into_open_pack()))
                },
            ));
        }

        let mut first_error: Option<BackupError> = None;
        let mut open_packs = Vec::new();
        for worker in workers {
            let outcome = worker.await.map_err(|e| BackupError::Internal {
                id: id.clone(),
                message: e.to_string(),
            });
            match outcome.and_then(|r| r) {
                Ok((done, open_pack)) => {
                    for (i, entry) in done {
                        entries[i] = Some(entry);
                    }
                    open_packs.push(open_pack);
                }
                Err(error) => {
                    let is_sink = matches!(error, BackupError::Pipeline(PipelineError::Sink(_)));
                    if first_error.is_none() || !is_sink {
                        first_error.get_or_insert(error);
                    }
                }
            }
        }
        if first_error.is_none() {
            // The workers' last, partly filled packs become as few packs as they fill.
            let keys = self.repo.keys.clone();
            let merged = tokio::task::spawn_blocking(move || merge_open_packs(&keys, open_packs))
                .await
                .map_err(|e| BackupError::Internal {
                    id: id.clone(),
                    message: e.to_string(),
                })?;
            match merged {
                Ok(packs) => {
                    for pack in packs {
                        if pack_tx.send(pack).await.is_err() {
                            break; // the uploader failed; its error is reported below
                        }
                    }
                }
                Err(error) => first_error = Some(PipelineError::from(error).into()),
            }
        }
        drop(pack_tx);
        let uploaded = uploader.await.map_err(|e| BackupError::Internal {
            id: id.clone(),
            message: e.to_string(),
        });
        let packs = match (uploaded, first_error) {
            (Ok(Err(upload_error)), _) => return Err(upload_error.into()),
            (Err(join), _) => return Err(join),
            (Ok(Ok(_)), Some(error)) => return Err(error),
            (Ok(Ok(packs)), None) => packs,
        };

        let mut bytes_stored: u64 = packs.iter().map(|p| p.size).sum();
        let packs_written = packs.len() as u64;
        if !packs.is_empty() {
            self.repo.put_index(packs).await?;
        }
        let entries: Vec<Entry> = entries
            .into_iter()
            .collect::<Option<_>>()
            .ok_or_else(|| BackupError::Internal {
                id: id.clone(),
                message: "an entry was neither read nor reused".into(),
            })?;
        let manifest = Manifest {
            version: FORMAT_VERSION,
            backup_id: id.clone(),
            source: source_name.clone(),
            backup_type: self.record.backup_type,
            parent_backup: self.record.parent_backup.clone(),
            created_at: self.record.created_at.clone(),
            entries,
        };
        let checksum = self.repo.put_manifest(&manifest).await?;
        bytes_stored += manifest.seal(&self.repo.keys).map(|m| m.len() as u64).unwrap_or(0);
        let size = manifest.size();
        let entry_count = manifest.entries.len() as u64;
        self.catalog
            .complete(
                id,
                &Completion {
                    size,
                    compressed_size: bytes_stored,
                    entry_count,
                    changed_count: changed,
                    checksum,
                },
            )
            .await?;
        let bytes_read = counters.bytes_read.load(Ordering::Relaxed);
        Ok(BackupSummary {
            backup_id: id.clone(),
            backup_type: self.record.backup_type,
            status: BackupStatus::Completed,
            source: source_name,
            parent_backup: self.record.parent_backup.clone(),
            duplicate: false,
            entries_scanned: entry_count,
            entries_changed: changed,
            bytes_scanned: size,
            bytes_read,
            bytes_new: counters.bytes_new.load(Ordering::Relaxed),
            bytes_stored,
            reduction_ratio: if bytes_stored == 0 {
                0.0
            } else {
                bytes_read as f64 / bytes_stored as f64
            },
            packs_written,
            duration_seconds: self.started.elapsed().as_secs_f64(),
        })
    }
}

/// What a single-stream backup (a database dump) is, for its record and manifest.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    /// The catalog's source name (a database URL without its password).
    pub source_name: String,
    /// The manifest's one entry, e.g. `postgresql/shop.pgdump`.
    pub entry_path: String,
    pub backup_type: BackupType,
    pub retention_days: Option<u32>,
    pub engine: Option<String>,
    pub server_version: Option<String>,
    pub database: Option<String>,
}

/// An error of the stream itself (the program producing it), as its producer words it.
pub type StreamError = Box<dyn std::error::Error + Send + Sync>;

/// Backs up one stream as a one-entry backup, with the write ordering,
/// catalog transitions and deduplication of [`run_backup`]. `open` runs on a
/// blocking thread once the record is in progress; the stream is read to its
/// end, and a reader that fails at its end (a dump program that exited
/// non-zero) fails the backup. Stream backups have no parent: deduplication
/// against the whole store already makes a repeated dump cheap.
pub async fn run_stream_backup<R, F>(
    repo: Arc<Repository>,
    catalog: &Catalog,
    spec: &StreamSpec,
    open: F,
) -> Result<BackupSummary, BackupError>
where
    R: std::io::Read,
    F: FnOnce() -> Result<R, StreamError> + Send + 'static,
{
    let started = Instant::now();
    let now = time::OffsetDateTime::now_utc();
    let id = BackupId::new(now);
    let record = BackupRecord {
        id: id.to_string(),
        backup_type: spec.backup_type,
        status: BackupStatus::Pending,
        source: spec.source_name.clone(),
        size: 0,
        compressed_size: 0,
        entry_count: 0,
        changed_count: 0,
        created_at: format_time(now),
        completed_at: None,
        retention_until: spec
            .retention_days
            .map(|d| format_time(now + time::Duration::days(d.into()))),
        checksum: None,
        storage_location: repo.storage.describe(&repo.layout.manifest(id.as_str())),
        parent_backup: None,
        kms_key_id: repo.config.kms_key_id.clone(),
        error: None,
        engine: spec.engine.clone(),
        server_version: spec.server_version.clone(),
        database: spec.database.clone(),
    };
    catalog.begin(&record, None).await?;
    match stream_attempt(repo, catalog, spec, &record, open, started).await {
        Ok(summary) => {
            tracing::info!(
                backup_id = %summary.backup_id,
                source = %summary.source,
                bytes_read = summary.bytes_read,
                bytes_new = summary.bytes_new,
                bytes_stored = summary.bytes_stored,
                duration_seconds = summary.duration_seconds,
                "stream backup completed"
            );
            Ok(summary)
        }
        Err(error) => {
            record_failure(catalog, &record.id, &error).await;
            Err(error)
        }
    }
}

async fn stream_attempt<R, F>(
    repo: Arc<Repository>,
    catalog: &Catalog,
    spec: &StreamSpec,
    record: &BackupRecord,
    open: F,
    started: Instant,
) -> Result<BackupSummary, BackupError>
where
    R: std::io::Read,
    F: FnOnce() -> Result<R, StreamError> + Send + 'static,
{
    let id = &record.id;
    let internal = |message: String| BackupError::Internal {
        id: id.clone(),
        message,
    };
    catalog.mark_in_progress(id).await?;
    let index = repo.load_index().await?;
    let chunks = ChunkSet::new(index.dedup_chunks());
    drop(index);
    let (pack_tx, pack_rx) = mpsc::channel::<SealedPack>(2);
    let uploader = spawn_uploader(repo.clone(), 4, pack_rx);
    let (keys, config) = (repo.keys.clone(), repo.config.clone());
    let (source_name, entry_path) = (spec.source_name.clone(), spec.entry_path.clone());
    let sink = ChannelSink(pack_tx);
    let worker = tokio::task::spawn_blocking(move || -> Result<_, BackupError> {
        let mut worker = Worker::new(keys.clone(), config.chunker, config.compression.level)?;
        let reader = open().map_err(|error| BackupError::Stream {
            source_name: source_name.clone(),
            error,
        })?;
        let digest = worker.process_entry(reader, &entry_path, &chunks, &sink)?;
        let open_pack = worker.into_open_pack();
        if !open_pack.is_empty() {
            let last = open_pack.finish(&keys).map_err(PipelineError::from)?;
            sink.pack_ready(last)?;
        }
        Ok(digest)
    });
    let read = worker.await.map_err(|e| internal(e.to_string()));
    let uploaded = uploader.await.map_err(|e| internal(e.to_string()));
    let (digest, packs) = match (read.and_then(|r| r), uploaded) {
        // A failed upload makes the reader fail too: report the upload's error.
        (_, Ok(Err(upload_error))) => return Err(upload_error.into()),
        (_, Err(join)) => return Err(join),
        (Err(error), _) => return Err(error),
        (Ok(digest), Ok(Ok(packs))) => (digest, packs),
    };
    let mut bytes_stored: u64 = packs.iter().map(|p| p.size).sum();
    let packs_written = packs.len() as u64;
    if !packs.is_empty() {
        repo.put_index(packs).await?;
    }
    let entry = Entry {
        path: spec.entry_path.clone(),
        size: digest.size,
        sha256: digest.sha256,
        mtime: Some(record.created_at.clone()),
        mode: None,
        etag: None,
        version_id: None,
        chunks: digest.chunks,
    };
    let manifest = Manifest {
        version: FORMAT_VERSION,
        backup_id: id.clone(),
        source: spec.source_name.clone(),
        backup_type: record.backup_type,
        parent_backup: None,
        created_at: record.created_at.clone(),
        entries: vec![entry],
    };
    let checksum = repo.put_manifest(&manifest).await?;
    bytes_stored += manifest.seal(&repo.keys).map(|m| m.len() as u64).unwrap_or(0);
    let size = manifest.size();
    catalog
        .complete(
            id,
            &Completion {
                size,
                compressed_size: bytes_stored,
                entry_count: 1,
                changed_count: 1,
                checksum,
            },
        )
        .await?;
    Ok(BackupSummary {
        backup_id: id.clone(),
        backup_type: record.backup_type,
        status: BackupStatus::Completed,
        source: spec.source_name.clone(),
        parent_backup: None,
        duplicate: false,
        entries_scanned: 1,
        entries_changed: 1,
        bytes_scanned: size,
        bytes_read: digest.size,
        bytes_new: digest.new_bytes,
        bytes_stored,
        reduction_ratio: if bytes_stored == 0 {
            0.0
        } else {
            digest.size as f64 / bytes_stored as f64
        },
        packs_written,
        duration_seconds: started.elapsed().as_secs_f64(),
    })
}

/// What a worker hands back: the entries it read and its unfinished pack.
type WorkerOutput = (Vec<(usize, Entry)>, PackBuilder);

fn merge_open_packs(keys: &Keys, open_packs: Vec<PackBuilder>) -> Result<Vec<SealedPack>, FormatError> {
    let mut sealed = Vec::new();
    let mut current = PackBuilder::new();
    for open in &open_packs {
        for (entry, blob) in open.blobs() {
            current.push_sealed(entry, blob);
            if current.is_full() {
                sealed.push(std::mem::take(&mut current).finish(keys)?);
            }
        }
    }
    if !current.is_empty() {
        sealed.push(current.finish(keys)?);
    }
    Ok(sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(size: u64, etag: Option<&str>, mtime: Option<&str>) -> Entry {
        Entry {
            path: "p".into(),
            size,
            sha256: String::new(),
            mtime: mtime.map(str::to_owned),
            mode: Some(0o644),
            etag: etag.map(str::to_owned),
            version_id: None,
            chunks: vec![],
        }
    }

    fn listed(size: u64, etag: Option<&str>, mtime: Option<&str>) -> SourceEntry {
        SourceEntry {
            path: "p".into(),
            size,
            mtime: mtime.map(str::to_owned),
            mode: Some(0o644),
            etag: etag.map(str::to_owned),
        }
    }

    #[test]
    fn change_detection_uses_etag_for_objects_and_mtime_for_files() {
        let cases = [
            (
                entry(1, Some("\"a\""), None),
                listed(1, Some("\"a\""), Some("t2")),
                true,
            ),
            (entry(1, Some("\"a\""), None), listed(1, Some("\"b\""), None), false),
            (entry(1, Some("\"a\""), None), listed(2, Some("\"a\""), None), false),
            (entry(1, None, Some("t1")), listed(1, None, Some("t1")), true),
            (entry(1, None, Some("t1")), listed(1, None, Some("t2")), false),
            (entry(1, None, Some("t1")), listed(1, Some("\"a\""), Some("t1")), false),
        ];
        for (i, (previous, now, expected)) in cases.iter().enumerate() {
            assert_eq!(unchanged(previous, now), *expected, "case {i}");
        }
    }
}
