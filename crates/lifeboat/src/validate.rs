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
//! `MYSQL_PWD`.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::db::error::DbError;
use crate::db::url::{DatabaseUrl, Engine, UrlError};

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

/// One assertion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub name: String,
    pub sql: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equals: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_least: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_most: Option<i64>,
}

impl Check {
    /// What the check expects, in words: `= 0`, `at least 1000`, `between 1 and 5`.
    pub fn expected(&self) -> String {
        match (self.equals, self.at_least, self.at_most) {
            (Some(n), _, _) => format!("exactly {n}"),
            (None, Some(lo), Some(hi)) => format!("between {lo} and {hi}"),
            (None, Some(lo), None) => format!("at least {lo}"),
            (None, None, Some(hi)) => format!("at most {hi}"),
            (None, None, None) => "a number".to_owned(),
        }
    }

    pub fn accepts(&self, value: i64) -> bool {
        self.equals.is_none_or(|n| value == n)
            && self.at_least.is_none_or(|lo| value >= lo)
            && self.at_most.is_none_or(|hi| value <= hi)
    }
}

/// A parsed checks file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Checks {
    /// The database URL, possibly with `{host}` and `{port}` placeholders.
    pub url: String,
    pub checks: Vec<Check>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChecksFile {
    url: String,
    #[serde(default)]
    check: Vec<CheckFile>,
}

/// One `[[check]]` table as written (also a plan's
/// `[[plan.restore_test.check]]`, `crate::plan`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckFile {
    name: String,
    sql: String,
    equals: Option<i64>,
    at_least: Option<i64>,
    at_most: Option<i64>,
}

/// Parses a checks file's text; `path` only names it in errors.
pub fn parse_named(text: &str, path: Option<&str>) -> Result<Checks, ValidateError> {
    let invalid = |message: String| ValidateError::Invalid {
        path: path.map(str::to_owned),
        message,
    };
    let file: ChecksFile = toml::from_str(text).map_err(|e| invalid(e.to_string().trim_end().to_owned()))?;
    checks_from(file.url, file.check).map_err(invalid)
}

/// Validates a URL and its checks as a checks file writes them; what is
/// wrong in words otherwise.
pub(crate) fn checks_from(url: String, check: Vec<CheckFile>) -> Result<Checks, String> {
    if check.is_empty() {
        return Err("no [[check]] table: add at least one check (name, sql, and equals / at_least / at_most)".into());
    }
    let mut checks = Vec::with_capacity(check.len());
    for (i, c) in check.into_iter().enumerate() {
        let name = c.name.trim().to_owned();
        let at = if name.is_empty() {
            format!("check #{}", i + 1)
        } else {
            format!("check {name:?}")
        };
        if name.is_empty() {
            return Err(format!("{at} has an empty name"));
        }
        if c.sql.trim().is_empty() {
            return Err(format!("{at} has an empty sql"));
        }
        if c.equals.is_none() && c.at_least.is_none() && c.at_most.is_none() {
            return Err(format!(
                "{at} says nothing about the result: give equals, at_least or at_most"
            ));
        }
        if let (Some(lo), Some(hi)) = (c.at_least, c.at_most) {
            if lo > hi {
                return Err(format!("{at}: at_least {lo} is above at_most {hi}"));
            }
        }
        if checks.iter().any(|k: &Check| k.name == name) {
            return Err(format!("{at} appears twice: check names must be unique"));
        }
        checks.push(Check {
            name,
            sql: c.sql.trim().to_owned(),
            equals: c.equals,
            at_least: c.at_least,
            at_most: c.at_most,
        });
    }
    let checks = Checks { url, checks };
    // The URL must parse once its placeholders are filled in.
    let engine = DatabaseUrl::parse(&checks.url_for("localhost", 1))
        .map_err(|e| format!("url: {e}"))?
        .engine;
    if !matches!(engine, Engine::Postgresql | Engine::Mysql) {
        return Err(format!(
            "url: checks run against PostgreSQL or MySQL/MariaDB, not {}",
            engine.as_str()
        ));
    }
    Ok(checks)
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

impl Checks {
    /// The URL with `{host}` and `{port}` filled in.
    pub fn url_for(&self, host: &str, port: u16) -> String {
        self.url.replace("{host}", host).replace("{port}", &port.to_string())
    }

    /// Whether the URL names the restored instance (has placeholders).
    pub fn uses_endpoint(&self) -> bool {
        self.url.contains("{host}") || self.url.contains("{port}")
    }
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

    const GOOD: &str = r#"
url = "postgres://app@{host}:{port}/orders"
[[check]]
name = "users present"
sql = "SELECT count(*) FROM users"
at_least = 1000
[[check]]
name = "no orphans"
sql = "SELECT count(*) FROM orders o LEFT JOIN users u ON u.id = o.user_id WHERE u.id IS NULL"
equals = 0
"#;

    #[test]
    fn parses_and_fills_in_the_endpoint() {
        let checks = parse(GOOD).unwrap();
        assert_eq!(checks.checks.len(), 2);
        assert!(checks.uses_endpoint());
        assert_eq!(
            checks.url_for("db.example", 5433),
            "postgres://app@db.example:5433/orders"
        );
        assert_eq!(checks.checks[0].expected(), "at least 1000");
        assert!(checks.checks[0].accepts(1000) && !checks.checks[0].accepts(999));
        assert!(checks.checks[1].accepts(0) && !checks.checks[1].accepts(1));
    }

    #[test]
    fn refuses_checks_that_assert_nothing_or_are_malformed() {
        let cases = [
            ("url = \"postgres://h/d\"\n", "no [[check]]"),
            (
                "url = \"postgres://h/d\"\n[[check]]\nname = \"a\"\nsql = \"select 1\"\n",
                "says nothing",
            ),
            (
                "url = \"postgres://h/d\"\n[[check]]\nname = \"a\"\nsql = \"select 1\"\nequal = 1\n",
                "unknown field",
            ),
            (
                "url = \"redis://h/0\"\n[[check]]\nname = \"a\"\nsql = \"select 1\"\nequals = 1\n",
                "not redis",
            ),
            (
                "url = \"postgres://h/d\"\n[[check]]\nname = \"a\"\nsql = \"x\"\nat_least = 5\nat_most = 1\n",
                "above at_most",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{error:?} should contain {expected:?}");
        }
    }

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
