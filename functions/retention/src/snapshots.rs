//! Each plan's retention applied to its RDS snapshots: the doomed ones
//! deleted in their region and every copy region
//! (`lifeboat::snapshot::retention`); a deletion that failed fails the
//! invocation as `Lifeboat.RetentionPartial`.

use lifeboat::rds::Rds;
use lifeboat::snapshot::retention::{apply_snapshot_retention, plan_snapshot_expiry};
use lifeboat_lambda::{Context, Failure};

use crate::summary::RetentionSummary;

pub async fn expire_snapshots(
    context: &Context,
    rds: &Rds,
    plan_names: &[String],
    dry_run: bool,
) -> Result<RetentionSummary, Failure> {
    let plans = context.select_plans(plan_names, "snapshots")?;
    let catalog = &context.catalog;
    let checks = catalog.snapshot_checks();
    let plan = plan_snapshot_expiry(&checks, catalog, &plans, jiff::Timestamp::now())
        .await
        .map_err(|e| Failure::Retention(e.to_string()))?;
    let doomed: usize = plan.plans.iter().map(|p| p.delete.len()).sum();
    tracing::info!(
        plans = plan.plans.len(),
        delete = doomed,
        dry_run,
        "snapshot retention planned"
    );
    let expiry = if dry_run {
        None
    } else {
        Some(
            apply_snapshot_retention(rds, &checks, &catalog.audit_trail(), &plan)
                .await
                .map_err(|e| Failure::Retention(e.to_string()))?,
        )
    };
    if let Some(expiry) = expiry.as_ref().filter(|e| !e.ok()) {
        let lines: Vec<String> = expiry
            .deleted
            .iter()
            .flat_map(|d| {
                d.failed_in
                    .iter()
                    .map(move |(region, error)| format!("{} in {region}: {error}", d.snapshot_id))
            })
            .collect();
        return Err(Failure::RetentionPartial(lines.join("\n")));
    }
    Ok(RetentionSummary {
        dry_run,
        snapshot_plan: Some(plan),
        snapshot_expiry: expiry,
        ..RetentionSummary::default()
    })
}
