//! The checks of a snapshot, pure (no AWS, no clock): what RDS showed of it
//! in its region and each copy region ([`Observed`]) against its record and
//! the plan ([`check_snapshot`]: status, encryption, the copy and its key),
//! and the newest snapshot's age against the plan's RPO ([`check_rpo`]); each
//! problem a [`SnapshotProblem`] of a [`ProblemKind`].

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::plan::{duration_words, Plan};
use crate::snapshot::{CopyStatus, SnapshotHistory, SnapshotState};

/// What went wrong with a snapshot, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// RDS has no such snapshot (in the source or a copy region).
    Missing,
    /// RDS reports a status other than `available`.
    NotAvailable,
    /// The snapshot is not encrypted.
    NotEncrypted,
    /// Encrypted with another key than the plan's for that region.
    WrongKey,
    /// The catalog has no completed copy for a copy region.
    CopyNotCompleted,
    /// The newest completed snapshot is older than the plan's RPO.
    RpoExceeded,
    /// The restore test failed (restore, wait, or a SQL assertion).
    RestoreTestFailed,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::NotAvailable => "not_available",
            Self::NotEncrypted => "not_encrypted",
            Self::WrongKey => "wrong_key",
            Self::CopyNotCompleted => "copy_not_completed",
            Self::RpoExceeded => "rpo_exceeded",
            Self::RestoreTestFailed => "restore_test_failed",
        }
    }
}

/// One problem: where, what, in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotProblem {
    pub region: String,
    pub kind: ProblemKind,
    pub detail: String,
}

/// A restore test's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreTestOutcome {
    /// The temporary instance.
    pub instance: String,
    pub passed: bool,
    /// From the restore request until the instance answered `available`
    /// (the RTO sample), when it got that far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_seconds: Option<f64>,
    /// The checks' results, when they ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<crate::validate::ValidationReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether the temporary instance was deleted afterwards.
    pub cleaned_up: bool,
}

/// What RDS showed for one snapshot: per region, its state (`None`: no
/// such snapshot there), and the ARN each copy region's key resolves to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub states: BTreeMap<String, Option<SnapshotState>>,
    /// Copy region → the plan's key for it, as an ARN (or as written, when
    /// KMS could not resolve it).
    pub expected_keys: BTreeMap<String, String>,
}

/// Two KMS key names for the same key: equal, or one an ARN ending in the
/// other's `key/ID`.
fn same_key(a: &str, b: &str) -> bool {
    let id = |k: &str| k.rsplit_once(":key/").map_or(k, |(_, id)| id).to_owned();
    a == b || (!a.starts_with("alias/") && !b.starts_with("alias/") && id(a) == id(b))
}

/// The problems RDS shows with one snapshot (or copy) in `region`: absent,
/// not available, not encrypted, or (`expected_key`) another key.
fn check_state(
    observed: &Observed,
    snapshot_id: &str,
    region: &str,
    expected_key: Option<&str>,
    what: &str,
) -> Vec<SnapshotProblem> {
    let problem = |kind, detail: String| SnapshotProblem {
        region: region.to_owned(),
        kind,
        detail,
    };
    let Some(state) = observed.states.get(region).cloned().flatten() else {
        return vec![problem(
            ProblemKind::Missing,
            format!("{what} {snapshot_id} does not exist in {region}"),
        )];
    };
    let mut problems = Vec::new();
    if state.status != "available" {
        problems.push(problem(
            ProblemKind::NotAvailable,
            format!("{what} {snapshot_id} is {:?} in {region}, not available", state.status),
        ));
    }
    match (&state.kms_key_id, expected_key) {
        (None, _) => problems.push(problem(
            ProblemKind::NotEncrypted,
            format!("{what} {snapshot_id} in {region} is not encrypted"),
        )),
        (Some(actual), Some(expected)) if !same_key(actual, expected) => problems.push(problem(
            ProblemKind::WrongKey,
            format!("{what} {snapshot_id} in {region} is encrypted with {actual}, not the plan's key {expected}"),
        )),
        _ => {}
    }
    problems
}

/// The problems with one completed snapshot: its state in its region and
/// in each of the plan's copy regions (catalog copy record and RDS).
pub fn check_snapshot(history: &SnapshotHistory, plan: &Plan, observed: &Observed) -> Vec<SnapshotProblem> {
    let snapshot = &history.snapshot;
    let mut problems = check_state(observed, &snapshot.snapshot_id, &snapshot.region, None, "snapshot");
    for copy_region in &plan.copy_regions {
        let region = copy_region.region.as_str();
        let copy = history.copy_in(region);
        match copy.map(|c| c.status) {
            Some(CopyStatus::Completed) => {}
            status => {
                let detail = match (status, copy.and_then(|c| c.error.as_deref())) {
                    (Some(CopyStatus::Failed), Some(error)) => format!("the copy to {region} failed: {error}"),
                    (Some(status), _) => format!("the copy to {region} is {}", status.as_str()),
                    (None, _) => format!("no copy to {region} is recorded"),
                };
                problems.push(SnapshotProblem {
                    region: region.to_owned(),
                    kind: ProblemKind::CopyNotCompleted,
                    detail,
                });
            }
        }
        let expected = observed
            .expected_keys
            .get(region)
            .map_or(copy_region.kms_key.as_str(), String::as_str);
        let copy_id = copy.map_or(snapshot.snapshot_id.as_str(), |c| c.snapshot_id.as_str());
        problems.extend(check_state(observed, copy_id, region, Some(expected), "the copy"));
    }
    problems
}

/// Whether a resource's newest completed snapshot is within the plan's
/// RPO at `now`: a problem naming its age if not.
pub fn check_rpo(newest: &SnapshotHistory, plan: &Plan, now: Timestamp) -> Option<SnapshotProblem> {
    let taken: Timestamp = newest.snapshot.scheduled_time.parse().ok()?;
    let age = now.duration_since(taken);
    (age > plan.rpo).then(|| SnapshotProblem {
        region: newest.snapshot.region.clone(),
        kind: ProblemKind::RpoExceeded,
        detail: format!(
            "the newest completed snapshot {} is {} old, over the plan's RPO of {}",
            newest.snapshot.snapshot_id,
            duration_words(age.max(SignedDuration::ZERO)),
            duration_words(plan.rpo)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::parse_plans;
    use crate::snapshot::{CopyRecord, ResourceKind, SnapshotRecord, SnapshotStatus};

    const DR_KEY: &str = "arn:aws:kms:us-west-2:111122223333:key/dr-key";

    fn plan() -> Plan {
        let text = format!(
            r#"[[plan]]
name = "db-nightly"
schedule = "cron(0 2 * * ? *)"
resources = ["orders"]
copy_regions = [{{ region = "us-west-2", kms_key = "{DR_KEY}" }}]
retention = {{ keep_days = 7 }}
rpo = "26h"
tier = "critical"
"#
        );
        parse_plans(&text, "2026-11-23T00:00:00Z".parse().unwrap())
            .unwrap()
            .remove(0)
    }

    fn history(copy: Option<CopyStatus>) -> SnapshotHistory {
        let snapshot = SnapshotRecord {
            plan: "db-nightly".into(),
            resource: "arn:aws:rds:eu-central-1:111122223333:db:orders".into(),
            resource_id: "orders".into(),
            resource_kind: ResourceKind::DbInstance,
            region: "eu-central-1".into(),
            scheduled_time: "2026-11-23T02:00:00Z".into(),
            snapshot_id: "lifeboat-db-nightly-orders-20261123-0200".into(),
            snapshot_arn: None,
            status: SnapshotStatus::Completed,
            created_at: "2026-11-23T02:00:01.000Z".into(),
            completed_at: Some("2026-11-23T02:10:00.000Z".into()),
            retention_until: None,
            engine: Some("postgres".into()),
            error: None,
            failed_at: None,
        };
        let copies = copy
            .map(|status| CopyRecord {
                plan: snapshot.plan.clone(),
                resource: snapshot.resource.clone(),
                resource_kind: ResourceKind::DbInstance,
                scheduled_time: snapshot.scheduled_time.clone(),
                source_snapshot_arn: "arn:source".into(),
                region: "us-west-2".into(),
                kms_key_id: DR_KEY.into(),
                snapshot_id: snapshot.snapshot_id.clone(),
                snapshot_arn: None,
                status,
                queued_at: "2026-11-23T02:10:00.000Z".into(),
                started_at: None,
                completed_at: None,
                attempts: 1,
                next_attempt_at: None,
                error: (status == CopyStatus::Failed).then(|| "KMSKeyNotAccessibleFault: disabled".to_owned()),
                failed_at: None,
            })
            .into_iter()
            .collect();
        SnapshotHistory { snapshot, copies }
    }

    fn state(status: &str, key: Option<&str>) -> Option<SnapshotState> {
        Some(SnapshotState {
            status: status.into(),
            arn: None,
            kms_key_id: key.map(str::to_owned),
            ..SnapshotState::default()
        })
    }

    fn observed(source: Option<SnapshotState>, copy: Option<SnapshotState>) -> Observed {
        Observed {
            states: [("eu-central-1".to_owned(), source), ("us-west-2".to_owned(), copy)].into(),
            expected_keys: [("us-west-2".to_owned(), DR_KEY.to_owned())].into(),
        }
    }

    fn kinds(problems: &[SnapshotProblem]) -> Vec<(&str, ProblemKind)> {
        problems.iter().map(|p| (p.region.as_str(), p.kind)).collect()
    }

    #[test]
    fn a_healthy_snapshot_and_copy_pass() {
        let seen = observed(state("available", Some("k1")), state("available", Some("dr-key")));
        assert_eq!(
            check_snapshot(&history(Some(CopyStatus::Completed)), &plan(), &seen),
            vec![]
        );
    }

    #[test]
    fn each_problem_is_named_with_its_region() {
        type Case<'a> = (Option<CopyStatus>, Observed, Vec<(&'a str, ProblemKind)>);
        let cases: Vec<Case> = vec![
            (
                Some(CopyStatus::Completed),
                observed(state("available", Some("k1")), None),
                vec![("us-west-2", ProblemKind::Missing)],
            ),
            (
                Some(CopyStatus::Completed),
                observed(
                    state("available", Some("k1")),
                    state("available", Some("arn:aws:kms:us-west-2:1:key/other")),
                ),
                vec![("us-west-2", ProblemKind::WrongKey)],
            ),
            (
                Some(CopyStatus::Completed),
                observed(state("creating", None), state("available", Some(DR_KEY))),
                vec![
                    ("eu-central-1", ProblemKind::NotAvailable),
                    ("eu-central-1", ProblemKind::NotEncrypted),
                ],
            ),
            (
                Some(CopyStatus::Failed),
                observed(state("available", Some("k1")), None),
                vec![
                    ("us-west-2", ProblemKind::CopyNotCompleted),
                    ("us-west-2", ProblemKind::Missing),
                ],
            ),
            (
                None,
                observed(None, state("available", Some(DR_KEY))),
                vec![
                    ("eu-central-1", ProblemKind::Missing),
                    ("us-west-2", ProblemKind::CopyNotCompleted),
                ],
            ),
        ];
        for (copy, seen, expected) in cases {
            let problems = check_snapshot(&history(copy), &plan(), &seen);
            assert_eq!(kinds(&problems), expected, "{problems:?}");
        }
    }

    #[test]
    fn a_failed_copy_names_the_aws_error() {
        let seen = observed(state("available", Some("k1")), None);
        let problems = check_snapshot(&history(Some(CopyStatus::Failed)), &plan(), &seen);
        assert!(problems[0].detail.contains("KMSKeyNotAccessibleFault"), "{problems:?}");
    }

    #[test]
    fn rpo_is_measured_from_the_scheduled_time() {
        let h = history(Some(CopyStatus::Completed));
        assert_eq!(check_rpo(&h, &plan(), "2026-11-24T03:59:00Z".parse().unwrap()), None);
        let late = check_rpo(&h, &plan(), "2026-11-24T04:01:00Z".parse().unwrap()).unwrap();
        assert_eq!(late.kind, ProblemKind::RpoExceeded);
        assert!(late.detail.contains("RPO"), "{}", late.detail);
    }

    #[test]
    fn keys_compare_by_id_or_arn() {
        assert!(same_key(DR_KEY, "dr-key"));
        assert!(same_key(DR_KEY, DR_KEY));
        assert!(!same_key(DR_KEY, "arn:aws:kms:us-west-2:111122223333:key/other"));
        assert!(!same_key("alias/dr", "dr"));
    }
}
