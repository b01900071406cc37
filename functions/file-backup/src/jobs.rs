//! The backups an event asks for, made one after the other
//! (`lifeboat::backup::run_backup`), into the store the event names or the
//! function's; with the function's answer.

use std::sync::Arc;

use lifeboat::backup::{run_backup, BackupOptions, BackupSummary};
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

/// One backup to make.
pub struct Job {
    pub source: Location,
    pub backup_type: BackupType,
    pub store: Option<String>,
    pub kms_key: Option<String>,
    pub concurrency: Option<usize>,
    pub retention_days: Option<u32>,
    pub idempotency_key: Option<String>,
    pub objects: Option<Vec<String>>,
}

impl Job {
    /// The backup an event's own plan asks for.
    pub fn requested(request: BackupRequest) -> Result<Self, Failure> {
        let source = Location::parse(&request.source).map_err(|e| Failure::BadEvent(format!("source: {e}")))?;
        Ok(Self {
            source,
            backup_type: request.backup_type,
            store: request.store,
            kms_key: request.kms_key,
            concurrency: request.concurrency,
            retention_days: request.retention_days,
            idempotency_key: request.idempotency_key,
            objects: None,
        })
    }

    /// A plan's scheduled or continuous backup of `source`, into the function's store.
    pub fn incremental(source: Location) -> Self {
        Self {
            source,
            backup_type: BackupType::Incremental,
            store: None,
            kms_key: None,
            concurrency: None,
            retention_days: None,
            idempotency_key: None,
            objects: None,
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
        .map(|source| Job {
            idempotency_key: Some(format!("plan:{}:{}:{minute}", plan.name, source_name(&source))),
            ..Job::incremental(source)
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
            Job {
                idempotency_key: Some(r.idempotency_key),
                objects: Some(r.paths),
                ..Job::incremental(r.source)
            }
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
/// after the others ran; any other failure stops at once.
pub async fn backup_all(context: &Context, jobs: Vec<Job>, skipped: Vec<String>) -> Result<Answer, Failure> {
    let mut backups = Vec::new();
    let mut failures = Vec::new();
    for job in jobs {
        let source = source_name(&job.source);
        match backup(context, job).await {
            Ok(summary) => backups.push(summary),
            Err(Failure::BackupFailed(message)) => failures.push(format!("{source}: {message}")),
            Err(other) => return Err(other),
        }
    }
    if failures.is_empty() {
        return Ok(Answer::Many { backups, skipped });
    }
    let done: Vec<&str> = backups.iter().map(|b| b.backup_id.as_str()).collect();
    Err(Failure::BackupFailed(format!(
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

/// Makes one backup; a backup that failed is `Failure::BackupFailed`.
pub async fn backup(context: &Context, job: Job) -> Result<BackupSummary, Failure> {
    let store = context.store(job.store.clone(), "event")?;
    let kms_key = job.kms_key.clone().or_else(|| context.settings.kms_key.clone());
    tracing::info!(source = %job.source, store = %store, backup_type = job.backup_type.as_str(), idempotency_key = ?job.idempotency_key, "backup requested");
    let repo = context.open(&store, kms_key.as_deref()).await?;
    let mut options = BackupOptions::new(job.source, job.backup_type);
    options.concurrency = job.concurrency.unwrap_or(context.settings.concurrency);
    options.idempotency_key = job.idempotency_key;
    options.retention_days = job.retention_days;
    options.objects = job.objects;
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
    result.map_err(|e| Failure::BackupFailed(e.to_string()))
}
