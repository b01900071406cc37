//! Failover and failback of a DR plan, as recovery jobs: the failover
//! promotes each database's DR replica or restores its newest DR snapshot;
//! the failback replicates the DR writer back to the primary region and
//! promotes that. Both then wait, validate and switch DNS
//! ([`super::steps`]).

use std::future::Future;

use super::plan::{DrDatabase, DrPlan};
use super::steps::{
    preflight, restore_snapshot, run_switch, step, wait_replica, wait_validate_switch, ActionDone, Target,
};
use super::{job_tags, Action, DatabaseState, DrError, DrInspection, DrRequest, DrRun, Regions, Snapshot, JOB_TAG};
use crate::jobs::{Job, JobKind};
use crate::rds::{Instance, ReplicaRequest};

/// Fails over every database of `plan` as [`super::inspect_failover`] found
/// it (resuming the plan's interrupted failover, if there is one). When
/// `interrupted` completes first (the toolkit passes Ctrl-C), the job is
/// recorded failed where it stood, to be resumed by the next run.
pub async fn run_failover(request: &DrRequest<'_>, interrupted: impl Future<Output = ()>) -> Result<DrRun, DrError> {
    let steps = async |job: &mut Job| failover_steps(job, request).await;
    run_switch(JobKind::Failover, request, interrupted, steps).await
}

/// Fails back every database of `plan` to the primary region.
pub async fn run_failback(request: &DrRequest<'_>, interrupted: impl Future<Output = ()>) -> Result<DrRun, DrError> {
    let steps = async |job: &mut Job| failback_steps(job, request).await;
    run_switch(JobKind::Failback, request, interrupted, steps).await
}

async fn failover_steps(job: &mut Job, request: &DrRequest<'_>) -> Result<DrInspection, DrError> {
    let (regions, plan, options) = (request.regions, request.plan, request.options);
    let inspection = preflight(job, request.inspection).await?;
    let active: Vec<(&DrDatabase, &DatabaseState)> = plan
        .databases
        .iter()
        .filter_map(|db| inspection.databases.iter().find(|s| s.name == db.name).map(|s| (db, s)))
        .filter(|(_, s)| s.action != Action::Done)
        .collect();
    // Start every promotion and restore first, so the regions work in parallel.
    for (db, state) in &active {
        match &state.action {
            Action::Promote => promote_replica(job, regions, plan, db).await?,
            Action::Restore { snapshot } => restore_newest(job, regions, plan, db, snapshot).await?,
            _ => {}
        }
    }
    for (db, state) in &active {
        let goal = options.goal(state.action == Action::Promote);
        let target = Target {
            rds: &regions.dr,
            instance: &db.dr_instance,
            failback: false,
        };
        wait_validate_switch(job, regions, db, target, goal, options).await?;
    }
    Ok(inspection)
}

/// `DB/promote`: tags `db`'s DR replica with the job (first, so that a
/// rerun after a crash adopts it), then promotes it (unless it is a writer
/// already).
async fn promote_replica(job: &mut Job, regions: &Regions, plan: &DrPlan, db: &DrDatabase) -> Result<(), DrError> {
    let tags = job_tags(&plan.name, job.id());
    step(job, &format!("{}/promote", db.name), || async {
        let note = match regions.dr.instance(&db.dr_instance).await? {
            Some(i) if i.replica_of.is_none() => Some("already promoted".to_owned()),
            Some(i) => {
                regions.dr.add_tags(&i.arn, &borrowed(&tags)).await?;
                regions.dr.promote(&db.dr_instance).await?;
                None
            }
            None => {
                return Err(DrError::State {
                    database: db.name.clone(),
                    message: format!("read replica {} disappeared from {}", db.dr_instance, plan.dr_region),
                })
            }
        };
        Ok(ActionDone::now(&db.dr_instance, None, note))
    })
    .await?;
    Ok(())
}

/// `DB/restore`: restores `snapshot` as `db`'s DR instance (unless an
/// interrupted run already started it).
async fn restore_newest(
    job: &mut Job,
    regions: &Regions,
    plan: &DrPlan,
    db: &DrDatabase,
    snapshot: &Snapshot,
) -> Result<(), DrError> {
    let job_id = job.id().to_owned();
    let tags = job_tags(&plan.name, &job_id);
    step(job, &format!("{}/restore", db.name), || async {
        let note = match regions.dr.instance(&db.dr_instance).await? {
            Some(existing) => Some(adopt(&existing, &job_id, &plan.dr_region, db)?),
            None => {
                let mut tags = borrowed(&tags);
                tags.push(("lifeboat:failover", plan.name.as_str()));
                restore_snapshot(&regions.dr, db, &db.dr_instance, snapshot, &tags).await?;
                None
            }
        };
        Ok(ActionDone::now(&db.dr_instance, Some(snapshot.clone()), note))
    })
    .await?;
    Ok(())
}

async fn failback_steps(job: &mut Job, request: &DrRequest<'_>) -> Result<DrInspection, DrError> {
    let (regions, plan, options) = (request.regions, request.plan, request.options);
    let inspection = preflight(job, request.inspection).await?;
    let active: Vec<(&DrDatabase, &DatabaseState)> = plan
        .databases
        .iter()
        .filter_map(|db| inspection.databases.iter().find(|s| s.name == db.name).map(|s| (db, s)))
        .filter(|(_, s)| s.action != Action::Done)
        .collect();
    for (db, state) in &active {
        // `Continue`: the instance this job (or the one it restarted) made.
        if state.action == Action::Replicate {
            replicate_back(job, regions, plan, db).await?;
        }
    }
    for (db, _) in &active {
        wait_replica(job, &regions.primary, &db.failback_instance, db, options).await?;
        step(job, &format!("{}/promote", db.name), || async {
            match regions.primary.instance(&db.failback_instance).await? {
                Some(i) if i.replica_of.is_some() => regions.primary.promote(&db.failback_instance).await?,
                _ => {}
            }
            Ok(crate::times::now_text())
        })
        .await?;
        let target = Target {
            rds: &regions.primary,
            instance: &db.failback_instance,
            failback: true,
        };
        wait_validate_switch(job, regions, db, target, options.goal(true), options).await?;
    }
    Ok(inspection)
}

/// `DB/replicate`: creates the failback instance, a read replica of the DR
/// writer in the primary region (unless it exists already).
async fn replicate_back(job: &mut Job, regions: &Regions, plan: &DrPlan, db: &DrDatabase) -> Result<(), DrError> {
    let job_id = job.id().to_owned();
    let tags = job_tags(&plan.name, &job_id);
    step(job, &format!("{}/replicate", db.name), || async {
        if let Some(existing) = regions.primary.instance(&db.failback_instance).await? {
            let note = adopt(&existing, &job_id, &plan.primary_region, db)?;
            return Ok(ActionDone::now(&db.failback_instance, None, Some(note)));
        }
        let writer = regions
            .dr
            .instance(&db.dr_instance)
            .await?
            .ok_or_else(|| DrError::State {
                database: db.name.clone(),
                message: format!("the DR instance {} disappeared from {}", db.dr_instance, plan.dr_region),
            })?;
        regions
            .primary
            .create_replica(&ReplicaRequest {
                instance: &db.failback_instance,
                source_arn: &writer.arn,
                instance_class: db.instance_class.as_deref(),
                kms_key: db.primary_kms_key.as_deref(),
                tags: &[borrowed(&tags), vec![("lifeboat:failback", plan.name.as_str())]].concat(),
            })
            .await?;
        Ok(ActionDone::now(&db.failback_instance, None, None))
    })
    .await?;
    Ok(())
}

/// `(key, value)` pairs as the RDS calls take them.
fn borrowed<'a>(tags: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    tags.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The note on adopting `existing`, found under the name job `job_id` was
/// about to create, if the job's own tag is on it (it created it before a
/// crash); an error naming it otherwise.
fn adopt(existing: &Instance, job_id: &str, region: &str, db: &DrDatabase) -> Result<String, DrError> {
    match existing.tags.get(JOB_TAG) {
        Some(tagged) if tagged == job_id => Ok(format!(
            "{} existed already, made by this job before an interruption: used as is",
            existing.id
        )),
        tagged => Err(DrError::State {
            database: db.name.clone(),
            message: format!(
                "DB instance {} appeared in {region} meanwhile, made by {}: it is not adopted; delete or rename it, then run again",
                existing.id,
                tagged.map_or_else(|| "no job of this plan".to_owned(), |j| format!("job {j}")),
            ),
        }),
    }
}
