//! Logical backups of databases: a dump program's standard output streamed
//! straight into the pipeline (no temporary file), stored as a one-entry
//! backup; restored by streaming the verified entry into the engine's
//! restore program.
//!
//! - PostgreSQL: `pg_dump --format=custom --compress=0` (one consistent
//!   snapshot by nature); restored with `pg_restore --single-transaction`, so
//!   a failed restore leaves nothing behind.
//! - SQLite: `sqlite3 -readonly FILE .dump` (one read transaction);
//!   restored into a new file beside the target, renamed over it when done.
//! - MySQL / MariaDB: `mariadb-dump --single-transaction
//!   --skip-extended-insert` (a consistent snapshot of InnoDB tables, a row
//!   per line so that dumps deduplicate) without `--databases`, so it
//!   restores into any target database; restored with the `mariadb` client.
//! - DuckDB: `EXPORT DATABASE (FORMAT parquet, COMPRESSION uncompressed)`
//!   (one read transaction) by the `duckdb` program into a temporary
//!   directory, stored as one uncompressed tar (the store compresses and
//!   deduplicates); restored by `IMPORT DATABASE` into a new file beside the
//!   target, renamed over it when done (`dump/duckdb.rs`).
//! - Redis: no program; the server's RDB snapshot taken over the replication
//!   protocol (`PSYNC ? -1`, without `capa eof`, so always the length-prefixed
//!   form), its exact length read and the live stream after it dropped. The
//!   RDB holds every database of the server, whatever the URL's `/DB`.
//!   Restored into a file (`restore_dump_to_file`) that a stopped server is
//!   then started on.
//!
//! Passwords travel in the environment (`PGPASSWORD`, `MYSQL_PWD`), never
//! in a program's arguments, and never into the catalog: a dump's source name
//! is its URL without the password. A connection may also be kept in a
//! Secrets Manager secret, named by its ARN (`dump/secret.rs`).

use std::io::Read;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::backup::{run_stream_backup, BackupError, BackupSummary, StreamSpec};
use crate::catalog::{BackupStatus, Catalog, CatalogError};
use crate::format::BackupType;
use crate::repo::{RepoError, Repository};
use crate::restore::fetch_chunk;

mod duckdb;
mod secret;
mod tar;

pub use secret::resolve_database;

/// Most of a program's standard error kept for an error message.
const STDERR_LIMIT: usize = 4096;
/// Seconds a dump or restore program waits to connect.
const CONNECT_TIMEOUT: &str = "10";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Postgresql,
    Mysql,
    Sqlite,
    Redis,
    Duckdb,
}

impl Engine {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Postgresql => "postgresql",
            Self::Mysql => "mysql",
            Self::Sqlite => "sqlite",
            Self::Redis => "redis",
            Self::Duckdb => "duckdb",
        }
    }

    /// A file, not a server: SQLite and DuckDB.
    pub fn is_file(&self) -> bool {
        matches!(self, Self::Sqlite | Self::Duckdb)
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "postgresql" => Some(Self::Postgresql),
            "mysql" => Some(Self::Mysql),
            "sqlite" => Some(Self::Sqlite),
            "redis" => Some(Self::Redis),
            "duckdb" => Some(Self::Duckdb),
            _ => None,
        }
    }

    /// The manifest's one entry for a dump of `database`.
    pub fn entry_path(&self, database: &str) -> String {
        match self {
            Self::Postgresql => format!("postgresql/{database}.pgdump"),
            Self::Mysql => format!("mysql/{database}.sql"),
            Self::Sqlite | Self::Duckdb => {
                let name = std::path::Path::new(database)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "database".into());
                let extension = if *self == Self::Sqlite { "sql" } else { "tar" };
                format!("{}/{name}.{extension}", self.as_str())
            }
            // An RDB snapshot holds every database of the server.
            Self::Redis => "redis/dump.rdb".to_owned(),
        }
    }

    fn default_port(&self) -> u16 {
        match self {
            Self::Postgresql => 5432,
            Self::Mysql => 3306,
            Self::Sqlite | Self::Duckdb => 0,
            Self::Redis => 6379,
        }
    }

    /// The programs this engine needs, for "not found" errors.
    fn tools(&self) -> &'static str {
        match self {
            Self::Postgresql => {
                "the PostgreSQL client programs (pg_dump, pg_restore, psql; Debian package postgresql-client)"
            }
            Self::Mysql => {
                "the MariaDB or MySQL client programs (mariadb-dump, mariadb; Debian package mariadb-client)"
            }
            Self::Sqlite => "the sqlite3 command-line program (Debian package sqlite3)",
            Self::Redis => "no program: Redis is dumped over its replication protocol",
            Self::Duckdb => {
                "the DuckDB command-line program duckdb (PyPI package duckdb-cli==1.5.6: `python3 -m pip install duckdb-cli==1.5.6`, as scripts/setup does)"
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("database URL {url:?}: {message} (expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE or mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE or sqlite:///PATH or duckdb:///PATH or redis://[:PASSWORD@]HOST[:PORT][/DB])")]
    BadUrl { url: String, message: String },
    #[error("Secrets Manager secret {arn}: {message}")]
    Secret { arn: String, message: String },
    #[error("{tool} was not found on PATH: install {tools}, or add their directory to PATH")]
    ToolMissing { tool: String, tools: &'static str },
    #[error("could not run {tool}: {message}")]
    ToolStart { tool: String, message: String },
    #[error("{tool} failed for {target} ({status}): {stderr}\n{hint}")]
    ToolFailed {
        tool: String,
        target: String,
        status: String,
        stderr: String,
        hint: String,
    },
    #[error("restore target {target} already holds {tables} table(s): pass --overwrite to replace the dumped objects, or restore into an empty or new database")]
    TargetNotEmpty { target: String, tables: u64 },
    #[error("backup {id} is a {backup_engine} dump; it cannot be restored into {target}: give a {backup_engine} URL")]
    WrongEngine {
        id: String,
        backup_engine: String,
        target: String,
    },
    #[error(
        "backup {id} is not a database dump (its source is {source_name}): restore it with `lifeboat restore files`"
    )]
    NotADump { id: String, source_name: String },
    #[error(
        "backup {id} is {status}, not completed: only completed backups can be restored (see `lifeboat backups list`)"
    )]
    NotCompleted { id: String, status: String },
    #[error("restore of backup {id} into {target} stopped before the dump's end: {message}")]
    Data {
        id: String,
        target: String,
        message: String,
    },
    #[error("Redis server {target}: {message}")]
    Redis { target: String, message: String },
    #[error("restore target {path} already exists: pass --overwrite to replace it, or give a new file name")]
    FileExists { path: String },
    #[error("backup {id} is a Redis RDB snapshot: restore it into a file (--to PATH/dump.rdb) and start the stopped server on that file")]
    RedisNeedsFile { id: String },
    #[error("restore of backup {id} into {path} failed: {message}")]
    File { id: String, path: String, message: String },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Backup(#[from] BackupError),
}

/// A database to dump or restore into, parsed from a URL.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    pub engine: Engine,
    pub user: Option<String>,
    password: Option<String>,
    pub host: String,
    pub port: u16,
    pub database: String,
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// The URL without its password: what the catalog and messages show.
impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://", self.engine.as_str())?;
        if self.engine.is_file() {
            return write!(f, "{}", self.database);
        }
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            write!(f, "{}", self.host)?;
        }
        write!(f, ":{}/{}", self.port, self.database)
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl DatabaseUrl {
    pub fn parse(text: &str) -> Result<Self, DumpError> {
        // Never echo a password back: errors show the URL up to its `@`'s host part only.
        let shown = match (text.find("://"), text.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}://…@{}", &text[..s], &text[at + 1..]),
            _ => text.to_owned(),
        };
        let bad = |message: &str| DumpError::BadUrl {
            url: shown.clone(),
            message: message.to_owned(),
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let engine = match scheme {
            "postgres" | "postgresql" => Engine::Postgresql,
            "mysql" | "mariadb" => Engine::Mysql,
            "sqlite" => Engine::Sqlite,
            "redis" => Engine::Redis,
            "duckdb" => Engine::Duckdb,
            _ => {
                return Err(bad(
                    "the scheme must be postgres, postgresql, mysql, mariadb, sqlite, duckdb or redis",
                ))
            }
        };
        if rest.contains('?') || rest.contains('#') {
            return Err(bad(
                "query parameters are not supported; give the connection in the URL itself",
            ));
        }
        if engine.is_file() {
            // sqlite:///absolute/file.db or sqlite://relative/file.db: a file, no server.
            let path = percent_decode(rest).ok_or_else(|| bad("the file path is badly percent-encoded"))?;
            if path.is_empty() || path.ends_with('/') {
                return Err(bad(&format!("no database file ({scheme}:///PATH/TO/FILE)")));
            }
            let path = std::path::absolute(&path).map_err(|e| bad(&format!("the file path: {e}")))?;
            return Ok(Self {
                engine,
                user: None,
                password: None,
                host: String::new(),
                port: 0,
                database: path.to_string_lossy().into_owned(),
            });
        }
        let (authority, database) = match rest.split_once('/') {
            Some(split) => split,
            // Redis: database 0 unless given.
            None if engine == Engine::Redis => (rest, "0"),
            None => return Err(bad("no database name")),
        };
        let database = if engine == Engine::Redis && database.is_empty() {
            "0"
        } else {
            database
        };
        if engine == Engine::Redis && database.parse::<u32>().is_err() {
            return Err(bad("a Redis database is a number (redis://HOST:PORT/0)"));
        }
        let database = percent_decode(database).ok_or_else(|| bad("the database name is badly percent-encoded"))?;
        if database.is_empty() {
            return Err(bad("no database name"));
        }
        if !database
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
        {
            return Err(bad(
                "the database name may hold only ASCII letters, digits, '_', '-' and '$'",
            ));
        }
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, authority),
        };
        let (user, password) = match credentials {
            None => (None, None),
            Some(c) => {
                let (user, password) = match c.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (c, None),
                };
                let user = percent_decode(user).ok_or_else(|| bad("the user name is badly percent-encoded"))?;
                let password = password
                    .map(|p| percent_decode(p).ok_or_else(|| bad("the password is badly percent-encoded")))
                    .transpose()?;
                ((!user.is_empty()).then_some(user), password)
            }
        };
        let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| bad("unclosed '[' in the host"))?;
            (host.to_owned(), after.strip_prefix(':'))
        } else {
            match host_port.split_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (host_port.to_owned(), None),
            }
        };
        let port = match port {
            None | Some("") => engine.default_port(),
            Some(p) => p.parse().map_err(|_| bad("the port is not a number from 1 to 65535"))?,
        };
        Ok(Self {
            engine,
            user,
            password,
            host: if host.is_empty() { "localhost".into() } else { host },
            port,
            database,
        })
    }

    /// A command for `tool` with this URL's connection (not its database)
    /// set, the password in the environment.
    fn command(&self, tool: &str) -> Command {
        let mut command = Command::new(tool);
        match self.engine {
            Engine::Postgresql => {
                command
                    .arg("--no-password")
                    .args(["--host", &self.host, "--port", &self.port.to_string()])
                    .env("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT);
                if let Some(user) = &self.user {
                    command.args(["--username", user]);
                }
                if let Some(password) = &self.password {
                    command.env("PGPASSWORD", password);
                }
            }
            Engine::Sqlite | Engine::Redis | Engine::Duckdb => {}
            Engine::Mysql => {
                if matches!(tool, "mariadb" | "mysql") {
                    // The dump programs have no such option.
                    command.arg(format!("--connect-timeout={CONNECT_TIMEOUT}"));
                }
                command.args(["--host", &self.host, "--port", &self.port.to_string()]);
                if self.host != "localhost" {
                    command.arg("--protocol=TCP");
                }
                if let Some(user) = &self.user {
                    command.args(["--user", user]);
                }
                if let Some(password) = &self.password {
                    command.env("MYSQL_PWD", password);
                }
            }
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// The same server, another database.
    fn with_database(&self, database: &str) -> Self {
        Self {
            database: database.to_owned(),
            ..self.clone()
        }
    }

    /// Runs one SQL statement against this URL's database and returns its
    /// output rows (columns separated by `|` for PostgreSQL, SQLite and
    /// DuckDB, a tab for MySQL). A file database is opened read-only.
    pub async fn query(&self, sql: &str) -> Result<Vec<String>, DumpError> {
        self.run_sql(sql, true).await
    }

    /// Like `query`, but a DuckDB file is opened for writing (CHECKPOINT needs it).
    pub(crate) async fn run_sql(&self, sql: &str, read_only: bool) -> Result<Vec<String>, DumpError> {
        let (tools, args): (&[&str], Vec<&str>) = match self.engine {
            Engine::Postgresql => (
                &["psql"],
                vec![
                    "-X",
                    "-q",
                    "-t",
                    "-A",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    sql,
                    "--dbname",
                    &self.database,
                ],
            ),
            Engine::Mysql => (
                &["mariadb", "mysql"],
                vec!["--batch", "--skip-column-names", "-e", sql, &self.database],
            ),
            // Read-only: a query never creates a missing file.
            Engine::Sqlite => (
                &["sqlite3"],
                vec!["-readonly", "-batch", "-noheader", "-bail", &self.database, sql],
            ),
            Engine::Duckdb => {
                let mut args = vec!["-no-init", "-batch", "-noheader", "-list", "-nullvalue", "", "-bail"];
                if read_only {
                    args.push("-readonly");
                }
                args.extend([self.database.as_str(), "-c", sql]);
                (&["duckdb"], args)
            }
            Engine::Redis => return Err(self.redis_error("Redis has no SQL")),
        };
        let mut last_missing = None;
        for tool in tools {
            let mut command = tokio::process::Command::from(self.command(tool));
            command.args(&args);
            let output = match command.output().await {
                Ok(output) => output,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    last_missing = Some(self.missing(tool));
                    continue;
                }
                Err(e) => {
                    return Err(DumpError::ToolStart {
                        tool: (*tool).to_owned(),
                        message: e.to_string(),
                    })
                }
            };
            if !output.status.success() {
                return Err(self.failed(tool, &output.status, &output.stderr));
            }
            return Ok(String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(str::to_owned)
                .filter(|l| !l.is_empty())
                .collect());
        }
        Err(last_missing.unwrap_or_else(|| self.missing(tools[0])))
    }

    /// Fails, naming the first, unless one of `tools` is on PATH (checked
    /// up front so that a missing dump program is named as such).
    pub(crate) fn require_tool(&self, tools: &[&str]) -> Result<(), DumpError> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let found = tools
            .iter()
            .any(|tool| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()));
        if found {
            Ok(())
        } else {
            Err(self.missing(tools.first().copied().unwrap_or("the dump program")))
        }
    }

    pub(crate) fn missing(&self, tool: &str) -> DumpError {
        DumpError::ToolMissing {
            tool: tool.to_owned(),
            tools: self.engine.tools(),
        }
    }

    pub(crate) fn failed(&self, tool: &str, status: &std::process::ExitStatus, stderr: &[u8]) -> DumpError {
        let stderr = tail(stderr);
        DumpError::ToolFailed {
            tool: tool.to_owned(),
            target: self.to_string(),
            status: status.to_string(),
            hint: hint(&stderr, self),
            stderr,
        }
    }

    /// The server's version, which also checks the connection and credentials.
    pub async fn server_version(&self) -> Result<String, DumpError> {
        let sql = match self.engine {
            Engine::Postgresql => "SHOW server_version",
            Engine::Mysql => "SELECT VERSION()",
            Engine::Sqlite => "SELECT sqlite_version()",
            Engine::Duckdb => "SELECT version()",
            Engine::Redis => {
                let url = self.clone();
                return tokio::task::spawn_blocking(move || RedisConnection::open(&url)?.version())
                    .await
                    .map_err(|e| self.redis_error(&e.to_string()))?;
            }
        };
        let rows = self.query(sql).await?;
        Ok(rows.into_iter().next().unwrap_or_default().trim().to_owned())
    }

    /// Whether the database exists (asked of the server's maintenance database).
    async fn database_exists(&self) -> Result<bool, DumpError> {
        let rows = match self.engine {
            Engine::Sqlite | Engine::Duckdb => return Ok(std::path::Path::new(&self.database).exists()),
            Engine::Redis => return Ok(true),
            Engine::Postgresql => {
                self.with_database("postgres")
                    .query(&format!(
                        "SELECT count(*) FROM pg_database WHERE datname = '{}'",
                        self.database
                    ))
                    .await?
            }
            Engine::Mysql => {
                self.with_database("information_schema")
                    .query(&format!(
                        "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '{}'",
                        self.database
                    ))
                    .await?
            }
        };
        Ok(rows.first().is_some_and(|r| r.trim() != "0"))
    }

    async fn create_database(&self) -> Result<(), DumpError> {
        match self.engine {
            Engine::Postgresql => {
                self.with_database("postgres")
                    .query(&format!("CREATE DATABASE \"{}\"", self.database))
                    .await?
            }
            Engine::Mysql => {
                self.with_database("information_schema")
                    .query(&format!("CREATE DATABASE IF NOT EXISTS `{}`", self.database))
                    .await?
            }
            // The restore creates the file.
            Engine::Sqlite | Engine::Redis | Engine::Duckdb => Vec::new(),
        };
        Ok(())
    }

    /// Every user table with its row count, by name.
    pub async fn table_counts(&self) -> Result<Vec<TableCount>, DumpError> {
        let tables = self.tables().await?;
        if tables.is_empty() {
            return Ok(Vec::new());
        }
        let sql = tables
            .iter()
            .map(|t| match self.engine {
                Engine::Postgresql | Engine::Duckdb => {
                    let (schema, name) = t.split_once('.').unwrap_or(("public", t));
                    format!(
                        "SELECT '{}', count(*) FROM \"{}\".\"{}\"",
                        t.replace('\'', "''"),
                        schema.replace('"', "\"\""),
                        name.replace('"', "\"\"")
                    )
                }
                Engine::Mysql => format!(
                    "SELECT '{}', COUNT(*) FROM `{}`",
                    t.replace('\'', "''").replace('\\', "\\\\"),
                    t.replace('`', "``")
                ),
                Engine::Sqlite | Engine::Redis => format!(
                    "SELECT '{}', count(*) FROM \"{}\"",
                    t.replace('\'', "''"),
                    t.replace('"', "\"\"")
                ),
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let rows = self.query(&sql).await?;
        let separator = match self.engine {
            Engine::Postgresql | Engine::Sqlite | Engine::Redis | Engine::Duckdb => '|',
            Engine::Mysql => '\t',
        };
        let mut counts: Vec<TableCount> = rows
            .iter()
            .filter_map(|row| {
                let (table, rows) = row.rsplit_once(separator)?;
                Some(TableCount {
                    table: table.to_owned(),
                    rows: rows.trim().parse().ok()?,
                })
            })
            .collect();
        counts.sort_by(|a, b| a.table.cmp(&b.table));
        Ok(counts)
    }

    /// The database's user tables (`schema.table` for PostgreSQL and DuckDB).
    pub(crate) async fn tables(&self) -> Result<Vec<String>, DumpError> {
        let sql = match self.engine {
            Engine::Redis => return Ok(Vec::new()),
            Engine::Postgresql => "SELECT schemaname || '.' || tablename FROM pg_tables \
                 WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
                .to_owned(),
            Engine::Mysql => format!(
                "SELECT table_name FROM information_schema.tables \
                 WHERE table_schema = '{}' AND table_type = 'BASE TABLE' ORDER BY 1",
                self.database
            ),
            Engine::Sqlite => "SELECT name FROM sqlite_schema WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY 1"
                .to_owned(),
            Engine::Duckdb => "SELECT schema_name || '.' || table_name FROM duckdb_tables() \
                 WHERE NOT internal AND NOT temporary ORDER BY 1"
                .to_owned(),
        };
        self.query(&sql).await
    }
}

/// The end of a program's standard error, as text.
fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    let start = text.len().saturating_sub(STDERR_LIMIT);
    let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(0);
    text[start..].to_owned()
}

/// What to do about a program's failure, from what it said.
fn hint(stderr: &str, url: &DatabaseUrl) -> String {
    let lower = stderr.to_lowercase();
    if lower.contains("password authentication failed")
        || lower.contains("access denied")
        || lower.contains("no password supplied")
    {
        format!(
            "check the user and password for {}: put the password in the URL (postgres://USER:PASSWORD@…) or in PGPASSWORD / MYSQL_PWD",
            url
        )
    } else if lower.contains("connection refused")
        || lower.contains("can't connect")
        || lower.contains("could not connect")
        || lower.contains("timeout expired")
        || lower.contains("timed out")
        || lower.contains("could not translate host name")
        || lower.contains("unknown server host")
    {
        format!(
            "check that the {} server is running and reachable at {}:{}",
            url.engine.as_str(),
            url.host,
            url.port
        )
    } else if lower.contains("unsupported version") && lower.contains("file header") {
        "the dump was made by a newer pg_dump than this pg_restore: restore with a pg_restore of at least the dumping pg_dump's major version (the database tools layer's is PostgreSQL 17; scripts/build-db-tools-layer)".to_owned()
    } else if lower.contains("transaction_timeout") {
        format!(
            "pg_restore 17 and newer set transaction_timeout, which servers before PostgreSQL 17 do not know; Lifeboat restores into such a server through psql when SHOW server_version_num on {}:{} says it is older: check that it answers",
            url.host, url.port
        )
    } else if url.engine == Engine::Sqlite {
        format!("check that {} is a readable SQLite database file", url.database)
    } else if url.engine == Engine::Duckdb {
        format!(
            "check that {} is a readable DuckDB database file that no other program holds open for writing",
            url.database
        )
    } else if lower.contains("does not exist") || lower.contains("unknown database") {
        format!(
            "check the database name {:?} on {}:{}",
            url.database, url.host, url.port
        )
    } else {
        "see the program's message above".to_owned()
    }
}

/// A dump program's standard output. Its end is reported only once the
/// program exited successfully: a program that fails after writing part of
/// its output fails the read, and so the backup. Dropped early, it kills the
/// program.
struct DumpReader {
    tool: String,
    url: DatabaseUrl,
    child: Child,
    stdout: ChildStdout,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
    finished: bool,
}

impl DumpReader {
    fn spawn(url: &DatabaseUrl, tools: &[&str], args: &[String]) -> Result<Self, DumpError> {
        let mut last_missing = None;
        for tool in tools {
            let mut command = url.command(tool);
            command.args(args);
            let mut child = match command.spawn() {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    last_missing = Some(url.missing(tool));
                    continue;
                }
                Err(e) => {
                    return Err(DumpError::ToolStart {
                        tool: (*tool).to_owned(),
                        message: e.to_string(),
                    })
                }
            };
            let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
                let _ = child.kill();
                let _ = child.wait();
                return Err(DumpError::ToolStart {
                    tool: (*tool).to_owned(),
                    message: "its output could not be captured".into(),
                });
            };
            // Drained on its own thread, so a chatty program never blocks on a full pipe.
            let stderr = std::thread::spawn(move || {
                let mut buffer = Vec::new();
                let _ = stderr.read_to_end(&mut buffer);
                buffer
            });
            return Ok(Self {
                tool: (*tool).to_owned(),
                url: url.clone(),
                child,
                stdout,
                stderr: Some(stderr),
                finished: false,
            });
        }
        Err(last_missing.unwrap_or_else(|| url.missing(tools[0])))
    }

    fn stderr(&mut self) -> Vec<u8> {
        self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default()
    }
}

impl Read for DumpReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.finished {
            return Ok(0);
        }
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.finished = true;
            let status = self.child.wait()?;
            let stderr = self.stderr();
            if !status.success() {
                return Err(std::io::Error::other(self.url.failed(&self.tool, &status, &stderr)));
            }
            if !stderr.is_empty() {
                tracing::warn!(tool = %self.tool, stderr = %tail(&stderr), "dump program wrote to standard error");
            }
        }
        Ok(n)
    }
}

impl Drop for DumpReader {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The programs that dump an engine's database, in order of preference.
fn dump_tools(engine: Engine) -> &'static [&'static str] {
    match engine {
        Engine::Postgresql => &["pg_dump"],
        Engine::Mysql => &["mariadb-dump", "mysqldump"],
        Engine::Sqlite => &["sqlite3"],
        Engine::Duckdb => &["duckdb"],
        Engine::Redis => &[],
    }
}

/// Where a SQLite restore is written before it replaces the target.
fn sqlite_temporary(target: &DatabaseUrl) -> String {
    format!("{}.lifeboat-restore", target.database)
}

/// A file removed when dropped, unless taken out first.
struct RemoveOnDrop(Option<String>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A database dump to take.
#[derive(Clone, Debug)]
pub struct DumpBackupOptions {
    pub url: DatabaseUrl,
    pub retention_days: Option<u32>,
}

/// Dumps the database and stores the dump as a one-entry backup. Any failure,
/// from a refused connection to a dump program that exits non-zero halfway,
/// is recorded as a failed backup and returned.
pub async fn run_dump_backup(
    repo: Arc<Repository>,
    catalog: &Catalog,
    options: &DumpBackupOptions,
) -> Result<BackupSummary, DumpError> {
    let url = options.url.clone();
    if url.engine == Engine::Redis {
        return run_redis_backup(repo, catalog, options).await;
    }
    if url.engine == Engine::Duckdb {
        return duckdb::run_duckdb_backup(repo, catalog, options).await;
    }
    // The version query checks the connection first; its failure fails the
    // backup record (so it is recorded) rather than preceding it.
    let version = match url.require_tool(dump_tools(url.engine)) {
        Ok(()) => url.server_version().await,
        Err(missing) => Err(missing),
    };
    let spec = stream_spec(&url, options.retention_days, version.as_ref().ok());
    let open = move || -> Result<DumpReader, crate::backup::StreamError> {
        version?;
        let tools = dump_tools(url.engine);
        let args: Vec<String> = match url.engine {
            // --compress=0: pg_dump compresses the custom format by default,
            // and a compressed stream changes throughout after a small edit,
            // which defeats deduplication; the store compresses chunks itself.
            Engine::Postgresql => vec![
                "--format=custom".into(),
                "--compress=0".into(),
                format!("--dbname={}", url.database),
            ],
            // --skip-extended-insert: one INSERT per row. mariadb-dump cuts
            // multi-row INSERTs by byte length, so one row changing size moves
            // every later statement boundary and the rest of the dump no
            // longer deduplicates; with a row per line an edit changes only
            // its own lines. --no-autocommit keeps the restore to one commit
            // per table.
            Engine::Mysql => vec![
                "--single-transaction".into(),
                "--skip-extended-insert".into(),
                "--no-autocommit".into(),
                "--routines".into(),
                "--triggers".into(),
                "--hex-blob".into(),
                "--skip-dump-date".into(),
                "--default-character-set=utf8mb4".into(),
                url.database.clone(),
            ],
            // `.dump` reads inside one transaction: a consistent snapshot.
            Engine::Sqlite => vec!["-readonly".into(), url.database.clone(), ".dump".into()],
            Engine::Redis | Engine::Duckdb => Vec::new(),
        };
        Ok(DumpReader::spawn(&url, tools, &args)?)
    };
    Ok(run_stream_backup(repo, catalog, &spec, open).await?)
}

/// A restore of a dump into a database.
#[derive(Clone, Debug)]
pub struct DumpRestoreOptions {
    pub backup_id: String,
    pub target: DatabaseUrl,
    /// Restore into a database that already has tables, replacing the dumped objects.
    pub overwrite: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableCount {
    pub table: String,
    pub rows: u64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DumpRestoreSummary {
    pub backup_id: String,
    pub engine: Engine,
    pub target: String,
    /// The target database did not exist and was created.
    pub created_database: bool,
    pub bytes_restored: u64,
    /// The target's tables after the restore, with their row counts.
    pub tables: Vec<TableCount>,
    pub duration_seconds: f64,
}

/// How a dump of `url` is recorded: one full-backup entry named for the
/// engine, the URL without its password as the source.
fn stream_spec(url: &DatabaseUrl, retention_days: Option<u32>, server_version: Option<&String>) -> StreamSpec {
    StreamSpec {
        source_name: url.to_string(),
        entry_path: url.engine.entry_path(&url.database),
        backup_type: BackupType::Full,
        retention_days,
        engine: Some(url.engine.as_str().to_owned()),
        server_version: server_version.cloned(),
        database: Some(url.database.clone()),
    }
}

/// A completed dump backup: its record, its engine and its one entry.
async fn dump_backup(
    repo: &Repository,
    catalog: &Catalog,
    backup_id: &str,
) -> Result<(crate::catalog::BackupRecord, Engine, crate::format::Entry), DumpError> {
    let record = catalog.get(backup_id).await?;
    if record.status != BackupStatus::Completed {
        return Err(DumpError::NotCompleted {
            id: record.id,
            status: record.status.as_str().to_owned(),
        });
    }
    let not_a_dump = || DumpError::NotADump {
        id: record.id.clone(),
        source_name: record.source.clone(),
    };
    let engine = record
        .engine
        .as_deref()
        .and_then(Engine::parse)
        .ok_or_else(not_a_dump)?;
    let manifest = repo.get_manifest(&record.id, record.checksum.as_deref()).await?;
    let entry = match manifest.entries.as_slice() {
        [entry] if entry.path.starts_with(&format!("{}/", engine.as_str())) => entry.clone(),
        _ => return Err(not_a_dump()),
    };
    Ok((record, engine, entry))
}

/// Restores a dump backup into `options.target`: every chunk verified as it
/// is fetched, the whole dump's SHA-256 checked before the restore program
/// sees its end. A target that holds tables is refused unless `overwrite`.
pub async fn restore_dump(
    repo: Arc<Repository>,
    catalog: &Catalog,
    options: &DumpRestoreOptions,
) -> Result<DumpRestoreSummary, DumpError> {
    let started = Instant::now();
    let (record, engine, entry) = dump_backup(&repo, catalog, &options.backup_id).await?;
    let target = &options.target;
    if engine == Engine::Redis {
        return Err(DumpError::RedisNeedsFile { id: record.id.clone() });
    }
    if target.engine != engine {
        return Err(DumpError::WrongEngine {
            id: record.id.clone(),
            backup_engine: engine.as_str().to_owned(),
            target: target.to_string(),
        });
    }
    if engine == Engine::Duckdb {
        return duckdb::restore_duckdb(repo, &record, &entry, options, started).await;
    }
    let created_database = !target.database_exists().await?;
    if created_database {
        target.create_database().await?;
    } else {
        let tables = target.tables().await?.len() as u64;
        if tables > 0 && !options.overwrite {
            return Err(DumpError::TargetNotEmpty {
                target: target.to_string(),
                tables,
            });
        }
    }

    // pg_restore 17 and newer set transaction_timeout, which older servers
    // refuse: for them it writes SQL, that line is dropped, psql runs the rest.
    let through_psql = engine == Engine::Postgresql && needs_psql_pipe(target).await?;
    let (tools, args): (&[&str], Vec<String>) = match engine {
        Engine::Postgresql => {
            let mut args: Vec<String> = if through_psql {
                vec!["--exit-on-error".into(), "--file=-".into()]
            } else {
                vec![
                    "--exit-on-error".into(),
                    "--single-transaction".into(),
                    format!("--dbname={}", target.database),
                ]
            };
            if options.overwrite {
                args.extend(["--clean".into(), "--if-exists".into()]);
            }
            (&["pg_restore"], args)
        }
        Engine::Mysql => (&["mariadb", "mysql"], vec![target.database.clone()]),
        // Into a new file beside the target, renamed over it only once complete.
        Engine::Sqlite => (&["sqlite3"], vec!["-bail".into(), sqlite_temporary(target)]),
        Engine::Redis | Engine::Duckdb => return Err(DumpError::RedisNeedsFile { id: record.id.clone() }),
    };
    let mut temporary = RemoveOnDrop((engine == Engine::Sqlite).then(|| sqlite_temporary(target)));
    if let Some(path) = &temporary.0 {
        let _ = std::fs::remove_file(path);
    }
    let mut spawned = None;
    for tool in tools {
        let mut command = tokio::process::Command::from(target.command(tool));
        command
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(if through_psql { Stdio::piped() } else { Stdio::null() })
            .kill_on_drop(true);
        match command.spawn() {
            Ok(child) => {
                spawned = Some((*tool, child));
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(DumpError::ToolStart {
                    tool: (*tool).to_owned(),
                    message: e.to_string(),
                })
            }
        }
    }
    let (tool, mut child) = spawned.ok_or_else(|| target.missing(tools[0]))?;
    let (Some(mut stdin), Some(mut stderr)) = (child.stdin.take(), child.stderr.take()) else {
        return Err(DumpError::ToolStart {
            tool: tool.to_owned(),
            message: "its input could not be connected".into(),
        });
    };
    let stderr_task = tokio::spawn(async move {
        let mut buffer = Vec::new();
        let _ = stderr.read_to_end(&mut buffer).await;
        buffer
    });
    let psql = match child.stdout.take() {
        Some(script) if through_psql => Some(PsqlPipe::start(target, script)?),
        _ => None,
    };

    let index = repo.load_index().await?;
    let stop = |message: String| DumpError::Data {
        id: record.id.clone(),
        target: target.to_string(),
        message,
    };
    let mut sha = Sha256::new();
    let mut written = 0u64;
    let mut broken_pipe = false;
    let mut data_error = None;
    {
        let mut chunks = futures::stream::iter(entry.chunks.iter())
            .map(|id| fetch_chunk(&repo, &index, id))
            .buffered(4);
        while let Some(chunk) = chunks.next().await {
            let data = match chunk {
                Ok(data) => data,
                Err(message) => {
                    data_error = Some(message);
                    break;
                }
            };
            sha.update(&data);
            written += data.len() as u64;
            if stdin.write_all(&data).await.is_err() {
                // The program stopped reading: its exit status says why.
                broken_pipe = true;
                break;
            }
        }
    }
    if data_error.is_none() && !broken_pipe {
        let found = hex::encode(sha.finalize());
        if found != entry.sha256 {
            data_error = Some(format!(
                "{} has SHA-256 {found}, the manifest says {}",
                entry.path, entry.sha256
            ));
        }
    }
    if let Some(message) = data_error {
        // Killed before they saw the end of their input: pg_restore's (or
        // psql's) single transaction rolls back.
        if let Some(psql) = psql {
            psql.abort().await;
        }
        let _ = child.kill().await;
        return Err(stop(message));
    }
    drop(stdin);
    let status = child.wait().await.map_err(|e| DumpError::ToolStart {
        tool: tool.to_owned(),
        message: e.to_string(),
    })?;
    let stderr = stderr_task.await.unwrap_or_default();
    if let Some(psql) = psql {
        if status.success() && !broken_pipe {
            psql.finish(target).await?;
        } else if let Some(error) = psql.stop(target).await {
            // pg_restore failed because psql stopped reading: psql says why.
            return Err(error);
        }
    }
    if !status.success() {
        return Err(target.failed(tool, &status, &stderr));
    }
    if broken_pipe {
        return Err(stop(format!(
            "{tool} exited successfully without reading the whole dump: {}",
            tail(&stderr)
        )));
    }
    if let Some(path) = temporary.0.take() {
        std::fs::rename(&path, &target.database).map_err(|e| {
            let _ = std::fs::remove_file(&path);
            stop(format!("could not rename {path} to {}: {e}", target.database))
        })?;
    }
    let tables = target.table_counts().await?;
    Ok(DumpRestoreSummary {
        backup_id: record.id.clone(),
        engine,
        target: target.to_string(),
        created_database,
        bytes_restored: written,
        tables,
        duration_seconds: started.elapsed().as_secs_f64(),
    })
}

/// The line pg_restore 17 and newer write that servers before 17 refuse.
const TRANSACTION_TIMEOUT_LINE: &str = "SET transaction_timeout = 0;";

/// Whether `target`'s server is older than PostgreSQL 17 while the
/// pg_restore on PATH is 17 or newer (so it cannot restore directly).
async fn needs_psql_pipe(target: &DatabaseUrl) -> Result<bool, DumpError> {
    let major = |text: &str| -> Option<u32> {
        let digits: String = text.trim().chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    let tool = match tokio::process::Command::new("pg_restore")
        .arg("--version")
        .output()
        .await
    {
        Ok(output) => String::from_utf8_lossy(&output.stdout).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(target.missing("pg_restore")),
        Err(e) => {
            return Err(DumpError::ToolStart {
                tool: "pg_restore".into(),
                message: e.to_string(),
            })
        }
    };
    // "pg_restore (PostgreSQL) 17.12 (Debian 17.12-1)"
    let tool_major = tool.split(") ").nth(1).and_then(major);
    let server_major = target
        .query("SHOW server_version_num")
        .await?
        .first()
        .and_then(|v| major(v))
        .map(|num| num / 10_000);
    Ok(matches!((tool_major, server_major), (Some(tool), Some(server)) if tool >= 17 && server < 17))
}

/// psql running what `pg_restore --file=-` writes, without
/// [`TRANSACTION_TIMEOUT_LINE`], in one transaction that stops at the first
/// error. Its input stays open until [`PsqlPipe::finish`]: psql commits only
/// once pg_restore has ended well and the dump's checksum matched;
/// [`PsqlPipe::abort`] kills it first otherwise, so nothing half-restored stays.
struct PsqlPipe {
    child: tokio::process::Child,
    forward: tokio::task::JoinHandle<std::io::Result<tokio::process::ChildStdin>>,
    stderr: tokio::task::JoinHandle<Vec<u8>>,
}

impl PsqlPipe {
    fn start(target: &DatabaseUrl, script: tokio::process::ChildStdout) -> Result<Self, DumpError> {
        let mut command = tokio::process::Command::from(target.command("psql"));
        command
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"])
            .arg(format!("--dbname={}", target.database))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(target.missing("psql")),
            Err(e) => {
                return Err(DumpError::ToolStart {
                    tool: "psql".into(),
                    message: e.to_string(),
                })
            }
        };
        let (Some(mut input), Some(mut stderr)) = (child.stdin.take(), child.stderr.take()) else {
            return Err(DumpError::ToolStart {
                tool: "psql".into(),
                message: "its input could not be connected".into(),
            });
        };
        let forward = tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(script);
            let mut line = Vec::new();
            loop {
                line.clear();
                if lines.read_until(b'\n', &mut line).await? == 0 {
                    return Ok(input);
                }
                if line.trim_ascii_end() != TRANSACTION_TIMEOUT_LINE.as_bytes() {
                    input.write_all(&line).await?;
                }
            }
        });
        let stderr = tokio::spawn(async move {
            let mut buffer = Vec::new();
            let _ = stderr.read_to_end(&mut buffer).await;
            buffer
        });
        Ok(Self { child, forward, stderr })
    }

    /// Once pg_restore has ended well: closes psql's input (it commits) and
    /// waits for it; its failure, if it failed.
    async fn finish(mut self, target: &DatabaseUrl) -> Result<(), DumpError> {
        let forwarded = match self.forward.await {
            Ok(Ok(input)) => {
                drop(input);
                None
            }
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(message) = forwarded {
            // psql stopped reading (its error is in its output) or the copy
            // broke: it must not commit what it has.
            let _ = self.child.start_kill();
            let status = self.child.wait().await.map_err(|e| DumpError::ToolStart {
                tool: "psql".into(),
                message: e.to_string(),
            })?;
            let mut stderr = self.stderr.await.unwrap_or_default();
            stderr.extend_from_slice(format!("\n(forwarding the script: {message})").as_bytes());
            return Err(target.failed("psql", &status, &stderr));
        }
        let status = self.child.wait().await.map_err(|e| DumpError::ToolStart {
            tool: "psql".into(),
            message: e.to_string(),
        })?;
        let stderr = self.stderr.await.unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            Err(target.failed("psql", &status, &stderr))
        }
    }

    /// Kills psql before it sees the end of its input: its transaction rolls back.
    async fn abort(mut self) {
        self.forward.abort();
        let _ = self.child.kill().await;
    }

    /// After pg_restore failed: psql's own failure if it had already ended
    /// with one, else kills it (its transaction rolls back).
    async fn stop(mut self, target: &DatabaseUrl) -> Option<DumpError> {
        if let Ok(Some(status)) = self.child.try_wait() {
            if !status.success() {
                let stderr = self.stderr.await.unwrap_or_default();
                return Some(target.failed("psql", &status, &stderr));
            }
        }
        self.abort().await;
        None
    }
}

/// Seconds to wait for a Redis server to connect or answer a command.
const REDIS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Seconds without a byte (not even a keep-alive newline) before a
/// replication transfer is given up.
const REDIS_SYNC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
/// The longest reply line read from a Redis server.
const REDIS_LINE_LIMIT: usize = 64 * 1024;

impl DatabaseUrl {
    fn redis_error(&self, message: &str) -> DumpError {
        DumpError::Redis {
            target: self.to_string(),
            message: message.to_owned(),
        }
    }
}

/// A connection to a Redis server speaking RESP, blocking, with timeouts.
struct RedisConnection {
    url: DatabaseUrl,
    stream: std::io::BufReader<std::net::TcpStream>,
}

impl RedisConnection {
    /// Connects and authenticates (AUTH [USER] PASSWORD when the URL has a password).
    fn open(url: &DatabaseUrl) -> Result<Self, DumpError> {
        use std::net::ToSocketAddrs;
        let unreachable = |e: &dyn std::fmt::Display| {
            url.redis_error(&format!(
                "could not connect: {e}; check that the Redis server is running and reachable at {}:{}",
                url.host, url.port
            ))
        };
        let addresses: Vec<_> = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|e| unreachable(&e))?
            .collect();
        let mut last = None;
        let mut stream = None;
        for address in addresses {
            match std::net::TcpStream::connect_timeout(&address, REDIS_TIMEOUT) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = match (stream, last) {
            (Some(s), _) => s,
            (None, Some(e)) => return Err(unreachable(&e)),
            (None, None) => return Err(unreachable(&"the host name has no address")),
        };
        stream
            .set_read_timeout(Some(REDIS_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(REDIS_TIMEOUT)))
            .map_err(|e| unreachable(&e))?;
        let mut connection = Self {
            url: url.clone(),
            stream: std::io::BufReader::new(stream),
        };
        if let Some(password) = url.password.clone() {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &url.user {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            connection.send(&args)?;
            let line = connection.line()?;
            if let Some(error) = line.strip_prefix('-') {
                return Err(url.redis_error(&format!(
                    "authentication failed ({error}): check the password in the URL (redis://:PASSWORD@HOST:PORT)"
                )));
            }
        }
        Ok(connection)
    }

    fn io_error(&self, e: std::io::Error) -> DumpError {
        let message = match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                "no answer in time: is this a Redis server?".to_owned()
            }
            std::io::ErrorKind::UnexpectedEof => "the server closed the connection: is this a Redis server?".to_owned(),
            _ => e.to_string(),
        };
        self.url.redis_error(&message)
    }

    fn send(&mut self, args: &[&[u8]]) -> Result<(), DumpError> {
        use std::io::Write;
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg);
            request.extend_from_slice(b"\r\n");
        }
        let result = self.stream.get_mut().write_all(&request);
        result.map_err(|e| self.io_error(e))
    }

    /// One reply line without its CR LF; a first byte that is no RESP type fails.
    fn line(&mut self) -> Result<String, DumpError> {
        use std::io::BufRead;
        let mut line = Vec::new();
        let read = (&mut self.stream)
            .take(REDIS_LINE_LIMIT as u64)
            .read_until(b'\n', &mut line);
        match read {
            Ok(0) => return Err(self.io_error(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => {}
            Err(e) => return Err(self.io_error(e)),
        }
        if !line.ends_with(b"\n") {
            return Err(self.url.redis_error("an over-long reply line: is this a Redis server?"));
        }
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        if let Some(first) = line.first() {
            if !b"+-:$*_,#%~>=(!|".contains(first) {
                return Err(self.url.redis_error(&format!(
                    "its answer {:?} is not the Redis protocol: is this a Redis server?",
                    String::from_utf8_lossy(&line[..line.len().min(40)])
                )));
            }
        }
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// The server's `redis_version` from INFO server.
    fn version(mut self) -> Result<String, DumpError> {
        self.send(&[b"INFO", b"server"])?;
        let header = self.line()?;
        if let Some(error) = header.strip_prefix('-') {
            return Err(self.redis_error_for(error));
        }
        let length: usize = header
            .strip_prefix('$')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| self.url.redis_error(&format!("unexpected INFO answer {header:?}")))?;
        let mut body = vec![0; length + 2];
        self.stream.read_exact(&mut body).map_err(|e| self.io_error(e))?;
        let body = String::from_utf8_lossy(&body);
        body.lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .map(|v| v.trim().to_owned())
            .ok_or_else(|| self.url.redis_error("INFO server names no redis_version"))
    }

    fn redis_error_for(&self, error: &str) -> DumpError {
        if error.starts_with("NOAUTH") {
            self.url.redis_error(&format!(
                "{error}: the server requires a password; give it in the URL (redis://:PASSWORD@HOST:PORT)"
            ))
        } else {
            self.url.redis_error(error)
        }
    }

    /// Asks for a full resynchronisation and returns the RDB payload as a
    /// reader of exactly its announced length, its `REDIS` magic checked.
    fn full_sync(mut self) -> Result<RdbReader, DumpError> {
        // No `REPLCONF capa eof`: the server then always sends a
        // length-prefixed RDB (written to its disk first), never the
        // diskless EOF-marker form.
        self.send(&[b"PSYNC", b"?", b"-1"])?;
        self.stream
            .get_ref()
            .set_read_timeout(Some(REDIS_SYNC_TIMEOUT))
            .map_err(|e| self.io_error(e))?;
        let mut fullresync = false;
        let length: u64 = loop {
            let line = self.line()?;
            if line.is_empty() {
                continue; // Keep-alive while the server prepares the snapshot.
            }
            if let Some(error) = line.strip_prefix('-') {
                return Err(self.redis_error_for(error));
            }
            if line.starts_with("+FULLRESYNC") {
                fullresync = true;
                continue;
            }
            if let Some(length) = line.strip_prefix('$') {
                if length.starts_with("EOF:") {
                    return Err(self
                        .url
                        .redis_error("the server sent a diskless (EOF-marked) RDB, which is not supported"));
                }
                if !fullresync {
                    return Err(self.url.redis_error("an RDB payload without +FULLRESYNC"));
                }
                break length
                    .parse()
                    .map_err(|_| self.url.redis_error(&format!("a bad RDB length {line:?}")))?;
            }
            return Err(self.url.redis_error(&format!("unexpected answer {line:?} to PSYNC")));
        };
        let mut magic = [0u8; 5];
        if length < magic.len() as u64 {
            return Err(self.url.redis_error(&format!("an RDB of only {length} bytes")));
        }
        self.stream.read_exact(&mut magic).map_err(|e| self.io_error(e))?;
        if &magic != b"REDIS" {
            return Err(self
                .url
                .redis_error("the replication payload does not start with REDIS: not an RDB file"));
        }
        Ok(RdbReader {
            magic,
            magic_sent: 0,
            remaining: length - magic.len() as u64,
            total: length,
            connection: self,
        })
    }
}

/// An RDB payload read off a replication connection: ends after exactly the
/// announced length; a connection closed earlier fails the read. Dropping it
/// closes the connection, so the server forgets the would-be replica.
struct RdbReader {
    magic: [u8; 5],
    magic_sent: usize,
    remaining: u64,
    total: u64,
    connection: RedisConnection,
}

impl Read for RdbReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.magic_sent < self.magic.len() {
            let n = buf.len().min(self.magic.len() - self.magic_sent);
            buf[..n].copy_from_slice(&self.magic[self.magic_sent..self.magic_sent + n]);
            self.magic_sent += n;
            return Ok(n);
        }
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.connection.stream.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::other(self.connection.url.redis_error(&format!(
                "the connection closed after {} of the RDB's {} bytes",
                self.total - self.remaining,
                self.total
            ))));
        }
        self.remaining -= n as u64;
        if self.remaining == 0 {
            let _ = self.connection.stream.get_ref().shutdown(std::net::Shutdown::Both);
        }
        Ok(n)
    }
}

/// Dumps a Redis server's RDB snapshot over the replication protocol.
async fn run_redis_backup(
    repo: Arc<Repository>,
    catalog: &Catalog,
    options: &DumpBackupOptions,
) -> Result<BackupSummary, DumpError> {
    let url = options.url.clone();
    let version = url.server_version().await;
    let spec = stream_spec(&url, options.retention_days, version.as_ref().ok());
    let open = move || -> Result<RdbReader, crate::backup::StreamError> {
        version?;
        Ok(RedisConnection::open(&url)?.full_sync()?)
    };
    Ok(run_stream_backup(repo, catalog, &spec, open).await?)
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DumpFileRestoreSummary {
    pub backup_id: String,
    pub engine: Engine,
    pub path: String,
    pub bytes_restored: u64,
    pub sha256: String,
    pub duration_seconds: f64,
}

/// Writes a dump backup's one entry, verified, to the file `path` (for a
/// Redis backup: an RDB file to start a stopped server on). Written under a
/// temporary name beside it and renamed into place once complete and
/// verified; an existing file is refused unless `overwrite`.
pub async fn restore_dump_to_file(
    repo: Arc<Repository>,
    catalog: &Catalog,
    backup_id: &str,
    path: &std::path::Path,
    overwrite: bool,
) -> Result<DumpFileRestoreSummary, DumpError> {
    use std::io::Write;
    let started = Instant::now();
    let (record, engine, entry) = dump_backup(&repo, catalog, backup_id).await?;
    let shown = path.display().to_string();
    let fail = |message: String| DumpError::File {
        id: record.id.clone(),
        path: shown.clone(),
        message,
    };
    if !overwrite && path.exists() {
        return Err(DumpError::FileExists { path: shown.clone() });
    }
    let mut temporary_name = path.as_os_str().to_owned();
    temporary_name.push(".lifeboat-restore");
    let temporary_path = std::path::PathBuf::from(temporary_name);
    let _ = std::fs::remove_file(&temporary_path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary_path)
        .map_err(|e| fail(format!("could not create {}: {e}", temporary_path.display())))?;
    let mut temporary = RemoveOnDrop(Some(temporary_path.to_string_lossy().into_owned()));

    let index = repo.load_index().await?;
    let mut sha = Sha256::new();
    let mut written = 0u64;
    let mut chunks = futures::stream::iter(entry.chunks.iter())
        .map(|id| fetch_chunk(&repo, &index, id))
        .buffered(4);
    while let Some(chunk) = chunks.next().await {
        let data = chunk.map_err(&fail)?;
        sha.update(&data);
        written += data.len() as u64;
        file.write_all(&data).map_err(|e| fail(format!("writing: {e}")))?;
    }
    let found = hex::encode(sha.finalize());
    if found != entry.sha256 {
        return Err(fail(format!(
            "{} has SHA-256 {found}, the manifest says {}",
            entry.path, entry.sha256
        )));
    }
    file.sync_all().map_err(|e| fail(format!("flushing: {e}")))?;
    drop(file);
    if !overwrite && path.exists() {
        return Err(DumpError::FileExists { path: shown.clone() });
    }
    std::fs::rename(&temporary_path, path).map_err(|e| fail(format!("renaming into place: {e}")))?;
    temporary.0 = None;
    Ok(DumpFileRestoreSummary {
        backup_id: record.id.clone(),
        engine,
        path: shown,
        bytes_restored: written,
        sha256: found,
        duration_seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_never_show_their_password() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/shop",
                "postgresql://postgres@127.0.0.1:5432/shop",
            ),
            (
                "postgresql://u:s%40cret@db.example/app",
                "postgresql://u@db.example:5432/app",
            ),
            ("mysql://root@127.0.0.1:3306/shop", "mysql://root@127.0.0.1:3306/shop"),
            ("mariadb://root:pw@[::1]/x_1", "mysql://root@[::1]:3306/x_1"),
            ("postgres://127.0.0.1/db", "postgresql://127.0.0.1:5432/db"),
            ("sqlite:///var/lib/app/data.db", "sqlite:///var/lib/app/data.db"),
            ("sqlite:///tmp/my%20app.db", "sqlite:///tmp/my app.db"),
            ("duckdb:///srv/lake/events.duckdb", "duckdb:///srv/lake/events.duckdb"),
            ("redis://127.0.0.1", "redis://127.0.0.1:6379/0"),
            ("redis://:s3cret@127.0.0.1:6380/", "redis://127.0.0.1:6380/0"),
            (
                "redis://default:pw@cache.example:7000/3",
                "redis://default@cache.example:7000/3",
            ),
        ];
        for (text, shown) in cases {
            let url = DatabaseUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(url.to_string(), shown, "{text}");
            assert_eq!(format!("{url:?}"), format!("DatabaseUrl({shown})"));
        }
        let url = DatabaseUrl::parse("postgresql://u:s%40cret@db.example/app").unwrap();
        assert_eq!(url.password.as_deref(), Some("s@cret"));
    }

    #[test]
    fn bad_urls_say_what_is_wrong_without_the_password() {
        let cases = [
            ("http://x/db", "scheme"),
            ("postgres://u:hunter2@host:99999/db", "port"),
            ("postgres://u:hunter2@host:5432/", "no database"),
            ("postgres://u:hunter2@host:5432", "no database"),
            ("mysql://root@host/my;db", "database name"),
            ("postgres://host/db?sslmode=require", "query parameters"),
            ("shop", "no scheme"),
            ("sqlite://", "no database file"),
            ("sqlite:///var/lib/", "no database file"),
            ("duckdb://", "no database file (duckdb:///PATH/TO/FILE)"),
            ("redis://:hunter2@host:6379/zero", "a Redis database is a number"),
            ("redis://:hunter2@host:port", "port"),
        ];
        for (text, expected) in cases {
            let message = DatabaseUrl::parse(text).unwrap_err().to_string();
            assert!(message.contains(expected), "{text}: {message}");
            assert!(!message.contains("hunter2"), "{text}: {message}");
        }
    }

    /// A fake Redis server on a local port that answers PSYNC with `reply`
    /// (and AUTH, INFO with canned answers), then keeps the connection open.
    fn fake_master(reply: Vec<u8>) -> DatabaseUrl {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 64];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(&reply);
            std::thread::sleep(std::time::Duration::from_millis(500));
        });
        DatabaseUrl::parse(&format!("redis://127.0.0.1:{port}")).unwrap()
    }

    #[test]
    fn a_full_sync_yields_exactly_the_rdb_after_keep_alives() {
        let rdb = b"REDIS0011 some rdb bytes \r\n\xff12345678".to_vec();
        let mut reply = b"\n\n+FULLRESYNC 0123 0\r\n\n\n".to_vec();
        reply.extend(format!("${}\r\n", rdb.len()).as_bytes());
        reply.extend(&rdb);
        // The live replication stream follows: never part of the dump.
        reply.extend(b"*1\r\n$4\r\nPING\r\n");
        let url = fake_master(reply);
        let mut reader = RedisConnection::open(&url).unwrap().full_sync().unwrap();
        let mut read = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            read.extend_from_slice(&buf[..n]);
        }
        assert_eq!(read, rdb);
    }

    #[test]
    fn a_short_or_foreign_payload_fails() {
        let mut reply = b"+FULLRESYNC 0123 0\r\n$100\r\nREDIS0011".to_vec();
        let url = fake_master(reply.clone());
        let mut reader = RedisConnection::open(&url).unwrap().full_sync().unwrap();
        let error = std::io::copy(&mut reader, &mut std::io::sink()).unwrap_err();
        assert!(
            error.to_string().contains("closed after 9 of the RDB's 100 bytes"),
            "{error}"
        );

        reply = b"+FULLRESYNC 0123 0\r\n$10\r\nPK\x03\x04zipzip".to_vec();
        let url = fake_master(reply);
        let error = RedisConnection::open(&url).unwrap().full_sync().err().unwrap();
        assert!(error.to_string().contains("not an RDB file"), "{error}");

        let url = fake_master(b"-NOAUTH Authentication required.\r\n".to_vec());
        let error = RedisConnection::open(&url).unwrap().full_sync().err().unwrap();
        assert!(error.to_string().contains("requires a password"), "{error}");

        let url = fake_master(b"SSH-2.0-OpenSSH_9.2\r\n".to_vec());
        let error = RedisConnection::open(&url).unwrap().full_sync().err().unwrap();
        assert!(error.to_string().contains("is this a Redis server?"), "{error}");
    }
}
