//! File backups expired by a policy (`lifeboat::expire`), then the garbage
//! they leave collected (`lifeboat::gc`: marked on one run, swept on a
//! later one); a backup that could not be expired fails the invocation as
//! `Lifeboat.RetentionPartial`.

use lifeboat::expire::{apply_expiry, plan_expiry};
use lifeboat::gc::{collect_garbage, GcOptions};
use lifeboat::repo::Repository;
use lifeboat::retention::RetentionPolicy;
use lifeboat_lambda::{Context, Failure};

use crate::summary::RetentionSummary;

/// What to expire and how.
#[derive(Debug)]
pub struct FileRetention {
    pub source: Option<String>,
    pub policy: RetentionPolicy,
    pub dry_run: bool,
    pub collect_garbage: bool,
    pub grace_minutes: Option<u32>,
}

pub async fn expire_files(
    context: &Context,
    repo: &Repository,
    job: FileRetention,
) -> Result<RetentionSummary, Failure> {
    let catalog = &context.catalog;
    let dry_run = job.dry_run;
    let plan = plan_expiry(catalog, job.source.as_deref(), &job.policy, jiff::Timestamp::now())
        .await
        .map_err(|e| Failure::Retention(e.to_string()))?;
    tracing::info!(
        keep = plan.keep.len(),
        delete = plan.delete.len(),
        dry_run,
        "retention planned"
    );
    let expiry = if dry_run {
        None
    } else {
        let audit = catalog.audit_trail();
        Some(
            apply_expiry(repo, catalog, Some(&audit), &plan)
                .await
                .map_err(|e| Failure::Retention(e.to_string()))?,
        )
    };
    let garbage = if job.collect_garbage {
        let mut options = GcOptions::new(lifeboat::times::now());
        options.dry_run = dry_run;
        if let Some(minutes) = job.grace_minutes {
            options.grace = lifeboat::times::SignedDuration::from_mins(minutes.into());
        }
        Some(
            collect_garbage(repo, catalog, &options)
                .await
                .map_err(|e| Failure::GarbageCollection(e.to_string()))?,
        )
    } else {
        None
    };
    if let Some(expiry) = &expiry {
        tracing::info!(
            deleted = expiry.deleted.len(),
            failed = expiry.failed.len(),
            "retention applied"
        );
        if !expiry.failed.is_empty() {
            let lines: Vec<String> = expiry
                .failed
                .iter()
                .map(|f| format!("{}: {}", f.id, f.reason))
                .collect();
            return Err(Failure::RetentionPartial(lines.join("\n")));
        }
    }
    Ok(RetentionSummary {
        dry_run,
        plan: Some(plan),
        expiry,
        garbage,
        ..RetentionSummary::default()
    })
}
