//! `lifeboat failover`, `failback` and `drill`: what a run would do (the
//! inspection, also shown before asking), and the outcome with its RTO/RPO
//! report.

use std::path::Path;

use lifeboat::dr::report::{seconds_words, DrReport, Fence, Outcome};
use lifeboat::dr::{Action, DrInspection, DrRun};
use lifeboat::jobs::JobKind;

use super::{json, Renderer};

fn title(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Failover => "Failover",
        JobKind::Failback => "Failback",
        JobKind::Drill => "Drill",
        JobKind::RestoreDb | JobKind::RestoreSnapshot => "Restore",
    }
}

impl Renderer {
    pub fn dr_inspection(&self, inspection: &DrInspection, dry_run: bool) {
        if self.is_json() {
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

    pub fn dr_report(&self, run: &DrRun, json_path: &Path, markdown_path: &Path) {
        // Said plainly, whatever the output format.
        for (db, fence) in run
            .report
            .databases
            .iter()
            .flat_map(|db| db.fence.iter().map(move |f| (db, f)))
            .filter(|(_, f)| matches!(f, Fence::NotFenced { .. }))
        {
            eprintln!("lifeboat: warning: {}: {}", db.name, fence.words());
        }
        if self.is_json() {
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
            for fence in &db.fence {
                println!("    fence        {}", fence.words());
            }
            for note in &db.notes {
                println!("    note         {note}");
            }
        }
        for note in &report.notes {
            println!("Note: {note}");
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
}
