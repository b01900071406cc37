//! The backups an event asks for, made one after the other
//! (`lifeboat::backup::run_backup`), into the store the event names or the
//! function's; with the function's answer.

use std::sync::Arc;

use lifeboat::backup::{run_backup, BackupError, BackupOptions, BackupSummary};
use lifeboat::format::BackupType;
use lifeboat::plan::Plan;
use lifeboat::storage::Location;
use lifeboat_lambda::{Context, Failure, Metrics};
use serde::Serialize;

use crate::event::{BackupRequest, CreatedObject};
use crate::routing::{file_sources, route, source_name};

/// The function's answer: one backup's summary for an event that carries
/// its plan; the list of backups made for a plan run or an S3 event.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Answer {
    One(BackupSummary),
    #[serde(rename_all = "camelCase")]
    Many {
        backups: Vec<BackupSummary>,
        /// Objects the event named that hold nothing to back up (folder markers).
        skipped: Vec<String>,
    },
}

/// One backup to make: the library's options, and what the function's
/// settings fill in when the event leaves them out.
pub struct Job {
    pub options: BackupOptions,
    pub store: Option<String>,
    pub kms_key: Option<String>,
    pub concurrency: Option<usize>,
}

impl Job {
    /// The backup an event's own plan asks for.
    pub fn requested(request: BackupRequest) -> Result<Self, Failure> {
        let source = Location::parse(&request.source).map_err(|e| Failure::BadEvent(format!("source: {e}")))?;
        let mut options = BackupOptions::new(source, request.backup_type);
        options.retention_days = request.retention_days;
        options.idempotency_key = request.idempotency_key;
        Ok(Self {
            options,
            store: request.store,
            kms_key: request.kms_key,
            concurrency: request.concurrency,
        })
    }

    /// A plan's scheduled or continuous backup of `source`, into the
    /// function's store, made idempotent by `key`.
    pub fn incremental(source: Location, key: String, objects: Option<Vec<String>>) -> Self {
        let mut options = BackupOptions::new(source, BackupType::Incremental);
        options.idempotency_key = Some(key);
        options.objects = objects;
        Self {
            options,
            store: None,
            kms_key: None,
            concurrency: None,
        }
    }
}

/// A plan run: a backup of each of the plan's file sources, keyed by the
/// plan, the source and the scheduled minute.
pub fn plan_run(context: &Context, name: &str, scheduled_time: jiff::Timestamp) -> Result<Vec<Job>, Failure> {
    let plan = plan(context, name)?;
    let sources = file_sources(plan).map_err(Failure::BadEvent)?;
    if sources.is_empty() {
        return Err(Failure::BadEvent(format!(
            "plan {} has no file sources (s3://...): its schedule is the snapshot function's",
            plan.name
        )));
    }
    let minute = scheduled_time.strftime("%Y-%m-%dT%H:%MZ").to_string();
    tracing::info!(plan = %plan.name, scheduled_time = %scheduled_time, "plan run");
    Ok(sources
        .into_iter()
        .map(|source| {
            let key = format!("plan:{}:{}:{minute}", plan.name, source_name(&source));
            Job::incremental(source, key, None)
        })
        .collect())
}

/// Continuous backup: a backup of the created objects into each plan
/// source containing them, and the objects skipped (folder markers).
pub fn objects_created(context: &Context, objects: &[CreatedObject]) -> Result<(Vec<Job>, Vec<String>), Failure> {
    let plans = context.plans.as_deref().ok_or_else(|| {
        Failure::BadEvent(
            "an S3 event needs the plan file to know which source an object belongs to: set LIFEBOAT_PLANS".to_owned(),
        )
    })?;
    let routes = route(plans, objects).map_err(Failure::NotCovered)?;
    for skipped in &routes.skipped {
        tracing::info!(object = %skipped, "a folder marker: nothing to back up");
    }
    let jobs = routes
        .routes
        .into_iter()
        .map(|r| {
            tracing::info!(source = %source_name(&r.source), objects = ?r.paths, "objects created");
            Job::incremental(r.source, r.idempotency_key, Some(r.paths))
        })
        .collect();
    Ok((jobs, routes.skipped))
}

/// The plan file's plan `name`.
fn plan<'a>(context: &'a Context, name: &str) -> Result<&'a Plan, Failure> {
    let plans = context.plans.as_deref().ok_or_else(|| {
        Failure::BadEvent(format!(
            "the event names plan {name}, but the function has no plan file: set LIFEBOAT_PLANS"
        ))
    })?;
    plans.iter().find(|p| p.name == name).ok_or_else(|| {
        let names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
        Failure::BadEvent(format!(
            "the plan file has no plan {name} (its plans: {})",
            names.join(", ")
        ))
    })
}

/// Each job in turn; the failed backups together fail the invocation
/// after the others ran (`Lifeboat.BackupInProgress` when every one of them
/// was only still running elsewhere); any other failure stops at once.
pub async fn backup_all(context: &Context, jobs: Vec<Job>, skipped: Vec<String>) -> Result<Answer, Failure> {
    let mut backups = Vec::new();
    let mut failures = Vec::new();
    let mut only_in_progress = true;
    for job in jobs {
        let source = source_name(&job.options.source);
        match backup(context, job).await {
            Ok(summary) => backups.push(summary),
            Err(Failure::BackupFailed(message)) => {
                only_in_progress = false;
                failures.push(format!("{source}: {message}"));
            }
            Err(Failure::BackupInProgress(message)) => failures.push(format!("{source}: {message}")),
            Err(other) => return Err(other),
        }
    }
    if failures.is_empty() {
        return Ok(Answer::Many { backups, skipped });
    }
    let done: Vec<&str> = backups.iter().map(|b| b.backup_id.as_str()).collect();
    let failure = if only_in_progress {
        Failure::BackupInProgress
    } else {
        Failure::BackupFailed
    };
    Err(failure(format!(
        "{} backup(s) failed: {}; completed: {}",
        failures.len(),
        failures.join("; "),
        if done.is_empty() {
            "none".to_owned()
        } else {
            done.join(", ")
        }
    )))
}

/// Makes one backup; a backup that failed is `Failure::BackupFailed`, one
/// still running elsewhere (or whose source stayed leased) is
/// `Failure::BackupInProgress`: both retryable, neither reported as done.
pub async fn backup(context: &Context, job: Job) -> Result<BackupSummary, Failure> {
    let store = context.store(job.store, "event")?;
    let kms_key = job.kms_key.or_else(|| context.settings.kms_key.clone());
    let mut options = job.options;
    tracing::info!(source = %options.source, store = %store, backup_type = options.backup_type.as_str(), idempotency_key = ?options.idempotency_key, "backup requested");
    let repo = context.open(&store, kms_key.as_deref()).await?;
    options.concurrency = job.concurrency.unwrap_or(context.settings.concurrency);
    let clients = &context.clients;
    let result = run_backup(Arc::new(repo), &context.catalog, &clients.s3, &clients.region, &options).await;
    match &result {
        Ok(summary) if summary.duplicate => {}
        Ok(summary) => Metrics::new()
            .put("BackupsCompleted", 1.0, "Count")
            .put("BytesStored", summary.bytes_stored as f64, "Bytes")
            .emit(),
        Err(_) => Metrics::new().put("BackupsFailed", 1.0, "Count").emit(),
    }
    result.map_err(|e| match e {
        BackupError::InProgress { .. } | BackupError::SourceBusy { .. } => Failure::BackupInProgress(e.to_string()),
        other => Failure::BackupFailed(other.to_string()),
    })
}
