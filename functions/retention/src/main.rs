//! The retention Lambda: expires what plans no longer keep. One request,
//! one job (`event.rs`; the scheduled event's `detail`, or the direct payload):
//!
//! - `{"store": "s3://bucket/prefix", "source": "s3://data/app/",
//!   "policy": {"daily": 7, "weekly": 5, "timezone": "Europe/Berlin"},
//!   "dryRun": false, "collectGarbage": true, "graceMinutes": 60}`
//!   (`events/retention-scheduled.json`): file backups expired by the
//!   policy, then their garbage collected (`files.rs`; a daily schedule
//!   sweeps what the previous day marked);
//! - `{"snapshots": true, "plans": ["db-nightly"], "dryRun": false}`
//!   (`events/retention-snapshots.json`): each plan's own retention applied
//!   to its RDS snapshots (plan file: `LIFEBOAT_PLANS` or
//!   `LIFEBOAT_PLANS_TOML`; all plans without `plans`; `snapshots.rs`).
//!
//! Settings (`lifeboat_lambda::Settings`): `LIFEBOAT_TABLE`,
//! `LIFEBOAT_STORE` (for requests that name no store), the plan file, and
//! `LIFEBOAT_DRY_RUN=true`, which forces dry runs whatever the event.

mod event;
mod files;
mod snapshots;
mod summary;

use lambda_runtime::LambdaEvent;
use lifeboat::rds::Rds;
use lifeboat_lambda::{Context, Failure, Handler};

use crate::event::RetentionJob;
use crate::summary::RetentionSummary;

/// The function: the RDS client of its region.
struct Function(Rds);

impl Handler for Function {
    type Response = RetentionSummary;

    async fn handle(
        &self,
        context: &Context,
        event: LambdaEvent<serde_json::Value>,
    ) -> Result<RetentionSummary, Failure> {
        let Function(rds) = self;
        let force_dry_run = context.settings.dry_run;
        match RetentionJob::from_event(event.payload)? {
            RetentionJob::Snapshots { plans, dry_run } => {
                snapshots::expire_snapshots(context, rds, &plans, dry_run || force_dry_run).await
            }
            RetentionJob::Files { store, mut retention } => {
                retention.dry_run |= force_dry_run;
                let repo = context.open(&context.store(store, "request")?, None).await?;
                files::expire_files(context, &repo, retention).await
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lifeboat_lambda::run(|context| Function(Rds::new(&context.config))).await
}
