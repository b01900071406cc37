//! `lifeboat restore files|dump` (from the store, with a progress bar for
//! files); `restore db|snapshot` are RDS recovery jobs (`recovery`).

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lifeboat::audit::{actor_from_env, AuditEvent};
use lifeboat::catalog::leases;
use lifeboat::db::url::DatabaseUrl;
use lifeboat::dump::{restore_dump, restore_dump_to_file, DumpRestoreOptions};
use lifeboat::restore::{plan_restore, run_restore, RestoreOptions};
use lifeboat::storage::Location;

use super::recovery;
use crate::cli::RestoreCommand;
use crate::env::Env;

pub async fn run(env: &Env, command: RestoreCommand) -> Result<ExitCode> {
    match command {
        RestoreCommand::Db(args) => recovery::restore_db(env, &args).await,
        RestoreCommand::Snapshot(args) => recovery::restore_snapshot(env, &args).await,
        RestoreCommand::Files {
            id,
            to,
            include,
            source,
            concurrency,
            overwrite,
        } => files(env, &id, &to, include, source.as_deref(), concurrency, overwrite).await,
        RestoreCommand::Dump {
            id,
            to,
            overwrite,
            source,
        } => dump(env, &id, &to, overwrite, source.as_deref()).await,
    }
}

async fn files(
    env: &Env,
    id: &str,
    to: &str,
    include: Option<String>,
    source: Option<&str>,
    concurrency: usize,
    overwrite: bool,
) -> Result<ExitCode> {
    let target = Location::parse(to).map_err(|e| anyhow!("--to: {e}"))?;
    let id = env.resolve_backup(id, source).await?;
    let repo = env.open_repo().await?;
    let mut options = RestoreOptions::new(&id, target);
    options.include = include;
    options.overwrite = overwrite;
    options.concurrency = concurrency.max(1);
    let plan = plan_restore(&repo, &env.catalog, &options).await?;
    let bar = progress_bar(plan.total_bytes, env.out.is_text());
    let ticker = {
        let (bar, progress) = (bar.clone(), options.progress.clone());
        tokio::spawn(async move {
            loop {
                bar.set_position(progress.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let store = repo.config.store_id.clone();
    let restore = run_restore(repo, &env.clients.s3, &env.clients.region, plan, &options);
    let result = registered(env, &store, Some(&id), restore).await;
    ticker.abort();
    bar.finish_and_clear();
    let summary = result?;
    env.audit(AuditEvent::new(
        "restore.completed",
        &summary.backup_id,
        serde_json::json!({
            "target": summary.target,
            "include": options.include,
            "entries": summary.entries_restored,
            "bytes": summary.bytes_restored,
        }),
    ))
    .await;
    env.out.restore(&summary);
    Ok(ExitCode::SUCCESS)
}

/// Runs `reader` (a restore or a verification of store `store`; of backup
/// `id`, or of the whole store) registered in the catalog for its duration,
/// so garbage collection does not sweep the store's packs under it
/// (FORMAT.md, "Garbage collection"; [`leases::registered`]).
pub(crate) async fn registered<T, E>(
    env: &Env,
    store: &str,
    id: Option<&str>,
    reader: impl Future<Output = Result<T, E>>,
) -> Result<T>
where
    anyhow::Error: From<E>,
{
    let owner = leases::run_owner(&actor_from_env());
    Ok(leases::registered(&env.catalog, store, id, &owner, reader).await??)
}

/// The restore's progress on standard error, when it is a terminal and the output is text.
fn progress_bar(total: u64, text: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if !text || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}") {
        bar.set_style(style);
    }
    bar
}

async fn dump(env: &Env, id: &str, to: &str, overwrite: bool, source: Option<&str>) -> Result<ExitCode> {
    if !to.contains("://") {
        // A file: the verified dump itself (a Redis RDB for a stopped server).
        let id = env.resolve_backup(id, source).await?;
        let repo = env.open_repo().await?;
        let store = repo.config.store_id.clone();
        let restore = restore_dump_to_file(repo, &env.catalog, &id, Path::new(to), overwrite);
        let summary = registered(env, &store, Some(&id), restore).await?;
        env.out.restore_dump_file(&summary);
        return Ok(ExitCode::SUCCESS);
    }
    let target = DatabaseUrl::parse(to).context("--to")?;
    let id = env.resolve_backup(id, source).await?;
    let repo = env.open_repo().await?;
    let store = repo.config.store_id.clone();
    let options = DumpRestoreOptions {
        backup_id: id.clone(),
        target,
        overwrite,
    };
    let summary = registered(env, &store, Some(&id), restore_dump(repo, &env.catalog, &options)).await?;
    env.out.restore_dump(&summary);
    Ok(ExitCode::SUCCESS)
}
