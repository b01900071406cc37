//! The measurements: each primitive alone on one thread, then the whole
//! pipeline (`Worker::process_entry`) on one and on N threads.

use std::hint::black_box;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use fastcdc::v2020::{FastCDC, StreamCDC};
use lifeboat::chunker::ReadChunker;
use lifeboat::crypto::{Keys, Role};
use lifeboat::format::{ChunkerParams, SealedPack};
use lifeboat::ids::ChunkId;
use lifeboat::pipeline::{ChunkSet, PackSink, PipelineError, Worker};
use sha2::{Digest, Sha256};

use crate::dataset::{DataSet, File, Kind};

/// Warm-up covers at least this many bytes of the data set's first units.
const WARM_UP_BYTES: usize = 16 << 20;

/// The median of a measurement's runs.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub bytes: u64,
    pub seconds: f64,
}

impl Timing {
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds
    }
}

/// Runs `work` once on a small prefix of `units` (untimed), then `runs`
/// times on all of them; returns the median time.
fn measure<T>(runs: usize, units: &[T], bytes: u64, size: impl Fn(&T) -> usize, mut work: impl FnMut(&[T])) -> Timing {
    let mut warm = 0;
    let mut covered = 0;
    while warm < units.len() && covered < WARM_UP_BYTES {
        covered += size(&units[warm]);
        warm += 1;
    }
    work(&units[..warm]);
    let mut seconds: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            work(units);
            start.elapsed().as_secs_f64()
        })
        .collect();
    seconds.sort_by(f64::total_cmp);
    Timing {
        bytes,
        seconds: seconds[seconds.len() / 2],
    }
}

/// One chunk of the data set, as the pipeline's chunker cuts it.
pub struct Chunk {
    pub range: Range<usize>,
    pub kind: Kind,
}

/// Cuts every file with FastCDC and the store's default parameters.
pub fn chunks(data: &DataSet, params: ChunkerParams) -> Vec<Chunk> {
    let mut out = Vec::new();
    for file in &data.files {
        for c in FastCDC::new(data.file(file), params.min, params.avg, params.max) {
            let start = file.range.start + c.offset;
            out.push(Chunk {
                range: start..start + c.length,
                kind: file.kind,
            });
        }
    }
    out
}

/// zstd's work on the chunks of one kind of file.
pub struct KindFigures {
    pub kind: Kind,
    pub raw: u64,
    /// Bytes of the zstd frames.
    pub compressed: u64,
    pub seconds: f64,
}

impl KindFigures {
    pub fn ratio(&self) -> f64 {
        self.raw as f64 / self.compressed.max(1) as f64
    }

    pub fn mb_per_s(&self) -> f64 {
        self.raw as f64 / 1e6 / self.seconds
    }
}

/// The primitives, each alone on one thread over the whole data set.
pub struct Primitives {
    pub sha256: Timing,
    pub blake3: Timing,
    pub fastcdc: Timing,
    pub zstd_compress: Timing,
    pub aes_seal: Timing,
    pub zstd_decompress: Timing,
    /// zstd per kind of file, from the last compression run.
    pub by_kind: [KindFigures; 3],
}

pub struct PrimitiveOptions<'a> {
    pub data: &'a DataSet,
    pub chunks: &'a [Chunk],
    pub keys: &'a Keys,
    pub params: ChunkerParams,
    pub level: i32,
    pub runs: usize,
}

pub fn primitives(o: &PrimitiveOptions<'_>) -> Result<Primitives, std::io::Error> {
    let data = o.data;
    let total = data.bytes.len() as u64;
    let file_len = |f: &File| f.range.len();
    let chunk_len = |c: &Chunk| c.range.len();
    let chunk = |c: &Chunk| &data.bytes[c.range.clone()];

    let sha256 = measure(o.runs, &data.files, total, file_len, |files| {
        for f in files {
            black_box(Sha256::digest(data.file(f)));
        }
    });
    let blake3 = measure(o.runs, o.chunks, total, chunk_len, |chunks| {
        for c in chunks {
            black_box(o.keys.chunk_id(chunk(c)));
        }
    });
    let p = o.params;
    let fastcdc = measure(o.runs, &data.files, total, file_len, |files| {
        for f in files {
            for c in FastCDC::new(data.file(f), p.min, p.avg, p.max) {
                black_box(c);
            }
        }
    });

    // Compress into one buffer, touched beforehand, holding every frame for
    // the decompression pass.
    let bounds: Vec<usize> = o
        .chunks
        .iter()
        .map(|c| zstd::zstd_safe::compress_bound(c.range.len()))
        .collect();
    let mut frames_buffer = vec![1u8; bounds.iter().sum()];
    let mut frames: Vec<Range<usize>> = Vec::with_capacity(o.chunks.len());
    let mut compressor = zstd::bulk::Compressor::new(o.level)?;
    let mut failed = None;
    let mut seconds_by_kind = [0f64; 3];
    let zstd_compress = measure(o.runs, o.chunks, total, chunk_len, |chunks| {
        frames.clear();
        seconds_by_kind = [0.0; 3];
        let mut at = 0;
        for (c, bound) in chunks.iter().zip(&bounds) {
            let start = Instant::now();
            match compressor.compress_to_buffer(chunk(c), &mut frames_buffer[at..at + bound]) {
                Ok(n) => frames.push(at..at + n),
                Err(e) => failed = Some(e),
            }
            seconds_by_kind[c.kind as usize] += start.elapsed().as_secs_f64();
            at += bound;
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let by_kind = Kind::ALL.map(|kind| {
        let (raw, packed) = o
            .chunks
            .iter()
            .zip(&frames)
            .filter(|(c, _)| c.kind == kind)
            .fold((0u64, 0u64), |(r, p), (c, f)| {
                (r + c.range.len() as u64, p + f.len() as u64)
            });
        KindFigures {
            kind,
            raw,
            compressed: packed,
            seconds: seconds_by_kind[kind as usize],
        }
    });

    let id = ChunkId([0x42; 32]);
    let mut sealed_ok = true;
    let aes_seal = measure(o.runs, o.chunks, total, chunk_len, |chunks| {
        for c in chunks {
            sealed_ok &= black_box(o.keys.seal(Role::Blob(&id), chunk(c))).is_ok();
        }
    });
    if !sealed_ok {
        return Err(std::io::Error::other("AES-GCM seal failed"));
    }

    let mut decompressor = zstd::bulk::Decompressor::new()?;
    let mut plain = vec![1u8; p.max as usize];
    let framed: Vec<(Range<usize>, usize)> = frames
        .iter()
        .zip(o.chunks)
        .map(|(f, c)| (f.clone(), c.range.len()))
        .collect();
    let zstd_decompress = measure(
        o.runs,
        &framed,
        total,
        |(_, raw)| *raw,
        |framed| {
            for (frame, raw) in framed {
                match decompressor.decompress_to_buffer(&frames_buffer[frame.clone()], &mut plain[..*raw]) {
                    Ok(n) => {
                        black_box(&plain[..n]);
                    }
                    Err(e) => failed = Some(e),
                }
            }
        },
    );
    if let Some(e) = failed {
        return Err(e);
    }

    Ok(Primitives {
        sha256,
        blake3,
        fastcdc,
        zstd_compress,
        aes_seal,
        zstd_decompress,
        by_kind,
    })
}

/// Counts finished packs and drops them.
#[derive(Default)]
struct CountingSink {
    packs: AtomicU64,
    bytes: AtomicU64,
}

impl PackSink for CountingSink {
    fn pack_ready(&self, pack: SealedPack) -> Result<(), PipelineError> {
        self.packs.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(pack.bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// What one pipeline run did.
#[derive(Clone, Copy, Debug)]
pub struct PipelineRun {
    pub threads: usize,
    pub timing: Timing,
    /// Plaintext bytes of chunks stored (not deduplicated).
    pub new_bytes: u64,
    /// Blob bytes written into packs (compressed, sealed).
    pub blob_bytes: u64,
    /// Whole packs' bytes, headers included: what the store grows by.
    pub pack_bytes: u64,
    pub packs: u64,
}

pub struct PipelineOptions<'a> {
    pub data: &'a DataSet,
    pub keys: &'a Arc<Keys>,
    pub params: ChunkerParams,
    pub level: i32,
    pub runs: usize,
}

/// The backup pipeline over the whole data set on `threads` threads, each
/// taking the next file from a shared counter; median of `runs` after a
/// warm-up on the first files.
pub fn pipeline(o: &PipelineOptions<'_>, threads: usize) -> Result<PipelineRun, PipelineError> {
    let mut warm = 0;
    let mut covered = 0;
    while warm < o.data.files.len() && covered < WARM_UP_BYTES {
        covered += o.data.files[warm].range.len();
        warm += 1;
    }
    pipeline_once(o, &o.data.files[..warm], threads)?;
    let mut runs = (0..o.runs.max(1))
        .map(|_| pipeline_once(o, &o.data.files, threads))
        .collect::<Result<Vec<_>, _>>()?;
    runs.sort_by(|a, b| a.timing.seconds.total_cmp(&b.timing.seconds));
    Ok(runs[runs.len() / 2])
}

fn pipeline_once(o: &PipelineOptions<'_>, files: &[File], threads: usize) -> Result<PipelineRun, PipelineError> {
    let chunk_set = ChunkSet::default();
    let sink = CountingSink::default();
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let per_thread = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<(u64, u64), PipelineError> {
                    let mut worker = Worker::new(o.keys.clone(), o.params, o.level)?;
                    let mut new_bytes = 0;
                    while let Some(file) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let digest = worker.process_entry(o.data.file(file), "generated file", &chunk_set, &sink)?;
                        new_bytes += digest.new_bytes;
                        black_box(digest);
                    }
                    worker.flush(&sink)?;
                    Ok((new_bytes, worker.stored_bytes()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a pipeline thread panicked"))
            .collect::<Result<Vec<_>, _>>()
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let input: u64 = files.iter().map(|f| f.range.len() as u64).sum();
    Ok(PipelineRun {
        threads: threads.max(1),
        timing: Timing { bytes: input, seconds },
        new_bytes: per_thread.iter().map(|t| t.0).sum(),
        blob_bytes: per_thread.iter().map(|t| t.1).sum(),
        pack_bytes: sink.bytes.load(Ordering::Relaxed),
        packs: sink.packs.load(Ordering::Relaxed),
    })
}

/// The chunkers over a `Read`, alone on one thread.
pub struct ChunkerTimings {
    /// `lifeboat::chunker::ReadChunker`, as `process_entry` chunks: FastCDC
    /// plus one copy (the read).
    pub read_chunker: Timing,
    /// `fastcdc::v2020::StreamCDC`, for comparison: FastCDC plus its copies.
    pub stream_cdc: Timing,
}

pub fn chunker_timings(o: &PipelineOptions<'_>) -> ChunkerTimings {
    let data = o.data;
    let p = o.params;
    let file_len = |f: &File| f.range.len();
    let total = data.bytes.len() as u64;
    let stream_cdc = measure(o.runs, &data.files, total, file_len, |files| {
        for f in files {
            for c in StreamCDC::new(data.file(f), p.min, p.avg, p.max) {
                let _ = black_box(c);
            }
        }
    });
    let mut chunker = ReadChunker::new(p);
    let read_chunker = measure(o.runs, &data.files, total, file_len, |files| {
        for f in files {
            let _ = chunker.chunks(data.file(f), |chunk| {
                black_box(chunk);
                Ok::<(), ()>(())
            });
        }
    });
    ChunkerTimings {
        read_chunker,
        stream_cdc,
    }
}
