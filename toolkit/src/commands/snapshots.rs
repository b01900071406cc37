//! `lifeboat snapshots verify|retention|hold|unhold`: the RDS snapshots the
//! snapshot function takes, looked after (`lifeboat::snapshot_ops`), for the
//! plans chosen from the plan file.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use lifeboat::audit::{actor_from_env, AuditEvent};
use lifeboat::aws::load_config;
use lifeboat::catalog::HoldRecord;
use lifeboat::plan::Plan;
use lifeboat::rds::Rds;
use lifeboat::snapshot::restore_tests::{run_restore_tests, RdsRestoreTests, RestoreTestsOptions};
use lifeboat::snapshot::retention::{apply_snapshot_retention, plan_snapshot_expiry};
use lifeboat::snapshot::select_plans;
use lifeboat::snapshot::trial_restore::RestoreTestOptions;
use lifeboat::snapshot::verify::{run_snapshot_verify, SnapshotVerifyOptions};

use crate::cli::{SnapshotPlanArgs, SnapshotRetentionArgs, SnapshotVerifyArgs, SnapshotsCommand};
use crate::env::{parse_at, Env};
use crate::exit;
use lifeboat::plan::load::load_local;

/// Runs one `lifeboat snapshots` command.
pub async fn run(env: &Env, command: SnapshotsCommand) -> Result<ExitCode> {
    match command {
        SnapshotsCommand::Verify(args) => verify(env, &args).await,
        SnapshotsCommand::Retention(args) => retention(env, &args).await,
        SnapshotsCommand::Hold { id, reason } => hold(env, &id, &reason).await,
        SnapshotsCommand::Unhold { id } => unhold(env, &id).await,
    }
}

/// The plans `--plan` chose from `--plans`, and the time `--at` names.
fn chosen_plans(args: &SnapshotPlanArgs) -> Result<(Vec<Plan>, jiff::Timestamp)> {
    let now = parse_at(args.at.as_deref())?;
    let plans = load_local(&args.plans, now)?;
    Ok((select_plans(&plans, &args.names)?, now))
}

async fn verify(env: &Env, args: &SnapshotVerifyArgs) -> Result<ExitCode> {
    let (plans, now) = chosen_plans(&args.plans)?;
    if args.restore_tests {
        return restore_tests(env, plans, &args.plans).await;
    }
    let restore_test = match &args.restore_test {
        Some(path) => {
            let mut options = RestoreTestOptions::new(lifeboat::validate::load(path)?);
            options.instance_class = args.instance_class.clone();
            Some(options)
        }
        None => None,
    };
    let config = load_config(env.global.region.as_deref()).await?;
    let options = SnapshotVerifyOptions {
        plans,
        restore_test,
        now,
    };
    let report = run_snapshot_verify(&Rds::new(&config), &env.catalog.snapshot_checks(), &options).await?;
    env.out.snapshot_verify(&report);
    Ok(exit::unless(report.ok(), exit::DAMAGE))
}

async fn restore_tests(env: &Env, plans: Vec<Plan>, args: &SnapshotPlanArgs) -> Result<ExitCode> {
    if plans.iter().all(|p| p.restore_test.is_none()) {
        bail!(
            "no plan chosen from {} has a [plan.restore_test] table: add one (README, \"Backup plans\"), or use --restore-test CHECKS",
            args.plans.display()
        );
    }
    let config = load_config(env.global.region.as_deref()).await?;
    let options = RestoreTestsOptions {
        plans,
        until: None,
        poll_interval: Duration::from_secs(30),
    };
    let tests = RdsRestoreTests(Rds::new(&config));
    let report = run_restore_tests(&tests, &env.catalog.snapshot_checks(), &options).await?;
    env.out.restore_tests(&report);
    Ok(exit::unless(report.ok(), exit::DAMAGE))
}

async fn retention(env: &Env, args: &SnapshotRetentionArgs) -> Result<ExitCode> {
    let (plans, now) = chosen_plans(&args.plans)?;
    let checks = env.catalog.snapshot_checks();
    let plan = plan_snapshot_expiry(&checks, &env.catalog, &plans, now).await?;
    if args.dry_run {
        env.out.snapshot_retention_plan(&plan);
        return Ok(ExitCode::SUCCESS);
    }
    let config = load_config(env.global.region.as_deref()).await?;
    let summary = apply_snapshot_retention(&Rds::new(&config), &checks, &env.catalog.audit_trail(), &plan).await?;
    env.out.snapshot_expiry(&plan, &summary);
    if summary.ok() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(exit::PARTIAL))
    }
}

async fn hold(env: &Env, id: &str, reason: &str) -> Result<ExitCode> {
    if reason.trim().is_empty() {
        bail!("--reason is empty: say why snapshot {id} is held (a case number, a ticket)");
    }
    let hold = HoldRecord {
        backup_id: id.to_owned(),
        reason: reason.to_owned(),
        actor: actor_from_env(),
        created_at: lifeboat::catalog::now_rfc3339(),
    };
    let added = env.catalog.snapshot_checks().add_hold(&hold).await?;
    if added {
        let details = serde_json::json!({"reason": hold.reason, "kind": "snapshot"});
        env.catalog
            .audit_trail()
            .append(AuditEvent::new("hold.added", id, details))
            .await?;
    }
    env.out.snapshot_held(&hold, added);
    Ok(ExitCode::SUCCESS)
}

async fn unhold(env: &Env, id: &str) -> Result<ExitCode> {
    let removed = env.catalog.remove_hold(id).await?;
    if let Some(hold) = &removed {
        let details = serde_json::json!({
            "reason": hold.reason, "heldBy": hold.actor, "heldSince": hold.created_at, "kind": "snapshot"
        });
        env.catalog
            .audit_trail()
            .append(AuditEvent::new("hold.removed", id, details))
            .await?;
    }
    env.out.snapshot_unheld(id, removed.as_ref());
    Ok(ExitCode::SUCCESS)
}
