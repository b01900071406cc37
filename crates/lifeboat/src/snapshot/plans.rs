//! The plan file as the functions read it: where it is ([`PlanSource`]: S3,
//! a path, or inline text, from the functions' settings by [`plan_source`]),
//! reading and validating it ([`load_plans`]), and picking plans by name
//! ([`select_plans`]).

use jiff::Timestamp;

use super::error::SnapshotOpsError;
use crate::plan::{parse_plans, Plan, PlanErrors};

/// Where the snapshot function reads its plan file from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanSource {
    /// `s3://BUCKET/KEY`.
    S3 { bucket: String, key: String },
    /// A file shipped with the function.
    Path(std::path::PathBuf),
    /// The file's text itself.
    Inline(String),
}

#[derive(Debug, thiserror::Error)]
pub enum PlanLoadError {
    #[error("{0:?} names no plan file: give s3://BUCKET/KEY or a path")]
    BadLocation(String),
    #[error("reading the plan file s3://{bucket}/{key} failed ({message}): check that it exists and that the role may s3:GetObject it")]
    S3 {
        bucket: String,
        key: String,
        message: String,
    },
    #[error("reading the plan file {path} failed: {message}")]
    File { path: String, message: String },
    #[error("the plan file {location} is not UTF-8 text")]
    NotText { location: String },
    #[error("the plan file {location} is not valid (check it with `lifeboat plan check`): {errors}")]
    Invalid { location: String, errors: PlanErrors },
}

impl PlanSource {
    /// `s3://BUCKET/KEY` or a path.
    pub fn parse(text: &str) -> Result<Self, PlanLoadError> {
        if let Some(rest) = text.strip_prefix("s3://") {
            return match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(Self::S3 {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                }),
                _ => Err(PlanLoadError::BadLocation(text.to_owned())),
            };
        }
        if text.trim().is_empty() || text.contains("://") {
            return Err(PlanLoadError::BadLocation(text.to_owned()));
        }
        Ok(Self::Path(text.into()))
    }

    fn describe(&self) -> String {
        match self {
            Self::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
            Self::Path(path) => path.display().to_string(),
            Self::Inline(_) => "(inline)".to_owned(),
        }
    }
}

/// Reads and validates a plan file: all plans, or every problem.
pub async fn load_plans(
    source: &PlanSource,
    s3: &aws_sdk_s3::Client,
    now: Timestamp,
) -> Result<Vec<Plan>, PlanLoadError> {
    let location = source.describe();
    let bytes = match source {
        PlanSource::Inline(text) => text.clone().into_bytes(),
        PlanSource::Path(path) => tokio::fs::read(path).await.map_err(|e| PlanLoadError::File {
            path: location.clone(),
            message: e.to_string(),
        })?,
        PlanSource::S3 { bucket, key } => {
            let s3_error = |message: String| PlanLoadError::S3 {
                bucket: bucket.clone(),
                key: key.clone(),
                message,
            };
            let object = s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| s3_error(crate::aws::error_code(&e).1))?;
            object
                .body
                .collect()
                .await
                .map_err(|e| s3_error(e.to_string()))?
                .into_bytes()
                .to_vec()
        }
    };
    let text = String::from_utf8(bytes).map_err(|_| PlanLoadError::NotText {
        location: location.clone(),
    })?;
    parse_plans(&text, now).map_err(|errors| PlanLoadError::Invalid { location, errors })
}

/// The plans named (all when `names` is empty), or which name is unknown.
pub fn select_plans(plans: &[Plan], names: &[String]) -> Result<Vec<Plan>, SnapshotOpsError> {
    if names.is_empty() {
        return Ok(plans.to_vec());
    }
    names
        .iter()
        .map(|name| {
            plans
                .iter()
                .find(|p| &p.name == name)
                .cloned()
                .ok_or_else(|| SnapshotOpsError::UnknownPlan {
                    name: name.clone(),
                    known: plans.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "),
                })
        })
        .collect()
}

/// Where a function's plan file is, from its two settings
/// (`LIFEBOAT_PLANS_TOML`: the text; `LIFEBOAT_PLANS`: `s3://BUCKET/KEY` or
/// a path), as the snapshot function reads them; `None` if neither is set.
pub fn plan_source(inline: Option<String>, location: Option<String>) -> Result<Option<PlanSource>, String> {
    match (inline, location) {
        (Some(text), None) => Ok(Some(PlanSource::Inline(text))),
        (None, Some(location)) => PlanSource::parse(&location)
            .map(Some)
            .map_err(|e| format!("LIFEBOAT_PLANS: {e}")),
        (Some(_), Some(_)) => Err("both LIFEBOAT_PLANS and LIFEBOAT_PLANS_TOML are set: set one".to_owned()),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_file_setting_is_one_of_two_or_none() {
        assert_eq!(plan_source(None, None), Ok(None));
        assert_eq!(
            plan_source(Some("[[plan]]".into()), None),
            Ok(Some(PlanSource::Inline("[[plan]]".into())))
        );
        assert_eq!(
            plan_source(None, Some("s3://b/plans.toml".into())),
            Ok(Some(PlanSource::S3 {
                bucket: "b".into(),
                key: "plans.toml".into()
            }))
        );
        let both = plan_source(Some("x".into()), Some("y".into())).unwrap_err();
        assert!(both.contains("set one"), "{both}");
        let bad = plan_source(None, Some("http://x".into())).unwrap_err();
        assert!(bad.starts_with("LIFEBOAT_PLANS"), "{bad}");
    }

    #[test]
    fn plans_are_selected_by_name_and_an_unknown_one_is_named() {
        let plans = crate::plan::parse_plans(
            r#"[[plan]]
name = "a"
schedule = "rate(1 day)"
resources = ["orders"]
retention = { keep_days = 7 }
rpo = "26h"
tier = "critical"
"#,
            "2026-11-23T00:00:00Z".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(select_plans(&plans, &[]).unwrap().len(), 1);
        assert_eq!(select_plans(&plans, &["a".into()]).unwrap()[0].name, "a");
        let unknown = select_plans(&plans, &["b".into()]).unwrap_err().to_string();
        assert!(unknown.contains("\"b\"") && unknown.contains("it has: a"), "{unknown}");
    }
}
