//! Verifying the plans' RDS snapshots, and advancing their scheduled
//! restore tests; a failed check or test fails the invocation as
//! `Lifeboat.DamageFound`.

use std::time::Duration;

use lifeboat::rds::Rds;
use lifeboat::snapshot::restore_tests::{run_restore_tests, RdsRestoreTests, RestoreTestsOptions};
use lifeboat::snapshot::trial_restore::RestoreTestOptions;
use lifeboat::snapshot::verify::{run_snapshot_verify, SnapshotVerifyOptions};
use lifeboat::snapshot::SnapshotVerification;
use lifeboat::validate;
use lifeboat_lambda::{Context, Failure, Metrics};

use crate::event::RestoreTestRequest;
use crate::summary::VerifySummary;

/// Time kept free before the invocation's deadline for a test's checks,
/// delete and record after the last poll.
const RESTORE_TESTS_MARGIN: Duration = Duration::from_secs(90);
/// Time between polls of a restoring instance.
const RESTORE_TESTS_POLL: Duration = Duration::from_secs(30);

/// Starts, polls and finishes the plans' due restore tests until shortly
/// before `deadline_ms` (the invocation's deadline, milliseconds since the epoch).
pub async fn restore_tests(
    context: &Context,
    rds: &Rds,
    plan_names: &[String],
    deadline_ms: u64,
) -> Result<VerifySummary, Failure> {
    let plans = context.select_plans(plan_names, "restoreTests")?;
    let deadline = i64::try_from(deadline_ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .unwrap_or_else(jiff::Timestamp::now);
    let margin = jiff::SignedDuration::try_from(RESTORE_TESTS_MARGIN).unwrap_or_default();
    let options = RestoreTestsOptions {
        plans,
        until: Some(deadline - margin),
        poll_interval: RESTORE_TESTS_POLL,
    };
    let environment = RdsRestoreTests(rds.clone());
    let report = run_restore_tests(&environment, &context.catalog.snapshot_checks(), &options)
        .await
        .map_err(|e| Failure::VerifyFailed(e.to_string()))?;
    let failed: Vec<&SnapshotVerification> = report.finished.iter().filter(|v| !v.passed()).collect();
    Metrics::new()
        .put(
            "RestoreTestsPassed",
            (report.finished.len() - failed.len()) as f64,
            "Count",
        )
        .put("RestoreTestsFailed", failed.len() as f64, "Count")
        .put("RestoreTestCleanupsFailed", report.cleanup_failed.len() as f64, "Count")
        .emit();
    for verification in &report.finished {
        if let Some(seconds) = verification.rto_seconds {
            Metrics::with_dimension("Plan", &verification.plan)
                .put("RestoreTestRtoSeconds", seconds, "Seconds")
                .emit();
        }
    }
    if !report.ok() {
        let lines = failure_lines(&failed)
            .chain(report.cleanup_failed.iter().map(|c| format!("not deleted: {c}")))
            .collect::<Vec<_>>();
        return Err(Failure::DamageFound(lines.join("\n")));
    }
    Ok(VerifySummary {
        verified: report.finished.len(),
        restore_tests: Some(report),
        ..VerifySummary::default()
    })
}

/// Checks the plans' newest snapshots (and restore-tests them if asked).
pub async fn verify_snapshots(
    context: &Context,
    rds: &Rds,
    plan_names: &[String],
    restore_test: Option<RestoreTestRequest>,
) -> Result<VerifySummary, Failure> {
    let plans = context.select_plans(plan_names, "snapshots")?;
    let options = SnapshotVerifyOptions {
        plans,
        restore_test: restore_test.map(restore_test_options).transpose()?,
        now: jiff::Timestamp::now(),
    };
    let report = run_snapshot_verify(rds, &context.catalog.snapshot_checks(), &options)
        .await
        .map_err(|e| Failure::VerifyFailed(e.to_string()))?;
    let failed: Vec<&SnapshotVerification> = report.verifications.iter().filter(|v| !v.passed()).collect();
    Metrics::new()
        .put(
            "VerificationsPassed",
            (report.verifications.len() - failed.len()) as f64,
            "Count",
        )
        .put("VerificationsFailed", failed.len() as f64, "Count")
        .emit();
    if !failed.is_empty() {
        return Err(Failure::DamageFound(
            failure_lines(&failed).collect::<Vec<_>>().join("\n"),
        ));
    }
    Ok(VerifySummary {
        verified: report.verifications.len(),
        snapshots: Some(report),
        ..VerifySummary::default()
    })
}

fn restore_test_options(request: RestoreTestRequest) -> Result<RestoreTestOptions, Failure> {
    let checks = match (request.checks_toml, request.checks) {
        (Some(text), None) => validate::parse(&text),
        (None, Some(path)) => validate::load(std::path::Path::new(&path)),
        _ => {
            return Err(Failure::BadEvent(
                "restoreTest needs one of checks (a path) or checksToml (the file's text)".to_owned(),
            ))
        }
    }
    .map_err(|e| Failure::BadEvent(e.to_string()))?;
    let mut options = RestoreTestOptions::new(checks);
    if let Some(class) = request.instance_class {
        options.instance_class = class;
    }
    Ok(options)
}

/// One line per failed verification: the snapshot and what failed.
fn failure_lines<'a>(failed: &'a [&SnapshotVerification]) -> impl Iterator<Item = String> + 'a {
    failed
        .iter()
        .map(|v| format!("{}: {}", v.snapshot_id, v.error.as_deref().unwrap_or("failed")))
}
