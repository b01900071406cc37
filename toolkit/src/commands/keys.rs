//! `lifeboat init` (the store's key object, optionally the catalog table) and
//! `keys rewrap` (the store's keys wrapped by another KMS key).

use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use lifeboat::audit::AuditEvent;
use lifeboat::repo::{InitOutcome, Repository};

use crate::cli::KeysCommand;
use crate::env::Env;

pub async fn init(env: &Env, create_table: bool) -> Result<ExitCode> {
    env.store()?;
    let kms_key = env.global.kms_key.as_deref().ok_or_else(|| {
        anyhow!("init needs --kms-key (or LIFEBOAT_KMS_KEY): the KMS key that will wrap the store's keys")
    })?;
    let table = if create_table {
        Some(env.catalog.create_table().await?)
    } else {
        None
    };
    let (storage, prefix) = env.storage()?;
    let outcome = Repository::init(storage, &prefix, &env.kms(), kms_key).await?;
    let (InitOutcome::Created(repo) | InitOutcome::AlreadyInitialised(repo)) = &outcome;
    repo.bind_catalog(env.catalog.table(), env.catalog.region()).await?;
    env.out.init(&outcome, env.catalog.table(), table);
    Ok(ExitCode::SUCCESS)
}

pub async fn run(env: &Env, command: KeysCommand) -> Result<ExitCode> {
    match command {
        KeysCommand::Rewrap => rewrap(env).await,
    }
}

async fn rewrap(env: &Env) -> Result<ExitCode> {
    let new_key = env.global.kms_key.as_deref().ok_or_else(|| {
        anyhow!("keys rewrap needs --kms-key NEW_KEY: the key to wrap the store's keys with from now on")
    })?;
    let (storage, prefix) = env.storage()?;
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
