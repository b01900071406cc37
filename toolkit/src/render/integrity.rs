//! `lifeboat audit` (text, JSON or Markdown), `salvage sqlite` and `consistency`.

use lifeboat::consistency::ConsistencyReport;
use lifeboat::integrity::AuditReport;
use lifeboat::salvage::SalvageReport;

use super::{json, Renderer};
use crate::cli::ReportFormat;

impl Renderer {
    /// An audit report in `format`, or as --output says.
    pub fn audit(&self, report: &AuditReport, format: Option<ReportFormat>) {
        let format = format.unwrap_or(if self.is_json() {
            ReportFormat::Json
        } else {
            ReportFormat::Text
        });
        match format {
            ReportFormat::Json => json(report),
            ReportFormat::Text => audit_text(report),
            ReportFormat::Markdown => audit_markdown(report),
        }
    }

    pub fn salvage(&self, report: &SalvageReport) {
        if self.is_json() {
            json(report);
        } else {
            salvage_text(report);
        }
    }

    pub fn consistency(&self, report: &ConsistencyReport) {
        if self.is_json() {
            json(report);
        } else {
            consistency_text(report);
        }
    }
}

fn audit_verdict(r: &AuditReport) -> String {
    if r.clean() {
        "clean".to_owned()
    } else {
        format!("{} critical, {} warning(s)", r.critical, r.warnings)
    }
}

fn audit_text(r: &AuditReport) {
    println!(
        "Audit of {} ({} {}): {} in {:.1} s",
        r.target,
        r.engine.as_str(),
        r.server_version,
        audit_verdict(r),
        r.duration_seconds
    );
    for check in &r.checks {
        println!(
            "  checked  {:<16} {} ({} object(s))",
            check.check, check.description, check.objects
        );
    }
    for f in &r.findings {
        println!("{:<8} {} [{}]: {}", f.severity.as_str(), f.object, f.check, f.message);
        println!("         action: {}", f.action);
    }
}

/// A Markdown table cell: no pipes or line breaks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', "<br>")
}

fn audit_markdown(r: &AuditReport) {
    println!("# Integrity audit of `{}`\n", r.target);
    println!(
        "{} {}, {:.1} s. **Result: {}.**\n",
        r.engine.as_str(),
        r.server_version,
        r.duration_seconds,
        audit_verdict(r)
    );
    println!("| check | what | objects |\n|---|---|---|");
    for c in &r.checks {
        println!("| {} | {} | {} |", cell(&c.check), cell(&c.description), c.objects);
    }
    if r.findings.is_empty() {
        println!("\nNo findings.");
        return;
    }
    println!("\n## Findings\n\n| severity | object | check | finding | action |\n|---|---|---|---|---|");
    for f in &r.findings {
        println!(
            "| {} | `{}` | {} | {} | {} |",
            f.severity.as_str(),
            cell(&f.object),
            cell(&f.check),
            cell(&f.message),
            cell(&f.action)
        );
    }
}

fn salvage_text(r: &SalvageReport) {
    println!(
        "Salvaged {} row(s) of {} into {} in {:.1} s: {}",
        r.rows_recovered,
        r.source,
        r.target,
        r.duration_seconds,
        if r.complete {
            "nothing was lost"
        } else {
            "some data was lost (below)"
        }
    );
    for t in &r.tables {
        let state = if t.complete { "complete" } else { "PARTIAL" };
        println!("  {:<32} {:>12} rows  {state}", t.table, t.rows_recovered);
        for lost in &t.lost {
            let after = lost
                .after_rowid
                .map_or("the start".to_owned(), |r| format!("rowid {r}"));
            let before = lost.before_rowid.map_or("the end".to_owned(), |r| format!("rowid {r}"));
            println!("      lost: rows after {after} and before {before} ({})", lost.reason);
        }
        if let Some(error) = &t.error {
            println!("      lost: {error}");
        }
    }
    for object in &r.objects_lost {
        println!("  not recreated: {object}");
    }
}

fn consistency_text(r: &ConsistencyReport) {
    for rule in &r.rules {
        let verdict = if rule.matched { "match" } else { "MISMATCH" };
        println!(
            "{verdict:<9} {}: {} row(s) in {}, {} in {}",
            rule.name, rule.left_rows, rule.left, rule.right_rows, rule.right
        );
        if rule.only_left > 0 {
            println!(
                "          {} only on the left, e.g. {}",
                rule.only_left,
                rule.only_left_examples.join(", ")
            );
        }
        if rule.only_right > 0 {
            println!(
                "          {} only on the right, e.g. {}",
                rule.only_right,
                rule.only_right_examples.join(", ")
            );
        }
    }
    println!(
        "{} rule(s), {} mismatched, in {:.1} s",
        r.rules.len(),
        r.mismatched,
        r.duration_seconds
    );
}
