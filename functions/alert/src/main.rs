//! The alert Lambda: on its schedule (and on failure events), evaluates the
//! alert rules against the catalog and publishes each condition that began
//! or cleared to an SNS topic, once (`run.rs`, over `lifeboat::alert`).
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
mod run;

use lambda_runtime::{service_fn, LambdaEvent};
use lifeboat::alert::{AlertSummary, AlertTopic};
use lifeboat_lambda::{init_tracing, Context, Failure, Settings};

use crate::event::AlertRequest;

struct Function {
    context: Context,
    topic: AlertTopic,
}

impl Function {
    async fn handle(&self, event: LambdaEvent<serde_json::Value>) -> Result<AlertSummary, Failure> {
        let request = AlertRequest::from_event(event.payload).map_err(Failure::BadEvent)?;
        run::run_alerts(&self.context, &self.topic, request).await
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let topic_arn = Settings::required("LIFEBOAT_ALERT_TOPIC_ARN")?;
    let context = Context::load().await?;
    let function = Function {
        topic: AlertTopic::new(aws_sdk_sns::Client::new(&context.config), &topic_arn),
        context,
    };
    let function = &function;
    lambda_runtime::run(service_fn(move |event| async move { function.handle(event).await })).await
}
