//! A backup of one stream (a database dump): one entry read from a reader
//! on a blocking thread, with the write ordering, catalog transitions and
//! deduplication of a file backup, and no parent.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::{
    pending_record, record_failure, retention_until, spawn_uploader, store_and_complete, BackupError, BackupSummary,
    ChannelSink,
};
use crate::catalog::{BackupRecord, Catalog};
use crate::format::{BackupType, Entry, SealedPack};
use crate::pipeline::{ChunkSet, PackSink, PipelineError, Worker};
use crate::repo::Repository;

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
    repo.bind_catalog(catalog.table(), catalog.region()).await?;
    let mut record = pending_record(&repo, &spec.source_name, spec.backup_type);
    record.retention_until = spec.retention_days.map(|d| retention_until(&record.created_at, d));
    record.engine = spec.engine.clone();
    record.server_version = spec.server_version.clone();
    record.database = spec.database.clone();
    catalog.begin(&record, None).await?;
    let _heartbeat =
        crate::catalog::Heartbeat::start(catalog, vec![crate::catalog::ClaimTarget::Backup(record.id.clone())]);
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
    let index = super::attempt::load_index_in_gc_order(&repo, catalog, id).await?;
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
    let entry = Entry {
        path: spec.entry_path.clone(),
        size: digest.size,
        sha256: digest.sha256,
        mtime: Some(record.created_at.clone()),
        mode: None,
        etag: None,
        version_id: None,
        raw_path: None,
        ctime: None,
        inode: None,
        chunks: digest.chunks,
    };
    let stored = store_and_complete(&repo, catalog, record, packs, vec![entry], Vec::new(), 1).await?;
    Ok(BackupSummary::completed(
        record,
        &stored,
        1,
        digest.size,
        digest.new_bytes,
        started,
    ))
}
