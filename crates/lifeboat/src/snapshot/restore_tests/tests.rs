//! The state machine against scripted RDS, checks, clock and catalog.

use std::sync::Mutex;

use super::state::*;
use super::*;
use crate::catalog::CatalogError;
use crate::plan::parse_plans;
use crate::rds::RdsError;
use crate::snapshot::checks::Observed;
use crate::snapshot::records::SnapshotRecord;
use crate::snapshot::trial_restore::InstanceState;
use crate::snapshot::SnapshotStatus;
use crate::validate::CheckResult;
use crate::validate::{Checks, ValidateError, ValidationReport};

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
