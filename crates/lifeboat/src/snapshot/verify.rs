//! Running snapshot verification: the newest completed snapshot of each
//! resource of the plans, read in RDS in its region and every copy region
//! (`super::observe`), checked (`super::checks`), optionally restore-tested
//! (`super::trial_restore`), and recorded in the catalog as a
//! [`SnapshotVerification`].

use jiff::Timestamp;
use serde::Serialize;

use super::checks::{check_rpo, check_snapshot, ProblemKind, SnapshotProblem};
use super::error::SnapshotOpsError;
use super::observe::observe;
use super::records::newest_completed;
use super::restore_tests::state::{RestoreTestState, TestPhase};
use super::trial_restore::{run_restore_test, RestoreTestOptions};
use super::verifications::{SnapshotChecks, SnapshotVerification};
use crate::plan::Plan;
use crate::rds::Rds;
use crate::times;

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
    // problem of its resource until it is gone (`super::restore_tests`).
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
        let started_at = times::now_text();
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
        verification.completed_at = times::now_text();
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
