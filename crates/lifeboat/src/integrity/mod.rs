//! Integrity audits of a live database (`lifeboat audit`): what the engine
//! itself can say about damage, plus the relational promises it may not be
//! keeping. Each engine's checks are in their own file; all of them run
//! through the engine's command-line client (`DatabaseUrl::query`), and all
//! of them only read, except where the engine needs more to look (PostgreSQL's
//! `CREATE EXTENSION amcheck`, DuckDB's `CHECKPOINT`).
//!
//! - PostgreSQL: amcheck's `bt_index_check` on every btree index, orphans of
//!   every foreign key (NOT VALID ones too), sequences behind their column,
//!   invalid indexes, data-checksum failures.
//! - MySQL / MariaDB: `CHECK TABLE` on every table, orphans of every foreign
//!   key (rows written with `FOREIGN_KEY_CHECKS=0`).
//! - SQLite: `PRAGMA integrity_check` and `PRAGMA foreign_key_check`.
//! - DuckDB: `CHECKPOINT`, then every table read in full, every column.
//!
//! Every finding has a severity and a suggested action; a critical one means
//! data is damaged or a promise is broken.

mod duckdb;
mod mysql;
mod postgres;
mod sqlite;

use std::time::Instant;

use serde::Serialize;

use crate::db::error::DbError;
use crate::db::url::{DatabaseUrl, Engine, UrlError};

/// How many example keys a finding names.
const EXAMPLES: usize = 5;
/// Joins the fields of one generated row (the ASCII unit separator).
const FIELD: char = '\u{1f}';

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// One thing the audit found.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub severity: Severity,
    /// The check that found it, e.g. `foreign_keys`.
    pub check: String,
    /// The table, index, constraint or sequence concerned.
    pub object: String,
    pub message: String,
    /// What to do about it.
    pub action: String,
}

/// One check that ran, and over how many objects.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckRun {
    pub check: String,
    pub description: String,
    pub objects: u64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    pub target: String,
    pub engine: Engine,
    pub server_version: String,
    pub checks: Vec<CheckRun>,
    /// Most severe first.
    pub findings: Vec<Finding>,
    pub critical: usize,
    pub warnings: usize,
    pub duration_seconds: f64,
}

impl AuditReport {
    /// No critical finding and no warning.
    pub fn clean(&self) -> bool {
        self.critical == 0 && self.warnings == 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{path} is neither a SQLite nor a DuckDB database file (by its first bytes): give a URL (postgres://…, mysql://…, sqlite:///PATH, duckdb:///PATH) to say what it is")]
    UnknownFile { path: String },
    #[error("cannot read {path}: {message}")]
    Unreadable { path: String, message: String },
    #[error("{target}: Redis has no relations to audit; `lifeboat backup dump` checks an RDB snapshot as it reads it")]
    Unsupported { target: String },
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The database to audit: a URL, or the path of a SQLite or DuckDB file
/// (told apart by their first bytes).
pub fn audit_target(text: &str) -> Result<DatabaseUrl, AuditError> {
    if text.contains("://") {
        return Ok(DatabaseUrl::parse(text)?);
    }
    let mut header = [0u8; 16];
    let read = std::fs::File::open(text).and_then(|mut f| {
        use std::io::Read;
        f.read(&mut header)
    });
    let read = read.map_err(|e| AuditError::Unreadable {
        path: text.to_owned(),
        message: e.to_string(),
    })?;
    let scheme = if read >= 16 && &header == b"SQLite format 3\0" {
        "sqlite"
    } else if read >= 12 && &header[8..12] == b"DUCK" {
        "duckdb"
    } else {
        return Err(AuditError::UnknownFile { path: text.to_owned() });
    };
    let path = std::path::absolute(text).map_err(|e| AuditError::Unreadable {
        path: text.to_owned(),
        message: e.to_string(),
    })?;
    let encoded = path.to_string_lossy().replace('%', "%25");
    Ok(DatabaseUrl::parse(&format!("{scheme}://{encoded}"))?)
}

/// What an engine's checks add to, as they go.
pub(crate) struct Audit {
    url: DatabaseUrl,
    checks: Vec<CheckRun>,
    findings: Vec<Finding>,
}

impl Audit {
    fn ran(&mut self, check: &str, description: &str, objects: u64) {
        self.checks.push(CheckRun {
            check: check.to_owned(),
            description: description.to_owned(),
            objects,
        });
    }

    fn found(&mut self, severity: Severity, check: &str, object: &str, message: String, action: String) {
        tracing::info!(severity = severity.as_str(), check, object, %message, "finding");
        self.findings.push(Finding {
            severity,
            check: check.to_owned(),
            object: object.to_owned(),
            message,
            action,
        });
    }
}

/// Audits the database at `url`. Fails only if the database cannot be
/// reached at all (or a client program is missing); what is wrong inside it
/// is reported as findings.
pub async fn run_audit(url: &DatabaseUrl) -> Result<AuditReport, AuditError> {
    let started = Instant::now();
    let tool = match url.engine {
        Engine::Postgresql => "psql",
        Engine::Mysql => "mariadb",
        Engine::Sqlite => "sqlite3",
        Engine::Duckdb => "duckdb",
        Engine::Redis => {
            return Err(AuditError::Unsupported {
                target: url.to_string(),
            })
        }
    };
    let tools: &[&str] = if url.engine == Engine::Mysql {
        &["mariadb", "mysql"]
    } else {
        &[tool]
    };
    url.require_tool(tools)?;
    if url.engine.is_file() && !std::path::Path::new(&url.database).is_file() {
        return Err(AuditError::Unreadable {
            path: url.database.clone(),
            message: "no such file".to_owned(),
        });
    }
    let mut audit = Audit {
        url: url.clone(),
        checks: Vec::new(),
        findings: Vec::new(),
    };
    // A damaged SQLite file may not even say its version: that is a finding, not a failure.
    let server_version = match url.server_version().await {
        Ok(version) => version,
        Err(error) if url.engine == Engine::Sqlite && is_damage(&error) => String::new(),
        Err(error) => return Err(error.into()),
    };
    match url.engine {
        Engine::Postgresql => postgres::audit(&mut audit).await?,
        Engine::Mysql => mysql::audit(&mut audit).await?,
        Engine::Sqlite => sqlite::audit(&mut audit).await?,
        Engine::Duckdb => duckdb::audit(&mut audit).await?,
        Engine::Redis => {}
    }
    let mut findings = audit.findings;
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Ok(AuditReport {
        target: url.to_string(),
        engine: url.engine,
        server_version,
        checks: audit.checks,
        critical: findings.iter().filter(|f| f.severity == Severity::Critical).count(),
        warnings: findings.iter().filter(|f| f.severity == Severity::Warning).count(),
        findings,
        duration_seconds: started.elapsed().as_secs_f64(),
    })
}

/// What a failed query's program said (its standard error), else the error.
fn said(error: &DbError) -> String {
    match error {
        DbError::ToolFailed { stderr, .. } => stderr.clone(),
        other => other.to_string(),
    }
}

/// Whether a query failed because the database's data is damaged (rather
/// than unreachable): SQLite's and DuckDB's words for it.
fn is_damage(error: &DbError) -> bool {
    let DbError::ToolFailed { stderr, .. } = error else {
        return false;
    };
    let lower = stderr.to_lowercase();
    ["malformed", "corrupt", "not a database", "checksum", "invalid database"]
        .iter()
        .any(|w| lower.contains(w))
}

/// `"text"` quoted as an SQL identifier (PostgreSQL, SQLite, DuckDB).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Parses `count|example` rows (a window count, then one example each).
fn count_and_examples(rows: &[String], separator: char) -> (u64, Vec<String>) {
    let mut count = 0;
    let mut examples = Vec::new();
    for row in rows {
        let (n, example) = row.split_once(separator).unwrap_or((row, ""));
        count = n.trim().parse().unwrap_or(count);
        examples.push(example.to_owned());
    }
    (count, examples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_told_apart_by_their_first_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, &[u8], Result<&str, &str>); 4] = [
            ("a.db", b"SQLite format 3\0rest of the header", Ok("sqlite://")),
            ("b.duckdb", b"\0\0\0\0\0\0\0\0DUCK\x40\0\0\0", Ok("duckdb://")),
            (
                "c.txt",
                b"hello, world, this is text",
                Err("neither a SQLite nor a DuckDB"),
            ),
            ("d.db", b"SQLite", Err("neither a SQLite nor a DuckDB")),
        ];
        for (name, bytes, expected) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let found = audit_target(path.to_str().unwrap());
            match expected {
                Ok(scheme) => {
                    let url = found.unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert!(url.to_string().starts_with(scheme), "{name}: {url}");
                    assert_eq!(url.database, path.to_string_lossy(), "{name}");
                }
                Err(message) => {
                    let error = found.unwrap_err().to_string();
                    assert!(error.contains(message), "{name}: {error}");
                }
            }
        }
        let missing = audit_target(dir.path().join("none.db").to_str().unwrap()).unwrap_err();
        assert!(missing.to_string().contains("cannot read"), "{missing}");
    }

    #[test]
    fn window_counts_and_examples_parse() {
        let rows = vec!["3|7".to_owned(), "3|8,x".to_owned(), "3|9".to_owned()];
        assert_eq!(
            count_and_examples(&rows, '|'),
            (3, vec!["7".to_owned(), "8,x".to_owned(), "9".to_owned()])
        );
        assert_eq!(count_and_examples(&[], '\t'), (0, Vec::new()));
    }
}
