//! The requests the function takes (the scheduled event's `detail`, or the
//! direct payload), and the job each asks for:
//!
//! - `{"store": "s3://bucket/prefix", "mode": "quick"|"deep", "sources": [...]}`
//!   or `{"backupId": "bk-..."}` (`events/verify-scheduled.json`): the
//!   newest completed backup of each source (all of the store's without
//!   `sources`; `lifeboat::verify::selection`), or the one given, read back;
//! - `{"store": ..., "mode": "sample", "samplePercent": 10}`
//!   (`events/verify-sample.json`): that share of the store's packs read
//!   whole, continuing where the last sample stopped (`lifeboat::verify::sample`);
//! - `{"snapshots": true, "plans": ["db-nightly"]}` (`events/verify-snapshots.json`):
//!   the newest completed RDS snapshot of each resource of those plans (all
//!   plans without `plans`) checked: available, encrypted, copied to every
//!   copy region with that region's key, within the RPO; with
//!   `"restoreTest": {"checksToml": "..."}` (or `"checks": PATH` in the
//!   package) also restored to a temporary instance and checked by SQL;
//! - `{"restoreTests": true}` (every 15 minutes, `events/verify-restore-tests.json`):
//!   the plans' scheduled restore tests (`[plan.restore_test]`) advanced;
//!   a test that outlasts the invocation resumes in the next.

use lifeboat::catalog::VerificationType;
use lifeboat_lambda::{parse_request, Failure, Request};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VerifyRequest {
    #[serde(default)]
    store: Option<String>,
    #[serde(default)]
    mode: Option<VerificationType>,
    #[serde(default)]
    sources: Option<Vec<String>>,
    #[serde(default)]
    backup_id: Option<String>,
    #[serde(default)]
    concurrency: Option<usize>,
    /// With mode `sample`: the share of the store's packs to read, in percent.
    #[serde(default)]
    sample_percent: Option<f64>,
    /// Verify the plans' RDS snapshots instead of file backups.
    #[serde(default)]
    snapshots: bool,
    /// With `snapshots`: only these plans.
    #[serde(default)]
    plans: Vec<String>,
    /// With `snapshots`: restore-test each newest snapshot.
    #[serde(default)]
    restore_test: Option<RestoreTestRequest>,
    /// Advance the plans' scheduled restore tests instead.
    #[serde(default)]
    restore_tests: bool,
}

/// With `snapshots`: how to restore-test each newest snapshot.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreTestRequest {
    /// A checks file shipped with the function.
    #[serde(default)]
    pub checks: Option<String>,
    /// The checks file's text.
    #[serde(default)]
    pub checks_toml: Option<String>,
    #[serde(default)]
    pub instance_class: Option<String>,
}

/// What a request asks the function to do.
#[derive(Debug)]
pub enum VerifyJob {
    /// Advance the plans' scheduled restore tests (`restoreTests`).
    RestoreTests { plans: Vec<String> },
    /// Verify the plans' newest RDS snapshots (`snapshots`).
    Snapshots {
        plans: Vec<String>,
        restore_test: Option<RestoreTestRequest>,
    },
    /// Read a share of the store's packs (mode `sample`).
    Sample {
        store: Option<String>,
        percent: Option<f64>,
        concurrency: Option<usize>,
    },
    /// Verify one backup, or each source's newest.
    Backups {
        store: Option<String>,
        mode: VerificationType,
        backup_id: Option<String>,
        sources: Option<Vec<String>>,
        concurrency: Option<usize>,
    },
}

impl VerifyJob {
    pub fn from_event(payload: serde_json::Value) -> Result<Self, Failure> {
        let Request { body, .. } =
            parse_request::<VerifyRequest>(payload, "events/verify-scheduled.json").map_err(Failure::BadEvent)?;
        Ok(if body.restore_tests {
            Self::RestoreTests { plans: body.plans }
        } else if body.snapshots {
            Self::Snapshots {
                plans: body.plans,
                restore_test: body.restore_test,
            }
        } else if body.mode == Some(VerificationType::Sample) {
            Self::Sample {
                store: body.store,
                percent: body.sample_percent,
                concurrency: body.concurrency,
            }
        } else {
            Self::Backups {
                store: body.store,
                mode: body.mode.unwrap_or(VerificationType::Quick),
                backup_id: body.backup_id,
                sources: body.sources,
                concurrency: body.concurrency,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_samples_ask_for_their_jobs() {
        let job = |text: &str| VerifyJob::from_event(serde_json::from_str(text).unwrap()).unwrap();
        let scheduled = job(include_str!("../../../events/verify-scheduled.json"));
        assert!(matches!(scheduled, VerifyJob::Backups { .. }));
        let sample = job(include_str!("../../../events/verify-sample.json"));
        assert!(matches!(sample, VerifyJob::Sample { .. }));
        let snapshots = job(include_str!("../../../events/verify-snapshots.json"));
        assert!(matches!(snapshots, VerifyJob::Snapshots { .. }));
        let restore_tests = job(include_str!("../../../events/verify-restore-tests.json"));
        assert!(matches!(restore_tests, VerifyJob::RestoreTests { .. }));
        let bad = VerifyJob::from_event(serde_json::json!({"mode": "thorough"})).unwrap_err();
        assert_eq!(bad.error_type(), "Lifeboat.BadEvent");
    }
}
