//! The verify Lambda: proves backups and snapshots are readable, and
//! records each result in the catalog. One request, one job (`event.rs`,
//! `events/verify-*.json`): the newest completed backup of each source, or
//! one backup, read back (`backups.rs`, quick or deep); a share of the
//! store's packs read whole (`backups.rs`, sample); the plans' newest RDS
//! snapshots checked, and restore-tested if asked (`snapshots.rs`); the
//! plans' scheduled restore tests advanced while the invocation's deadline
//! leaves time (`snapshots.rs`).
//!
//! Settings (`lifeboat_lambda::Settings`): `LIFEBOAT_TABLE`,
//! `LIFEBOAT_STORE` (for requests that name no store), the plan file
//! (`LIFEBOAT_PLANS` or `LIFEBOAT_PLANS_TOML`, for snapshots). Damage found
//! fails the invocation (type `Lifeboat.DamageFound`), so the function's
//! error alarm fires as well as the alert function's condition.

mod backups;
mod event;
mod snapshots;
mod summary;

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};
use lifeboat::rds::Rds;
use lifeboat_lambda::{init_tracing, Context, Failure};

use crate::event::VerifyJob;
use crate::summary::VerifySummary;

struct Function {
    context: Context,
    rds: Rds,
}

impl Function {
    async fn handle(&self, event: LambdaEvent<serde_json::Value>) -> Result<VerifySummary, Failure> {
        let deadline = event.context.deadline;
        let context = &self.context;
        match VerifyJob::from_event(event.payload)? {
            VerifyJob::RestoreTests { plans } => snapshots::restore_tests(context, &self.rds, &plans, deadline).await,
            VerifyJob::Snapshots { plans, restore_test } => {
                snapshots::verify_snapshots(context, &self.rds, &plans, restore_test).await
            }
            VerifyJob::Sample {
                store,
                percent,
                concurrency,
            } => {
                let repo = context.open(&context.store(store, "request")?, None).await?;
                backups::sample(context, Arc::new(repo), percent, concurrency).await
            }
            VerifyJob::Backups {
                store,
                mode,
                backup_id,
                sources,
                concurrency,
            } => {
                let repo = context.open(&context.store(store, "request")?, None).await?;
                backups::verify_backups(context, Arc::new(repo), mode, backup_id, sources, concurrency).await
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let context = Context::load().await?;
    let function = Function {
        rds: Rds::new(&context.config),
        context,
    };
    let function = &function;
    lambda_runtime::run(service_fn(move |event| async move { function.handle(event).await })).await
}
