//! Database dumps as a deployed function makes them: connections read from
//! Secrets Manager (the emulator's) instead of a plan file, and the dump
//! programs of the database tools layer (scripts/build-db-tools-layer, built
//! here for x86_64 from Debian's packages) with nothing else on PATH,
//! against this machine's PostgreSQL and MariaDB.
//!
//! Building the layer reads Debian's package archive (about 25 s). CI runs
//! it; `LIFEBOAT_SKIP_DB_TOOLS_LAYER=1` skips the layer test, saying so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use lifeboat_e2e::{sdk_config, unique};
use serde_json::{json, Value};

use crate::support::{describe, Engine, Store, TestDb};

/// A few tables of several column types, with rows.
pub fn fill(db: &TestDb) {
    let text = match db.engine {
        Engine::Postgres => "text",
        Engine::Mariadb => "varchar(200)",
    };
    db.sql(&format!(
        "CREATE TABLE customers (id int PRIMARY KEY, name {text} NOT NULL, born date);
         CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL REFERENCES customers (id),
                              amount numeric(12,2) NOT NULL, note {text});"
    ));
    let customers: Vec<String> = (1..=50)
        .map(|i| {
            format!(
                "({i}, 'customer ''{i}'' ü', '19{:02}-0{}-1{}')",
                i % 100,
                1 + i % 9,
                i % 10
            )
        })
        .collect();
    let orders: Vec<String> = (1..=2000)
        .map(|i| {
            format!(
                "({i}, {}, {}.{:02}, {})",
                1 + i % 50,
                i * 7,
                i % 100,
                if i % 3 == 0 {
                    "NULL".to_owned()
                } else {
                    format!("'note {i}'")
                }
            )
        })
        .collect();
    db.sql(&format!(
        "INSERT INTO customers VALUES {}; INSERT INTO orders VALUES {};",
        customers.join(","),
        orders.join(",")
    ));
}

/// A secret in the emulator's Secrets Manager; its ARN.
pub async fn create_secret(value: &str) -> String {
    let client = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    client
        .create_secret()
        .name(unique("lifeboat-db"))
        .secret_string(value)
        .send()
        .await
        .expect("create a secret")
        .arn()
        .expect("the secret's ARN")
        .to_owned()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

/// The x86_64 database tools layer, built once per test run and unpacked
/// (as Lambda unpacks it under /opt); `None` when told to skip it.
pub fn db_tools_layer() -> Option<&'static Path> {
    static LAYER: OnceLock<Option<PathBuf>> = OnceLock::new();
    LAYER
        .get_or_init(|| {
            if std::env::var("LIFEBOAT_SKIP_DB_TOOLS_LAYER").is_ok_and(|v| v == "1") {
                return None;
            }
            let dir = workspace_root().join("target/e2e-db-tools-layer");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("opt")).expect("the layer's directory");
            let zip = dir.join("layer.zip");
            let built = Command::new(workspace_root().join("scripts/build-db-tools-layer"))
                .args(["--arch", "x86_64", "--out"])
                .arg(&zip)
                .output()
                .expect("run scripts/build-db-tools-layer");
            assert!(built.status.success(), "building the layer: {}", describe(&built));
            let unzipped = Command::new("unzip")
                .args(["-q", "-o"])
                .arg(&zip)
                .arg("-d")
                .arg(dir.join("opt"))
                .output()
                .expect("run unzip (scripts/setup installs it)");
            assert!(unzipped.status.success(), "unzip: {}", describe(&unzipped));
            // A minimal /bin: the shell the wrappers start with, nothing else.
            std::fs::create_dir_all(dir.join("bin")).expect("a bin directory");
            std::os::unix::fs::symlink("/bin/sh", dir.join("bin/sh")).expect("link sh");
            Some(dir)
        })
        .as_deref()
}

/// PATH with only the layer's programs and the shell.
pub fn layer_path(layer: &Path) -> String {
    format!("{}:{}", layer.join("opt/bin").display(), layer.join("bin").display())
}

/// Restores a PostgreSQL dump that the layer's pg_dump (17) made into
/// `target` on this machine's older server (15) with nothing but the layer
/// on PATH. The server's own pg_restore could not read the archive; the
/// layer's cannot restore into a server before 17 directly (it sets
/// transaction_timeout), so `lifeboat restore dump` runs its SQL through the
/// layer's psql without that line.
pub fn restore_newer_postgres_dump(store: &Store, layer: &Path, id: &str, target: &str) {
    let path = layer_path(layer);
    let output = store.run_with(
        &["restore", "dump", id, "--to", &Engine::Postgres.url(target)],
        &[("PATH", path.as_str())],
    );
    assert!(output.status.success(), "{}", describe(&output));
}

#[tokio::test]
async fn dumps_read_their_connection_from_a_secret_and_never_show_the_password() {
    let store = Store::new().await;
    let password = "s3cret-pw-that-must-not-show";
    // PostgreSQL through RDS-style JSON (the local server trusts, so any
    // password works); MariaDB through a URL.
    let postgres = TestDb::create(Engine::Postgres, "lbsecret");
    fill(&postgres);
    let postgres_secret = create_secret(
        &json!({"engine": "postgres", "host": "127.0.0.1", "port": 5432, "username": "postgres",
                "password": password, "dbname": postgres.name, "dbInstanceIdentifier": "orders-db"})
        .to_string(),
    )
    .await;
    let mariadb = TestDb::create(Engine::Mariadb, "lbsecret");
    fill(&mariadb);
    let mariadb_secret = create_secret(&mariadb.url()).await;

    for (db, arn) in [(&postgres, &postgres_secret), (&mariadb, &mariadb_secret)] {
        let output = store.run(&["backup", "dump", arn, "--output", "json"]);
        assert!(output.status.success(), "{}", describe(&output));
        let all = describe(&output);
        assert!(!all.contains(password), "the password shows: {all}");
        let summary: Value = serde_json::from_slice(&output.stdout).expect("JSON summary");
        let id = summary["backupId"].as_str().expect("backup id");
        let record = store.json(&["backups", "show", id]);
        assert_eq!(
            record["source"],
            db.url().replace("postgres://", "postgresql://"),
            "{record}"
        );
        assert!(!record.to_string().contains(password), "{record}");
        assert_eq!(record["database"], db.name.as_str(), "{record}");

        let target = TestDb::named(db.engine, "lbsecretcopy");
        store.ok(&["restore", "dump", id, "--to", &target.url()]);
        assert_eq!(target.contents(), db.contents(), "{}: restored rows differ", db.name);
    }

    // A secret that does not exist, one holding a bare password, one with
    // RDS JSON but no database: each named, nothing recorded, no value shown.
    let missing = format!(
        "arn:aws:secretsmanager:{}:{}:secret:lifeboat-missing-AbCdEf",
        lifeboat_e2e::REGION,
        lifeboat_e2e::ACCOUNT_ID
    );
    let bare = create_secret(password).await;
    let no_database = create_secret(
        &json!({"engine": "mysql", "host": "127.0.0.1", "port": 3306, "username": "root", "password": password})
            .to_string(),
    )
    .await;
    let before = store.json(&["backups", "list"]);
    for (arn, expected) in [
        (&missing, "ResourceNotFoundException"),
        (&bare, "neither a database URL"),
        (&no_database, "no \"dbname\""),
    ] {
        let output = store.run(&["backup", "dump", arn]);
        let all = describe(&output);
        assert!(!output.status.success(), "{all}");
        assert!(all.contains(arn.as_str()) && all.contains(expected), "{arn}: {all}");
        assert!(!all.contains(password), "the secret shows: {all}");
    }
    assert_eq!(
        store.json(&["backups", "list"]),
        before,
        "a failed secret recorded a backup"
    );
}

#[tokio::test]
async fn the_db_tools_layer_dumps_and_restores_with_nothing_else_on_path() {
    let Some(layer) = db_tools_layer() else {
        eprintln!("skipped: LIFEBOAT_SKIP_DB_TOOLS_LAYER=1 (the layer test needs Debian's package archive)");
        return;
    };
    let path = layer_path(layer);
    // The layer's own programs, through its own loader and libraries.
    for (program, expected) in [("pg_dump", "pg_dump (PostgreSQL) 17"), ("mariadb-dump", "MariaDB")] {
        let output = Command::new(program)
            .arg("--version")
            .env_clear()
            .env("PATH", &path)
            .output()
            .unwrap_or_else(|e| panic!("run the layer's {program}: {e}"));
        let text = describe(&output);
        assert!(output.status.success() && text.contains(expected), "{program}: {text}");
    }

    let store = Store::new().await;
    for engine in [Engine::Postgres, Engine::Mariadb] {
        let source = TestDb::create(engine, "lblayer");
        fill(&source);
        let env = [("PATH", path.as_str())];
        let output = store.run_with(&["backup", "dump", &source.url(), "--output", "json"], &env);
        assert!(output.status.success(), "{}", describe(&output));
        let summary: Value = serde_json::from_slice(&output.stdout).expect("JSON summary");
        let id = summary["backupId"].as_str().expect("backup id");
        let target = TestDb::named(engine, "lblayercopy");
        if engine == Engine::Postgres {
            // The newer pg_dump's archive, restored into the older server.
            let record = store.json(&["backups", "show", id]);
            assert!(
                record["serverVersion"].as_str().is_some_and(|v| v.starts_with("15")),
                "{record}"
            );
            let refused = store.run(&["restore", "dump", id, "--to", &target.url()]);
            assert!(
                !refused.status.success() && describe(&refused).contains("newer pg_dump than this pg_restore"),
                "{}",
                describe(&refused)
            );
            // Refused in one transaction: no table was written.
            assert_eq!(
                target
                    .sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
                    .trim(),
                "0"
            );
            restore_newer_postgres_dump(&store, layer, id, &target.name);
        } else {
            let output = store.run_with(&["restore", "dump", id, "--to", &target.url()], &env);
            assert!(output.status.success(), "{}", describe(&output));
        }
        assert_eq!(target.contents(), source.contents(), "{engine:?}: restored rows differ");
    }
}
