//! `lifeboat restore db|snapshot` (RDS restores as recovery jobs), `jobs
//! list|show` and `status` (exit 8 when a protected database is breached).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use lifeboat::aws::load_config;
use lifeboat::pitr::RestoreTime;
use lifeboat::rds::wait::WaitPolicy;
use lifeboat::rds::Rds;
use lifeboat::recovery::{
    arn_region, restore_region, restore_snapshot as run_restore_snapshot, restore_to_point_in_time, PitrOptions,
    RecoveryError, RecoveryReport, SnapshotRef, SnapshotRestoreOptions,
};
use lifeboat::status::protection_status;
use lifeboat::validate::Checks;

use crate::cli::{JobsCommand, RestoreDbArgs, RestoreSnapshotArgs, StatusArgs, WaitArgs};
use crate::env::{parse_at, Env};
use crate::exit;
use crate::render::Renderer;
use lifeboat::plan::load::load_local;

/// How to wait: with `--wait`, or when validating (which needs the database available).
fn wait_policy(args: &WaitArgs, validating: bool) -> Result<Option<WaitPolicy>> {
    if args.wait_timeout.is_zero() || args.poll_interval.is_zero() {
        bail!("--poll-interval and --wait-timeout must be longer than 0s");
    }
    let policy = WaitPolicy {
        interval: args.poll_interval,
        timeout: args.wait_timeout,
        ..WaitPolicy::default()
    };
    Ok((args.wait || validating).then_some(policy))
}

fn load_checks(path: Option<&PathBuf>) -> Result<Option<Checks>> {
    Ok(path.map(|p| lifeboat::validate::load(p)).transpose()?)
}

/// `lifeboat restore db`: in the source ARN's region, or `--region`.
pub async fn restore_db(env: &Env, args: &RestoreDbArgs) -> Result<ExitCode> {
    let time = RestoreTime::parse(&args.to_time)?;
    let checks = load_checks(args.wait.validate.as_ref())?;
    let wait = wait_policy(&args.wait, checks.is_some())?;
    let options = PitrOptions {
        source: args.id.clone(),
        time,
        name: args.name.clone(),
        instance_class: args.instance_class.clone(),
        wait,
        checks,
        now: jiff::Timestamp::now(),
    };
    let region = restore_region(&args.id, arn_region(&args.id), env.global.region.as_deref())?;
    let rds = Rds::new(&load_config(region.as_deref()).await?);
    let mut progress = env.out.progress();
    let result = restore_to_point_in_time(&rds, &env.catalog.jobs(), &options, &mut progress).await;
    conclude(&env.out, result)
}

/// `lifeboat restore snapshot`: in the snapshot ARN's region, or `--region`.
pub async fn restore_snapshot(env: &Env, args: &RestoreSnapshotArgs) -> Result<ExitCode> {
    let snapshot = SnapshotRef::parse(&args.snapshot)?;
    let region = snapshot.region(&args.snapshot, env.global.region.as_deref())?;
    let config = load_config(region.as_deref()).await?;
    let checks = load_checks(args.wait.validate.as_ref())?;
    let wait = wait_policy(&args.wait, checks.is_some())?;
    let options = SnapshotRestoreOptions {
        snapshot: args.snapshot.clone(),
        name: args.name.clone(),
        instance_class: args.instance_class.clone(),
        wait,
        checks,
        now: jiff::Timestamp::now(),
    };
    let rds = Rds::new(&config);
    let mut progress = env.out.progress();
    let result = run_restore_snapshot(&rds, &env.catalog.jobs(), &options, &mut progress).await;
    conclude(&env.out, result)
}

/// The restored database, or the failed step as an error naming its job.
fn conclude(out: &Renderer, result: Result<RecoveryReport, RecoveryError>) -> Result<ExitCode> {
    match result {
        Ok(report) => {
            out.restore_job(&report);
            Ok(ExitCode::SUCCESS)
        }
        Err(RecoveryError::Failed {
            job,
            step,
            message,
            resumable,
        }) => {
            out.failed_job(&job);
            let then = if resumable {
                "; once the cause is fixed, the same command resumes it"
            } else {
                ""
            };
            Err(anyhow!(
                "restore failed at step {step}: {message}\n  recovery job {} recorded it (`lifeboat jobs show {}`){then}",
                job.id,
                job.id
            ))
        }
        Err(other) => Err(other.into()),
    }
}

/// `lifeboat jobs list|show`.
pub async fn jobs(env: &Env, command: JobsCommand) -> Result<ExitCode> {
    match command {
        JobsCommand::List { limit } => {
            let jobs = env.catalog.jobs().list(Some(limit)).await?;
            env.out.jobs(&jobs, env.catalog.table());
        }
        JobsCommand::Show { id } => {
            let job = env.catalog.jobs().get(&id).await?;
            env.out.job(&job);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `lifeboat status`: exit [`exit::BREACHED`] when any database is breached.
pub async fn status(env: &Env, args: &StatusArgs) -> Result<ExitCode> {
    let now = parse_at(args.at.as_deref())?;
    let plans = load_local(&args.plans, now)?;
    let config = load_config(env.global.region.as_deref()).await?;
    let report = protection_status(&config, Some(&env.catalog), &plans, now).await?;
    env.out.status(&report);
    if report.breached() > 0 {
        Ok(ExitCode::from(exit::BREACHED))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}
