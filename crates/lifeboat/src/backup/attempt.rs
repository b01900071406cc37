//! One file backup's reading: the parent's entries, the source's listing (or
//! the parent's tree with named objects looked up anew), change detection
//! against the parent, the changed entries read through the pipeline on
//! blocking workers, and the workers' last packs merged and uploaded.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::{spawn_uploader, store_and_complete, BackupError, BackupOptions, BackupSummary, ChannelSink};
use crate::catalog::{BackupRecord, Catalog};
use crate::crypto::Keys;
use crate::format::{Entry, FormatError, PackBuilder, SealedPack, SkippedEntry};
use crate::pipeline::{ChunkSet, PipelineError, Worker};
use crate::repo::{Index, Repository};
use crate::source::{Listing, Source, SourceEntry};
use crate::storage::StorageError;

/// Whether the parent's entry still describes the source's entry: an object
/// by its ETag; a file by size, mtime (nanoseconds), mode, ctime and inode,
/// so that a rewrite which keeps size and mtime is still read (its ctime
/// moved). A parent entry without ctime and inode (an older manifest)
/// counts as changed.
pub(super) fn unchanged(previous: &Entry, now: &SourceEntry) -> bool {
    previous.size == now.size
        && match (&previous.etag, &now.etag) {
            (Some(a), Some(b)) => a == b,
            (None, None) => {
                previous.mtime == now.mtime
                    && previous.mode == now.mode
                    && previous.ctime.is_some()
                    && previous.ctime == now.ctime
                    && previous.inode.is_some()
                    && previous.inode == now.inode
            }
            _ => false,
        }
}

pub(super) struct Attempt<'a> {
    pub(super) repo: Arc<Repository>,
    pub(super) catalog: &'a Catalog,
    pub(super) source: Arc<Source>,
    pub(super) record: &'a BackupRecord,
    pub(super) parent: Option<&'a BackupRecord>,
    pub(super) options: &'a BackupOptions,
    pub(super) started: Instant,
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
    async fn parent_with(&self, objects: &[String], previous: &HashMap<String, Entry>) -> Result<Listing, BackupError> {
        let mut listed: std::collections::BTreeMap<String, SourceEntry> = previous
            .values()
            .map(|e| {
                let entry = SourceEntry {
                    path: e.path.clone(),
                    raw_path: e.raw_path.clone(),
                    size: e.size,
                    mtime: e.mtime.clone(),
                    mode: e.mode,
                    etag: e.etag.clone(),
                    ctime: e.ctime.clone(),
                    inode: e.inode,
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
        Ok(Listing {
            entries: listed.into_values().collect(),
            skipped: Vec::new(),
        })
    }

    pub(super) async fn run(&self) -> Result<BackupSummary, BackupError> {
        let id = &self.record.id;
        self.catalog.mark_in_progress(id).await?;
        let index = load_index_in_gc_order(&self.repo, self.catalog, id).await?;
        let chunks = Arc::new(ChunkSet::new(index.dedup_chunks()));
        let previous = self.parent_entries().await?;
        let Listing {
            entries: listed,
            skipped,
        } = self.listing(&previous).await?;
        let (mut entries, jobs) = plan_reads(&listed, &previous, &index);
        drop(index);
        let changed = jobs.len() as u64;
        let counters = Arc::new(Counters::default());

        let (pack_tx, pack_rx) = mpsc::channel::<SealedPack>(2);
        let uploader = spawn_uploader(self.repo.clone(), self.options.upload_concurrency, pack_rx);
        let reads = Reads {
            listed: Arc::new(listed),
            jobs: Arc::new(jobs),
            chunks,
            counters: counters.clone(),
        };
        let workers = self.spawn_workers(&reads, &pack_tx);
        let mut skipped_reads = Vec::new();
        let (open_packs, mut first_error) = self.collect_workers(workers, &mut entries, &mut skipped_reads).await;
        if first_error.is_none() {
            first_error = self.send_last_packs(open_packs, &pack_tx).await?;
        }
        drop(pack_tx);
        let uploaded = uploader.await.map_err(|e| self.internal(e.to_string()));
        let packs = match (uploaded, first_error) {
            (Ok(Err(upload_error)), _) => return Err(upload_error.into()),
            (Err(join), _) => return Err(join),
            (Ok(Ok(_)), Some(error)) => return Err(error),
            (Ok(Ok(packs)), None) => packs,
        };

        let not_read: HashSet<usize> = skipped_reads.iter().map(|(i, _)| *i).collect();
        let entries: Vec<Entry> = entries
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !not_read.contains(i))
            .map(|(_, entry)| entry)
            .collect::<Option<_>>()
            .ok_or_else(|| self.internal("an entry was neither read nor reused".into()))?;
        let mut skipped = skipped;
        skipped.extend(skipped_reads.into_iter().map(|(_, s)| s));
        skipped.sort_by(|a, b| a.path.cmp(&b.path));
        let changed = changed - not_read.len() as u64;
        let stored =
            store_and_complete(&self.repo, self.catalog, self.record, packs, entries, skipped, changed).await?;
        Ok(BackupSummary::completed(
            self.record,
            &stored,
            changed,
            counters.bytes_read.load(Ordering::Relaxed),
            counters.bytes_new.load(Ordering::Relaxed),
            self.started,
        ))
    }

    fn internal(&self, message: String) -> BackupError {
        BackupError::Internal {
            id: self.record.id.clone(),
            message,
        }
    }

    /// The parent's entries by identity (none without a parent).
    async fn parent_entries(&self) -> Result<HashMap<String, Entry>, BackupError> {
        Ok(match self.parent {
            Some(parent) => self
                .repo
                .get_manifest(&parent.id, parent.checksum.as_deref())
                .await?
                .entries
                .into_iter()
                .map(|e| (e.identity(), e))
                .collect(),
            None => HashMap::new(),
        })
    }

    /// What the backup's tree holds: the source's listing, or with named
    /// objects and a parent, the parent's tree with those looked up anew.
    async fn listing(&self, previous: &HashMap<String, Entry>) -> Result<Listing, BackupError> {
        match (&self.options.objects, self.parent) {
            (Some(objects), Some(_)) => self.parent_with(objects, previous).await,
            _ => self.source.list().await.map_err(|error| BackupError::Source {
                source_name: self.source.name(),
                error,
            }),
        }
    }

    /// One blocking worker per `concurrency` (at most one per entry to
    /// read), each taking the next entry to read until none is left or one
    /// of them failed.
    fn spawn_workers(
        &self,
        reads: &Reads,
        pack_tx: &mpsc::Sender<SealedPack>,
    ) -> Vec<tokio::task::JoinHandle<Result<WorkerOutput, BackupError>>> {
        let cursor = Arc::new(AtomicUsize::new(0));
        let abort = Arc::new(AtomicBool::new(false));
        let handle = tokio::runtime::Handle::current();
        (0..self.options.concurrency.clamp(1, reads.jobs.len().max(1)))
            .map(|_| {
                let (keys, config) = (self.repo.keys.clone(), self.repo.config.clone());
                let (source, reads, cursor, abort) =
                    (self.source.clone(), reads.clone(), cursor.clone(), abort.clone());
                let (sink, handle) = (ChannelSink(pack_tx.clone()), handle.clone());
                tokio::task::spawn_blocking(move || -> Result<WorkerOutput, BackupError> {
                    let mut worker = Worker::new(keys, config.chunker, config.compression.level)?;
                    let mut done = Vec::new();
                    let result = read_entries(&mut worker, &source, &reads, &cursor, &abort, &sink, &handle, &mut done);
                    if result.is_err() {
                        abort.store(true, Ordering::Relaxed);
                    }
                    result.map(|()| (done, worker.into_open_pack()))
                })
            })
            .collect()
    }

    /// The workers' entries put in place and their unfinished packs; the
    /// first error (a failed upload's "sink" error only if nothing else failed).
    async fn collect_workers(
        &self,
        workers: Vec<tokio::task::JoinHandle<Result<WorkerOutput, BackupError>>>,
        entries: &mut [Option<Entry>],
        skipped: &mut Vec<(usize, SkippedEntry)>,
    ) -> (Vec<PackBuilder>, Option<BackupError>) {
        let mut first_error: Option<BackupError> = None;
        let mut open_packs = Vec::new();
        for worker in workers {
            let outcome = worker.await.map_err(|e| self.internal(e.to_string()));
            match outcome.and_then(|r| r) {
                Ok((done, open_pack)) => {
                    for (i, outcome) in done {
                        match outcome {
                            Ok(entry) => entries[i] = Some(entry),
                            Err(skip) => skipped.push((i, skip)),
                        }
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
        (open_packs, first_error)
    }

    /// The workers' last, partly filled packs merged into as few packs as
    /// they fill, and sent to the uploader. A merge that failed is returned.
    async fn send_last_packs(
        &self,
        open_packs: Vec<PackBuilder>,
        pack_tx: &mpsc::Sender<SealedPack>,
    ) -> Result<Option<BackupError>, BackupError> {
        let keys = self.repo.keys.clone();
        let merged = tokio::task::spawn_blocking(move || merge_open_packs(&keys, open_packs))
            .await
            .map_err(|e| self.internal(e.to_string()))?;
        match merged {
            Ok(packs) => {
                for pack in packs {
                    if pack_tx.send(pack).await.is_err() {
                        break; // the uploader failed; its error is reported later
                    }
                }
                Ok(None)
            }
            Err(error) => Ok(Some(PipelineError::from(error).into())),
        }
    }
}

/// The store's index for a backup that is about to deduplicate against it,
/// loaded only after the backup took its ticket of the store's GC sequence
/// and recorded it in its record (FORMAT.md, "Garbage collection": a
/// candidate list whose sequence is below the ticket existed before the
/// index was read, so the backup avoids its chunks; the sweep of any other
/// list waits for the backup).
pub(super) async fn load_index_in_gc_order(
    repo: &Repository,
    catalog: &Catalog,
    id: &str,
) -> Result<Index, BackupError> {
    let ticket = catalog.take_gc_ticket(&repo.config.store_id).await?;
    catalog.record_gc_ticket(id, ticket).await?;
    Ok(repo.load_index().await?)
}

/// Change detection: each listed entry the parent's (unchanged) or to be
/// read (`None`, its index among the jobs). An unchanged entry is reused
/// only if every chunk of it may be reused (`Index::may_reuse`): a chunk on
/// a garbage-collection candidate list (its parent may have been deleted
/// meanwhile) would be swept under the new backup, so the entry is read
/// again, as if changed.
fn plan_reads(
    listed: &[SourceEntry],
    previous: &HashMap<String, Entry>,
    index: &Index,
) -> (Vec<Option<Entry>>, Vec<usize>) {
    let mut entries: Vec<Option<Entry>> = Vec::with_capacity(listed.len());
    let mut jobs = Vec::new();
    for (i, item) in listed.iter().enumerate() {
        match previous.get(&item.identity()) {
            Some(prev) if unchanged(prev, item) && prev.chunks.iter().all(|c| index.may_reuse(c)) => {
                entries.push(Some(prev.clone()))
            }
            _ => {
                entries.push(None);
                jobs.push(i);
            }
        }
    }
    (entries, jobs)
}

/// What the workers share: the listing, the indexes of the entries to read,
/// the store's chunks and the byte counters.
#[derive(Clone)]
struct Reads {
    listed: Arc<Vec<SourceEntry>>,
    jobs: Arc<Vec<usize>>,
    chunks: Arc<ChunkSet>,
    counters: Arc<Counters>,
}

/// One worker's loop: the next entry to read, through the pipeline, into `done`.
#[allow(clippy::too_many_arguments)]
fn read_entries(
    worker: &mut Worker,
    source: &Source,
    reads: &Reads,
    cursor: &AtomicUsize,
    abort: &AtomicBool,
    sink: &ChannelSink,
    handle: &tokio::runtime::Handle,
    done: &mut Vec<(usize, Result<Entry, SkippedEntry>)>,
) -> Result<(), BackupError> {
    loop {
        let next = cursor.fetch_add(1, Ordering::Relaxed);
        if next >= reads.jobs.len() || abort.load(Ordering::Relaxed) {
            return Ok(());
        }
        let item = &reads.listed[reads.jobs[next]];
        let skip = |reason: String| {
            let path = item.path.clone();
            (reads.jobs[next], Err(SkippedEntry { path, reason }))
        };
        let (reader, meta) = match source.open_blocking(item, handle) {
            Ok(opened) => opened,
            // A directory's file gone or unreadable since the listing is skipped.
            Err(StorageError::NotFound(_)) if source.is_dir() => {
                done.push(skip("it vanished during the backup".into()));
                continue;
            }
            Err(StorageError::Other { message, .. }) if source.is_dir() => {
                done.push(skip(format!("it could not be opened: {message}")));
                continue;
            }
            Err(error) => {
                return Err(BackupError::Source {
                    source_name: source.name(),
                    error,
                })
            }
        };
        let digest = match worker.process_entry(reader, &item.path, &reads.chunks, sink) {
            Ok(digest) => digest,
            // Chunks read before the error are stored and indexed all the same.
            Err(PipelineError::Read { source: error, .. }) if source.is_dir() => {
                done.push(skip(format!("reading it failed: {error}")));
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        reads.counters.bytes_read.fetch_add(digest.size, Ordering::Relaxed);
        reads.counters.bytes_new.fetch_add(digest.new_bytes, Ordering::Relaxed);
        done.push((
            reads.jobs[next],
            Ok(Entry {
                path: item.path.clone(),
                raw_path: item.raw_path.clone(),
                size: digest.size,
                sha256: digest.sha256,
                mtime: item.mtime.clone(),
                mode: item.mode,
                etag: meta.etag.or_else(|| item.etag.clone()),
                version_id: meta.version_id,
                ctime: item.ctime.clone(),
                inode: item.inode,
                chunks: digest.chunks,
            }),
        ));
    }
}

/// What a worker hands back: the entries it read and its unfinished pack.
type WorkerOutput = (Vec<(usize, Result<Entry, SkippedEntry>)>, PackBuilder);

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

    /// (size, etag, mtime, ctime, inode) of an entry.
    type Seen<'a> = (u64, Option<&'a str>, Option<&'a str>, Option<&'a str>, Option<u64>);

    fn entry((size, etag, mtime, ctime, inode): Seen) -> Entry {
        Entry {
            path: "p".into(),
            raw_path: None,
            size,
            sha256: String::new(),
            mtime: mtime.map(str::to_owned),
            mode: Some(0o644),
            etag: etag.map(str::to_owned),
            version_id: None,
            ctime: ctime.map(str::to_owned),
            inode,
            chunks: vec![],
        }
    }

    fn listed((size, etag, mtime, ctime, inode): Seen) -> SourceEntry {
        SourceEntry {
            path: "p".into(),
            size,
            mtime: mtime.map(str::to_owned),
            mode: Some(0o644),
            etag: etag.map(str::to_owned),
            ctime: ctime.map(str::to_owned),
            inode,
            raw_path: None,
        }
    }

    #[test]
    fn an_unchanged_entry_whose_chunks_are_gc_candidates_is_read_again() {
        use crate::ids::{ChunkId, PackId};
        use crate::repo::ChunkLocation;
        let at = |pack: u8| ChunkLocation {
            pack: PackId([pack; 32]),
            offset: 0,
            length: 1,
            raw_length: 1,
        };
        let mut index = Index::default();
        index.chunks.insert(ChunkId([1; 32]), at(1)); // kept
        index.chunks.insert(ChunkId([2; 32]), at(1)); // a listed candidate
        index.chunks.insert(ChunkId([3; 32]), at(9)); // only in a listed pack
        index.candidate_chunks.insert(ChunkId([2; 32]));
        index.candidate_packs.insert(PackId([9; 32]));
        // Chunk 4 is in no index at all.
        let names = ["kept", "candidate", "in-candidate-pack", "unindexed", "mixed"];
        let chunk_lists = [vec![1], vec![2], vec![3], vec![4], vec![1, 2]];
        let mut previous = HashMap::new();
        let mut now = Vec::new();
        for (name, chunks) in names.iter().zip(chunk_lists) {
            let mut prev = entry((1, Some("\"a\""), None, None, None));
            prev.path = (*name).into();
            prev.chunks = chunks.into_iter().map(|c| ChunkId([c; 32])).collect();
            previous.insert(prev.path.clone(), prev);
            let mut item = listed((1, Some("\"a\""), None, None, None));
            item.path = (*name).into();
            now.push(item);
        }
        let (entries, jobs) = plan_reads(&now, &previous, &index);
        assert_eq!(
            jobs,
            vec![1, 2, 3, 4],
            "every entry with a chunk that may go is read again"
        );
        assert_eq!(entries[0].as_ref().map(|e| e.path.as_str()), Some("kept"));
        assert!(entries[1..].iter().all(Option::is_none));
    }

    #[test]
    fn change_detection_uses_etag_for_objects_and_mtime_ctime_inode_for_files() {
        let (a, b) = (Some("\"a\""), Some("\"b\""));
        let (t1, t2) = (Some("t1"), Some("t2"));
        let file = (1, None, t1, t1, Some(7));
        let cases: [(Seen, Seen, bool); 11] = [
            ((1, a, None, None, None), (1, a, t2, None, None), true),
            ((1, a, None, None, None), (1, b, None, None, None), false),
            ((1, a, None, None, None), (2, a, None, None, None), false),
            (file, file, true),
            (file, (1, None, t2, t1, Some(7)), false),
            (file, (1, a, t1, t1, Some(7)), false),
            // A same-size rewrite with its mtime put back: the ctime moved.
            (file, (1, None, t1, t2, Some(7)), false),
            // Replaced by another file (a new inode) with the same times.
            (file, (1, None, t1, t1, Some(8)), false),
            // A parent entry from before ctime and inode were recorded.
            ((1, None, t1, None, None), file, false),
            ((1, None, t1, t1, None), file, false),
            ((1, None, t1, None, Some(7)), file, false),
        ];
        for (i, (previous, now, expected)) in cases.into_iter().enumerate() {
            assert_eq!(unchanged(&entry(previous), &listed(now)), expected, "case {i}");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_file_gone_or_unreadable_after_the_listing_is_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kept"), b"kept").unwrap();
        std::fs::write(dir.path().join("gone"), b"gone").unwrap();
        std::os::unix::fs::symlink("kept", dir.path().join("now-a-link")).unwrap();
        let source = Source::Dir {
            root: dir.path().to_path_buf(),
        };
        let mut listed: Vec<SourceEntry> = source.list().await.unwrap().entries;
        std::fs::remove_file(dir.path().join("gone")).unwrap();
        // A regular file at listing time, replaced by a symbolic link before its read.
        listed.push(SourceEntry {
            path: "now-a-link".into(),
            ..listed[0].clone()
        });
        let jobs: Vec<usize> = (0..listed.len()).collect();
        let keys = Arc::new(Keys::from_material(&[1; crate::crypto::KEY_MATERIAL_LEN]).unwrap());
        let (tx, mut rx) = mpsc::channel::<SealedPack>(8);
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let handle = tokio::runtime::Handle::current();
        let done = tokio::task::spawn_blocking(move || {
            let reads = Reads {
                listed: Arc::new(listed),
                jobs: Arc::new(jobs),
                chunks: Arc::new(ChunkSet::new([])),
                counters: Arc::default(),
            };
            let mut worker = Worker::new(keys, Default::default(), 1).unwrap();
            let (cursor, abort, sink) = (AtomicUsize::new(0), AtomicBool::new(false), ChannelSink(tx));
            let mut done = Vec::new();
            read_entries(&mut worker, &source, &reads, &cursor, &abort, &sink, &handle, &mut done).unwrap();
            done
        })
        .await
        .unwrap();
        drain.abort();
        let outcome: Vec<(usize, Result<String, String>)> = done
            .into_iter()
            .map(|(i, r)| (i, r.map(|e| e.path).map_err(|s| format!("{}: {}", s.path, s.reason))))
            .collect();
        assert_eq!(outcome.len(), 3, "{outcome:?}");
        assert_eq!(outcome[0], (0, Err("gone: it vanished during the backup".into())));
        assert_eq!(outcome[1], (1, Ok("kept".into())));
        let (index, link) = &outcome[2];
        assert_eq!(*index, 2);
        assert!(
            link.as_ref()
                .is_err_and(|e| e.starts_with("now-a-link: it could not be opened")),
            "{link:?}"
        );
    }
}
