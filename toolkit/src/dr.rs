//! `lifeboat failover`, `failback` and `drill`: read the DR plan, inspect,
//! confirm, make one library call (`lifeboat::dr`), write the report,
//! render. The rendering of these commands lives here, at the end.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use lifeboat::catalog::Catalog;
use lifeboat::dr::report::{seconds_words, DrReport, Outcome};
use lifeboat::dr::{
    inspect_drill, inspect_failback, inspect_failover, plan, run_drill, run_failback, run_failover, Action,
    DrInspection, DrOptions, DrRun, Regions,
};
use lifeboat::jobs::JobKind;
use lifeboat::rds::wait::WaitPolicy;

use crate::cli::{DrArgs, Output};

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
pub async fn switch(
    catalog: &Catalog,
    output: Output,
    args: &DrArgs,
    yes: bool,
    restart: bool,
    kind: JobKind,
) -> Result<ExitCode> {
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
        render_inspection(output, &inspection, true);
        return Ok(ExitCode::SUCCESS);
    }
    let problems = inspection.problems();
    if !problems.is_empty() {
        render_inspection(output, &inspection, false);
        bail!(
            "{} of plan {} cannot start:\n  {}",
            kind,
            plan.name,
            problems.join("\n  ")
        );
    }
    if !inspection.nothing_to_do() && !yes {
        confirm(output, &inspection, &args.plan)?;
    }
    let jobs = catalog.jobs();
    let run = match kind {
        JobKind::Failback => run_failback(&regions, &jobs, &plan, &inspection, options, interrupted()).await?,
        _ => run_failover(&regions, &jobs, &plan, &inspection, options, interrupted()).await?,
    };
    conclude(output, &args.report_dir, run, true)
}

/// `lifeboat drill`.
pub async fn drill(catalog: &Catalog, output: Output, args: &DrArgs) -> Result<ExitCode> {
    let options = options(args)?;
    let (plan, regions) = load(args).await?;
    let inspection = inspect_drill(&regions, &catalog.jobs(), &plan).await?;
    if args.dry_run {
        render_inspection(output, &inspection, true);
        return Ok(ExitCode::SUCCESS);
    }
    let run = run_drill(&regions, &catalog.jobs(), &plan, &inspection, options, interrupted()).await?;
    conclude(output, &args.report_dir, run, false)
}

/// Completes on Ctrl-C (SIGINT): the job then stops where it stands and is
/// recorded (a drill still tears down); a second Ctrl-C is ignored.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Asks on a terminal; refuses (after saying what would happen) otherwise.
fn confirm(output: Output, inspection: &DrInspection, plan_file: &Path) -> Result<()> {
    let command = format!("lifeboat {} --plan {} --yes", inspection.kind, plan_file.display());
    let verb = match inspection.kind {
        JobKind::Failback => "fail back",
        _ => "fail over",
    };
    if !std::io::stdin().is_terminal() {
        render_inspection(output, inspection, false);
        bail!(
            "not confirmed: standard input is not a terminal, so nothing was done. To {verb} plan {}, run `{command}`",
            inspection.plan
        );
    }
    render_inspection(Output::Text, inspection, false);
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
fn conclude(output: Output, report_dir: &Path, run: DrRun, resumable: bool) -> Result<ExitCode> {
    let (json_path, markdown_path) = run.report.write(report_dir).with_context(|| {
        format!(
            "job {} ended, but its report could not be written to {} (it is also in the job record)",
            run.report.job_id,
            report_dir.display()
        )
    })?;
    render_report(output, &run, &json_path, &markdown_path);
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

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

fn json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("lifeboat: cannot render JSON: {e}"),
    }
}

fn title(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Failover => "Failover",
        JobKind::Failback => "Failback",
        JobKind::Drill => "Drill",
        JobKind::RestoreDb | JobKind::RestoreSnapshot => "Restore",
    }
}

fn render_inspection(output: Output, inspection: &DrInspection, dry_run: bool) {
    if output == Output::Json {
        return json(&serde_json::json!({ "dryRun": dry_run, "inspection": inspection }));
    }
    let (from, to) = match inspection.kind {
        JobKind::Failback => (&inspection.dr_region, &inspection.primary_region),
        _ => (&inspection.primary_region, &inspection.dr_region),
    };
    let dry = if dry_run { " (dry run: nothing changed)" } else { "" };
    println!(
        "{} of plan {}: {from} → {to}{dry}",
        title(inspection.kind),
        inspection.plan
    );
    for db in &inspection.databases {
        let what = match &db.action {
            Action::Promote => format!("promote read replica {} in {}", db.instance, db.region),
            Action::Restore { snapshot } => format!(
                "restore snapshot {} (taken {}) as {} in {}",
                snapshot.id, snapshot.taken_at, db.instance, db.region
            ),
            Action::Continue => format!(
                "{} exists already in {}: wait for it, validate, switch DNS",
                db.instance, db.region
            ),
            Action::Replicate => format!(
                "create {} in {} as a read replica of the DR database, promote it",
                db.instance, db.region
            ),
            Action::DrillReplica => format!(
                "create a temporary replica of the primary in {} under a drill name, promote it, delete it",
                db.region
            ),
            Action::DrillRestore { snapshot } => format!(
                "restore snapshot {} (taken {}) in {} under a drill name, delete it",
                snapshot.id, snapshot.taken_at, db.region
            ),
            Action::Done => format!("nothing to do: {} serves and DNS points at it", db.instance),
            Action::Blocked { reason } => format!("CANNOT: {reason}"),
        };
        println!("  {} ({}): {what}", db.name, db.strategy.as_str());
        if let Some(rpo) = &db.rpo {
            println!("    RPO now      {}", rpo.words());
        }
        for record in &db.records {
            let current = record.current.as_deref().unwrap_or("(none)");
            let target = record
                .target
                .clone()
                .unwrap_or_else(|| format!("the endpoint of {} (known once it exists)", db.instance));
            println!(
                "    DNS          {} {}: {current} → {target}",
                record.record_type, record.name
            );
            if let Some(problem) = &record.problem {
                println!("                 ({problem})");
            }
        }
        if db.checks > 0 {
            println!("    validation   {} check(s)", db.checks);
        }
    }
    for leftover in &inspection.leftovers {
        if leftover.deletable {
            println!(
                "  left by drill {}: {} (deleted first)",
                leftover.job, leftover.instance
            );
        } else {
            println!(
                "  left by drill {}, which is still running or was killed: {} (not touched; once sure, \
                 aws rds delete-db-instance --db-instance-identifier {} --skip-final-snapshot)",
                leftover.job, leftover.instance, leftover.instance
            );
        }
    }
    if inspection.nothing_to_do() {
        println!("Nothing to do.");
    }
}

fn render_report(output: Output, run: &DrRun, json_path: &Path, markdown_path: &Path) {
    if output == Output::Json {
        return json(&run.report);
    }
    let report: &DrReport = &run.report;
    let outcome = match report.outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed => "FAILED",
        Outcome::NothingToDo => "nothing to do (already done)",
    };
    let resumed = if run.resumed {
        format!(", resumed: run {}", report.runs)
    } else {
        String::new()
    };
    println!(
        "{} of plan {}: {outcome} (job {}{resumed})",
        title(report.kind),
        report.plan,
        report.job_id
    );
    for db in &report.databases {
        if report.outcome == Outcome::NothingToDo {
            println!(
                "  {}: {} in {} serves and DNS points at it",
                db.name, db.instance, db.region
            );
            continue;
        }
        let rto = db
            .rto_seconds
            .map_or_else(|| "not reached".to_owned(), |s| format!("{s:.1} s"));
        let rpo = db.rpo.as_ref().map_or_else(|| "unknown".to_owned(), |r| r.words());
        println!("  {}: {} in {}", db.name, db.instance, db.region);
        let until = if db.checks > 0 { "validated" } else { "available" };
        println!("    RTO          {rto} (start to {until})");
        println!("    RPO          {rpo}");
        if let Some(validation) = &db.validation {
            println!("    validation   {validation}");
        }
        for record in &db.records {
            let change = if record.change_id.is_some() {
                "switched"
            } else {
                "already pointed there"
            };
            println!(
                "    DNS          {} {} → {} ({change})",
                record.record_type, record.name, record.to
            );
        }
        for note in &db.notes {
            println!("    note         {note}");
        }
    }
    if let Some(s) = report
        .databases
        .iter()
        .filter_map(|d| d.rto_seconds)
        .fold(None, |max: Option<f64>, s| Some(max.map_or(s, |m| m.max(s))))
    {
        let words = if s < 60.0 {
            format!("{s:.1} s")
        } else {
            seconds_words(s.round() as i64)
        };
        println!("Slowest database ready after {words}.");
    }
    println!("Report: {} (JSON: {})", markdown_path.display(), json_path.display());
}
