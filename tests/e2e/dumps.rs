//! Database dumps through the real `lifeboat` binary against this machine's
//! PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306): round trips
//! compared row by row, deduplication of a second dump, a consistent
//! snapshot under concurrent writes, and bad input.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{describe, Engine, Store, TestDb};

/// Orders in the test shop: dumps of about 30 MB (PostgreSQL) and 17 MB
/// (MariaDB), large enough that a small change touches a few of the store's
/// ~1 MiB chunks, not most of them. PostgreSQL's dump changes in three
/// places (its header's timestamp, where updated rows were, and the table's
/// end, where their new versions went); MariaDB's, which updates in place
/// and is dumped without a date, in one. MariaDB gets fewer rows because its
/// dump restores a row per statement.
fn order_rows(engine: Engine) -> u64 {
    match engine {
        Engine::Postgres => 90_000,
        Engine::Mariadb => 45_000,
    }
}

/// Customers, orders (with a foreign key) and an empty table.
fn fill_shop(db: &TestDb) {
    let serial = "int PRIMARY KEY";
    let text = match db.engine {
        Engine::Postgres => "text",
        Engine::Mariadb => "varchar(400)",
    };
    db.sql(&format!(
        "CREATE TABLE customers (id {serial}, name {text} NOT NULL, email {text});
         CREATE TABLE orders (id {serial}, customer_id int NOT NULL, amount numeric(12,2) NOT NULL, note {text},
                              FOREIGN KEY (customer_id) REFERENCES customers(id));
         CREATE TABLE empty_table (id {serial});"
    ));
    let rows = order_rows(db.engine);
    // Ten different hashes per row: text that compresses about as much as real data.
    let pg_note = (1..=10)
        .map(|k| format!("md5((g * {k})::text)"))
        .collect::<Vec<_>>()
        .join(" || ");
    let my_note = (1..=10)
        .map(|k| format!("MD5(seq * {k})"))
        .collect::<Vec<_>>()
        .join(", ");
    match db.engine {
        Engine::Postgres => db.sql(&format!(
            "INSERT INTO customers SELECT g, 'customer ' || g, CASE WHEN g % 7 = 0 THEN NULL ELSE 'c' || g || '@example.com' END
               FROM generate_series(1, 2000) g;
             INSERT INTO orders SELECT g, 1 + g % 2000, (g * 37 % 100000) / 100.0,
                 {pg_note} || ' é' FROM generate_series(1, {rows}) g;",
        )),
        Engine::Mariadb => db.sql(&format!(
            "INSERT INTO customers SELECT seq, CONCAT('customer ', seq),
                 IF(seq % 7 = 0, NULL, CONCAT('c', seq, '@example.com')) FROM seq_1_to_2000;
             INSERT INTO orders SELECT seq, 1 + seq % 2000, (seq * 37 % 100000) / 100.0,
                 CONCAT({my_note}, ' é') FROM seq_1_to_{rows};",
        )),
    };
}

fn backup_dump(store: &Store, url: &str) -> Value {
    let summary = store.json(&["backup", "dump", url]);
    assert_eq!(summary["status"], "completed", "{summary}");
    summary
}

fn round_trip_and_dedup(engine: Engine) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime.block_on(Store::new());
    let source = TestDb::create(engine, "lbsrc");
    fill_shop(&source);
    let expected = source.contents();
    assert_eq!(expected.len(), 3, "{:?}", expected.keys());

    let before = runtime.block_on(store.stored_bytes());
    let first = backup_dump(&store, &source.url());
    let after_first = runtime.block_on(store.stored_bytes());
    let id = first["backupId"].as_str().expect("backup id").to_owned();
    let record = store.json(&["backups", "show", &id]);
    let engine_name = if engine == Engine::Postgres {
        "postgresql"
    } else {
        "mysql"
    };
    assert_eq!(record["engine"], engine_name, "{record}");
    assert_eq!(record["database"], source.name.as_str(), "{record}");
    assert!(
        record["serverVersion"].as_str().is_some_and(|v| !v.is_empty()),
        "{record}"
    );
    assert_eq!(record["entryCount"], 1, "{record}");

    // Into a database that does not exist yet: the restore creates it.
    let target = TestDb::named(engine, "lbdst");
    let restored = store.json(&["restore", "dump", &id, "--to", &target.url()]);
    assert_eq!(restored["createdDatabase"], true, "{restored}");
    let orders = restored["tables"]
        .as_array()
        .and_then(|t| {
            t.iter()
                .find(|t| t["table"].as_str().is_some_and(|n| n.ends_with("orders")))
        })
        .map(|t| t["rows"].clone());
    assert_eq!(orders, Some(Value::from(order_rows(engine))), "{restored}");
    assert_eq!(target.contents(), expected, "restored rows differ");

    // Change 1% of the orders, in one stretch (recent rows, the usual
    // shape): deduplication works at the chunk level (about 1 MiB), so what
    // matters is how many places change, not how many rows.
    let (from, to) = (
        order_rows(engine) / 3,
        order_rows(engine) / 3 + order_rows(engine) / 100 - 1,
    );
    source.sql(&format!(
        "UPDATE orders SET note = 'refunded', amount = 0 WHERE id BETWEEN {from} AND {to}"
    ));
    let second = backup_dump(&store, &source.url());
    let after_second = runtime.block_on(store.stored_bytes());
    let (first_growth, second_growth) = (after_first - before, after_second - after_first);
    println!(
        "{engine:?}: dump of {} bytes; first backup stored {first_growth} bytes, second (1% of rows changed) {second_growth} bytes",
        first["bytesRead"]
    );
    assert!(
        second_growth * 3 < first_growth,
        "the second dump stored {second_growth} bytes, the first {first_growth}: deduplication did not work"
    );

    // Restoring over the (now non-empty) target needs --overwrite.
    let second_id = second["backupId"].as_str().expect("backup id");
    let refused = store.run(&["restore", "dump", second_id, "--to", &target.url()]);
    assert!(!refused.status.success(), "{}", describe(&refused));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("--overwrite") && message.contains(&target.name),
        "{message}"
    );
    assert_eq!(target.contents(), expected, "a refused restore changed the target");
    store.ok(&["restore", "dump", second_id, "--to", &target.url(), "--overwrite"]);
    assert_eq!(target.contents(), source.contents(), "overwritten rows differ");
}

#[test]
fn postgres_dump_round_trips_row_by_row_and_a_second_dump_deduplicates() {
    round_trip_and_dedup(Engine::Postgres);
}

#[test]
fn mariadb_dump_round_trips_row_by_row_and_a_second_dump_deduplicates() {
    round_trip_and_dedup(Engine::Mariadb);
}

/// A writer moving money between accounts, each move one transaction that
/// also records a `transfers` row, while the dump runs.
fn transfers_writer(db: &TestDb) -> Child {
    let mut script = String::new();
    for i in 0..200_000u64 {
        let (from, to, amount) = (1 + i * 7 % 50, 1 + (i * 13 + 5) % 50, 1 + i % 9);
        let begin = if db.engine == Engine::Postgres {
            "BEGIN"
        } else {
            "START TRANSACTION"
        };
        script.push_str(&format!(
            "{begin}; UPDATE accounts SET balance = balance - {amount} WHERE id = {from};
             UPDATE accounts SET balance = balance + {amount} WHERE id = {to};
             INSERT INTO transfers (from_id, to_id, amount) VALUES ({from}, {to}, {amount}); COMMIT;\n"
        ));
    }
    let mut child = db
        .engine
        .client(&db.name)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the writer");
    let mut stdin = child.stdin.take().expect("stdin");
    std::thread::spawn(move || {
        let _ = stdin.write_all(script.as_bytes()); // fails once the writer is killed
    });
    child
}

fn consistent_under_writes(engine: Engine) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime.block_on(Store::new());
    let source = TestDb::create(engine, "lbbank");
    let (serial, table_options) = match engine {
        Engine::Postgres => ("serial PRIMARY KEY", ""),
        Engine::Mariadb => ("int AUTO_INCREMENT PRIMARY KEY", " ENGINE=InnoDB"),
    };
    source.sql(&format!(
        "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL){table_options};
         CREATE TABLE transfers (id {serial}, from_id int NOT NULL, to_id int NOT NULL, amount bigint NOT NULL,
                                 FOREIGN KEY (from_id) REFERENCES accounts(id),
                                 FOREIGN KEY (to_id) REFERENCES accounts(id)){table_options};"
    ));
    let accounts: Vec<String> = (1..=50).map(|i| format!("({i}, 1000)")).collect();
    source.sql(&format!("INSERT INTO accounts VALUES {};", accounts.join(", ")));
    let mut writer = transfers_writer(&source);
    // Let the writer get going, then dump while it writes.
    for _ in 0..100 {
        if source
            .sql("SELECT count(*) FROM transfers")
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
            > 200
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let summary = backup_dump(&store, &source.url());
    let moved_after = source.sql("SELECT count(*) FROM transfers");
    let _ = writer.kill();
    let _ = writer.wait();

    let target = TestDb::named(engine, "lbbankr");
    store.ok(&[
        "restore",
        "dump",
        summary["backupId"].as_str().expect("id"),
        "--to",
        &target.url(),
    ]);
    let total = target.sql("SELECT sum(balance) FROM accounts");
    assert_eq!(total.trim(), "50000", "money appeared or vanished in the dump");
    // Every account's balance is what its transfers say: the two tables come from one instant.
    let mismatched = target.sql(
        "SELECT count(*) FROM accounts a WHERE a.balance <> 1000
           - COALESCE((SELECT sum(amount) FROM transfers WHERE from_id = a.id), 0)
           + COALESCE((SELECT sum(amount) FROM transfers WHERE to_id = a.id), 0)",
    );
    assert_eq!(mismatched.trim(), "0", "accounts and transfers disagree");
    let dumped = target.sql("SELECT count(*) FROM transfers");
    println!(
        "{engine:?}: {} transfers in the dump, {} when it ended",
        dumped.trim(),
        moved_after.trim()
    );
    assert!(
        dumped.trim().parse::<u64>().unwrap_or(0) > 0,
        "the dump caught no transfer"
    );
}

#[test]
fn postgres_dump_under_concurrent_transfers_keeps_the_sum() {
    consistent_under_writes(Engine::Postgres);
}

#[test]
fn mariadb_dump_under_concurrent_transfers_keeps_the_sum() {
    consistent_under_writes(Engine::Mariadb);
}

/// Runs a backup that must fail; returns its message and checks the catalog
/// recorded the attempt as failed with that message.
fn failing_backup(store: &Store, url: &str, env: &[(&str, &str)], expected: &[&str]) {
    let output = store.run_with(&["backup", "dump", url], env);
    assert!(!output.status.success(), "{}", describe(&output));
    let message = String::from_utf8_lossy(&output.stderr).into_owned();
    for part in expected {
        assert!(message.contains(part), "{part:?} not in: {message}");
    }
    assert!(!message.contains("hunter2"), "the password leaked: {message}");
    let records = store.json(&["backups", "list"]);
    let source = url.replace(":hunter2", "").replace("postgres://", "postgresql://");
    let record = records
        .as_array()
        .and_then(|r| {
            r.iter()
                .find(|r| r["source"].as_str().is_some_and(|s| s.starts_with(&source)))
        })
        .unwrap_or_else(|| panic!("no record for {source} in {records}"));
    assert_eq!(record["status"], "failed", "{record}");
    assert!(!record.to_string().contains("hunter2"), "the password leaked: {record}");
    assert!(
        record["error"].as_str().is_some_and(|e| e.contains(expected[0])),
        "{record}"
    );
}

#[test]
fn bad_input_fails_clearly_and_is_recorded() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime.block_on(Store::new());
    let source = TestDb::create(Engine::Postgres, "lbbad");
    source.sql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);");

    // Unreachable server.
    failing_backup(
        &store,
        "postgres://postgres:hunter2@127.0.0.1:1/nowhere",
        &[],
        &["127.0.0.1:1", "running and reachable"],
    );
    // Wrong password (this PostgreSQL trusts local connections; MariaDB checks).
    failing_backup(
        &store,
        "mysql://root:hunter2@127.0.0.1:3306/mysql",
        &[],
        &["Access denied", "check the user and password"],
    );
    // No pg_dump on PATH.
    let empty = tempfile::tempdir().expect("tempdir");
    failing_backup(
        &store,
        &source.url(),
        &[("PATH", empty.path().to_str().expect("path"))],
        &["pg_dump was not found on PATH", "postgresql-client"],
    );
    // A pg_dump that writes part of a dump, then fails: the backup must fail.
    let fake = tempfile::tempdir().expect("tempdir");
    let script = fake.path().join("pg_dump");
    std::fs::write(
        &script,
        "#!/bin/sh\nhead -c 3000000 /dev/zero\necho 'pg_dump: error: simulated failure halfway' >&2\nexit 1\n",
    )
    .expect("write fake pg_dump");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        fake.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    failing_backup(
        &store,
        &source.url(),
        &[("PATH", &path)],
        &["simulated failure halfway"],
    );

    // A completed backup, then a restore into a non-empty database without --overwrite.
    let summary = backup_dump(&store, &source.url().replace("postgres@", "postgres:hunter2@"));
    assert!(!summary.to_string().contains("hunter2"), "{summary}");
    let id = summary["backupId"].as_str().expect("id");
    let target = TestDb::create(Engine::Postgres, "lbbusy");
    target.sql("CREATE TABLE precious (id int); INSERT INTO precious VALUES (42);");
    let refused = store.run(&["restore", "dump", id, "--to", &target.url()]);
    assert!(!refused.status.success(), "{}", describe(&refused));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("already holds 1 table") && message.contains("--overwrite"),
        "{message}"
    );
    assert_eq!(
        target.contents().into_keys().collect::<Vec<_>>(),
        vec!["precious".to_owned()],
        "a refused restore changed the target"
    );
    // A dump restored into the other engine is refused before anything runs.
    let wrong = store.run(&["restore", "dump", id, "--to", "mysql://root@127.0.0.1:3306/x"]);
    assert!(!wrong.status.success(), "{}", describe(&wrong));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("postgresql dump"),
        "{}",
        describe(&wrong)
    );
}

fn sqlite(file: &std::path::Path, sql: &str) -> String {
    let output = Command::new("sqlite3")
        .arg("-bail")
        .arg(file)
        .arg(sql)
        .output()
        .expect("run sqlite3");
    assert!(output.status.success(), "SQL failed: {sql:.200}\n{}", describe(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn sqlite_dump_round_trips_and_replaces_a_database_only_with_overwrite() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime.block_on(Store::new());
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("app.db");
    sqlite(
        &source,
        "PRAGMA foreign_keys = ON;
         CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, photo BLOB);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
                              amount REAL, note TEXT);
         CREATE INDEX orders_by_customer ON orders (customer_id);
         WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 500)
           INSERT INTO customers SELECT g, 'customer ' || g || ' é', randomblob(16) FROM s;
         WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 5000)
           INSERT INTO orders SELECT g, 1 + g % 500, g * 0.25, CASE WHEN g % 9 = 0 THEN NULL ELSE hex(randomblob(20)) END FROM s;",
    );
    let url = format!("sqlite://{}", source.display());
    let summary = backup_dump(&store, &url);
    let id = summary["backupId"].as_str().expect("id").to_owned();
    let record = store.json(&["backups", "show", &id]);
    assert_eq!(record["engine"], "sqlite", "{record}");
    assert_eq!(record["source"], url.as_str(), "{record}");

    let copy = dir.path().join("copy.db");
    let copy_url = format!("sqlite://{}", copy.display());
    let restored = store.json(&["restore", "dump", &id, "--to", &copy_url]);
    assert_eq!(restored["createdDatabase"], true, "{restored}");
    assert_eq!(
        sqlite(&copy, ".dump"),
        sqlite(&source, ".dump"),
        "restored database differs"
    );
    assert_eq!(sqlite(&copy, "PRAGMA foreign_key_check"), "", "dangling foreign keys");

    sqlite(
        &source,
        "UPDATE orders SET note = 'refunded' WHERE id <= 50; DELETE FROM orders WHERE id > 4990;",
    );
    let second = backup_dump(&store, &url);
    let second_id = second["backupId"].as_str().expect("id");
    let refused = store.run(&["restore", "dump", second_id, "--to", &copy_url]);
    assert!(!refused.status.success(), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--overwrite"),
        "{}",
        describe(&refused)
    );
    store.ok(&["restore", "dump", second_id, "--to", &copy_url, "--overwrite"]);
    assert_eq!(
        sqlite(&copy, ".dump"),
        sqlite(&source, ".dump"),
        "overwritten database differs"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("lifeboat"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // A file that does not exist: a clear failure, recorded.
    let missing = format!("sqlite://{}", dir.path().join("missing.db").display());
    let output = store.run(&["backup", "dump", &missing]);
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("is a readable SQLite database file"),
        "{}",
        describe(&output)
    );
    assert!(
        !dir.path().join("missing.db").exists(),
        "the failed backup created the file"
    );
}
