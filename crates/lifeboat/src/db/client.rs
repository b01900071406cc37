//! Running SQL through a database's own client program: `psql`,
//! `mariadb` (or `mysql`), `sqlite3` and `duckdb`, one process per
//! statement, the password in the environment (`PGPASSWORD`, `MYSQL_PWD`),
//! never in the arguments. `DatabaseUrl::query` returns a statement's rows;
//! `server_version`, `tables` and `table_counts` are built on it (Redis's
//! version is asked over its own protocol, `crate::db::redis`). Used by
//! the dumps and restores, `integrity`, `consistency` and `validate`.
//!
//! A program that fails is reported with the end of what it said and a
//! hint of what to do (`DbError::ToolFailed`).

use std::process::{Command, Stdio};

use serde::Serialize;

use super::error::DbError;
use super::redis::RedisConnection;
use super::url::{DatabaseUrl, Engine};

/// Most of a program's standard error kept for an error message.
const STDERR_LIMIT: usize = 4096;
/// Seconds a client, dump or restore program waits to connect.
const CONNECT_TIMEOUT: &str = "10";

/// A table and its number of rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableCount {
    pub table: String,
    pub rows: u64,
}

impl Engine {
    /// The programs this engine needs, for "not found" errors.
    fn programs(&self) -> &'static str {
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

impl DatabaseUrl {
    /// A command for `tool` with this URL's connection (not its database)
    /// set, the password in the environment.
    pub(crate) fn command(&self, tool: &str) -> Command {
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
                if let Some(password) = self.password() {
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
                if let Some(password) = self.password() {
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

    /// Runs one SQL statement against this URL's database and returns its
    /// output rows (columns separated by `|` for PostgreSQL, SQLite and
    /// DuckDB, a tab for MySQL). A file database is opened read-only.
    pub async fn query(&self, sql: &str) -> Result<Vec<String>, DbError> {
        self.run_sql(sql, true).await
    }

    /// Like `query`, but a DuckDB file is opened for writing (CHECKPOINT needs it).
    pub(crate) async fn run_sql(&self, sql: &str, read_only: bool) -> Result<Vec<String>, DbError> {
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
                    return Err(DbError::ToolStart {
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
    pub(crate) fn require_tool(&self, tools: &[&str]) -> Result<(), DbError> {
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

    pub(crate) fn missing(&self, tool: &str) -> DbError {
        DbError::ToolMissing {
            tool: tool.to_owned(),
            tools: self.engine.programs(),
        }
    }

    pub(crate) fn failed(&self, tool: &str, status: &std::process::ExitStatus, stderr: &[u8]) -> DbError {
        let stderr = tail(stderr);
        DbError::ToolFailed {
            tool: tool.to_owned(),
            target: self.to_string(),
            status: status.to_string(),
            hint: hint(&stderr, self),
            stderr,
        }
    }

    /// The server's version, which also checks the connection and credentials.
    pub async fn server_version(&self) -> Result<String, DbError> {
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
    pub(crate) async fn database_exists(&self) -> Result<bool, DbError> {
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

    /// Creates the database (a file database is created by its restore).
    pub(crate) async fn create_database(&self) -> Result<(), DbError> {
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
    pub async fn table_counts(&self) -> Result<Vec<TableCount>, DbError> {
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
    pub(crate) async fn tables(&self) -> Result<Vec<String>, DbError> {
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
pub(crate) fn tail(stderr: &[u8]) -> String {
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
