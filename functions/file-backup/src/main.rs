//! The file-backup Lambda: backs up an S3 prefix or a mounted directory (EFS)
//! into the Lifeboat store, on an EventBridge schedule or when invoked.
//!
//! A thin adapter: it reads its settings once at start, turns the event into
//! `lifeboat::backup::BackupOptions`, makes one library call and returns the
//! summary. A failed backup fails the invocation (so EventBridge retries and
//! the alert function sees it); a redelivered event makes no second backup.

mod event;

use std::sync::Arc;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use lifeboat::aws::{load_config, Clients};
use lifeboat::backup::{run_backup, BackupOptions, BackupSummary};
use lifeboat::catalog::{Catalog, DEFAULT_TABLE};
use lifeboat::repo::Repository;
use lifeboat::storage::Location;
use lifeboat_lambda::{diagnostic, init_tracing, setting, Metrics};

use crate::event::BackupRequest;

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
}

impl Function {
    async fn handle(&self, event: LambdaEvent<serde_json::Value>) -> Result<BackupSummary, Diagnostic> {
        let request = BackupRequest::from_event(event.payload).map_err(|e| diagnostic("Lifeboat.BadEvent", e))?;
        let store = request
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
        let source =
            Location::parse(&request.source).map_err(|e| diagnostic("Lifeboat.BadEvent", format!("source: {e}")))?;
        let kms_key = request
            .kms_key
            .clone()
            .or_else(|| self.settings.default_kms_key.clone());
        tracing::info!(source = %source, store = %store, backup_type = request.backup_type.as_str(), idempotency_key = ?request.idempotency_key, "backup requested");

        let repo = Repository::open_at(&store, &self.clients, kms_key.as_deref())
            .await
            .map_err(|e| diagnostic("Lifeboat.Store", e))?;
        let catalog = Catalog::new(
            self.clients.dynamodb.clone(),
            &self.settings.table,
            &self.clients.region,
        );
        let mut options = BackupOptions::new(source, request.backup_type);
        options.concurrency = request.concurrency.unwrap_or(self.settings.concurrency);
        options.idempotency_key = request.idempotency_key;
        options.retention_days = request.retention_days;
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

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let settings = Settings::from_env()?;
    let config = load_config(None).await?;
    let function = Function {
        settings,
        clients: Clients::new(&config),
    };
    let function = &function;
    lambda_runtime::run(service_fn(move |event| async move { function.handle(event).await })).await
}
