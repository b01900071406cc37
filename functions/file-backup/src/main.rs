//! The file-backup Lambda: backs up an S3 prefix or a mounted directory (EFS)
//! into the Lifeboat store, on an EventBridge schedule, when invoked, or as
//! S3 objects are created (continuous backup).
//!
//! A thin adapter: it reads its settings once at start, turns the event into
//! `lifeboat::backup::BackupOptions`, makes one library call per source and
//! returns the summary. A failed backup fails the invocation (so EventBridge
//! retries and the alert function sees it); a redelivered event makes no
//! second backup, and one that finds its backup still running fails with
//! `Lifeboat.BackupInProgress` (retryable) instead of reporting success.
//! Backups of one source run one at a time (a lease in the catalog, see
//! `lifeboat::catalog::claims`): a burst of S3 events is serialised, each
//! backup built on the one before.
//!
//! Settings (`lifeboat_lambda::Settings`): `LIFEBOAT_TABLE`,
//! `LIFEBOAT_STORE` and `LIFEBOAT_KMS_KEY` (defaults for events that name
//! none), `LIFEBOAT_CONCURRENCY`, and the plan file (`LIFEBOAT_PLANS` or
//! `LIFEBOAT_PLANS_TOML`), needed for plan runs by name and for S3 events;
//! a plan file with problems fails the init. Backups: `jobs.rs`.
//!
//! A plan run backs up each of the plan's S3 sources (incremental: each
//! backup is complete on its own). An S3 event backs up the objects it
//! names into each plan source containing them: a backup whose tree is the
//! source's newest backup plus these objects. An object no plan covers fails
//! the invocation with `Lifeboat.NotCovered` before anything is backed up;
//! an object gone by the time the event arrives fails its backup
//! (`Lifeboat.BackupFailed`, naming it).

mod event;
mod jobs;
mod routing;

use lambda_runtime::{service_fn, LambdaEvent};
use lifeboat_lambda::{init_tracing, Context, Failure};

use crate::event::FileRequest;
use crate::jobs::{backup, backup_all, objects_created, plan_run, Answer, Job};

async fn handle(context: &Context, event: LambdaEvent<serde_json::Value>) -> Result<Answer, Failure> {
    match FileRequest::from_event(event.payload).map_err(Failure::BadEvent)? {
        FileRequest::Backup(request) => backup(context, Job::requested(request)?).await.map(Answer::One),
        FileRequest::PlanRun { plan, scheduled_time } => {
            backup_all(context, plan_run(context, &plan, scheduled_time)?, Vec::new()).await
        }
        FileRequest::ObjectsCreated(objects) => {
            let (jobs, skipped) = objects_created(context, &objects)?;
            backup_all(context, jobs, skipped).await
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let context = Context::load().await?;
    let context = &context;
    lambda_runtime::run(service_fn(move |event| async move { handle(context, event).await })).await
}
