//! `lifeboat backup files|dump` (take a backup now) and `backups list|show`
//! (the catalog's records).

use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use lifeboat::backup::{run_backup, BackupOptions};
use lifeboat::db::secret::resolve_database;
use lifeboat::dump::{run_dump_backup, DumpBackupOptions};
use lifeboat::format::BackupType;
use lifeboat::storage::Location;

use crate::cli::{BackupCommand, BackupsCommand};
use crate::env::{canonical_source, Env};

pub async fn run(env: &Env, command: BackupCommand) -> Result<ExitCode> {
    match command {
        BackupCommand::Files {
            source,
            backup_type,
            concurrency,
            retention_days,
        } => files(env, &source, &backup_type, concurrency, retention_days).await,
        BackupCommand::Dump { url, retention_days } => dump(env, &url, retention_days).await,
    }
}

pub async fn backups(env: &Env, command: BackupsCommand) -> Result<ExitCode> {
    match command {
        BackupsCommand::List { source } => list(env, source.as_deref()).await,
        BackupsCommand::Show { id, source } => show(env, &id, source.as_deref()).await,
    }
}

async fn files(
    env: &Env,
    source: &str,
    backup_type: &str,
    concurrency: usize,
    retention_days: Option<u32>,
) -> Result<ExitCode> {
    let backup_type: BackupType = backup_type.parse().map_err(|e: String| anyhow!(e))?;
    let location = Location::parse(source).map_err(|e| anyhow!("source: {e}"))?;
    if concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let repo = env.open_repo().await?;
    let mut options = BackupOptions::new(location, backup_type);
    options.concurrency = concurrency;
    options.retention_days = retention_days;
    let summary = run_backup(repo, &env.catalog, &env.clients.s3, &env.clients.region, &options).await?;
    env.out.backup(&summary);
    // A backup that skipped unreadable entries completed, but not with everything.
    Ok(crate::exit::unless(summary.skipped.is_empty(), crate::exit::PARTIAL))
}

async fn dump(env: &Env, url: &str, retention_days: Option<u32>) -> Result<ExitCode> {
    let url = resolve_database(url, &env.clients.secretsmanager).await?;
    let repo = env.open_repo().await?;
    let options = DumpBackupOptions { url, retention_days };
    let summary = run_dump_backup(repo, &env.catalog, &options).await?;
    env.out.backup(&summary);
    Ok(ExitCode::SUCCESS)
}

async fn list(env: &Env, source: Option<&str>) -> Result<ExitCode> {
    let source = source.map(canonical_source).transpose()?;
    let records = env.catalog.list(source.as_deref()).await?;
    env.out.backups(&records);
    Ok(ExitCode::SUCCESS)
}

async fn show(env: &Env, id: &str, source: Option<&str>) -> Result<ExitCode> {
    let id = env.resolve_backup(id, source).await?;
    let record = env.catalog.get(&id).await?;
    env.out.backup_record(&record);
    if env.out.is_text() {
        let latest = env.catalog.verifications(&id, Some(1)).await?;
        env.out.last_verification(latest.first());
    }
    Ok(ExitCode::SUCCESS)
}
