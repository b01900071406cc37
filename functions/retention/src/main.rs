//! The retention Lambda: on its schedule, expires file backups by the
//! plan's policy (`lifeboat::expire`), then collects the garbage that
//! expired backups leave (`lifeboat::gc`: it marks on one run and sweeps on
//! a later one, so a daily schedule sweeps what the previous day marked).
//!
//! Request (the scheduled event's `detail`, or the direct payload; see
//! `events/retention-scheduled.json`):
//! `{"store": "s3://bucket/prefix", "source": "s3://data/app/",
//!   "policy": {"daily": 7, "weekly": 5, "timezone": "Europe/Berlin"},
//!   "dryRun": false, "collectGarbage": true, "graceMinutes": 60}`.
//! The function's `LIFEBOAT_DRY_RUN=true` forces dry runs whatever the event.
//!
//! `{"snapshots": true, "plans": ["db-nightly"], "dryRun": false}` instead
//! applies each plan's own retention (plan file: `LIFEBOAT_PLANS` or
//! `LIFEBOAT_PLANS_TOML`; all plans without `plans`) to its RDS snapshots,
//! deleting each doomed one in its region and every copy region
//! (`lifeboat::snapshot_ops::retention`; `events/retention-snapshots.json`).

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use lifeboat::aws::{load_config, Clients};
use lifeboat::catalog::{Catalog, DEFAULT_TABLE};
use lifeboat::expire::{apply_expiry, plan_expiry, ExpirySummary};
use lifeboat::gc::{collect_garbage, GcOptions, GcReport};
use lifeboat::plan::Plan;
use lifeboat::rds::Rds;
use lifeboat::repo::Repository;
use lifeboat::retention::{RetentionPlan, RetentionPolicy};
use lifeboat::snapshot::load_plans;
use lifeboat::snapshot_ops::retention::{
    apply_snapshot_retention, plan_snapshot_expiry, SnapshotExpirySummary, SnapshotRetentionPlan,
};
use lifeboat::snapshot_ops::{plan_source, select_plans};
use lifeboat::storage::Location;
use lifeboat_lambda::{diagnostic, init_tracing, parse_request, setting, Request};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RetentionRequest {
    #[serde(default)]
    store: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    policy: Option<RetentionPolicy>,
    #[serde(default)]
    dry_run: bool,
    /// Apply the plans' retention to their RDS snapshots instead.
    #[serde(default)]
    snapshots: bool,
    /// With `snapshots`: only these plans.
    #[serde(default)]
    plans: Vec<String>,
    #[serde(default = "yes")]
    collect_garbage: bool,
    #[serde(default)]
    grace_minutes: Option<u32>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RetentionSummary {
    dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<RetentionPlan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot_plan: Option<SnapshotRetentionPlan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot_expiry: Option<SnapshotExpirySummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiry: Option<ExpirySummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    garbage: Option<GcReport>,
}

struct Function {
    table: String,
    default_store: Option<String>,
    force_dry_run: bool,
    clients: Clients,
    /// The plan file's plans, when the function has one (for `snapshots`).
    plans: Option<Vec<Plan>>,
    snapshot_aws: Rds,
}

impl Function {
    async fn handle(&self, event: LambdaEvent<serde_json::Value>) -> Result<RetentionSummary, Diagnostic> {
        let Request { body, .. } = parse_request::<RetentionRequest>(event.payload, "events/retention-scheduled.json")
            .map_err(|e| diagnostic("Lifeboat.BadEvent", e))?;
        if body.snapshots {
            return self.snapshots(&body.plans, body.dry_run || self.force_dry_run).await;
        }
        let policy = body.policy.ok_or_else(|| {
            diagnostic(
                "Lifeboat.BadEvent",
                "field \"policy\" is missing: give the retention policy",
            )
        })?;
        if !policy.has_rules() {
            return Err(diagnostic(
                "Lifeboat.BadEvent",
                "the policy has no rule: give at least one of keepLast, daily, weekly, monthly, yearly, keepDays",
            ));
        }
        policy.validate().map_err(|e| diagnostic("Lifeboat.BadEvent", e))?;
        let store = body.store.or_else(|| self.default_store.clone()).ok_or_else(|| {
            diagnostic(
                "Lifeboat.BadEvent",
                "the request names no store and LIFEBOAT_STORE is not set",
            )
        })?;
        let location = Location::parse(&store).map_err(|e| diagnostic("Lifeboat.BadEvent", format!("store: {e}")))?;
        let repo = Repository::open_at(&location, &self.clients, None)
            .await
            .map_err(|e| diagnostic("Lifeboat.Store", e))?;
        let catalog = Catalog::new(self.clients.dynamodb.clone(), &self.table, &self.clients.region);
        let dry_run = body.dry_run || self.force_dry_run;
        let plan = plan_expiry(&catalog, body.source.as_deref(), &policy, jiff::Timestamp::now())
            .await
            .map_err(|e| diagnostic("Lifeboat.Retention", e))?;
        tracing::info!(
            keep = plan.keep.len(),
            delete = plan.delete.len(),
            dry_run,
            "retention planned"
        );
        let expiry = if dry_run {
            None
        } else {
            let audit = catalog.audit_trail();
            Some(
                apply_expiry(&repo, &catalog, Some(&audit), &plan)
                    .await
                    .map_err(|e| diagnostic("Lifeboat.Retention", e))?,
            )
        };
        let garbage = if body.collect_garbage {
            let mut options = GcOptions::new(lifeboat::times::now());
            options.dry_run = dry_run;
            if let Some(minutes) = body.grace_minutes {
                options.grace = lifeboat::times::SignedDuration::from_mins(minutes.into());
            }
            Some(
                collect_garbage(&repo, &catalog, &options)
                    .await
                    .map_err(|e| diagnostic("Lifeboat.GarbageCollection", e))?,
            )
        } else {
            None
        };
        let summary = RetentionSummary {
            dry_run,
            plan: Some(plan),
            snapshot_plan: None,
            snapshot_expiry: None,
            expiry,
            garbage,
        };
        if let Some(expiry) = &summary.expiry {
            tracing::info!(
                deleted = expiry.deleted.len(),
                failed = expiry.failed.len(),
                "retention applied"
            );
            if !expiry.failed.is_empty() {
                let lines: Vec<String> = expiry
                    .failed
                    .iter()
                    .map(|f| format!("{}: {}", f.id, f.reason))
                    .collect();
                return Err(diagnostic("Lifeboat.RetentionPartial", lines.join("\n")));
            }
        }
        Ok(summary)
    }

    async fn snapshots(&self, plan_names: &[String], dry_run: bool) -> Result<RetentionSummary, Diagnostic> {
        let plans = self.plans.as_deref().ok_or_else(|| {
            diagnostic(
                "Lifeboat.BadEvent",
                "snapshots asked for, but the function has no plan file: set LIFEBOAT_PLANS or LIFEBOAT_PLANS_TOML",
            )
        })?;
        let plans = select_plans(plans, plan_names).map_err(|e| diagnostic("Lifeboat.BadEvent", e))?;
        let catalog = Catalog::new(self.clients.dynamodb.clone(), &self.table, &self.clients.region);
        let checks = catalog.snapshot_checks();
        let plan = plan_snapshot_expiry(&checks, &catalog, &plans, jiff::Timestamp::now())
            .await
            .map_err(|e| diagnostic("Lifeboat.Retention", e))?;
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
                apply_snapshot_retention(&self.snapshot_aws, &checks, &catalog.audit_trail(), &plan)
                    .await
                    .map_err(|e| diagnostic("Lifeboat.Retention", e))?,
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
            return Err(diagnostic("Lifeboat.RetentionPartial", lines.join("\n")));
        }
        Ok(RetentionSummary {
            dry_run,
            plan: None,
            snapshot_plan: Some(plan),
            snapshot_expiry: expiry,
            expiry: None,
            garbage: None,
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let force_dry_run = match setting("LIFEBOAT_DRY_RUN").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(format!("LIFEBOAT_DRY_RUN={other:?}: use true or false").into()),
    };
    let config = load_config(None).await?;
    let clients = Clients::new(&config);
    let plans = match plan_source(setting("LIFEBOAT_PLANS_TOML"), setting("LIFEBOAT_PLANS"))? {
        Some(source) => Some(load_plans(&source, &clients.s3, jiff::Timestamp::now()).await?),
        None => None,
    };
    let function = Function {
        table: setting("LIFEBOAT_TABLE").unwrap_or_else(|| DEFAULT_TABLE.to_owned()),
        default_store: setting("LIFEBOAT_STORE"),
        force_dry_run,
        clients,
        plans,
        snapshot_aws: Rds::new(&config),
    };
    if let Some(store) = &function.default_store {
        Location::parse(store).map_err(|e| format!("LIFEBOAT_STORE: {e}"))?;
    }
    let function = &function;
    lambda_runtime::run(service_fn(move |event| async move { function.handle(event).await })).await
}
