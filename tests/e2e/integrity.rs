//! DuckDB dumps, integrity audits, SQLite salvage and cross-database
//! consistency rules, through the real `lifeboat` binary against this
//! machine's PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306), the
//! `sqlite3` and `duckdb` programs; each test makes its own databases and
//! drops them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use lifeboat_e2e::{unique, workspace_bin};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{describe, Engine, Store, TestDb};

/// Runs `lifeboat ARGS` (no AWS: these commands need none) with extra environment.
fn lifeboat(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(workspace_bin("lifeboat"));
    command.args(args).env_remove("LIFEBOAT_OUTPUT");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run lifeboat")
}

/// Runs `lifeboat ARGS --output json`, expecting exit `code`; returns the JSON.
fn lifeboat_json(args: &[&str], code: i32) -> Value {
    let mut args = args.to_vec();
    args.extend(["--output", "json"]);
    let output = lifeboat(&args, &[]);
    assert_eq!(
        output.status.code(),
        Some(code),
        "lifeboat {args:?}:\n{}",
        describe(&output)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("no JSON ({e}):\n{}", describe(&output)))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn findings(report: &Value) -> Vec<Value> {
    report["findings"].as_array().cloned().unwrap_or_default()
}

fn sqlite(file: &Path, sql: &str) -> String {
    let output = Command::new("sqlite3")
        .arg("-bail")
        .arg(file)
        .arg(sql)
        .output()
        .expect("run sqlite3");
    assert!(output.status.success(), "SQL failed: {sql:.200}\n{}", describe(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn duckdb(file: &Path, sql: &str) -> String {
    let output = Command::new("duckdb")
        .args(["-no-init", "-batch", "-bail", "-csv"])
        .arg(file)
        .args(["-c", sql])
        .output()
        .expect("run duckdb (pip install duckdb-cli==1.5.6, as scripts/setup does)");
    assert!(output.status.success(), "SQL failed: {sql:.200}\n{}", describe(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every table of a DuckDB file, its rows in full order, as CSV.
fn duckdb_contents(file: &Path) -> BTreeMap<String, String> {
    duckdb(file, "SELECT table_name FROM duckdb_tables() ORDER BY 1")
        .lines()
        .skip(1)
        .map(|t| {
            (
                t.to_owned(),
                duckdb(file, &format!("SELECT * FROM \"{t}\" ORDER BY ALL")),
            )
        })
        .collect()
}

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("read file")))
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("lifeboat"))
        .collect()
}

const ORDERS: u64 = 200_000;

#[test]
fn duckdb_dump_round_trips_row_by_row_and_a_second_dump_deduplicates() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime.block_on(Store::new());
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("shop.duckdb");
    // About 30 MB of orders (four hashes a row: text that compresses like
    // real data), plus the types an export must keep exactly.
    duckdb(
        &source,
        &format!(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL, email VARCHAR);
             INSERT INTO customers SELECT g, 'customer ' || g, CASE WHEN g % 7 = 0 THEN NULL ELSE 'c' || g || '@example.com' END
               FROM range(1, 2001) r(g);
             CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id),
                                  amount DECIMAL(12,2), note VARCHAR);
             INSERT INTO orders SELECT g, 1 + g % 2000, (g * 37 % 100000) / 100.0,
                 md5(g::VARCHAR) || md5((g * 2)::VARCHAR) || md5((g * 3)::VARCHAR) || md5((g * 4)::VARCHAR) || ' é'
               FROM range(1, {} + 1) r(g);
             CREATE TABLE kinds (id INTEGER, s VARCHAR, b BLOB, d DATE, l INTEGER[], st STRUCT(a INTEGER, b VARCHAR));
             INSERT INTO kinds VALUES (1, '', '\\xAA\\x00'::BLOB, DATE '2026-11-23', [1, 2, NULL], {{'a': 1, 'b': 'x,y'}}),
                                      (2, NULL, NULL, NULL, NULL, NULL), (3, 'NULL', ''::BLOB, NULL, [], {{'a': NULL, 'b': '\"q\"'}});
             CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 900;",
            ORDERS
        ),
    );
    let expected = duckdb_contents(&source);
    assert_eq!(expected.len(), 3, "{:?}", expected.keys());
    let url = format!("duckdb://{}", source.display());

    let before = runtime.block_on(store.stored_bytes());
    let first = store.json(&["backup", "dump", &url]);
    assert_eq!(first["status"], "completed", "{first}");
    let after_first = runtime.block_on(store.stored_bytes());
    let id = first["backupId"].as_str().expect("backup id").to_owned();
    let record = store.json(&["backups", "show", &id]);
    assert_eq!(record["engine"], "duckdb", "{record}");
    assert_eq!(record["source"], url.as_str(), "{record}");
    assert!(
        record["serverVersion"].as_str().is_some_and(|v| v.starts_with('v')),
        "{record}"
    );

    let copy = dir.path().join("copy.duckdb");
    let copy_url = format!("duckdb://{}", copy.display());
    let restored = store.json(&["restore", "dump", &id, "--to", &copy_url]);
    assert_eq!(restored["createdDatabase"], true, "{restored}");
    let orders = restored["tables"].as_array().and_then(|t| {
        t.iter()
            .find(|t| t["table"] == "main.orders")
            .map(|t| t["rows"].clone())
    });
    assert_eq!(orders, Some(Value::from(ORDERS)), "{restored}");
    assert_eq!(duckdb_contents(&copy), expected, "restored rows differ");
    assert_eq!(
        duckdb(&copy, "SELECT count(*) FROM big_orders"),
        duckdb(&source, "SELECT count(*) FROM big_orders"),
        "the view was not restored"
    );

    // 1% of the orders change, in one stretch.
    duckdb(
        &source,
        &format!(
            "UPDATE orders SET note = 'refunded', amount = 0 WHERE id BETWEEN {} AND {}",
            ORDERS / 3,
            ORDERS / 3 + ORDERS / 100 - 1
        ),
    );
    let second = store.json(&["backup", "dump", &url]);
    let after_second = runtime.block_on(store.stored_bytes());
    let (first_growth, second_growth) = (after_first - before, after_second - after_first);
    println!(
        "DuckDB: export of {} bytes; first backup stored {first_growth} bytes, second (1% of rows changed) {second_growth} bytes",
        first["bytesRead"]
    );
    assert!(
        second_growth * 3 < first_growth,
        "the second dump stored {second_growth} bytes, the first {first_growth}: deduplication did not work"
    );

    // An existing target is refused without --overwrite, and left as it was.
    let second_id = second["backupId"].as_str().expect("backup id");
    let copy_sha = sha256(&copy);
    let refused = store.run(&["restore", "dump", second_id, "--to", &copy_url]);
    assert!(!refused.status.success(), "{}", describe(&refused));
    assert!(stderr(&refused).contains("--overwrite"), "{}", describe(&refused));
    assert_eq!(sha256(&copy), copy_sha, "a refused restore changed the target");
    let overwritten = store.json(&["restore", "dump", second_id, "--to", &copy_url, "--overwrite"]);
    assert_eq!(overwritten["createdDatabase"], false, "{overwritten}");
    assert_eq!(
        duckdb_contents(&copy),
        duckdb_contents(&source),
        "overwritten rows differ"
    );
    assert!(
        leftovers(dir.path()).is_empty(),
        "temporary files left: {:?}",
        leftovers(dir.path())
    );

    // No duckdb program: a clear failure naming the package, recorded, nothing written.
    let empty = tempfile::tempdir().expect("tempdir");
    let no_tool = [("PATH", empty.path().to_str().expect("path"))];
    let output = store.run_with(&["backup", "dump", &url], &no_tool);
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        stderr(&output).contains("duckdb was not found on PATH") && stderr(&output).contains("duckdb-cli==1.5.6"),
        "{}",
        describe(&output)
    );
    let fresh = dir.path().join("fresh.duckdb");
    let output = store.run_with(
        &[
            "restore",
            "dump",
            second_id,
            "--to",
            &format!("duckdb://{}", fresh.display()),
        ],
        &no_tool,
    );
    assert!(stderr(&output).contains("duckdb-cli"), "{}", describe(&output));
    assert!(!fresh.exists(), "a failed restore created the target");
    assert!(
        leftovers(dir.path()).is_empty(),
        "temporary files left: {:?}",
        leftovers(dir.path())
    );
}

#[test]
fn a_corrupted_duckdb_file_is_audited_as_damaged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("events.duckdb");
    duckdb(
        &file,
        "CREATE TABLE events AS SELECT g AS id, md5(g::VARCHAR) AS body FROM range(0, 300000) r(g);",
    );
    let clean = lifeboat_json(&["audit", file.to_str().expect("path")], 0);
    assert!(findings(&clean).is_empty(), "{clean}");
    // Overwrite bytes in the middle of the file: inside a data block.
    let mut bytes = std::fs::read(&file).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle..middle + 256].fill(0xff);
    std::fs::write(&file, &bytes).expect("corrupt");
    let damaged = lifeboat_json(&["audit", file.to_str().expect("path")], 6);
    let finding = findings(&damaged)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{damaged}"));
    assert_eq!(finding["severity"], "critical", "{finding}");
    assert_eq!(finding["object"], "main.events", "{finding}");
    assert!(
        finding["message"].as_str().is_some_and(|m| m.contains("checksum")),
        "{finding}"
    );
}

/// A PostgreSQL login role without superuser rights, dropped at the end
/// (declare it before the databases it is granted on, so they go first).
struct Role(String);

impl Drop for Role {
    fn drop(&mut self) {
        let output = Command::new("psql")
            .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c"])
            .arg(format!("DROP ROLE IF EXISTS {}", self.0))
            .output();
        if !output.is_ok_and(|o| o.status.success()) {
            eprintln!("could not drop test role {}", self.0);
        }
    }
}

#[test]
fn audit_finds_foreign_key_orphans_in_postgres_and_mariadb_and_passes_clean_databases() {
    let role = Role(unique("lbauditor").replace('-', "_"));
    // PostgreSQL: clean, then an orphan hidden behind a NOT VALID constraint.
    let pg = TestDb::create(Engine::Postgres, "lbaudit");
    pg.sql(
        "CREATE TABLE customers (id serial PRIMARY KEY, name text);
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers(id));
         CREATE INDEX orders_by_customer ON orders (customer_id);
         CREATE TABLE events (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
         INSERT INTO events SELECT g, DATE '2026-01-01' + g % 300 FROM generate_series(1, 1000) g;
         INSERT INTO customers (name) SELECT 'c' || g FROM generate_series(1, 100) g;
         INSERT INTO orders SELECT g, 1 + g % 100 FROM generate_series(1, 1000) g;",
    );
    let clean = lifeboat_json(&["audit", &pg.url()], 0);
    assert!(findings(&clean).is_empty(), "{clean}");
    let amcheck = clean["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["check"] == "amcheck"))
        .map(|c| c["objects"].clone());
    // customers, orders (2), the partition's key; not the partitioned parent's, which has no storage.
    assert_eq!(amcheck, Some(Value::from(4)), "every btree index checked: {clean}");
    let text = lifeboat(&["audit", &pg.url()], &[]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("clean"),
        "{}",
        describe(&text)
    );

    // A user who may read but not create extensions: no index check, and a warning that says so.
    pg.sql(&format!(
        "CREATE ROLE {0} LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {0};
         GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {0};",
        role.0
    ));
    pg.sql("DROP EXTENSION amcheck;");
    let as_reader = pg.url().replace("postgres@", &format!("{}@", role.0));
    let limited = lifeboat_json(&["audit", &as_reader], 0);
    let warning = findings(&limited)
        .into_iter()
        .find(|f| f["check"] == "amcheck")
        .unwrap_or_else(|| panic!("no amcheck finding: {limited}"));
    assert_eq!(warning["severity"], "warning", "{warning}");
    assert!(
        warning["message"]
            .as_str()
            .is_some_and(|m| m.contains("could not be created")),
        "{warning}"
    );
    assert!(
        warning["action"].as_str().is_some_and(|a| a.contains("superuser")),
        "{warning}"
    );

    pg.sql(
        "ALTER TABLE orders DROP CONSTRAINT orders_customer_id_fkey;
         INSERT INTO orders VALUES (5001, 4242), (5002, 4343);
         ALTER TABLE orders ADD CONSTRAINT orders_customer_id_fkey
           FOREIGN KEY (customer_id) REFERENCES customers(id) NOT VALID;",
    );
    let damaged = lifeboat_json(&["audit", &pg.url()], 6);
    let orphan = findings(&damaged)
        .into_iter()
        .find(|f| f["check"] == "foreign_keys")
        .unwrap_or_else(|| panic!("no foreign-key finding: {damaged}"));
    assert_eq!(orphan["severity"], "critical", "{orphan}");
    let message = orphan["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("2 row(s)") && message.contains("4242") && message.contains("NOT VALID"),
        "{orphan}"
    );
    assert!(
        orphan["action"]
            .as_str()
            .is_some_and(|a| a.contains("VALIDATE CONSTRAINT")),
        "{orphan}"
    );
    let markdown = lifeboat(&["audit", &pg.url(), "--format", "markdown"], &[]);
    assert_eq!(markdown.status.code(), Some(6), "{}", describe(&markdown));
    let markdown = String::from_utf8_lossy(&markdown.stdout);
    assert!(
        markdown.starts_with("# Integrity audit")
            && markdown.contains("| critical | `orders.orders_customer_id_fkey` |"),
        "{markdown}"
    );

    // MariaDB: clean, then an orphan written with FOREIGN_KEY_CHECKS=0.
    let my = TestDb::create(Engine::Mariadb, "lbaudit");
    my.sql(
        "CREATE TABLE customers (id int PRIMARY KEY) ENGINE=InnoDB;
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int, FOREIGN KEY (customer_id) REFERENCES customers(id)) ENGINE=InnoDB;
         INSERT INTO customers SELECT seq FROM seq_1_to_100;
         INSERT INTO orders SELECT seq, 1 + seq % 100 FROM seq_1_to_1000;",
    );
    let clean = lifeboat_json(&["audit", &my.url()], 0);
    assert!(findings(&clean).is_empty(), "{clean}");
    my.sql("SET FOREIGN_KEY_CHECKS = 0; INSERT INTO orders VALUES (5001, 777);");
    let damaged = lifeboat_json(&["audit", &my.url()], 6);
    let orphan = findings(&damaged)
        .into_iter()
        .find(|f| f["check"] == "foreign_keys")
        .unwrap_or_else(|| panic!("no foreign-key finding: {damaged}"));
    assert_eq!(orphan["severity"], "critical", "{orphan}");
    assert!(
        orphan["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("1 row(s)") && m.contains("777")),
        "{orphan}"
    );
}

/// A SQLite shop of three tables; returns each table's rows as sqlite3 prints them.
fn sqlite_shop(path: &Path) -> BTreeMap<String, String> {
    sqlite(
        path,
        "PRAGMA page_size = 4096;
         CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), note TEXT);
         CREATE TABLE notes (body TEXT);
         CREATE INDEX orders_by_customer ON orders (customer_id);
         WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 300)
           INSERT INTO customers SELECT g, 'customer ' || g FROM s;
         WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 5000)
           INSERT INTO orders SELECT g, 1 + g % 300, hex(randomblob(30)) FROM s;
         WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 50)
           INSERT INTO notes SELECT 'note ' || g FROM s;",
    );
    ["customers", "orders", "notes"]
        .iter()
        .map(|t| {
            (
                t.to_string(),
                sqlite(path, &format!("SELECT rowid, * FROM {t} ORDER BY rowid")),
            )
        })
        .collect()
}

#[test]
fn a_corrupted_sqlite_file_is_audited_as_damaged_and_salvaged_with_its_losses_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.db");
    let expected = sqlite_shop(&good);
    let clean = lifeboat_json(&["audit", good.to_str().expect("path")], 0);
    assert!(findings(&clean).is_empty(), "{clean}");

    // Overwrite the header of one of the orders table's leaf pages.
    let broken = dir.path().join("broken.db");
    std::fs::copy(&good, &broken).expect("copy");
    let page: u64 = sqlite(
        &good,
        "SELECT pageno FROM dbstat WHERE name = 'orders' AND pagetype = 'leaf' ORDER BY pageno LIMIT 1 OFFSET 10",
    )
    .trim()
    .parse()
    .expect("a leaf page number");
    let mut bytes = std::fs::read(&broken).expect("read");
    let start = ((page - 1) * 4096) as usize;
    bytes[start..start + 64].fill(0xff);
    std::fs::write(&broken, &bytes).expect("corrupt");
    let broken_sha = sha256(&broken);

    let damaged = lifeboat_json(&["audit", broken.to_str().expect("path")], 6);
    let finding = findings(&damaged)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{damaged}"));
    assert_eq!(finding["severity"], "critical", "{finding}");
    assert!(
        finding["message"].as_str().is_some_and(|m| m.contains("malformed")),
        "{finding}"
    );
    assert!(
        finding["action"]
            .as_str()
            .is_some_and(|a| a.contains("lifeboat salvage sqlite")),
        "{finding}"
    );

    let salvaged = dir.path().join("salvaged.db");
    let report = lifeboat_json(
        &[
            "salvage",
            "sqlite",
            broken.to_str().expect("path"),
            "--to",
            salvaged.to_str().expect("path"),
        ],
        3,
    );
    assert_eq!(report["complete"], false, "{report}");
    assert_eq!(sha256(&broken), broken_sha, "the salvage wrote to the damaged file");
    let tables: BTreeMap<String, Value> = report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| (t["table"].as_str().unwrap_or_default().to_owned(), t.clone()))
        .collect();
    // The undamaged tables come back whole, row for row.
    for table in ["customers", "notes"] {
        assert_eq!(tables[table]["complete"], true, "{report}");
        assert_eq!(
            sqlite(&salvaged, &format!("SELECT rowid, * FROM {table} ORDER BY rowid")),
            expected[table],
            "{table} differs"
        );
    }
    // The damaged one: every recovered row as it was; every missing rowid inside a reported loss.
    let orders = &tables["orders"];
    assert_eq!(orders["complete"], false, "{orders}");
    let lost = orders["lost"].as_array().expect("lost ranges");
    assert_eq!(lost.len(), 1, "one damaged page, one loss: {orders}");
    let (after, before) = (lost[0]["afterRowid"].as_i64(), lost[0]["beforeRowid"].as_i64());
    let (Some(after), Some(before)) = (after, before) else {
        panic!("a loss in the middle has both ends: {orders}");
    };
    let recovered = sqlite(&salvaged, "SELECT rowid, * FROM orders ORDER BY rowid");
    let original: Vec<&str> = expected["orders"].lines().collect();
    let kept: Vec<&str> = original
        .iter()
        .copied()
        .filter(|row| {
            let rowid: i64 = row.split('|').next().and_then(|r| r.parse().ok()).unwrap_or(0);
            rowid <= after || rowid >= before
        })
        .collect();
    assert_eq!(recovered.lines().collect::<Vec<_>>(), kept, "recovered orders differ");
    let lost_rows = original.len() - kept.len();
    println!(
        "salvage: {} of {} orders recovered, rowids {after} < r < {before} lost",
        kept.len(),
        original.len()
    );
    assert!(lost_rows > 0 && lost_rows < 200, "{lost_rows} rows lost for one page");
    assert_eq!(orders["rowsRecovered"], Value::from(kept.len()), "{orders}");
    assert_eq!(sqlite(&salvaged, "PRAGMA integrity_check").trim(), "ok");
    assert!(
        sqlite(&salvaged, "SELECT name FROM sqlite_master WHERE type = 'index'").contains("orders_by_customer"),
        "the index was not recreated"
    );

    // An existing target is refused (nothing written) unless --overwrite.
    let salvaged_sha = sha256(&salvaged);
    let args = [
        "salvage",
        "sqlite",
        broken.to_str().expect("path"),
        "--to",
        salvaged.to_str().expect("path"),
    ];
    let refused = lifeboat(&args, &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    assert!(stderr(&refused).contains("--overwrite"), "{}", describe(&refused));
    assert_eq!(sha256(&salvaged), salvaged_sha, "a refused salvage changed the target");
    let mut again = args.to_vec();
    again.push("--overwrite");
    assert_eq!(lifeboat(&again, &[]).status.code(), Some(3));
    assert!(
        leftovers(dir.path()).is_empty(),
        "temporary files left: {:?}",
        leftovers(dir.path())
    );
}

#[test]
fn consistency_rules_pass_when_sets_match_and_name_the_differing_ids() {
    let pg = TestDb::create(Engine::Postgres, "lbcons");
    pg.sql("CREATE TABLE users (id int PRIMARY KEY, email text); INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 500) g;");
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache.db");
    sqlite(
        &cache,
        "CREATE TABLE users (user_id INTEGER PRIMARY KEY);
         WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 500) INSERT INTO users SELECT g FROM s;",
    );
    let my = TestDb::create(Engine::Mariadb, "lbcons");
    my.sql("CREATE TABLE accounts (user_id int PRIMARY KEY); INSERT INTO accounts SELECT seq FROM seq_1_to_500;");
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            "[[rule]]\nname = \"users cached\"\n\
             left = {{ url = \"{}\", query = \"SELECT id FROM users\" }}\n\
             right = {{ url = \"sqlite://{}\", query = \"SELECT user_id FROM users\" }}\n\n\
             [[rule]]\nname = \"users with accounts\"\nexamples = 3\n\
             left = {{ url = \"{}\", query = \"SELECT id FROM users\" }}\n\
             right = {{ url = \"{}\", query = \"SELECT user_id FROM accounts\" }}\n",
            pg.url(),
            cache.display(),
            pg.url(),
            my.url()
        ),
    )
    .expect("write rules");
    let rules = rules.to_str().expect("path");
    let report = lifeboat_json(&["consistency", rules], 0);
    assert_eq!(report["mismatched"], 0, "{report}");
    assert_eq!(report["rules"][0]["leftRows"], 500, "{report}");

    sqlite(
        &cache,
        "DELETE FROM users WHERE user_id IN (17, 230); INSERT INTO users VALUES (9001);",
    );
    my.sql("DELETE FROM accounts WHERE user_id IN (5, 6, 7, 8);");
    let report = lifeboat_json(&["consistency", rules], 6);
    assert_eq!(report["mismatched"], 2, "{report}");
    let cached = &report["rules"][0];
    assert_eq!(cached["matched"], false, "{cached}");
    assert_eq!(
        (cached["onlyLeft"].clone(), cached["onlyRight"].clone()),
        (Value::from(2), Value::from(1)),
        "{cached}"
    );
    assert_eq!(cached["onlyLeftExamples"], serde_json::json!(["17", "230"]), "{cached}");
    assert_eq!(cached["onlyRightExamples"], serde_json::json!(["9001"]), "{cached}");
    let accounts = &report["rules"][1];
    assert_eq!(accounts["onlyLeft"], 4, "{accounts}");
    assert_eq!(
        accounts["onlyLeftExamples"],
        serde_json::json!(["5", "6", "7"]),
        "{accounts}"
    );
    let text = lifeboat(&["consistency", rules], &[]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("MISMATCH  users cached") && text.contains("2 only on the left, e.g. 17, 230"),
        "{text}"
    );
}

#[test]
fn bad_input_fails_clearly_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Wrong password (MariaDB checks it; this PostgreSQL trusts local connections).
    let output = lifeboat(&["audit", "mysql://root:hunter2@127.0.0.1:3306/mysql"], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        stderr(&output).contains("Access denied") && stderr(&output).contains("check the user and password"),
        "{}",
        describe(&output)
    );
    assert!(
        !stderr(&output).contains("hunter2"),
        "the password leaked: {}",
        describe(&output)
    );

    // Unreachable server: a closed port.
    let output = lifeboat(&["audit", "postgres://postgres:hunter2@127.0.0.1:1/nowhere"], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        stderr(&output).contains("127.0.0.1:1") && stderr(&output).contains("running and reachable"),
        "{}",
        describe(&output)
    );
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"x\"\nleft = { url = \"postgres://postgres@127.0.0.1:1/db\", query = \"SELECT 1\" }\n\
         right = { url = \"postgres://postgres@127.0.0.1:1/db\", query = \"SELECT 1\" }\n",
    )
    .expect("write rules");
    let output = lifeboat(&["consistency", rules.to_str().expect("path")], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        stderr(&output).contains("rule \"x\"") && stderr(&output).contains("running and reachable"),
        "{}",
        describe(&output)
    );

    // Missing programs: named, with their package; nothing created.
    let db = dir.path().join("app.db");
    sqlite(
        &db,
        "CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);",
    );
    let empty = tempfile::tempdir().expect("tempdir");
    let no_tools = [("PATH", empty.path().to_str().expect("path"))];
    let output = lifeboat(&["audit", db.to_str().expect("path")], &no_tools);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        stderr(&output).contains("sqlite3 was not found on PATH"),
        "{}",
        describe(&output)
    );
    let target = dir.path().join("new.db");
    let output = lifeboat(
        &[
            "salvage",
            "sqlite",
            db.to_str().expect("path"),
            "--to",
            target.to_str().expect("path"),
        ],
        &no_tools,
    );
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        stderr(&output).contains("Debian package sqlite3"),
        "{}",
        describe(&output)
    );
    assert!(!target.exists(), "a failed salvage created its target");
    let duck = dir.path().join("x.duckdb");
    let output = lifeboat(&["audit", &format!("duckdb://{}", duck.display())], &no_tools);
    assert!(stderr(&output).contains("duckdb-cli==1.5.6"), "{}", describe(&output));

    // A non-empty target: refused, left as it was.
    std::fs::write(&target, b"precious").expect("write");
    let output = lifeboat(
        &[
            "salvage",
            "sqlite",
            db.to_str().expect("path"),
            "--to",
            target.to_str().expect("path"),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(stderr(&output).contains("already exists") && stderr(&output).contains("--overwrite"));
    assert_eq!(std::fs::read(&target).expect("read"), b"precious");
    // The damaged file itself is never a target, even with --overwrite.
    let output = lifeboat(
        &[
            "salvage",
            "sqlite",
            db.to_str().expect("path"),
            "--to",
            db.to_str().expect("path"),
            "--overwrite",
        ],
        &[],
    );
    assert!(
        stderr(&output).contains("is the damaged file itself"),
        "{}",
        describe(&output)
    );
    // A file that is no database.
    let output = lifeboat(&["audit", target.to_str().expect("path")], &[]);
    assert!(
        stderr(&output).contains("neither a SQLite nor a DuckDB"),
        "{}",
        describe(&output)
    );
    assert!(
        leftovers(dir.path()).is_empty(),
        "temporary files left: {:?}",
        leftovers(dir.path())
    );
}

#[test]
fn salvage_skips_damaged_pages_at_both_ends_of_a_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.db");
    let expected = sqlite_shop(&good);
    let leaves: Vec<u64> = sqlite(
        &good,
        "SELECT pageno FROM dbstat WHERE name = 'orders' AND pagetype = 'leaf' ORDER BY path",
    )
    .lines()
    .filter_map(|l| l.trim().parse().ok())
    .collect();
    assert!(leaves.len() > 20, "{leaves:?}");
    // The first and the last leaf (in key order) of orders.
    let broken = dir.path().join("broken.db");
    let mut bytes = std::fs::read(&good).expect("read");
    for page in [leaves[0], leaves[leaves.len() - 1]] {
        let start = ((page - 1) * 4096) as usize;
        bytes[start..start + 64].fill(0xff);
    }
    std::fs::write(&broken, &bytes).expect("corrupt");

    let salvaged = dir.path().join("salvaged.db");
    let report = lifeboat_json(
        &[
            "salvage",
            "sqlite",
            broken.to_str().expect("path"),
            "--to",
            salvaged.to_str().expect("path"),
        ],
        3,
    );
    let orders = report["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["table"] == "orders"))
        .cloned()
        .unwrap_or_else(|| panic!("{report}"));
    let lost = orders["lost"].as_array().cloned().unwrap_or_default();
    assert_eq!(lost.len(), 2, "{orders}");
    assert!(
        lost[0]["afterRowid"].is_null() && lost[0]["beforeRowid"].is_i64(),
        "{orders}"
    );
    assert!(
        lost[1]["afterRowid"].is_i64() && lost[1]["beforeRowid"].is_null(),
        "{orders}"
    );
    let (first_kept, last_kept) = (
        lost[0]["beforeRowid"].as_i64().unwrap_or_default(),
        lost[1]["afterRowid"].as_i64().unwrap_or_default(),
    );
    let kept: Vec<&str> = expected["orders"]
        .lines()
        .filter(|row| {
            let rowid: i64 = row.split('|').next().and_then(|r| r.parse().ok()).unwrap_or(0);
            (first_kept..=last_kept).contains(&rowid)
        })
        .collect();
    let recovered = sqlite(&salvaged, "SELECT rowid, * FROM orders ORDER BY rowid");
    assert_eq!(recovered.lines().collect::<Vec<_>>(), kept, "recovered orders differ");
    assert!(kept.len() > 4000, "{} rows kept", kept.len());
    assert_eq!(
        sqlite(&salvaged, "SELECT rowid, * FROM customers ORDER BY rowid"),
        expected["customers"],
        "customers differ"
    );
}

// ---------------------------------------------------------------------------
// Audits on real damage: throw-away servers whose files the test corrupts
// ---------------------------------------------------------------------------

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout == b"0\n")
}

/// Runs a server program as the tests' user, or as `postgres` when that is
/// root (initdb and postgres refuse to run as root).
fn as_server_user(program: &Path, args: &[&str]) -> Output {
    let mut command = if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    command
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
}

/// A throw-away PostgreSQL cluster (initdb) on a free port, stopped and
/// removed when dropped.
struct ScratchPostgres {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl ScratchPostgres {
    fn start() -> Self {
        // The newest installed server's programs (Debian keeps them off PATH).
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server programs under /usr/lib/postgresql")
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|v| v.parse::<u32>().ok()))
            .max()
            .map(|v| Path::new("/usr/lib/postgresql").join(v.to_string()).join("bin"))
            .expect("an installed PostgreSQL version");
        let dir = tempfile::tempdir().expect("a directory");
        if running_as_root() {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .output()
                .expect("run chown");
            assert!(chown.status.success(), "chown: {}", describe(&chown));
        }
        let data = dir.path().join("data");
        let data_text = data.to_str().expect("a path");
        let init = as_server_user(
            &bin.join("initdb"),
            &[
                "-D",
                data_text,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "--no-instructions",
            ],
        );
        assert!(init.status.success(), "initdb: {}", describe(&init));
        let server = Self {
            bin,
            port: free_port(),
            dir,
        };
        server.pg_ctl("start");
        server
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl(&self, action: &str) {
        let data = self.data();
        let log = self.dir.path().join("server.log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let mut args = vec!["-D", data.to_str().expect("a path"), "-w", "-m", "fast"];
        if action == "start" {
            args.extend(["-o", &options, "-l", log.to_str().expect("a path")]);
        }
        args.push(action);
        let output = as_server_user(&self.bin.join("pg_ctl"), &args);
        assert!(
            output.status.success(),
            "pg_ctl {action}: {}\n{}",
            describe(&output),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn sql(&self, sql: &str) -> String {
        let output = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql])
            .output()
            .expect("run psql");
        assert!(output.status.success(), "{sql}: {}", describe(&output));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

impl Drop for ScratchPostgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = as_server_user(
            &self.bin.join("pg_ctl"),
            &["-D", data.to_str().unwrap_or_default(), "-m", "immediate", "stop"],
        );
    }
}

/// Swaps two line pointers of a btree leaf page: its keys are then out of
/// order, which amcheck's bt_index_check must notice.
fn swap_leaf_items(index_file: &Path, block: u64) {
    const PAGE: u64 = 8192;
    let mut bytes = std::fs::read(index_file).expect("read the index file");
    assert!(
        bytes.len() as u64 >= (block + 1) * PAGE,
        "the index has no block {block}"
    );
    let page = (block * PAGE) as usize;
    // Page header: 24 bytes, then 4-byte line pointers. On a leaf that is
    // not the rightmost, item 1 is the high key; items 3 and 4 are data.
    let (third, fourth) = (page + 24 + 2 * 4, page + 24 + 3 * 4);
    let pointer = |at: usize| bytes[at..at + 4].to_vec();
    let (a, b) = (pointer(third), pointer(fourth));
    assert_ne!(a, b);
    bytes[third..third + 4].copy_from_slice(&b);
    bytes[fourth..fourth + 4].copy_from_slice(&a);
    std::fs::write(index_file, bytes).expect("write the index file");
}

#[test]
fn amcheck_names_a_really_corrupted_btree_index_as_critical() {
    let server = ScratchPostgres::start();
    server.sql(
        "CREATE TABLE boats (id int PRIMARY KEY, name text NOT NULL);
         CREATE INDEX boats_by_name ON boats (name);
         INSERT INTO boats SELECT g, 'boat ' || g FROM generate_series(1, 5000) g;
         CHECKPOINT;",
    );
    let clean = lifeboat_json(&["audit", &server.url()], 0);
    assert!(findings(&clean).is_empty(), "{clean}");

    let file = server
        .data()
        .join(server.sql("SELECT pg_relation_filepath('boats_pkey')"));
    server.pg_ctl("stop");
    swap_leaf_items(&file, 1);
    server.pg_ctl("start");

    let report = lifeboat_json(&["audit", &server.url()], 6);
    let damaged: Vec<Value> = findings(&report)
        .into_iter()
        .filter(|f| f["check"] == "amcheck")
        .collect();
    assert_eq!(damaged.len(), 1, "only the damaged index: {report}");
    let finding = &damaged[0];
    assert_eq!(finding["severity"], "critical", "{report}");
    assert_eq!(finding["object"], "boats_pkey", "{report}");
    let message = finding["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("bt_index_check") && message.contains("boats_pkey"),
        "{message}"
    );
    assert!(
        finding["action"]
            .as_str()
            .is_some_and(|a| a.contains("REINDEX INDEX boats_pkey")),
        "{report}"
    );
    let markdown = lifeboat(&["audit", &server.url(), "--format", "markdown"], &[]);
    assert_eq!(markdown.status.code(), Some(6), "{}", describe(&markdown));
    assert!(String::from_utf8_lossy(&markdown.stdout).contains("boats_pkey"));
}

/// A throw-away MariaDB server (mariadb-install-db into a temporary
/// directory, its own port and socket), shut down when dropped.
struct ScratchMariadb {
    dir: tempfile::TempDir,
    port: u16,
    server: std::process::Child,
}

impl ScratchMariadb {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("a directory");
        let data = dir.path().join("data");
        let user = String::from_utf8(Command::new("id").arg("-un").output().expect("run id").stdout)
            .expect("a user name")
            .trim()
            .to_owned();
        let install = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--user={user}"))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .output()
            .expect("run mariadb-install-db");
        assert!(install.status.success(), "mariadb-install-db: {}", describe(&install));
        let port = free_port();
        let server = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--port={port}"))
            .arg(format!("--user={user}"))
            .args(["--bind-address=127.0.0.1", "--skip-log-bin"])
            .arg(format!("--log-error={}", dir.path().join("error.log").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let scratch = Self { dir, port, server };
        for _ in 0..100 {
            if scratch.try_sql("SELECT 1").is_some() {
                return scratch;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!(
            "mariadbd did not start: {}",
            std::fs::read_to_string(scratch.dir.path().join("error.log")).unwrap_or_default()
        );
    }

    fn try_sql(&self, sql: &str) -> Option<String> {
        let output = Command::new("mariadb")
            .args([
                "--batch",
                "--skip-column-names",
                "--protocol=TCP",
                "-h",
                "127.0.0.1",
                "-u",
                "root",
            ])
            .arg(format!("--port={}", self.port))
            .args(["-e", sql])
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    fn sql(&self, sql: &str) -> String {
        self.try_sql(sql).unwrap_or_else(|| panic!("SQL failed: {sql}"))
    }

    fn url(&self, database: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for ScratchMariadb {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

#[test]
fn check_table_names_a_really_damaged_mariadb_table_as_critical() {
    let server = ScratchMariadb::start();
    server.sql(
        "CREATE DATABASE harbour;
         USE harbour;
         CREATE TABLE harbour.boats (id int PRIMARY KEY, name varchar(100) NOT NULL) ENGINE=MyISAM;
         CREATE TABLE harbour.crew (id int PRIMARY KEY, name varchar(100) NOT NULL) ENGINE=Aria;
         INSERT INTO harbour.boats SELECT seq, CONCAT('boat ', seq) FROM seq_1_to_5000;
         INSERT INTO harbour.crew SELECT seq, CONCAT('sailor ', seq) FROM seq_1_to_500;
         FLUSH TABLES;",
    );
    let url = server.url("harbour");
    let clean = lifeboat_json(&["audit", &url], 0);
    assert!(findings(&clean).is_empty(), "{clean}");

    // Garbage over rows in the middle of the data file, the table closed.
    let file = server.dir.path().join("data/harbour/boats.MYD");
    let mut bytes = std::fs::read(&file).expect("read the data file");
    let middle = bytes.len() / 2;
    bytes[middle..middle + 64].fill(0xff);
    std::fs::write(&file, bytes).expect("write the data file");

    let report = lifeboat_json(&["audit", &url], 6);
    let damaged: Vec<Value> = findings(&report)
        .into_iter()
        .filter(|f| f["check"] == "check_table" && f["severity"] == "critical")
        .collect();
    assert!(!damaged.is_empty(), "{report}");
    for finding in &damaged {
        assert_eq!(finding["object"], "harbour.boats", "only the damaged table: {report}");
        assert!(
            finding["action"].as_str().is_some_and(|a| a.contains("REPAIR TABLE")),
            "{report}"
        );
    }
}
