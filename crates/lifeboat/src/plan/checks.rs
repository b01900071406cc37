//! The SQL checks model: the assertions a restored database must pass, as a
//! checks file (`url` and `[[check]]` tables) or a plan's
//! `[plan.restore_test]` writes them, parsed and validated. Pure: running
//! them against a database is `crate::validate`.
//!
//! ```toml
//! # {host} and {port} are replaced by the restored instance's endpoint.
//! url = "postgres://app@{host}:{port}/orders"
//! [[check]]
//! name = "users present"
//! sql = "SELECT count(*) FROM users"
//! at_least = 1000
//! ```

use crate::db::url::{DatabaseUrl, Engine};
use serde::{Deserialize, Serialize};

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
pub(crate) struct ChecksFile {
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

/// Parses a checks file's text: its checks, or what is wrong in words.
pub fn parse(text: &str) -> Result<Checks, String> {
    let file: ChecksFile = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
    checks_from(file.url, file.check)
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
            let error = parse(text).unwrap_err();
            assert!(error.contains(expected), "{error:?} should contain {expected:?}");
        }
    }
}
