//! Restoring RDS databases: a DB instance or an Aurora cluster to a point in
//! time, or a DB snapshot or cluster snapshot into a new database. Each
//! restore is a recovery job in the catalog (`crate::jobs`) with the steps
//!
//! - `check-window`: find the source, compute its restorable window and check
//!   the time against it (`crate::pitr`), check the target name is free;
//! - `restore`: the RDS restore call (for a cluster, then `create-instance`:
//!   the cluster's first instance, of the source's class and engine);
//! - `wait` (with `wait`): until the database is `available`;
//! - `validate` (with checks): the checks file's SQL assertions
//!   (`crate::validate`) against the restored database.
//!
//! A job is resumable: a rerun with the same arguments continues after the
//! last step that completed (a restore whose validation failed is validated
//! again, not restored again). A rerun with other arguments leaves the old
//! job behind (abandoned) and starts a new one.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::jobs::{Job, JobError, JobKind, JobRecord, Jobs, StepError};
use crate::pitr::{self, check_time, restore_window, RestoreTime, RestoreWindow, WindowError, WindowFacts};
use crate::rds::wait::{wait_for, Goal, StatusChange, WaitError, WaitPolicy};
pub use crate::rds::Endpoint;
use crate::rds::{ClusterStatus, Database, PointInTimeRestore, Rds, RdsError, ResourceKind, SnapshotRestore};
use crate::validate::{Checks, ValidateError, ValidationReport};

/// Tag put on every database a restore creates: the job that made it.
pub const JOB_TAG: &str = "lifeboat:recovery-job";
/// Tag put on every database a restore creates: what it was restored from.
pub const RESTORED_FROM_TAG: &str = "lifeboat:restored-from";

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("no DB instance or Aurora cluster {id} in region {region}: check the name and the region (`aws rds describe-db-instances --region {region}`, `aws rds describe-db-clusters --region {region}`)")]
    NoSource { id: String, region: String },
    #[error("DB instance {instance} is a member of Aurora cluster {cluster}: restore the cluster (`lifeboat restore db {cluster} ...`)")]
    ClusterMember { instance: String, cluster: String },
    #[error("no DB snapshot or DB cluster snapshot {id} in region {region}: list snapshots with `lifeboat status` or `aws rds describe-db-snapshots --region {region}` (and `describe-db-cluster-snapshots`), or pass the region the snapshot is in")]
    NoSnapshot { id: String, region: String },
    #[error(
        "snapshot {id} in region {region} is {status}, not available: restore it once it is (or pick another snapshot)"
    )]
    SnapshotNotReady { id: String, region: String, status: String },
    #[error("{what} {name} already exists in region {region}: restores never overwrite; pass another name with --as, or delete it first")]
    TargetExists { what: String, name: String, region: String },
    #[error("{name:?} is not a valid DB identifier (a letter, then letters, digits and single hyphens, at most 63, no hyphen at the end)")]
    BadName { name: String },
    #[error("{arn} names region {arn_region}, but the restore was asked for region {region}: drop --region, or pass the identifier")]
    RegionMismatch {
        arn: String,
        arn_region: String,
        region: String,
    },
    #[error("{arn:?} is not an RDS snapshot ARN (arn:aws:rds:REGION:ACCOUNT:snapshot:ID or ...:cluster-snapshot:ID)")]
    BadArn { arn: String },
    #[error("cannot tell which instance class the restored cluster's instance should have ({why}): pass --instance-class, e.g. db.r6g.large")]
    NoInstanceClass { why: String },
    #[error(transparent)]
    Window(#[from] WindowError),
    #[error(transparent)]
    Wait(#[from] WaitError),
    #[error("restored {what} has no endpoint yet, so the checks cannot reach it")]
    NoEndpoint { what: String },
    #[error("validation failed: {message}")]
    ChecksFailed { message: String },
    #[error(transparent)]
    Validate(#[from] ValidateError),
    #[error(transparent)]
    Rds(#[from] RdsError),
    #[error("recording the recovery job: {0}")]
    Job(#[from] JobError),
    #[error("recovery job {} failed at step {step}: {message}", job.id)]
    Failed {
        job: Box<JobRecord>,
        step: String,
        message: String,
        /// Whether running the same command again resumes the job.
        resumable: bool,
    },
}

/// Fails if a DB instance or cluster called `name` exists.
async fn check_free(rds: &Rds, name: &str) -> Result<(), RecoveryError> {
    if !pitr::valid_identifier(name) {
        return Err(RecoveryError::BadName { name: name.to_owned() });
    }
    match rds.database(name, None).await? {
        Some(taken) => Err(RecoveryError::TargetExists {
            what: taken.kind.describe().to_owned(),
            name: name.to_owned(),
            region: rds.region().to_owned(),
        }),
        None => Ok(()),
    }
}

/// The database a restore copies, as the `check-window` step found it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceDb {
    pub kind: ResourceKind,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The class the restored (cluster's) instance gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_group: Option<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
}

/// The outcome of the `check-window` step of a point-in-time restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PitrCheck {
    /// The arguments, to tell a rerun from a different restore.
    pub requested: Request,
    pub source: SourceDb,
    pub window: RestoreWindow,
    /// The time restored to (for `latest`, the window's end when checked).
    pub restore_time: Timestamp,
    pub target: String,
}

/// What was asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A database a restore made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Restored {
    pub kind: ResourceKind,
    pub id: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// A cluster's instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The status RDS reported last.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
}

impl Restored {
    pub fn describe(&self) -> String {
        format!("{} {}", self.kind.describe(), self.id)
    }
}

/// A point-in-time restore to run.
#[derive(Clone, Debug)]
pub struct PitrOptions {
    /// The DB instance or Aurora cluster identifier (or ARN).
    pub source: String,
    pub time: RestoreTime,
    /// The new database's name; default [`pitr::pitr_name`].
    pub name: Option<String>,
    /// The class of a restored cluster's instance; default the source's.
    pub instance_class: Option<String>,
    /// Wait until available (implied by `checks`).
    pub wait: Option<WaitPolicy>,
    pub checks: Option<Checks>,
    pub now: Timestamp,
}

/// A snapshot restore to run.
#[derive(Clone, Debug)]
pub struct SnapshotRestoreOptions {
    /// A DB snapshot or cluster snapshot identifier, or its ARN.
    pub snapshot: String,
    /// The new database's name; default [`pitr::snapshot_restore_name`].
    pub name: Option<String>,
    /// The class of a restored cluster's instance; default the source cluster's.
    pub instance_class: Option<String>,
    pub wait: Option<WaitPolicy>,
    pub checks: Option<Checks>,
    pub now: Timestamp,
}

/// A finished restore.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryReport {
    pub job: JobRecord,
    pub restored: Restored,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<RestoreWindow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_time: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationReport>,
}

/// Told about progress worth showing a person (status changes while waiting).
pub type Progress<'a> = &'a mut (dyn FnMut(&str) + Send);

/// The steps that only look: a job that fails in one of them changed
/// nothing, so it is closed (not resumable) and a rerun starts afresh.
const CHECK_STEPS: &[&str] = &["check-window", "check-snapshot"];

/// A step's failure: recorded in the job, which is then marked failed.
async fn failed(job: Job, error: StepError<RecoveryError>) -> RecoveryError {
    match error {
        StepError::Step { step, error } => {
            let message = error.to_string();
            let resumable = !CHECK_STEPS.contains(&step.as_str());
            let closed = if resumable {
                job.fail(&message).await
            } else {
                job.abandon(&message).await
            };
            match closed {
                Ok(record) => RecoveryError::Failed {
                    job: Box::new(record),
                    step,
                    message,
                    resumable,
                },
                Err(e) => RecoveryError::Job(e),
            }
        }
        StepError::Job { error, .. } => RecoveryError::Job(error),
    }
}

/// Opens the job for `subject`: resumes an unfinished one made with the same
/// arguments, abandons one made with others.
async fn open_job(
    jobs: &Jobs,
    kind: JobKind,
    subject: &str,
    check_step: &str,
    request: &Request,
) -> Result<Job, RecoveryError> {
    let job = jobs.resume_or_start(kind, subject).await?;
    let recorded = job
        .record()
        .step(check_step)
        .filter(|_| job.step_done(check_step))
        .and_then(|s| s.output.get("requested").cloned())
        .and_then(|v| serde_json::from_value::<Request>(v).ok());
    match recorded {
        Some(recorded) if recorded != *request => {
            let id = job.id().to_owned();
            job.abandon("superseded: restore run again with other arguments")
                .await?;
            tracing::info!(job = %id, "unfinished restore with other arguments abandoned");
            Ok(jobs.resume_or_start(kind, subject).await?)
        }
        _ => Ok(job),
    }
}

/// The tags of a database a restore creates.
fn tags<'a>(job_id: &'a str, from: &'a str) -> [(&'a str, &'a str); 2] {
    [(JOB_TAG, job_id), (RESTORED_FROM_TAG, from)]
}

/// Restores a DB instance or Aurora cluster to a point in time, as a
/// recovery job (`restore_db`, subject: the source's identifier).
pub async fn restore_to_point_in_time(
    rds: &Rds,
    jobs: &Jobs,
    options: &PitrOptions,
    progress: Progress<'_>,
) -> Result<RecoveryReport, RecoveryError> {
    let source_id = resource_id(&options.source);
    let request = Request {
        source: source_id.clone(),
        time: Some(options.time.to_string()),
        name: options.name.clone(),
    };
    let mut job = open_job(jobs, JobKind::RestoreDb, &source_id, "check-window", &request).await?;
    let job_id = job.id().to_owned();
    let check = match job
        .step("check-window", || check_pitr(rds, options, &source_id, request.clone()))
        .await
    {
        Ok(check) => check,
        Err(e) => return Err(failed(job, e).await),
    };
    let restored = match job.step("restore", || start_pitr(rds, &check, &job_id)).await {
        Ok(restored) => restored,
        Err(e) => return Err(failed(job, e).await),
    };
    let restored = match finish_cluster(rds, &mut job, restored, check.source.instance_class.clone()).await {
        Ok(restored) => restored,
        Err(e) => return Err(failed(job, e).await),
    };
    let (restored, validation) =
        match wait_and_validate(rds, &mut job, restored, options.wait, options.checks.as_ref(), progress).await {
            Ok(done) => done,
            Err(e) => return Err(failed(job, e).await),
        };
    let report = serde_json::json!({
        "source": check.source,
        "window": check.window,
        "restoreTime": check.restore_time,
        "restored": restored,
        "validation": validation,
    });
    let record = job.finish(Some(report)).await?;
    Ok(RecoveryReport {
        job: record,
        restored,
        window: Some(check.window),
        restore_time: Some(check.restore_time),
        validation,
    })
}

/// `arn:aws:rds:REGION:ACCOUNT:db:NAME` → `NAME`; an identifier stays.
fn resource_id(text: &str) -> String {
    if text.starts_with("arn:") {
        text.rsplit(':').next().unwrap_or(text).to_owned()
    } else {
        text.to_owned()
    }
}

async fn check_pitr(
    rds: &Rds,
    options: &PitrOptions,
    source_id: &str,
    requested: Request,
) -> Result<PitrCheck, RecoveryError> {
    let Some(db) = rds.database(source_id, None).await? else {
        return Err(RecoveryError::NoSource {
            id: source_id.to_owned(),
            region: rds.region().to_owned(),
        });
    };
    if let (ResourceKind::DbInstance, Some(cluster)) = (db.kind, &db.cluster) {
        return Err(RecoveryError::ClusterMember {
            instance: source_id.to_owned(),
            cluster: cluster.clone(),
        });
    }
    let automated_backup_window = match db.kind {
        ResourceKind::DbInstance => rds.automated_backup_window(source_id).await?,
        ResourceKind::Cluster => None,
    };
    let facts = WindowFacts {
        resource: format!("{} {source_id}", db.kind.describe()),
        retention_days: db.backup_retention_days,
        automated_backup_window,
        earliest_restorable: db.earliest_restorable,
        latest_restorable: db.latest_restorable,
        created_at: db.created_at,
    };
    let instance_class = match (db.kind, &options.instance_class) {
        (ResourceKind::DbInstance, _) => db.instance_class.clone(),
        (ResourceKind::Cluster, Some(class)) => Some(class.clone()),
        (ResourceKind::Cluster, None) => rds.instance_class(&db).await?,
    };
    let source = SourceDb {
        kind: db.kind,
        id: source_id.to_owned(),
        arn: db.arn,
        engine: db.engine,
        instance_class,
        subnet_group: db.subnet_group,
        security_groups: db.security_groups,
    };
    let window = restore_window(&facts, options.now)?;
    let restore_time = check_time(&facts.resource, &window, options.time)?;
    if source.kind == ResourceKind::Cluster && source.instance_class.is_none() {
        return Err(RecoveryError::NoInstanceClass {
            why: format!("cluster {source_id} has no instance to copy the class from"),
        });
    }
    let target = options
        .name
        .clone()
        .unwrap_or_else(|| pitr::pitr_name(source_id, restore_time));
    check_free(rds, &target).await?;
    Ok(PitrCheck {
        requested,
        source,
        window,
        restore_time,
        target,
    })
}

/// The database `target` if this job already created it: a run that was
/// interrupted after RDS accepted the restore but before the step was
/// recorded resumes with it instead of failing on "already exists".
async fn made_by_job(
    rds: &Rds,
    kind: ResourceKind,
    target: &str,
    job_id: &str,
) -> Result<Option<Restored>, RecoveryError> {
    Ok(rds
        .database(target, Some(kind))
        .await?
        .filter(|db| db.tags.get(JOB_TAG).map(String::as_str) == Some(job_id))
        .map(|db| restored(kind, Some(&db), target, rds.region())))
}

async fn start_pitr(rds: &Rds, check: &PitrCheck, job_id: &str) -> Result<Restored, RecoveryError> {
    let source = &check.source;
    if let Some(restored) = made_by_job(rds, source.kind, &check.target, job_id).await? {
        return Ok(restored);
    }
    let latest = check.requested.time.as_deref() == Some("latest");
    let made = rds
        .restore_to_point_in_time(&PointInTimeRestore {
            kind: source.kind,
            source: &source.id,
            target: &check.target,
            time: (!latest).then_some(check.restore_time),
            subnet_group: source.subnet_group.as_deref(),
            security_groups: &source.security_groups,
            tags: &tags(job_id, &source.id),
        })
        .await?;
    Ok(restored(source.kind, made.as_ref(), &check.target, rds.region()))
}

/// A database a restore made, as RDS first described it (if it did).
fn restored(kind: ResourceKind, db: Option<&Database>, id: &str, region: &str) -> Restored {
    Restored {
        kind,
        id: id.to_owned(),
        region: region.to_owned(),
        arn: db.and_then(|d| d.arn.clone()),
        instance: None,
        status: db
            .and_then(|d| d.status.clone())
            .unwrap_or_else(|| "creating".to_owned()),
        endpoint: db.and_then(|d| d.endpoint.clone()),
    }
}

/// For a restored cluster, the `create-instance` step: its first instance.
async fn finish_cluster(
    rds: &Rds,
    job: &mut Job,
    restored: Restored,
    instance_class: Option<String>,
) -> Result<Restored, StepError<RecoveryError>> {
    if restored.kind != ResourceKind::Cluster {
        return Ok(restored);
    }
    let job_id = job.id().to_owned();
    job.step("create-instance", || async {
        let class = instance_class.ok_or_else(|| RecoveryError::NoInstanceClass {
            why: format!("no class recorded for cluster {}", restored.id),
        })?;
        let cluster = rds
            .database(&restored.id, Some(ResourceKind::Cluster))
            .await?
            .ok_or_else(|| RecoveryError::NoSource {
                id: restored.id.clone(),
                region: rds.region().to_owned(),
            })?;
        let instance = pitr::cluster_instance_name(&restored.id);
        if rds.database(&instance, Some(ResourceKind::DbInstance)).await?.is_none() {
            rds.create_cluster_instance(&instance, &cluster, &class, &tags(&job_id, &restored.id))
                .await?;
        }
        Ok(Restored {
            instance: Some(instance),
            ..restored
        })
    })
    .await
}

/// The `wait` step (with a policy or checks) and the `validate` step (with checks).
async fn wait_and_validate(
    rds: &Rds,
    job: &mut Job,
    restored: Restored,
    wait: Option<WaitPolicy>,
    checks: Option<&Checks>,
    progress: Progress<'_>,
) -> Result<(Restored, Option<ValidationReport>), StepError<RecoveryError>> {
    let policy = match (wait, checks) {
        (Some(policy), _) => policy,
        (None, Some(_)) => WaitPolicy::default(),
        (None, None) => return Ok((restored, None)),
    };
    let restored = job
        .step("wait", || wait_available(rds, restored, &policy, progress))
        .await?;
    let Some(checks) = checks else {
        return Ok((restored, None));
    };
    let report = job
        .step("validate", || async {
            let url = if checks.uses_endpoint() {
                let endpoint = restored.endpoint.as_ref().ok_or_else(|| RecoveryError::NoEndpoint {
                    what: restored.describe(),
                })?;
                checks.url_for(&endpoint.host, endpoint.port)
            } else {
                checks.url.clone()
            };
            let report = crate::validate::run(&url, checks).await?;
            match report.failure_message() {
                Some(message) => Err(RecoveryError::ChecksFailed { message }),
                None => Ok(report),
            }
        })
        .await?;
    Ok((restored, Some(report)))
}

/// Waits for the restored database (a cluster: then its instance) and reads its endpoint.
async fn wait_available(
    rds: &Rds,
    restored: Restored,
    policy: &WaitPolicy,
    progress: Progress<'_>,
) -> Result<Restored, RecoveryError> {
    let mut note = |what: &str, change: &StatusChange| {
        progress(&format!(
            "{what}: {} (waited {})",
            change.status,
            humantime::format_duration(Duration::from_secs(change.waited.as_secs()))
        ))
    };
    let what = restored.describe();
    let seen = match restored.kind {
        ResourceKind::DbInstance => wait_for(rds, &restored.id, Goal::Available, *policy, |c| note(&what, c)).await?,
        ResourceKind::Cluster => {
            let seen = wait_for(&ClusterStatus(rds), &restored.id, Goal::Available, *policy, |c| {
                note(&what, c)
            })
            .await?;
            if let Some(instance) = &restored.instance {
                let what = format!("DB instance {instance}");
                wait_for(rds, instance, Goal::Available, *policy, |c| note(&what, c)).await?;
            }
            seen
        }
    };
    let endpoint = match (seen.endpoint, seen.port) {
        (Some(host), Some(port)) => Some(Endpoint { host, port }),
        _ => restored.endpoint.clone(),
    };
    Ok(Restored {
        status: "available".into(),
        endpoint,
        ..restored
    })
}

// ---------------------------------------------------------------------------
// Snapshot restores
// ---------------------------------------------------------------------------

/// A snapshot as named on the command line: an identifier, or an ARN (which
/// also names the region and the kind).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRef {
    pub id: String,
    pub region: Option<String>,
    pub kind: Option<ResourceKind>,
}

impl SnapshotRef {
    pub fn parse(text: &str) -> Result<Self, RecoveryError> {
        if !text.starts_with("arn:") {
            return Ok(Self {
                id: text.to_owned(),
                region: None,
                kind: None,
            });
        }
        let bad = || RecoveryError::BadArn { arn: text.to_owned() };
        let parts: Vec<&str> = text.splitn(7, ':').collect();
        if parts.len() != 7 || parts[2] != "rds" || parts[3].is_empty() || parts[6].is_empty() {
            return Err(bad());
        }
        let kind = match parts[5] {
            "snapshot" => ResourceKind::DbInstance,
            "cluster-snapshot" => ResourceKind::Cluster,
            _ => return Err(bad()),
        };
        Ok(Self {
            id: parts[6].to_owned(),
            region: Some(parts[3].to_owned()),
            kind: Some(kind),
        })
    }

    /// The region to restore in: the ARN's, which `--region` must not contradict.
    pub fn region(&self, text: &str, asked: Option<&str>) -> Result<Option<String>, RecoveryError> {
        restore_region(text, self.region.as_deref(), asked)
    }
}

/// The region a restore of `text` (an identifier or an ARN) happens in: an
/// ARN's own region, which `asked` (`--region`) must not contradict; else `asked`.
pub fn restore_region(
    text: &str,
    arn_region: Option<&str>,
    asked: Option<&str>,
) -> Result<Option<String>, RecoveryError> {
    match (arn_region, asked) {
        (Some(own), Some(asked)) if own != asked => Err(RecoveryError::RegionMismatch {
            arn: text.to_owned(),
            arn_region: own.to_owned(),
            region: asked.to_owned(),
        }),
        (Some(own), _) => Ok(Some(own.to_owned())),
        (None, asked) => Ok(asked.map(str::to_owned)),
    }
}

/// The region an RDS ARN names (`arn:aws:rds:REGION:...`), if `text` is one.
pub fn arn_region(text: &str) -> Option<&str> {
    let mut parts = text.splitn(5, ':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(_), Some("rds"), Some(region)) if !region.is_empty() => Some(region),
        _ => None,
    }
}

/// The snapshot a restore starts from, as the `check-snapshot` step found it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotInfo {
    /// What the snapshot is of.
    pub kind: ResourceKind,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The database it was taken of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
}

/// The outcome of the `check-snapshot` step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotCheck {
    pub requested: Request,
    pub snapshot: SnapshotInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_class: Option<String>,
    pub target: String,
}

/// Restores a DB snapshot or cluster snapshot into a new database, as a
/// recovery job (`restore_snapshot`, subject: the snapshot's identifier).
pub async fn restore_snapshot(
    rds: &Rds,
    jobs: &Jobs,
    options: &SnapshotRestoreOptions,
    progress: Progress<'_>,
) -> Result<RecoveryReport, RecoveryError> {
    let snapshot = SnapshotRef::parse(&options.snapshot)?;
    let request = Request {
        source: snapshot.id.clone(),
        time: None,
        name: options.name.clone(),
    };
    let mut job = open_job(jobs, JobKind::RestoreSnapshot, &snapshot.id, "check-snapshot", &request).await?;
    let job_id = job.id().to_owned();
    let check = match job
        .step("check-snapshot", || {
            check_snapshot(rds, options, &snapshot, request.clone())
        })
        .await
    {
        Ok(check) => check,
        Err(e) => return Err(failed(job, e).await),
    };
    let restored = match job
        .step("restore", || start_snapshot_restore(rds, &check, &job_id))
        .await
    {
        Ok(restored) => restored,
        Err(e) => return Err(failed(job, e).await),
    };
    let restored = match finish_cluster(rds, &mut job, restored, check.instance_class.clone()).await {
        Ok(restored) => restored,
        Err(e) => return Err(failed(job, e).await),
    };
    let (restored, validation) =
        match wait_and_validate(rds, &mut job, restored, options.wait, options.checks.as_ref(), progress).await {
            Ok(done) => done,
            Err(e) => return Err(failed(job, e).await),
        };
    let report = serde_json::json!({
        "snapshot": check.snapshot,
        "restored": restored,
        "validation": validation,
    });
    let record = job.finish(Some(report)).await?;
    Ok(RecoveryReport {
        job: record,
        restored,
        window: None,
        restore_time: None,
        validation,
    })
}

async fn find_snapshot(rds: &Rds, snapshot: &SnapshotRef) -> Result<(SnapshotInfo, String), RecoveryError> {
    let (kind, state) =
        rds.find_snapshot(&snapshot.id, snapshot.kind)
            .await?
            .ok_or_else(|| RecoveryError::NoSnapshot {
                id: snapshot.id.clone(),
                region: rds.region().to_owned(),
            })?;
    let info = SnapshotInfo {
        kind,
        id: snapshot.id.clone(),
        arn: state.arn,
        engine: state.engine,
        source: state.source,
        created_at: state.created_at,
    };
    let status = if state.status.is_empty() {
        "available".to_owned()
    } else {
        state.status
    };
    Ok((info, status))
}

async fn check_snapshot(
    rds: &Rds,
    options: &SnapshotRestoreOptions,
    snapshot: &SnapshotRef,
    requested: Request,
) -> Result<SnapshotCheck, RecoveryError> {
    let (info, status) = find_snapshot(rds, snapshot).await?;
    if status != "available" {
        return Err(RecoveryError::SnapshotNotReady {
            id: info.id,
            region: rds.region().to_owned(),
            status,
        });
    }
    let instance_class = match (info.kind, &options.instance_class) {
        (ResourceKind::DbInstance, _) => None,
        (ResourceKind::Cluster, Some(class)) => Some(class.clone()),
        (ResourceKind::Cluster, None) => {
            let cluster = match &info.source {
                Some(source) => rds.database(source, Some(ResourceKind::Cluster)).await?,
                None => None,
            };
            let class = match &cluster {
                Some(cluster) => rds.instance_class(cluster).await?,
                None => None,
            };
            Some(class.ok_or_else(|| RecoveryError::NoInstanceClass {
                why: format!(
                    "the snapshot's cluster {} is not in region {} to copy it from",
                    info.source.as_deref().unwrap_or("(unknown)"),
                    rds.region()
                ),
            })?)
        }
    };
    let target = options
        .name
        .clone()
        .unwrap_or_else(|| pitr::snapshot_restore_name(&info.id, options.now));
    check_free(rds, &target).await?;
    Ok(SnapshotCheck {
        requested,
        snapshot: info,
        instance_class,
        target,
    })
}

async fn start_snapshot_restore(rds: &Rds, check: &SnapshotCheck, job_id: &str) -> Result<Restored, RecoveryError> {
    let snapshot = &check.snapshot;
    if let Some(restored) = made_by_job(rds, snapshot.kind, &check.target, job_id).await? {
        return Ok(restored);
    }
    let engine = match snapshot.kind {
        ResourceKind::DbInstance => None,
        ResourceKind::Cluster => snapshot.engine.as_deref(),
    };
    let made = rds
        .restore_from_snapshot(&SnapshotRestore {
            kind: snapshot.kind,
            snapshot: &snapshot.id,
            target: &check.target,
            engine,
            tags: &tags(job_id, &snapshot.id),
        })
        .await?;
    Ok(restored(snapshot.kind, made.as_ref(), &check.target, rds.region()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_references_are_identifiers_or_arns() {
        assert_eq!(
            SnapshotRef::parse("nightly-orders").expect("id"),
            SnapshotRef {
                id: "nightly-orders".into(),
                region: None,
                kind: None
            }
        );
        let arn = "arn:aws:rds:us-west-2:123456789012:snapshot:rds:orders-2026-11-23-03-00";
        let parsed = SnapshotRef::parse(arn).expect("arn");
        assert_eq!(parsed.id, "rds:orders-2026-11-23-03-00");
        assert_eq!(parsed.region.as_deref(), Some("us-west-2"));
        assert_eq!(parsed.kind, Some(ResourceKind::DbInstance));
        assert_eq!(parsed.region(arn, None).expect("region").as_deref(), Some("us-west-2"));
        assert!(matches!(
            parsed.region(arn, Some("us-east-1")),
            Err(RecoveryError::RegionMismatch { .. })
        ));
        let cluster = SnapshotRef::parse("arn:aws:rds:us-east-1:123456789012:cluster-snapshot:c1").expect("arn");
        assert_eq!(cluster.kind, Some(ResourceKind::Cluster));
        for bad in [
            "arn:aws:rds:us-east-1:123456789012:db:orders",
            "arn:aws:s3:::bucket",
            "arn:aws:rds::123456789012:snapshot:x",
        ] {
            assert!(
                matches!(SnapshotRef::parse(bad), Err(RecoveryError::BadArn { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_sample_checks_file_is_valid() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/checks.toml");
        let checks = crate::validate::load(&path).expect("examples/checks.toml");
        assert!(checks.uses_endpoint());
        assert_eq!(checks.checks.len(), 3);
        assert_eq!(
            checks.url_for("orders-pitr.abc.eu-west-1.rds.amazonaws.com", 5432),
            "postgres://app@orders-pitr.abc.eu-west-1.rds.amazonaws.com:5432/orders"
        );
    }

    #[test]
    fn resource_ids_and_regions_come_out_of_arns() {
        let arn = "arn:aws:rds:eu-west-1:123456789012:db:orders";
        assert_eq!(resource_id(arn), "orders");
        assert_eq!(resource_id("orders"), "orders");
        assert_eq!(arn_region(arn), Some("eu-west-1"));
        assert_eq!(arn_region("orders"), None);
        assert_eq!(
            restore_region(arn, arn_region(arn), None).expect("region").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            restore_region("orders", None, Some("us-east-1"))
                .expect("region")
                .as_deref(),
            Some("us-east-1")
        );
        assert!(matches!(
            restore_region(arn, arn_region(arn), Some("us-east-1")),
            Err(RecoveryError::RegionMismatch { .. })
        ));
    }
}
