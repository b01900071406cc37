//! SQL assertions run against a restored database: the proof that a restore,
//! failover or drill brought back data an application can use.
//!
//! A checks file (TOML; README.md, "Validating a restored database"):
//!
//! ```toml
//! # {host} and {port} are replaced by the restored instance's endpoint.
//! url = "postgres://app@{host}:{port}/orders"
//! [[check]]
//! name = "users present"
//! sql = "SELECT count(*) FROM users"
//! at_least = 1000
//! [[check]]
//! name = "no orphaned orders"
//! sql = "SELECT count(*) FROM orders o LEFT JOIN users u ON u.id = o.user_id WHERE u.id IS NULL"
//! equals = 0
//! ```
//!
//! Each query must return one integer (its first row's first column). The
//! queries run through the database's own client (psql, mariadb), as dumps
//! do (`crate::db::client`), with passwords from the URL or `PGPASSWORD` /
//! `MYSQL_PWD`. The checks themselves (types and parsing, pure) are
//! `crate::plan::checks`; this module reads a checks file and runs it.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::db::error::DbError;
use crate::db::url::{DatabaseUrl, UrlError};
use crate::plan::checks;
pub use crate::plan::checks::{Check, Checks};

#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("checks file {path}: {message}")]
    Read { path: String, message: String },
    #[error("checks file{}: {message}", path.as_deref().map(|p| format!(" {p}")).unwrap_or_default())]
    Invalid { path: Option<String>, message: String },
    #[error("validation database: {0}")]
    Url(UrlError),
    #[error("validation database: {0}")]
    Client(DbError),
}

/// Parses a checks file's text; `path` only names it in errors.
pub fn parse_named(text: &str, path: Option<&str>) -> Result<Checks, ValidateError> {
    let invalid = |message: String| ValidateError::Invalid {
        path: path.map(str::to_owned),
        message,
    };
    checks::parse(text).map_err(invalid)
}

pub fn parse(text: &str) -> Result<Checks, ValidateError> {
    parse_named(text, None)
}

pub fn load(path: &Path) -> Result<Checks, ValidateError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ValidateError::Read {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    parse_named(&text, Some(&shown))
}

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub name: String,
    pub sql: String,
    pub expected: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The outcome of a checks file against one database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationReport {
    /// The database checked, without its password.
    pub url: String,
    pub results: Vec<CheckResult>,
}

impl ValidationReport {
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.passed)
    }

    /// Every failed check with its query and values, or `None` if all passed.
    pub fn failure_message(&self) -> Option<String> {
        let failures: Vec<String> = self
            .results
            .iter()
            .filter(|r| !r.passed)
            .map(|r| match (&r.error, r.value) {
                (Some(error), _) => format!("check {:?} failed on {}: {} ({error})", r.name, self.url, r.sql),
                (None, Some(value)) => format!(
                    "check {:?} failed on {}: {} returned {value}, expected {}",
                    r.name, self.url, r.sql, r.expected
                ),
                (None, None) => format!("check {:?} failed on {}: {} returned nothing", r.name, self.url, r.sql),
            })
            .collect();
        (!failures.is_empty()).then(|| failures.join("; "))
    }
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let passed = self.results.iter().filter(|r| r.passed).count();
        write!(f, "{passed}/{} checks passed on {}", self.results.len(), self.url)
    }
}

/// Runs every check against `url` (placeholders already filled in). A query
/// that fails or returns no number is a failed check, so the report shows
/// every check's outcome.
pub async fn run(url: &str, checks: &Checks) -> Result<ValidationReport, ValidateError> {
    let database = DatabaseUrl::parse(url).map_err(ValidateError::Url)?;
    let mut results = Vec::with_capacity(checks.checks.len());
    for check in &checks.checks {
        let outcome = database.query(&check.sql).await;
        let (value, error) = match outcome {
            Ok(rows) => match first_number(&rows) {
                Some(value) => (Some(value), None),
                None => (
                    None,
                    Some(format!(
                        "expected one integer, got {}",
                        rows.first()
                            .map(|r| format!("{r:?}"))
                            .unwrap_or_else(|| "no rows".into())
                    )),
                ),
            },
            // Without the client program no check can run: say it once.
            Err(e @ (DbError::ToolMissing { .. } | DbError::ToolStart { .. })) => return Err(ValidateError::Client(e)),
            // A refused login or a missing table fails the check, with the client's words.
            Err(e) => (None, Some(e.to_string())),
        };
        let passed = error.is_none() && value.is_some_and(|v| check.accepts(v));
        results.push(CheckResult {
            name: check.name.clone(),
            sql: check.sql.clone(),
            expected: check.expected(),
            value,
            passed,
            error,
        });
    }
    Ok(ValidationReport {
        url: database.to_string(),
        results,
    })
}

/// The first column of the first row, as an integer.
fn first_number(rows: &[String]) -> Option<i64> {
    let first = rows.first()?;
    let cell = first.split(['|', '\t']).next()?.trim();
    cell.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_message_names_the_query_and_the_values() {
        let report = ValidationReport {
            url: "postgres://app@db:5432/orders".into(),
            results: vec![CheckResult {
                name: "users present".into(),
                sql: "SELECT count(*) FROM users".into(),
                expected: "at least 1000".into(),
                value: Some(3),
                passed: false,
                error: None,
            }],
        };
        let message = report.failure_message().unwrap();
        assert!(
            message.contains("SELECT count(*) FROM users returned 3, expected at least 1000"),
            "{message}"
        );
    }

    #[test]
    fn reads_the_first_column_of_either_client() {
        assert_eq!(first_number(&["42".into()]), Some(42));
        assert_eq!(first_number(&["7|x".into()]), Some(7));
        assert_eq!(first_number(&["-1\tx".into()]), Some(-1));
        assert_eq!(first_number(&["abc".into()]), None);
        assert_eq!(first_number(&[]), None);
    }
}
