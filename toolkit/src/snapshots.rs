//! `lifeboat snapshots verify|retention|hold|unhold`: the RDS snapshots the
//! snapshot function takes, looked after (`lifeboat::snapshot`). Parse,
//! make one library call, render; the rendering of these commands lives
//! here, at the end.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use lifeboat::audit::AuditEvent;
use lifeboat::aws::load_config;
use lifeboat::catalog::{Catalog, HoldRecord};
use lifeboat::plan::Plan;
use lifeboat::rds::Rds;
use lifeboat::snapshot::restore_tests::{run_restore_tests, RdsRestoreTests, RestoreTestsOptions, RestoreTestsReport};
use lifeboat::snapshot::retention::{
    apply_snapshot_retention, plan_snapshot_expiry, SnapshotExpirySummary, SnapshotRetentionPlan,
};
use lifeboat::snapshot::select_plans;
use lifeboat::snapshot::trial_restore::RestoreTestOptions;
use lifeboat::snapshot::verify::{run_snapshot_verify, SnapshotVerifyOptions, SnapshotVerifyReport};
use serde::Serialize;

use crate::cli::Output;
use crate::exit;

#[derive(Subcommand, Debug)]
pub enum SnapshotsCommand {
    /// Verify each resource's newest completed snapshot: available, encrypted, copied to every
    /// copy region with its key, within the RPO; optionally restore-test it. Exit 6 if any failed.
    Verify(VerifyArgs),
    /// Apply each plan's retention to its snapshots, in every region they were copied to
    /// (with --dry-run, only print what would go and why).
    Retention(RetentionArgs),
    /// Hold a snapshot (by its identifier): retention will not delete it until `unhold`.
    Hold {
        /// The snapshot's identifier (lifeboat-PLAN-RESOURCE-YYYYMMDD-HHMM).
        id: String,
        /// Why (a case number, a ticket): kept with the hold.
        #[arg(long)]
        reason: String,
    },
    /// Lift a snapshot's hold.
    Unhold {
        /// The snapshot's identifier.
        id: String,
    },
}

/// The plan file and which of its plans.
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The plan file (README, "Backup plans").
    #[arg(long, value_name = "FILE")]
    pub plans: PathBuf,
    /// Only this plan (repeatable; default: every plan in the file).
    #[arg(long = "plan", value_name = "NAME")]
    pub names: Vec<String>,
    /// Evaluate as of this time (RFC 3339) instead of now.
    #[arg(long)]
    pub at: Option<String>,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub plans: PlanArgs,
    /// Also restore each newest snapshot to a temporary instance (lifeboat-rt-…) and run this
    /// checks file's SQL assertions against it; the instance is deleted afterwards.
    #[arg(long, value_name = "CHECKS")]
    pub restore_test: Option<PathBuf>,
    /// The temporary instance's class.
    #[arg(long, default_value = "db.t3.micro")]
    pub instance_class: String,
    /// Instead, run the scheduled restore tests of the plans that ask for them
    /// ([plan.restore_test]) to completion, as the verify function does every 15 minutes: start
    /// each resource's test that is due (its last older than the plan's `every`), wait for it,
    /// run the plan's checks, record the verification with its RTO sample, delete the instance;
    /// resume tests in progress; delete orphaned lifeboat-rt-… instances.
    #[arg(long, conflicts_with = "restore_test")]
    pub restore_tests: bool,
}

#[derive(Args, Debug)]
pub struct RetentionArgs {
    #[command(flatten)]
    pub plans: PlanArgs,
    /// Print what would be deleted (and why each kept snapshot stays); delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_at(at: Option<&str>) -> Result<jiff::Timestamp> {
    match at {
        Some(text) => text
            .parse::<jiff::Timestamp>()
            .map_err(|e| anyhow!("--at {text:?} is not an RFC 3339 time such as 2026-11-23T10:00:00Z ({e})")),
        None => Ok(jiff::Timestamp::now()),
    }
}

fn load_plans(args: &PlanArgs, now: jiff::Timestamp) -> Result<Vec<Plan>> {
    let plans = lifeboat::plan::load::load_local(&args.plans, now)?;
    Ok(select_plans(&plans, &args.names)?)
}

/// Runs one `lifeboat snapshots` command.
pub async fn run(
    catalog: &Catalog,
    region: Option<&str>,
    output: Output,
    command: SnapshotsCommand,
) -> Result<ExitCode> {
    match command {
        SnapshotsCommand::Verify(args) => verify(catalog, region, output, &args).await,
        SnapshotsCommand::Retention(args) => retention(catalog, region, output, &args).await,
        SnapshotsCommand::Hold { id, reason } => hold(catalog, output, &id, &reason).await,
        SnapshotsCommand::Unhold { id } => unhold(catalog, output, &id).await,
    }
}

async fn verify(catalog: &Catalog, region: Option<&str>, output: Output, args: &VerifyArgs) -> Result<ExitCode> {
    let now = parse_at(args.plans.at.as_deref())?;
    let plans = load_plans(&args.plans, now)?;
    if args.restore_tests {
        return restore_tests(catalog, region, output, plans, &args.plans).await;
    }
    let restore_test = match &args.restore_test {
        Some(path) => {
            let mut options = RestoreTestOptions::new(lifeboat::validate::load(path)?);
            options.instance_class = args.instance_class.clone();
            Some(options)
        }
        None => None,
    };
    let config = load_config(region).await?;
    let options = SnapshotVerifyOptions {
        plans,
        restore_test,
        now,
    };
    let report = run_snapshot_verify(&Rds::new(&config), &catalog.snapshot_checks(), &options).await?;
    render_verify(output, &report);
    if report.ok() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(exit::DAMAGE))
    }
}

async fn restore_tests(
    catalog: &Catalog,
    region: Option<&str>,
    output: Output,
    plans: Vec<Plan>,
    args: &PlanArgs,
) -> Result<ExitCode> {
    if plans.iter().all(|p| p.restore_test.is_none()) {
        bail!(
            "no plan chosen from {} has a [plan.restore_test] table: add one (README, \"Backup plans\"), or use --restore-test CHECKS",
            args.plans.display()
        );
    }
    let config = load_config(region).await?;
    let options = RestoreTestsOptions {
        plans,
        until: None,
        poll_interval: Duration::from_secs(30),
    };
    let report = run_restore_tests(
        &RdsRestoreTests(Rds::new(&config)),
        &catalog.snapshot_checks(),
        &options,
    )
    .await?;
    render_restore_tests(output, &report);
    if report.ok() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(exit::DAMAGE))
    }
}

async fn retention(catalog: &Catalog, region: Option<&str>, output: Output, args: &RetentionArgs) -> Result<ExitCode> {
    let now = parse_at(args.plans.at.as_deref())?;
    let plans = load_plans(&args.plans, now)?;
    let checks = catalog.snapshot_checks();
    let plan = plan_snapshot_expiry(&checks, catalog, &plans, now).await?;
    if args.dry_run {
        render_retention_plan(output, &plan);
        return Ok(ExitCode::SUCCESS);
    }
    let config = load_config(region).await?;
    let summary = apply_snapshot_retention(&Rds::new(&config), &checks, &catalog.audit_trail(), &plan).await?;
    render_expiry(output, &plan, &summary);
    if summary.ok() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(exit::PARTIAL))
    }
}

async fn hold(catalog: &Catalog, output: Output, id: &str, reason: &str) -> Result<ExitCode> {
    if reason.trim().is_empty() {
        bail!("--reason is empty: say why snapshot {id} is held (a case number, a ticket)");
    }
    let hold = HoldRecord {
        backup_id: id.to_owned(),
        reason: reason.to_owned(),
        actor: lifeboat::audit::actor_from_env(),
        created_at: lifeboat::catalog::now_rfc3339(),
    };
    let added = catalog.snapshot_checks().add_hold(&hold).await?;
    if added {
        catalog
            .audit_trail()
            .append(AuditEvent::new(
                "hold.added",
                id,
                serde_json::json!({"reason": hold.reason, "kind": "snapshot"}),
            ))
            .await?;
    }
    match output {
        Output::Json => json(&serde_json::json!({"hold": hold, "added": added})),
        Output::Text if added => println!("Held snapshot {id} ({reason})."),
        Output::Text => println!("Snapshot {id} was already held; nothing changed."),
    }
    Ok(ExitCode::SUCCESS)
}

async fn unhold(catalog: &Catalog, output: Output, id: &str) -> Result<ExitCode> {
    let removed = catalog.remove_hold(id).await?;
    if let Some(hold) = &removed {
        catalog
            .audit_trail()
            .append(AuditEvent::new(
                "hold.removed",
                id,
                serde_json::json!({"reason": hold.reason, "heldBy": hold.actor, "heldSince": hold.created_at, "kind": "snapshot"}),
            ))
            .await?;
    }
    match output {
        Output::Json => json(&serde_json::json!({"id": id, "removed": removed})),
        Output::Text if removed.is_some() => println!("Lifted the hold on snapshot {id}."),
        Output::Text => println!("Snapshot {id} had no hold; nothing changed."),
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

fn json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("lifeboat: cannot write JSON output: {e}"),
    }
}

fn render_verify(output: Output, report: &SnapshotVerifyReport) {
    if output == Output::Json {
        json(report);
        return;
    }
    if report.verifications.is_empty() {
        println!("No completed snapshot of these plans in the catalog.");
        return;
    }
    for v in &report.verifications {
        let verdict = if v.passed() { "passed" } else { "FAILED" };
        println!("{} ({}, {}): {verdict}", v.snapshot_id, v.plan, v.regions.join(", "));
        for problem in &v.problems {
            println!("  {} in {}: {}", problem.kind.as_str(), problem.region, problem.detail);
        }
        if let Some(test) = &v.restore_test {
            let seconds = test
                .restore_seconds
                .map(|s| format!(", restored in {s:.1} s"))
                .unwrap_or_default();
            let cleaned = if test.cleaned_up { "deleted" } else { "NOT deleted" };
            println!(
                "  restore test on {}: {}{seconds}; temporary instance {cleaned}",
                test.instance,
                if test.passed { "passed" } else { "failed" }
            );
        }
    }
}

fn render_restore_tests(output: Output, report: &RestoreTestsReport) {
    if output == Output::Json {
        json(report);
        return;
    }
    for id in &report.orphans_deleted {
        println!("Deleted {id}: a restore test instance no test owned.");
    }
    if report.started.is_empty() && report.finished.is_empty() && report.cleanup_failed.is_empty() {
        println!("No restore test is due (each resource's last is younger than its plan's `every`).");
    }
    if !report.finished.is_empty() {
        render_verify(
            output,
            &SnapshotVerifyReport {
                verifications: report.finished.clone(),
            },
        );
    }
    for note in &report.cleanup_failed {
        println!("NOT deleted: {note} (the next run tries again)");
    }
    for note in &report.skipped {
        println!("Skipped {note}");
    }
}

fn render_retention_plan(output: Output, plan: &SnapshotRetentionPlan) {
    if output == Output::Json {
        json(plan);
        return;
    }
    for p in &plan.plans {
        println!("Plan {}: keep {}, delete {}", p.plan, p.keep.len(), p.delete.len());
        for d in &p.delete {
            println!("  delete {} in {} ({})", d.snapshot_id, d.regions.join(", "), d.reason);
        }
        for k in &p.keep {
            println!("  keep   {} ({})", k.snapshot_id, k.reasons.join(", "));
        }
    }
}

fn render_expiry(output: Output, plan: &SnapshotRetentionPlan, summary: &SnapshotExpirySummary) {
    if output == Output::Json {
        json(&serde_json::json!({"plan": plan, "expiry": summary}));
        return;
    }
    for d in &summary.deleted {
        println!("Deleted {} in {}", d.snapshot_id, d.deleted_in.join(", "));
        if !d.absent_in.is_empty() {
            println!("  already gone in {}", d.absent_in.join(", "));
        }
        for (region, error) in &d.failed_in {
            println!("  FAILED in {region}: {error}");
        }
    }
    for id in &summary.skipped {
        println!("Skipped {id}: its record changed since the plan was made");
    }
    if summary.deleted.is_empty() && summary.skipped.is_empty() {
        println!("Nothing to delete.");
    }
}
