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
//! Settings: `LIFEBOAT_TABLE`, `LIFEBOAT_STORE` and `LIFEBOAT_KMS_KEY`
//! (defaults for events that name none), `LIFEBOAT_CONCURRENCY`, and the
//! plan file (`LIFEBOAT_PLANS` or `LIFEBOAT_PLANS_TOML`, as the snapshot
//! function reads it), needed for plan runs by name and for S3 events; a
//! plan file with problems fails the init.
//!
//! A plan run backs up each of the plan's S3 sources (incremental: each
//! backup is complete on its own). An S3 event backs up the objects it
//! names into each plan source containing them: a backup whose tree is the
//! source's newest backup plus these objects. An object no plan covers fails
//! the invocation with `Lifeboat.NotCovered` before anything is backed up;
//! an object gone by the time the event arrives fails its backup
//! (`Lifeboat.BackupFailed`, naming it).

mod event;
mod routing;

use std::sync::Arc;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use lifeboat::aws::{load_config, Clients};
use lifeboat::backup::{run_backup, BackupOptions, BackupSummary};
use lifeboat::catalog::{Catalog, DEFAULT_TABLE};
use lifeboat::format::BackupType;
use lifeboat::plan::Plan;
use lifeboat::repo::Repository;
use lifeboat::snapshot::load_plans;
use lifeboat::snapshot::plan_source;
use lifeboat::storage::Location;
use lifeboat_lambda::{diagnostic, init_tracing, setting, Metrics};
use serde::Serialize;

use crate::event::{BackupRequest, FileRequest};
use crate::routing::{file_sources, route, source_name};

/// Settings from the function's environment, read once at start.
struct Settings {
    table: String,
    default_store: Option<String>,
    default_kms_key: Option<String>,
    concurrency: usize,
}

impl Settings {
    fn from_env() -> Result<Self, String> {
        let var = setting;
        let concurrency = match var("LIFEBOAT_CONCURRENCY") {
            None => 4,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("LIFEBOAT_CONCURRENCY={text:?} is not a positive whole number"))?,
        };
        if let Some(store) = var("LIFEBOAT_STORE") {
            Location::parse(&store).map_err(|e| format!("LIFEBOAT_STORE: {e}"))?;
        }
        Ok(Self {
            table: var("LIFEBOAT_TABLE").unwrap_or_else(|| DEFAULT_TABLE.to_owned()),
            default_store: var("LIFEBOAT_STORE"),
            default_kms_key: var("LIFEBOAT_KMS_KEY"),
            concurrency,
        })
    }
}

struct Function {
    settings: Settings,
    clients: Clients,
    /// The plan file, when the environment names one.
    plans: Option<Vec<Plan>>,
}

/// The function's answer: one backup's summary for an event that carries
/// its plan; the list of backups made for a plan run or an S3 event.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Answer {
    One(BackupSummary),
    #[serde(rename_all = "camelCase")]
    Many {
        backups: Vec<BackupSummary>,
        /// Objects the event named that hold nothing to back up (folder markers).
        skipped: Vec<String>,
    },
}

/// One backup to make.
struct Job {
    source: Location,
    backup_type: BackupType,
    store: Option<String>,
    kms_key: Option<String>,
    concurrency: Option<usize>,
    retention_days: Option<u32>,
    idempotency_key: Option<String>,
    objects: Option<Vec<String>>,
}

impl Function {
    async fn handle(&self, event: LambdaEvent<serde_json::Value>) -> Result<Answer, Diagnostic> {
        let request = FileRequest::from_event(event.payload).map_err(|e| diagnostic("Lifeboat.BadEvent", e))?;
        match request {
            FileRequest::Backup(request) => self.backup(self.job(request)?).await.map(Answer::One),
            FileRequest::PlanRun { plan, scheduled_time } => {
                let plan = self.plan(&plan)?;
                let sources = file_sources(plan).map_err(|e| diagnostic("Lifeboat.BadEvent", e))?;
                if sources.is_empty() {
                    return Err(diagnostic(
                        "Lifeboat.BadEvent",
                        format!(
                            "plan {} has no file sources (s3://...): its schedule is the snapshot function's",
                            plan.name
                        ),
                    ));
                }
                let minute = scheduled_time.strftime("%Y-%m-%dT%H:%MZ").to_string();
                tracing::info!(plan = %plan.name, scheduled_time = %scheduled_time, "plan run");
                let jobs = sources
                    .into_iter()
                    .map(|source| Job {
                        idempotency_key: Some(format!("plan:{}:{}:{minute}", plan.name, source_name(&source))),
                        ..Job::incremental(source)
                    })
                    .collect();
                self.backup_all(jobs, Vec::new()).await
            }
            FileRequest::ObjectsCreated(objects) => {
                let plans = self.plans.as_deref().ok_or_else(|| {
                    diagnostic(
                        "Lifeboat.BadEvent",
                        "an S3 event needs the plan file to know which source an object belongs to: set LIFEBOAT_PLANS",
                    )
                })?;
                let routes = route(plans, &objects).map_err(|e| diagnostic("Lifeboat.NotCovered", e))?;
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
                self.backup_all(jobs, routes.skipped).await
            }
        }
    }

    fn plan(&self, name: &str) -> Result<&Plan, Diagnostic> {
        let plans = self.plans.as_deref().ok_or_else(|| {
            diagnostic(
                "Lifeboat.BadEvent",
                format!("the event names plan {name}, but the function has no plan file: set LIFEBOAT_PLANS"),
            )
        })?;
        plans.iter().find(|p| p.name == name).ok_or_else(|| {
            let names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
            diagnostic(
                "Lifeboat.BadEvent",
                format!("the plan file has no plan {name} (its plans: {})", names.join(", ")),
            )
        })
    }

    fn job(&self, request: BackupRequest) -> Result<Job, Diagnostic> {
        let source =
            Location::parse(&request.source).map_err(|e| diagnostic("Lifeboat.BadEvent", format!("source: {e}")))?;
        Ok(Job {
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

    /// Each job in turn; the failures together fail the invocation after the others ran.
    async fn backup_all(&self, jobs: Vec<Job>, skipped: Vec<String>) -> Result<Answer, Diagnostic> {
        let mut backups = Vec::new();
        let mut failures = Vec::new();
        for job in jobs {
            let source = source_name(&job.source);
            match self.backup(job).await {
                Ok(summary) => backups.push(summary),
                Err(error) if error.error_type == "Lifeboat.BackupFailed" => {
                    failures.push(format!("{source}: {}", error.error_message))
                }
                Err(error) => return Err(error),
            }
        }
        if failures.is_empty() {
            return Ok(Answer::Many { backups, skipped });
        }
        let done: Vec<&str> = backups.iter().map(|b| b.backup_id.as_str()).collect();
        Err(diagnostic(
            "Lifeboat.BackupFailed",
            format!(
                "{} backup(s) failed: {}; completed: {}",
                failures.len(),
                failures.join("; "),
                if done.is_empty() {
                    "none".to_owned()
                } else {
                    done.join(", ")
                }
            ),
        ))
    }

    async fn backup(&self, job: Job) -> Result<BackupSummary, Diagnostic> {
        let store = job
            .store
            .clone()
            .or_else(|| self.settings.default_store.clone())
            .ok_or_else(|| {
                diagnostic(
                    "Lifeboat.BadEvent",
                    "the event names no store and LIFEBOAT_STORE is not set",
                )
            })?;
        let store = Location::parse(&store).map_err(|e| diagnostic("Lifeboat.BadEvent", format!("store: {e}")))?;
        let kms_key = job.kms_key.clone().or_else(|| self.settings.default_kms_key.clone());
        tracing::info!(source = %job.source, store = %store, backup_type = job.backup_type.as_str(), idempotency_key = ?job.idempotency_key, "backup requested");

        let repo = Repository::open_at(&store, &self.clients, kms_key.as_deref())
            .await
            .map_err(|e| diagnostic("Lifeboat.Store", e))?;
        let catalog = Catalog::new(
            self.clients.dynamodb.clone(),
            &self.settings.table,
            &self.clients.region,
        );
        let mut options = BackupOptions::new(job.source, job.backup_type);
        options.concurrency = job.concurrency.unwrap_or(self.settings.concurrency);
        options.idempotency_key = job.idempotency_key;
        options.retention_days = job.retention_days;
        options.objects = job.objects;
        let result = run_backup(
            Arc::new(repo),
            &catalog,
            &self.clients.s3,
            &self.clients.region,
            &options,
        )
        .await;
        match &result {
            Ok(summary) if summary.duplicate => {}
            Ok(summary) => Metrics::new()
                .put("BackupsCompleted", 1.0, "Count")
                .put("BytesStored", summary.bytes_stored as f64, "Bytes")
                .emit(),
            Err(_) => Metrics::new().put("BackupsFailed", 1.0, "Count").emit(),
        }
        result.map_err(|e| diagnostic("Lifeboat.BackupFailed", e))
    }
}

impl Job {
    /// A plan's scheduled or continuous backup of `source`, into the function's store.
    fn incremental(source: Location) -> Self {
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

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let settings = Settings::from_env()?;
    let config = load_config(None).await?;
    let clients = Clients::new(&config);
    // Every problem of the plan file, in words, in the log and the init error.
    let plans = match plan_source(setting("LIFEBOAT_PLANS_TOML"), setting("LIFEBOAT_PLANS"))? {
        Some(source) => Some(
            load_plans(&source, &clients.s3, jiff::Timestamp::now())
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "the plan file cannot be used; the function does not start");
                    e.to_string()
                })?,
        ),
        None => None,
    };
    let function = Function {
        settings,
        clients,
        plans,
    };
    let function = &function;
    lambda_runtime::run(service_fn(move |event| async move { function.handle(event).await })).await
}
