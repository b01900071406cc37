//! What a failover, failback or drill of a DR plan would do now, and the RPO
//! it would cost: each reads the regions, Route 53 and the plan's earlier
//! jobs, and changes nothing (`--dry-run` prints its answer).

use std::collections::BTreeSet;

use jiff::Timestamp;

use super::dns::{self, Dns};
use super::plan::{DrDatabase, DrPlan, DrRecord, Strategy};
use super::report::Rpo;
use super::{Action, DatabaseState, DrError, DrInspection, Instance, Leftover, RecordState, Regions, Snapshot};
use super::{DRILL_TAG, JOB_TAG, PLAN_TAG};
use crate::jobs::{JobError, JobKind, JobStatus, Jobs, StepStatus};
use crate::rds::Rds;

const REPLICA_NOTE: &str = "up to the replication lag at promotion (CloudWatch ReplicaLag; RDS does not report it)";

/// How many recent jobs [`promoted_by_jobs`] reads.
const JOBS_SEARCHED: usize = 200;

/// The RPO of promoting a replica: its lag, which RDS does not report.
fn replica_rpo(note: &str) -> Rpo {
    Rpo::Replica {
        lag_seconds: None,
        note: note.into(),
    }
}

/// The newest available snapshot of `primary` in `rds`'s region.
async fn newest_snapshot(rds: &Rds, primary: &str) -> Result<Option<Snapshot>, DrError> {
    Ok(rds.newest_snapshot(primary).await?.map(|(id, taken)| Snapshot {
        id,
        taken_at: taken.to_string(),
    }))
}

/// The action restoring the newest snapshot of `db`'s primary in the DR
/// region (`restore` makes it) and its RPO at `now`; blocked with the reason
/// `missing` gives when there is none.
async fn restore_newest(
    dr: &Rds,
    db: &DrDatabase,
    now: Timestamp,
    restore: impl FnOnce(Snapshot) -> Action,
    missing: impl FnOnce() -> String,
) -> Result<(Action, Option<Rpo>), DrError> {
    Ok(match newest_snapshot(dr, &db.primary_instance).await? {
        Some(snapshot) => {
            let rpo = snapshot.rpo_at(now);
            (restore(snapshot), Some(rpo))
        }
        None => (Action::Blocked { reason: missing() }, None),
    })
}

/// Drill instances of `plan` still in `rds`'s region: `(instance, drill job id)`.
async fn drill_instances(rds: &Rds, plan: &str) -> Result<Vec<(String, String)>, DrError> {
    let mut found = Vec::new();
    for instance in rds.instances().await? {
        let tag = |key: &str| {
            instance
                .tag_list()
                .iter()
                .find(|t| t.key() == Some(key))
                .and_then(|t| t.value())
        };
        let (Some(id), Some(job)) = (instance.db_instance_identifier(), tag(DRILL_TAG)) else {
            continue;
        };
        if id.starts_with("drill-") && tag(PLAN_TAG) == Some(plan) && instance.db_instance_status() != Some("deleting")
        {
            found.push((id.to_owned(), job.to_owned()));
        }
    }
    Ok(found)
}

/// Reads each record's value; `target_of` gives the value a run would set.
async fn record_states(
    dns: &Dns,
    db: &DrDatabase,
    target_of: impl Fn(&DrRecord) -> Option<String>,
) -> Vec<RecordState> {
    let mut states = Vec::new();
    for record in &db.records {
        let current = match dns.zone_id(&record.zone).await {
            Ok(zone_id) => dns.current(&zone_id, record).await,
            Err(e) => Err(e),
        };
        let (current, problem) = match current {
            Ok(value) => (value, None),
            Err(e) => (None, Some(e.to_string())),
        };
        states.push(RecordState {
            name: record.name.clone(),
            record_type: record.record_type.clone(),
            current,
            target: target_of(record),
            problem,
        });
    }
    states
}

fn all_point_at_targets(records: &[RecordState]) -> bool {
    records.iter().all(|r| match (&r.current, &r.target) {
        (Some(current), Some(target)) => dns::same_name(current, target),
        _ => false,
    })
}

/// Whether a switch of `db` to `instance` is complete: it is an available
/// writer (or promoted by a finished job, see [`promoted_by_jobs`]) and
/// every record of `db` points at its target.
fn switched(instance: &Instance, db: &DrDatabase, records: &[RecordState], promoted: &BTreeSet<String>) -> bool {
    instance.status == "available"
        && !db.records.is_empty()
        && all_point_at_targets(records)
        && (instance.replica_of.is_none() || promoted.contains(&db.name))
}

/// The databases of `plan` a finished job of `kind` promoted. An instance
/// RDS still lists as a replica counts as promoted only then: AWS drops the
/// link when a promotion ends, but the emulator keeps it forever, and a
/// replica DNS already points at must not pass for a writer.
async fn promoted_by_jobs(jobs: &Jobs, kind: JobKind, plan: &DrPlan) -> Result<BTreeSet<String>, DrError> {
    let mut promoted = BTreeSet::new();
    for job in jobs.list(Some(JOBS_SEARCHED)).await? {
        if job.kind != kind || job.subject != plan.name || job.status != JobStatus::Succeeded {
            continue;
        }
        for db in &plan.databases {
            if job
                .step(&format!("{}/promote", db.name))
                .is_some_and(|s| s.status == StepStatus::Done)
            {
                promoted.insert(db.name.clone());
            }
        }
    }
    Ok(promoted)
}

/// One database's line of an inspection.
struct Found {
    instance: String,
    region: String,
    existing: Option<Instance>,
    action: Action,
    rpo: Option<Rpo>,
    records: Vec<RecordState>,
}

impl Found {
    fn state(self, db: &DrDatabase) -> DatabaseState {
        DatabaseState {
            name: db.name.clone(),
            strategy: db.strategy,
            instance: self.instance,
            region: self.region,
            existing: self.existing,
            action: self.action,
            rpo: self.rpo,
            records: self.records,
            checks: db.checks.as_ref().map_or(0, |c| c.checks.len()),
        }
    }
}

fn inspection(kind: JobKind, plan: &DrPlan, now: Timestamp, databases: Vec<DatabaseState>) -> DrInspection {
    DrInspection {
        kind,
        plan: plan.name.clone(),
        primary_region: plan.primary_region.clone(),
        dr_region: plan.dr_region.clone(),
        inspected_at: now.to_string(),
        databases,
        leftovers: Vec::new(),
    }
}

/// What a failover of `plan` would do now, and the RPO it would cost.
pub async fn inspect_failover(regions: &Regions, jobs: &Jobs, plan: &DrPlan) -> Result<DrInspection, DrError> {
    let now = crate::times::now();
    let promoted = promoted_by_jobs(jobs, JobKind::Failover, plan).await?;
    let open = jobs.open_job_id(JobKind::Failover, &plan.name).await?;
    let mut databases = Vec::new();
    for db in &plan.databases {
        let existing = regions.dr.instance(&db.dr_instance).await?;
        let endpoint = existing.as_ref().and_then(|i| i.endpoint.clone());
        let records = record_states(&regions.dns, db, |r| r.target.clone().or_else(|| endpoint.clone())).await;
        let found = Existing {
            instance: existing.as_ref(),
            records: &records,
            promoted: &promoted,
            open: open.as_deref(),
        };
        let (action, rpo) = failover_action(regions, plan, db, &found, now).await?;
        let found = Found {
            instance: db.dr_instance.clone(),
            region: plan.dr_region.clone(),
            existing,
            action,
            rpo,
            records,
        };
        databases.push(found.state(db));
    }
    Ok(inspection(JobKind::Failover, plan, now, databases))
}

/// What a run found under the name of the instance it would create or
/// promote, and what decides whether it may adopt it.
struct Existing<'a> {
    instance: Option<&'a Instance>,
    records: &'a [RecordState],
    promoted: &'a BTreeSet<String>,
    /// The plan's unfinished job of the run's kind, which the run resumes.
    open: Option<&'a str>,
}

/// Who made an instance found under a run's target name, by its tags.
#[derive(Debug, PartialEq, Eq)]
enum Maker {
    /// The plan's unfinished job, which this run resumes: adopted.
    OpenJob,
    /// Another (finished or abandoned) job: its data may be old.
    OtherJob(String),
    /// No Lifeboat job: made by hand, or a replica nobody promoted yet.
    Nobody,
}

/// Invariant: a failover or failback adopts (waits for, validates, points
/// DNS at) an instance it did not create only when the instance's
/// `lifeboat:job` tag names the plan's unfinished job that this run resumes.
fn maker(instance: &Instance, open: Option<&str>) -> Maker {
    match instance.tags.get(JOB_TAG) {
        Some(job) if Some(job.as_str()) == open => Maker::OpenJob,
        Some(job) => Maker::OtherJob(job.clone()),
        None => Maker::Nobody,
    }
}

/// Why `instance` in `region` is refused as `maker` made it, and what to do (`then`).
fn refusal(instance: &Instance, region: &str, maker: &Maker, then: &str) -> Action {
    let id = &instance.id;
    let whose = match maker {
        Maker::OtherJob(job) => format!("was made by job {job} (tag {JOB_TAG}), not by this plan's unfinished job"),
        _ => format!("exists, but no job of this plan made it (it has no {JOB_TAG} tag)"),
    };
    Action::Blocked {
        reason: format!(
            "DB instance {id} in {region} {whose}: it may hold old data (an earlier failover, before a failback), \
             so it is not adopted and DNS is not switched to it. Delete it (aws rds delete-db-instance \
             --db-instance-identifier {id} --final-db-snapshot-identifier {id}-final) or rename it (aws rds \
             modify-db-instance --db-instance-identifier {id} --new-db-instance-identifier {id}-old \
             --apply-immediately), {then}"
        ),
    }
}

/// What a failover does to `db`, whose DR instance is `found`.
async fn failover_action(
    regions: &Regions,
    plan: &DrPlan,
    db: &DrDatabase,
    found: &Existing<'_>,
    now: Timestamp,
) -> Result<(Action, Option<Rpo>), DrError> {
    let region = &plan.dr_region;
    let replica_then = "then create a fresh read replica of the primary under that name and run again";
    let snapshot_then = "then run again: the failover restores the newest snapshot afresh";
    Ok(match (db.strategy, found.instance) {
        (_, Some(instance)) if switched(instance, db, found.records, found.promoted) => (Action::Done, None),
        (strategy, Some(instance)) => {
            let writer = instance.replica_of.is_none();
            match (strategy, maker(instance, found.open)) {
                (Strategy::Replica, Maker::OpenJob) if !writer => (Action::Promote, Some(replica_rpo(REPLICA_NOTE))),
                (_, Maker::OpenJob) => (Action::Continue, None),
                (Strategy::Replica, Maker::Nobody) if !writer => (Action::Promote, Some(replica_rpo(REPLICA_NOTE))),
                (Strategy::Replica, maker) => (refusal(instance, region, &maker, replica_then), None),
                (Strategy::Snapshot, maker) => (refusal(instance, region, &maker, snapshot_then), None),
            }
        }
        (Strategy::Replica, None) => (
            Action::Blocked {
                reason: format!(
                    "read replica {} does not exist in {}: create it (or change the plan's strategy to \"snapshot\")",
                    db.dr_instance, plan.dr_region
                ),
            },
            None,
        ),
        (Strategy::Snapshot, None) => {
            restore_newest(&regions.dr, db, now, |snapshot| Action::Restore { snapshot }, || {
                format!(
                    "no available snapshot of {} in {}: copy one there (the snapshot function's copy_regions), then run again",
                    db.primary_instance, plan.dr_region
                )
            })
            .await?
        }
    })
}

/// What a failback of `plan` would do now.
pub async fn inspect_failback(regions: &Regions, jobs: &Jobs, plan: &DrPlan) -> Result<DrInspection, DrError> {
    let now = crate::times::now();
    let promoted = promoted_by_jobs(jobs, JobKind::Failback, plan).await?;
    let open = jobs.open_job_id(JobKind::Failback, &plan.name).await?;
    let mut databases = Vec::new();
    for db in &plan.databases {
        // Reading the failback instance also proves the primary region answers.
        let existing = regions.primary.instance(&db.failback_instance).await?;
        let writer = regions.dr.instance(&db.dr_instance).await?;
        let endpoint = existing.as_ref().and_then(|i| i.endpoint.clone());
        let records = record_states(&regions.dns, db, |r| {
            r.failback_target.clone().or_else(|| endpoint.clone())
        })
        .await;
        let found = Existing {
            instance: existing.as_ref(),
            records: &records,
            promoted: &promoted,
            open: open.as_deref(),
        };
        let action = failback_action(plan, db, &found, writer.as_ref());
        let found = Found {
            instance: db.failback_instance.clone(),
            region: plan.primary_region.clone(),
            existing,
            action,
            rpo: Some(replica_rpo(
                "writes to the DR database after the replica's last applied change are lost: stop writes before the switch",
            )),
            records,
        };
        databases.push(found.state(db));
    }
    Ok(inspection(JobKind::Failback, plan, now, databases))
}

/// What a failback does to `db`, whose failback instance is `found` and
/// DR instance `writer`.
fn failback_action(plan: &DrPlan, db: &DrDatabase, found: &Existing<'_>, writer: Option<&Instance>) -> Action {
    let records = found.records;
    let dr_endpoint = writer.and_then(|w| w.endpoint.clone());
    let dr_serves = writer.is_some_and(|w| {
        w.replica_of.is_none()
            || (!records.is_empty()
                && records.iter().all(|r| {
                    r.current
                        .as_deref()
                        .is_some_and(|c| dr_endpoint.as_deref().is_some_and(|e| dns::same_name(c, e)))
                }))
    });
    match (found.instance, writer) {
        (Some(instance), _) if switched(instance, db, records, found.promoted) => Action::Done,
        (Some(instance), _) => match maker(instance, found.open) {
            Maker::OpenJob => Action::Continue,
            other => refusal(
                instance,
                &plan.primary_region,
                &other,
                "then run again: the failback replicates the DR writer afresh",
            ),
        },
        (None, None) => Action::Blocked {
            reason: format!(
                "the DR instance {} does not exist in {}: there is nothing to fail back from",
                db.dr_instance, plan.dr_region
            ),
        },
        (None, Some(_)) if !dr_serves => Action::Blocked {
            reason: format!(
                "the DR instance {} in {} is still a read replica and no record points at it: fail over first",
                db.dr_instance, plan.dr_region
            ),
        },
        (None, Some(_)) => Action::Replicate,
    }
}

/// What a drill of `plan` would do now. Drill instance names are given when it runs.
pub async fn inspect_drill(regions: &Regions, jobs: &Jobs, plan: &DrPlan) -> Result<DrInspection, DrError> {
    let now = crate::times::now();
    let leftovers = leftovers(regions, jobs, plan).await?;
    let mut databases = Vec::new();
    for db in &plan.databases {
        let (action, rpo) = match db.strategy {
            Strategy::Snapshot => {
                restore_newest(
                    &regions.dr,
                    db,
                    now,
                    |snapshot| Action::DrillRestore { snapshot },
                    || {
                        format!(
                            "no available snapshot of {} in {} to rehearse with",
                            db.primary_instance, plan.dr_region
                        )
                    },
                )
                .await?
            }
            Strategy::Replica => match regions.primary.instance(&db.primary_instance).await? {
                Some(_) => (Action::DrillReplica, Some(replica_rpo(REPLICA_NOTE))),
                None => (
                    Action::Blocked {
                        reason: format!(
                            "primary instance {} does not exist in {}: a replica drill replicates it",
                            db.primary_instance, plan.primary_region
                        ),
                    },
                    None,
                ),
            },
        };
        let found = Found {
            instance: "drill-".to_owned() + &db.name,
            region: plan.dr_region.clone(),
            existing: None,
            action,
            rpo,
            records: Vec::new(),
        };
        databases.push(found.state(db));
    }
    let mut inspection = inspection(JobKind::Drill, plan, now, databases);
    inspection.leftovers = leftovers;
    Ok(inspection)
}

/// Instances earlier drills of `plan` left behind, each deletable once its job has ended.
async fn leftovers(regions: &Regions, jobs: &Jobs, plan: &DrPlan) -> Result<Vec<Leftover>, DrError> {
    let mut leftovers = Vec::new();
    for (instance, job) in drill_instances(&regions.dr, &plan.name).await? {
        let deletable = match jobs.get(&job).await {
            Ok(record) => record.status != JobStatus::Running,
            Err(JobError::Unknown { .. }) => true,
            Err(e) => return Err(e.into()),
        };
        leftovers.push(Leftover {
            instance,
            job,
            deletable,
        });
    }
    Ok(leftovers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_count_as_switched_only_when_every_one_points_at_its_target() {
        let record = |current: Option<&str>, target: Option<&str>| RecordState {
            name: "db.example.internal".into(),
            record_type: "CNAME".into(),
            current: current.map(str::to_owned),
            target: target.map(str::to_owned),
            problem: None,
        };
        assert!(all_point_at_targets(&[record(Some("A.example."), Some("a.example"))]));
        assert!(!all_point_at_targets(&[
            record(Some("a.example"), Some("a.example")),
            record(Some("b.example"), Some("a.example"))
        ]));
        assert!(!all_point_at_targets(&[record(None, Some("a.example"))]));
        assert!(!all_point_at_targets(&[record(Some("a.example"), None)]));
    }

    #[test]
    fn only_an_instance_tagged_by_the_job_being_resumed_is_adopted() {
        let instance = |job: Option<&str>| Instance {
            id: "billing-dr".into(),
            arn: "arn:aws:rds:us-west-2:1:db:billing-dr".into(),
            status: "available".into(),
            replica_of: None,
            endpoint: None,
            port: None,
            engine: None,
            encrypted: false,
            tags: job.map(|j| (JOB_TAG.to_owned(), j.to_owned())).into_iter().collect(),
        };
        assert_eq!(maker(&instance(Some("job-2")), Some("job-2")), Maker::OpenJob);
        assert_eq!(
            maker(&instance(Some("job-1")), Some("job-2")),
            Maker::OtherJob("job-1".into()),
            "a finished job's instance (before a failback) is not this run's"
        );
        assert_eq!(maker(&instance(Some("job-1")), None), Maker::OtherJob("job-1".into()));
        assert_eq!(maker(&instance(None), Some("job-2")), Maker::Nobody);
        let Action::Blocked { reason } = refusal(&instance(None), "us-west-2", &Maker::Nobody, "then run again") else {
            panic!("refused");
        };
        assert!(
            reason.starts_with("DB instance billing-dr in us-west-2 exists, but no job of this plan made it")
                && reason.ends_with("then run again"),
            "{reason}"
        );
    }
}
