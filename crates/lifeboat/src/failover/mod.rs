//! Regional failover, failback and drills of RDS databases, driven by a DR
//! plan (`plan`, README.md "Disaster-recovery plans").
//!
//! Every change is two calls: `inspect_*` reads the world and returns what
//! would be done and the RPO it would cost (`--dry-run` prints only that);
//! `run_*` does it as a recovery job (`crate::jobs`) whose steps are named
//! per database (`orders/promote`, `orders/wait`, `orders/validate`,
//! `orders/dns`), so an interrupted run resumes where it stopped and a
//! finished one, run again, finds nothing to do.
//!
//! - **failover**: per database, promote the cross-region read replica
//!   (strategy `replica`) or restore the newest snapshot copied to the DR
//!   region (strategy `snapshot`); wait until it is available; run its
//!   checks (`crate::validate`); UPSERT its Route 53 records to the new
//!   endpoint (or the plan's explicit target).
//! - **failback**: once the primary region is healthy: create a read replica
//!   of the DR writer in the primary region (`failback_instance`), wait,
//!   promote it, wait, validate, switch the records back.
//! - **drill**: in the DR region, under drill names, restore the newest
//!   snapshot (strategy `snapshot`) or create and promote a temporary
//!   replica of the primary (strategy `replica`; the real replica is never
//!   touched), validate, measure, and delete everything it created, whatever
//!   happened. DNS is left alone.
//!
//! RDS calls and waiting are `crate::rds`'s; Route 53 is [`dns`].

pub mod dns;
pub mod plan;
pub mod report;

use std::collections::BTreeSet;
use std::future::Future;

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use self::dns::{Dns, RecordSwitch};
use self::plan::{DrDatabase, DrPlan, Strategy};
use self::report::{seconds_between, DatabaseReport, DrReport, Outcome, Rpo};
use crate::catalog::now_rfc3339;
use crate::jobs::{Job, JobError, JobKind, JobRecord, Jobs, StepError};
use crate::rds::wait::{wait_for, Goal, Observed, WaitError, WaitPolicy};
use crate::rds::{Instance, Rds, RdsError, ReplicaRequest, RestoreRequest};
use crate::validate::{self, ValidationReport};

#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    #[error(transparent)]
    Plan(#[from] plan::DrPlanError),
    #[error(transparent)]
    Rds(#[from] RdsError),
    #[error("Route 53, {action} on {what}: {message}")]
    Route53 {
        action: String,
        what: String,
        message: String,
    },
    #[error("no Route 53 hosted zone is named {zone}: create it (or fix the plan's zone), then run again")]
    NoZone { zone: String },
    #[error("several Route 53 hosted zones are named {zone} ({}): name the one to change with zone_id", ids.join(", "))]
    AmbiguousZone { zone: String, ids: Vec<String> },
    #[error("cannot act on plan {plan}:{}", problems.iter().map(|p| format!("\n  {p}")).collect::<String>())]
    Blocked { plan: String, problems: Vec<String> },
    #[error(transparent)]
    Wait(#[from] WaitError),
    #[error("database {database}: validation failed: {message}")]
    Validation { database: String, message: String },
    #[error("database {database}: {error}")]
    Validate {
        database: String,
        error: Box<validate::ValidateError>,
    },
    #[error("database {database}: {message}")]
    State { database: String, message: String },
    #[error(transparent)]
    Job(#[from] JobError),
    #[error("{0}")]
    Step(String),
    #[error("interrupted")]
    Interrupted,
    #[error("cannot load the AWS configuration for region {region}: {message}")]
    Config { region: String, message: String },
}

/// The tag naming the drill job that created an instance.
pub const DRILL_TAG: &str = "lifeboat:drill";
/// The tag naming the DR plan an instance was created for.
pub const PLAN_TAG: &str = "lifeboat:plan";

/// A snapshot a restore can start from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub id: String,
    /// When the data was captured: the original snapshot's creation time
    /// (a copy's own creation time is later, and says nothing about data).
    pub taken_at: String,
}

/// The newest available snapshot of `primary` in `rds`'s region.
async fn newest_snapshot(rds: &Rds, primary: &str) -> Result<Option<Snapshot>, FailoverError> {
    Ok(rds.newest_snapshot(primary).await?.map(|(id, taken)| Snapshot {
        id,
        taken_at: taken.to_string(),
    }))
}

/// Drill instances of `plan` still in `rds`'s region: `(instance, drill job id)`.
async fn drill_instances(rds: &Rds, plan: &str) -> Result<Vec<(String, String)>, FailoverError> {
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

/// The clients of a plan's two regions and Route 53.
#[derive(Clone, Debug)]
pub struct Regions {
    pub primary: Rds,
    pub dr: Rds,
    pub dns: Dns,
}

impl Regions {
    /// Clients for the plan's regions, from the standard SDK configuration.
    pub async fn connect(plan: &DrPlan) -> Result<Self, FailoverError> {
        let load = |region: String| async move {
            crate::aws::load_config(Some(&region))
                .await
                .map_err(|e| FailoverError::Config {
                    region,
                    message: e.to_string(),
                })
        };
        let primary = load(plan.primary_region.clone()).await?;
        let dr = load(plan.dr_region.clone()).await?;
        Ok(Self {
            primary: Rds::new(&primary),
            dr: Rds::new(&dr),
            dns: Dns {
                client: aws_sdk_route53::Client::new(&dr),
            },
        })
    }
}

/// How runs wait.
#[derive(Clone, Copy, Debug)]
pub struct DrOptions {
    pub wait: WaitPolicy,
    /// See [`Goal::Promoted`].
    pub settle_polls: u32,
    /// Abandon the plan's unfinished failover (failback) job instead of
    /// resuming it, and start anew from a fresh preflight.
    pub restart: bool,
}

impl Default for DrOptions {
    fn default() -> Self {
        Self {
            wait: WaitPolicy::default(),
            settle_polls: 3,
            restart: false,
        }
    }
}

// ---------------------------------------------------------------------------
// Inspection: what a run would do
// ---------------------------------------------------------------------------

/// What a run would do to one database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Failover: promote the replica.
    Promote,
    /// Failover: restore this snapshot.
    Restore { snapshot: Snapshot },
    /// The writer exists already (promoted or restored by an earlier run):
    /// wait, validate and switch DNS only.
    Continue,
    /// Failback: create the replica in the primary region, then promote it.
    Replicate,
    /// Drill: create and promote a temporary replica of the primary.
    DrillReplica,
    /// Drill: restore this snapshot under a drill name.
    DrillRestore { snapshot: Snapshot },
    /// Already done: the writer serves and every record points at it.
    Done,
    /// Cannot be done; the reason says why and what to do.
    Blocked { reason: String },
}

/// A record's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordState {
    pub name: String,
    pub record_type: String,
    pub current: Option<String>,
    /// The value a run sets; `None` while it is an endpoint not known yet.
    pub target: Option<String>,
    /// Why the record could not be read (e.g. the hosted zone does not exist yet).
    pub problem: Option<String>,
}

/// One database in an inspection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseState {
    pub name: String,
    pub strategy: Strategy,
    /// The instance the run creates or promotes, and its region.
    pub instance: String,
    pub region: String,
    /// Its current state, if it exists.
    pub existing: Option<Instance>,
    pub action: Action,
    pub rpo: Option<Rpo>,
    pub records: Vec<RecordState>,
    pub checks: usize,
}

/// What a failover, failback or drill would do (`--dry-run` prints it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrInspection {
    pub kind: JobKind,
    pub plan: String,
    pub primary_region: String,
    pub dr_region: String,
    pub inspected_at: String,
    pub databases: Vec<DatabaseState>,
    /// Drills only: instances earlier drills of the plan left behind (a
    /// killed run cannot tear down), with the job that made each.
    #[serde(default)]
    pub leftovers: Vec<Leftover>,
}

/// A drill instance an earlier drill left behind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Leftover {
    pub instance: String,
    pub job: String,
    /// Deleted by the next drill: its job has ended. One whose job still
    /// runs (or was killed) is only listed: delete it yourself once sure.
    pub deletable: bool,
}

impl DrInspection {
    pub fn nothing_to_do(&self) -> bool {
        self.databases.iter().all(|d| d.action == Action::Done)
    }

    pub fn problems(&self) -> Vec<String> {
        self.databases
            .iter()
            .filter_map(|d| match &d.action {
                Action::Blocked { reason } => Some(format!("database {}: {reason}", d.name)),
                _ => None,
            })
            .collect()
    }
}

const REPLICA_NOTE: &str = "up to the replication lag at promotion (CloudWatch ReplicaLag; RDS does not report it)";

fn snapshot_rpo(snapshot: &Snapshot, at: Timestamp) -> Rpo {
    let seconds = snapshot
        .taken_at
        .parse::<Timestamp>()
        .map(|taken| at.duration_since(taken).as_secs())
        .unwrap_or_default();
    Rpo::Snapshot {
        snapshot: snapshot.id.clone(),
        taken_at: snapshot.taken_at.clone(),
        seconds,
    }
}

/// Reads each record's value; `target_of` gives the value a run would set.
async fn record_states(
    dns: &Dns,
    db: &DrDatabase,
    target_of: impl Fn(&plan::DrRecord) -> Option<String>,
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

/// The databases of `plan` a finished job of `kind` promoted. An instance
/// RDS still lists as a replica counts as promoted only then: AWS drops the
/// link when a promotion ends, but the emulator keeps it forever, and a
/// replica DNS already points at must not pass for a writer.
async fn promoted_by_jobs(jobs: &Jobs, kind: JobKind, plan: &DrPlan) -> Result<BTreeSet<String>, FailoverError> {
    let mut promoted = BTreeSet::new();
    for job in jobs.list(Some(JOBS_SEARCHED)).await? {
        if job.kind != kind || job.subject != plan.name || job.status != crate::jobs::JobStatus::Succeeded {
            continue;
        }
        for db in &plan.databases {
            if job
                .step(&format!("{}/promote", db.name))
                .is_some_and(|s| s.status == crate::jobs::StepStatus::Done)
            {
                promoted.insert(db.name.clone());
            }
        }
    }
    Ok(promoted)
}

/// How many recent jobs [`promoted_by_jobs`] reads.
const JOBS_SEARCHED: usize = 200;

/// What a failover of `plan` would do now, and the RPO it would cost.
pub async fn inspect_failover(regions: &Regions, jobs: &Jobs, plan: &DrPlan) -> Result<DrInspection, FailoverError> {
    let now = Timestamp::now();
    let promoted = promoted_by_jobs(jobs, JobKind::Failover, plan).await?;
    let mut databases = Vec::new();
    for db in &plan.databases {
        let existing = regions.dr.instance(&db.dr_instance).await?;
        let endpoint = existing.as_ref().and_then(|i| i.endpoint.clone());
        let records = record_states(&regions.dns, db, |r| r.target.clone().or_else(|| endpoint.clone())).await;
        let writer = existing.as_ref().is_some_and(|i| i.replica_of.is_none());
        let pointed = all_point_at_targets(&records);
        let (action, rpo) = match (db.strategy, &existing) {
            (_, Some(instance))
                if instance.status == "available"
                    && !db.records.is_empty()
                    && pointed
                    && (instance.replica_of.is_none() || promoted.contains(&db.name)) =>
            {
                (Action::Done, None)
            }
            (Strategy::Snapshot, Some(_)) => (Action::Continue, None),
            (Strategy::Replica, Some(_)) if writer => (Action::Continue, None),
            (Strategy::Replica, Some(_)) => (
                Action::Promote,
                Some(Rpo::Replica {
                    lag_seconds: None,
                    note: REPLICA_NOTE.into(),
                }),
            ),
            (Strategy::Replica, None) => (
                Action::Blocked {
                    reason: format!(
                        "read replica {} does not exist in {}: create it (or change the plan's strategy to \"snapshot\")",
                        db.dr_instance, plan.dr_region
                    ),
                },
                None,
            ),
            (Strategy::Snapshot, None) => match newest_snapshot(&regions.dr, &db.primary_instance).await? {
                Some(snapshot) => {
                    let rpo = snapshot_rpo(&snapshot, now);
                    (Action::Restore { snapshot }, Some(rpo))
                }
                None => (
                    Action::Blocked {
                        reason: format!(
                            "no available snapshot of {} in {}: copy one there (the snapshot function's copy_regions), then run again",
                            db.primary_instance, plan.dr_region
                        ),
                    },
                    None,
                ),
            },
        };
        databases.push(DatabaseState {
            name: db.name.clone(),
            strategy: db.strategy,
            instance: db.dr_instance.clone(),
            region: plan.dr_region.clone(),
            existing,
            action,
            rpo,
            records,
            checks: db.checks.as_ref().map_or(0, |c| c.checks.len()),
        });
    }
    Ok(DrInspection {
        kind: JobKind::Failover,
        plan: plan.name.clone(),
        primary_region: plan.primary_region.clone(),
        dr_region: plan.dr_region.clone(),
        inspected_at: now.to_string(),
        databases,
        leftovers: Vec::new(),
    })
}

/// What a failback of `plan` would do now.
pub async fn inspect_failback(regions: &Regions, jobs: &Jobs, plan: &DrPlan) -> Result<DrInspection, FailoverError> {
    let now = Timestamp::now();
    let promoted = promoted_by_jobs(jobs, JobKind::Failback, plan).await?;
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
        let dr_endpoint = writer.as_ref().and_then(|w| w.endpoint.clone());
        let dr_serves = writer.as_ref().is_some_and(|w| {
            w.replica_of.is_none()
                || (!records.is_empty()
                    && records.iter().all(|r| {
                        r.current
                            .as_deref()
                            .is_some_and(|c| dr_endpoint.as_deref().is_some_and(|e| dns::same_name(c, e)))
                    }))
        });
        let action = match (&existing, &writer) {
            (Some(instance), _)
                if instance.status == "available"
                    && !db.records.is_empty()
                    && all_point_at_targets(&records)
                    && (instance.replica_of.is_none() || promoted.contains(&db.name)) =>
            {
                Action::Done
            }
            (Some(_), _) => Action::Continue,
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
        };
        databases.push(DatabaseState {
            name: db.name.clone(),
            strategy: db.strategy,
            instance: db.failback_instance.clone(),
            region: plan.primary_region.clone(),
            existing,
            action,
            rpo: Some(Rpo::Replica {
                lag_seconds: None,
                note: "writes to the DR database after the replica's last applied change are lost: stop writes before the switch".into(),
            }),
            records,
            checks: db.checks.as_ref().map_or(0, |c| c.checks.len()),
        });
    }
    Ok(DrInspection {
        kind: JobKind::Failback,
        plan: plan.name.clone(),
        primary_region: plan.primary_region.clone(),
        dr_region: plan.dr_region.clone(),
        inspected_at: now.to_string(),
        databases,
        leftovers: Vec::new(),
    })
}

/// What a drill of `plan` would do now. Drill instance names are given when it runs.
pub async fn inspect_drill(regions: &Regions, jobs: &Jobs, plan: &DrPlan) -> Result<DrInspection, FailoverError> {
    let now = Timestamp::now();
    let mut leftovers = Vec::new();
    for (instance, job) in drill_instances(&regions.dr, &plan.name).await? {
        let deletable = match jobs.get(&job).await {
            Ok(record) => record.status != crate::jobs::JobStatus::Running,
            Err(JobError::Unknown { .. }) => true,
            Err(e) => return Err(e.into()),
        };
        leftovers.push(Leftover {
            instance,
            job,
            deletable,
        });
    }
    let mut databases = Vec::new();
    for db in &plan.databases {
        let (action, rpo) = match db.strategy {
            Strategy::Snapshot => match newest_snapshot(&regions.dr, &db.primary_instance).await? {
                Some(snapshot) => {
                    let rpo = snapshot_rpo(&snapshot, now);
                    (Action::DrillRestore { snapshot }, Some(rpo))
                }
                None => (
                    Action::Blocked {
                        reason: format!(
                            "no available snapshot of {} in {} to rehearse with",
                            db.primary_instance, plan.dr_region
                        ),
                    },
                    None,
                ),
            },
            Strategy::Replica => match regions.primary.instance(&db.primary_instance).await? {
                Some(_) => (
                    Action::DrillReplica,
                    Some(Rpo::Replica {
                        lag_seconds: None,
                        note: REPLICA_NOTE.into(),
                    }),
                ),
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
        databases.push(DatabaseState {
            name: db.name.clone(),
            strategy: db.strategy,
            instance: "drill-".to_owned() + &db.name,
            region: plan.dr_region.clone(),
            existing: None,
            action,
            rpo,
            records: Vec::new(),
            checks: db.checks.as_ref().map_or(0, |c| c.checks.len()),
        });
    }
    Ok(DrInspection {
        kind: JobKind::Drill,
        plan: plan.name.clone(),
        primary_region: plan.primary_region.clone(),
        dr_region: plan.dr_region.clone(),
        inspected_at: now.to_string(),
        databases,
        leftovers,
    })
}

// ---------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------

/// The outcome of a run: its report (also stored in the job record), and
/// the error that stopped it, if any.
#[derive(Debug)]
pub struct DrRun {
    pub report: DrReport,
    pub resumed: bool,
    pub error: Option<FailoverError>,
}

/// Runs a step of `job`, flattening its error.
async fn step<T, F, Fut>(job: &mut Job, name: &str, f: F) -> Result<T, FailoverError>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, FailoverError>>,
{
    job.step(name, f).await.map_err(|e| match e {
        StepError::Job { error, .. } => FailoverError::Job(error),
        other => FailoverError::Step(other.to_string()),
    })
}

/// What the promote/restore/replicate step records.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActionDone {
    instance: String,
    at: String,
    snapshot: Option<Snapshot>,
    note: Option<String>,
}

/// Where a failover (or failback) of one database ends up.
struct Target<'a> {
    rds: &'a Rds,
    instance: &'a str,
    failback: bool,
}

/// A switch's last steps for one database: `DB/wait` until the target
/// reaches `goal`, `DB/validate` (with checks), `DB/dns` (with records).
async fn wait_validate_switch(
    job: &mut Job,
    regions: &Regions,
    db: &DrDatabase,
    target: Target<'_>,
    goal: Goal,
    options: DrOptions,
) -> Result<(), FailoverError> {
    let seen: Observed = step(job, &format!("{}/wait", db.name), || async {
        Ok(wait_for(target.rds, target.instance, goal, options.wait, |_| {}).await?)
    })
    .await?;
    if db.checks.is_some() {
        step(job, &format!("{}/validate", db.name), || validate_db(db, &seen)).await?;
    }
    if !db.records.is_empty() {
        step(job, &format!("{}/dns", db.name), || {
            switch_records(&regions.dns, db, seen.endpoint.as_deref(), target.failback)
        })
        .await?;
    }
    Ok(())
}

async fn validate_db(db: &DrDatabase, seen: &Observed) -> Result<Option<ValidationReport>, FailoverError> {
    let Some(checks) = &db.checks else {
        return Ok(None);
    };
    let url = if checks.uses_endpoint() {
        let host = seen.endpoint.as_deref().ok_or_else(|| FailoverError::State {
            database: db.name.clone(),
            message: "the instance has no endpoint to run the checks against".into(),
        })?;
        checks.url_for(host, seen.port.unwrap_or(5432))
    } else {
        checks.url.clone()
    };
    let report = validate::run(&url, checks)
        .await
        .map_err(|error| FailoverError::Validate {
            database: db.name.clone(),
            error: Box::new(error),
        })?;
    match report.failure_message() {
        Some(message) => Err(FailoverError::Validation {
            database: db.name.clone(),
            message,
        }),
        None => Ok(Some(report)),
    }
}

async fn switch_records(
    dns: &Dns,
    db: &DrDatabase,
    endpoint: Option<&str>,
    failback: bool,
) -> Result<Vec<RecordSwitch>, FailoverError> {
    let mut switches = Vec::new();
    for record in &db.records {
        let explicit = if failback {
            record.failback_target.as_deref()
        } else {
            record.target.as_deref()
        };
        let target = explicit.or(endpoint).ok_or_else(|| FailoverError::State {
            database: db.name.clone(),
            message: format!(
                "no target for record {}: the instance has no endpoint and the plan gives none",
                record.name
            ),
        })?;
        switches.push(dns.switch(record, target).await?);
    }
    Ok(switches)
}

/// Builds the report from the job's steps.
fn build_report(
    record: &JobRecord,
    plan: &DrPlan,
    inspection: &DrInspection,
    outcome: Outcome,
    error: Option<String>,
    finished_at: String,
) -> DrReport {
    let databases = inspection
        .databases
        .iter()
        .map(|state| {
            let step = |suffix: &str| record.step(&format!("{}/{suffix}", state.name));
            let output = |suffix: &str| {
                step(suffix)
                    .filter(|s| s.status == crate::jobs::StepStatus::Done)
                    .map(|s| s.output.clone())
            };
            let seen: Option<Observed> = output("wait").and_then(|v| serde_json::from_value(v).ok());
            let validation: Option<ValidationReport> = output("validate").and_then(|v| serde_json::from_value(v).ok());
            let records: Vec<RecordSwitch> = output("dns")
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default();
            let ready = match &plan
                .databases
                .iter()
                .find(|d| d.name == state.name)
                .and_then(|d| d.checks.as_ref())
            {
                Some(_) => step("validate"),
                None => step("wait"),
            }
            .filter(|s| s.status == crate::jobs::StepStatus::Done)
            .and_then(|s| s.finished_at.clone());
            // A drill measures each database from its own first step.
            let origin = if record.kind == JobKind::Drill {
                record
                    .steps
                    .iter()
                    .find(|s| s.name.starts_with(&format!("{}/", state.name)))
                    .map(|s| s.started_at.clone())
                    .unwrap_or_else(|| record.started_at.clone())
            } else {
                record.started_at.clone()
            };
            let rto_seconds = ready.as_deref().and_then(|r| seconds_between(&origin, r));
            let action: Option<ActionDone> = ["promote", "restore", "replicate"]
                .iter()
                .find_map(|s| output(s))
                .and_then(|v| serde_json::from_value(v).ok());
            let rpo = match (&state.rpo, &action) {
                (
                    Some(Rpo::Snapshot { .. }),
                    Some(ActionDone {
                        snapshot: Some(snapshot),
                        at,
                        ..
                    }),
                ) => Some(snapshot_rpo(snapshot, at.parse().unwrap_or_else(|_| Timestamp::now()))),
                (rpo, _) => rpo.clone(),
            };
            let mut notes = Vec::new();
            if state.action == Action::Done {
                notes.push("already done before this run: nothing to do".to_owned());
            }
            if let Some(note) = action.as_ref().and_then(|a| a.note.clone()) {
                notes.push(note);
            }
            if let Some(teardown) = output("teardown").and_then(|v| v.as_str().map(str::to_owned)) {
                notes.push(teardown);
            }
            let prefix = format!("{}/", state.name);
            for failed in record
                .steps
                .iter()
                .filter(|s| s.name.starts_with(&prefix) && s.status == crate::jobs::StepStatus::Failed)
            {
                notes.push(format!(
                    "step {} failed: {}",
                    failed.name,
                    failed.error.as_deref().unwrap_or("no error recorded")
                ));
            }
            DatabaseReport {
                name: state.name.clone(),
                strategy: state.strategy,
                instance: action
                    .as_ref()
                    .map_or_else(|| state.instance.clone(), |a| a.instance.clone()),
                region: state.region.clone(),
                endpoint: seen
                    .and_then(|s| s.endpoint)
                    .or_else(|| state.existing.as_ref().and_then(|i| i.endpoint.clone())),
                rto_seconds,
                ready_at: ready,
                rpo,
                checks: state.checks,
                validation,
                records,
                notes,
            }
        })
        .collect();
    DrReport {
        job_id: record.id.clone(),
        kind: record.kind,
        plan: plan.name.clone(),
        primary_region: plan.primary_region.clone(),
        dr_region: plan.dr_region.clone(),
        started_at: record.started_at.clone(),
        finished_at,
        runs: record.runs,
        outcome,
        error,
        databases,
        steps: record.steps.clone(),
    }
}

/// Ends the job with its report: finished, failed (resumable), or abandoned.
async fn conclude(
    job: Job,
    plan: &DrPlan,
    inspection: &DrInspection,
    error: Option<FailoverError>,
    resumable: bool,
) -> Result<DrRun, FailoverError> {
    let resumed = job.resumed();
    let outcome = match &error {
        Some(_) => Outcome::Failed,
        None if inspection.nothing_to_do() && job.record().steps.is_empty() => Outcome::NothingToDo,
        None => Outcome::Succeeded,
    };
    let report = build_report(
        job.record(),
        plan,
        inspection,
        outcome,
        error.as_ref().map(ToString::to_string),
        now_rfc3339(),
    );
    let value = serde_json::to_value(&report).ok();
    let record = match &error {
        None => job.finish(value).await?,
        Some(e) if resumable => job.fail(&e.to_string()).await?,
        Some(e) => job.abandon(&e.to_string()).await?,
    };
    let mut report = report;
    report.steps = record.steps;
    if let Some(finished) = record.finished_at {
        report.finished_at = finished;
    }
    Ok(DrRun { report, resumed, error })
}

/// The inspection a job works from: recorded by its first run, reused when resumed.
async fn preflight(job: &mut Job, inspection: &DrInspection) -> Result<DrInspection, FailoverError> {
    let fresh = inspection.clone();
    let recorded: DrInspection = step(job, "preflight", || async move {
        let problems = fresh.problems();
        if problems.is_empty() {
            Ok(fresh)
        } else {
            Err(FailoverError::Blocked {
                plan: fresh.plan.clone(),
                problems,
            })
        }
    })
    .await?;
    Ok(recorded)
}

/// The plan's unfinished job of `kind`, or a new one; with `restart`, an
/// unfinished one is abandoned (kept in the catalog as failed) first.
async fn open_job(jobs: &Jobs, kind: JobKind, plan: &DrPlan, restart: bool) -> Result<Job, FailoverError> {
    let job = jobs.resume_or_start(kind, &plan.name).await?;
    if !(restart && job.resumed()) {
        return Ok(job);
    }
    let abandoned = job.id().to_owned();
    job.abandon("abandoned by a run with --restart").await?;
    tracing::info!(job = %abandoned, "unfinished job abandoned; starting anew");
    Ok(jobs.resume_or_start(kind, &plan.name).await?)
}

/// Fails over every database of `plan` as [`inspect_failover`] found it
/// (resuming the plan's interrupted failover, if there is one). When
/// `interrupted` completes first (the toolkit passes Ctrl-C), the job is
/// recorded failed where it stood, to be resumed by the next run.
pub async fn run_failover(
    regions: &Regions,
    jobs: &Jobs,
    plan: &DrPlan,
    inspection: &DrInspection,
    options: DrOptions,
    interrupted: impl Future<Output = ()>,
) -> Result<DrRun, FailoverError> {
    run_switch(JobKind::Failover, regions, jobs, plan, inspection, options, interrupted).await
}

/// Fails back every database of `plan` to the primary region.
pub async fn run_failback(
    regions: &Regions,
    jobs: &Jobs,
    plan: &DrPlan,
    inspection: &DrInspection,
    options: DrOptions,
    interrupted: impl Future<Output = ()>,
) -> Result<DrRun, FailoverError> {
    run_switch(JobKind::Failback, regions, jobs, plan, inspection, options, interrupted).await
}

/// A failover or a failback as a job: its steps, stopped where they stand
/// when `interrupted` completes first, and the report.
async fn run_switch(
    kind: JobKind,
    regions: &Regions,
    jobs: &Jobs,
    plan: &DrPlan,
    inspection: &DrInspection,
    options: DrOptions,
    interrupted: impl Future<Output = ()>,
) -> Result<DrRun, FailoverError> {
    let mut job = open_job(jobs, kind, plan, options.restart).await?;
    if !job.resumed() && inspection.nothing_to_do() {
        return conclude(job, plan, inspection, None, true).await;
    }
    let steps = async {
        if kind == JobKind::Failback {
            failback_steps(&mut job, regions, plan, inspection, options).await
        } else {
            failover_steps(&mut job, regions, plan, inspection, options).await
        }
    };
    let result = tokio::select! {
        result = steps => result,
        () = interrupted => Err(FailoverError::Interrupted),
    };
    let (inspection, error) = match result {
        Ok(recorded) => (recorded, None),
        Err(e) => (inspection.clone(), Some(e)),
    };
    conclude(job, plan, &inspection, error, true).await
}

async fn failover_steps(
    job: &mut Job,
    regions: &Regions,
    plan: &DrPlan,
    inspection: &DrInspection,
    options: DrOptions,
) -> Result<DrInspection, FailoverError> {
    let inspection = preflight(job, inspection).await?;
    let active: Vec<(&DrDatabase, &DatabaseState)> = plan
        .databases
        .iter()
        .filter_map(|db| inspection.databases.iter().find(|s| s.name == db.name).map(|s| (db, s)))
        .filter(|(_, s)| s.action != Action::Done)
        .collect();
    // Start every promotion and restore first, so the regions work in parallel.
    for (db, state) in &active {
        match &state.action {
            Action::Promote => {
                step(job, &format!("{}/promote", db.name), || async {
                    let note = match regions.dr.instance(&db.dr_instance).await? {
                        Some(i) if i.replica_of.is_none() => Some("already promoted".to_owned()),
                        Some(_) => {
                            regions.dr.promote(&db.dr_instance).await?;
                            None
                        }
                        None => {
                            return Err(FailoverError::State {
                                database: db.name.clone(),
                                message: format!("read replica {} disappeared from {}", db.dr_instance, plan.dr_region),
                            })
                        }
                    };
                    Ok(ActionDone {
                        instance: db.dr_instance.clone(),
                        at: now_rfc3339(),
                        snapshot: None,
                        note,
                    })
                })
                .await?;
            }
            Action::Restore { snapshot } => {
                step(job, &format!("{}/restore", db.name), || async {
                    let note = if regions.dr.instance(&db.dr_instance).await?.is_some() {
                        Some(format!(
                            "{} existed already (an earlier interrupted restore): used as is",
                            db.dr_instance
                        ))
                    } else {
                        regions
                            .dr
                            .restore_snapshot(&RestoreRequest {
                                instance: &db.dr_instance,
                                snapshot: &snapshot.id,
                                instance_class: db.instance_class.as_deref(),
                                subnet_group: db.subnet_group.as_deref(),
                                security_groups: &db.security_groups,
                                tags: &[("lifeboat:failover", &plan.name)],
                                ..RestoreRequest::default()
                            })
                            .await?;
                        None
                    };
                    Ok(ActionDone {
                        instance: db.dr_instance.clone(),
                        at: now_rfc3339(),
                        snapshot: Some(snapshot.clone()),
                        note,
                    })
                })
                .await?;
            }
            _ => {}
        }
    }
    for (db, state) in &active {
        let goal = match state.action {
            Action::Promote => Goal::Promoted {
                settle_polls: options.settle_polls,
            },
            _ => Goal::Available,
        };
        let target = Target {
            rds: &regions.dr,
            instance: &db.dr_instance,
            failback: false,
        };
        wait_validate_switch(job, regions, db, target, goal, options).await?;
    }
    Ok(inspection)
}

async fn failback_steps(
    job: &mut Job,
    regions: &Regions,
    plan: &DrPlan,
    inspection: &DrInspection,
    options: DrOptions,
) -> Result<DrInspection, FailoverError> {
    let inspection = preflight(job, inspection).await?;
    let active: Vec<&DrDatabase> = plan
        .databases
        .iter()
        .filter(|db| {
            inspection
                .databases
                .iter()
                .any(|s| s.name == db.name && s.action != Action::Done)
        })
        .collect();
    for db in &active {
        step(job, &format!("{}/replicate", db.name), || async {
            if regions.primary.instance(&db.failback_instance).await?.is_some() {
                return Ok(ActionDone {
                    instance: db.failback_instance.clone(),
                    at: now_rfc3339(),
                    snapshot: None,
                    note: Some(format!("{} existed already: used as is", db.failback_instance)),
                });
            }
            let writer = regions
                .dr
                .instance(&db.dr_instance)
                .await?
                .ok_or_else(|| FailoverError::State {
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
                    tags: &[("lifeboat:failback", &plan.name)],
                })
                .await?;
            Ok(ActionDone {
                instance: db.failback_instance.clone(),
                at: now_rfc3339(),
                snapshot: None,
                note: None,
            })
        })
        .await?;
    }
    for db in &active {
        step(job, &format!("{}/wait-replica", db.name), || async {
            Ok(wait_for(
                &regions.primary,
                &db.failback_instance,
                Goal::Available,
                options.wait,
                |_| {},
            )
            .await?)
        })
        .await?;
        step(job, &format!("{}/promote", db.name), || async {
            match regions.primary.instance(&db.failback_instance).await? {
                Some(i) if i.replica_of.is_some() => regions.primary.promote(&db.failback_instance).await?,
                _ => {}
            }
            Ok(now_rfc3339())
        })
        .await?;
        let goal = Goal::Promoted {
            settle_polls: options.settle_polls,
        };
        let target = Target {
            rds: &regions.primary,
            instance: &db.failback_instance,
            failback: true,
        };
        wait_validate_switch(job, regions, db, target, goal, options).await?;
    }
    Ok(inspection)
}

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
pub async fn run_drill(
    regions: &Regions,
    jobs: &Jobs,
    plan: &DrPlan,
    inspection: &DrInspection,
    options: DrOptions,
    interrupted: impl Future<Output = ()>,
) -> Result<DrRun, FailoverError> {
    let mut job = jobs.start(JobKind::Drill, &plan.name).await?;
    let job_id = job.id().to_owned();
    let mut inspection = inspection.clone();
    for state in &mut inspection.databases {
        state.instance = drill_instance(&state.name, &job_id);
    }
    let deletable: Vec<&Leftover> = inspection.leftovers.iter().filter(|l| l.deletable).collect();
    if !deletable.is_empty() {
        let cleaned = step(&mut job, "cleanup", || async {
            for leftover in &deletable {
                regions.dr.delete_instance(&leftover.instance).await?;
            }
            Ok(deletable.iter().map(|l| l.instance.clone()).collect::<Vec<_>>())
        })
        .await;
        if let Err(e) = cleaned {
            return conclude(job, plan, &inspection, Some(e), false).await;
        }
    }
    let mut created = Vec::new();
    let result = tokio::select! {
        result = drill_steps(&mut job, regions, plan, &inspection, options, &mut created) => result,
        () = interrupted => Err(FailoverError::Interrupted),
    };
    // The teardown runs whatever happened above.
    let mut teardown_error = None;
    for (database, instance) in &created {
        let outcome = step(&mut job, &format!("{database}/teardown"), || async {
            regions.dr.delete_instance(instance).await?;
            Ok(format!("drill instance {instance} deleted (no final snapshot)"))
        })
        .await;
        if let Err(e) = outcome {
            teardown_error.get_or_insert(e);
        }
    }
    let error = match (result, teardown_error) {
        (Err(e), _) => Some(e),
        (Ok(()), Some(e)) => Some(e),
        (Ok(()), None) => None,
    };
    conclude(job, plan, &inspection, error, false).await
}

async fn drill_steps(
    job: &mut Job,
    regions: &Regions,
    plan: &DrPlan,
    inspection: &DrInspection,
    options: DrOptions,
    created: &mut Vec<(String, String)>,
) -> Result<(), FailoverError> {
    preflight(job, inspection).await?;
    let tag_value = job.id().to_owned();
    for state in &inspection.databases {
        let Some(db) = plan.databases.iter().find(|d| d.name == state.name) else {
            continue;
        };
        let instance = state.instance.clone();
        let tags = [(DRILL_TAG, tag_value.as_str()), (PLAN_TAG, plan.name.as_str())];
        created.push((db.name.clone(), instance.clone()));
        match &state.action {
            Action::DrillRestore { snapshot } => {
                step(job, &format!("{}/restore", db.name), || async {
                    regions
                        .dr
                        .restore_snapshot(&RestoreRequest {
                            instance: &instance,
                            snapshot: &snapshot.id,
                            instance_class: db.instance_class.as_deref(),
                            subnet_group: db.subnet_group.as_deref(),
                            security_groups: &db.security_groups,
                            tags: &tags,
                            ..RestoreRequest::default()
                        })
                        .await?;
                    Ok(ActionDone {
                        instance: instance.clone(),
                        at: now_rfc3339(),
                        snapshot: Some(snapshot.clone()),
                        note: None,
                    })
                })
                .await?;
            }
            Action::DrillReplica => {
                step(job, &format!("{}/replicate", db.name), || async {
                    let primary =
                        regions
                            .primary
                            .instance(&db.primary_instance)
                            .await?
                            .ok_or_else(|| FailoverError::State {
                                database: db.name.clone(),
                                message: format!(
                                    "primary {} disappeared from {}",
                                    db.primary_instance, plan.primary_region
                                ),
                            })?;
                    regions
                        .dr
                        .create_replica(&ReplicaRequest {
                            instance: &instance,
                            source_arn: &primary.arn,
                            instance_class: db.instance_class.as_deref(),
                            kms_key: None,
                            tags: &tags,
                        })
                        .await?;
                    Ok(ActionDone {
                        instance: instance.clone(),
                        at: now_rfc3339(),
                        snapshot: None,
                        note: Some("temporary replica of the primary, promoted for the drill".into()),
                    })
                })
                .await?;
                step(job, &format!("{}/wait-replica", db.name), || async {
                    Ok(wait_for(&regions.dr, &instance, Goal::Available, options.wait, |_| {}).await?)
                })
                .await?;
                step(job, &format!("{}/promote", db.name), || async {
                    regions.dr.promote(&instance).await?;
                    Ok(now_rfc3339())
                })
                .await?;
            }
            other => {
                return Err(FailoverError::State {
                    database: db.name.clone(),
                    message: format!("a drill cannot {other:?}"),
                })
            }
        }
        let goal = match state.action {
            Action::DrillReplica => Goal::Promoted {
                settle_polls: options.settle_polls,
            },
            _ => Goal::Available,
        };
        let seen: Observed = step(job, &format!("{}/wait", db.name), || async {
            Ok(wait_for(&regions.dr, &instance, goal, options.wait, |_| {}).await?)
        })
        .await?;
        if db.checks.is_some() {
            step(job, &format!("{}/validate", db.name), || validate_db(db, &seen)).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done_step(name: &str, started: &str, finished: &str, output: serde_json::Value) -> crate::jobs::StepRecord {
        crate::jobs::StepRecord {
            name: name.into(),
            status: crate::jobs::StepStatus::Done,
            started_at: started.into(),
            finished_at: Some(finished.into()),
            duration_ms: None,
            output,
            error: None,
            attempts: 1,
        }
    }

    #[test]
    fn the_report_measures_rto_to_validated_and_rpo_to_the_restore() {
        let text = r#"
name = "prod"
primary_region = "eu-central-1"
dr_region = "us-west-2"
[[database]]
name = "billing"
primary_instance = "billing-db"
strategy = "snapshot"
[database.validation]
url = "postgres://app@{host}:{port}/billing"
[[database.validation.check]]
name = "one"
sql = "SELECT 1"
equals = 1
"#;
        let plan = plan::parse(text, "dr.toml", std::path::Path::new(".")).expect("plan");
        let snapshot = Snapshot {
            id: "billing-copy".into(),
            taken_at: "2026-11-23T09:00:00Z".into(),
        };
        let mut db = state(Action::Restore {
            snapshot: snapshot.clone(),
        });
        db.name = "billing".into();
        db.strategy = Strategy::Snapshot;
        db.rpo = Some(snapshot_rpo(&snapshot, "2026-11-23T10:30:00Z".parse().expect("time")));
        let inspection = DrInspection {
            kind: JobKind::Failover,
            plan: "prod".into(),
            primary_region: "eu-central-1".into(),
            dr_region: "us-west-2".into(),
            inspected_at: "2026-11-23T10:30:00Z".into(),
            databases: vec![db],
            leftovers: vec![],
        };
        let restored = ActionDone {
            instance: "billing-db".into(),
            at: "2026-11-23T10:00:30.000Z".into(),
            snapshot: Some(snapshot),
            note: None,
        };
        let record = JobRecord {
            id: "job-20261123T100000Z-0a1b2c3d".into(),
            kind: JobKind::Failover,
            subject: "prod".into(),
            status: crate::jobs::JobStatus::Running,
            started_at: "2026-11-23T10:00:00.000Z".into(),
            finished_at: None,
            error: None,
            steps: vec![
                done_step(
                    "billing/restore",
                    "2026-11-23T10:00:10.000Z",
                    "2026-11-23T10:00:30.000Z",
                    serde_json::to_value(&restored).expect("json"),
                ),
                done_step(
                    "billing/wait",
                    "2026-11-23T10:00:30.000Z",
                    "2026-11-23T10:12:00.000Z",
                    serde_json::json!({"status": "available", "replicaOf": null,
                        "endpoint": "billing-db.x.us-west-2.rds.amazonaws.com", "port": 5432}),
                ),
                done_step(
                    "billing/validate",
                    "2026-11-23T10:12:00.000Z",
                    "2026-11-23T10:12:30.500Z",
                    serde_json::json!({"url": "postgresql://app@billing-db.x/billing", "results": []}),
                ),
            ],
            report: None,
            runs: 2,
        };
        let report = build_report(
            &record,
            &plan,
            &inspection,
            Outcome::Succeeded,
            None,
            "2026-11-23T10:13:00.000Z".into(),
        );
        let billing = &report.databases[0];
        assert_eq!(billing.rto_seconds, Some(750.5), "job start to validated");
        assert_eq!(billing.ready_at.as_deref(), Some("2026-11-23T10:12:30.500Z"));
        assert_eq!(
            billing.rpo,
            Some(Rpo::Snapshot {
                snapshot: "billing-copy".into(),
                taken_at: "2026-11-23T09:00:00Z".into(),
                seconds: 3630,
            }),
            "from the snapshot to the restore, not to the inspection"
        );
        assert_eq!(
            billing.endpoint.as_deref(),
            Some("billing-db.x.us-west-2.rds.amazonaws.com")
        );
        assert_eq!((report.runs, report.outcome), (2, Outcome::Succeeded));

        let mut drill = record.clone();
        drill.kind = JobKind::Drill;
        let report = build_report(&drill, &plan, &inspection, Outcome::Succeeded, None, String::new());
        assert_eq!(
            report.databases[0].rto_seconds,
            Some(740.5),
            "a drill measures from the database's first step"
        );
    }

    #[test]
    fn drill_instances_are_valid_rds_identifiers_unique_per_job() {
        let name = drill_instance("orders", "job-20261123T100000Z-0a1b2c3d");
        assert_eq!(name, "drill-orders-0a1b2c3d");
        assert!(plan::check_instance_id(&name).is_ok());
        let long = drill_instance(&"a".repeat(40), "job-20261123T100000Z-0a1b2c3d");
        assert!(plan::check_instance_id(&long).is_ok(), "{long}");
    }

    fn state(action: Action) -> DatabaseState {
        DatabaseState {
            name: "orders".into(),
            strategy: Strategy::Replica,
            instance: "orders-dr".into(),
            region: "us-west-2".into(),
            existing: None,
            action,
            rpo: None,
            records: vec![],
            checks: 0,
        }
    }

    #[test]
    fn an_inspection_says_when_there_is_nothing_to_do_and_what_blocks() {
        let mut inspection = DrInspection {
            kind: JobKind::Failover,
            plan: "prod".into(),
            primary_region: "eu-central-1".into(),
            dr_region: "us-west-2".into(),
            inspected_at: "2026-11-23T10:00:00Z".into(),
            databases: vec![state(Action::Done), state(Action::Done)],
            leftovers: vec![],
        };
        assert!(inspection.nothing_to_do());
        inspection.databases[1] = state(Action::Blocked {
            reason: "no replica".into(),
        });
        assert!(!inspection.nothing_to_do());
        assert_eq!(inspection.problems(), vec!["database orders: no replica".to_owned()]);
    }

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
}
