//! Verifying file backups: each chosen backup read back (quick or deep),
//! or a share of the store's packs (sample); damage fails the invocation
//! as `Lifeboat.DamageFound`. Each run is registered in the catalog while it
//! reads, so garbage collection waits for it.

use std::sync::Arc;

use lifeboat::audit::actor_from_env;
use lifeboat::catalog::leases;
use lifeboat::catalog::VerificationType;
use lifeboat::repo::Repository;
use lifeboat::verify::sample::{run_sample, SampleOptions};
use lifeboat::verify::selection::{select_backups, SelectionError};
use lifeboat::verify::{run_verify, VerifyOptions, VerifyReport};
use lifeboat_lambda::{Context, Failure, Metrics};

use crate::summary::VerifySummary;

/// Verifies `backup_id`, or the newest completed backup of each of `sources`.
pub async fn verify_backups(
    context: &Context,
    repo: Arc<Repository>,
    mode: VerificationType,
    backup_id: Option<String>,
    sources: Option<Vec<String>>,
    concurrency: Option<usize>,
) -> Result<VerifySummary, Failure> {
    let targets = select_backups(&repo, &context.catalog, backup_id, sources)
        .await
        .map_err(|e| match e {
            SelectionError::Catalog(_) => Failure::Catalog(e.to_string()),
            SelectionError::NothingToVerify { .. } => Failure::NothingToVerify(e.to_string()),
        })?;
    // One registration for the run: the backup if there is one, else the store.
    let only = match targets.as_slice() {
        [id] => Some(id.clone()),
        _ => None,
    };
    let verifications = async {
        let mut reports = Vec::with_capacity(targets.len());
        for id in &targets {
            let mut options = VerifyOptions::new(id, mode);
            options.concurrency = concurrency.unwrap_or(options.concurrency).max(1);
            let report = run_verify(repo.clone(), &context.catalog, &options)
                .await
                .map_err(|e| Failure::VerifyFailed(e.to_string()))?;
            tracing::info!(backup_id = %report.backup_id, mode = mode.as_str(), ok = report.ok, problems = report.problems.len(), "verified");
            reports.push(report);
        }
        Ok::<_, Failure>(reports)
    };
    let reports = registered(context, &repo, only.as_deref(), verifications).await??;
    let damaged: Vec<&VerifyReport> = reports.iter().filter(|r| !r.ok).collect();
    Metrics::new()
        .put("VerificationsPassed", (reports.len() - damaged.len()) as f64, "Count")
        .put("VerificationsFailed", damaged.len() as f64, "Count")
        .emit();
    if !damaged.is_empty() {
        let lines: Vec<String> = damaged
            .iter()
            .flat_map(|r| {
                r.problems
                    .iter()
                    .map(move |p| format!("{}: {} {}: {}", r.backup_id, p.object, p.kind.describe(), p.detail))
            })
            .collect();
        return Err(Failure::DamageFound(lines.join("\n")));
    }
    Ok(VerifySummary {
        verified: reports.len(),
        reports,
        ..VerifySummary::default()
    })
}

/// Runs `reader` (verifications of `repo`'s store; of backup `backup_id`,
/// or of the whole store) registered in the catalog for its duration, as
/// the toolkit's restores and verifications are, so garbage collection
/// does not sweep a pack under it (FORMAT.md, "Garbage collection").
async fn registered<F: std::future::Future>(
    context: &Context,
    repo: &Repository,
    backup_id: Option<&str>,
    reader: F,
) -> Result<F::Output, Failure> {
    let owner = leases::run_owner(&actor_from_env());
    leases::registered(&context.catalog, &repo.config.store_id, backup_id, &owner, reader)
        .await
        .map_err(|e| Failure::Catalog(e.to_string()))
}

/// Reads `percent` (default 10) of the store's packs, where the last sample stopped.
pub async fn sample(
    context: &Context,
    repo: Arc<Repository>,
    percent: Option<f64>,
    concurrency: Option<usize>,
) -> Result<VerifySummary, Failure> {
    let percent = percent.unwrap_or(10.0);
    if !(percent > 0.0 && percent <= 100.0) {
        return Err(Failure::BadEvent(format!(
            "samplePercent {percent}: give a share above 0 and at most 100"
        )));
    }
    let options = SampleOptions {
        percent,
        concurrency: concurrency.unwrap_or(4).max(1),
    };
    let report = registered(
        context,
        &repo,
        None,
        run_sample(repo.clone(), &context.catalog, &options),
    )
    .await?
    .map_err(|e| Failure::VerifyFailed(e.to_string()))?;
    tracing::info!(store = %report.store, packs = report.packs_checked, of = report.packs_in_store, passes = report.passes, ok = report.ok, "sampled");
    Metrics::new()
        .put("VerificationsPassed", f64::from(u8::from(report.ok)), "Count")
        .put("VerificationsFailed", f64::from(u8::from(!report.ok)), "Count")
        .emit();
    if !report.ok {
        let lines: Vec<String> = report
            .problems
            .iter()
            .map(|p| {
                format!(
                    "{} {}: {} (affects {})",
                    p.object,
                    p.kind.describe(),
                    p.detail,
                    p.entries.join(", ")
                )
            })
            .collect();
        return Err(Failure::DamageFound(lines.join("\n")));
    }
    Ok(VerifySummary {
        sample: Some(report),
        ..VerifySummary::default()
    })
}
