//! Throughput of Lifeboat's backup pipeline and of each of its primitives,
//! in memory, on a generated data set shaped like LIMITS.md's peers tree.
//!
//! ```text
//! cargo run --release -p lifeboat-bench -- [--size-mib 1024] [--threads N] [--level L] [--runs R] [--seed S] [--json]
//! cargo run --release -p lifeboat-bench -- --write-tree DIR [--size-mib 1024] [--seed S]
//! ```
//!
//! Each primitive runs alone on one thread over the whole data set; then the
//! whole pipeline (`Worker::process_entry` per file, one shared `ChunkSet`, a
//! sink that counts and drops packs) on one thread and on N. The bar,
//! "pipeline within 80% of the compression bound", has two readings and both
//! are printed: the one-thread pipeline against the slowest primitive's
//! one-thread throughput (per core), and the whole pipeline on all threads
//! against zstd compression's one-thread throughput.
//!
//! `--write-tree DIR` writes the same generated data set to `DIR` as files
//! (for end-to-end runs such as `bench/compare-restic`) and measures nothing.

mod dataset;
mod stages;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use lifeboat::crypto::{Keys, KEY_MATERIAL_LEN};
use lifeboat::format::{ChunkerParams, Compression};
use serde_json::json;

use dataset::{DataSet, Kind};
use stages::{ChunkerTimings, PipelineOptions, PipelineRun, PrimitiveOptions, Primitives, Timing};

/// The one-thread pipeline must reach this share of the compression bound.
const BAR: f64 = 0.80;

const USAGE: &str = "usage: lifeboat-bench [--size-mib MIB] [--threads N] [--level L] [--runs R] [--seed S] [--json]
       lifeboat-bench --write-tree DIR [--size-mib MIB] [--seed S]
  --size-mib  size of the generated data set (default 1024)
  --threads   threads of the parallel pipeline run (default: available parallelism)
  --level     zstd level (default: the store default, Compression::default())
  --runs      timed runs per measurement, the median is reported (default 1)
  --seed      seed of the generated data set (default 1)
  --json      print the figures as one JSON object instead of tables
  --write-tree  write the generated data set under DIR (created; must be empty) and exit";

struct BenchOptions {
    size_mib: usize,
    threads: usize,
    level: i32,
    runs: usize,
    seed: u64,
    json: bool,
    write_tree: Option<PathBuf>,
}

impl BenchOptions {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut options = Self {
            size_mib: 1024,
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            level: Compression::default().level,
            runs: 1,
            seed: 1,
            json: false,
            write_tree: None,
        };
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (arg, None),
            };
            match flag.as_str() {
                "--json" => {
                    options.json = true;
                    continue;
                }
                "--help" | "-h" => return Err(String::new()),
                "--size-mib" | "--threads" | "--level" | "--runs" | "--seed" | "--write-tree" => {}
                _ => return Err(format!("unknown argument {flag:?}")),
            }
            let value = inline
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))?;
            let bad = |e: &dyn std::fmt::Display| format!("{flag} {value:?}: {e}");
            match flag.as_str() {
                "--size-mib" => options.size_mib = value.parse().map_err(|e| bad(&e))?,
                "--threads" => options.threads = value.parse().map_err(|e| bad(&e))?,
                "--level" => options.level = value.parse().map_err(|e| bad(&e))?,
                "--runs" => options.runs = value.parse().map_err(|e| bad(&e))?,
                "--seed" => options.seed = value.parse().map_err(|e| bad(&e))?,
                "--write-tree" => options.write_tree = Some(PathBuf::from(value)),
                _ => unreachable!("value flags are matched above"),
            }
        }
        if options.size_mib == 0 || options.threads == 0 || options.runs == 0 {
            return Err("--size-mib, --threads and --runs must be at least 1".to_owned());
        }
        Ok(options)
    }
}

/// Everything measured, rendered as tables or JSON in one place.
struct BenchReport {
    options: BenchOptions,
    params: ChunkerParams,
    data_bytes: u64,
    files: usize,
    kind_bytes: [(Kind, u64); 3],
    chunks: usize,
    primitives: Primitives,
    one: PipelineRun,
    many: PipelineRun,
    chunkers: ChunkerTimings,
}

/// A named stage of the pipeline's data path and its one-thread timing.
struct Stage {
    name: &'static str,
    timing: Timing,
}

impl BenchReport {
    /// The stages `process_entry` runs over every input byte (decompression
    /// is the restore path's and stays out of the bounds).
    fn pipeline_stages(&self) -> [Stage; 5] {
        let p = &self.primitives;
        [
            Stage {
                name: "FastCDC chunking",
                timing: p.fastcdc,
            },
            Stage {
                name: "BLAKE3 keyed",
                timing: p.blake3,
            },
            Stage {
                name: "SHA-256",
                timing: p.sha256,
            },
            Stage {
                name: "zstd compress",
                timing: p.zstd_compress,
            },
            Stage {
                name: "AES-256-GCM seal",
                timing: p.aes_seal,
            },
        ]
    }

    /// The slowest stage: the compression bound.
    fn slowest(&self) -> Stage {
        self.pipeline_stages()
            .into_iter()
            .min_by(|a, b| a.timing.mb_per_s().total_cmp(&b.timing.mb_per_s()))
            .expect("five stages")
    }

    /// Every stage in series on one thread, each over every input byte:
    /// 1 / Σ 1/throughput.
    fn serial_bound(&self) -> f64 {
        1.0 / self
            .pipeline_stages()
            .iter()
            .map(|s| 1.0 / s.timing.mb_per_s())
            .sum::<f64>()
    }

    /// The serial bound weighted by the bytes each stage really sees in the
    /// pipeline: zstd only on new (not deduplicated) bytes, AES on the
    /// compressed blobs, and SHA-256 once more over the packs (pack ids).
    fn weighted_bound(&self) -> f64 {
        let p = &self.primitives;
        let input = self.one.timing.bytes as f64;
        let new = self.one.new_bytes as f64 / input;
        let blobs = self.one.blob_bytes as f64 / input;
        let packs = self.one.pack_bytes as f64 / input;
        let per_mb = 1.0 / p.fastcdc.mb_per_s()
            + 1.0 / p.blake3.mb_per_s()
            + (1.0 + packs) / p.sha256.mb_per_s()
            + new / p.zstd_compress.mb_per_s()
            + blobs / p.aes_seal.mb_per_s();
        1.0 / per_mb
    }

    /// A run's throughput over the compression bound times its threads.
    fn ratio(&self, run: &PipelineRun) -> f64 {
        run.timing.mb_per_s() / (self.slowest().timing.mb_per_s() * run.threads as f64)
    }

    fn one_ratio(&self) -> f64 {
        self.ratio(&self.one)
    }

    /// The other reading of the bar: the whole pipeline on all threads over
    /// the compression stage's one-thread (per-core) speed.
    fn all_threads_over_zstd(&self) -> f64 {
        self.many.timing.mb_per_s() / self.primitives.zstd_compress.mb_per_s()
    }

    fn render_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let o = &self.options;
        let mb = |bytes: u64| bytes as f64 / 1e6;
        let share = |bytes: u64| 100.0 * bytes as f64 / self.data_bytes as f64;
        let _ = writeln!(out, "Lifeboat pipeline benchmark (in memory, no I/O)");
        let _ = writeln!(
            out,
            "data set: {} MiB ({:.1} MB) in {} files, seed {}: {}",
            o.size_mib,
            mb(self.data_bytes),
            self.files,
            o.seed,
            self.kind_bytes
                .iter()
                .map(|(k, b)| format!("{} {:.1}%", k.name(), share(*b)))
                .collect::<Vec<_>>()
                .join(", "),
        );
        let _ = writeln!(
            out,
            "chunker min/avg/max {}/{}/{} KiB: {} chunks; zstd level {}; runs per figure {} (median)",
            self.params.min >> 10,
            self.params.avg >> 10,
            self.params.max >> 10,
            self.chunks,
            o.level,
            o.runs,
        );
        let _ = writeln!(
            out,
            "zstd-{} by kind: {}",
            o.level,
            self.primitives
                .by_kind
                .iter()
                .map(|k| format!("{} x{:.2} at {:.0} MB/s", k.kind.name(), k.ratio(), k.mb_per_s()))
                .collect::<Vec<_>>()
                .join(", "),
        );
        let _ = writeln!(out);

        let p = &self.primitives;
        let _ = writeln!(
            out,
            "{:<44} {:>10} {:>9}",
            "primitive (one thread, whole data set)", "MB/s", "seconds"
        );
        let mut row = |name: String, t: &Timing| {
            let _ = writeln!(out, "{name:<44} {:>10.0} {:>9.3}", t.mb_per_s(), t.seconds);
        };
        row("SHA-256 (sha2, per file)".to_owned(), &p.sha256);
        row("BLAKE3 keyed (chunk ids, per chunk)".to_owned(), &p.blake3);
        row("FastCDC 2020 chunking (slices)".to_owned(), &p.fastcdc);
        row(format!("zstd-{} compress (per chunk)", o.level), &p.zstd_compress);
        row("AES-256-GCM seal (Keys::seal, aws-lc)".to_owned(), &p.aes_seal);
        row(
            format!("zstd-{} decompress (restore path)", o.level),
            &p.zstd_decompress,
        );
        let _ = writeln!(out);

        let _ = writeln!(
            out,
            "{:<28} {:>7} {:>9} {:>8} {:>10} {:>10} {:>6} {:>7}",
            "pipeline (process_entry)", "threads", "MB/s", "seconds", "new MB", "stored MB", "packs", "ratio"
        );
        for run in [&self.one, &self.many] {
            let _ = writeln!(
                out,
                "{:<28} {:>7} {:>9.0} {:>8.3} {:>10.1} {:>10.1} {:>6} {:>7}",
                "Worker, shared ChunkSet",
                run.threads,
                run.timing.mb_per_s(),
                run.timing.seconds,
                mb(run.new_bytes),
                mb(run.pack_bytes),
                run.packs,
                format!("x{:.2}", run.timing.bytes as f64 / run.pack_bytes.max(1) as f64),
            );
        }
        let one = &self.one;
        let _ = writeln!(
            out,
            "  input / stored x{:.2} = dedup x{:.2} (input / new) * compression x{:.2} (new / stored)",
            one.timing.bytes as f64 / one.pack_bytes.max(1) as f64,
            one.timing.bytes as f64 / one.new_bytes.max(1) as f64,
            one.new_bytes as f64 / one.pack_bytes.max(1) as f64,
        );
        let _ = writeln!(out);

        let slowest = self.slowest();
        let bound = slowest.timing.mb_per_s();
        let n = self.many.threads;
        let verdict = |ratio: f64| if ratio >= BAR { "PASS" } else { "FAIL" };
        let _ = writeln!(out, "bounds (one-thread primitives)");
        let _ = writeln!(
            out,
            "  compression bound (slowest stage: {}) {:>8.0} MB/s",
            slowest.name, bound
        );
        let _ = writeln!(
            out,
            "  pipeline(1) / compression bound              {:>8.3}   {} (bar {:.2}; reading A: per core)",
            self.one_ratio(),
            verdict(self.one_ratio()),
            BAR
        );
        let all = self.all_threads_over_zstd();
        let _ = writeln!(
            out,
            "  pipeline({n}) / zstd-compress(1 thread)        {:>8.3}   {} (bar {:.2}; reading B: all threads vs one core)",
            all,
            verdict(all),
            BAR
        );
        let _ = writeln!(
            out,
            "  pipeline({n}) / (compression bound x {n})        {:>8.3}",
            self.ratio(&self.many)
        );
        let serial = self.serial_bound();
        let _ = writeln!(out, "  serial bound 1/sum(1/t) of the 5 stages    {serial:>8.0} MB/s");
        let _ = writeln!(
            out,
            "  pipeline(1) / serial bound                   {:>8.3}",
            one.timing.mb_per_s() / serial
        );
        let weighted = self.weighted_bound();
        let _ = writeln!(
            out,
            "  weighted serial bound (dedup, pack SHA-256)  {weighted:>8.0} MB/s"
        );
        let _ = writeln!(
            out,
            "  pipeline(1) / weighted serial bound          {:>8.3}",
            one.timing.mb_per_s() / weighted
        );
        let _ = writeln!(out);

        let c = &self.chunkers;
        let _ = writeln!(
            out,
            "{:<44} {:>10} {:>9}",
            "chunkers over a Read (one thread)", "MB/s", "seconds"
        );
        let _ = writeln!(
            out,
            "{:<44} {:>10.0} {:>9.3}",
            "lifeboat ReadChunker (what Worker uses)",
            c.read_chunker.mb_per_s(),
            c.read_chunker.seconds
        );
        let _ = writeln!(
            out,
            "{:<44} {:>10.0} {:>9.3}",
            "fastcdc StreamCDC (same cuts)",
            c.stream_cdc.mb_per_s(),
            c.stream_cdc.seconds
        );
        let _ = writeln!(
            out,
            "  ReadChunker / StreamCDC                      {:>8.2}",
            c.read_chunker.mb_per_s() / c.stream_cdc.mb_per_s()
        );
        out
    }

    fn render_json(&self) -> serde_json::Value {
        let o = &self.options;
        let timing = |t: &Timing| json!({ "mb_per_s": t.mb_per_s(), "seconds": t.seconds, "bytes": t.bytes });
        let run = |r: &PipelineRun| {
            json!({
                "threads": r.threads,
                "mb_per_s": r.timing.mb_per_s(),
                "seconds": r.timing.seconds,
                "input_bytes": r.timing.bytes,
                "new_bytes": r.new_bytes,
                "blob_bytes": r.blob_bytes,
                "stored_bytes": r.pack_bytes,
                "packs": r.packs,
                "ratio": r.timing.bytes as f64 / r.pack_bytes.max(1) as f64,
            })
        };
        let p = &self.primitives;
        let slowest = self.slowest();
        let bytes_by_kind: serde_json::Map<_, _> = self
            .kind_bytes
            .iter()
            .map(|(k, b)| (k.name().to_owned(), json!(b)))
            .collect();
        let zstd_by_kind: serde_json::Map<_, _> = p
            .by_kind
            .iter()
            .map(|k| {
                let figures = json!({ "ratio": k.ratio(), "mb_per_s": k.mb_per_s() });
                (k.kind.name().to_owned(), figures)
            })
            .collect();
        json!({
            "options": {
                "size_mib": o.size_mib,
                "threads": o.threads,
                "level": o.level,
                "runs": o.runs,
                "seed": o.seed,
            },
            "data_set": {
                "bytes": self.data_bytes,
                "files": self.files,
                "chunks": self.chunks,
                "chunker": { "min": self.params.min, "avg": self.params.avg, "max": self.params.max },
                "bytes_by_kind": bytes_by_kind,
                "zstd_by_kind": zstd_by_kind,
            },
            "primitives": {
                "sha256": timing(&p.sha256),
                "blake3_keyed": timing(&p.blake3),
                "fastcdc": timing(&p.fastcdc),
                "zstd_compress": timing(&p.zstd_compress),
                "aes_256_gcm_seal": timing(&p.aes_seal),
                "zstd_decompress": timing(&p.zstd_decompress),
            },
            "pipeline": [run(&self.one), run(&self.many)],
            "bounds": {
                "slowest_stage": slowest.name,
                "compression_bound_mb_per_s": slowest.timing.mb_per_s(),
                "pipeline_1_over_compression_bound": self.one_ratio(),
                "pipeline_n_over_zstd_compress_1_thread": self.all_threads_over_zstd(),
                "pipeline_n_over_compression_bound_times_n": self.ratio(&self.many),
                "bar": BAR,
                "verdict_per_core": self.one_ratio() >= BAR,
                "verdict_all_threads_over_zstd_1_thread": self.all_threads_over_zstd() >= BAR,
                "serial_bound_mb_per_s": self.serial_bound(),
                "pipeline_1_over_serial_bound": self.one.timing.mb_per_s() / self.serial_bound(),
                "weighted_serial_bound_mb_per_s": self.weighted_bound(),
                "pipeline_1_over_weighted_serial_bound": self.one.timing.mb_per_s() / self.weighted_bound(),
            },
            "chunkers": {
                "read_chunker": timing(&self.chunkers.read_chunker),
                "stream_cdc": timing(&self.chunkers.stream_cdc),
            },
        })
    }
}

fn run(options: BenchOptions) -> Result<BenchReport, Box<dyn std::error::Error>> {
    let params = ChunkerParams::default();
    let keys = Arc::new(Keys::from_material(&[7; KEY_MATERIAL_LEN])?);
    let progress = |what: &str| eprintln!("lifeboat-bench: {what}");

    progress(&format!("generating {} MiB", options.size_mib));
    let data = DataSet::generate(options.size_mib << 20, options.seed);
    let chunks = stages::chunks(&data, params);

    progress("primitives");
    let primitives = stages::primitives(&PrimitiveOptions {
        data: &data,
        chunks: &chunks,
        keys: &keys,
        params,
        level: options.level,
        runs: options.runs,
    })?;

    let pipeline_options = PipelineOptions {
        data: &data,
        keys: &keys,
        params,
        level: options.level,
        runs: options.runs,
    };
    progress("pipeline, 1 thread");
    let one = stages::pipeline(&pipeline_options, 1)?;
    progress(&format!("pipeline, {} thread(s)", options.threads));
    let many = stages::pipeline(&pipeline_options, options.threads)?;
    progress("chunkers");
    let chunkers = stages::chunker_timings(&pipeline_options);

    Ok(BenchReport {
        params,
        data_bytes: data.bytes.len() as u64,
        files: data.files.len(),
        kind_bytes: Kind::ALL.map(|k| (k, data.bytes_of(k) as u64)),
        chunks: chunks.len(),
        primitives,
        one,
        many,
        chunkers,
        options,
    })
}

/// Writes the generated data set under `dir`, 100 files per directory, named
/// by kind; `dir` is created and must be empty.
fn write_tree(dir: &Path, size_mib: usize, seed: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if std::fs::read_dir(dir)?.next().is_some() {
        return Err(std::io::Error::other("the directory is not empty"));
    }
    let data = DataSet::generate(size_mib << 20, seed);
    for (i, file) in data.files.iter().enumerate() {
        let sub = dir.join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir(&sub)?;
        }
        let extension = match file.kind {
            Kind::Random => "bin",
            Kind::Text => "log",
            Kind::Duplicate => "dup",
        };
        std::fs::write(sub.join(format!("f{i:05}.{extension}")), data.file(file))?;
    }
    eprintln!(
        "lifeboat-bench: wrote {} files, {} bytes, under {}",
        data.files.len(),
        data.bytes.len(),
        dir.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let options = match BenchOptions::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("lifeboat-bench: {message}");
            }
            eprintln!("{USAGE}");
            return if message.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    if let Some(dir) = &options.write_tree {
        return match write_tree(dir, options.size_mib, options.seed) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lifeboat-bench: writing the tree under {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        };
    }
    let json = options.json;
    match run(options) {
        Ok(report) => {
            if json {
                println!("{}", report.render_json());
            } else {
                print!("{}", report.render_text());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lifeboat-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
