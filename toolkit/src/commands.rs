//! One function per subcommand: validate, make one library call, render.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lifeboat::audit::{parse_time, AuditEvent};
use lifeboat::aws::{load_config, Clients};
use lifeboat::backup::{run_backup, BackupError, BackupOptions};
use lifeboat::catalog::{Catalog, HoldRecord};
use lifeboat::dump::{run_dump_backup, DatabaseUrl, DumpBackupOptions, DumpError, DumpRestoreOptions};
use lifeboat::expire::{apply_expiry, plan_expiry};
use lifeboat::format::BackupType;
use lifeboat::gc::{collect_garbage, GcOptions};
use lifeboat::ids::BackupId;
use lifeboat::keys::{KeyError, Kms};
use lifeboat::repo::{storage_for, RepoError, Repository};
use lifeboat::restore::{plan_restore, run_restore, RestoreError, RestoreOptions};
use lifeboat::retention::RetentionPolicy;
use lifeboat::storage::Location;
use lifeboat::verify::{run_verify, VerifyMode, VerifyOptions};

use crate::cli::{AuditLogCommand, BackupCommand, BackupsCommand, Cli, Command, Global, KeysCommand, RestoreCommand};
use crate::cli::{HoldCommand, PlanCommand, RetentionArgs, RetentionCommand};
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

impl Env {
    /// Appends to the audit trail after something was done. What was done
    /// stands: a trail that cannot be written is a warning, not a failure.
    async fn audit(&self, event: AuditEvent) {
        let (action, subject) = (event.action.clone(), event.subject.clone());
        if let Err(error) = self.catalog.audit_trail().append(event).await {
            tracing::warn!(%action, %subject, %error, "done, but not recorded in the audit trail");
        }
    }
}

/// The name the catalog records for a source (see `lifeboat::source::Source::name`).
fn canonical_source(text: &str) -> Result<String> {
    if let Ok(url) = DatabaseUrl::parse(text) {
        return Ok(url.to_string());
    }
    match Location::parse(text).map_err(|e| anyhow!("source: {e}"))? {
        Location::S3 { bucket, prefix } if prefix.is_empty() => Ok(format!("s3://{bucket}/")),
        Location::S3 { bucket, prefix } => Ok(format!("s3://{bucket}/{prefix}/")),
        Location::Dir(path) => Ok(std::path::absolute(&path).unwrap_or(path).display().to_string()),
    }
}

pub async fn run(cli: Cli) -> Result<ExitCode> {
    // Commands that need no AWS run before the clients are set up.
    if let Command::Plan(PlanCommand::Check { file, at }) = &cli.command {
        return plan_check(&Renderer::new(cli.global.output), file, at.as_deref());
    }
    if let Command::Plan(PlanCommand::Schedules { file }) = &cli.command {
        return plan_schedules(file);
    }
    if let Command::Integrity(command) = cli.command {
        return crate::integrity::run(command, cli.global.output).await;
    }
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
        Command::Verify {
            sample: Some(percent),
            concurrency,
            ..
        } => verify_sample(&env, percent, concurrency).await,
        Command::Verify {
            id,
            deep,
            source,
            concurrency,
            ..
        } => {
            verify(
                &env,
                id.as_deref().unwrap_or("latest"),
                deep,
                source.as_deref(),
                concurrency,
            )
            .await
        }
        Command::Backup(BackupCommand::Dump { url, retention_days }) => backup_dump(&env, &url, retention_days).await,
        Command::Restore(RestoreCommand::Dump {
            id,
            to,
            overwrite,
            source,
        }) => restore_dump(&env, &id, &to, overwrite, source.as_deref()).await,
        Command::Gc {
            dry_run,
            grace,
            assume_dead_after,
            at,
        } => gc(&env, dry_run, grace, assume_dead_after, at.as_deref()).await,
        Command::Keys(KeysCommand::Rewrap) => keys_rewrap(&env).await,
        Command::Hold(HoldCommand::Add { id, reason }) => hold_add(&env, &id, &reason).await,
        Command::Hold(HoldCommand::Remove { id }) => hold_remove(&env, &id).await,
        Command::Hold(HoldCommand::List) => hold_list(&env).await,
        Command::Retention(RetentionCommand::Apply(args)) => retention_apply(&env, &args).await,
        Command::AuditLog(AuditLogCommand::Verify) => audit_log_verify(&env).await,
        Command::AuditLog(AuditLogCommand::Show { since }) => audit_log_show(&env, since.as_deref()).await,
        Command::Plan(PlanCommand::Check { file, at }) => plan_check(&env.out, &file, at.as_deref()),
        Command::Plan(PlanCommand::Schedules { file }) => plan_schedules(&file),
        Command::Failover { args, yes, restart } => {
            let kind = lifeboat::jobs::JobKind::Failover;
            crate::dr::switch(&env.catalog, env.global.output, &args, yes, restart, kind).await
        }
        Command::Failback { args, yes, restart } => {
            let kind = lifeboat::jobs::JobKind::Failback;
            crate::dr::switch(&env.catalog, env.global.output, &args, yes, restart, kind).await
        }
        Command::Drill { args } => crate::dr::drill(&env.catalog, env.global.output, &args).await,
        Command::Integrity(command) => crate::integrity::run(command, env.global.output).await,
        Command::Restore(RestoreCommand::Db(args)) => {
            crate::recovery::restore_db(&env.catalog, env.global.region.as_deref(), env.global.output, &args).await
        }
        Command::Restore(RestoreCommand::Snapshot(args)) => {
            crate::recovery::restore_snapshot_command(
                &env.catalog,
                env.global.region.as_deref(),
                env.global.output,
                &args,
            )
            .await
        }
        Command::Jobs(crate::recovery::JobsCommand::List { limit }) => {
            crate::recovery::jobs_list(&env.catalog, env.global.output, limit).await
        }
        Command::Jobs(crate::recovery::JobsCommand::Show { id }) => {
            crate::recovery::jobs_show(&env.catalog, env.global.output, &id).await
        }
        Command::Status(args) => {
            crate::recovery::status(&env.catalog, env.global.region.as_deref(), env.global.output, &args).await
        }
        Command::Snapshots(command) => {
            crate::snapshots::run(&env.catalog, env.global.region.as_deref(), env.global.output, command).await
        }
    }
}

/// The schedules' template, for a valid plan file only (its problems otherwise).
fn plan_schedules(file: &std::path::Path) -> Result<ExitCode> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read plan file {}", file.display()))?;
    let plans = lifeboat::plan::parse_plans(&text, jiff::Timestamp::now())
        .map_err(|e| anyhow!("{}: {e} (see lifeboat plan check)", file.display()))?;
    let template = crate::schedules::template(&plans, &file.display().to_string())?;
    println!("{}", serde_json::to_string_pretty(&template)?);
    Ok(ExitCode::SUCCESS)
}

fn plan_check(out: &Renderer, file: &std::path::Path, at: Option<&str>) -> Result<ExitCode> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read plan file {}", file.display()))?;
    let now = match at {
        Some(text) => text
            .parse::<jiff::Timestamp>()
            .map_err(|e| anyhow!("--at {text:?} is not an RFC 3339 time such as 2026-11-23T10:00:00Z ({e})"))?,
        None => jiff::Timestamp::now(),
    };
    let check = lifeboat::plan::check_plans(&text, now);
    out.plan_check(&file.display().to_string(), &check);
    if check.ok() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(exit::FAILURE))
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
    if env.out.is_text() {
        let latest = env.catalog.verifications(&id, Some(1)).await?;
        env.out.last_verification(latest.first());
    }
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

async fn backup_dump(env: &Env, url: &str, retention_days: Option<u32>) -> Result<ExitCode> {
    let url = lifeboat::dump::resolve_database(url, &env.clients.secretsmanager).await?;
    let repo = env.open_repo().await?;
    let options = DumpBackupOptions { url, retention_days };
    let summary = run_dump_backup(repo, &env.catalog, &options).await?;
    env.out.backup(&summary);
    Ok(ExitCode::SUCCESS)
}

async fn restore_dump(env: &Env, id: &str, to: &str, overwrite: bool, source: Option<&str>) -> Result<ExitCode> {
    if !to.contains("://") {
        // A file: the verified dump itself (a Redis RDB for a stopped server).
        let id = env.resolve_backup(id, source).await?;
        let repo = env.open_repo().await?;
        let summary =
            lifeboat::dump::restore_dump_to_file(repo, &env.catalog, &id, std::path::Path::new(to), overwrite).await?;
        env.out.restore_dump_file(&summary);
        return Ok(ExitCode::SUCCESS);
    }
    let target = DatabaseUrl::parse(to).context("--to")?;
    let id = env.resolve_backup(id, source).await?;
    let repo = env.open_repo().await?;
    let options = DumpRestoreOptions {
        backup_id: id,
        target,
        overwrite,
    };
    let summary = lifeboat::dump::restore_dump(repo, &env.catalog, &options).await?;
    env.out.restore_dump(&summary);
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

async fn verify_sample(env: &Env, percent: f64, concurrency: usize) -> Result<ExitCode> {
    if concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let repo = env.open_repo().await?;
    let options = lifeboat::verify::sample::SampleOptions { percent, concurrency };
    let report = lifeboat::verify::sample::run_sample(repo, &env.catalog, &options).await?;
    env.out.verify_sample(&report);
    if report.ok {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(exit::DAMAGE))
    }
}

async fn verify(env: &Env, id: &str, deep: bool, source: Option<&str>, concurrency: usize) -> Result<ExitCode> {
    if concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let id = env.resolve_backup(id, source).await?;
    let repo = env.open_repo().await?;
    let mode = if deep { VerifyMode::Deep } else { VerifyMode::Quick };
    let mut options = VerifyOptions::new(&id, mode);
    options.concurrency = concurrency;
    let report = run_verify(repo, &env.catalog, &options).await?;
    env.out.verify(&report);
    if report.ok {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(exit::DAMAGE))
    }
}

async fn gc(
    env: &Env,
    dry_run: bool,
    grace: std::time::Duration,
    assume_dead_after: std::time::Duration,
    at: Option<&str>,
) -> Result<ExitCode> {
    let now = match at {
        None => lifeboat::times::now(),
        Some(text) => lifeboat::times::parse(text).map_err(|e| {
            anyhow!(
                "--at {text:?} is not an RFC 3339 time (e.g. 2026-11-23T10:00:00Z): {}",
                e.message
            )
        })?,
    };
    let duration = |d: std::time::Duration, flag: &str| {
        lifeboat::times::SignedDuration::try_from(d)
            .map_err(|_| anyhow!("{flag} {} is too long", humantime::format_duration(d)))
    };
    let mut options = GcOptions::new(now);
    options.grace = duration(grace, "--grace")?;
    options.assume_dead_after = duration(assume_dead_after, "--assume-dead-after")?;
    options.dry_run = dry_run;
    let repo = env.open_repo().await?;
    let report = collect_garbage(&repo, &env.catalog, &options).await?;
    env.out.gc(&report);
    Ok(ExitCode::SUCCESS)
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
    env.audit(AuditEvent::new(
        "keys.rewrapped",
        repo.location(),
        serde_json::json!({"previousKmsKeyId": old, "kmsKeyId": new}),
    ))
    .await;
    env.out.rewrap(repo.location(), &old, &new);
    Ok(ExitCode::SUCCESS)
}

async fn audit_log_verify(env: &Env) -> Result<ExitCode> {
    let report = env.catalog.audit_trail().verify().await?;
    env.out.audit_verification(&report);
    if report.intact {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(exit::TAMPERED))
    }
}

async fn audit_log_show(env: &Env, since: Option<&str>) -> Result<ExitCode> {
    let since = since.map(parse_time).transpose().context("--since")?;
    let records = env.catalog.audit_trail().list(since).await?;
    env.out.audit_records(&records);
    Ok(ExitCode::SUCCESS)
}

fn backup_id(id: &str) -> Result<String> {
    BackupId::parse(id)
        .map(|b| b.to_string())
        .ok_or_else(|| anyhow!("{id:?} is not a backup id (bk-YYYYMMDDTHHMMSSZ-XXXXXXXX): see `lifeboat backups list`"))
}

async fn hold_add(env: &Env, id: &str, reason: &str) -> Result<ExitCode> {
    let id = backup_id(id)?;
    if reason.trim().is_empty() {
        bail!("--reason is empty: say why backup {id} is held (a case number, a ticket)");
    }
    let hold = HoldRecord {
        backup_id: id.clone(),
        reason: reason.to_owned(),
        actor: lifeboat::audit::actor_from_env(),
        created_at: lifeboat::catalog::now_rfc3339(),
    };
    let added = env.catalog.add_hold(&hold).await?;
    if added {
        env.audit(AuditEvent::new(
            "hold.added",
            &id,
            serde_json::json!({"reason": hold.reason}),
        ))
        .await;
    }
    env.out.hold_added(&hold, added);
    Ok(ExitCode::SUCCESS)
}

async fn hold_remove(env: &Env, id: &str) -> Result<ExitCode> {
    let id = backup_id(id)?;
    let removed = env.catalog.remove_hold(&id).await?;
    if let Some(hold) = &removed {
        env.audit(AuditEvent::new(
            "hold.removed",
            &id,
            serde_json::json!({"reason": hold.reason, "heldBy": hold.actor, "heldSince": hold.created_at}),
        ))
        .await;
    }
    env.out.hold_removed(&id, removed.as_ref());
    Ok(ExitCode::SUCCESS)
}

async fn hold_list(env: &Env) -> Result<ExitCode> {
    let holds = env.catalog.list_holds().await?;
    env.out.holds(&holds);
    Ok(ExitCode::SUCCESS)
}

async fn retention_apply(env: &Env, args: &RetentionArgs) -> Result<ExitCode> {
    let policy = RetentionPolicy {
        keep_days: args.keep_days,
        keep_last: args.keep_last,
        daily: args.keep_daily,
        weekly: args.keep_weekly,
        monthly: args.keep_monthly,
        yearly: args.keep_yearly,
        timezone: args.timezone.clone(),
    };
    if !policy.has_rules() {
        bail!(
            "no retention rule given: give at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-days"
        );
    }
    policy.validate()?;
    let now = match &args.at {
        Some(text) => text
            .parse::<jiff::Timestamp>()
            .map_err(|e| anyhow!("--at {text:?} is not an RFC 3339 time such as 2026-11-23T10:00:00Z ({e})"))?,
        None => jiff::Timestamp::now(),
    };
    let source = args.source.as_deref().map(canonical_source).transpose()?;
    let plan = plan_expiry(&env.catalog, source.as_deref(), &policy, now).await?;
    if args.dry_run {
        env.out.retention_plan(&plan);
        return Ok(ExitCode::SUCCESS);
    }
    let repo = env.open_repo().await?;
    let audit = env.catalog.audit_trail();
    let summary = apply_expiry(&repo, &env.catalog, Some(&audit), &plan).await?;
    env.out.expiry(&summary);
    if summary.failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(exit::PARTIAL))
    }
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
            })
            .or_else(|| match cause.downcast_ref::<DumpError>() {
                Some(DumpError::Repo(r) | DumpError::Backup(BackupError::Repo(r))) => Some(r),
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
