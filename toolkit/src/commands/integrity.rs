//! `lifeboat audit`, `salvage sqlite` and `consistency`: database integrity,
//! one library call each. None of them needs AWS.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use lifeboat::consistency::{parse_rules, run_consistency};
use lifeboat::integrity::{audit_target, run_audit};
use lifeboat::salvage::{run_salvage, SalvageOptions};

use crate::cli::{IntegrityCommand, ReportFormat, SalvageCommand};
use crate::exit;
use crate::render::Renderer;

pub async fn run(out: &Renderer, command: IntegrityCommand) -> Result<ExitCode> {
    match command {
        IntegrityCommand::Audit { target, format } => audit(out, &target, format).await,
        IntegrityCommand::Salvage(SalvageCommand::Sqlite { broken, to, overwrite }) => {
            salvage_sqlite(out, broken, to, overwrite).await
        }
        IntegrityCommand::Consistency { rules } => consistency(out, &rules).await,
    }
}

/// Exit 6 on a critical finding.
async fn audit(out: &Renderer, target: &str, format: Option<ReportFormat>) -> Result<ExitCode> {
    let url = audit_target(target)?;
    let report = run_audit(&url).await?;
    out.audit(&report, format);
    Ok(if report.critical > 0 {
        ExitCode::from(exit::DAMAGE)
    } else {
        ExitCode::SUCCESS
    })
}

/// Exit 3 if anything was lost.
async fn salvage_sqlite(out: &Renderer, broken: PathBuf, to: PathBuf, overwrite: bool) -> Result<ExitCode> {
    let options = SalvageOptions {
        source: broken,
        target: to,
        overwrite,
    };
    let report = run_salvage(&options).await?;
    out.salvage(&report);
    Ok(if report.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::PARTIAL)
    })
}

/// Exit 6 on any mismatch.
async fn consistency(out: &Renderer, file: &Path) -> Result<ExitCode> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read rules file {}", file.display()))?;
    let rules = parse_rules(&file.display().to_string(), &text)?;
    let report = run_consistency(&rules).await?;
    out.consistency(&report);
    Ok(if report.mismatched > 0 {
        ExitCode::from(exit::DAMAGE)
    } else {
        ExitCode::SUCCESS
    })
}
