//! `lifeboat retention apply` (plan a policy, print it or apply it), `gc`
//! (two-phase garbage collection), `index rebuild` (the index recovered
//! from the packs) and `hold add|remove|list` (legal holds retention
//! respects).

use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use lifeboat::audit::{actor_from_env, AuditEvent};
use lifeboat::catalog::HoldRecord;
use lifeboat::expire::{apply_expiry, plan_expiry};
use lifeboat::gc::{collect_garbage, rebuild_index, GcOptions, RebuildOptions};
use lifeboat::retention::RetentionPolicy;

use crate::cli::{HoldCommand, IndexCommand, RetentionArgs, RetentionCommand};
use crate::env::{backup_id, canonical_source, parse_at, Env};
use crate::exit;

pub async fn run(env: &Env, command: RetentionCommand) -> Result<ExitCode> {
    match command {
        RetentionCommand::Apply(args) => apply(env, &args).await,
    }
}

pub async fn hold(env: &Env, command: HoldCommand) -> Result<ExitCode> {
    match command {
        HoldCommand::Add { id, reason } => hold_add(env, &id, &reason).await,
        HoldCommand::Remove { id } => hold_remove(env, &id).await,
        HoldCommand::List => {
            let holds = env.catalog.list_holds().await?;
            env.out.holds(&holds);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn policy(args: &RetentionArgs) -> Result<RetentionPolicy> {
    let policy = RetentionPolicy {
        keep_days: args.keep_days,
        keep_last: args.keep_last,
        daily: args.keep_daily,
        weekly: args.keep_weekly,
        monthly: args.keep_monthly,
        yearly: args.keep_yearly,
        timezone: args.timezone.clone(),
    };
    if !policy.has_rules() {
        bail!(
            "no retention rule given: give at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-days"
        );
    }
    policy.validate()?;
    Ok(policy)
}

async fn apply(env: &Env, args: &RetentionArgs) -> Result<ExitCode> {
    let policy = policy(args)?;
    let now = parse_at(args.at.as_deref())?;
    let source = args.source.as_deref().map(canonical_source).transpose()?;
    let plan = plan_expiry(&env.catalog, source.as_deref(), &policy, now).await?;
    if args.dry_run {
        env.out.retention_plan(&plan);
        return Ok(ExitCode::SUCCESS);
    }
    let repo = env.open_repo().await?;
    let audit = env.catalog.audit_trail();
    let summary = apply_expiry(&repo, &env.catalog, Some(&audit), &plan).await?;
    env.out.expiry(&summary);
    if summary.failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(exit::PARTIAL))
    }
}

/// `lifeboat gc`'s flags.
pub struct GcArgs {
    pub dry_run: bool,
    pub grace: std::time::Duration,
    pub assume_dead_after: std::time::Duration,
    /// Percent, above 0 and at most 100.
    pub max_delete_share: f64,
    pub force: bool,
}

pub async fn gc(env: &Env, args: &GcArgs, at: Option<&str>) -> Result<ExitCode> {
    let grace = gc_duration(args.grace, "--grace")?;
    let assume_dead_after = gc_duration(args.assume_dead_after, "--assume-dead-after")?;
    let mut options = GcOptions::new(parse_at(at)?);
    options.grace = grace;
    options.assume_dead_after = assume_dead_after;
    options.dry_run = args.dry_run;
    options.max_delete_share = args.max_delete_share / 100.0;
    options.force = args.force;
    let repo = env.open_repo().await?;
    let report = collect_garbage(&repo, &env.catalog, &options).await?;
    env.out.gc(&report);
    Ok(ExitCode::SUCCESS)
}

/// `lifeboat index rebuild`: exit 6 (damage) when a completed backup still misses chunks.
pub async fn index(env: &Env, command: IndexCommand) -> Result<ExitCode> {
    let IndexCommand::Rebuild { dry_run, concurrency } = command;
    let repo = env.open_repo().await?;
    let options = RebuildOptions { dry_run, concurrency };
    let report = rebuild_index(&repo, &env.catalog, &options).await?;
    env.out.index_rebuild(&report);
    if report.complete() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(exit::DAMAGE))
    }
}

/// A duration flag as the garbage collector takes it: at most
/// `lifeboat::times::MAX_DURATION` (100 years), so that no time sum overflows.
fn gc_duration(d: std::time::Duration, flag: &str) -> Result<jiff::SignedDuration> {
    jiff::SignedDuration::try_from(d)
        .ok()
        .filter(|d| *d <= lifeboat::times::MAX_DURATION)
        .ok_or_else(|| {
            anyhow!(
                "{flag} {} is more than the maximum, {} days (100 years)",
                humantime::format_duration(d),
                lifeboat::times::MAX_DAYS
            )
        })
}

async fn hold_add(env: &Env, id: &str, reason: &str) -> Result<ExitCode> {
    let id = backup_id(id)?;
    if reason.trim().is_empty() {
        bail!("--reason is empty: say why backup {id} is held (a case number, a ticket)");
    }
    let hold = HoldRecord {
        backup_id: id.clone(),
        reason: reason.to_owned(),
        actor: actor_from_env(),
        created_at: lifeboat::catalog::now_rfc3339(),
    };
    let added = env.catalog.add_hold(&hold).await?;
    if added {
        env.audit(AuditEvent::new(
            "hold.added",
            &id,
            serde_json::json!({"reason": hold.reason}),
        ))
        .await;
    }
    env.out.hold_added(&hold, added);
    Ok(ExitCode::SUCCESS)
}

async fn hold_remove(env: &Env, id: &str) -> Result<ExitCode> {
    let id = backup_id(id)?;
    let removed = env.catalog.remove_hold(&id).await?;
    if let Some(hold) = &removed {
        env.audit(AuditEvent::new(
            "hold.removed",
            &id,
            serde_json::json!({"reason": hold.reason, "heldBy": hold.actor, "heldSince": hold.created_at}),
        ))
        .await;
    }
    env.out.hold_removed(&id, removed.as_ref());
    Ok(ExitCode::SUCCESS)
}
