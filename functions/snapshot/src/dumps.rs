//! A scheduled run's database dumps: the plan's database sources dumped
//! into the store (`LIFEBOAT_STORE`, `LIFEBOAT_KMS_KEY`), once per
//! scheduled run (`lifeboat::snapshot::run_plan_dumps`). A source may be
//! a Secrets Manager secret's ARN. The dump programs (`pg_dump`,
//! `mariadb-dump`, `sqlite3`) must be on the `PATH`: deployed, from the
//! database tools layer under `/opt/bin`.

use std::sync::Arc;

use jiff::Timestamp;
use lifeboat::plan::Plan;
use lifeboat::snapshot::{run_plan_dumps, SnapshotSummary};
use lifeboat::storage::Location;
use lifeboat_lambda::{Context, Failure};

/// The store for plans' dumps, required when a plan has a database source.
pub fn dump_store(context: &Context, plans: &[Plan]) -> Result<Option<Location>, String> {
    let Some(text) = &context.settings.store else {
        return match plans.iter().find(|p| !p.database_sources().is_empty()) {
            Some(plan) => Err(format!(
                "plan {} dumps databases, but the function's environment has no LIFEBOAT_STORE: set it to the store (s3://BUCKET/PREFIX)",
                plan.name
            )),
            None => Ok(None),
        };
    };
    let store = Location::parse(text).map_err(|e| format!("LIFEBOAT_STORE: {e}"))?;
    Ok(Some(store))
}

/// Dumps `plan`'s database sources (if it is a plan of the file) for the run at `scheduled_time` into
/// `store`, adding what happened to `summary`.
pub async fn dump(
    context: &Context,
    store: Option<&Location>,
    plan: Option<&Plan>,
    scheduled_time: Timestamp,
    now: Timestamp,
    summary: &mut SnapshotSummary,
) -> Result<(), Failure> {
    let Some(plan) = plan.filter(|p| !p.database_sources().is_empty()) else {
        return Ok(());
    };
    let Some(store) = store else {
        return Err(Failure::BadEvent(format!(
            "plan {} dumps databases but LIFEBOAT_STORE is not set",
            plan.name
        )));
    };
    let repo = context.open(store, context.settings.kms_key.as_deref()).await?;
    run_plan_dumps(
        Arc::new(repo),
        &context.catalog,
        &context.clients.secretsmanager,
        plan,
        scheduled_time,
        now,
        summary,
    )
    .await?;
    Ok(())
}
