//! Scheduled restore tests: the plans' `[plan.restore_test]`, as a
//! resumable state machine recorded in the catalog, so a test longer than
//! one Lambda invocation carries on in the next one.
//!
//! One state item per resource (`pk = restore-test`, `sk = state#RESOURCE`,
//! one partition so one query reads them all; a [`RestoreTestState`] with a `version` every write is conditional on):
//!
//! - `idle`: no test running; `lastFinishedAt` says when the last ended. A
//!   test starts when that is longer ago than the plan's `every` (or never
//!   was): the start is claimed by writing `restoring` on the version read
//!   (or on the item's absence), so two invocations never start two tests;
//!   then the newest completed snapshot is restored to `lifeboat-rt-…`,
//!   tagged [`TAG_RESTORE_TEST`](crate::snapshot::trial_restore::TAG_RESTORE_TEST).
//! - `restoring`: each run describes the instance; `available` runs the
//!   plan's checks (the RTO sample is from the restore request to the first
//!   poll that saw it available: runs poll inside the invocation while its
//!   deadline leaves time, so the sample is as precise as the poll
//!   interval); a terminal status, a refused restore or the plan's
//!   `timeout` fails the test. Either way it moves to `deleting`.
//! - `deleting`: the instance is deleted (no final snapshot), the outcome
//!   is recorded as the snapshot's verification (`restoreTestPassed`, the
//!   RTO, the checks' results, and the snapshot checks of
//!   `super::verify`), and the state returns to `idle`. A delete that fails
//!   stays `deleting`, is retried on every later run, and the recorded
//!   verification fails naming the instance until it is gone.
//!
//! Each run first lists the tagged instances ([`TAG_RESTORE_TEST`](crate::snapshot::trial_restore::TAG_RESTORE_TEST) and
//! [`TAG_SCHEDULED`]), then reads the states: such an instance no
//! `restoring`/`deleting` state names is an orphan (a state lost, a crash
//! between restore and record) and is deleted.
//!
//! The verify function runs one [`run_restore_tests`] per scheduled
//! invocation (`{"restoreTests": true}`); `lifeboat snapshots verify
//! --restore-tests` runs the same to completion.

pub mod env;
pub mod state;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

pub use env::{RdsRestoreTests, RestoreTestEnv, RestoreTestStore, TAG_SCHEDULED};
pub use state::{RestoreTestState, TestPhase};

use super::checks::{check_rpo, check_snapshot, ProblemKind, RestoreTestOutcome, SnapshotProblem};
use super::error::SnapshotOpsError;
use super::records::{newest_completed, SnapshotHistory, SnapshotRecord};
use super::trial_restore::restore_test_instance;
use super::verifications::SnapshotVerification;
use crate::plan::{Plan, RestoreTestPlan};
use crate::rds::wait::{phase, Phase};
use crate::rds::ResourceKind;
use crate::times;

/// What one run does.
#[derive(Clone, Debug)]
pub struct RestoreTestsOptions {
    /// The plans; those without `[plan.restore_test]` are left alone.
    pub plans: Vec<Plan>,
    /// Stop polling once another poll would end after this (a Lambda
    /// invocation's deadline less a margin); `None`: until every test ends.
    pub until: Option<Timestamp>,
    pub poll_interval: Duration,
}

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreTestsReport {
    /// Temporary instances this run restored.
    pub started: Vec<String>,
    /// Tests that ended in this run, as recorded.
    pub finished: Vec<SnapshotVerification>,
    /// Tests still restoring when the run stopped (the next run resumes them).
    pub in_progress: Vec<String>,
    /// Temporary instances whose delete failed (retried on the next run).
    pub cleanup_failed: Vec<String>,
    /// Tagged instances no test owned, deleted.
    pub orphans_deleted: Vec<String>,
    /// Snapshots not tested, and why.
    pub skipped: Vec<String>,
}

impl RestoreTestsReport {
    pub fn ok(&self) -> bool {
        self.cleanup_failed.is_empty() && self.finished.iter().all(SnapshotVerification::passed)
    }
}

/// Whether `plan`'s test of a resource whose state is `state` is due at `now`.
pub fn due(state: Option<&RestoreTestState>, test: &RestoreTestPlan, now: Timestamp) -> bool {
    let Some(state) = state else { return true };
    if state.active() {
        return false;
    }
    match state.last_finished_at.as_deref().map(str::parse::<Timestamp>) {
        Some(Ok(last)) => now.duration_since(last) >= test.every,
        _ => true,
    }
}

/// One run: sweeps orphans, starts the tests that are due, and advances
/// every test in progress, polling while `options.until` leaves time.
pub async fn run_restore_tests<E: RestoreTestEnv + Sync, S: RestoreTestStore + Sync>(
    env: &E,
    store: &S,
    options: &RestoreTestsOptions,
) -> Result<RestoreTestsReport, SnapshotOpsError> {
    let plans: Vec<Plan> = options
        .plans
        .iter()
        .filter(|p| p.restore_test.is_some())
        .cloned()
        .collect();
    let mut report = RestoreTestsReport::default();
    let histories = store.histories(&plans).await?;
    let newest: Vec<&SnapshotHistory> = newest_completed(&histories);

    // Instances first, states second: an instance listed was restored after
    // its state was written, so the states read next name it.
    let mut regions: BTreeSet<String> = newest.iter().map(|h| h.snapshot.region.clone()).collect();
    let mut tagged = Vec::new();
    let states_before = store.states().await?;
    regions.extend(states_before.iter().filter_map(|s| s.region().map(str::to_owned)));
    for region in &regions {
        let listed = env
            .tagged_instances(region)
            .await
            .map_err(|error| SnapshotOpsError::Rds {
                action: "listing restore test instances".into(),
                region: region.clone(),
                error,
            })?;
        tagged.extend(listed.into_iter().map(|(id, status)| (region.clone(), id, status)));
    }
    let mut states: BTreeMap<String, RestoreTestState> = store
        .states()
        .await?
        .into_iter()
        .map(|s| (s.resource.clone(), s))
        .collect();
    let owned: BTreeSet<(&str, &str)> = states
        .values()
        .filter(|s| s.active())
        .filter_map(|s| Some((s.region()?, s.instance.as_deref()?)))
        .collect();
    sweep_orphans(env, &owned, &tagged, &mut report).await;

    for history in newest {
        let snapshot = &history.snapshot;
        let Some(plan) = plans.iter().find(|p| p.name == snapshot.plan) else {
            continue;
        };
        let Some(test) = &plan.restore_test else { continue };
        if snapshot.resource_kind == ResourceKind::Cluster {
            report.skipped.push(format!(
                "{} (plan {}): an Aurora cluster snapshot; restore tests restore DB instance snapshots",
                snapshot.snapshot_id, plan.name
            ));
            continue;
        }
        let current = states.get(&snapshot.resource);
        if !due(current, test, env.now()) {
            continue;
        }
        let instance = restore_test_instance(&snapshot.resource_id, &snapshot.scheduled_time);
        let mut claimed = RestoreTestState {
            resource: snapshot.resource.clone(),
            plan: plan.name.clone(),
            phase: TestPhase::Restoring,
            version: current.map_or(1, |s| s.version + 1),
            snapshot: Some(snapshot.clone()),
            instance: Some(instance.clone()),
            restore_started_at: Some(times::format(env.now())),
            outcome: None,
            delete_attempts: 0,
            delete_error: None,
            last_finished_at: current.and_then(|s| s.last_finished_at.clone()),
            last_passed: current.and_then(|s| s.last_passed),
        };
        if !store.save(&claimed, current.map(|s| s.version)).await? {
            tracing::info!(resource = %snapshot.resource, "another run started this restore test");
            continue;
        }
        tracing::info!(snapshot = %snapshot.snapshot_id, instance = %instance, "restore test started");
        if let Err(error) = env.restore(snapshot, &instance, test).await {
            claimed.phase = TestPhase::Deleting;
            claimed.outcome = Some(failed_outcome(
                &instance,
                format!("restoring {} to {instance} failed: {error}", snapshot.snapshot_id),
            ));
            let expected = claimed.version;
            claimed.version += 1;
            if !store.save(&claimed, Some(expected)).await? {
                continue;
            }
        }
        report.started.push(instance);
        states.insert(claimed.resource.clone(), claimed);
    }

    let mut active: Vec<RestoreTestState> = states.into_values().filter(RestoreTestState::active).collect();
    loop {
        let mut waiting = Vec::new();
        for state in active {
            if let Some(state) = step(env, store, &plans, &histories, state, &mut report).await? {
                waiting.push(state);
            }
        }
        active = waiting;
        let out_of_time = options.until.is_some_and(|until| {
            env.now() + SignedDuration::try_from(options.poll_interval).unwrap_or_default() >= until
        });
        if active.is_empty() || out_of_time {
            break;
        }
        tokio::time::sleep(options.poll_interval).await;
    }
    report.in_progress = active.into_iter().filter_map(|s| s.instance).collect();
    Ok(report)
}

/// Deletes the tagged instances (region, id, status) no active test owns.
async fn sweep_orphans<E: RestoreTestEnv + Sync>(
    env: &E,
    owned: &BTreeSet<(&str, &str)>,
    tagged: &[(String, String, String)],
    report: &mut RestoreTestsReport,
) {
    let orphans: Vec<(String, String)> = tagged
        .iter()
        .filter(|(region, id, status)| status != "deleting" && !owned.contains(&(region.as_str(), id.as_str())))
        .map(|(region, id, _)| (region.clone(), id.clone()))
        .collect();
    for (region, id) in orphans {
        match env.delete(&region, &id).await {
            Ok(_) => {
                tracing::warn!(instance = %id, region = %region, "deleted a restore test instance no test owned");
                report.orphans_deleted.push(id);
            }
            Err(error) => {
                tracing::error!(instance = %id, region = %region, error = %error, "deleting an orphaned restore test instance failed");
                report.cleanup_failed.push(format!("{id} ({region}): {error}"));
            }
        }
    }
}

/// A test that has not passed (yet), on `instance`.
fn outcome_on(instance: &str) -> RestoreTestOutcome {
    RestoreTestOutcome {
        instance: instance.to_owned(),
        passed: false,
        restore_seconds: None,
        validation: None,
        error: None,
        cleaned_up: false,
    }
}

fn failed_outcome(instance: &str, error: String) -> RestoreTestOutcome {
    RestoreTestOutcome {
        error: Some(error),
        ..outcome_on(instance)
    }
}

/// Advances one active test as far as it goes now; the state back if it is
/// still restoring (poll again), `None` if it ended, failed to delete (the
/// next run retries), or another run moved it on.
async fn step<E: RestoreTestEnv + Sync, S: RestoreTestStore + Sync>(
    env: &E,
    store: &S,
    plans: &[Plan],
    histories: &[SnapshotHistory],
    mut state: RestoreTestState,
    report: &mut RestoreTestsReport,
) -> Result<Option<RestoreTestState>, SnapshotOpsError> {
    let (Some(snapshot), Some(instance)) = (state.snapshot.clone(), state.instance.clone()) else {
        // Nothing to resume (a state edited by hand, or damaged): back to
        // idle, so the resource is tested again; an instance it had is an
        // orphan the next sweep deletes.
        tracing::error!(resource = %state.resource, phase = ?state.phase, "a restore test state names no snapshot or instance; resetting it");
        report.skipped.push(format!(
            "{}: its restore test state ({:?}) named no snapshot or instance and was reset",
            state.resource, state.phase
        ));
        let expected = state.version;
        state.phase = TestPhase::Idle;
        state.version += 1;
        store.save(&state, Some(expected)).await?;
        return Ok(None);
    };
    let test = plans
        .iter()
        .find(|p| p.name == state.plan)
        .and_then(|p| p.restore_test.clone());
    if state.phase == TestPhase::Restoring {
        let Some(outcome) = restoring_outcome(env, &state, &snapshot, &instance, test.as_ref()).await else {
            return Ok(Some(state));
        };
        state.phase = TestPhase::Deleting;
        state.outcome = Some(outcome);
        let expected = state.version;
        state.version += 1;
        if !store.save(&state, Some(expected)).await? {
            return Ok(None);
        }
    }

    // Deleting.
    let deleted = env.delete(&snapshot.region, &instance).await;
    let mut outcome = state
        .outcome
        .clone()
        .unwrap_or_else(|| failed_outcome(&instance, "the restore test's outcome was lost".into()));
    let history = histories
        .iter()
        .find(|h| h.snapshot.snapshot_id == snapshot.snapshot_id)
        .cloned()
        .unwrap_or_else(|| SnapshotHistory {
            snapshot: snapshot.clone(),
            copies: Vec::new(),
        });
    let plan = plans.iter().find(|p| p.name == state.plan);
    let started_at = state
        .restore_started_at
        .clone()
        .unwrap_or_else(|| times::format(env.now()));
    let expected = state.version;
    state.version += 1;
    let cleanup_problem = match &deleted {
        Ok(_) => {
            outcome.cleaned_up = true;
            None
        }
        Err(error) => {
            tracing::error!(instance = %instance, error = %error, "deleting the restore test's instance failed");
            state.delete_attempts += 1;
            state.delete_error = Some(error.to_string());
            report
                .cleanup_failed
                .push(format!("{instance} ({}): {error}", snapshot.region));
            Some(SnapshotProblem {
                region: snapshot.region.clone(),
                kind: ProblemKind::RestoreTestFailed,
                detail: format!(
                    "the temporary instance {instance} is not deleted ({error}; {} attempt(s)): later runs try again; delete it by hand if this stays",
                    state.delete_attempts
                ),
            })
        }
    };
    let verification = verification(env, &history, plan, outcome, cleanup_problem, started_at).await;
    store.record(&verification).await?;
    if deleted.is_ok() {
        state.phase = TestPhase::Idle;
        state.instance = None;
        state.outcome = None;
        state.delete_error = None;
        state.delete_attempts = 0;
        state.last_finished_at = Some(times::format(env.now()));
        state.last_passed = Some(verification.restore_test_passed == Some(true));
        tracing::info!(instance = %instance, passed = verification.passed(), rto = ?verification.rto_seconds, "restore test done");
        report.finished.push(verification);
    }
    store.save(&state, Some(expected)).await?;
    Ok(None)
}

/// A restoring test's instance looked at: the outcome once it is ready
/// (the checks run), failed, or out of time; `None` while it is worth
/// polling again.
async fn restoring_outcome<E: RestoreTestEnv + Sync>(
    env: &E,
    state: &RestoreTestState,
    snapshot: &SnapshotRecord,
    instance: &str,
    test: Option<&RestoreTestPlan>,
) -> Option<RestoreTestOutcome> {
    let started: Option<Timestamp> = state.restore_started_at.as_deref().and_then(|t| t.parse().ok());
    let waited = started.map(|s| env.now().duration_since(s));
    let timeout = test.map_or(crate::plan::RESTORE_TEST_TIMEOUT, |t| t.timeout);
    let outcome = match env.status(&snapshot.region, instance).await {
        Err(error) if error.is_retryable() && waited.is_none_or(|w| w < timeout) => {
            tracing::warn!(instance = %instance, error = %error, "describing the restore test's instance failed; trying again");
            return None;
        }
        Err(error) => failed_outcome(instance, format!("describing {instance} failed: {error}")),
        Ok(seen) => {
            let (status, endpoint) = seen.unwrap_or_default();
            match phase(&status) {
                Phase::Ready => {
                    let mut outcome = outcome_on(instance);
                    outcome.restore_seconds = waited.map(|w| w.as_secs_f64().max(0.0));
                    match test {
                        None => {
                            outcome.error = Some(format!(
                                "plan {} no longer asks for restore tests: no checks to run",
                                state.plan
                            ))
                        }
                        Some(test) => {
                            let url = match &endpoint {
                                Some((host, port)) => test.checks.url_for(host, *port),
                                None => test.checks.url.clone(),
                            };
                            match env.run_checks(&url, &test.checks).await {
                                Ok(checked) => {
                                    outcome.passed = checked.passed();
                                    outcome.error = checked.failure_message();
                                    outcome.validation = Some(checked);
                                }
                                Err(error) => outcome.error = Some(error.to_string()),
                            }
                        }
                    }
                    outcome
                }
                Phase::Failed => failed_outcome(instance, format!("{instance} ended {status:?} instead of available")),
                Phase::Waiting if waited.is_some_and(|w| w >= timeout) => failed_outcome(
                    instance,
                    format!(
                        "{instance} was still {status:?} after {} s (the plan's restore_test.timeout)",
                        timeout.as_secs()
                    ),
                ),
                Phase::Waiting => return None,
            }
        }
    };
    Some(outcome)
}

/// The snapshot's verification with this restore test's outcome: the
/// snapshot checks of `super::verify` (when RDS could be read), the test,
/// and a temporary instance not yet deleted.
async fn verification<E: RestoreTestEnv + Sync>(
    env: &E,
    history: &SnapshotHistory,
    plan: Option<&Plan>,
    outcome: RestoreTestOutcome,
    cleanup_problem: Option<SnapshotProblem>,
    started_at: String,
) -> SnapshotVerification {
    let snapshot = &history.snapshot;
    let mut problems = Vec::new();
    let mut regions = vec![snapshot.region.clone()];
    if let Some(plan) = plan {
        match env.observe(history, plan).await {
            Ok(observed) => {
                problems = check_snapshot(history, plan, &observed);
                problems.extend(check_rpo(history, plan, env.now()));
                regions = observed.states.keys().cloned().collect();
            }
            Err(error) => {
                tracing::warn!(snapshot = %snapshot.snapshot_id, error = %error, "reading the snapshot for its verification failed; recording the restore test alone");
            }
        }
    }
    let passed = outcome.passed && cleanup_problem.is_none();
    if !outcome.passed {
        problems.push(SnapshotProblem {
            region: snapshot.region.clone(),
            kind: ProblemKind::RestoreTestFailed,
            detail: outcome
                .error
                .clone()
                .unwrap_or_else(|| "the restore test failed".to_owned()),
        });
    }
    problems.extend(cleanup_problem);
    let mut verification = SnapshotVerification::new(snapshot, regions, problems, started_at, times::format(env.now()));
    verification.restore_test_passed = Some(passed);
    verification.rto_seconds = outcome.restore_seconds;
    verification.restore_test = Some(outcome);
    verification
}

#[cfg(test)]
mod tests;
