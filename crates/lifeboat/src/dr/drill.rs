//! DR drills: a failover rehearsed in the DR region under drill names
//! (`drill-<db>-<8 hex>`, tagged with the drill job and the plan), validated
//! and measured, then torn down whatever happened. DNS is never touched.

use std::future::Future;

use super::plan::{DrDatabase, DrPlan};
use super::steps::{
    conclude, give_back, preflight, restore_snapshot, step, take_lease, wait_replica, wait_validate, ActionDone,
};
use super::{
    Action, DrError, DrInspection, DrOptions, DrRequest, DrRun, Leftover, Regions, CREATED_AT_TAG, DRILL_TAG, PLAN_TAG,
};
use crate::jobs::{Job, JobKind, JobLease};
use crate::rds::ReplicaRequest;

/// The drill instance of `database` in job `job_id`: `drill-<db>-<8 hex>`.
pub fn drill_instance(database: &str, job_id: &str) -> String {
    let suffix: String = job_id
        .rsplit('-')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    format!("drill-{database}-{suffix}")
}

/// Rehearses a failover of `plan` in the DR region under drill names, then
/// deletes every instance it created, whatever happened, including
/// `interrupted` completing first (the toolkit passes Ctrl-C). DNS is not
/// touched.
pub async fn run_drill(request: &DrRequest<'_>, interrupted: impl Future<Output = ()>) -> Result<DrRun, DrError> {
    let (mut lease, notes) = take_lease(request.jobs, JobKind::Drill, request.plan, request.options).await?;
    let run = drill_leased(request, interrupted, &mut lease, &notes).await;
    give_back(lease).await;
    run
}

async fn drill_leased(
    request: &DrRequest<'_>,
    interrupted: impl Future<Output = ()>,
    lease: &mut JobLease,
    notes: &[String],
) -> Result<DrRun, DrError> {
    let DrRequest {
        regions,
        jobs,
        plan,
        inspection,
        options,
    } = *request;
    let mut job = jobs.start(JobKind::Drill, &plan.name).await?;
    lease.attach(job.id()).await?;
    let job_id = job.id().to_owned();
    let mut inspection = inspection.clone();
    for state in &mut inspection.databases {
        state.instance = drill_instance(&state.name, &job_id);
    }
    if let Err(e) = clean_up_leftovers(&mut job, regions, &inspection).await {
        return conclude(job, plan, &inspection, Some(e), false, notes).await;
    }
    let mut created = Vec::new();
    let result = tokio::select! {
        result = drill_steps(&mut job, regions, plan, &inspection, options, &mut created) => result,
        () = interrupted => Err(DrError::Interrupted),
        lost = lease.keep() => Err(DrError::Job(lost)),
    };
    // The teardown runs whatever happened above.
    let teardown_error = tear_down(&mut job, regions, &created).await;
    let error = match (result, teardown_error) {
        (Err(e), _) => Some(e),
        (Ok(()), Some(e)) => Some(e),
        (Ok(()), None) => None,
    };
    conclude(job, plan, &inspection, error, false, notes).await
}

/// `cleanup`: deletes the instances earlier drills left behind whose jobs have ended.
async fn clean_up_leftovers(job: &mut Job, regions: &Regions, inspection: &DrInspection) -> Result<(), DrError> {
    let deletable: Vec<&Leftover> = inspection.leftovers.iter().filter(|l| l.deletable).collect();
    if deletable.is_empty() {
        return Ok(());
    }
    step(job, "cleanup", || async {
        for leftover in &deletable {
            regions.dr.delete_instance(&leftover.instance).await?;
        }
        Ok(deletable.iter().map(|l| l.instance.clone()).collect::<Vec<_>>())
    })
    .await?;
    Ok(())
}

/// `DB/teardown` of every `(database, instance)` the drill created; the first error.
async fn tear_down(job: &mut Job, regions: &Regions, created: &[(String, String)]) -> Option<DrError> {
    let mut teardown_error = None;
    for (database, instance) in created {
        let outcome = step(job, &format!("{database}/teardown"), || async {
            regions.dr.delete_instance(instance).await?;
            Ok(format!("drill instance {instance} deleted (no final snapshot)"))
        })
        .await;
        if let Err(e) = outcome {
            teardown_error.get_or_insert(e);
        }
    }
    teardown_error
}

async fn drill_steps(
    job: &mut Job,
    regions: &Regions,
    plan: &DrPlan,
    inspection: &DrInspection,
    options: DrOptions,
    created: &mut Vec<(String, String)>,
) -> Result<(), DrError> {
    preflight(job, inspection).await?;
    let tag_value = job.id().to_owned();
    for state in &inspection.databases {
        let Some(db) = plan.databases.iter().find(|d| d.name == state.name) else {
            continue;
        };
        let instance = state.instance.clone();
        let created_at = crate::times::now_text();
        let tags = [
            (DRILL_TAG, tag_value.as_str()),
            (PLAN_TAG, plan.name.as_str()),
            (CREATED_AT_TAG, created_at.as_str()),
        ];
        created.push((db.name.clone(), instance.clone()));
        let goal = match &state.action {
            Action::DrillRestore { snapshot } => {
                step(job, &format!("{}/restore", db.name), || async {
                    restore_snapshot(&regions.dr, db, &instance, snapshot, &tags).await?;
                    Ok(ActionDone::now(&instance, Some(snapshot.clone()), None))
                })
                .await?;
                options.goal(false)
            }
            Action::DrillReplica => {
                replicate_and_promote(job, regions, plan, db, &instance, &tags, options).await?;
                options.goal(true)
            }
            other => {
                return Err(DrError::State {
                    database: db.name.clone(),
                    message: format!("a drill cannot {other:?}"),
                })
            }
        };
        wait_validate(job, &regions.dr, &instance, db, goal, options).await?;
    }
    Ok(())
}

/// `DB/replicate`, `DB/wait-replica`, `DB/promote`: a temporary replica of
/// the primary in the DR region, promoted (the real replica is never touched).
async fn replicate_and_promote(
    job: &mut Job,
    regions: &Regions,
    plan: &DrPlan,
    db: &DrDatabase,
    instance: &str,
    tags: &[(&str, &str)],
    options: DrOptions,
) -> Result<(), DrError> {
    step(job, &format!("{}/replicate", db.name), || async {
        let primary = regions
            .primary
            .instance(&db.primary_instance)
            .await?
            .ok_or_else(|| DrError::State {
                database: db.name.clone(),
                message: format!(
                    "primary {} disappeared from {}",
                    db.primary_instance, plan.primary_region
                ),
            })?;
        regions
            .dr
            .create_replica(&ReplicaRequest {
                instance,
                source_arn: &primary.arn,
                instance_class: db.instance_class.as_deref(),
                kms_key: None,
                tags,
            })
            .await?;
        let note = "temporary replica of the primary, promoted for the drill".to_owned();
        Ok(ActionDone::now(instance, None, Some(note)))
    })
    .await?;
    wait_replica(job, &regions.dr, instance, db, options).await?;
    step(job, &format!("{}/promote", db.name), || async {
        regions.dr.promote(instance).await?;
        Ok(crate::times::now_text())
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drill_instances_are_valid_rds_identifiers_unique_per_job() {
        let name = drill_instance("orders", "job-20261123T100000Z-0a1b2c3d");
        assert_eq!(name, "drill-orders-0a1b2c3d");
        assert!(crate::dr::plan::check_instance_id(&name).is_ok());
        let long = drill_instance(&"a".repeat(40), "job-20261123T100000Z-0a1b2c3d");
        assert!(crate::dr::plan::check_instance_id(&long).is_ok(), "{long}");
    }
}
