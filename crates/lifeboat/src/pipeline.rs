//! The backup data path for one entry: chunk → id → dedup → compress →
//! encrypt → pack. Synchronous and pure: the async drivers in `backup` run
//! one `Worker` per blocking thread and feed it a `Read`; the benchmark runs
//! the very same code over memory.

use std::collections::HashSet;
use std::io::Read;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::chunker::{ChunksError, ReadChunker};
use crate::crypto::Keys;
use crate::format::{ChunkerParams, FormatError, PackBuilder, SealedPack};
use crate::ids::ChunkId;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("reading {what}: {source}")]
    Read { what: String, source: std::io::Error },
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("the pack uploader stopped: {0}")]
    Sink(String),
    #[error("zstd could not start: {0}")]
    Compressor(std::io::Error),
}

/// Where finished packs go (the uploader, or a counter in the benchmark).
pub trait PackSink {
    fn pack_ready(&self, pack: SealedPack) -> Result<(), PipelineError>;
}

/// The chunk ids the store has, plus those claimed by this run. Shared by
/// all workers of a backup: the first worker to claim an id stores it.
#[derive(Default)]
pub struct ChunkSet {
    known: Mutex<HashSet<ChunkId>>,
}

impl ChunkSet {
    pub fn new(known: impl IntoIterator<Item = ChunkId>) -> Self {
        Self {
            known: Mutex::new(known.into_iter().collect()),
        }
    }

    /// True when `id` was not known: the caller must store the chunk.
    pub fn claim(&self, id: ChunkId) -> bool {
        match self.known.lock() {
            Ok(mut set) => set.insert(id),
            Err(poisoned) => poisoned.into_inner().insert(id),
        }
    }

    pub fn len(&self) -> usize {
        self.known.lock().map(|s| s.len()).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What reading one entry produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntryDigest {
    pub size: u64,
    pub sha256: String,
    pub chunks: Vec<ChunkId>,
    /// Chunks this entry added to the store (not found by dedup).
    pub new_chunks: u64,
    /// Plaintext bytes of those new chunks.
    pub new_bytes: u64,
}

/// One thread's share of a backup: its own chunker buffer, compressor and open pack.
pub struct Worker {
    chunker: ReadChunker,
    packer: Packer,
}

/// The storing half of a worker: compress, seal, pack.
struct Packer {
    keys: Arc<Keys>,
    compressor: zstd::bulk::Compressor<'static>,
    scratch: Vec<u8>,
    pack: PackBuilder,
    stored_bytes: u64,
}

impl Packer {
    fn store_chunk(&mut self, id: &ChunkId, data: &[u8], sink: &dyn PackSink) -> Result<(), PipelineError> {
        let before = self.pack.len();
        self.pack
            .add_chunk(&self.keys, id, data, &mut self.compressor, &mut self.scratch)?;
        self.stored_bytes += (self.pack.len() - before) as u64;
        if self.pack.is_full() {
            let full = std::mem::replace(&mut self.pack, PackBuilder::new());
            sink.pack_ready(full.finish(&self.keys)?)?;
        }
        Ok(())
    }
}

impl Worker {
    pub fn new(keys: Arc<Keys>, chunker: ChunkerParams, zstd_level: i32) -> Result<Self, PipelineError> {
        Ok(Self {
            chunker: ReadChunker::new(chunker),
            packer: Packer {
                keys,
                compressor: zstd::bulk::Compressor::new(zstd_level).map_err(PipelineError::Compressor)?,
                scratch: Vec::new(),
                pack: PackBuilder::new(),
                stored_bytes: 0,
            },
        })
    }

    /// Blob bytes this worker wrote into packs (the store's growth before headers).
    pub fn stored_bytes(&self) -> u64 {
        self.packer.stored_bytes
    }

    /// Reads `reader` to its end, storing the chunks `chunks` does not know.
    /// `what` names the entry in errors.
    pub fn process_entry(
        &mut self,
        reader: impl Read,
        what: &str,
        chunks: &ChunkSet,
        sink: &dyn PackSink,
    ) -> Result<EntryDigest, PipelineError> {
        let mut digest = EntryDigest::default();
        let mut sha = Sha256::new();
        let packer = &mut self.packer;
        self.chunker
            .chunks(reader, |chunk| {
                sha.update(chunk);
                digest.size += chunk.len() as u64;
                let id = packer.keys.chunk_id(chunk);
                if chunks.claim(id) {
                    packer.store_chunk(&id, chunk, sink)?;
                    digest.new_chunks += 1;
                    digest.new_bytes += chunk.len() as u64;
                }
                digest.chunks.push(id);
                Ok(())
            })
            .map_err(|e| match e {
                ChunksError::Read(source) => PipelineError::Read {
                    what: what.to_owned(),
                    source,
                },
                ChunksError::Each(error) => error,
            })?;
        digest.sha256 = hex::encode(sha.finalize());
        Ok(digest)
    }

    /// Hands over this worker's open pack, so the blobs of several workers'
    /// last packs can share one pack instead of each making a small one.
    pub fn into_open_pack(self) -> PackBuilder {
        self.packer.pack
    }

    /// Closes this worker's open pack, if it holds anything.
    pub fn flush(&mut self, sink: &dyn PackSink) -> Result<(), PipelineError> {
        if !self.packer.pack.is_empty() {
            let open = std::mem::take(&mut self.packer.pack);
            sink.pack_ready(open.finish(&self.packer.keys)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KEY_MATERIAL_LEN;
    use crate::format::{open_blob, read_pack_header};

    #[derive(Default)]
    struct Collect(Mutex<Vec<SealedPack>>);
    impl PackSink for Collect {
        fn pack_ready(&self, pack: SealedPack) -> Result<(), PipelineError> {
            self.0.lock().unwrap().push(pack);
            Ok(())
        }
    }

    fn data(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) as u8
            })
            .collect()
    }

    #[test]
    fn entries_are_chunked_deduplicated_and_restorable() {
        let keys = Arc::new(Keys::from_material(&[1; KEY_MATERIAL_LEN]).unwrap());
        let small = ChunkerParams {
            min: 1024,
            avg: 4096,
            max: 16384,
        };
        let mut worker = Worker::new(keys.clone(), small, 1).unwrap();
        let set = ChunkSet::default();
        let sink = Collect::default();
        let a = data(200_000, 1);
        let first = worker.process_entry(&a[..], "a", &set, &sink).unwrap();
        assert_eq!(first.size, 200_000);
        assert_eq!(first.sha256, hex::encode(Sha256::digest(&a)));
        assert!(first.chunks.len() > 10, "{} chunks", first.chunks.len());
        assert_eq!(first.new_bytes, 200_000);
        // The same content again adds nothing.
        let again = worker.process_entry(&a[..], "a copy", &set, &sink).unwrap();
        assert_eq!((again.new_chunks, again.chunks.clone()), (0, first.chunks.clone()));
        // An empty entry has no chunks.
        let empty = worker.process_entry(&b""[..], "empty", &set, &sink).unwrap();
        assert!(empty.chunks.is_empty());
        worker.flush(&sink).unwrap();

        let packs = sink.0.into_inner().unwrap();
        let mut restored = Vec::new();
        for id in &first.chunks {
            let (pack, blob) = packs
                .iter()
                .find_map(|p| p.blobs.iter().find(|b| b.id == *id).map(|b| (p, b)))
                .expect("every chunk is in a pack");
            assert_eq!(read_pack_header(&keys, &pack.bytes, "p").unwrap(), pack.blobs);
            let sealed = &pack.bytes[blob.offset as usize..(blob.offset + blob.length) as usize];
            restored.extend(open_blob(&keys, id, sealed, blob.raw_length as usize).unwrap());
        }
        assert_eq!(restored, a);
    }

    #[test]
    fn a_small_change_adds_few_chunks() {
        let keys = Arc::new(Keys::from_material(&[1; KEY_MATERIAL_LEN]).unwrap());
        let small = ChunkerParams {
            min: 1024,
            avg: 4096,
            max: 16384,
        };
        let mut worker = Worker::new(keys, small, 1).unwrap();
        let set = ChunkSet::default();
        let sink = Collect::default();
        let mut a = data(400_000, 2);
        let first = worker.process_entry(&a[..], "a", &set, &sink).unwrap();
        a[200_000] ^= 0xff;
        let second = worker.process_entry(&a[..], "a", &set, &sink).unwrap();
        assert!(
            second.new_chunks <= 2,
            "{} new of {}",
            second.new_chunks,
            first.chunks.len()
        );
    }

    #[test]
    fn read_errors_name_the_entry() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk on fire"))
            }
        }
        let keys = Arc::new(Keys::from_material(&[1; KEY_MATERIAL_LEN]).unwrap());
        let mut worker = Worker::new(keys, ChunkerParams::default(), 1).unwrap();
        let err = worker
            .process_entry(Broken, "logs/x.log", &ChunkSet::default(), &Collect::default())
            .unwrap_err();
        assert!(err.to_string().contains("reading logs/x.log: disk on fire"), "{err}");
    }
}
