//! The verify Lambda: on its schedule, proves the newest completed backup
//! of each source (or one given backup) is readable, quick or deep, and
//! records each result in the catalog (`lifeboat::verify`).
//!
//! Request (the scheduled event's `detail`, or the direct payload; see
//! `events/verify-scheduled.json`):
//! `{"store": "s3://bucket/prefix", "mode": "quick"|"deep", "sources": [...]}`
//! or `{"backupId": "bk-..."}`. Without `sources` or `backupId`, every
//! source with a completed backup in this store is verified.
//!
//! Damage found fails the invocation (type `Lifeboat.DamageFound`), so the
//! function's error alarm fires as well as the alert function's condition.

use std::collections::BTreeSet;
use std::sync::Arc;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use lifeboat::aws::{load_config, Clients};
use lifeboat::catalog::{BackupStatus, Catalog, VerificationType, DEFAULT_TABLE};
use lifeboat::repo::Repository;
use lifeboat::storage::Location;
use lifeboat::verify::{run_verify, VerifyOptions, VerifyReport};
use lifeboat_lambda::{diagnostic, init_tracing, parse_request, setting, Request};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VerifyRequest {
    #[serde(default)]
    store: Option<String>,
    #[serde(default)]
    mode: Option<VerificationType>,
    #[serde(default)]
    sources: Option<Vec<String>>,
    #[serde(default)]
    backup_id: Option<String>,
    #[serde(default)]
    concurrency: Option<usize>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VerifySummary {
    verified: usize,
    damaged: usize,
    reports: Vec<VerifyReport>,
}

struct Function {
    table: String,
    default_store: Option<String>,
    clients: Clients,
}

impl Function {
    async fn handle(&self, event: LambdaEvent<serde_json::Value>) -> Result<VerifySummary, Diagnostic> {
        let Request { body, .. } = parse_request::<VerifyRequest>(event.payload, "events/verify-scheduled.json")
            .map_err(|e| diagnostic("Lifeboat.BadEvent", e))?;
        let store = body.store.or_else(|| self.default_store.clone()).ok_or_else(|| {
            diagnostic(
                "Lifeboat.BadEvent",
                "the request names no store and LIFEBOAT_STORE is not set",
            )
        })?;
        let location = Location::parse(&store).map_err(|e| diagnostic("Lifeboat.BadEvent", format!("store: {e}")))?;
        let repo = Arc::new(
            Repository::open_at(&location, &self.clients, None)
                .await
                .map_err(|e| diagnostic("Lifeboat.Store", e))?,
        );
        let catalog = Catalog::new(self.clients.dynamodb.clone(), &self.table, &self.clients.region);
        let targets = self.targets(&repo, &catalog, body.backup_id, body.sources).await?;
        let mode = body.mode.unwrap_or(VerificationType::Quick);
        let mut reports = Vec::with_capacity(targets.len());
        for id in targets {
            let mut options = VerifyOptions::new(&id, mode);
            options.concurrency = body.concurrency.unwrap_or(options.concurrency).max(1);
            let report = run_verify(repo.clone(), &catalog, &options)
                .await
                .map_err(|e| diagnostic("Lifeboat.VerifyFailed", e))?;
            tracing::info!(backup_id = %report.backup_id, mode = mode.as_str(), ok = report.ok, problems = report.problems.len(), "verified");
            reports.push(report);
        }
        let damaged: Vec<&VerifyReport> = reports.iter().filter(|r| !r.ok).collect();
        if !damaged.is_empty() {
            let lines: Vec<String> = damaged
                .iter()
                .flat_map(|r| {
                    r.problems
                        .iter()
                        .map(move |p| format!("{}: {} {}: {}", r.backup_id, p.object, p.kind.describe(), p.detail))
                })
                .collect();
            return Err(diagnostic("Lifeboat.DamageFound", lines.join("\n")));
        }
        Ok(VerifySummary {
            verified: reports.len(),
            damaged: 0,
            reports,
        })
    }

    /// The backups to verify: the one asked for, or the newest completed
    /// backup of each source asked for (all of this store's, by default).
    async fn targets(
        &self,
        repo: &Repository,
        catalog: &Catalog,
        backup_id: Option<String>,
        sources: Option<Vec<String>>,
    ) -> Result<Vec<String>, Diagnostic> {
        if let Some(id) = backup_id {
            return Ok(vec![id]);
        }
        let manifests = repo.storage.describe(&repo.layout.manifest(""));
        let records = catalog
            .list(None)
            .await
            .map_err(|e| diagnostic("Lifeboat.Catalog", e))?;
        let wanted: Option<BTreeSet<String>> = sources.map(|s| s.into_iter().collect());
        let mut seen = BTreeSet::new();
        let mut targets = Vec::new();
        // Newest first: the first completed backup of a source is its newest.
        for record in records {
            let in_store = record.storage_location.starts_with(&manifests);
            let asked = wanted.as_ref().is_none_or(|w| w.contains(&record.source));
            if in_store && asked && record.status == BackupStatus::Completed && seen.insert(record.source.clone()) {
                targets.push(record.id);
            }
        }
        if let Some(wanted) = wanted {
            let missing: Vec<&String> = wanted.iter().filter(|s| !seen.contains(*s)).collect();
            if !missing.is_empty() {
                return Err(diagnostic(
                    "Lifeboat.NothingToVerify",
                    format!("no completed backup in {manifests} for source(s) {missing:?}"),
                ));
            }
        }
        Ok(targets)
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let config = load_config(None).await?;
    let function = Function {
        table: setting("LIFEBOAT_TABLE").unwrap_or_else(|| DEFAULT_TABLE.to_owned()),
        default_store: setting("LIFEBOAT_STORE"),
        clients: Clients::new(&config),
    };
    if let Some(store) = &function.default_store {
        Location::parse(store).map_err(|e| format!("LIFEBOAT_STORE: {e}"))?;
    }
    let function = &function;
    lambda_runtime::run(service_fn(move |event| async move { function.handle(event).await })).await
}
