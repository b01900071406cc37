//! `lifeboat restore db|snapshot` (the restored database and its job, and
//! the status while waiting), `jobs list|show` and the `status` table.

use std::time::Duration;

use lifeboat::jobs::{JobRecord, StepStatus};
use lifeboat::recovery::RecoveryReport;
use lifeboat::status::{age_words, kind_words, Health, ResourceStatus, StatusReport};

use super::{json, print_lines, table_lines, Renderer};

impl Renderer {
    /// Status changes while waiting, to standard error (standard output stays the result).
    pub fn progress(&self) -> impl FnMut(&str) + Send {
        let text = self.is_text();
        move |line: &str| {
            if text {
                eprintln!("  {line}");
            }
        }
    }

    /// A restore's outcome: the restored database, or its job as JSON.
    pub fn restore_job(&self, report: &RecoveryReport) {
        if self.is_json() {
            return json(&report.job);
        }
        print_lines(&restore_lines(report));
    }

    /// A failed restore's job (JSON only: the text is the error).
    pub fn failed_job(&self, job: &JobRecord) {
        if self.is_json() {
            json(job);
        }
    }

    /// `lifeboat jobs list`.
    pub fn jobs(&self, jobs: &[JobRecord], table: &str) {
        if self.is_json() {
            return json(&jobs);
        }
        if jobs.is_empty() {
            println!("No recovery jobs in catalog table {table}.");
            return;
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
        print_lines(&table_lines(
            &["ID", "KIND", "SUBJECT", "STATUS", "STARTED", "LAST STEP"],
            &rows,
        ));
    }

    /// `lifeboat jobs show`.
    pub fn job(&self, job: &JobRecord) {
        if self.is_json() {
            return json(job);
        }
        print_lines(&job_lines(job));
    }

    /// `lifeboat status`.
    pub fn status(&self, report: &StatusReport) {
        if self.is_json() {
            return json(&serde_json::json!({
                "at": report.at,
                "breached": report.breached(),
                "resources": report.resources,
                "plansWithoutDatabases": report.plans_without_databases,
            }));
        }
        print_lines(&status_lines(report));
    }
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

/// One row of the status table.
fn status_row(r: &ResourceStatus) -> [String; 8] {
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
}

fn status_lines(report: &StatusReport) -> Vec<String> {
    let mut out = Vec::new();
    if report.resources.is_empty() {
        out.push("No RDS database is protected by these plans.".to_owned());
    } else {
        let rows: Vec<[String; 8]> = report.resources.iter().map(status_row).collect();
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
