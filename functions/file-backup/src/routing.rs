//! Which plan source an S3 object belongs to, and the backup each source
//! gets for the objects an event names.

use std::collections::BTreeMap;

use lifeboat::db::url::is_database_url;
use lifeboat::plan::Plan;
use lifeboat::storage::Location;
use sha2::{Digest, Sha256};

use crate::event::CreatedObject;

/// The file sources of a plan (its `sources` that are not databases).
pub fn file_sources(plan: &Plan) -> Result<Vec<Location>, String> {
    plan.sources
        .iter()
        .filter(|s| !is_database_url(s))
        .map(|s| Location::parse(s).map_err(|e| format!("plan {}, sources: {e}", plan.name)))
        .collect()
}

/// A source's name as backups record it: `s3://BUCKET/PREFIX/`, `s3://BUCKET/`, or the directory.
pub fn source_name(location: &Location) -> String {
    match location {
        Location::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}/"),
        Location::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}/"),
        Location::Dir(path) => path.display().to_string(),
    }
}

/// One backup to make: a source and the objects in it the event names.
#[derive(Debug, PartialEq, Eq)]
pub struct Route {
    pub source: Location,
    /// Paths relative to the source, sorted, each once.
    pub paths: Vec<String>,
    /// The same objects (keys and sequencers) make the same key, however
    /// they are delivered (S3 notification or EventBridge) and how often.
    pub idempotency_key: String,
}

/// What the event asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Routes {
    pub routes: Vec<Route>,
    /// Objects with nothing to back up (folder markers: keys ending in `/`).
    pub skipped: Vec<String>,
}

/// Maps each object to every plan source (`s3://BUCKET/PREFIX`) that
/// contains it. An object no plan covers is an error naming it and the
/// plans' sources: nothing is backed up then (the event rule and the plan
/// file disagree, which only the operator can settle).
pub fn route(plans: &[Plan], objects: &[CreatedObject]) -> Result<Routes, String> {
    let mut sources: BTreeMap<String, Location> = BTreeMap::new();
    for plan in plans {
        for location in file_sources(plan)? {
            if matches!(location, Location::S3 { .. }) {
                sources.insert(source_name(&location), location);
            }
        }
    }
    let mut by_source: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut uncovered = Vec::new();
    let mut skipped = Vec::new();
    for object in objects {
        let url = format!("s3://{}/{}", object.bucket, object.key);
        if object.key.ends_with('/') {
            skipped.push(url);
            continue;
        }
        let mut covered = false;
        for (name, location) in &sources {
            let Location::S3 { bucket, prefix } = location else {
                continue;
            };
            let path = if prefix.is_empty() {
                Some(object.key.as_str())
            } else {
                object
                    .key
                    .strip_prefix(prefix.as_str())
                    .and_then(|rest| rest.strip_prefix('/'))
            };
            if let (true, Some(path)) = (*bucket == object.bucket, path) {
                covered = true;
                by_source
                    .entry(name.clone())
                    .or_default()
                    .insert(path.to_owned(), object.sequencer.clone());
            }
        }
        if !covered {
            uncovered.push(url);
        }
    }
    if !uncovered.is_empty() {
        let known: Vec<&str> = sources.keys().map(String::as_str).collect();
        return Err(format!(
            "{} object(s) are in no plan's sources: {}; the plan file's S3 sources are: {}. Nothing was backed up: add a source that covers them to a plan, or narrow the bucket's notification (or the EventBridge rule) to the plans' prefixes",
            uncovered.len(),
            uncovered.join(", "),
            if known.is_empty() { "none".to_owned() } else { known.join(", ") }
        ));
    }
    let routes = by_source
        .into_iter()
        .map(|(name, objects)| {
            let mut digest = Sha256::new();
            for (path, sequencer) in &objects {
                digest.update(format!("{path}\0{sequencer}\n"));
            }
            Route {
                source: sources[&name].clone(),
                idempotency_key: format!("objects:{name}:{}", hex::encode(digest.finalize())),
                paths: objects.into_keys().collect(),
            }
        })
        .collect();
    Ok(Routes { routes, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn plans() -> Vec<Plan> {
        let text = r#"
[[plan]]
name = "reports"
schedule = "cron(0 3 * * ? *)"
sources = ["s3://data/reports", "postgres://app@db/app"]
retention = { keep_last = 7 }
rpo = "26h"
tier = "standard"

[[plan]]
name = "everything"
schedule = "cron(0 4 * * ? *)"
sources = ["s3://whole/"]
retention = { keep_last = 7 }
rpo = "26h"
tier = "standard"
"#;
        lifeboat::plan::parse_plans(text, Timestamp::UNIX_EPOCH).unwrap()
    }

    fn object(bucket: &str, key: &str, sequencer: &str) -> CreatedObject {
        CreatedObject {
            bucket: bucket.into(),
            key: key.into(),
            sequencer: sequencer.into(),
        }
    }

    #[test]
    fn objects_go_to_the_sources_that_contain_them() {
        let routes = route(
            &plans(),
            &[
                object("data", "reports/q4.csv", "01"),
                object("whole", "a/b.bin", "02"),
                object("data", "reports/q1.csv", "03"),
                object("data", "reports/", "04"),
            ],
        )
        .unwrap();
        assert_eq!(routes.skipped, ["s3://data/reports/"]);
        let summary: Vec<(String, Vec<String>)> = routes
            .routes
            .iter()
            .map(|r| (source_name(&r.source), r.paths.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "s3://data/reports/".to_owned(),
                    vec!["q1.csv".to_owned(), "q4.csv".to_owned()]
                ),
                ("s3://whole/".to_owned(), vec!["a/b.bin".to_owned()]),
            ]
        );
    }

    #[test]
    fn the_same_objects_make_the_same_key_and_a_new_write_another() {
        let key = |objects: &[CreatedObject]| route(&plans(), objects).unwrap().routes[0].idempotency_key.clone();
        let a = object("data", "reports/q4.csv", "01");
        let b = object("data", "reports/q1.csv", "02");
        assert_eq!(key(&[a.clone(), b.clone()]), key(&[b.clone(), a.clone()]));
        assert_ne!(
            key(std::slice::from_ref(&a)),
            key(&[object("data", "reports/q4.csv", "05")])
        );
        assert!(key(&[a]).starts_with("objects:s3://data/reports/:"));
    }

    #[test]
    fn an_object_no_plan_covers_is_an_error_naming_it() {
        for (bucket, key) in [
            ("data", "reportsX/q.csv"),
            ("data", "other/q.csv"),
            ("elsewhere", "reports/q.csv"),
        ] {
            let error = route(
                &plans(),
                &[object("data", "reports/ok.csv", "1"), object(bucket, key, "2")],
            )
            .unwrap_err();
            assert!(error.contains(&format!("s3://{bucket}/{key}")), "{error}");
            assert!(error.contains("s3://data/reports/, s3://whole/"), "{error}");
            assert!(!error.contains("ok.csv"), "{error}");
        }
    }
}
