//! The alert Lambda: on its schedule (and on failure events), evaluates the
//! alert rules against the catalog and publishes each condition that began
//! or cleared to an SNS topic, once (`lifeboat::alert::run_alerts`).
//!
//! Settings (read once at start; a missing one fails the init):
//! `LIFEBOAT_TABLE` (the catalog table, default `lifeboat-catalog`) and
//! `LIFEBOAT_ALERT_TOPIC_ARN` (required). The request is the rules, with
//! optional `digest` and `at` (see `event.rs` and `events/alert-scheduled.json`).
//! With a plan file (`LIFEBOAT_PLANS` or `LIFEBOAT_PLANS_TOML`, as the
//! snapshot function reads it), the plans' RDS snapshots are checked too
//! (`lifeboat::snapshot::alerts`: failed snapshots and copies, RPO per
//! plan, copies missing in a copy region, failed or stale verifications;
//! `failedLookbackHours` and `verificationMaxAgeHours` apply to them).
//! Answers an `AlertSummary`; a bad event fails with `Lifeboat.BadEvent`,
//! the catalog with `Lifeboat.Catalog`, SNS with `Lifeboat.Publish`.

mod event;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use lifeboat::alert::{run_alerts_with, AlertError, AlertSummary, AlertTopic};
use lifeboat::aws::{load_config, Clients};
use lifeboat::catalog::{Catalog, DEFAULT_TABLE};
use lifeboat::plan::Plan;
use lifeboat::snapshot::alerts::{snapshot_conditions, SnapshotAlertRules};
use lifeboat::snapshot::load_plans;
use lifeboat::snapshot::plan_source;
use lifeboat_lambda::{diagnostic, init_tracing, required_setting, setting, Metrics};

use crate::event::AlertRequest;

struct Function {
    catalog: Catalog,
    topic: AlertTopic,
    /// The plan file's plans, when the function has one: their snapshots are checked.
    plans: Option<Vec<Plan>>,
}

impl Function {
    async fn handle(&self, event: LambdaEvent<serde_json::Value>) -> Result<AlertSummary, Diagnostic> {
        let request = AlertRequest::from_event(event.payload).map_err(|e| diagnostic("Lifeboat.BadEvent", e))?;
        let now = request.at.unwrap_or_else(time::OffsetDateTime::now_utc);
        tracing::info!(sources = request.rules.sources.len(), digest = request.digest, at = ?request.at, "alert run");
        let snapshots = match &self.plans {
            Some(plans) => {
                let rules = SnapshotAlertRules {
                    failed_lookback: request.rules.failed_lookback,
                    verification_max_age: request.rules.verification_max_age,
                };
                Some(
                    snapshot_conditions(&self.catalog.snapshot_checks(), plans, &rules, now)
                        .await
                        .map_err(|e| diagnostic("Lifeboat.Catalog", e))?,
                )
            }
            None => None,
        };
        let summary = run_alerts_with(
            &self.catalog,
            &self.topic,
            &request.rules,
            snapshots,
            now,
            request.digest,
        )
        .await
        .map_err(|e| match e {
            AlertError::Catalog(_) => diagnostic("Lifeboat.Catalog", e),
            AlertError::Publish { .. } => {
                Metrics::new().put("AlertsFailed", 1.0, "Count").emit();
                diagnostic("Lifeboat.Publish", e)
            }
        })?;
        for age in &summary.rpo_ages {
            if let Some(seconds) = age.age_seconds {
                Metrics::with_dimension("Source", &age.source)
                    .put("RpoAgeSeconds", seconds as f64, "Seconds")
                    .emit();
            }
        }
        tracing::info!(
            opened = summary.opened.len(),
            still_open = summary.still_open.len(),
            resolved = summary.resolved.len(),
            sent = summary.sent,
            "alert run done"
        );
        Ok(summary)
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let table = setting("LIFEBOAT_TABLE").unwrap_or_else(|| DEFAULT_TABLE.to_owned());
    let topic_arn = required_setting("LIFEBOAT_ALERT_TOPIC_ARN")?;
    let config = load_config(None).await?;
    let clients = Clients::new(&config);
    let plans = match plan_source(setting("LIFEBOAT_PLANS_TOML"), setting("LIFEBOAT_PLANS"))? {
        Some(source) => Some(load_plans(&source, &clients.s3, jiff::Timestamp::now()).await?),
        None => None,
    };
    let function = Function {
        catalog: Catalog::new(clients.dynamodb.clone(), &table, &clients.region),
        topic: AlertTopic::new(aws_sdk_sns::Client::new(&config), &topic_arn),
        plans,
    };
    let function = &function;
    lambda_runtime::run(service_fn(move |event| async move { function.handle(event).await })).await
}
