//! The one plan-file loader: a plan file read from a local path, an
//! `s3://BUCKET/KEY` location or a setting's text, then parsed with
//! [`parse_plans`]; every error names the location. Functions name their plan
//! file with two settings ([`plan_source`]); the toolkit reads a local path
//! ([`load_local`], [`read_local`]).

use std::path::Path;

use jiff::Timestamp;

use super::{parse_plans, Plan, PlanErrors};

/// Where a plan file is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanSource {
    /// `s3://BUCKET/KEY`.
    S3 { bucket: String, key: String },
    /// A file shipped with the function, or the operator's.
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
    #[error("cannot read plan file {path}: {message}")]
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

/// Where a function's plan file is, from its two settings
/// (`LIFEBOAT_PLANS_TOML`: the text; `LIFEBOAT_PLANS`: `s3://BUCKET/KEY` or
/// a path); `None` if neither is set.
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

/// Reads and validates a plan file: all plans, or every problem.
pub async fn load_plans(
    source: &PlanSource,
    s3: &aws_sdk_s3::Client,
    now: Timestamp,
) -> Result<Vec<Plan>, PlanLoadError> {
    let location = source.describe();
    let bytes = match source {
        PlanSource::Inline(text) => text.clone().into_bytes(),
        PlanSource::Path(path) => tokio::fs::read(path).await.map_err(|e| file_error(path, e))?,
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
    parse(text(bytes, &location)?, now, location)
}

/// Reads and validates a local plan file: all plans, or every problem.
pub fn load_local(path: &Path, now: Timestamp) -> Result<Vec<Plan>, PlanLoadError> {
    let text = read_local(path)?;
    parse(text, now, path.display().to_string())
}

/// A local plan file's text, unparsed (for `lifeboat plan check`, which
/// reports problems rather than failing on them).
pub fn read_local(path: &Path) -> Result<String, PlanLoadError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(path, e))?;
    text(bytes, &path.display().to_string())
}

fn file_error(path: &Path, error: std::io::Error) -> PlanLoadError {
    PlanLoadError::File {
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

fn text(bytes: Vec<u8>, location: &str) -> Result<String, PlanLoadError> {
    String::from_utf8(bytes).map_err(|_| PlanLoadError::NotText {
        location: location.to_owned(),
    })
}

fn parse(text: String, now: Timestamp, location: String) -> Result<Vec<Plan>, PlanLoadError> {
    parse_plans(&text, now).map_err(|errors| PlanLoadError::Invalid { location, errors })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_sources_parse() {
        assert_eq!(
            PlanSource::parse("s3://cfg/lifeboat/plans.toml").unwrap(),
            PlanSource::S3 {
                bucket: "cfg".into(),
                key: "lifeboat/plans.toml".into()
            }
        );
        assert_eq!(
            PlanSource::parse("/var/task/plans.toml").unwrap(),
            PlanSource::Path("/var/task/plans.toml".into())
        );
        for bad in ["s3://bucket", "s3:///key", "", "https://x/plans.toml"] {
            assert!(PlanSource::parse(bad).is_err(), "{bad}");
        }
    }

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
    fn a_missing_local_file_is_named() {
        let error = read_local(Path::new("/nonexistent/plans.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("cannot read plan file /nonexistent/plans.toml: "),
            "{error}"
        );
    }
}
