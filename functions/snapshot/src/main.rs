//! The snapshot Lambda: on its schedule, snapshots the RDS DB instances and
//! Aurora clusters a plan selects and copies them to the plan's copy
//! regions (`lifeboat::snapshot::run_scheduled`), and dumps the plan's
//! databases (`dumps.rs`); on RDS snapshot events, advances the open work
//! (`lifeboat::snapshot::advance`). Requests: `event.rs`.
//!
//! Settings (`lifeboat_lambda::Settings`; a missing or bad one fails the
//! init): `LIFEBOAT_TABLE`, the plan file (required; README.md, "Backup
//! plans"; a plan file with problems fails the init, listing every problem)
//! and, for plans that dump databases, `LIFEBOAT_STORE` and `LIFEBOAT_KMS_KEY`.
//!
//! Answers a `SnapshotSummary` (`outcome.rs`: logged, counted as
//! `BackupsCompleted`/`BackupsFailed`); a failed resource or copy fails the
//! invocation with `Lifeboat.SnapshotFailed` after the others proceeded; a
//! bad event fails with `Lifeboat.BadEvent`, the catalog with
//! `Lifeboat.Catalog`, listing RDS with `Lifeboat.Rds`.

mod dumps;
mod event;
mod outcome;

use jiff::Timestamp;
use lambda_runtime::{service_fn, LambdaEvent};
use lifeboat::plan::Plan;
use lifeboat::rds::Rds;
use lifeboat::snapshot::{advance, run_scheduled, SnapshotSummary};
use lifeboat::storage::Location;
use lifeboat_lambda::{init_tracing, Context, Failure};

use crate::event::SnapshotRequest;

struct Function {
    context: Context,
    plans: Vec<Plan>,
    rds: Rds,
    /// Where plans' database dumps go.
    store: Option<Location>,
}

impl Function {
    async fn handle(&self, event: LambdaEvent<serde_json::Value>) -> Result<SnapshotSummary, Failure> {
        let now = Timestamp::now();
        let snapshots = self.context.catalog.snapshots();
        let summary = match SnapshotRequest::from_event(event.payload).map_err(Failure::BadEvent)? {
            SnapshotRequest::Scheduled { plan, scheduled_time } => {
                tracing::info!(plan = %plan, scheduled_time = %scheduled_time, "scheduled snapshot run");
                let mut summary = run_scheduled(&self.rds, &snapshots, &self.plans, &plan, scheduled_time, now).await?;
                let dumps = self.plans.iter().find(|p| p.name == plan);
                let store = self.store.as_ref();
                dumps::dump(&self.context, store, dumps, scheduled_time, now, &mut summary).await?;
                summary
            }
            SnapshotRequest::RdsEvent {
                snapshot,
                event_id,
                message,
            } => {
                tracing::info!(snapshot = %snapshot, event_id = %event_id, message = %message, "RDS snapshot event");
                advance(&self.rds, &snapshots, &self.plans, now).await?
            }
            SnapshotRequest::Ignored { reason } => {
                tracing::info!(reason = %reason, "event ignored");
                SnapshotSummary::default()
            }
        };
        outcome::report(summary)
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let context = Context::load().await?;
    let plans = context.plans.clone().ok_or(
        "the function's environment names no plan file: set LIFEBOAT_PLANS (s3://BUCKET/KEY or a path) or LIFEBOAT_PLANS_TOML (see infra/)",
    )?;
    let store = dumps::dump_store(&context, &plans)?;
    let function = Function {
        rds: Rds::new(&context.config),
        context,
        plans,
        store,
    };
    let function = &function;
    lambda_runtime::run(service_fn(move |event| async move { function.handle(event).await })).await
}
