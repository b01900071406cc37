//! The soak (issue 13): for a bounded time, at once — incremental backups
//! of a directory in a loop (its data changing between them; every fourth a
//! full, starting a chain retention can delete), bursts of
//! continuous backups (several file-backup invocations at once, one S3
//! ObjectCreated event each, for new objects under one source), retention in
//! a loop, and two GC loops (grace 0). Then everything stops, GC converges,
//! and every completed backup is deep-verified and restored: a directory
//! backup byte for byte as its source was when it began; a continuous one
//! with only objects that exist, each byte for byte; and the newest
//! continuous backup with every object created before the last burst.
//!
//! `LIFEBOAT_SOAK_SECONDS` (CI: 75) and `LIFEBOAT_SOAK_SEED`; `scripts/soak`
//! runs longer ones.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lifeboat::catalog::BackupStatus;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::chaos::{
    check_completed, converge_gc, dir_tree, env_number, file_backup_function, finish, gc, lifeboat, objects_tree,
    print_unfinished, run_killable, Expected, Finished, StoreView, Tally,
};
use crate::support::{create_bucket, put_objects, random_bytes, sample_event, Store};

const CI_SECONDS: u64 = 75;
const CI_SEED: u64 = 7;
/// Objects created together, each with its own event and invocation.
const BURST: usize = 4;
const PLAN: &str = "soak-continuous";

/// What the loops share.
struct Soak {
    store: Store,
    seed: u64,
    deadline: Instant,
    dir: tempfile::TempDir,
    bucket: String,
    plans: String,
    runtime: tokio::runtime::Handle,
    /// Every object of the continuous source, key → body (only ever added).
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    oracle: Mutex<BTreeMap<String, Expected>>,
    tally: Mutex<Tally>,
}

impl Soak {
    fn problem(&self, line: String) {
        self.tally.lock().expect("the tally").problem(line);
    }

    fn counted(&self, finished: &Finished, what: &str) -> bool {
        self.tally.lock().expect("the tally").operations += 1;
        if !finished.succeeded() {
            self.problem(format!(
                "{what} failed ({}): {} {}",
                finished.status,
                finished.stdout.chars().take(400).collect::<String>(),
                finished.stderr_tail()
            ));
        }
        finished.succeeded()
    }

    fn running(&self) -> bool {
        Instant::now() < self.deadline
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backups_bursts_retention_and_two_gc_loops_together_lose_nothing() {
    let seconds = env_number("LIFEBOAT_SOAK_SECONDS", CI_SECONDS);
    let seed = env_number("LIFEBOAT_SOAK_SEED", CI_SEED);
    println!("soak: {seconds}s, seed {seed} (LIFEBOAT_SOAK_SECONDS / LIFEBOAT_SOAK_SEED to change)");
    let store = Store::new().await;
    let bucket = create_bucket(&store.s3, "soaksrc").await;
    let plans = format!(
        "[[plan]]\nname = \"{PLAN}\"\nschedule = \"cron(0 2 * * ? *)\"\ntimezone = \"UTC\"\n\
         sources = [\"s3://{bucket}/app\"]\nretention = {{ keep_last = 7 }}\nrpo = \"26h\"\ntier = \"standard\"\n"
    );
    let soak = Arc::new(Soak {
        store,
        seed,
        deadline: Instant::now() + Duration::from_secs(seconds),
        dir: tempfile::tempdir().expect("a source directory"),
        bucket,
        plans,
        runtime: tokio::runtime::Handle::current(),
        objects: Mutex::new(BTreeMap::new()),
        oracle: Mutex::new(BTreeMap::new()),
        tally: Mutex::new(Tally::default()),
    });
    let first = tokio::task::spawn_blocking({
        let soak = soak.clone();
        move || first_backups(&soak)
    });
    first.await.expect("the first backups");
    let mut loops = Vec::new();
    type Loop = fn(&Soak, u64);
    let plan: [(Loop, u64); 5] = [
        (incremental_loop, 1),
        (continuous_loop, 2),
        (retention_loop, 3),
        (gc_loop, 4),
        (gc_loop, 5),
    ];
    for (body, n) in plan {
        let soak = soak.clone();
        loops.push(tokio::task::spawn_blocking(move || body(&soak, n)));
    }
    for task in loops {
        task.await.expect("a soak loop");
    }
    settle_and_check(&soak).await;
}

/// Seeds both sources and takes their first backups.
fn first_backups(soak: &Soak) {
    let mut rng = StdRng::seed_from_u64(soak.seed);
    for i in 0..30 {
        write_file(soak, &mut rng, &format!("d{}/f{i:02}.bin", i % 4), 0);
    }
    let mut initial = BTreeMap::new();
    for i in 0..8 {
        initial.insert(
            format!("app/base/o{i}.bin"),
            random_bytes(rng.gen_range(20_000..200_000), &format!("{}-base-{i}", soak.seed)),
        );
    }
    soak.runtime
        .block_on(put_objects(&soak.store.s3, &soak.bucket, &initial));
    soak.objects.lock().expect("the objects").extend(initial);
    directory_backup(soak, "full");
    let event = json!({"plan": PLAN, "scheduledTime": lifeboat::times::now_text()});
    invoke_until_answered(soak, &event, "the continuous source's first (plan) backup");
}

fn write_file(soak: &Soak, rng: &mut StdRng, path: &str, generation: u64) {
    let body = random_bytes(
        rng.gen_range(20_000..200_000),
        &format!("{}-{path}-{generation}", soak.seed),
    );
    let full = soak.dir.path().join(path);
    std::fs::create_dir_all(full.parent().expect("a parent")).expect("create a source directory");
    std::fs::write(full, body).expect("write a source file");
}

/// One backup of the directory (`kind`: full or incremental); its oracle is
/// the tree as it was when it began (nothing changes the directory while it runs).
fn directory_backup(soak: &Soak, kind: &str) {
    let tree = dir_tree(soak.dir.path());
    let dir = soak.dir.path().to_str().expect("a UTF-8 temp path");
    let args = ["backup", "files", dir, "--type", kind, "--output", "json"];
    let finished = run_killable(lifeboat(&soak.store, &args), None);
    if soak.counted(&finished, &format!("a {kind} directory backup")) {
        let answer = finished.json().unwrap_or_default();
        match answer["backupId"].as_str() {
            Some(id) if answer["status"] == "completed" => {
                soak.oracle
                    .lock()
                    .expect("the oracle")
                    .insert(id.to_owned(), Expected::Tree(tree));
                soak.tally.lock().expect("the tally").backups_completed += 1;
            }
            _ => soak.problem(format!("a directory backup exited 0 without completing: {answer}")),
        }
    }
}

fn incremental_loop(soak: &Soak, n: u64) {
    let mut rng = StdRng::seed_from_u64(soak.seed * 100 + n);
    let mut generation = 0;
    while soak.running() {
        generation += 1;
        let files: Vec<String> = dir_tree(soak.dir.path()).into_keys().collect();
        for _ in 0..rng.gen_range(1..=3) {
            let path = files[rng.gen_range(0..files.len())].clone();
            write_file(soak, &mut rng, &path, generation);
        }
        let added = format!("d{}/n{generation}.bin", rng.gen_range(0..6));
        write_file(soak, &mut rng, &added, 0);
        if files.len() > 20 {
            let path = &files[rng.gen_range(0..files.len())];
            std::fs::remove_file(soak.dir.path().join(path)).expect("delete a source file");
        }
        // Every fourth a full: retention keeps the parents of what it keeps,
        // so only a new chain lets it delete, and GC find garbage.
        directory_backup(soak, if generation % 4 == 0 { "full" } else { "incremental" });
        // Pauses let a sweep find no backup running.
        std::thread::sleep(Duration::from_millis(rng.gen_range(200..1500)));
    }
}

/// An S3 ObjectCreated notification for one object (the sample, re-aimed).
fn created_event(bucket: &str, key: &str, size: usize, sequencer: u64) -> Value {
    let mut event = sample_event("s3-object-created.json");
    let object = &mut event["Records"][0]["s3"];
    object["bucket"]["name"] = json!(bucket);
    object["bucket"]["arn"] = json!(format!("arn:aws:s3:::{bucket}"));
    object["object"]["key"] = json!(key);
    object["object"]["size"] = json!(size);
    object["object"]["sequencer"] = json!(format!("{sequencer:018X}"));
    event
}

/// Invokes the function as Lambda would, retrying an error a few times (a
/// retryable failure is retried by Lambda too). Whether it finally answered.
fn invoke_until_answered(soak: &Soak, event: &Value, what: &str) -> bool {
    for attempt in 1..=5 {
        let (command, _event_file) = file_backup_function(&soak.store, event, Some(&soak.plans));
        let finished = run_killable(command, None);
        soak.tally.lock().expect("the tally").operations += 1;
        if finished.succeeded() {
            let answer = finished.json().unwrap_or_default();
            let backups = answer["backups"].as_array().cloned().unwrap_or_default();
            for backup in &backups {
                if backup["status"] != "completed" {
                    soak.problem(format!(
                        "{what}: answered success with a backup not completed: {backup}"
                    ));
                } else if backup["duplicate"] != true {
                    soak.tally.lock().expect("the tally").backups_completed += 1;
                }
            }
            return true;
        }
        if attempt == 5 {
            soak.problem(format!(
                "{what}: failed 5 times ({}): {} {}",
                finished.status,
                finished.stdout.trim(),
                finished.stderr_tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(500 * attempt));
    }
    false
}

fn continuous_loop(soak: &Soak, n: u64) {
    let mut rng = StdRng::seed_from_u64(soak.seed * 100 + n);
    let mut burst = 0u64;
    while soak.running() {
        burst += 1;
        let created: BTreeMap<String, Vec<u8>> = (0..BURST)
            .map(|i| {
                let key = format!("app/burst{burst:03}/o{i}.bin");
                let body = random_bytes(rng.gen_range(10_000..150_000), &format!("{}-{key}", soak.seed));
                (key, body)
            })
            .collect();
        soak.runtime
            .block_on(put_objects(&soak.store.s3, &soak.bucket, &created));
        soak.objects.lock().expect("the objects").extend(created.clone());
        std::thread::scope(|scope| {
            for (i, (key, body)) in created.iter().enumerate() {
                let event = created_event(&soak.bucket, key, body.len(), burst * 100 + i as u64);
                scope.spawn(move || invoke_until_answered(soak, &event, &format!("burst {burst}, {key}")));
            }
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(200..1000)));
    }
}

fn retention_loop(soak: &Soak, _n: u64) {
    while soak.running() {
        let tomorrow =
            lifeboat::times::format(lifeboat::times::now() + lifeboat::times::SignedDuration::from_hours(24));
        let args = [
            "retention",
            "apply",
            "--keep-last",
            "4",
            "--at",
            &tomorrow,
            "--output",
            "json",
        ];
        let finished = run_killable(lifeboat(&soak.store, &args), None);
        soak.counted(&finished, "retention");
        std::thread::sleep(Duration::from_secs(3));
    }
}

fn gc_loop(soak: &Soak, n: u64) {
    let mut rng = StdRng::seed_from_u64(soak.seed * 100 + n);
    while soak.running() {
        let finished = run_killable(gc(&soak.store, &[]), None);
        if !finished.succeeded() && finished.stderr_tail().contains("garbage-collection lease") {
            // The other loop holds the store's GC lease: an honest refusal.
            soak.tally.lock().expect("the tally").operations += 1;
        } else if soak.counted(&finished, &format!("GC loop {}", n - 3)) {
            let report = finished.json().unwrap_or_default();
            let swept = report["swept"].as_array().map_or(0, Vec::len);
            if swept > 0 {
                println!("GC loop {}: swept {swept} list(s)", n - 3);
            }
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(300..1500)));
    }
}

/// GC converges; every completed backup is checked against the oracle; the
/// newest continuous backup must hold every object.
async fn settle_and_check(soak: &Soak) {
    let mut tally = std::mem::take(&mut *soak.tally.lock().expect("the tally"));
    let runs = converge_gc(&soak.store, &mut tally);
    println!("GC ran {runs} time(s) to converge");
    let view = StoreView::open(&soak.store).await;
    let objects = soak.objects.lock().expect("the objects").clone();
    let everything = objects_tree(&objects, "app/");
    let mut oracle = soak.oracle.lock().expect("the oracle").clone();
    let continuous_source = format!("s3://{}/", soak.bucket);
    let records = view.records().await;
    let mut continuous: Vec<_> = records
        .values()
        .filter(|r| r.source.starts_with(&continuous_source) && r.status == BackupStatus::Completed)
        .collect();
    continuous.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    for record in &continuous {
        oracle.insert(record.id.clone(), Expected::Within(everything.clone()));
    }
    match continuous.last() {
        // Every object was created before the last burst's invocations began.
        Some(newest) => {
            oracle.insert(newest.id.clone(), Expected::Tree(everything.clone()));
        }
        None => tally.problem("no continuous backup completed".to_owned()),
    }
    check_completed(&soak.store, &view, &oracle, &mut tally).await;
    for line in view.leftovers().await {
        tally.problem(line);
    }
    print_unfinished(&view).await;
    let seconds = env_number("LIFEBOAT_SOAK_SECONDS", CI_SECONDS);
    finish("soak", &format!("{seconds}s, seed {}", soak.seed), &tally);
}
