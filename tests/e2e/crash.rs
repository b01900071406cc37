//! The crash matrix (issue 13): seeded rounds, each one real operation —
//! a directory backup (full or incremental), an S3-prefix backup through the
//! file-backup function (retried with the same event after a kill, as
//! Lambda retries), a PostgreSQL dump, retention, GC (grace 0), a restore —
//! run as the real binary against the emulator and, in most rounds, killed
//! with SIGKILL (its whole process group) after a seeded delay drawn from
//! 0 to a little over that operation's measured uncrashed duration, so kills
//! land early, mid-way and late. The source data changes between rounds,
//! never during one.
//!
//! The oracle is the source as it was right before each operation: the
//! catalog decides which backups completed (a backup killed after its
//! `completed` write is legitimately complete), and each completed one must
//! then hold exactly those bytes. After the rounds come the normal scheduled
//! runs (retention, then GC until it converges), and then: every completed
//! backup deep-verifies and restores byte for byte; nothing that reported
//! success is not completed; the store holds no pack outside the index, no
//! index entry without its pack, no orphan manifest, no candidate list.
//!
//! `LIFEBOAT_CRASH_SEED` and `LIFEBOAT_CRASH_ROUNDS` override the fixed CI
//! slice; `scripts/crash-matrix` runs longer ones.

use std::collections::BTreeMap;
use std::time::Duration;

use lifeboat::catalog::{BackupRecord, BackupStatus};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::chaos::{
    check_completed, compare_trees, converge_gc, dir_tree, env_number, file_backup_function, finish, gc, lifeboat,
    objects_tree, print_unfinished, rows_digest, run_gc, run_killable, Expected, Finished, StoreView, Tally,
};
use crate::support::{create_bucket, put_objects, random_bytes, Engine, Store, TestDb};

const CI_SEED: u64 = 13;
const CI_ROUNDS: u64 = 40;

/// Operations run one at a time: an unfinished backup is a killed one.
const DEAD_AT_ONCE: &[&str] = &["--assume-dead-after", "0s"];

/// Retention as the scheduled runs apply it: the newest three of each source.
const KEEP_LAST: &str = "3";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    FullDirectory,
    IncrementalDirectory,
    S3Function,
    Dump,
    Retention,
    Gc,
    Restore,
}

/// How often each operation is drawn.
const WEIGHTS: [(Op, u32); 7] = [
    (Op::FullDirectory, 3),
    (Op::IncrementalDirectory, 5),
    (Op::S3Function, 4),
    (Op::Dump, 3),
    (Op::Retention, 2),
    (Op::Gc, 4),
    (Op::Restore, 3),
];

struct Matrix {
    seed: u64,
    store: Store,
    view: StoreView,
    rng: StdRng,
    dir: tempfile::TempDir,
    bucket: String,
    objects: BTreeMap<String, Vec<u8>>,
    db: TestDb,
    rows: u64,
    generation: u64,
    oracle: BTreeMap<String, Expected>,
    durations: BTreeMap<Op, Duration>,
    tally: Tally,
}

#[tokio::test]
async fn killed_operations_never_cost_a_completed_backup_a_byte() {
    let seed = env_number("LIFEBOAT_CRASH_SEED", CI_SEED);
    let rounds = env_number("LIFEBOAT_CRASH_ROUNDS", CI_ROUNDS);
    println!("crash matrix: seed {seed}, {rounds} rounds (LIFEBOAT_CRASH_SEED / LIFEBOAT_CRASH_ROUNDS to change)");
    let mut matrix = Matrix::new(seed).await;
    // Each operation once, whole: the first backups, and the durations the kills are drawn from.
    for op in WEIGHTS.map(|(op, _)| op) {
        matrix.run(0, op, None).await;
    }
    for round in 1..=rounds {
        let op = matrix.pick();
        let kill_after = matrix.kill_delay(op);
        matrix.run(round, op, kill_after).await;
        matrix.mutate().await;
    }
    matrix.settle_and_check().await;
    finish("crash matrix", &format!("seed {seed}, rounds {rounds}"), &matrix.tally);
}

impl Matrix {
    async fn new(seed: u64) -> Self {
        let store = Store::new().await;
        let view = StoreView::open(&store).await;
        let bucket = create_bucket(&store.s3, "crashsrc").await;
        let db = TestDb::create(Engine::Postgres, "lbcrash");
        db.sql("CREATE TABLE items (id int PRIMARY KEY, body text NOT NULL)");
        let mut matrix = Self {
            seed,
            store,
            view,
            rng: StdRng::seed_from_u64(seed),
            dir: tempfile::tempdir().expect("a source directory"),
            bucket,
            objects: BTreeMap::new(),
            db,
            rows: 0,
            generation: 0,
            oracle: BTreeMap::new(),
            durations: BTreeMap::new(),
            tally: Tally::default(),
        };
        // About 32 MiB over many files, so that operations last long enough to be cut.
        for i in 0..60 {
            matrix.write_file(&format!("d{}/f{i:02}.bin", i % 5));
        }
        // Two large files: a full backup writes more than one pack.
        for name in ["big-1.bin", "big-2.bin"] {
            let big = random_bytes(12 << 20, &format!("{seed}-{name}"));
            std::fs::write(matrix.dir.path().join(name), big).expect("write a large file");
        }
        for i in 0..12 {
            matrix.put_object(&format!("app/o{i:02}.bin"));
        }
        put_objects(&matrix.store.s3, &matrix.bucket, &matrix.objects).await;
        matrix.insert_rows(30_000);
        matrix
    }

    fn content(&mut self, what: &str) -> Vec<u8> {
        self.generation += 1;
        let len = self.rng.gen_range(20_000..250_000);
        random_bytes(len, &format!("{}-{what}-{}", self.seed, self.generation))
    }

    fn write_file(&mut self, path: &str) {
        let body = self.content(path);
        let full = self.dir.path().join(path);
        std::fs::create_dir_all(full.parent().expect("a parent")).expect("create a source directory");
        std::fs::write(full, body).expect("write a source file");
    }

    fn put_object(&mut self, key: &str) {
        let body = self.content(key);
        self.objects.insert(key.to_owned(), body);
    }

    fn insert_rows(&mut self, count: u64) {
        let (from, to) = (self.rows + 1, self.rows + count);
        self.db.sql(&format!(
            "INSERT INTO items SELECT g, repeat(md5((g * {}) :: text), 4) FROM generate_series({from}, {to}) g",
            self.seed + self.generation
        ));
        self.rows = to;
        self.generation += 1;
    }

    fn pick(&mut self) -> Op {
        let total: u32 = WEIGHTS.iter().map(|(_, w)| w).sum();
        let mut draw = self.rng.gen_range(0..total);
        for (op, weight) in WEIGHTS {
            if draw < weight {
                return op;
            }
            draw -= weight;
        }
        Op::Gc
    }

    /// Six rounds in seven are killed somewhere in 0..110% of the operation's
    /// last uncrashed duration.
    fn kill_delay(&mut self, op: Op) -> Option<Duration> {
        let measured = *self.durations.get(&op)?;
        if !self.rng.gen_bool(6.0 / 7.0) {
            return None;
        }
        let limit = (measured.as_millis() as u64 * 11 / 10).max(1);
        Some(Duration::from_millis(self.rng.gen_range(0..=limit)))
    }

    /// Runs `op` (round 0: the warm-up), killed after `kill_after`, and checks what it did.
    async fn run(&mut self, round: u64, op: Op, kill_after: Option<Duration>) {
        let before = self.view.records().await;
        let problems_before = self.tally.problems.len();
        let (expected, finished) = match op {
            Op::FullDirectory | Op::IncrementalDirectory => {
                let kind = if op == Op::FullDirectory { "full" } else { "incremental" };
                let expected = Expected::Tree(dir_tree(self.dir.path()));
                let dir = self.dir.path().to_str().expect("a UTF-8 temp path").to_owned();
                let args = ["backup", "files", &dir, "--type", kind, "--output", "json"];
                (Some(expected), run_killable(lifeboat(&self.store, &args), kill_after))
            }
            Op::S3Function => {
                let expected = Expected::Tree(objects_tree(&self.objects, "app/"));
                (Some(expected), self.s3_function(round, kill_after))
            }
            Op::Dump => {
                let expected = Expected::Rows(rows_digest(&self.db));
                let args = ["backup", "dump", &self.db.url(), "--output", "json"];
                (Some(expected), run_killable(lifeboat(&self.store, &args), kill_after))
            }
            Op::Retention => (None, self.retention(kill_after)),
            Op::Gc => (None, run_gc(&self.store, DEAD_AT_ONCE, kill_after)),
            Op::Restore => (None, self.restore(&before, kill_after)),
        };
        self.tally.operations += 1;
        if finished.killed {
            self.tally.kills += 1;
        } else if finished.status.success() {
            self.durations.insert(op, finished.elapsed);
        }
        let after = self.view.records().await;
        self.check_round(op, &finished, &before, &after, expected);
        if finished.killed && self.tally.problems.len() > problems_before {
            self.tally.kills_with_problems += 1;
        }
        let new: Vec<String> = after
            .values()
            .filter(|r| !before.contains_key(&r.id))
            .map(|r| format!("{} {}", r.id, r.status.as_str()))
            .collect();
        println!(
            "round {round}: {op:?}, kill after {:?}, {} after {:.2}s; new records: {new:?}",
            kill_after,
            if finished.killed { "killed" } else { "exited" },
            finished.elapsed.as_secs_f64()
        );
    }

    /// The S3 prefix through the file-backup function, with an idempotency
    /// key; a killed invocation is retried once with the same event.
    fn s3_function(&mut self, round: u64, kill_after: Option<Duration>) -> Finished {
        let event = json!({
            "source": format!("s3://{}/app", self.bucket),
            "type": "incremental",
            "store": self.store.url,
            "idempotencyKey": format!("crash-{}-{round}", self.seed),
        });
        let (command, _event_file) = file_backup_function(&self.store, &event, None);
        let first = run_killable(command, kill_after);
        if !first.killed {
            return first;
        }
        let (command, _event_file) = file_backup_function(&self.store, &event, None);
        let retry = run_killable(command, None);
        if !retry.status.success() {
            // An honest error (e.g. "still running, retry later") is no false success.
            println!(
                "  the retry of the killed invocation answered an error ({}): {}",
                retry.status,
                retry.stdout.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
        // The retry's answer is what a caller sees; the kill stays counted.
        Finished { killed: true, ..retry }
    }

    fn retention(&self, kill_after: Option<Duration>) -> Finished {
        let tomorrow =
            lifeboat::times::format(lifeboat::times::now() + lifeboat::times::SignedDuration::from_hours(24));
        let args = [
            "retention",
            "apply",
            "--keep-last",
            KEEP_LAST,
            "--at",
            &tomorrow,
            "--output",
            "json",
        ];
        run_killable(lifeboat(&self.store, &args), kill_after)
    }

    /// Restores a random completed file backup; a killed restore may leave
    /// temporary files, but every file under its final name must be right.
    fn restore(&mut self, records: &BTreeMap<String, BackupRecord>, kill_after: Option<Duration>) -> Finished {
        let candidates: Vec<(String, Expected)> = records
            .values()
            .filter(|r| r.status == BackupStatus::Completed)
            .filter_map(|r| match self.oracle.get(&r.id) {
                Some(tree @ Expected::Tree(_)) => Some((r.id.clone(), tree.clone())),
                _ => None,
            })
            .collect();
        if candidates.is_empty() {
            return run_killable(gc(&self.store, DEAD_AT_ONCE), kill_after);
        }
        let (id, expected) = candidates[self.rng.gen_range(0..candidates.len())].clone();
        let target = tempfile::tempdir().expect("a restore target");
        let to = target.path().to_str().expect("a UTF-8 temp path");
        let finished = run_killable(
            lifeboat(&self.store, &["restore", "files", &id, "--to", to, "--output", "json"]),
            kill_after,
        );
        let mut restored = dir_tree(target.path());
        let temporary = restored.keys().filter(|p| is_temporary(p)).count();
        restored.retain(|path, _| !is_temporary(path));
        let expected = match (&expected, finished.killed) {
            // A cut restore has a part of the tree, each file whole.
            (Expected::Tree(tree), true) => Expected::Within(tree.clone()),
            _ => expected,
        };
        if finished.killed || finished.status.success() {
            // Data loss is counted once, by the final check; here only what broke.
            let (problems, _) = compare_trees(&id, &expected, &restored);
            for line in problems {
                self.tally.problem(format!("restore of {id}: {line}"));
            }
        }
        if finished.killed {
            println!(
                "  killed restore of {id}: {} files in place, {temporary} temporary files left",
                restored.len()
            );
        }
        finished
    }

    fn check_round(
        &mut self,
        op: Op,
        finished: &Finished,
        before: &BTreeMap<String, BackupRecord>,
        after: &BTreeMap<String, BackupRecord>,
        expected: Option<Expected>,
    ) {
        if !finished.killed && !finished.status.success() {
            self.tally.problem(format!(
                "{op:?} (not killed) failed with {}: {} {}",
                finished.status,
                finished.stdout.chars().take(400).collect::<String>(),
                finished.stderr_tail()
            ));
        }
        if let Some(expected) = expected {
            for record in after.values().filter(|r| r.status == BackupStatus::Completed) {
                let new = before
                    .get(&record.id)
                    .is_none_or(|r| r.status != BackupStatus::Completed);
                if new && !self.oracle.contains_key(&record.id) {
                    self.oracle.insert(record.id.clone(), expected.clone());
                    self.tally.backups_completed += 1;
                }
            }
        }
        self.check_reported(op, finished, after);
    }

    /// Whatever an operation reported as a completed backup is completed in
    /// the catalog, and an answer of success (exit 0) names a completed
    /// backup ("nothing is reported as success that did not happen").
    fn check_reported(&mut self, op: Op, finished: &Finished, after: &BTreeMap<String, BackupRecord>) {
        if !matches!(
            op,
            Op::FullDirectory | Op::IncrementalDirectory | Op::S3Function | Op::Dump
        ) {
            return;
        }
        let Some(answer) = finished.json() else {
            return;
        };
        let Some(id) = answer["backupId"].as_str() else {
            return;
        };
        let status = after.get(id).map(|r| r.status.as_str()).unwrap_or("no record");
        let reported = answer["status"].as_str().unwrap_or("none");
        if reported == "completed" && status != "completed" {
            self.tally.problem(format!(
                "{op:?} reported backup {id} completed, the catalog says {status}"
            ));
        } else if reported != "completed" && finished.status.success() {
            self.tally.problem(format!(
                "{op:?} exited 0 (success) for backup {id} whose status is {reported} (duplicate: {}); the catalog says {status}",
                answer["duplicate"]
            ));
        }
    }

    /// Changes the sources between rounds: files and objects changed,
    /// added and deleted; rows inserted and updated.
    async fn mutate(&mut self) {
        if self.rng.gen_bool(0.8) {
            let files: Vec<String> = dir_tree(self.dir.path()).into_keys().collect();
            for _ in 0..self.rng.gen_range(1..=3) {
                let path = files[self.rng.gen_range(0..files.len())].clone();
                self.write_file(&path);
            }
            for _ in 0..self.rng.gen_range(0..=2) {
                let path = format!("d{}/n{}.bin", self.rng.gen_range(0..7), self.generation);
                self.write_file(&path);
            }
            let small: Vec<&String> = files.iter().filter(|f| !f.starts_with("big-")).collect();
            if small.len() > 20 && self.rng.gen_bool(0.5) {
                let path = small[self.rng.gen_range(0..small.len())];
                std::fs::remove_file(self.dir.path().join(path)).expect("delete a source file");
            }
        }
        if self.rng.gen_bool(0.5) {
            self.mutate_objects().await;
        }
        if self.rng.gen_bool(0.5) {
            self.insert_rows(2_000);
            let from = self.rng.gen_range(1..self.rows.saturating_sub(500).max(2));
            self.db.sql(&format!(
                "UPDATE items SET body = md5(body) WHERE id BETWEEN {from} AND {}",
                from + 500
            ));
        }
    }

    async fn mutate_objects(&mut self) {
        let keys: Vec<String> = self.objects.keys().cloned().collect();
        let changed = keys[self.rng.gen_range(0..keys.len())].clone();
        self.put_object(&changed);
        let added = format!("app/n{}.bin", self.generation);
        self.put_object(&added);
        let write: BTreeMap<String, Vec<u8>> = [&changed, &added]
            .into_iter()
            .map(|k| (k.clone(), self.objects[k].clone()))
            .collect();
        put_objects(&self.store.s3, &self.bucket, &write).await;
        if keys.len() > 8 && self.rng.gen_bool(0.4) {
            let key = keys[self.rng.gen_range(0..keys.len())].clone();
            if key != changed {
                self.objects.remove(&key);
                self.store
                    .s3
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(&key)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("delete s3://{}/{key}: {e:?}", self.bucket));
            }
        }
    }

    /// The normal scheduled runs, then every check.
    async fn settle_and_check(&mut self) {
        let retention = self.retention(None);
        if !retention.succeeded() {
            self.tally.problem(format!(
                "the scheduled retention run failed ({}): {}",
                retention.status,
                retention.stderr_tail()
            ));
        }
        let runs = converge_gc(&self.store, &mut self.tally);
        println!("GC ran {runs} time(s) to converge");
        let before_checks = self.tally.problems.len();
        check_completed(&self.store, &self.view, &self.oracle, &mut self.tally).await;
        for line in self.view.leftovers().await {
            self.tally.problem(line);
        }
        print_unfinished(&self.view).await;
        if self.tally.problems.len() > before_checks && self.tally.kills_with_problems == 0 {
            // Problems found only at the end cannot be tied to one kill.
            self.tally.kills_with_problems = self.tally.kills;
        }
    }
}

/// A restore's temporary file (`.lifeboat-<16 hex>.tmp`), left by a killed restore.
fn is_temporary(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.strip_prefix(".lifeboat-")
        .and_then(|rest| rest.strip_suffix(".tmp"))
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}
