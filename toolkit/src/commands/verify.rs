//! `lifeboat verify`: one backup (quick or deep), or `--sample` a share of
//! the whole store; exit 6 on damage. Registered in the catalog while it
//! reads, as a restore is, so garbage collection does not sweep a pack
//! under it.

use std::process::ExitCode;

use anyhow::{bail, Result};
use lifeboat::verify::sample::{run_sample, SampleOptions};
use lifeboat::verify::{run_verify, VerifyMode, VerifyOptions};

use super::restore::registered;
use crate::env::Env;
use crate::exit;

/// One backup, `latest` resolved through `source`.
pub async fn backup(env: &Env, id: &str, deep: bool, source: Option<&str>, concurrency: usize) -> Result<ExitCode> {
    if concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let id = env.resolve_backup(id, source).await?;
    let repo = env.open_repo().await?;
    let mode = if deep { VerifyMode::Deep } else { VerifyMode::Quick };
    let mut options = VerifyOptions::new(&id, mode);
    options.concurrency = concurrency;
    let store = repo.config.store_id.clone();
    let report = registered(env, &store, Some(&id), run_verify(repo, &env.catalog, &options)).await?;
    env.out.verify(&report);
    Ok(exit::unless(report.ok, exit::DAMAGE))
}

/// `percent` of the store's packs, continuing where the last sample stopped.
pub async fn sample(env: &Env, percent: f64, concurrency: usize) -> Result<ExitCode> {
    if concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let repo = env.open_repo().await?;
    let options = SampleOptions { percent, concurrency };
    let store = repo.config.store_id.clone();
    let report = registered(env, &store, None, run_sample(repo, &env.catalog, &options)).await?;
    env.out.verify_sample(&report);
    Ok(exit::unless(report.ok, exit::DAMAGE))
}
