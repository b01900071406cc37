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

use lambda_runtime::LambdaEvent;
use lifeboat::rds::Rds;
use lifeboat_lambda::{Context, Failure, Handler};

use crate::event::VerifyJob;
use crate::summary::VerifySummary;

/// The function: the RDS client of its region.
struct Function(Rds);

impl Handler for Function {
    type Response = VerifySummary;

    async fn handle(&self, context: &Context, event: LambdaEvent<serde_json::Value>) -> Result<VerifySummary, Failure> {
        let Function(rds) = self;
        let deadline = event.context.deadline;
        match VerifyJob::from_event(event.payload)? {
            VerifyJob::RestoreTests { plans } => snapshots::restore_tests(context, rds, &plans, deadline).await,
            VerifyJob::Snapshots { plans, restore_test } => {
                snapshots::verify_snapshots(context, rds, &plans, restore_test).await
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
    lifeboat_lambda::run(|context| Function(Rds::new(&context.config))).await
}
