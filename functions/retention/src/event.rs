//! The requests the function takes (the scheduled event's `detail`, or the
//! direct payload; see `events/retention-*.json`), and the job each asks for.

use lifeboat::retention::RetentionPolicy;
use lifeboat_lambda::{parse_request, Failure, Request};
use serde::Deserialize;

use crate::files::FileRetention;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RetentionRequest {
    #[serde(default)]
    store: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    policy: Option<RetentionPolicy>,
    #[serde(default)]
    dry_run: bool,
    /// Apply the plans' retention to their RDS snapshots instead.
    #[serde(default)]
    snapshots: bool,
    /// With `snapshots`: only these plans.
    #[serde(default)]
    plans: Vec<String>,
    #[serde(default = "yes")]
    collect_garbage: bool,
    #[serde(default)]
    grace_minutes: Option<u32>,
}

fn yes() -> bool {
    true
}

/// What a request asks the function to do.
#[derive(Debug)]
pub enum RetentionJob {
    /// Apply each plan's retention to its RDS snapshots.
    Snapshots { plans: Vec<String>, dry_run: bool },
    /// Expire the store's file backups, then collect the garbage.
    Files {
        store: Option<String>,
        retention: FileRetention,
    },
}

impl RetentionJob {
    pub fn from_event(payload: serde_json::Value) -> Result<Self, Failure> {
        let Request { body, .. } =
            parse_request::<RetentionRequest>(payload, "events/retention-scheduled.json").map_err(Failure::BadEvent)?;
        if body.snapshots {
            return Ok(Self::Snapshots {
                plans: body.plans,
                dry_run: body.dry_run,
            });
        }
        let policy = body
            .policy
            .ok_or_else(|| Failure::BadEvent("field \"policy\" is missing: give the retention policy".to_owned()))?;
        if !policy.has_rules() {
            return Err(Failure::BadEvent(
                "the policy has no rule: give at least one of keepLast, daily, weekly, monthly, yearly, keepDays"
                    .to_owned(),
            ));
        }
        policy.validate().map_err(|e| Failure::BadEvent(e.to_string()))?;
        let max_minutes = lifeboat::times::MAX_DAYS * 24 * 60;
        if let Some(minutes) = body.grace_minutes.filter(|m| *m > max_minutes) {
            return Err(Failure::BadEvent(format!(
                "graceMinutes is {minutes}, more than the maximum {max_minutes} (100 years)"
            )));
        }
        Ok(Self::Files {
            store: body.store,
            retention: FileRetention {
                source: body.source,
                policy,
                dry_run: body.dry_run,
                collect_garbage: body.collect_garbage,
                grace_minutes: body.grace_minutes,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_grace_is_refused_instead_of_overflowing_the_sweep_time() {
        let event =
            |minutes: u32| serde_json::json!({"store": "s3://b/p", "policy": {"keepLast": 1}, "graceMinutes": minutes});
        let Err(Failure::BadEvent(message)) = RetentionJob::from_event(event(u32::MAX)) else {
            panic!("a grace of u32::MAX minutes was accepted");
        };
        assert!(
            message.contains("4294967295, more than the maximum 52560000"),
            "{message}"
        );
        assert!(RetentionJob::from_event(event(52_560_000)).is_ok());
    }

    #[test]
    fn the_samples_ask_for_their_jobs() {
        assert!(matches!(
            RetentionJob::from_event(
                serde_json::from_str(include_str!("../../../events/retention-scheduled.json")).unwrap()
            )
            .unwrap(),
            RetentionJob::Files {
                retention: FileRetention {
                    collect_garbage: true,
                    grace_minutes: Some(60),
                    ..
                },
                ..
            }
        ));
        assert!(matches!(
            RetentionJob::from_event(
                serde_json::from_str(include_str!("../../../events/retention-snapshots.json")).unwrap()
            )
            .unwrap(),
            RetentionJob::Snapshots { dry_run: false, .. }
        ));
        let bad = RetentionJob::from_event(serde_json::json!({"store": "s3://b/s"})).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "field \"policy\" is missing: give the retention policy"
        );
    }
}
