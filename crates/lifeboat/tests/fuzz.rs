//! Fuzzing, on stable Rust, of every decoder of stored bytes (config, sealed
//! box, blob, pack header, index, manifest, GC candidate list) and of the
//! Redis reply reader: seeded random and mutated-valid inputs, each run
//! asserting that the decoder returns (an error is fine) without a panic on
//! any thread, and that it allocates at most `ALLOCATION_BOUND` bytes at
//! peak (counted by this binary's global allocator, per thread; zstd and
//! aws-lc allocate in C, outside this count, within their own bounds: the
//! metadata zstd window is capped at 8 MiB).
//!
//! Sealed objects are fuzzed twice: outside (the sealed bytes themselves,
//! which mostly fail authentication) and inside (mutated plaintext, sealed
//! with the test key, so the decompression and JSON decoders see it).
//!
//! CI runs `ITERATIONS` inputs per target. `scripts/fuzz` runs longer:
//! `LIFEBOAT_FUZZ_SECONDS` per target (until then, however many inputs),
//! `LIFEBOAT_FUZZ_ITERATIONS` (a count instead), `LIFEBOAT_FUZZ_SEED`. A
//! failure prints the seed, iteration and input, so it replays exactly; an
//! allocation too large to succeed aborts the process instead: rerun with
//! `LIFEBOAT_FUZZ_VERBOSE=1 -- --test-threads=1` to see each input first.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use lifeboat::chunker::ReadChunker;
use lifeboat::crypto::{Keys, Role, KEY_MATERIAL_LEN};
use lifeboat::format::{
    open_blob, read_pack_header, BackupType, CandidateList, ChunkerParams, Compression, Entry, IndexFile, IndexPack,
    Manifest, PackBuilder, SkippedEntry, StoreConfig, FORMAT_VERSION,
};
use lifeboat::ids::{ChunkId, PackId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The most any one decode may allocate at peak, for inputs of at most
/// `MAX_INPUT` bytes: the largest legitimate allocation is a chunk buffer
/// (16 MiB) or the chunker's window (2 × 16 MiB).
const ALLOCATION_BOUND: usize = 64 << 20;
/// The longest fuzz input.
const MAX_INPUT: usize = 256 << 10;
/// Inputs per target in CI (a few seconds each in a debug build).
const ITERATIONS: u64 = 20_000;
const DEFAULT_SEED: u64 = 0x11fe_b0a7;

// ---- the counting allocator --------------------------------------------

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

/// The largest single allocation request on any thread since the last
/// check (allocations on threads a decoder hands work to, such as the Redis
/// client's blocking task, are not in the per-thread peak).
static LARGEST_REQUEST: AtomicUsize = AtomicUsize::new(0);

fn on_alloc(size: usize) {
    LARGEST_REQUEST.fetch_max(size, Ordering::Relaxed);
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add(size);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn on_free(size: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(size)));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_free(layout.size());
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        on_alloc(new_size);
        on_free(layout.size());
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`, returning the most it had allocated at once on this thread.
fn peak_allocation(f: impl FnOnce()) -> usize {
    let start = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(start));
    f();
    PEAK.with(Cell::get) - start
}

// ---- panics on any thread ----------------------------------------------

static PANICKED: AtomicBool = AtomicBool::new(false);

/// Records panics off the test threads (a panic inside the Redis client's
/// blocking task reaches the caller only as an error value); a panic on a
/// test thread is caught where it happens, with its input.
fn watch_panics() {
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let on_a_test_thread = std::thread::current().name().is_some_and(|n| n.starts_with("fuzz_"));
            if !on_a_test_thread {
                PANICKED.store(true, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

// ---- the driver ----------------------------------------------------------

struct Budget {
    seed: u64,
    iterations: u64,
    seconds: Option<Duration>,
    verbose: bool,
}

fn budget() -> Budget {
    let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    Budget {
        seed: number("LIFEBOAT_FUZZ_SEED").unwrap_or(DEFAULT_SEED),
        iterations: number("LIFEBOAT_FUZZ_ITERATIONS").unwrap_or(ITERATIONS),
        seconds: number("LIFEBOAT_FUZZ_SECONDS").map(Duration::from_secs),
        verbose: std::env::var_os("LIFEBOAT_FUZZ_VERBOSE").is_some(),
    }
}

/// Feeds `target` seeded inputs (mutations of `corpus`, or random bytes)
/// until the budget is spent; fails with the reproducer on a panic or an
/// allocation over the bound.
fn fuzz(name: &str, corpus: &[Vec<u8>], target: impl Fn(&[u8])) {
    fuzz_scaled(name, 1, corpus, target);
}

/// `fuzz` with a `cost`: a target whose inputs are `cost` times slower
/// gets that many times fewer of the iteration budget.
fn fuzz_scaled(name: &str, cost: u64, corpus: &[Vec<u8>], target: impl Fn(&[u8])) {
    watch_panics();
    let mut budget = budget();
    budget.iterations = (budget.iterations / cost).max(1);
    let started = Instant::now();
    let name_seed = name
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut iteration = 0u64;
    loop {
        let done = match budget.seconds {
            Some(seconds) => started.elapsed() >= seconds,
            None => iteration >= budget.iterations,
        };
        if done {
            break;
        }
        let mut rng = StdRng::seed_from_u64(budget.seed ^ name_seed ^ iteration.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let input = mutate(&mut rng, corpus);
        let reproducer = || {
            format!(
                "fuzz target {name}: seed {} iteration {iteration}, input ({} bytes) {}",
                budget.seed,
                input.len(),
                hex::encode(&input[..input.len().min(512)])
            )
        };
        if budget.verbose {
            eprintln!("{}", reproducer());
        }
        let mut peak = 0;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            peak = peak_allocation(|| target(&input));
        }));
        if outcome.is_err() || PANICKED.swap(false, Ordering::SeqCst) {
            panic!("a panic: {}", reproducer());
        }
        assert!(
            peak <= ALLOCATION_BOUND,
            "allocated {peak} bytes, over the {ALLOCATION_BOUND} bound: {}",
            reproducer()
        );
        let largest = LARGEST_REQUEST.swap(0, Ordering::Relaxed);
        assert!(
            largest <= ALLOCATION_BOUND,
            "a thread asked for {largest} bytes at once, over the {ALLOCATION_BOUND} bound, around {}",
            reproducer()
        );
        iteration += 1;
    }
    eprintln!("fuzz target {name}: {iteration} inputs in {:?}", started.elapsed());
}

const INTERESTING_BYTES: [u8; 6] = [0, 1, 0x7f, 0x80, 0xfe, 0xff];
const INTERESTING_NUMBERS: [u64; 10] = [
    0,
    1,
    63,
    64,
    0x7fff_ffff,
    0xffff_ffff,
    0x1_0000_0000,
    1 << 40,
    i64::MAX as u64,
    u64::MAX,
];
const INTERESTING_TEXT: [&str; 10] = [
    "0",
    "-1",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "99999999999999999999999",
    "1e400",
    "null",
    "\"x\"",
    "[]",
];

/// One input: random bytes, or a corpus item with 1 to 8 mutations.
fn mutate(rng: &mut StdRng, corpus: &[Vec<u8>]) -> Vec<u8> {
    if corpus.is_empty() || rng.gen_ratio(1, 10) {
        let len = rng.gen_range(0..1024);
        return (0..len).map(|_| rng.gen()).collect();
    }
    let mut data = corpus[rng.gen_range(0..corpus.len())].clone();
    for _ in 0..rng.gen_range(1..=8) {
        let len = data.len();
        let at = if len == 0 { 0 } else { rng.gen_range(0..len) };
        match rng.gen_range(0..9) {
            0 if len > 0 => data[at] ^= 1 << rng.gen_range(0..8),
            1 if len > 0 => data[at] = INTERESTING_BYTES[rng.gen_range(0..INTERESTING_BYTES.len())],
            2 => {
                let bytes: Vec<u8> = (0..rng.gen_range(1..16)).map(|_| rng.gen()).collect();
                data.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let end = rng.gen_range(at..=len.min(at + 64));
                data.drain(at..end);
            }
            4 if len > 0 => {
                let end = rng.gen_range(at..=len.min(at + 256));
                let copy = data[at..end].to_vec();
                let to = rng.gen_range(0..=len);
                data.splice(to..to, copy);
            }
            5 => data.truncate(at),
            6 if len >= 8 => {
                let value = INTERESTING_NUMBERS[rng.gen_range(0..INTERESTING_NUMBERS.len())];
                let at = rng.gen_range(0..=len - 8);
                if rng.gen() {
                    data[at..at + 4].copy_from_slice(&(value as u32).to_le_bytes());
                } else {
                    data[at..at + 8].copy_from_slice(&value.to_le_bytes());
                }
            }
            7 => {
                let other = &corpus[rng.gen_range(0..corpus.len())];
                let from = if other.is_empty() {
                    0
                } else {
                    rng.gen_range(0..other.len())
                };
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            _ => replace_a_number(rng, &mut data),
        }
    }
    data.truncate(MAX_INPUT);
    data
}

/// Replaces a run of ASCII digits (a JSON number, a RESP length) with an
/// interesting one.
fn replace_a_number(rng: &mut StdRng, data: &mut Vec<u8>) {
    let digits: Vec<usize> = (0..data.len()).filter(|&i| data[i].is_ascii_digit()).collect();
    if digits.is_empty() {
        return;
    }
    let start = digits[rng.gen_range(0..digits.len())];
    let end = (start..data.len())
        .find(|&i| !data[i].is_ascii_digit())
        .unwrap_or(data.len());
    let text = INTERESTING_TEXT[rng.gen_range(0..INTERESTING_TEXT.len())];
    data.splice(start..end, text.bytes());
}

// ---- inputs -------------------------------------------------------------

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys::from_material(&[0x5a; KEY_MATERIAL_LEN]).expect("64 bytes"))
}

fn compress(json: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(json, 3).expect("zstd compresses")
}

fn sample_config() -> StoreConfig {
    StoreConfig {
        version: FORMAT_VERSION,
        store_id: "0123456789abcdef0123456789abcdef".into(),
        created_at: "2026-11-23T10:53:00.000Z".into(),
        kms_key_id: "arn:aws:kms:us-east-1:123456789012:key/k".into(),
        wrapped_key: "AQIDBAUGBwgJCgsMDQ4PEA==".into(),
        chunker: ChunkerParams::default(),
        compression: Compression::default(),
        pack_size: 16 << 20,
        mac: None,
    }
}

fn sample_index() -> IndexFile {
    let blobs = |n: u8| {
        (0..n)
            .map(|i| lifeboat::format::BlobLocation {
                id: ChunkId([i; 32]),
                offset: u32::from(i) * 100,
                length: 100,
                raw_length: 90,
            })
            .collect()
    };
    IndexFile::new(vec![
        IndexPack {
            id: PackId([1; 32]),
            size: 1234,
            blobs: blobs(3),
        },
        IndexPack {
            id: PackId([2; 32]),
            size: 99,
            blobs: blobs(1),
        },
    ])
}

fn sample_manifest() -> Manifest {
    Manifest {
        version: FORMAT_VERSION,
        backup_id: "bk-1".into(),
        source: "s3://bucket/prefix/".into(),
        backup_type: BackupType::Incremental,
        parent_backup: Some("bk-0".into()),
        created_at: "2026-11-23T10:53:00.000Z".into(),
        entries: vec![
            Entry {
                path: "a/b\\xe9.txt".into(),
                // The bytes of `a/b<0xE9>.txt`, a name that is not UTF-8.
                raw_path: Some("612f62e92e747874".into()),
                size: 11,
                sha256: "ab".repeat(32),
                mtime: Some("2026-11-23T10:00:00Z".into()),
                mode: Some(0o644),
                etag: Some("\"e\"".into()),
                version_id: Some("v1".into()),
                ctime: Some("2026-11-23T10:00:00.123456789Z".into()),
                inode: Some(42),
                chunks: vec![ChunkId([3; 32]), ChunkId([4; 32])],
            },
            Entry {
                path: "empty".into(),
                raw_path: None,
                size: 0,
                sha256: "00".repeat(32),
                mtime: None,
                mode: None,
                etag: None,
                version_id: None,
                ctime: None,
                inode: None,
                chunks: vec![],
            },
        ],
        skipped: vec![SkippedEntry {
            path: "gone".into(),
            reason: "it vanished during the backup".into(),
        }],
    }
}

fn sample_candidates() -> CandidateList {
    CandidateList::new(
        "2026-11-23T10:00:00.000Z".into(),
        vec![ChunkId([1; 32]), ChunkId([2; 32])],
        vec![PackId([3; 32])],
    )
}

/// Three ways into a sealed JSON object's decoder: the sealed bytes, the
/// compressed plaintext (sealed by the target), the JSON (compressed and
/// sealed by the target). `open` decodes sealed bytes.
fn fuzz_sealed_json(name: &str, json: &[Vec<u8>], role: Role<'_>, open: impl Fn(&[u8])) {
    let compressed: Vec<Vec<u8>> = json.iter().map(|j| compress(j)).collect();
    let sealed: Vec<Vec<u8>> = compressed.iter().map(|c| keys().seal(role, c).expect("seal")).collect();
    fuzz(&format!("{name}/sealed"), &sealed, &open);
    fuzz(&format!("{name}/compressed"), &compressed, |compressed| {
        open(&keys().seal(role, compressed).expect("seal"))
    });
    fuzz(&format!("{name}/json"), json, |json| {
        open(&keys().seal(role, &compress(json)).expect("seal"))
    });
}

// ---- targets ------------------------------------------------------------

#[test]
fn fuzz_config() {
    let plain = sample_config();
    let mut authenticated = sample_config();
    authenticated.authenticate(keys()).expect("mac");
    let corpus = [plain.to_json(), authenticated.to_json()];
    fuzz("config", &corpus, |bytes| {
        let Ok(config) = StoreConfig::from_json(bytes, "config") else {
            return;
        };
        let _ = config.check_mac(keys(), "config");
        // What every worker does with an accepted config: must not panic.
        let mut chunker = ReadChunker::new(config.chunker);
        let _ = chunker.chunks(&[7u8; 4096][..], |_| Ok::<(), ()>(()));
        zstd::bulk::Compressor::new(config.compression.level).expect("a level in range");
    });
}

#[test]
fn fuzz_sealed_box() {
    let corpus = [keys().seal(Role::Index, b"plaintext").expect("seal"), vec![0; 28]];
    fuzz("sealed box", &corpus, |bytes| {
        let _ = keys().open(Role::Index, bytes, "box");
    });
}

fn sealed_blob(data: &[u8]) -> (ChunkId, Vec<u8>) {
    let id = keys().chunk_id(data);
    let mut compressor = zstd::bulk::Compressor::new(1).expect("level 1");
    let mut out = Vec::new();
    lifeboat::format::seal_blob(keys(), &id, data, &mut compressor, &mut Vec::new(), &mut out).expect("seal");
    (id, out)
}

#[test]
fn fuzz_blob() {
    let text = b"lifeboat ".repeat(500);
    let (id, sealed) = sealed_blob(&text);
    let raw_lengths = [
        0,
        1,
        text.len(),
        text.len() + 1,
        16 << 20,
        (16 << 20) + 1,
        u32::MAX as usize,
    ];
    fuzz("blob/sealed", &[sealed], |bytes| {
        for raw in raw_lengths {
            let _ = open_blob(keys(), &id, bytes, raw);
        }
    });
    // The payload inside the box: a flag byte, then the chunk or zstd.
    let payloads = [[&[1u8][..], &compress(&text)].concat(), [&[0u8][..], &text].concat()];
    fuzz("blob/payload", &payloads, |payload| {
        let sealed = keys().seal(Role::Blob(&id), payload).expect("seal");
        for raw in raw_lengths {
            let _ = open_blob(keys(), &id, &sealed, raw);
        }
    });
}

fn sample_pack() -> (Vec<u8>, Vec<u8>, usize) {
    let mut builder = PackBuilder::new();
    let mut compressor = zstd::bulk::Compressor::new(1).expect("level 1");
    for chunk in [&b"alpha"[..], &[0u8; 5000], b"gamma"] {
        builder
            .add_chunk(keys(), &keys().chunk_id(chunk), chunk, &mut compressor, &mut Vec::new())
            .expect("add");
    }
    let blobs_len = builder.len();
    let pack = builder.finish(keys()).expect("finish");
    let header_len = pack.bytes.len() - 4 - blobs_len;
    let header = keys()
        .open(
            Role::PackHeader,
            &pack.bytes[blobs_len..blobs_len + header_len],
            "header",
        )
        .expect("open");
    (pack.bytes, header, blobs_len)
}

/// What restore and deep verification do with a pack: read its header,
/// then open each blob it lists.
fn read_pack(pack: &[u8]) {
    let Ok(blobs) = read_pack_header(keys(), pack, "pack") else {
        return;
    };
    for blob in blobs {
        let start = blob.offset as usize;
        if let Some(sealed) = pack.get(start..start.saturating_add(blob.length as usize)) {
            let _ = open_blob(keys(), &blob.id, sealed, blob.raw_length as usize);
        }
    }
}

#[test]
fn fuzz_pack_header() {
    let (pack, header, blobs_len) = sample_pack();
    fuzz("pack/sealed", std::slice::from_ref(&pack), read_pack);
    // The header's plaintext: 40-byte entries (chunk id, length, raw length).
    let blob_area = pack[..blobs_len].to_vec();
    fuzz("pack/header", &[header], |header| {
        let mut bytes = blob_area.clone();
        keys().seal_into(Role::PackHeader, header, &mut bytes).expect("seal");
        let header_len = (bytes.len() - blob_area.len()) as u32;
        bytes.extend_from_slice(&header_len.to_le_bytes());
        read_pack(&bytes);
    });
}

#[test]
fn fuzz_index() {
    let json = serde_json::to_vec(&sample_index()).expect("json");
    fuzz_sealed_json("index", &[json], Role::Index, |sealed| {
        let _ = IndexFile::open(keys(), sealed, "index");
    });
}

#[test]
fn fuzz_manifest() {
    // With boundary values too: sizes near the top of u64.
    let mut near_the_top = sample_manifest();
    near_the_top.entries[1].size = u64::MAX - 5;
    let json = [&sample_manifest(), &near_the_top].map(|m| serde_json::to_vec(m).expect("json"));
    fuzz_sealed_json("manifest", &json, Role::Manifest("bk-1"), |sealed| {
        if let Ok(manifest) = Manifest::open(keys(), "bk-1", sealed) {
            let _ = manifest.size();
        }
    });
}

#[test]
fn fuzz_candidate_list() {
    let json = serde_json::to_vec(&sample_candidates()).expect("json");
    fuzz_sealed_json("candidate list", &[json], Role::GcCandidates, |sealed| {
        let _ = CandidateList::open(keys(), sealed, "gc list");
    });
}

// ---- the Redis reply reader -------------------------------------------

/// A server on 127.0.0.1 answering each connection's first command with
/// the next reply handed to it, then closing the connection.
struct FakeRedis {
    port: u16,
    replies: std::sync::mpsc::Sender<Vec<u8>>,
}

impl FakeRedis {
    fn start() -> Self {
        use std::io::{BufRead, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (send, receive) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            for socket in listener.incoming() {
                let Ok(socket) = socket else { continue };
                let Ok(reply) = receive.recv() else { return };
                let Ok(clone) = socket.try_clone() else { continue };
                let mut reader = std::io::BufReader::new(clone);
                let mut line = String::new();
                // The command's last line is `server` (INFO server).
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && !line.ends_with("server\r\n") {}
                let _ = (&socket).write_all(&reply);
                let _ = socket.shutdown(std::net::Shutdown::Both);
            }
        });
        Self { port, replies: send }
    }
}

#[test]
fn fuzz_redis_replies() {
    let server = FakeRedis::start();
    let url = lifeboat::db::url::DatabaseUrl::parse(&format!("redis://127.0.0.1:{}", server.port)).expect("url");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let corpus: Vec<Vec<u8>> = [
        &b"$40\r\n# Server\r\nredis_version:7.0.15\r\nredis_mode:x\r\n\r\n"[..],
        b"-NOAUTH Authentication required.\r\n",
        b"-ERR unknown command\r\n",
        b"$999999999999\r\n",
        b"+OK\r\n",
        b"*1\r\n$3\r\nabc\r\n",
    ]
    .iter()
    .map(|r| r.to_vec())
    .collect();
    // Each input is a round trip through a socket.
    fuzz_scaled("redis replies", 3, &corpus, |reply| {
        server.replies.send(reply.to_vec()).expect("server");
        let _ = runtime.block_on(url.server_version());
    });
}
