//! The alert Lambda: on its schedule (and on failure events), evaluates the
//! alert rules against the catalog and publishes each condition that began
//! or cleared to an SNS topic, once (`lifeboat::alert::run_alerts`).
//!
//! Settings (read once at start; a missing one fails the init):
//! `LIFEBOAT_TABLE` (the catalog table, default `lifeboat-catalog`) and
//! `LIFEBOAT_ALERT_TOPIC_ARN` (required). The request is the rules, with
//! optional `digest` and `at` (see `event.rs` and `events/alert-scheduled.json`).
//! Answers an `AlertSummary`; a bad event fails with `Lifeboat.BadEvent`,
//! the catalog with `Lifeboat.Catalog`, SNS with `Lifeboat.Publish`.

mod event;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use lifeboat::alert::{run_alerts, AlertError, AlertSummary, AlertTopic};
use lifeboat::aws::{load_config, Clients};
use lifeboat::catalog::{Catalog, DEFAULT_TABLE};
use lifeboat_lambda::{diagnostic, init_tracing, required_setting, setting};

use crate::event::AlertRequest;

struct Function {
    catalog: Catalog,
    topic: AlertTopic,
}

impl Function {
    async fn handle(&self, event: LambdaEvent<serde_json::Value>) -> Result<AlertSummary, Diagnostic> {
        let request = AlertRequest::from_event(event.payload).map_err(|e| diagnostic("Lifeboat.BadEvent", e))?;
        let now = request.at.unwrap_or_else(time::OffsetDateTime::now_utc);
        tracing::info!(sources = request.rules.sources.len(), digest = request.digest, at = ?request.at, "alert run");
        let summary = run_alerts(&self.catalog, &self.topic, &request.rules, now, request.digest)
            .await
            .map_err(|e| match e {
                AlertError::Catalog(_) => diagnostic("Lifeboat.Catalog", e),
                AlertError::Publish { .. } => diagnostic("Lifeboat.Publish", e),
            })?;
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
    let function = Function {
        catalog: Catalog::new(clients.dynamodb.clone(), &table, &clients.region),
        topic: AlertTopic::new(aws_sdk_sns::Client::new(&config), &topic_arn),
    };
    let function = &function;
    lambda_runtime::run(service_fn(move |event| async move { function.handle(event).await })).await
}
