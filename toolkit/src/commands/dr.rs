//! `lifeboat failover`, `failback` and `drill`: read the DR plan, inspect,
//! confirm, make one library call (`lifeboat::dr`), write the report,
//! hand the outcome to `render`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use lifeboat::dr::{
    inspect_drill, inspect_failback, inspect_failover, plan, run_drill, run_failback, run_failover, DrInspection,
    DrOptions, DrRequest, DrRun, Regions,
};
use lifeboat::jobs::JobKind;
use lifeboat::rds::wait::WaitPolicy;

use crate::cli::{DrArgs, Output};
use crate::env::Env;
use crate::render::Renderer;

fn options(args: &DrArgs) -> Result<DrOptions> {
    if args.wait_timeout.is_zero() {
        bail!("--wait-timeout must be longer than 0s");
    }
    Ok(DrOptions {
        wait: WaitPolicy {
            interval: args.poll_interval,
            timeout: args.wait_timeout,
            ..WaitPolicy::default()
        },
        ..DrOptions::default()
    })
}

async fn load(args: &DrArgs) -> Result<(plan::DrPlan, Regions)> {
    let plan = plan::load(&args.plan)?;
    let regions = Regions::connect(&plan).await?;
    Ok((plan, regions))
}

/// `lifeboat failover` (and, with `kind` Failback, `lifeboat failback`).
pub async fn switch(env: &Env, args: &DrArgs, yes: bool, restart: bool, kind: JobKind) -> Result<ExitCode> {
    let catalog = &env.catalog;
    let options = DrOptions {
        restart,
        ..options(args)?
    };
    let (plan, regions) = load(args).await?;
    let inspection = match kind {
        JobKind::Failback => inspect_failback(&regions, &catalog.jobs(), &plan).await?,
        _ => inspect_failover(&regions, &catalog.jobs(), &plan).await?,
    };
    if args.dry_run {
        env.out.dr_inspection(&inspection, true);
        return Ok(ExitCode::SUCCESS);
    }
    let problems = inspection.problems();
    if !problems.is_empty() {
        env.out.dr_inspection(&inspection, false);
        bail!(
            "{} of plan {} cannot start:\n  {}",
            kind,
            plan.name,
            problems.join("\n  ")
        );
    }
    if !inspection.nothing_to_do() && !yes {
        confirm(&env.out, &inspection, &args.plan)?;
    }
    execute(env, args, kind, (&plan, &regions), &inspection, options).await
}

/// `lifeboat drill`.
pub async fn drill(env: &Env, args: &DrArgs) -> Result<ExitCode> {
    let catalog = &env.catalog;
    let options = options(args)?;
    let (plan, regions) = load(args).await?;
    let inspection = inspect_drill(&regions, &catalog.jobs(), &plan).await?;
    if args.dry_run {
        env.out.dr_inspection(&inspection, true);
        return Ok(ExitCode::SUCCESS);
    }
    execute(env, args, JobKind::Drill, (&plan, &regions), &inspection, options).await
}

/// Runs `kind` (a drill, a failback, else a failover) of `plan` as
/// `inspection` found it, and concludes: the report, and the outcome.
async fn execute(
    env: &Env,
    args: &DrArgs,
    kind: JobKind,
    (plan, regions): (&plan::DrPlan, &Regions),
    inspection: &DrInspection,
    options: DrOptions,
) -> Result<ExitCode> {
    let jobs = env.catalog.jobs();
    let request = DrRequest {
        regions,
        jobs: &jobs,
        plan,
        inspection,
        options,
    };
    let run = match kind {
        JobKind::Drill => run_drill(&request, interrupted()).await?,
        JobKind::Failback => run_failback(&request, interrupted()).await?,
        _ => run_failover(&request, interrupted()).await?,
    };
    conclude(&env.out, &args.report_dir, run, !matches!(kind, JobKind::Drill))
}

/// Completes on Ctrl-C (SIGINT): the job then stops where it stands and is
/// recorded (a drill still tears down); a second Ctrl-C is ignored.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Asks on a terminal; refuses (after saying what would happen) otherwise.
fn confirm(out: &Renderer, inspection: &DrInspection, plan_file: &Path) -> Result<()> {
    let command = format!("lifeboat {} --plan {} --yes", inspection.kind, plan_file.display());
    let verb = match inspection.kind {
        JobKind::Failback => "fail back",
        _ => "fail over",
    };
    if !std::io::stdin().is_terminal() {
        out.dr_inspection(inspection, false);
        bail!(
            "not confirmed: standard input is not a terminal, so nothing was done. To {verb} plan {}, run `{command}`",
            inspection.plan
        );
    }
    Renderer::new(Output::Text).dr_inspection(inspection, false);
    eprint!("Type the plan's name ({}) to {verb} now: ", inspection.plan);
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the confirmation")?;
    if answer.trim() != inspection.plan {
        bail!(
            "not confirmed ({:?} is not {:?}): nothing was done",
            answer.trim(),
            inspection.plan
        );
    }
    Ok(())
}

/// Writes the report files, renders the outcome, and turns a failed run into an error.
fn conclude(out: &Renderer, report_dir: &Path, run: DrRun, resumable: bool) -> Result<ExitCode> {
    let (json_path, markdown_path) = run.report.write(report_dir).with_context(|| {
        format!(
            "job {} ended, but its report could not be written to {} (it is also in the job record)",
            run.report.job_id,
            report_dir.display()
        )
    })?;
    out.dr_report(&run, &json_path, &markdown_path);
    match run.error {
        None => Ok(ExitCode::SUCCESS),
        Some(error) if resumable => Err(anyhow::Error::new(error).context(format!(
            "{} of plan {} stopped (job {}); fix the cause and run the same command again: it resumes from the failed step",
            run.report.kind, run.report.plan, run.report.job_id
        ))),
        Some(error) => Err(anyhow::Error::new(error).context(format!(
            "drill of plan {} failed (job {}); everything it created was deleted",
            run.report.plan, run.report.job_id
        ))),
    }
}
