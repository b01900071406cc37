//! `lifeboat audit`, `lifeboat salvage sqlite` and `lifeboat consistency`:
//! their command line, one library call each, and their output (text, JSON,
//! and Markdown for `audit`). None of them needs AWS.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use lifeboat::consistency::{parse_rules, run_consistency, ConsistencyReport};
use lifeboat::integrity::{audit_target, run_audit, AuditReport};
use lifeboat::salvage::{run_salvage, SalvageOptions, SalvageReport};
use serde::Serialize;

use crate::cli::Output;
use crate::exit;

#[derive(Subcommand, Debug)]
pub enum IntegrityCommand {
    /// Audit a live database's integrity (PostgreSQL, MySQL/MariaDB, SQLite, DuckDB); exit 6 on a critical finding.
    Audit {
        /// The database's URL (postgres://…, mysql://…, sqlite:///PATH, duckdb:///PATH), or the path of a SQLite or
        /// DuckDB file.
        target: String,
        /// The report's format (default: as --output says); markdown for a ticket or a runbook.
        #[arg(long, value_enum)]
        format: Option<ReportFormat>,
    },
    /// Recover what is readable from a damaged database file into a new one.
    #[command(subcommand)]
    Salvage(SalvageCommand),
    /// Check cross-database rules (README, "Database integrity"); exit 6 on any mismatch.
    Consistency {
        /// The rules file (TOML).
        rules: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum SalvageCommand {
    /// Copy every readable row of a damaged SQLite file into a new file and name what was lost; exit 3 if anything
    /// was. The damaged file is only read.
    Sqlite {
        /// The damaged SQLite file.
        broken: PathBuf,
        /// The new file to write.
        #[arg(long)]
        to: PathBuf,
        /// Replace --to if it exists.
        #[arg(long)]
        overwrite: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Markdown,
}

pub async fn run(command: IntegrityCommand, output: Output) -> Result<ExitCode> {
    let json = output == Output::Json;
    match command {
        IntegrityCommand::Audit { target, format } => {
            let format = format.unwrap_or(if json { ReportFormat::Json } else { ReportFormat::Text });
            audit(&target, format).await
        }
        IntegrityCommand::Salvage(SalvageCommand::Sqlite { broken, to, overwrite }) => {
            salvage_sqlite(broken, to, overwrite, json).await
        }
        IntegrityCommand::Consistency { rules } => consistency(&rules, json).await,
    }
}

async fn audit(target: &str, format: ReportFormat) -> Result<ExitCode> {
    let url = audit_target(target)?;
    let report = run_audit(&url).await?;
    match format {
        ReportFormat::Json => print_json(&report),
        ReportFormat::Text => audit_text(&report),
        ReportFormat::Markdown => audit_markdown(&report),
    }
    Ok(if report.critical > 0 {
        ExitCode::from(exit::DAMAGE)
    } else {
        ExitCode::SUCCESS
    })
}

async fn salvage_sqlite(broken: PathBuf, to: PathBuf, overwrite: bool, json: bool) -> Result<ExitCode> {
    let options = SalvageOptions {
        source: broken,
        target: to,
        overwrite,
    };
    let report = run_salvage(&options).await?;
    if json {
        print_json(&report);
    } else {
        salvage_text(&report);
    }
    Ok(if report.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::PARTIAL)
    })
}

async fn consistency(file: &std::path::Path, json: bool) -> Result<ExitCode> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read rules file {}", file.display()))?;
    let rules = parse_rules(&file.display().to_string(), &text)?;
    let report = run_consistency(&rules).await?;
    if json {
        print_json(&report);
    } else {
        consistency_text(&report);
    }
    Ok(if report.mismatched > 0 {
        ExitCode::from(exit::DAMAGE)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("lifeboat: cannot render JSON: {e}"),
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
