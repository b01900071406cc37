//! Cross-database consistency rules (`lifeboat consistency RULES.toml`):
//! pairs of queries on two databases whose result sets must be equal, e.g.
//! the user ids in PostgreSQL and in an SQLite cache. Each rule reports the
//! rows only on the left and only on the right, with counts and the first
//! few of each. The rules file format is in README.md.
//!
//! Rows are compared as text, as each engine's client prints them, columns
//! joined by `|`; a NULL compares as the empty string. Each side is a set:
//! duplicates count once. Queries that should agree across engines should
//! therefore cast to text the same way (e.g. `id::text`, `CAST(id AS CHAR)`).

use std::collections::BTreeSet;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::db::error::DbError;
use crate::db::url::{DatabaseUrl, Engine};

/// Examples of each side's extra rows shown by default.
const DEFAULT_EXAMPLES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum ConsistencyError {
    #[error("{file}: {message}")]
    Rules { file: String, message: String },
    #[error("rule {rule:?}, {side} side ({url}): the query failed: {source}")]
    Query {
        rule: String,
        side: &'static str,
        url: String,
        #[source]
        source: Box<DbError>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    description: Option<String>,
    left: SideSpec,
    right: SideSpec,
    examples: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SideSpec {
    url: String,
    query: String,
}

/// One checked rule: a pair of queries whose results must be equal.
#[derive(Clone, Debug)]
pub struct Rule {
    pub name: String,
    pub description: Option<String>,
    pub left: (DatabaseUrl, String),
    pub right: (DatabaseUrl, String),
    pub examples: usize,
}

/// Reads a rules file, every problem in it reported at once.
pub fn parse_rules(file: &str, text: &str) -> Result<Vec<Rule>, ConsistencyError> {
    let rules_error = |message: String| ConsistencyError::Rules {
        file: file.to_owned(),
        message,
    };
    let parsed: RulesFile = toml::from_str(text).map_err(|e| rules_error(e.to_string()))?;
    if parsed.rule.is_empty() {
        return Err(rules_error(
            "no rules: add at least one [[rule]] with a name, left = { url, query } and right = { url, query }".into(),
        ));
    }
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    let mut rules = Vec::new();
    for (i, spec) in parsed.rule.into_iter().enumerate() {
        let label = if spec.name.is_empty() {
            format!("rule #{}", i + 1)
        } else {
            format!("rule {:?}", spec.name)
        };
        if spec.name.trim().is_empty() {
            problems.push(format!("{label}: name is empty"));
        } else if !names.insert(spec.name.clone()) {
            problems.push(format!("{label}: the name is used by an earlier rule"));
        }
        if spec.examples == Some(0) {
            problems.push(format!("{label}: examples must be at least 1"));
        }
        let mut side = |which: &str, side: SideSpec| -> Option<(DatabaseUrl, String)> {
            if side.query.trim().is_empty() {
                problems.push(format!("{label}: {which}.query is empty"));
            }
            match DatabaseUrl::parse(&side.url) {
                Ok(url) if url.engine == Engine::Redis => {
                    problems.push(format!("{label}: {which}.url is a Redis server, which has no SQL"));
                    None
                }
                Ok(url) => Some((url, side.query)),
                Err(e) => {
                    problems.push(format!("{label}: {which}.url: {e}"));
                    None
                }
            }
        };
        let (left, right) = (side("left", spec.left), side("right", spec.right));
        if let (Some(left), Some(right)) = (left, right) {
            rules.push(Rule {
                name: spec.name,
                description: spec.description,
                left,
                right,
                examples: spec.examples.unwrap_or(DEFAULT_EXAMPLES),
            });
        }
    }
    if !problems.is_empty() {
        return Err(rules_error(problems.join("; ")));
    }
    Ok(rules)
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleResult {
    pub name: String,
    pub description: Option<String>,
    pub left: String,
    pub right: String,
    pub left_rows: u64,
    pub right_rows: u64,
    pub only_left: u64,
    pub only_right: u64,
    /// The first few rows only on the left, in sorted order.
    pub only_left_examples: Vec<String>,
    pub only_right_examples: Vec<String>,
    pub matched: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsistencyReport {
    pub rules: Vec<RuleResult>,
    pub mismatched: usize,
    pub duration_seconds: f64,
}

/// A query's rows as a set of `|`-joined text rows.
async fn rows(url: &DatabaseUrl, query: &str) -> Result<BTreeSet<String>, DbError> {
    let raw = url.query(query).await?;
    Ok(raw.iter().map(|row| normalise(url.engine, row)).collect())
}

/// One printed row in the common form: columns joined by `|`, NULL empty.
fn normalise(engine: Engine, row: &str) -> String {
    match engine {
        // `mariadb --batch` separates columns by tabs and prints NULL as NULL.
        Engine::Mysql => row
            .split('\t')
            .map(|c| if c == "NULL" { "" } else { c })
            .collect::<Vec<_>>()
            .join("|"),
        _ => row.to_owned(),
    }
}

fn compare(rule: &Rule, left: &BTreeSet<String>, right: &BTreeSet<String>) -> RuleResult {
    let only_left: Vec<&String> = left.difference(right).collect();
    let only_right: Vec<&String> = right.difference(left).collect();
    let examples = |rows: &[&String]| rows.iter().take(rule.examples).map(|r| (*r).clone()).collect();
    RuleResult {
        name: rule.name.clone(),
        description: rule.description.clone(),
        left: rule.left.0.to_string(),
        right: rule.right.0.to_string(),
        left_rows: left.len() as u64,
        right_rows: right.len() as u64,
        only_left: only_left.len() as u64,
        only_right: only_right.len() as u64,
        only_left_examples: examples(&only_left),
        only_right_examples: examples(&only_right),
        matched: only_left.is_empty() && only_right.is_empty(),
    }
}

/// Runs every rule (both sides of each at once), in file order.
pub async fn run_consistency(rules: &[Rule]) -> Result<ConsistencyReport, ConsistencyError> {
    let started = Instant::now();
    let mut results = Vec::new();
    for rule in rules {
        let failed = |side: &'static str, url: &DatabaseUrl| {
            let (rule, url) = (rule.name.clone(), url.to_string());
            move |source| ConsistencyError::Query {
                rule,
                side,
                url,
                source: Box::new(source),
            }
        };
        let (left, right) = tokio::join!(rows(&rule.left.0, &rule.left.1), rows(&rule.right.0, &rule.right.1));
        let left = left.map_err(failed("left", &rule.left.0))?;
        let right = right.map_err(failed("right", &rule.right.0))?;
        let result = compare(rule, &left, &right);
        tracing::info!(rule = %rule.name, matched = result.matched, only_left = result.only_left, only_right = result.only_right, "rule checked");
        results.push(result);
    }
    let mismatched = results.iter().filter(|r| !r.matched).count();
    Ok(ConsistencyReport {
        rules: results,
        mismatched,
        duration_seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compare_sets(rule: &Rule, left: &[&str], right: &[&str]) -> RuleResult {
        let set = |rows: &[&str]| rows.iter().map(|r| (*r).to_owned()).collect::<BTreeSet<_>>();
        compare(rule, &set(left), &set(right))
    }

    const GOOD: &str = r#"
[[rule]]
name = "users"
left = { url = "postgres://postgres@127.0.0.1/app", query = "SELECT id FROM users" }
right = { url = "sqlite:///var/lib/app/cache.db", query = "SELECT user_id FROM users" }
examples = 2
"#;

    #[test]
    fn a_rules_file_parses_and_every_problem_is_named() {
        let rules = parse_rules("rules.toml", GOOD).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].examples, 2);
        assert_eq!(rules[0].right.0.engine, Engine::Sqlite);

        let cases = [
            ("", "no rules"),
            ("[[rule]]\nname = \"x\"\n", "missing field"),
            (&format!("{GOOD}\nunknown = 1"), "unknown field"),
            (&format!("{GOOD}{GOOD}"), "used by an earlier rule"),
            (
                "[[rule]]\nname = \"a\"\nleft = { url = \"http://x/db\", query = \"\" }\nright = { url = \"redis://h\", query = \"x\" }\n",
                "left.url",
            ),
        ];
        for (text, expected) in cases {
            let error = parse_rules("rules.toml", text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        let error = parse_rules(
            "rules.toml",
            "[[rule]]\nname = \"a\"\nleft = { url = \"http://x/db\", query = \"\" }\nright = { url = \"redis://h\", query = \"x\" }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("left.query is empty") && error.contains("Redis"),
            "{error}"
        );
    }

    #[test]
    fn differences_are_counted_and_exemplified_in_order() {
        let rule = parse_rules("r", GOOD).unwrap().remove(0);
        let result = compare_sets(&rule, &["1", "2", "3", "5", "7"], &["1", "2", "4", "6", "8", "9"]);
        assert!(!result.matched);
        assert_eq!((result.only_left, result.only_right), (3, 4));
        assert_eq!(result.only_left_examples, ["3", "5"]);
        assert_eq!(result.only_right_examples, ["4", "6"]);
        assert!(compare_sets(&rule, &["1", "2"], &["2", "1", "1"]).matched);
        assert_eq!(normalise(Engine::Mysql, "1\tNULL\tx"), "1||x");
        assert_eq!(normalise(Engine::Postgresql, "1||x"), "1||x");
    }
}
