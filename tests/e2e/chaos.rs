//! What the crash matrix (`crash.rs`) and the soak (`soak.rs`) share: the
//! knobs read from the environment, a child process run in its own process
//! group and `SIGKILL`ed (the whole group) after a chosen delay, the oracle
//! (what each completed backup must restore, byte for byte), the final
//! checks (deep verify, restore and compare every completed backup) and the
//! audit of what is left in the store once garbage collection has converged.
//!
//! Every problem found is a line naming the backup, the path and the expected
//! and found SHA-256, so a failure says which invariant broke where.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use lifeboat::catalog::{BackupRecord, BackupStatus, Catalog};
use lifeboat_e2e::{aws_env, sdk_config, workspace_bin, REGION};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{Engine, Store, TestDb};

/// A number from the environment (`name`), or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a whole number")),
        _ => default,
    }
}

/// Path → (SHA-256 hex, length): what a backup must restore.
pub type Tree = BTreeMap<String, (String, u64)>;

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The tree of a directory, paths relative to it.
pub fn dir_tree(dir: &Path) -> Tree {
    let mut tree = Tree::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                let relative = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().into_owned();
                tree.insert(relative, (sha256_hex(&bytes), bytes.len() as u64));
            }
        }
    }
    tree
}

/// The tree of objects, keys with `prefix` stripped.
pub fn objects_tree(objects: &BTreeMap<String, Vec<u8>>, prefix: &str) -> Tree {
    objects
        .iter()
        .map(|(key, body)| {
            let path = key.strip_prefix(prefix).unwrap_or(key).to_owned();
            (path, (sha256_hex(body), body.len() as u64))
        })
        .collect()
}

/// What a completed backup must give back.
#[derive(Clone, Debug)]
pub enum Expected {
    /// Exactly this tree.
    Tree(Tree),
    /// A subset of this tree, each file byte for byte (a continuous backup:
    /// objects are only ever added, never changed).
    Within(Tree),
    /// A PostgreSQL dump: table → SHA-256 of its rows in key order.
    Rows(BTreeMap<String, String>),
}

/// Compares a restored tree with the expected one: the problems, and the
/// bytes of expected files that are missing or differ.
pub fn compare_trees(id: &str, expected: &Expected, actual: &Tree) -> (Vec<String>, u64) {
    let mut problems = Vec::new();
    let mut lost = 0;
    let (tree, exact) = match expected {
        Expected::Tree(tree) => (tree, true),
        Expected::Within(tree) => (tree, false),
        Expected::Rows(_) => unreachable!("a dump is compared by its rows"),
    };
    for (path, (sha, len)) in tree {
        match actual.get(path) {
            None if exact => {
                problems.push(format!(
                    "backup {id}: {path} is missing from the restore (expected sha256 {sha}, {len} bytes)"
                ));
                lost += len;
            }
            None => {}
            Some((got, got_len)) if got != sha => {
                problems.push(format!(
                    "backup {id}: {path} differs: expected sha256 {sha} ({len} bytes), restored {got} ({got_len} bytes)"
                ));
                lost += len;
            }
            Some(_) => {}
        }
    }
    for (path, (got, _)) in actual {
        if !tree.contains_key(path) {
            problems.push(format!(
                "backup {id}: {path} was restored (sha256 {got}) but the source never had it"
            ));
        }
    }
    if problems.len() > MAX_LINES_PER_BACKUP {
        let more = problems.len() - MAX_LINES_PER_BACKUP;
        problems.truncate(MAX_LINES_PER_BACKUP);
        problems.push(format!("backup {id}: {more} more path(s) missing or different"));
    }
    (problems, lost)
}

/// Problem lines kept for one backup; the rest are counted.
const MAX_LINES_PER_BACKUP: usize = 8;

/// Table → SHA-256 of its rows, in primary-key order.
pub fn rows_digest(db: &TestDb) -> BTreeMap<String, String> {
    db.contents()
        .into_iter()
        .map(|(table, rows)| (table, sha256_hex(rows.as_bytes())))
        .collect()
}

/// How a child process ended.
#[derive(Debug)]
pub struct Finished {
    /// Ended by our SIGKILL (not by its own exit).
    pub killed: bool,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    pub fn succeeded(&self) -> bool {
        !self.killed && self.status.success()
    }

    /// Standard output as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(self.stdout.trim()).ok()
    }

    /// The end of standard error, for problem lines.
    pub fn stderr_tail(&self) -> String {
        let lines: Vec<&str> = self.stderr.lines().collect();
        lines[lines.len().saturating_sub(6)..].join(" | ")
    }
}

/// No operation of the tests may run longer than this, killed or not.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// Runs `command` in a process group of its own; when `kill_after` is given
/// and it is still running then, sends SIGKILL to the whole group (the
/// process and what it started: pg_dump, a function under invoke-local), as
/// a Lambda timeout, an OOM kill or a lost host would.
pub fn run_killable(mut command: Command, kill_after: Option<Duration>) -> Finished {
    let output = tempfile::tempdir().expect("a temp dir for a child's output");
    let stdout_path = output.path().join("stdout");
    let stderr_path = output.path().join("stderr");
    command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("create stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("create stderr file"));
    let started = Instant::now();
    let mut child = command.spawn().expect("start a child process");
    let group = child.id();
    let mut sent_kill = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            break status;
        }
        let overdue = started.elapsed() > RUN_LIMIT;
        if !sent_kill && (overdue || kill_after.is_some_and(|limit| started.elapsed() >= limit)) {
            kill_group(group);
            sent_kill = true;
            assert!(!overdue, "{command:?} ran longer than {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if sent_kill {
        // The leader is gone; what it started may still be alive.
        kill_group(group);
    }
    Finished {
        killed: sent_kill && status.signal() == Some(9),
        status,
        stdout: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

fn kill_group(group: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status();
}

/// `lifeboat ARGS` against `store`, not yet started.
pub fn lifeboat(store: &Store, args: &[&str]) -> Command {
    let mut command = Command::new(workspace_bin("lifeboat"));
    command
        .args(args)
        .envs(aws_env())
        .env("LIFEBOAT_STORE", &store.url)
        .env("LIFEBOAT_TABLE", &store.table)
        .env("LIFEBOAT_KMS_KEY", &store.kms_key)
        .env_remove("LIFEBOAT_OUTPUT")
        .envs(SHORT_LEASES);
    command
}

/// Claims, source leases, the GC lease and restore registrations of a
/// killed run expire within seconds here (minutes by default), so the next
/// run takes them over as it would after the default wait.
const SHORT_LEASES: [(&str, &str); 3] = [
    ("LIFEBOAT_HEARTBEAT_SECONDS", "1"),
    ("LIFEBOAT_STALE_AFTER_SECONDS", "6"),
    ("LIFEBOAT_GC_LEASE_SECONDS", "8"),
];

/// `lifeboat gc --grace 0s --output json --force` and `extra`: candidate
/// lists are swept at the next run.
pub fn gc(store: &Store, extra: &[&str]) -> Command {
    // `--force`: these stores are mostly garbage on purpose.
    let mut args = vec!["gc", "--grace", "0s", "--output", "json", "--force"];
    args.extend_from_slice(extra);
    lifeboat(store, &args)
}

/// `invoke-local file-backup EVENT` against `store`, not yet started: the
/// function's environment as the stack sets it, plus `plans` when given.
pub fn file_backup_function(store: &Store, event: &Value, plans: Option<&str>) -> (Command, tempfile::NamedTempFile) {
    let mut file = tempfile::NamedTempFile::new().expect("a temp file for an event");
    std::io::Write::write_all(&mut file, event.to_string().as_bytes()).expect("write the event");
    let mut command = Command::new(workspace_bin("invoke-local"));
    command
        .arg(workspace_bin("file-backup"))
        .arg(file.path())
        .envs(aws_env())
        .env("LIFEBOAT_TABLE", &store.table)
        .env("LIFEBOAT_KMS_KEY", &store.kms_key)
        .env("LIFEBOAT_STORE", &store.url)
        .envs(SHORT_LEASES);
    if let Some(plans) = plans {
        command.env("LIFEBOAT_PLANS_TOML", plans);
    }
    (command, file)
}

/// The library's view of a test store: its catalog records and its objects.
pub struct StoreView {
    pub catalog: Catalog,
    repo: lifeboat::repo::Repository,
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl StoreView {
    pub async fn open(store: &Store) -> Self {
        let clients = lifeboat::aws::Clients::new(&sdk_config().await);
        let location = lifeboat::storage::Location::parse(&store.url).expect("the store's URL");
        let (storage, prefix) = lifeboat::repo::storage_for(&location, &clients.s3, REGION);
        let kms = lifeboat::keys::Kms::new(clients.kms.clone(), REGION);
        let repo = lifeboat::repo::Repository::open(storage, &prefix, &kms, None)
            .await
            .expect("open the store");
        Self {
            catalog: Catalog::new(clients.dynamodb.clone(), &store.table, REGION),
            repo,
            s3: store.s3.clone(),
            bucket: store.bucket.clone(),
        }
    }

    /// Every backup record, by id.
    pub async fn records(&self) -> BTreeMap<String, BackupRecord> {
        self.catalog
            .list(None)
            .await
            .expect("list the catalog's backups")
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect()
    }

    /// Keys (and sizes) of the store's objects under `lifeboat/`.
    async fn keys(&self) -> BTreeMap<String, u64> {
        let mut keys = BTreeMap::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix("lifeboat/")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for object in page.expect("list the store").contents() {
                let size = object.size().unwrap_or_default().max(0) as u64;
                keys.insert(object.key().unwrap_or_default().to_owned(), size);
            }
        }
        keys
    }

    /// What a converged store must not hold: packs no index lists, index
    /// entries for packs that are gone, manifests of backups that are not
    /// completed, candidate lists. One line per finding.
    pub async fn leftovers(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let keys = self.keys().await;
        let index = match self.repo.load_index().await {
            Ok(index) => index,
            Err(e) => return vec![format!("the store's index cannot be read: {e}")],
        };
        let packs: BTreeSet<String> = keys
            .keys()
            .filter(|k| k.starts_with("lifeboat/data/"))
            .filter_map(|k| k.rsplit('/').next().map(str::to_owned))
            .collect();
        let indexed: BTreeSet<String> = index.packs.keys().map(|p| p.to_string()).collect();
        for pack in packs.difference(&indexed) {
            problems.push(format!(
                "pack {pack} is in the store but in no index (garbage GC never removed)"
            ));
        }
        for pack in indexed.difference(&packs) {
            problems.push(format!("the index lists pack {pack}, which is not in the store"));
        }
        let records = self.records().await;
        for key in keys.keys().filter(|k| k.starts_with("lifeboat/manifests/")) {
            let id = key.trim_start_matches("lifeboat/manifests/");
            let status = records.get(id).map(|r| r.status.as_str()).unwrap_or("no record");
            if status != BackupStatus::Completed.as_str() {
                problems.push(format!(
                    "orphan manifest {key}: its backup is {status} (garbage GC never removed)"
                ));
            }
        }
        for key in keys.keys().filter(|k| k.starts_with("lifeboat/gc/")) {
            problems.push(format!("candidate list {key} is left after GC converged"));
        }
        problems
    }
}

/// Backups left `pending` or `in_progress` (by kills): nothing finishes or
/// fails them once GC has converged, so they are printed for the report.
pub async fn print_unfinished(view: &StoreView) {
    let unfinished: Vec<String> = view
        .records()
        .await
        .into_values()
        .filter(|r| matches!(r.status, BackupStatus::Pending | BackupStatus::InProgress))
        .map(|r| format!("{} {}", r.id, r.status.as_str()))
        .collect();
    println!(
        "backups still unfinished after GC converged: {} {unfinished:?}",
        unfinished.len()
    );
}

/// Tallies of a run, printed as its summary line.
#[derive(Debug, Default)]
pub struct Tally {
    pub operations: u64,
    pub kills: u64,
    pub kills_with_problems: u64,
    pub backups_completed: u64,
    pub backups_checked: u64,
    pub bytes_lost: u64,
    pub problems: Vec<String>,
}

impl Tally {
    pub fn problem(&mut self, line: String) {
        eprintln!("PROBLEM: {line}");
        self.problems.push(line);
    }
}

/// `gc(store, extra)` run (killed after `kill_after`, if given); a run the
/// GC lease of a killed run refuses is run again once that lease expires
/// (seconds here, `SHORT_LEASES`), as the next scheduled run would.
pub fn run_gc(store: &Store, extra: &[&str], kill_after: Option<Duration>) -> Finished {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let finished = run_killable(gc(store, extra), kill_after);
        let refused = !finished.killed && !finished.succeeded() && finished.stderr.contains("garbage-collection lease");
        if !refused || Instant::now() > deadline {
            return finished;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Runs garbage collection (grace 0, unfinished backups dead at once: only
/// call this when nothing else runs) until a run neither sweeps nor marks
/// nor waits. Returns the number of runs, or records a problem.
pub fn converge_gc(store: &Store, tally: &mut Tally) -> u32 {
    let mut last = Value::Null;
    for run in 1..=GC_RUNS_TO_CONVERGE {
        let finished = run_gc(store, &["--assume-dead-after", "0s"], None);
        let Some(report) = finished.json().filter(|_| finished.succeeded()) else {
            tally.problem(format!(
                "converging GC: run {run} failed ({}): {}",
                finished.status,
                finished.stderr_tail()
            ));
            return run;
        };
        let swept = report["swept"].as_array().is_some_and(|s| !s.is_empty());
        let waiting = report["waiting"].as_array().is_some_and(|w| !w.is_empty());
        if !swept && !waiting && report["marked"].is_null() {
            return run;
        }
        last = report;
    }
    tally.problem(format!(
        "GC did not converge in {GC_RUNS_TO_CONVERGE} runs (grace 0s); the last one swept {}, waited for {} and marked {}",
        last["swept"], last["waiting"], last["marked"]
    ));
    GC_RUNS_TO_CONVERGE
}

/// One candidate list is swept per run, and two collectors running
/// together may each have marked several.
const GC_RUNS_TO_CONVERGE: u32 = 40;

/// Deep-verifies every completed backup and restores it, comparing with
/// `oracle`. A completed backup the oracle does not know is a problem too.
pub async fn check_completed(store: &Store, view: &StoreView, oracle: &BTreeMap<String, Expected>, tally: &mut Tally) {
    let records = view.records().await;
    for record in records.values().filter(|r| r.status == BackupStatus::Completed) {
        let id = record.id.as_str();
        tally.backups_checked += 1;
        let Some(expected) = oracle.get(id) else {
            tally.problem(format!(
                "backup {id} ({}) is completed but no operation of the test reported or recorded it",
                record.source
            ));
            continue;
        };
        let verify = run_killable(lifeboat(store, &["verify", id, "--deep", "--output", "json"]), None);
        let verified = verify.json().is_some_and(|v| v["ok"] == true);
        if !verified {
            tally.problem(format!(
                "backup {id} ({}) fails `verify --deep` (exit {}): {} {}",
                record.source,
                verify.status,
                verify.stdout.chars().take(600).collect::<String>(),
                verify.stderr_tail()
            ));
        }
        let (problems, lost) = restore_and_compare(store, id, expected, record.size);
        tally.bytes_lost += lost;
        for line in problems {
            tally.problem(line);
        }
    }
}

/// Restores backup `id` and compares it with `expected`: the problems and
/// the bytes lost (all of `size` when nothing could be restored).
pub fn restore_and_compare(store: &Store, id: &str, expected: &Expected, size: u64) -> (Vec<String>, u64) {
    if let Expected::Rows(rows) = expected {
        let target = TestDb::named(Engine::Postgres, "lbcrashrestore");
        let finished = run_killable(lifeboat(store, &["restore", "dump", id, "--to", &target.url()]), None);
        if !finished.succeeded() {
            let line = format!(
                "dump {id} does not restore ({}): {}",
                finished.status,
                finished.stderr_tail()
            );
            return (vec![line], size);
        }
        let got = rows_digest(&target);
        if &got != rows {
            let line = format!("dump {id} restores other rows: expected {rows:?}, restored {got:?}");
            return (vec![line], size);
        }
        return (Vec::new(), 0);
    }
    let target = tempfile::tempdir().expect("a restore target");
    let to = target.path().to_str().expect("a UTF-8 temp path");
    let finished = run_killable(lifeboat(store, &["restore", "files", id, "--to", to]), None);
    if !finished.succeeded() {
        let line = format!(
            "backup {id} does not restore ({}): {}",
            finished.status,
            finished.stderr_tail()
        );
        let expected_bytes = match expected {
            Expected::Tree(tree) => tree.values().map(|(_, len)| len).sum(),
            _ => size,
        };
        return (vec![line], expected_bytes);
    }
    compare_trees(id, expected, &dir_tree(target.path()))
}

/// Prints the run's summary line and fails the test with every problem.
pub fn finish(what: &str, header: &str, tally: &Tally) {
    let survived = tally.kills - tally.kills_with_problems;
    println!(
        "{what}: {header}, operations {}, faults injected (kills) {}, faults survived {}, backups completed {}, \
         backups checked {}, bytes lost {}, problems {}",
        tally.operations,
        tally.kills,
        if tally.problems.is_empty() {
            tally.kills
        } else {
            survived
        },
        tally.backups_completed,
        tally.backups_checked,
        tally.bytes_lost,
        tally.problems.len()
    );
    assert!(
        tally.problems.is_empty() && tally.bytes_lost == 0,
        "{what} ({header}) found {} problem(s), {} bytes lost:\n{}",
        tally.problems.len(),
        tally.bytes_lost,
        tally.problems.join("\n")
    );
}
