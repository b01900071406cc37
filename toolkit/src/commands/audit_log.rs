//! `lifeboat audit-log verify|show`: the catalog's tamper-evident audit
//! trail checked (exit 7 if tampered with) or listed.

use std::process::ExitCode;

use anyhow::{Context, Result};
use lifeboat::audit::parse_time;

use crate::cli::AuditLogCommand;
use crate::env::Env;
use crate::exit;

pub async fn run(env: &Env, command: AuditLogCommand) -> Result<ExitCode> {
    match command {
        AuditLogCommand::Verify => verify(env).await,
        AuditLogCommand::Show { since } => show(env, since.as_deref()).await,
    }
}

async fn verify(env: &Env) -> Result<ExitCode> {
    let report = env.catalog.audit_trail().verify().await?;
    env.out.audit_verification(&report);
    if report.intact {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(exit::TAMPERED))
    }
}

async fn show(env: &Env, since: Option<&str>) -> Result<ExitCode> {
    let since = since.map(parse_time).transpose().context("--since")?;
    let records = env.catalog.audit_trail().list(since).await?;
    env.out.audit_records(&records);
    Ok(ExitCode::SUCCESS)
}
