//! One function per subcommand: validate, make one library call, render.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lifeboat::aws::{load_config, Clients};
use lifeboat::backup::{run_backup, BackupError, BackupOptions};
use lifeboat::catalog::Catalog;
use lifeboat::format::BackupType;
use lifeboat::ids::BackupId;
use lifeboat::keys::{KeyError, Kms};
use lifeboat::repo::{storage_for, RepoError, Repository};
use lifeboat::restore::{plan_restore, run_restore, RestoreError, RestoreOptions};
use lifeboat::storage::Location;

use crate::cli::{BackupCommand, BackupsCommand, Cli, Command, Global, KeysCommand, RestoreCommand};
use crate::exit;
use crate::render::Renderer;

/// What every command shares: clients, the catalog, the output style.
struct Env {
    global: Global,
    clients: Clients,
    catalog: Catalog,
    out: Renderer,
}

impl Env {
    async fn new(global: Global) -> Result<Self> {
        let config = load_config(global.region.as_deref()).await?;
        let clients = Clients::new(&config);
        let catalog = Catalog::new(clients.dynamodb.clone(), &global.table, &clients.region);
        let out = Renderer::new(global.output);
        Ok(Self {
            global,
            clients,
            catalog,
            out,
        })
    }

    fn store(&self) -> Result<Location> {
        let text = self
            .global
            .store
            .as_deref()
            .ok_or_else(|| anyhow!("no store given: pass --store s3://BUCKET[/PREFIX] or set LIFEBOAT_STORE"))?;
        Location::parse(text).map_err(|e| anyhow!("--store: {e}"))
    }

    fn kms(&self) -> Kms {
        Kms::new(self.clients.kms.clone(), &self.clients.region)
    }

    async fn open_repo(&self) -> Result<Arc<Repository>> {
        let location = self.store()?;
        let (storage, prefix) = storage_for(&location, &self.clients.s3, &self.clients.region);
        let repo = Repository::open(storage, &prefix, &self.kms(), self.global.kms_key.as_deref()).await?;
        Ok(Arc::new(repo))
    }

    /// A backup id, or the newest completed backup of `source` for `latest`.
    async fn resolve_backup(&self, id: &str, source: Option<&str>) -> Result<String> {
        if id != "latest" {
            return BackupId::parse(id).map(|b| b.to_string()).ok_or_else(|| {
                anyhow!(
                    "{id:?} is not a backup id (bk-YYYYMMDDTHHMMSSZ-XXXXXXXX) or `latest`: see `lifeboat backups list`"
                )
            });
        }
        let source = source.ok_or_else(|| anyhow!("`latest` needs --source to say which source's latest backup"))?;
        let name = canonical_source(source)?;
        let record = self.catalog.latest_completed(&name, |_| true).await?.ok_or_else(|| {
            anyhow!(
                "source {name} has no completed backup in catalog table {}",
                self.catalog.table()
            )
        })?;
        Ok(record.id)
    }
}

/// The name the catalog records for a source (see `lifeboat::source::Source::name`).
fn canonical_source(text: &str) -> Result<String> {
    match Location::parse(text).map_err(|e| anyhow!("source: {e}"))? {
        Location::S3 { bucket, prefix } if prefix.is_empty() => Ok(format!("s3://{bucket}/")),
        Location::S3 { bucket, prefix } => Ok(format!("s3://{bucket}/{prefix}/")),
        Location::Dir(path) => Ok(std::path::absolute(&path).unwrap_or(path).display().to_string()),
    }
}

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let env = Env::new(cli.global).await?;
    match cli.command {
        Command::Init { create_table } => init(&env, create_table).await,
        Command::Backup(BackupCommand::Files {
            source,
            backup_type,
            concurrency,
            retention_days,
        }) => backup_files(&env, &source, &backup_type, concurrency, retention_days).await,
        Command::Backups(BackupsCommand::List { source }) => backups_list(&env, source.as_deref()).await,
        Command::Backups(BackupsCommand::Show { id, source }) => backups_show(&env, &id, source.as_deref()).await,
        Command::Restore(RestoreCommand::Files {
            id,
            to,
            include,
            source,
            concurrency,
        }) => restore_files(&env, &id, &to, include, source.as_deref(), concurrency).await,
        Command::Keys(KeysCommand::Rewrap) => keys_rewrap(&env).await,
    }
}

async fn init(env: &Env, create_table: bool) -> Result<ExitCode> {
    let location = env.store()?;
    let kms_key = env.global.kms_key.as_deref().ok_or_else(|| {
        anyhow!("init needs --kms-key (or LIFEBOAT_KMS_KEY): the KMS key that will wrap the store's keys")
    })?;
    let table = if create_table {
        Some(env.catalog.create_table().await?)
    } else {
        None
    };
    let (storage, prefix) = storage_for(&location, &env.clients.s3, &env.clients.region);
    let outcome = Repository::init(storage, &prefix, &env.kms(), kms_key).await?;
    env.out.init(&outcome, env.catalog.table(), table);
    Ok(ExitCode::SUCCESS)
}

async fn backup_files(
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
    Ok(ExitCode::SUCCESS)
}

async fn backups_list(env: &Env, source: Option<&str>) -> Result<ExitCode> {
    let source = source.map(canonical_source).transpose()?;
    let records = env.catalog.list(source.as_deref()).await?;
    env.out.backups(&records);
    Ok(ExitCode::SUCCESS)
}

async fn backups_show(env: &Env, id: &str, source: Option<&str>) -> Result<ExitCode> {
    let id = env.resolve_backup(id, source).await?;
    let record = env.catalog.get(&id).await?;
    env.out.backup_record(&record);
    Ok(ExitCode::SUCCESS)
}

async fn restore_files(
    env: &Env,
    id: &str,
    to: &str,
    include: Option<String>,
    source: Option<&str>,
    concurrency: usize,
) -> Result<ExitCode> {
    let target = Location::parse(to).map_err(|e| anyhow!("--to: {e}"))?;
    let id = env.resolve_backup(id, source).await?;
    let repo = env.open_repo().await?;
    let mut options = RestoreOptions::new(&id, target);
    options.include = include;
    options.concurrency = concurrency.max(1);
    let plan = plan_restore(&repo, &env.catalog, &options).await?;
    let bar = progress_bar(plan.total_bytes, env.out.is_text());
    let ticker = {
        let (bar, progress) = (bar.clone(), options.progress.clone());
        tokio::spawn(async move {
            loop {
                bar.set_position(progress.load(std::sync::atomic::Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let result = run_restore(repo, &env.clients.s3, &env.clients.region, plan, &options).await;
    ticker.abort();
    bar.finish_and_clear();
    let summary = result?;
    env.out.restore(&summary);
    Ok(ExitCode::SUCCESS)
}

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

async fn keys_rewrap(env: &Env) -> Result<ExitCode> {
    let new_key = env.global.kms_key.as_deref().ok_or_else(|| {
        anyhow!("keys rewrap needs --kms-key NEW_KEY: the key to wrap the store's keys with from now on")
    })?;
    let location = env.store()?;
    let (storage, prefix) = storage_for(&location, &env.clients.s3, &env.clients.region);
    let kms = env.kms();
    let mut repo = Repository::open(storage, &prefix, &kms, None).await?;
    let old = repo.config.kms_key_id.clone();
    let new = repo
        .rewrap(&kms, new_key)
        .await
        .context("re-wrapping the store's keys")?;
    env.out.rewrap(repo.location(), &old, &new);
    Ok(ExitCode::SUCCESS)
}

/// Maps an error to the documented exit code.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(RestoreError::Incomplete { .. }) = cause.downcast_ref::<RestoreError>() {
            return exit::PARTIAL;
        }
        let repo = cause
            .downcast_ref::<RepoError>()
            .or_else(|| match cause.downcast_ref::<BackupError>() {
                Some(BackupError::Repo(r)) => Some(r),
                _ => None,
            })
            .or_else(|| match cause.downcast_ref::<RestoreError>() {
                Some(RestoreError::Repo(r)) => Some(r),
                _ => None,
            });
        match repo {
            Some(RepoError::NotInitialised { .. }) => return exit::NOT_INITIALISED,
            Some(RepoError::Key(_)) => return exit::KEY_PROBLEM,
            _ => {}
        }
        if cause.downcast_ref::<KeyError>().is_some() {
            return exit::KEY_PROBLEM;
        }
    }
    exit::FAILURE
}
