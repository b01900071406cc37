//! Fixtures for the suites: a fresh store (bucket, KMS key, catalog table)
//! per test, the real `lifeboat` binary, data generators, and SQL against
//! this machine's PostgreSQL and MariaDB.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use aws_sdk_s3::primitives::ByteStream;
use lifeboat_e2e::{aws_env, kms_client, s3_client, unique, workspace_bin};
use serde_json::Value;

/// A store of its own: bucket, KMS key and catalog table, initialised
/// through `lifeboat init --create-table`.
pub struct Store {
    pub bucket: String,
    pub url: String,
    pub table: String,
    pub kms_key: String,
    pub s3: aws_sdk_s3::Client,
    pub kms: aws_sdk_kms::Client,
}

impl Store {
    pub async fn new() -> Self {
        let s3 = s3_client().await;
        let kms = kms_client().await;
        let bucket = unique("store");
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create store bucket");
        let kms_key = new_kms_key(&kms).await;
        let store = Self {
            url: format!("s3://{bucket}/lifeboat"),
            bucket,
            table: unique("catalog"),
            kms_key,
            s3,
            kms,
        };
        store.ok(&["init", "--create-table"]);
        store
    }

    /// Runs `lifeboat ARGS` against this store.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    /// Runs `lifeboat ARGS` with extra environment (which wins over the store's).
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = self.command(args);
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().expect("run lifeboat")
    }

    /// `lifeboat ARGS` against this store, not started (to run beside the test).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(workspace_bin("lifeboat"));
        command
            .args(args)
            .envs(aws_env())
            .env("LIFEBOAT_STORE", &self.url)
            .env("LIFEBOAT_TABLE", &self.table);
        command
            .env("LIFEBOAT_KMS_KEY", &self.kms_key)
            .env_remove("LIFEBOAT_OUTPUT");
        command
    }

    /// Runs `lifeboat ARGS`, asserting success; returns standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "lifeboat {args:?} failed:\n{}",
            describe(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs `lifeboat ARGS --output json`, asserting success.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        let stdout = self.ok(&args);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("lifeboat {args:?} printed no JSON ({e}):\n{stdout}"))
    }

    /// Every object of the store, key → size.
    pub async fn objects(&self) -> BTreeMap<String, u64> {
        list_objects(&self.s3, &self.bucket, "lifeboat/")
            .await
            .into_iter()
            .map(|(k, v)| (k, v.len() as u64))
            .collect()
    }

    /// Total bytes stored.
    pub async fn stored_bytes(&self) -> u64 {
        self.objects().await.values().sum()
    }

    /// Keys of the store's packs.
    pub async fn packs(&self) -> Vec<String> {
        self.objects()
            .await
            .into_keys()
            .filter(|k| k.starts_with("lifeboat/data/"))
            .collect()
    }
}

pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// This machine's database servers, which the tests use for real:
/// PostgreSQL on 127.0.0.1:5432 (trust), MariaDB on 127.0.0.1:3306 (root).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Mariadb,
}

impl Engine {
    pub fn url(self, database: &str) -> String {
        match self {
            Engine::Postgres => format!("postgres://postgres@127.0.0.1:5432/{database}"),
            Engine::Mariadb => format!("mysql://root@127.0.0.1:3306/{database}"),
        }
    }

    /// The database that always exists, to create and drop others from.
    pub fn maintenance(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Mariadb => "information_schema",
        }
    }

    /// psql / the mariadb client on `database`, reading SQL from standard
    /// input; output is one row per line, no headers (columns separated by
    /// `|` from psql, by a tab from mariadb).
    pub fn client(self, database: &str) -> Command {
        match self {
            Engine::Postgres => {
                let mut c = Command::new("psql");
                c.args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"]).args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-d",
                    database,
                ]);
                c
            }
            Engine::Mariadb => {
                let mut c = Command::new("mariadb");
                c.args(["--batch", "--skip-column-names", "--protocol=TCP"]).args([
                    "-h",
                    "127.0.0.1",
                    "-u",
                    "root",
                    database,
                ]);
                c
            }
        }
    }

    /// Runs `sql` (several statements allowed) in `database`.
    pub fn try_sql(self, database: &str, sql: &str) -> std::io::Result<Output> {
        let mut child = self
            .client(database)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(sql.as_bytes())?;
        }
        child.wait_with_output()
    }

    /// [`Engine::try_sql`], which must succeed: its output.
    pub fn sql(self, database: &str, sql: &str) -> String {
        let output = self.try_sql(database, sql).expect("run the database client");
        assert!(output.status.success(), "SQL failed: {sql:.300}\n{}", describe(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// A database of its own on this machine's server, dropped at the end.
pub struct TestDb {
    pub engine: Engine,
    pub name: String,
}

impl TestDb {
    /// Creates a database named from `prefix`.
    pub fn create(engine: Engine, prefix: &str) -> Self {
        let db = Self::named(engine, prefix);
        db.admin(&format!("CREATE DATABASE {}", db.name));
        db
    }

    /// A name only: the database is not created (a restore creates it).
    pub fn named(engine: Engine, prefix: &str) -> Self {
        Self {
            engine,
            name: unique(prefix).replace('-', "_"),
        }
    }

    pub fn url(&self) -> String {
        self.engine.url(&self.name)
    }

    /// Runs `sql` in this database; it must succeed.
    pub fn sql(&self, sql: &str) -> String {
        self.engine.sql(&self.name, sql)
    }

    /// Runs `sql` in this database; whether it succeeded.
    pub fn try_sql(&self, sql: &str) -> bool {
        self.engine
            .try_sql(&self.name, sql)
            .is_ok_and(|output| output.status.success())
    }

    /// Runs `sql` in the server's maintenance database; it must succeed.
    pub fn admin(&self, sql: &str) -> String {
        self.engine.sql(self.engine.maintenance(), sql)
    }

    /// Every table's rows in primary-key order, as the client prints them.
    pub fn contents(&self) -> BTreeMap<String, String> {
        let tables = match self.engine {
            Engine::Postgres => "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1".to_owned(),
            Engine::Mariadb => format!(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = '{}' ORDER BY 1",
                self.name
            ),
        };
        self.sql(&tables)
            .lines()
            .map(|t| (t.to_owned(), self.sql(&format!("SELECT * FROM {t} ORDER BY 1"))))
            .collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = match self.engine {
            Engine::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            Engine::Mariadb => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        let dropped = self.engine.try_sql(self.engine.maintenance(), &sql);
        if !dropped.is_ok_and(|output| output.status.success()) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

pub async fn new_kms_key(kms: &aws_sdk_kms::Client) -> String {
    let key = kms.create_key().send().await.expect("create KMS key");
    key.key_metadata().and_then(|m| m.arn()).expect("key ARN").to_owned()
}

/// Deterministic pseudo-random bytes (BLAKE3's output stream, fast even in debug builds).
pub fn random_bytes(len: usize, seed: &str) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(seed.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// Compressible text of about `len` bytes.
pub fn text_bytes(len: usize, seed: &str) -> Vec<u8> {
    let words = [
        "backup", "restore", "lifeboat", "region", "snapshot", "verify", "alert", "chunk", "pack", "index",
    ];
    let noise = random_bytes(len / 4 + 8, seed);
    let mut out = Vec::with_capacity(len + 16);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(words[noise[i % noise.len()] as usize % words.len()].as_bytes());
        out.extend_from_slice(format!(" {} ", noise[(i + 1) % noise.len()]).as_bytes());
        i += 2;
    }
    out.truncate(len);
    out
}

pub async fn create_bucket(s3: &aws_sdk_s3::Client, prefix: &str) -> String {
    let bucket = unique(prefix);
    s3.create_bucket().bucket(&bucket).send().await.expect("create bucket");
    bucket
}

pub async fn put_objects(s3: &aws_sdk_s3::Client, bucket: &str, objects: &BTreeMap<String, Vec<u8>>) {
    for (key, body) in objects {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put s3://{bucket}/{key}: {e:?}"));
    }
}

/// Every object under `prefix`, key → content.
pub async fn list_objects(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for object in page.expect("list objects").contents() {
            let key = object.key().expect("key").to_owned();
            let body = s3
                .get_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .expect("get object");
            let bytes = body.body.collect().await.expect("read object").into_bytes().to_vec();
            out.insert(key, bytes);
        }
    }
    out
}

/// Every file under `dir`, relative path → content. Fails on leftover
/// temporary files, which a restore must never leave behind.
pub fn dir_contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).expect("relative").to_string_lossy().into_owned();
                out.insert(relative, std::fs::read(&path).expect("read file"));
            }
        }
    }
    out
}

/// Strips `prefix` from every key.
pub fn relative(objects: &BTreeMap<String, Vec<u8>>, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    objects
        .iter()
        .map(|(k, v)| (k.strip_prefix(prefix).unwrap_or(k).to_owned(), v.clone()))
        .collect()
}

/// Asserts two trees are equal, naming the first difference (not dumping bytes).
pub fn assert_same_tree(actual: &BTreeMap<String, Vec<u8>>, expected: &BTreeMap<String, Vec<u8>>) {
    let actual_keys: Vec<_> = actual.keys().collect();
    let expected_keys: Vec<_> = expected.keys().collect();
    assert_eq!(actual_keys, expected_keys, "different entries");
    for (key, content) in expected {
        assert!(
            actual[key] == *content,
            "{key} differs: {} bytes restored, {} expected",
            actual[key].len(),
            content.len()
        );
    }
}

/// A sample event from `events/`, as tests load them.
pub fn sample_event(name: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/").to_owned() + name;
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}
