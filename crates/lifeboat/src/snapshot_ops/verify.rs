//! Snapshot verification: what RDS holds, checked against the record and
//! the plan. [`check_snapshot`] is pure; [`run_snapshot_verify`] reads RDS
//! in each region and records the result.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::restore_test::{run_restore_test, RestoreTestOptions};
use super::scheduled::{RestoreTestState, TestPhase};
use super::{
    moment, newest_completed, ProblemKind, SnapshotChecks, SnapshotOpsError, SnapshotProblem, SnapshotVerification,
};
use crate::plan::{duration_words, Plan};
use crate::rds::Rds;
use crate::snapshot::{CopyStatus, SnapshotHistory, SnapshotState};

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

/// What to verify.
#[derive(Clone, Debug)]
pub struct SnapshotVerifyOptions {
    /// The plans whose snapshots are verified (the newest completed one of
    /// each resource).
    pub plans: Vec<Plan>,
    /// Also restore-test each newest snapshot (DB instances).
    pub restore_test: Option<RestoreTestOptions>,
    pub now: Timestamp,
}

/// What a verify run found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotVerifyReport {
    pub verifications: Vec<SnapshotVerification>,
}

impl SnapshotVerifyReport {
    pub fn ok(&self) -> bool {
        self.verifications.iter().all(SnapshotVerification::passed)
    }
}

/// Verifies the newest completed snapshot of every resource of the plans
/// (and restore-tests it when asked), recording each result.
pub async fn run_snapshot_verify(
    aws: &Rds,
    checks: &SnapshotChecks,
    options: &SnapshotVerifyOptions,
) -> Result<SnapshotVerifyReport, SnapshotOpsError> {
    let histories = checks.histories(&options.plans).await?;
    // A scheduled restore test's instance that could not be deleted stays a
    // problem of its resource until it is gone (`super::scheduled`).
    let undeleted: Vec<RestoreTestState> = checks
        .restore_test_states()
        .await?
        .into_iter()
        .filter(|s| s.phase == TestPhase::Deleting && s.delete_error.is_some())
        .collect();
    let mut report = SnapshotVerifyReport::default();
    for history in newest_completed(&histories) {
        let Some(plan) = options.plans.iter().find(|p| p.name == history.snapshot.plan) else {
            continue;
        };
        let started_at = moment(Timestamp::now());
        let observed = observe(aws, history, plan).await?;
        let mut problems = check_snapshot(history, plan, &observed);
        problems.extend(check_rpo(history, plan, options.now));
        for state in undeleted.iter().filter(|s| s.resource == history.snapshot.resource) {
            problems.push(SnapshotProblem {
                region: state.snapshot.as_ref().map_or_else(String::new, |s| s.region.clone()),
                kind: ProblemKind::RestoreTestFailed,
                detail: format!(
                    "the restore test's temporary instance {} is not deleted ({}): the verify function's restore test runs try again; delete it by hand if this stays",
                    state.instance.as_deref().unwrap_or("?"),
                    state.delete_error.as_deref().unwrap_or_default()
                ),
            });
        }
        let regions = observed.states.keys().cloned().collect();
        let mut verification =
            SnapshotVerification::new(&history.snapshot, regions, problems, started_at, String::new());
        if let Some(test) = &options.restore_test {
            let outcome = run_restore_test(aws, history, test).await;
            verification.restore_test_passed = Some(outcome.passed);
            verification.rto_seconds = outcome.restore_seconds;
            if !outcome.passed {
                let mut problems = verification.problems.clone();
                problems.push(SnapshotProblem {
                    region: history.snapshot.region.clone(),
                    kind: ProblemKind::RestoreTestFailed,
                    detail: outcome
                        .error
                        .clone()
                        .unwrap_or_else(|| "the restore test failed".to_owned()),
                });
                verification.set_problems(problems);
            }
            verification.restore_test = Some(outcome);
        }
        verification.completed_at = moment(Timestamp::now());
        checks.record(&verification).await?;
        tracing::info!(
            plan = %plan.name,
            snapshot = %verification.snapshot_id,
            passed = verification.passed(),
            problems = verification.problems.len(),
            "snapshot verified"
        );
        report.verifications.push(verification);
    }
    Ok(report)
}

/// Reads the snapshot in its region and each copy region, and resolves the
/// plan's copy keys.
pub(super) async fn observe(aws: &Rds, history: &SnapshotHistory, plan: &Plan) -> Result<Observed, SnapshotOpsError> {
    let snapshot = &history.snapshot;
    let rds_failed = |region: &str, error| SnapshotOpsError::Rds {
        action: format!("describing snapshot {}", snapshot.snapshot_id),
        region: region.to_owned(),
        error,
    };
    let mut observed = Observed::default();
    let state = aws
        .in_region(&snapshot.region)
        .snapshot(snapshot.resource_kind, &snapshot.snapshot_id)
        .await
        .map_err(|e| rds_failed(&snapshot.region, e))?;
    observed.states.insert(snapshot.region.clone(), state);
    for copy_region in &plan.copy_regions {
        let region = copy_region.region.as_str();
        let id = history
            .copy_in(region)
            .map_or(snapshot.snapshot_id.as_str(), |c| c.snapshot_id.as_str());
        let state = aws
            .in_region(region)
            .snapshot(snapshot.resource_kind, id)
            .await
            .map_err(|e| rds_failed(region, e))?;
        observed.states.insert(region.to_owned(), state);
        // A key KMS cannot describe is compared as written (and then fails
        // the check if RDS names it otherwise).
        let key = match aws.key(region, &copy_region.kms_key).await {
            Ok((arn, _, _)) => arn,
            Err(error) => {
                tracing::warn!(region, key = %copy_region.kms_key, error = %error, "describing the plan's copy key failed");
                copy_region.kms_key.clone()
            }
        };
        observed.expected_keys.insert(region.to_owned(), key);
    }
    Ok(observed)
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
