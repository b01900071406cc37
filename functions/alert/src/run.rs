//! One alert run: the plans' snapshot conditions (when the function has a
//! plan file) and the rules' conditions evaluated and published
//! (`lifeboat::alert::run_alerts_with`), with the run's metrics.

use lifeboat::alert::{run_alerts_with, AlertSummary, AlertTopic};
use lifeboat::snapshot::alerts::{snapshot_conditions, SnapshotAlertRules};
use lifeboat_lambda::{Context, Failure, Metrics};

use crate::event::AlertRequest;

pub async fn run_alerts(context: &Context, topic: &AlertTopic, request: AlertRequest) -> Result<AlertSummary, Failure> {
    let now = request.at.unwrap_or_else(jiff::Timestamp::now);
    tracing::info!(sources = request.rules.sources.len(), digest = request.digest, at = ?request.at, "alert run");
    let snapshots = match &context.plans {
        Some(plans) => {
            let rules = SnapshotAlertRules {
                failed_lookback: request.rules.failed_lookback,
                verification_max_age: request.rules.verification_max_age,
            };
            Some(snapshot_conditions(&context.catalog.snapshot_checks(), plans, &rules, now).await?)
        }
        None => None,
    };
    let summary = run_alerts_with(&context.catalog, topic, &request.rules, snapshots, now, request.digest)
        .await
        .map_err(Failure::from)
        .inspect_err(|failure| {
            if let Failure::Publish(_) = failure {
                Metrics::new().put("AlertsFailed", 1.0, "Count").emit();
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
