//! The snapshot Lambda: on its schedule, snapshots the RDS DB instances and
//! Aurora clusters a plan selects and copies them to the plan's copy
//! regions (`lifeboat::snapshot::run_scheduled`); on RDS snapshot events,
//! advances the open work (`lifeboat::snapshot::advance`).
//!
//! Settings (read once at start; a missing or bad one fails the init):
//! `LIFEBOAT_TABLE` (the catalog table, default `lifeboat-catalog`) and the
//! plan file (README.md, "Backup plans"): `LIFEBOAT_PLANS` (`s3://BUCKET/KEY`
//! or a path in the package) or `LIFEBOAT_PLANS_TOML` (its text). A plan
//! file with problems fails the init, listing every problem. Plans whose
//! `sources` name databases are dumped into `LIFEBOAT_STORE` (required
//! then; `LIFEBOAT_KMS_KEY` optional), once per scheduled run; a source may
//! be a Secrets Manager secret's ARN holding the connection. The dump
//! programs (`pg_dump`, `mariadb-dump`, `sqlite3`) must be on the `PATH`:
//! deployed, from the database tools layer under `/opt/bin`
//! (scripts/build-db-tools-layer, infra/README.md).
//!
//! Answers a `SnapshotSummary` and logs it as a final `snapshot run done`
//! line (and an Embedded Metric Format line: `BackupsCompleted` per
//! snapshot completed, `BackupsFailed` per failure). A resource or copy that failed (recorded in the catalog with the
//! AWS error) fails the invocation with `Lifeboat.SnapshotFailed` after the
//! others proceeded; a bad event fails with `Lifeboat.BadEvent`, the catalog
//! with `Lifeboat.Catalog`, listing RDS with `Lifeboat.Rds`.

mod event;

use std::sync::Arc;

use jiff::Timestamp;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use lifeboat::aws::{load_config, Clients};
use lifeboat::catalog::{Catalog, DEFAULT_TABLE};
use lifeboat::plan::load::{load_plans, PlanSource};
use lifeboat::plan::Plan;
use lifeboat::rds::Rds;
use lifeboat::repo::Repository;
use lifeboat::snapshot::{advance, run_plan_dumps, run_scheduled, SnapshotError, SnapshotSummary};
use lifeboat::storage::Location;
use lifeboat_lambda::{diagnostic, init_tracing, setting, Metrics};

use crate::event::SnapshotRequest;

struct Function {
    plans: Vec<Plan>,
    rds: Rds,
    catalog: Catalog,
    clients: Clients,
    /// Where plans' database dumps go (`LIFEBOAT_STORE`, `LIFEBOAT_KMS_KEY`).
    store: Option<(Location, Option<String>)>,
}

fn run_error(error: SnapshotError) -> Diagnostic {
    match error {
        SnapshotError::Catalog(_) => diagnostic("Lifeboat.Catalog", error),
        SnapshotError::List { .. } => diagnostic("Lifeboat.Rds", error),
        SnapshotError::UnknownPlan { .. } => diagnostic("Lifeboat.BadEvent", error),
    }
}

impl Function {
    async fn handle(&self, event: LambdaEvent<serde_json::Value>) -> Result<SnapshotSummary, Diagnostic> {
        let request = SnapshotRequest::from_event(event.payload).map_err(|e| diagnostic("Lifeboat.BadEvent", e))?;
        let now = Timestamp::now();
        let summary = match request {
            SnapshotRequest::Scheduled { plan, scheduled_time } => {
                tracing::info!(plan = %plan, scheduled_time = %scheduled_time, "scheduled snapshot run");
                let mut summary = run_scheduled(
                    &self.rds,
                    &self.catalog.snapshots(),
                    &self.plans,
                    &plan,
                    scheduled_time,
                    now,
                )
                .await
                .map_err(run_error)?;
                self.dump(&plan, scheduled_time, now, &mut summary).await?;
                summary
            }
            SnapshotRequest::RdsEvent {
                snapshot,
                event_id,
                message,
            } => {
                tracing::info!(snapshot = %snapshot, event_id = %event_id, message = %message, "RDS snapshot event");
                advance(&self.rds, &self.catalog.snapshots(), &self.plans, now)
                    .await
                    .map_err(run_error)?
            }
            SnapshotRequest::Ignored { reason } => {
                tracing::info!(reason = %reason, "event ignored");
                SnapshotSummary::default()
            }
        };
        tracing::info!(
            plans = ?summary.plans,
            scheduled_time = ?summary.scheduled_time,
            selected = summary.selected.len(),
            created = summary.created.len(),
            already_taken = summary.already_taken.len(),
            creating = summary.creating.len(),
            completed = summary.completed.len(),
            copies_started = summary.copies_started.len(),
            copies_in_flight = summary.copies_in_flight.len(),
            copies_queued = summary.copies_queued.len(),
            copies_completed = summary.copies_completed.len(),
            failures = summary.failures.len(),
            "snapshot run done"
        );
        // The dashboard's totals: a snapshot that became available is a
        // backup completed; each failure (snapshot or copy) one failed.
        if !summary.completed.is_empty() || !summary.dumps.is_empty() || !summary.failures.is_empty() {
            Metrics::new()
                .put(
                    "BackupsCompleted",
                    (summary.completed.len() + summary.dumps.len()) as f64,
                    "Count",
                )
                .put("BackupsFailed", summary.failures.len() as f64, "Count")
                .emit();
        }
        if summary.ok() {
            return Ok(summary);
        }
        let failures: Vec<String> = summary
            .failures
            .iter()
            .map(|f| {
                let place: Vec<&str> = f.region.iter().chain(&f.snapshot_id).map(String::as_str).collect();
                if place.is_empty() {
                    format!("{}: {}", f.resource, f.error)
                } else {
                    format!("{} ({}): {}", f.resource, place.join(", "), f.error)
                }
            })
            .collect();
        Err(diagnostic(
            "Lifeboat.SnapshotFailed",
            format!(
                "{} failure(s), recorded in the catalog; the rest proceeded: {}",
                failures.len(),
                failures.join("; ")
            ),
        ))
    }

    /// The plan's database sources, dumped into the store.
    async fn dump(
        &self,
        plan: &str,
        scheduled_time: Timestamp,
        now: Timestamp,
        summary: &mut SnapshotSummary,
    ) -> Result<(), Diagnostic> {
        let Some(plan) = self.plans.iter().find(|p| p.name == plan) else {
            return Ok(());
        };
        if plan.database_sources().is_empty() {
            return Ok(());
        }
        let Some((store, kms_key)) = &self.store else {
            return Err(diagnostic(
                "Lifeboat.BadEvent",
                format!("plan {} dumps databases but LIFEBOAT_STORE is not set", plan.name),
            ));
        };
        let repo = Repository::open_at(store, &self.clients, kms_key.as_deref())
            .await
            .map_err(|e| diagnostic("Lifeboat.Store", e))?;
        run_plan_dumps(
            Arc::new(repo),
            &self.catalog,
            &self.clients.secretsmanager,
            plan,
            scheduled_time,
            now,
            summary,
        )
        .await
        .map_err(run_error)
    }
}

/// The store for plans' dumps, required when a plan has a database source.
fn dump_store(plans: &[Plan]) -> Result<Option<(Location, Option<String>)>, String> {
    let Some(text) = setting("LIFEBOAT_STORE") else {
        return match plans.iter().find(|p| !p.database_sources().is_empty()) {
            Some(plan) => Err(format!(
                "plan {} dumps databases, but the function's environment has no LIFEBOAT_STORE: set it to the store (s3://BUCKET/PREFIX)",
                plan.name
            )),
            None => Ok(None),
        };
    };
    let store = Location::parse(&text).map_err(|e| format!("LIFEBOAT_STORE: {e}"))?;
    Ok(Some((store, setting("LIFEBOAT_KMS_KEY"))))
}

/// The plan file's location from the environment.
fn plan_source() -> Result<PlanSource, String> {
    lifeboat::plan::load::plan_source(setting("LIFEBOAT_PLANS_TOML"), setting("LIFEBOAT_PLANS"))?.ok_or_else(|| {
        "the function's environment names no plan file: set LIFEBOAT_PLANS (s3://BUCKET/KEY or a path) or LIFEBOAT_PLANS_TOML (see infra/)"
            .to_owned()
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let table = setting("LIFEBOAT_TABLE").unwrap_or_else(|| DEFAULT_TABLE.to_owned());
    let source = plan_source()?;
    let config = load_config(None).await?;
    let clients = Clients::new(&config);
    // Every problem of the plan file, in words, in the log and the init error.
    let plans = load_plans(&source, &clients.s3, Timestamp::now()).await.map_err(|e| {
        tracing::error!(error = %e, "the plan file cannot be used; the function does not start");
        e.to_string()
    })?;
    tracing::info!(plans = ?plans.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), "plans loaded");
    let store = dump_store(&plans)?;
    let function = Function {
        plans,
        rds: Rds::new(&config),
        catalog: Catalog::new(clients.dynamodb.clone(), &table, &clients.region),
        clients,
        store,
    };
    let function = &function;
    lambda_runtime::run(service_fn(move |event| async move { function.handle(event).await })).await
}
