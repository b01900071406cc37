//! `lifeboat restore db`, `restore snapshot`, `jobs list|show` and `status`:
//! parse, make one library call (`lifeboat::recovery`, `lifeboat::jobs`,
//! `lifeboat::status`), render. The rendering of these commands lives here,
//! at the end.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use lifeboat::aws::load_config;
use lifeboat::catalog::Catalog;
use lifeboat::jobs::{JobRecord, StepStatus};
use lifeboat::pitr::RestoreTime;
use lifeboat::rds::wait::WaitPolicy;
use lifeboat::rds::Rds;
use lifeboat::recovery::{
    arn_region, restore_region, restore_snapshot, restore_to_point_in_time, PitrOptions, RecoveryError, RecoveryReport,
    SnapshotRef, SnapshotRestoreOptions,
};
use lifeboat::status::{age_words, kind_words, protection_status, Health, StatusReport};
use serde::Serialize;

use crate::cli::Output;
use crate::exit;

/// How `--wait` waits.
#[derive(Args, Debug)]
pub struct WaitArgs {
    /// Wait until the restored database is available, showing its status as it changes.
    #[arg(long)]
    pub wait: bool,
    /// How often to look while waiting.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// How long to wait before giving up (a rerun resumes the wait).
    #[arg(long, default_value = "2h", value_parser = humantime::parse_duration)]
    pub wait_timeout: Duration,
}

#[derive(Args, Debug)]
pub struct RestoreDbArgs {
    /// The DB instance or Aurora cluster (identifier or ARN) to restore.
    pub id: String,
    /// The time to restore to: RFC 3339 (e.g. 2026-11-23T10:00:00Z) or `latest`.
    #[arg(long, value_name = "RFC3339|latest")]
    pub to_time: String,
    /// The new database's name (default: ID-pitr-YYYYMMDDHHMM, the restore time in UTC).
    #[arg(long = "as", value_name = "NAME")]
    pub name: Option<String>,
    /// For an Aurora cluster: the class of the restored cluster's instance (default: the source's).
    #[arg(long)]
    pub instance_class: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Run this checks file's SQL assertions against the restored database (implies --wait).
    #[arg(long, value_name = "FILE")]
    pub validate: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RestoreSnapshotArgs {
    /// The DB snapshot or DB cluster snapshot: identifier or ARN (an ARN names its region).
    pub snapshot: String,
    /// The new database's name (default: SNAPSHOT-restored-YYYYMMDDHHMM, now in UTC).
    #[arg(long = "as", value_name = "NAME")]
    pub name: Option<String>,
    /// For a cluster snapshot: the class of the restored cluster's instance (default: the source cluster's).
    #[arg(long)]
    pub instance_class: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Run this checks file's SQL assertions against the restored database (implies --wait).
    #[arg(long, value_name = "FILE")]
    pub validate: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// Recovery jobs (restores, failovers, failbacks, drills), newest first.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One recovery job with its steps.
    Show {
        /// The job id (job-YYYYMMDDTHHMMSSZ-XXXXXXXX).
        id: String,
    },
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The backup plan file (TOML) naming what is protected, e.g. examples/plans.toml.
    #[arg(long, env = "LIFEBOAT_PLANS", value_name = "FILE")]
    pub plans: PathBuf,
    /// Evaluate as of this time (RFC 3339) instead of now.
    #[arg(long, hide = true)]
    pub at: Option<String>,
}

fn parse_at(at: Option<&str>) -> Result<jiff::Timestamp> {
    match at {
        Some(text) => text
            .parse::<jiff::Timestamp>()
            .map_err(|e| anyhow!("--at {text:?} is not an RFC 3339 time such as 2026-11-23T10:00:00Z ({e})")),
        None => Ok(jiff::Timestamp::now()),
    }
}

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

fn load_checks(path: Option<&PathBuf>) -> Result<Option<lifeboat::validate::Checks>> {
    Ok(path.map(|p| lifeboat::validate::load(p)).transpose()?)
}

/// Status changes while waiting, to standard error (standard output stays the result).
fn progress(output: Output) -> impl FnMut(&str) + Send {
    move |line: &str| {
        if output == Output::Text {
            eprintln!("  {line}");
        }
    }
}

/// `lifeboat restore db`: in the source ARN's region, or `--region`.
pub async fn restore_db(
    catalog: &Catalog,
    asked_region: Option<&str>,
    output: Output,
    args: &RestoreDbArgs,
) -> Result<ExitCode> {
    let time = RestoreTime::parse(&args.to_time)?;
    let checks = load_checks(args.validate.as_ref())?;
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
    let region = restore_region(&args.id, arn_region(&args.id), asked_region)?;
    let rds = Rds::new(&load_config(region.as_deref()).await?);
    let mut progress = progress(output);
    let result = restore_to_point_in_time(&rds, &catalog.jobs(), &options, &mut progress).await;
    conclude(output, result)
}

/// `lifeboat restore snapshot`: in the snapshot ARN's region, or `--region`.
pub async fn restore_snapshot_command(
    catalog: &Catalog,
    asked_region: Option<&str>,
    output: Output,
    args: &RestoreSnapshotArgs,
) -> Result<ExitCode> {
    let snapshot = SnapshotRef::parse(&args.snapshot)?;
    let region = snapshot.region(&args.snapshot, asked_region)?;
    let config = load_config(region.as_deref()).await?;
    let checks = load_checks(args.validate.as_ref())?;
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
    let mut progress = progress(output);
    let result = restore_snapshot(&rds, &catalog.jobs(), &options, &mut progress).await;
    conclude(output, result)
}

fn conclude(output: Output, result: Result<RecoveryReport, RecoveryError>) -> Result<ExitCode> {
    match result {
        Ok(report) => {
            render_restore(output, &report);
            Ok(ExitCode::SUCCESS)
        }
        Err(RecoveryError::Failed {
            job,
            step,
            message,
            resumable,
        }) => {
            if output == Output::Json {
                json(&job);
            }
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

/// `lifeboat jobs list`.
pub async fn jobs_list(catalog: &Catalog, output: Output, limit: usize) -> Result<ExitCode> {
    let jobs = catalog.jobs().list(Some(limit)).await?;
    if output == Output::Json {
        json(&jobs);
        return Ok(ExitCode::SUCCESS);
    }
    if jobs.is_empty() {
        println!("No recovery jobs in catalog table {}.", catalog.table());
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 6]> = jobs
        .iter()
        .map(|j| {
            [
                j.id.clone(),
                j.kind.to_string(),
                j.subject.clone(),
                status_word(j),
                j.started_at.clone(),
                last_step(j),
            ]
        })
        .collect();
    print_table(&["ID", "KIND", "SUBJECT", "STATUS", "STARTED", "LAST STEP"], &rows);
    Ok(ExitCode::SUCCESS)
}

/// `lifeboat jobs show`.
pub async fn jobs_show(catalog: &Catalog, output: Output, id: &str) -> Result<ExitCode> {
    let job = catalog.jobs().get(id).await?;
    if output == Output::Json {
        json(&job);
        return Ok(ExitCode::SUCCESS);
    }
    for line in job_lines(&job) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `lifeboat status`: exit [`exit::BREACHED`] when any database is breached.
pub async fn status(
    catalog: &Catalog,
    config_region: Option<&str>,
    output: Output,
    args: &StatusArgs,
) -> Result<ExitCode> {
    let now = parse_at(args.at.as_deref())?;
    let plans = lifeboat::plan::load::load_local(&args.plans, now)?;
    let config = load_config(config_region).await?;
    let report = protection_status(&config, Some(catalog), &plans, now).await?;
    render_status(output, &report);
    if report.breached() > 0 {
        Ok(ExitCode::from(exit::BREACHED))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

fn json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("lifeboat: cannot render JSON: {e}"),
    }
}

fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    for line in table_lines(header, rows) {
        println!("{line}");
    }
}

/// Columns padded to their widest cell, two spaces apart.
fn table_lines<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> Vec<String> {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = vec![line(header.to_vec())];
    out.extend(rows.iter().map(|row| line(row.iter().map(String::as_str).collect())));
    out
}

fn status_word(job: &JobRecord) -> String {
    serde_json::to_value(job.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn last_step(job: &JobRecord) -> String {
    job.steps
        .last()
        .map(|s| format!("{} {}", s.name, step_word(s.status)))
        .unwrap_or_default()
}

fn step_word(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Running => "running",
        StepStatus::Done => "done",
        StepStatus::Failed => "FAILED",
    }
}

fn millis(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        humantime::format_duration(Duration::from_secs(ms / 1000)).to_string()
    }
}

fn job_lines(job: &JobRecord) -> Vec<String> {
    let mut out = vec![format!(
        "Job {} ({} of {}): {}",
        job.id,
        job.kind,
        job.subject,
        status_word(job)
    )];
    out.push(format!("  started   {}", job.started_at));
    if let Some(finished) = &job.finished_at {
        out.push(format!("  finished  {finished}"));
    }
    if job.runs > 1 {
        out.push(format!("  runs      {} (resumed)", job.runs));
    }
    for step in &job.steps {
        let took = step.duration_ms.map(millis).unwrap_or_else(|| "…".to_owned());
        let tries = if step.attempts > 1 {
            format!(", {} attempts", step.attempts)
        } else {
            String::new()
        };
        out.push(format!(
            "  step      {:<16} {:<8} {took}{tries}",
            step.name,
            step_word(step.status)
        ));
        if let Some(error) = &step.error {
            out.push(format!("            {error}"));
        }
    }
    if let Some(error) = &job.error {
        out.push(format!("  error     {error}"));
    }
    out
}

fn render_restore(output: Output, report: &RecoveryReport) {
    if output == Output::Json {
        return json(&report.job);
    }
    for line in restore_lines(report) {
        println!("{line}");
    }
}

fn restore_lines(report: &RecoveryReport) -> Vec<String> {
    let restored = &report.restored;
    let from = match report.restore_time {
        Some(at) => format!("{} restored to {at}", report.job.subject),
        None => format!("snapshot {} restored", report.job.subject),
    };
    let mut out = vec![format!(
        "{from} as {} in {} ({}).",
        restored.describe(),
        restored.region,
        restored.status
    )];
    if let Some(window) = &report.window {
        out.push(format!("  window      {window} ({})", window.basis.describe()));
    }
    if let Some(instance) = &restored.instance {
        out.push(format!("  instance    {instance}"));
    }
    match &restored.endpoint {
        Some(endpoint) => out.push(format!("  endpoint    {endpoint}")),
        None => out
            .push("  endpoint    not yet known (wait with --wait, or see `aws rds describe-db-instances`)".to_owned()),
    }
    if let Some(validation) = &report.validation {
        out.push(format!("  validation  {validation}"));
    }
    let steps: Vec<String> = report
        .job
        .steps
        .iter()
        .map(|s| format!("{} {}", s.name, s.duration_ms.map(millis).unwrap_or_default()))
        .collect();
    out.push(format!("  job         {} ({})", report.job.id, steps.join(", ")));
    out
}

fn render_status(output: Output, report: &StatusReport) {
    if output == Output::Json {
        return json(&serde_json::json!({
            "at": report.at,
            "breached": report.breached(),
            "resources": report.resources,
            "plansWithoutDatabases": report.plans_without_databases,
        }));
    }
    for line in status_lines(report) {
        println!("{line}");
    }
}

fn status_lines(report: &StatusReport) -> Vec<String> {
    let mut out = Vec::new();
    if report.resources.is_empty() {
        out.push("No RDS database is protected by these plans.".to_owned());
    } else {
        let rows: Vec<[String; 8]> = report
            .resources
            .iter()
            .map(|r| {
                let (last, age) = match (&r.last_snapshot, r.age_seconds) {
                    (Some(s), Some(age)) => (
                        s.created_at.strftime("%Y-%m-%d %H:%M").to_string(),
                        age_words(jiff::SignedDuration::from_secs(age)),
                    ),
                    _ => ("none".to_owned(), "-".to_owned()),
                };
                let copies = if r.copies.is_empty() {
                    "-".to_owned()
                } else {
                    r.copies
                        .iter()
                        .map(|c| format!("{} {}", c.region, c.state.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let next = r
                    .next_run
                    .as_deref()
                    .and_then(|z| z.parse::<jiff::Zoned>().ok())
                    .map(|z| z.timestamp().strftime("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_else(|| "-".to_owned());
                let health = match r.health {
                    Health::Ok => "OK".to_owned(),
                    Health::Breached => "BREACHED".to_owned(),
                };
                [
                    health,
                    r.plan.clone(),
                    format!("{} {} ({})", kind_words(r.kind), r.id, r.region),
                    last,
                    age,
                    r.rpo.clone(),
                    copies,
                    next,
                ]
            })
            .collect();
        out.extend(table_lines(
            &[
                "STATE",
                "PLAN",
                "DATABASE",
                "LAST SNAPSHOT (UTC)",
                "AGE",
                "RPO",
                "DR COPIES",
                "NEXT RUN (UTC)",
            ],
            &rows,
        ));
    }
    let problems: Vec<String> = report
        .resources
        .iter()
        .flat_map(|r| {
            r.problems
                .iter()
                .map(move |p| format!("  BREACHED {} {}: {p}", r.plan, r.id))
        })
        .chain(report.resources.iter().flat_map(|r| {
            r.notes
                .iter()
                .map(move |n| format!("  note     {} {}: {n}", r.plan, r.id))
        }))
        .collect();
    if !problems.is_empty() {
        out.push(String::new());
        out.extend(problems);
    }
    for plan in &report.plans_without_databases {
        out.push(format!(
            "  note     plan {plan} selects no database in RDS (check its tags)"
        ));
    }
    out.push(String::new());
    let at = report.at.strftime("%Y-%m-%d %H:%M UTC");
    out.push(match report.breached() {
        0 => format!(
            "{at}: all {} protected database(s) within target.",
            report.resources.len()
        ),
        n => format!(
            "{at}: {n} of {} protected database(s) BREACHED (exit 8): see above.",
            report.resources.len()
        ),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_columns_to_the_widest_cell() {
        let rows = [
            ["OK".to_owned(), "a".to_owned(), "last".to_owned()],
            ["BREACHED".to_owned(), "longer".to_owned(), "x".to_owned()],
        ];
        assert_eq!(
            table_lines(&["STATE", "PLAN", "END"], &rows),
            ["STATE     PLAN    END", "OK        a       last", "BREACHED  longer  x"]
        );
    }

    #[test]
    fn the_status_table_shows_each_database_then_every_problem_then_the_verdict() {
        use lifeboat::snapshot::ResourceKind;
        use lifeboat::status::{CopyState, CopyStatus, ResourceStatus, SeenSnapshot};
        let at: jiff::Timestamp = "2026-11-23T03:10:00Z".parse().expect("time");
        let resource = |id: &str, age: i64, copy: CopyState, problems: &[&str]| ResourceStatus {
            plan: "orders-hourly".into(),
            tier: lifeboat::plan::Tier::Critical,
            kind: ResourceKind::DbInstance,
            id: id.into(),
            region: "eu-central-1".into(),
            selected_by: "tags".into(),
            rpo: "1 h".into(),
            rpo_seconds: 3600,
            last_snapshot: Some(SeenSnapshot {
                id: format!("lifeboat-orders-hourly-{id}-20261123-0300"),
                status: "available".into(),
                created_at: at - jiff::SignedDuration::from_secs(age),
            }),
            age_seconds: Some(age),
            copies: vec![CopyStatus {
                region: "us-west-2".into(),
                state: copy,
                newest_available: None,
            }],
            catalog_latest: None,
            next_run: Some("2026-11-23T05:00:00+01:00[Europe/Berlin]".into()),
            health: if problems.is_empty() {
                Health::Ok
            } else {
                Health::Breached
            },
            problems: problems.iter().map(|p| p.to_string()).collect(),
            notes: Vec::new(),
        };
        let report = StatusReport {
            at,
            resources: vec![
                resource("orders", 600, CopyState::Available, &[]),
                resource("users", 600, CopyState::Missing, &["no copy in us-west-2"]),
            ],
            plans_without_databases: vec!["tagged-nightly".into()],
        };
        assert_eq!(
            status_lines(&report),
            [
                "STATE     PLAN           DATABASE                           LAST SNAPSHOT (UTC)  AGE     RPO  DR COPIES          NEXT RUN (UTC)",
                "OK        orders-hourly  DB instance orders (eu-central-1)  2026-11-23 03:00     10 min  1 h  us-west-2 ok       2026-11-23 04:00",
                "BREACHED  orders-hourly  DB instance users (eu-central-1)   2026-11-23 03:00     10 min  1 h  us-west-2 MISSING  2026-11-23 04:00",
                "",
                "  BREACHED orders-hourly users: no copy in us-west-2",
                "  note     plan tagged-nightly selects no database in RDS (check its tags)",
                "",
                "2026-11-23 03:10 UTC: 1 of 2 protected database(s) BREACHED (exit 8): see above.",
            ]
        );
    }

    #[test]
    fn step_durations_read_well() {
        assert_eq!(millis(12), "12 ms");
        assert_eq!(millis(125_000), "2m 5s");
    }
}
