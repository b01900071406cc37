//! The file-backup Lambda: backs up an S3 prefix or a mounted directory (EFS)
//! into the Lifeboat store, on an EventBridge schedule, when invoked, or as
//! S3 objects are created (continuous backup).
//!
//! A thin adapter: it reads its settings once at start, turns the event into
//! `lifeboat::backup::BackupOptions`, makes one library call per source and
//! returns the summary. A failed backup fails the invocation (so EventBridge
//! retries and the alert function sees it); a redelivered event makes no
//! second backup.
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
use crate::jobs::{backup, backup_all, plan, Answer, Job};
use crate::routing::{file_sources, route, source_name};

async fn handle(context: &Context, event: LambdaEvent<serde_json::Value>) -> Result<Answer, Failure> {
    match FileRequest::from_event(event.payload).map_err(Failure::BadEvent)? {
        FileRequest::Backup(request) => backup(context, Job::requested(request)?).await.map(Answer::One),
        FileRequest::PlanRun {
            plan: name,
            scheduled_time,
        } => {
            let plan = plan(context, &name)?;
            let sources = file_sources(plan).map_err(Failure::BadEvent)?;
            if sources.is_empty() {
                return Err(Failure::BadEvent(format!(
                    "plan {} has no file sources (s3://...): its schedule is the snapshot function's",
                    plan.name
                )));
            }
            let minute = scheduled_time.strftime("%Y-%m-%dT%H:%MZ").to_string();
            tracing::info!(plan = %plan.name, scheduled_time = %scheduled_time, "plan run");
            let key = |source: &_| format!("plan:{}:{}:{minute}", plan.name, source_name(source));
            let jobs = sources
                .into_iter()
                .map(|source| Job {
                    idempotency_key: Some(key(&source)),
                    ..Job::incremental(source)
                })
                .collect();
            backup_all(context, jobs, Vec::new()).await
        }
        FileRequest::ObjectsCreated(objects) => {
            let plans = context.plans.as_deref().ok_or_else(|| {
                Failure::BadEvent(
                    "an S3 event needs the plan file to know which source an object belongs to: set LIFEBOAT_PLANS"
                        .to_owned(),
                )
            })?;
            let routes = route(plans, &objects).map_err(Failure::NotCovered)?;
            for skipped in &routes.skipped {
                tracing::info!(object = %skipped, "a folder marker: nothing to back up");
            }
            let jobs = routes.routes.into_iter().map(|r| {
                tracing::info!(source = %source_name(&r.source), objects = ?r.paths, "objects created");
                Job {
                    idempotency_key: Some(r.idempotency_key),
                    objects: Some(r.paths),
                    ..Job::incremental(r.source)
                }
            });
            backup_all(context, jobs.collect(), routes.skipped).await
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
