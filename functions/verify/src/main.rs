//! The verify Lambda: on its schedule, proves the newest completed backup
//! of each source (or one given backup) is readable, quick or deep, and
//! records each result in the catalog (`lifeboat::verify`).
//!
//! Request (the scheduled event's `detail`, or the direct payload; see
//! `events/verify-scheduled.json`):
//! `{"store": "s3://bucket/prefix", "mode": "quick"|"deep", "sources": [...]}`
//! or `{"backupId": "bk-..."}`. Without `sources` or `backupId`, every
//! source with a completed backup in this store is verified.
//! `{"store": ..., "mode": "sample", "samplePercent": 10}` instead reads that
//! share of the store's packs whole, continuing where the last sample
//! stopped (`events/verify-sample.json`; `lifeboat::verify::sample`).
//!
//! `{"snapshots": true, "plans": ["db-nightly"]}` instead verifies the
//! newest completed RDS snapshot of each resource of those plans (all plans
//! without `plans`) from the plan file (`LIFEBOAT_PLANS` or
//! `LIFEBOAT_PLANS_TOML`): available, encrypted, copied to every copy region
//! with that region's key, within the RPO (`lifeboat::snapshot::verify`;
//! `events/verify-snapshots.json`). `"restoreTest": {"checksToml": "..."}`
//! (or `"checks": PATH` in the package) also restores each to a temporary
//! instance and runs the checks' SQL against it.
//!
//! `{"restoreTests": true}` (scheduled every 15 minutes,
//! `events/verify-restore-tests.json`) advances the scheduled restore tests
//! of the plans that ask for them (`[plan.restore_test]`;
//! `lifeboat::snapshot::restore_tests`): starts those that are due, polls
//! those in progress while the invocation's deadline leaves time (less
//! [`RESTORE_TESTS_MARGIN`]), records finished ones, deletes their
//! instances, and sweeps orphaned `lifeboat:restore-test` instances. A test
//! that outlasts the invocation resumes in the next.
//!
//! Damage found fails the invocation (type `Lifeboat.DamageFound`), so the
//! function's error alarm fires as well as the alert function's condition.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use lifeboat::aws::{load_config, Clients};
use lifeboat::catalog::{BackupStatus, Catalog, VerificationType, DEFAULT_TABLE};
use lifeboat::plan::Plan;
use lifeboat::rds::Rds;
use lifeboat::repo::Repository;
use lifeboat::snapshot::load_plans;
use lifeboat::snapshot::restore_tests::{run_restore_tests, RdsRestoreTests, RestoreTestsOptions, RestoreTestsReport};
use lifeboat::snapshot::trial_restore::RestoreTestOptions;
use lifeboat::snapshot::verify::{run_snapshot_verify, SnapshotVerifyOptions, SnapshotVerifyReport};
use lifeboat::snapshot::{plan_source, select_plans, SnapshotVerification};
use lifeboat::storage::Location;
use lifeboat::validate;
use lifeboat::verify::sample::{run_sample, SampleOptions, SampleReport};
use lifeboat::verify::{run_verify, VerifyOptions, VerifyReport};
use lifeboat_lambda::{diagnostic, init_tracing, parse_request, setting, Metrics, Request};
use serde::{Deserialize, Serialize};

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

/// Time kept free before the invocation's deadline for a test's checks,
/// delete and record after the last poll.
const RESTORE_TESTS_MARGIN: Duration = Duration::from_secs(90);
/// Time between polls of a restoring instance.
const RESTORE_TESTS_POLL: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RestoreTestRequest {
    /// A checks file shipped with the function.
    #[serde(default)]
    checks: Option<String>,
    /// The checks file's text.
    #[serde(default)]
    checks_toml: Option<String>,
    #[serde(default)]
    instance_class: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VerifySummary {
    verified: usize,
    damaged: usize,
    reports: Vec<VerifyReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sample: Option<SampleReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshots: Option<SnapshotVerifyReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    restore_tests: Option<RestoreTestsReport>,
}

struct Function {
    table: String,
    default_store: Option<String>,
    clients: Clients,
    /// The plan file's plans, when the function has one (for `snapshots`).
    plans: Option<Vec<Plan>>,
    snapshot_aws: Rds,
}

impl Function {
    async fn handle(&self, event: LambdaEvent<serde_json::Value>) -> Result<VerifySummary, Diagnostic> {
        let deadline = event.context.deadline;
        let Request { body, .. } = parse_request::<VerifyRequest>(event.payload, "events/verify-scheduled.json")
            .map_err(|e| diagnostic("Lifeboat.BadEvent", e))?;
        if body.restore_tests {
            return self.restore_tests(body.plans, deadline).await;
        }
        if body.snapshots {
            return self.snapshots(body.plans, body.restore_test).await;
        }
        let store = body.store.or_else(|| self.default_store.clone()).ok_or_else(|| {
            diagnostic(
                "Lifeboat.BadEvent",
                "the request names no store and LIFEBOAT_STORE is not set",
            )
        })?;
        let location = Location::parse(&store).map_err(|e| diagnostic("Lifeboat.BadEvent", format!("store: {e}")))?;
        let repo = Arc::new(
            Repository::open_at(&location, &self.clients, None)
                .await
                .map_err(|e| diagnostic("Lifeboat.Store", e))?,
        );
        let catalog = Catalog::new(self.clients.dynamodb.clone(), &self.table, &self.clients.region);
        if body.mode == Some(VerificationType::Sample) {
            return self.sample(repo, &catalog, body.sample_percent, body.concurrency).await;
        }
        let targets = self.targets(&repo, &catalog, body.backup_id, body.sources).await?;
        let mode = body.mode.unwrap_or(VerificationType::Quick);
        let mut reports = Vec::with_capacity(targets.len());
        for id in targets {
            let mut options = VerifyOptions::new(&id, mode);
            options.concurrency = body.concurrency.unwrap_or(options.concurrency).max(1);
            let report = run_verify(repo.clone(), &catalog, &options)
                .await
                .map_err(|e| diagnostic("Lifeboat.VerifyFailed", e))?;
            tracing::info!(backup_id = %report.backup_id, mode = mode.as_str(), ok = report.ok, problems = report.problems.len(), "verified");
            reports.push(report);
        }
        let damaged: Vec<&VerifyReport> = reports.iter().filter(|r| !r.ok).collect();
        Metrics::new()
            .put("VerificationsPassed", (reports.len() - damaged.len()) as f64, "Count")
            .put("VerificationsFailed", damaged.len() as f64, "Count")
            .emit();
        if !damaged.is_empty() {
            let lines: Vec<String> = damaged
                .iter()
                .flat_map(|r| {
                    r.problems
                        .iter()
                        .map(move |p| format!("{}: {} {}: {}", r.backup_id, p.object, p.kind.describe(), p.detail))
                })
                .collect();
            return Err(diagnostic("Lifeboat.DamageFound", lines.join("\n")));
        }
        Ok(VerifySummary {
            verified: reports.len(),
            damaged: 0,
            reports,
            sample: None,
            snapshots: None,
            restore_tests: None,
        })
    }

    fn plans(&self, names: &[String], asked: &str) -> Result<Vec<Plan>, Diagnostic> {
        let plans = self.plans.as_deref().ok_or_else(|| {
            diagnostic(
                "Lifeboat.BadEvent",
                format!(
                    "{asked} asked for, but the function has no plan file: set LIFEBOAT_PLANS or LIFEBOAT_PLANS_TOML"
                ),
            )
        })?;
        select_plans(plans, names).map_err(|e| diagnostic("Lifeboat.BadEvent", e))
    }

    async fn restore_tests(&self, plan_names: Vec<String>, deadline_ms: u64) -> Result<VerifySummary, Diagnostic> {
        let plans = self.plans(&plan_names, "restoreTests")?;
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
        let environment = RdsRestoreTests(self.snapshot_aws.clone());
        let catalog = Catalog::new(self.clients.dynamodb.clone(), &self.table, &self.clients.region);
        let report = run_restore_tests(&environment, &catalog.snapshot_checks(), &options)
            .await
            .map_err(|e| diagnostic("Lifeboat.VerifyFailed", e))?;
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
            let lines: Vec<String> = failed
                .iter()
                .map(|v| format!("{}: {}", v.snapshot_id, v.error.as_deref().unwrap_or("failed")))
                .chain(report.cleanup_failed.iter().map(|c| format!("not deleted: {c}")))
                .collect();
            return Err(diagnostic("Lifeboat.DamageFound", lines.join("\n")));
        }
        Ok(VerifySummary {
            verified: report.finished.len(),
            damaged: 0,
            reports: Vec::new(),
            sample: None,
            snapshots: None,
            restore_tests: Some(report),
        })
    }

    async fn snapshots(
        &self,
        plan_names: Vec<String>,
        restore_test: Option<RestoreTestRequest>,
    ) -> Result<VerifySummary, Diagnostic> {
        let plans = self.plans(&plan_names, "snapshots")?;
        let restore_test = match restore_test {
            None => None,
            Some(request) => {
                let checks = match (request.checks_toml, request.checks) {
                    (Some(text), None) => validate::parse(&text),
                    (None, Some(path)) => validate::load(std::path::Path::new(&path)),
                    _ => {
                        return Err(diagnostic(
                            "Lifeboat.BadEvent",
                            "restoreTest needs one of checks (a path) or checksToml (the file's text)",
                        ))
                    }
                }
                .map_err(|e| diagnostic("Lifeboat.BadEvent", e))?;
                let mut options = RestoreTestOptions::new(checks);
                if let Some(class) = request.instance_class {
                    options.instance_class = class;
                }
                Some(options)
            }
        };
        let catalog = Catalog::new(self.clients.dynamodb.clone(), &self.table, &self.clients.region);
        let options = SnapshotVerifyOptions {
            plans,
            restore_test,
            now: jiff::Timestamp::now(),
        };
        let report = run_snapshot_verify(&self.snapshot_aws, &catalog.snapshot_checks(), &options)
            .await
            .map_err(|e| diagnostic("Lifeboat.VerifyFailed", e))?;
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
            let lines: Vec<String> = failed
                .iter()
                .map(|v| format!("{}: {}", v.snapshot_id, v.error.as_deref().unwrap_or("failed")))
                .collect();
            return Err(diagnostic("Lifeboat.DamageFound", lines.join("\n")));
        }
        Ok(VerifySummary {
            verified: report.verifications.len(),
            damaged: 0,
            reports: Vec::new(),
            sample: None,
            snapshots: Some(report),
            restore_tests: None,
        })
    }

    async fn sample(
        &self,
        repo: Arc<Repository>,
        catalog: &Catalog,
        percent: Option<f64>,
        concurrency: Option<usize>,
    ) -> Result<VerifySummary, Diagnostic> {
        let percent = percent.unwrap_or(10.0);
        if !(percent > 0.0 && percent <= 100.0) {
            return Err(diagnostic(
                "Lifeboat.BadEvent",
                format!("samplePercent {percent}: give a share above 0 and at most 100"),
            ));
        }
        let options = SampleOptions {
            percent,
            concurrency: concurrency.unwrap_or(4).max(1),
        };
        let report = run_sample(repo, catalog, &options)
            .await
            .map_err(|e| diagnostic("Lifeboat.VerifyFailed", e))?;
        tracing::info!(store = %report.store, packs = report.packs_checked, of = report.packs_in_store, passes = report.passes, ok = report.ok, "sampled");
        Metrics::new()
            .put("VerificationsPassed", f64::from(u8::from(report.ok)), "Count")
            .put("VerificationsFailed", f64::from(u8::from(!report.ok)), "Count")
            .emit();
        if !report.ok {
            let lines: Vec<String> = report
                .problems
                .iter()
                .map(|p| {
                    format!(
                        "{} {}: {} (affects {})",
                        p.object,
                        p.kind.describe(),
                        p.detail,
                        p.entries.join(", ")
                    )
                })
                .collect();
            return Err(diagnostic("Lifeboat.DamageFound", lines.join("\n")));
        }
        Ok(VerifySummary {
            verified: 0,
            damaged: 0,
            reports: Vec::new(),
            sample: Some(report),
            snapshots: None,
            restore_tests: None,
        })
    }

    /// The backups to verify: the one asked for, or the newest completed
    /// backup of each source asked for (all of this store's, by default).
    async fn targets(
        &self,
        repo: &Repository,
        catalog: &Catalog,
        backup_id: Option<String>,
        sources: Option<Vec<String>>,
    ) -> Result<Vec<String>, Diagnostic> {
        if let Some(id) = backup_id {
            return Ok(vec![id]);
        }
        let manifests = repo.storage.describe(&repo.layout.manifest(""));
        let records = catalog
            .list(None)
            .await
            .map_err(|e| diagnostic("Lifeboat.Catalog", e))?;
        let wanted: Option<BTreeSet<String>> = sources.map(|s| s.into_iter().collect());
        let mut seen = BTreeSet::new();
        let mut targets = Vec::new();
        // Newest first: the first completed backup of a source is its newest.
        for record in records {
            let in_store = record.storage_location.starts_with(&manifests);
            let asked = wanted.as_ref().is_none_or(|w| w.contains(&record.source));
            if in_store && asked && record.status == BackupStatus::Completed && seen.insert(record.source.clone()) {
                targets.push(record.id);
            }
        }
        if let Some(wanted) = wanted {
            let missing: Vec<&String> = wanted.iter().filter(|s| !seen.contains(*s)).collect();
            if !missing.is_empty() {
                return Err(diagnostic(
                    "Lifeboat.NothingToVerify",
                    format!("no completed backup in {manifests} for source(s) {missing:?}"),
                ));
            }
        }
        Ok(targets)
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let config = load_config(None).await?;
    let clients = Clients::new(&config);
    let plans = match plan_source(setting("LIFEBOAT_PLANS_TOML"), setting("LIFEBOAT_PLANS"))? {
        Some(source) => Some(load_plans(&source, &clients.s3, jiff::Timestamp::now()).await?),
        None => None,
    };
    let function = Function {
        table: setting("LIFEBOAT_TABLE").unwrap_or_else(|| DEFAULT_TABLE.to_owned()),
        default_store: setting("LIFEBOAT_STORE"),
        clients,
        plans,
        snapshot_aws: Rds::new(&config),
    };
    if let Some(store) = &function.default_store {
        Location::parse(store).map_err(|e| format!("LIFEBOAT_STORE: {e}"))?;
    }
    let function = &function;
    lambda_runtime::run(service_fn(move |event| async move { function.handle(event).await })).await
}
