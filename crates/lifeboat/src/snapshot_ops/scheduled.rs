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
//!   tagged [`TAG_RESTORE_TEST`].
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
//! Each run first lists the tagged instances ([`TAG_RESTORE_TEST`] and
//! [`TAG_SCHEDULED`]), then reads the states: such an instance no
//! `restoring`/`deleting` state names is an orphan (a state lost, a crash
//! between restore and record) and is deleted.
//!
//! The verify function runs one [`run_restore_tests`] per scheduled
//! invocation (`{"restoreTests": true}`); `lifeboat snapshots verify
//! --restore-tests` runs the same to completion.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::restore_test::{restore_test_instance, TAG_RESTORE_TEST};

/// The tag a scheduled restore test's instance carries besides
/// [`TAG_RESTORE_TEST`] (the plan): the orphan sweep deletes only instances
/// with both, never one an operator's `lifeboat snapshots verify
/// --restore-test CHECKS` is using.
pub const TAG_SCHEDULED: &str = "lifeboat:restore-test-plan";
use super::verify::{check_rpo, check_snapshot, observe, Observed};
use super::{
    moment, newest_completed, InstanceState, ProblemKind, RestoreTestOutcome, SnapshotChecks, SnapshotOpsError,
    SnapshotProblem, SnapshotVerification,
};
use crate::catalog::CatalogError;
use crate::plan::{Plan, RestoreTestPlan};
use crate::rds::wait::{phase, Phase};
use crate::rds::{Rds, RestoreRequest};
use crate::snapshot::{RdsError, ResourceKind, SnapshotHistory, SnapshotRecord};
use crate::validate::{self, Checks, ValidateError, ValidationReport};

const STATE_PK: &str = "restore-test";
const STATE_SK_PREFIX: &str = "state#";

/// Where a resource's restore test is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestPhase {
    Idle,
    Restoring,
    Deleting,
}

/// One resource's restore test, as the catalog holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreTestState {
    pub resource: String,
    /// The plan whose test this is (or was, when idle).
    pub plan: String,
    pub phase: TestPhase,
    /// Incremented by every write; each write is conditional on the last.
    pub version: u64,
    /// The snapshot under test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotRecord>,
    /// The temporary instance (restoring, deleting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// When the restore was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_started_at: Option<String>,
    /// The outcome so far (deleting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<RestoreTestOutcome>,
    #[serde(default)]
    pub delete_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_passed: Option<bool>,
}

impl RestoreTestState {
    fn active(&self) -> bool {
        self.phase != TestPhase::Idle
    }

    /// The test's region: the snapshot's.
    fn region(&self) -> Option<&str> {
        self.snapshot.as_ref().map(|s| s.region.as_str())
    }
}

/// Everything outside the state machine: RDS, the checks' databases, the
/// snapshot checks and the clock. [`RdsRestoreTests`] in production,
/// scripts in the unit tests.
pub trait RestoreTestEnv {
    fn now(&self) -> Timestamp;
    fn restore(
        &self,
        snapshot: &SnapshotRecord,
        instance: &str,
        test: &RestoreTestPlan,
    ) -> impl Future<Output = Result<(), RdsError>> + Send;
    /// The instance's status and endpoint; `None` if it does not exist.
    fn status(
        &self,
        region: &str,
        instance: &str,
    ) -> impl Future<Output = Result<Option<InstanceState>, RdsError>> + Send;
    /// Deletes the instance without a final snapshot; `false` if it was gone.
    fn delete(&self, region: &str, instance: &str) -> impl Future<Output = Result<bool, RdsError>> + Send;
    /// The instances of `region` tagged [`TAG_RESTORE_TEST`] and
    /// [`TAG_SCHEDULED`]: (identifier, status).
    fn tagged_instances(&self, region: &str) -> impl Future<Output = Result<Vec<(String, String)>, RdsError>> + Send;
    /// The snapshot in its region and copy regions (`super::verify`).
    fn observe(
        &self,
        history: &SnapshotHistory,
        plan: &Plan,
    ) -> impl Future<Output = Result<Observed, SnapshotOpsError>> + Send;
    fn run_checks(
        &self,
        url: &str,
        checks: &Checks,
    ) -> impl Future<Output = Result<ValidationReport, ValidateError>> + Send;
}

/// The catalog side: the states, the snapshots, the verifications.
pub trait RestoreTestStore {
    fn states(&self) -> impl Future<Output = Result<Vec<RestoreTestState>, CatalogError>> + Send;
    /// Writes `state` if the stored version is `expected` (`None`: no item
    /// yet); `false` if another run wrote first.
    fn save(
        &self,
        state: &RestoreTestState,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<bool, CatalogError>> + Send;
    fn histories(&self, plans: &[Plan]) -> impl Future<Output = Result<Vec<SnapshotHistory>, CatalogError>> + Send;
    fn record(&self, verification: &SnapshotVerification) -> impl Future<Output = Result<(), CatalogError>> + Send;
}

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
            restore_started_at: Some(moment(env.now())),
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
        let started: Option<Timestamp> = state.restore_started_at.as_deref().and_then(|t| t.parse().ok());
        let waited = started.map(|s| env.now().duration_since(s));
        let timeout = test.as_ref().map_or(crate::plan::RESTORE_TEST_TIMEOUT, |t| t.timeout);
        let outcome = match env.status(&snapshot.region, &instance).await {
            Err(error) if error.is_retryable() && waited.is_none_or(|w| w < timeout) => {
                tracing::warn!(instance = %instance, error = %error, "describing the restore test's instance failed; trying again");
                return Ok(Some(state));
            }
            Err(error) => failed_outcome(&instance, format!("describing {instance} failed: {error}")),
            Ok(seen) => {
                let (status, endpoint) = seen.unwrap_or_default();
                match phase(&status) {
                    Phase::Ready => {
                        let mut outcome = outcome_on(&instance);
                        outcome.restore_seconds = waited.map(|w| w.as_secs_f64().max(0.0));
                        match &test {
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
                    Phase::Failed => {
                        failed_outcome(&instance, format!("{instance} ended {status:?} instead of available"))
                    }
                    Phase::Waiting if waited.is_some_and(|w| w >= timeout) => failed_outcome(
                        &instance,
                        format!(
                            "{instance} was still {status:?} after {} s (the plan's restore_test.timeout)",
                            timeout.as_secs()
                        ),
                    ),
                    Phase::Waiting => return Ok(Some(state)),
                }
            }
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
    let started_at = state.restore_started_at.clone().unwrap_or_else(|| moment(env.now()));
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
        state.last_finished_at = Some(moment(env.now()));
        state.last_passed = Some(verification.restore_test_passed == Some(true));
        tracing::info!(instance = %instance, passed = verification.passed(), rto = ?verification.rto_seconds, "restore test done");
        report.finished.push(verification);
    }
    store.save(&state, Some(expected)).await?;
    Ok(None)
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
    let mut verification = SnapshotVerification::new(snapshot, regions, problems, started_at, moment(env.now()));
    verification.restore_test_passed = Some(passed);
    verification.rto_seconds = outcome.restore_seconds;
    verification.restore_test = Some(outcome);
    verification
}

/// Production: RDS through `crate::rds` (the primary region's client), the
/// checks through psql / mariadb.
#[derive(Clone, Debug)]
pub struct RdsRestoreTests(pub Rds);

impl RestoreTestEnv for RdsRestoreTests {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    async fn restore(&self, snapshot: &SnapshotRecord, instance: &str, test: &RestoreTestPlan) -> Result<(), RdsError> {
        let tags = [
            (TAG_RESTORE_TEST, snapshot.snapshot_id.as_str()),
            (TAG_SCHEDULED, snapshot.plan.as_str()),
        ];
        self.0
            .in_region(&snapshot.region)
            .restore_snapshot(&RestoreRequest {
                instance,
                snapshot: &snapshot.snapshot_id,
                instance_class: Some(&test.instance_class),
                subnet_group: test.subnet_group.as_deref(),
                security_groups: &test.security_groups,
                publicly_accessible: Some(false),
                tags: &tags,
            })
            .await
    }

    async fn status(&self, region: &str, instance: &str) -> Result<Option<InstanceState>, RdsError> {
        Ok(self.0.in_region(region).instance(instance).await?.map(|i| {
            let endpoint = i.endpoint.zip(i.port);
            (i.status, endpoint)
        }))
    }

    async fn delete(&self, region: &str, instance: &str) -> Result<bool, RdsError> {
        self.0.in_region(region).delete_instance(instance).await
    }

    async fn tagged_instances(&self, region: &str) -> Result<Vec<(String, String)>, RdsError> {
        Ok(self
            .0
            .in_region(region)
            .instances()
            .await?
            .iter()
            .filter(|db| {
                let tagged = |key: &str| db.tag_list().iter().any(|t| t.key() == Some(key));
                tagged(TAG_RESTORE_TEST) && tagged(TAG_SCHEDULED)
            })
            .filter_map(|db| {
                Some((
                    db.db_instance_identifier()?.to_owned(),
                    db.db_instance_status().unwrap_or_default().to_owned(),
                ))
            })
            .collect())
    }

    async fn observe(&self, history: &SnapshotHistory, plan: &Plan) -> Result<Observed, SnapshotOpsError> {
        observe(&self.0, history, plan).await
    }

    async fn run_checks(&self, url: &str, checks: &Checks) -> Result<ValidationReport, ValidateError> {
        validate::run(url, checks).await
    }
}

#[derive(Serialize, Deserialize)]
struct StateItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    state: RestoreTestState,
}

impl SnapshotChecks {
    /// Every resource's restore test state (one query).
    pub async fn restore_test_states(&self) -> Result<Vec<RestoreTestState>, CatalogError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :state)")
            .expression_attribute_values(":pk", AttributeValue::S(STATE_PK.into()))
            .expression_attribute_values(":state", AttributeValue::S(STATE_SK_PREFIX.into()))
            .into_paginator()
            .items()
            .send();
        let mut states = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| self.error(e))?;
            let sk = item.get("sk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let parsed: StateItem =
                serde_dynamo::from_item(item).map_err(|e| self.corrupt(format!("{STATE_PK}/{sk}"), e))?;
            states.push(parsed.state);
        }
        Ok(states)
    }
}

impl RestoreTestStore for SnapshotChecks {
    async fn states(&self) -> Result<Vec<RestoreTestState>, CatalogError> {
        self.restore_test_states().await
    }

    async fn save(&self, state: &RestoreTestState, expected: Option<u64>) -> Result<bool, CatalogError> {
        let sk = format!("{STATE_SK_PREFIX}{}", state.resource);
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(StateItem {
            pk: STATE_PK.into(),
            sk: sk.clone(),
            state: state.clone(),
        })
        .map_err(|e| self.corrupt(format!("{STATE_PK}/{sk}"), e))?;
        let request = self.client.put_item().table_name(&self.table).set_item(Some(item));
        let request = match expected {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(version) => request
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(version.to_string())),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(s)) if s.err().is_conditional_check_failed_exception() => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn histories(&self, plans: &[Plan]) -> Result<Vec<SnapshotHistory>, CatalogError> {
        SnapshotChecks::histories(self, plans).await
    }

    async fn record(&self, verification: &SnapshotVerification) -> Result<(), CatalogError> {
        SnapshotChecks::record(self, verification).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::plan::parse_plans;
    use crate::snapshot::SnapshotStatus;
    use crate::validate::CheckResult;

    const START: &str = "2026-11-23T03:00:00Z";
    const POLL: Duration = Duration::from_secs(30);

    /// RDS, the checks and the clock, scripted: each status poll takes the
    /// next step (`absent`, `throttled`, or a status; the last repeats),
    /// each delete the next delete step (`ok`, `denied`; the last repeats);
    /// the clock is `START` plus tokio's (paused) time.
    struct Env {
        statuses: Mutex<Vec<&'static str>>,
        deletes: Mutex<Vec<&'static str>>,
        /// The value `SELECT count(*) FROM orders` returns.
        orders: i64,
        tagged: Mutex<Vec<(String, String)>>,
        restored: Mutex<Vec<String>>,
        deleted: Mutex<Vec<String>>,
        began: tokio::time::Instant,
    }

    impl Env {
        fn new(statuses: &[&'static str], deletes: &[&'static str], orders: i64) -> Self {
            Self {
                statuses: Mutex::new(statuses.to_vec()),
                deletes: Mutex::new(deletes.to_vec()),
                orders,
                tagged: Mutex::new(Vec::new()),
                restored: Mutex::new(Vec::new()),
                deleted: Mutex::new(Vec::new()),
                began: tokio::time::Instant::now(),
            }
        }

        fn next(steps: &Mutex<Vec<&'static str>>) -> &'static str {
            let mut steps = steps.lock().unwrap();
            if steps.len() > 1 {
                steps.remove(0)
            } else {
                steps[0]
            }
        }
    }

    impl RestoreTestEnv for Env {
        fn now(&self) -> Timestamp {
            let start: Timestamp = START.parse().unwrap();
            start + SignedDuration::try_from(self.began.elapsed()).unwrap()
        }

        async fn restore(&self, _: &SnapshotRecord, instance: &str, _: &RestoreTestPlan) -> Result<(), RdsError> {
            self.restored.lock().unwrap().push(instance.to_owned());
            self.tagged
                .lock()
                .unwrap()
                .push((instance.to_owned(), "creating".to_owned()));
            Ok(())
        }

        async fn status(&self, _: &str, _: &str) -> Result<Option<InstanceState>, RdsError> {
            match Self::next(&self.statuses) {
                "throttled" => Err(RdsError::new(Some("Throttling"), "Rate exceeded")),
                "absent" => Ok(None),
                status => Ok(Some((status.to_owned(), Some(("rt.example".to_owned(), 5432))))),
            }
        }

        async fn delete(&self, _: &str, instance: &str) -> Result<bool, RdsError> {
            match Self::next(&self.deletes) {
                "denied" => Err(RdsError::new(Some("AccessDenied"), "not allowed")),
                _ => {
                    self.deleted.lock().unwrap().push(instance.to_owned());
                    self.tagged.lock().unwrap().retain(|(id, _)| id != instance);
                    Ok(true)
                }
            }
        }

        async fn tagged_instances(&self, _: &str) -> Result<Vec<(String, String)>, RdsError> {
            Ok(self.tagged.lock().unwrap().clone())
        }

        async fn observe(&self, history: &SnapshotHistory, _: &Plan) -> Result<Observed, SnapshotOpsError> {
            let mut observed = Observed::default();
            observed.states.insert(
                history.snapshot.region.clone(),
                Some(crate::snapshot::SnapshotState {
                    status: "available".into(),
                    kms_key_id: Some("key".into()),
                    ..Default::default()
                }),
            );
            Ok(observed)
        }

        async fn run_checks(&self, url: &str, checks: &Checks) -> Result<ValidationReport, ValidateError> {
            Ok(ValidationReport {
                url: url.to_owned(),
                results: checks
                    .checks
                    .iter()
                    .map(|c| CheckResult {
                        name: c.name.clone(),
                        sql: c.sql.clone(),
                        expected: c.expected(),
                        value: Some(self.orders),
                        passed: c.accepts(self.orders),
                        error: None,
                    })
                    .collect(),
            })
        }
    }

    /// The catalog in memory, with DynamoDB's conditional write.
    #[derive(Default)]
    struct Store {
        states: Mutex<BTreeMap<String, RestoreTestState>>,
        /// Verifications by (snapshot, startedAt): a rewrite replaces.
        verifications: Mutex<BTreeMap<(String, String), SnapshotVerification>>,
    }

    impl RestoreTestStore for Store {
        async fn states(&self) -> Result<Vec<RestoreTestState>, CatalogError> {
            // Let a concurrent run interleave here, as two invocations would.
            tokio::task::yield_now().await;
            Ok(self.states.lock().unwrap().values().cloned().collect())
        }

        async fn save(&self, state: &RestoreTestState, expected: Option<u64>) -> Result<bool, CatalogError> {
            let mut states = self.states.lock().unwrap();
            if states.get(&state.resource).map(|s| s.version) != expected {
                return Ok(false);
            }
            states.insert(state.resource.clone(), state.clone());
            Ok(true)
        }

        async fn histories(&self, _: &[Plan]) -> Result<Vec<SnapshotHistory>, CatalogError> {
            Ok(vec![history()])
        }

        async fn record(&self, verification: &SnapshotVerification) -> Result<(), CatalogError> {
            self.verifications.lock().unwrap().insert(
                (verification.snapshot_id.clone(), verification.started_at.clone()),
                verification.clone(),
            );
            Ok(())
        }
    }

    impl Store {
        fn state(&self) -> RestoreTestState {
            self.states.lock().unwrap().values().next().cloned().expect("a state")
        }

        fn recorded(&self) -> Vec<SnapshotVerification> {
            self.verifications.lock().unwrap().values().cloned().collect()
        }
    }

    fn plan() -> Plan {
        parse_plans(
            r#"[[plan]]
name = "db-nightly"
schedule = "cron(0 2 * * ? *)"
resources = ["orders"]
retention = { keep_days = 7 }
rpo = "26h"
tier = "critical"
[plan.restore_test]
url = "postgres://app@{host}:{port}/orders"
every = "7d"
timeout = "1h"
[[plan.restore_test.check]]
name = "all 99 orders"
sql = "SELECT count(*) FROM orders"
equals = 99
"#,
            START.parse().unwrap(),
        )
        .unwrap()
        .remove(0)
    }

    fn history() -> SnapshotHistory {
        SnapshotHistory {
            snapshot: SnapshotRecord {
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
            },
            copies: Vec::new(),
        }
    }

    const INSTANCE: &str = "lifeboat-rt-orders-202611230200";

    fn options(until: Option<Timestamp>) -> RestoreTestsOptions {
        RestoreTestsOptions {
            plans: vec![plan()],
            until,
            poll_interval: POLL,
        }
    }

    async fn run(env: &Env, store: &Store, until: Option<Timestamp>) -> RestoreTestsReport {
        run_restore_tests(env, store, &options(until)).await.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_due_test_restores_waits_checks_records_and_deletes() {
        let (env, store) = (
            Env::new(&["absent", "creating", "throttled", "available"], &["ok"], 99),
            Store::default(),
        );
        let report = run(&env, &store, None).await;
        assert_eq!(report.started, [INSTANCE]);
        assert_eq!(*env.deleted.lock().unwrap(), [INSTANCE]);
        let verification = &report.finished[0];
        assert!(verification.passed(), "{verification:?}");
        assert_eq!(verification.restore_test_passed, Some(true));
        // Three polls waited, 30 s apart: the RTO sample is 90 s.
        assert_eq!(verification.rto_seconds, Some(90.0));
        assert_eq!(verification.started_at, "2026-11-23T03:00:00.000Z");
        assert_eq!(store.recorded(), report.finished);
        let state = store.state();
        assert_eq!(state.phase, TestPhase::Idle);
        assert_eq!(state.last_passed, Some(true));
        assert_eq!(state.instance, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_assertion_is_recorded_and_the_instance_still_deleted() {
        let (env, store) = (Env::new(&["available"], &["ok"], 3), Store::default());
        let report = run(&env, &store, None).await;
        assert!(!report.ok());
        let verification = &store.recorded()[0];
        assert_eq!(verification.restore_test_passed, Some(false));
        assert!(!verification.passed());
        let error = verification.error.as_deref().unwrap_or_default();
        assert!(
            error.contains("all 99 orders") && error.contains("returned 3, expected exactly 99"),
            "{error}"
        );
        assert_eq!(verification.restore_test.as_ref().map(|o| o.cleaned_up), Some(true));
        assert_eq!(*env.deleted.lock().unwrap(), [INSTANCE]);
        assert_eq!(store.state().last_passed, Some(false));
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_starts_again_before_every_has_passed() {
        let (env, store) = (Env::new(&["available"], &["ok"], 99), Store::default());
        run(&env, &store, None).await;
        tokio::time::advance(Duration::from_secs(6 * 86_400)).await;
        let again = run(&env, &store, None).await;
        assert!(again.started.is_empty() && again.finished.is_empty(), "{again:?}");
        tokio::time::advance(Duration::from_secs(86_400)).await;
        let due = run(&env, &store, None).await;
        assert_eq!(due.started, [INSTANCE]);
        assert_eq!(env.restored.lock().unwrap().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_out_of_time_leaves_the_test_to_the_next_which_measures_from_the_restore() {
        let steps = ["creating", "creating", "creating", "creating", "available"];
        let (env, store) = (Env::new(&steps, &["ok"], 99), Store::default());
        let start: Timestamp = START.parse().unwrap();
        let first = run(&env, &store, Some(start + SignedDuration::from_secs(70))).await;
        assert_eq!(first.in_progress, [INSTANCE]);
        assert!(first.finished.is_empty() && env.deleted.lock().unwrap().is_empty());
        assert_eq!(store.state().phase, TestPhase::Restoring);
        tokio::time::advance(Duration::from_secs(600)).await;
        let second = run(&env, &store, None).await;
        assert!(second.started.is_empty(), "{second:?}");
        // Polls at 0, 30, 60 s (first run); 660 s creating, 690 s available.
        assert_eq!(second.finished[0].rto_seconds, Some(690.0));
        assert_eq!(*env.deleted.lock().unwrap(), [INSTANCE]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_terminal_status_or_the_timeout_fails_the_test_and_deletes() {
        for (steps, needle) in [
            (
                &["creating", "incompatible-restore"][..],
                "ended \"incompatible-restore\"",
            ),
            (&["creating"][..], "still \"creating\" after 3600 s"),
        ] {
            let (env, store) = (Env::new(steps, &["ok"], 99), Store::default());
            let report = run(&env, &store, None).await;
            let verification = &report.finished[0];
            assert_eq!(verification.restore_test_passed, Some(false));
            assert_eq!(verification.rto_seconds, None);
            let problem = verification
                .problems
                .iter()
                .find(|p| p.kind == ProblemKind::RestoreTestFailed);
            assert!(problem.is_some_and(|p| p.detail.contains(needle)), "{verification:?}");
            assert_eq!(*env.deleted.lock().unwrap(), [INSTANCE]);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_delete_stays_a_problem_and_is_retried_until_it_works() {
        let (env, store) = (
            Env::new(&["available"], &["denied", "denied", "ok"], 99),
            Store::default(),
        );
        let first = run(&env, &store, None).await;
        assert_eq!(first.cleanup_failed.len(), 1, "{first:?}");
        assert!(first.finished.is_empty() && !first.ok());
        let recorded = store.recorded();
        assert_eq!(recorded.len(), 1);
        assert!(!recorded[0].passed());
        assert!(
            recorded[0].error.as_deref().unwrap_or_default().contains(INSTANCE),
            "{recorded:?}"
        );
        assert_eq!(store.state().phase, TestPhase::Deleting);

        let second = run(&env, &store, None).await;
        assert_eq!(second.cleanup_failed.len(), 1);
        assert_eq!(store.state().delete_attempts, 2);

        let third = run(&env, &store, None).await;
        assert!(third.ok(), "{third:?}");
        // The same verification, rewritten: passed, instance gone.
        let recorded = store.recorded();
        assert_eq!(recorded.len(), 1);
        assert!(recorded[0].passed(), "{recorded:?}");
        assert_eq!(store.state().phase, TestPhase::Idle);
        assert_eq!(*env.deleted.lock().unwrap(), [INSTANCE]);
    }

    #[tokio::test(start_paused = true)]
    async fn two_concurrent_runs_start_one_test() {
        let (env, store) = (Env::new(&["available"], &["ok"], 99), Store::default());
        let (a, b) = tokio::join!(run(&env, &store, None), run(&env, &store, None));
        assert_eq!(a.started.len() + b.started.len(), 1, "{a:?} {b:?}");
        assert_eq!(env.restored.lock().unwrap().len(), 1);
        assert_eq!(a.finished.len() + b.finished.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn orphaned_instances_are_deleted_and_owned_ones_kept() {
        let (env, store) = (Env::new(&["creating"], &["ok"], 99), Store::default());
        let start: Timestamp = START.parse().unwrap();
        run(&env, &store, Some(start)).await;
        env.tagged.lock().unwrap().extend([
            ("lifeboat-rt-lost-202611200200".to_owned(), "available".to_owned()),
            ("lifeboat-rt-going-202611200200".to_owned(), "deleting".to_owned()),
        ]);
        let report = run(&env, &store, Some(start)).await;
        assert_eq!(report.orphans_deleted, ["lifeboat-rt-lost-202611200200"]);
        assert_eq!(*env.deleted.lock().unwrap(), ["lifeboat-rt-lost-202611200200"]);
        assert_eq!(report.in_progress, [INSTANCE]);
    }

    #[test]
    fn a_test_is_due_when_none_ran_or_the_last_is_older_than_every() {
        let test = plan().restore_test.unwrap();
        let now: Timestamp = START.parse().unwrap();
        let idle = |last: &str| RestoreTestState {
            resource: "r".into(),
            plan: "p".into(),
            phase: TestPhase::Idle,
            version: 1,
            snapshot: None,
            instance: None,
            restore_started_at: None,
            outcome: None,
            delete_attempts: 0,
            delete_error: None,
            last_finished_at: Some(last.into()),
            last_passed: Some(true),
        };
        assert!(due(None, &test, now));
        assert!(due(Some(&idle("2026-11-16T03:00:00Z")), &test, now));
        assert!(!due(Some(&idle("2026-11-16T03:00:01Z")), &test, now));
        let running = RestoreTestState {
            phase: TestPhase::Restoring,
            ..idle("2026-01-01T00:00:00Z")
        };
        assert!(!due(Some(&running), &test, now));
    }
}
