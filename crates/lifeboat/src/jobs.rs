//! Recovery jobs: restores, failovers, failbacks and drills, each a record in
//! the catalog with its steps, their timings and outcome.
//!
//! A job runs as named steps ([`Job::step`]). Every step's start and end is
//! written to the catalog before the next begins, so an interrupted job
//! (a crash, a failing step, a closed laptop) leaves an exact account of
//! what was done. Jobs of resumable kinds are reopened by
//! [`Jobs::resume_or_start`]: steps a previous run completed are not run
//! again; their recorded output is handed back instead.
//!
//! Keys in the catalog table (ARCHITECTURE.md, "The catalog table"):
//! - `pk = job#ID`, `sk = job`: the record, as JSON in the `record`
//!   attribute, with `kind`, `subject` and `status` beside it for reading in
//!   the console; listed newest first through GSI `byTime` (`gsi2pk = job`);
//! - `pk = jobopen#KIND#SUBJECT`, `sk = jobopen`: points at the unfinished
//!   job of that kind and subject, which the next run resumes. Claimed with a
//!   condition, so two runs cannot start two jobs for one subject;
//! - `pk = joblease#SUBJECT`, `sk = joblease`: the lease of the one run
//!   working on a subject (a DR plan) now ([`JobLease`]).
//!
//! Invariant (the lease): while a run holds a subject's lease and renews it,
//! no other run starts, resumes or takes over a job of that subject. A
//! lease whose holder stopped renewing it expires after its time to live and
//! is then taken over, atomically (the taking write is conditional on the
//! stale holder and heartbeat), so of two runs taking it at once one wins.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::catalog::{keys, Catalog, CatalogError};
use crate::times;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    RestoreDb,
    RestoreSnapshot,
    Failover,
    Failback,
    Drill,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RestoreDb => "restore_db",
            Self::RestoreSnapshot => "restore_snapshot",
            Self::Failover => "failover",
            Self::Failback => "failback",
            Self::Drill => "drill",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Running,
    Succeeded,
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Running,
    Done,
    Failed,
}

/// One step of a job. Field names are the API's (`--output json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    pub name: String,
    pub status: StepStatus,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// What the step produced (an instance id, an endpoint, a report), as
    /// handed back to a resumed run.
    #[serde(default)]
    pub output: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How many runs of the job started this step.
    pub attempts: u32,
}

/// A recovery job. Field names are the API's (`--output json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    pub id: String,
    pub kind: JobKind,
    /// What the job acts on: a database identifier, a snapshot, a DR plan's name.
    pub subject: String,
    pub status: JobStatus,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub steps: Vec<StepRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<serde_json::Value>,
    /// How many times the job was run (1, plus one per resumption).
    pub runs: u32,
}

impl JobRecord {
    pub fn step(&self, name: &str) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.name == name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("no recovery job {id} in catalog table {table}: list jobs with `lifeboat jobs list`")]
    Unknown { id: String, table: String },
    #[error(
        "another {kind} of {subject} started at the same moment (job {id}): let it finish, or run again to resume it"
    )]
    Busy { kind: JobKind, subject: String, id: String },
    #[error("job {id} was resumed by another run of Lifeboat (run {runs}): this run stopped so that steps are not run twice; follow that run, or run again to take over")]
    TakenOver { id: String, runs: u32 },
    #[error("catalog table {table} holds a recovery job Lifeboat cannot read ({pk}): {message}")]
    Corrupt { table: String, pk: String, message: String },
    #[error(
        "{subject} is busy: {} holds its lease since {} (last heartbeat {}). Let that run finish (follow it with \
         `lifeboat jobs show`), or stop it; if it died, its lease expires at {} and the next run takes over",
        .holder.describe(), .holder.since, .holder.heartbeat_at, .holder.expires_at
    )]
    Leased { subject: String, holder: Box<LeaseRecord> },
    #[error(
        "this run lost the lease of {subject} to {} (its heartbeat could not be written in time): it stopped so \
         that two runs do not act at once; follow that run",
        .holder.describe()
    )]
    LeaseLost { subject: String, holder: Box<LeaseRecord> },
}

/// A step that failed, or a job whose record could not be written.
#[derive(Debug, thiserror::Error)]
pub enum StepError<E: fmt::Display> {
    #[error("step {step} failed: {error}")]
    Step { step: String, error: E },
    #[error("step {step}: {error}")]
    Job { step: String, error: JobError },
}

impl<E: fmt::Display> StepError<E> {
    pub fn step(&self) -> &str {
        match self {
            Self::Step { step, .. } | Self::Job { step, .. } => step,
        }
    }
}

/// The recovery jobs kept in a catalog table (`Catalog::jobs`).
#[derive(Clone, Debug)]
pub struct Jobs {
    catalog: Catalog,
}

impl Catalog {
    /// The recovery jobs kept in this catalog's table.
    pub fn jobs(&self) -> Jobs {
        Jobs::new(self)
    }
}

impl Jobs {
    pub fn new(catalog: &Catalog) -> Self {
        Self {
            catalog: catalog.clone(),
        }
    }

    fn error<E, R>(&self, error: SdkError<E, R>) -> JobError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        JobError::Catalog(self.catalog.error(error))
    }

    /// Starts a new job, whatever else runs.
    pub async fn start(&self, kind: JobKind, subject: &str) -> Result<Job, JobError> {
        let mut job = Job::new(self.clone(), kind, subject, false, None);
        job.save().await?;
        Ok(job)
    }

    /// Resumes the unfinished job of `kind` for `subject`, or starts one.
    /// A resumed job keeps its id, its start time (so its measured duration
    /// covers the interruption) and its completed steps.
    pub async fn resume_or_start(&self, kind: JobKind, subject: &str) -> Result<Job, JobError> {
        let pointer = open_pk(kind, subject);
        if let Some(id) = self.open_job(&pointer).await? {
            match self.get(&id).await {
                Ok(mut record) => {
                    let stored_runs = record.runs;
                    record.status = JobStatus::Running;
                    record.finished_at = None;
                    record.error = None;
                    record.runs += 1;
                    let mut job = Job {
                        jobs: self.clone(),
                        record,
                        resumed: true,
                        open: Some(pointer),
                        stored_runs,
                    };
                    job.save().await?;
                    return Ok(job);
                }
                // The pointer outlived its job (deleted by hand): start afresh.
                Err(JobError::Unknown { .. }) => self.clear_open(&pointer).await?,
                Err(e) => return Err(e),
            }
        }
        let mut job = Job::new(self.clone(), kind, subject, false, Some(pointer.clone()));
        let claimed = self
            .catalog
            .client()
            .put_item()
            .table_name(self.catalog.table())
            .item("pk", AttributeValue::S(pointer.clone()))
            .item("sk", AttributeValue::S(keys::JOB_OPEN_SK.into()))
            .item("jobId", AttributeValue::S(job.record.id.clone()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match claimed {
            Ok(_) => {}
            Err(SdkError::ServiceError(s)) if s.err().is_conditional_check_failed_exception() => {
                let id = self.open_job(&pointer).await?.unwrap_or_default();
                return Err(JobError::Busy {
                    kind,
                    subject: subject.to_owned(),
                    id,
                });
            }
            Err(e) => return Err(self.error(e)),
        }
        job.save().await?;
        Ok(job)
    }

    /// The id of the unfinished job of `kind` for `subject` (the one the next run resumes), if any.
    pub async fn open_job_id(&self, kind: JobKind, subject: &str) -> Result<Option<String>, JobError> {
        self.open_job(&open_pk(kind, subject)).await
    }

    async fn open_job(&self, pointer: &str) -> Result<Option<String>, JobError> {
        let item = self.catalog.get_item(pointer, keys::JOB_OPEN_SK).await?;
        Ok(item.and_then(|i| i.get("jobId").and_then(|v| v.as_s().ok()).cloned()))
    }

    async fn clear_open(&self, pointer: &str) -> Result<(), JobError> {
        self.catalog
            .client()
            .delete_item()
            .table_name(self.catalog.table())
            .key("pk", AttributeValue::S(pointer.to_owned()))
            .key("sk", AttributeValue::S(keys::JOB_OPEN_SK.into()))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    pub async fn get(&self, id: &str) -> Result<JobRecord, JobError> {
        let item = self.catalog.get_item(&keys::job_pk(id), keys::JOB_SK).await?;
        match item {
            Some(item) => self.record_from_item(&item),
            None => Err(JobError::Unknown {
                id: id.to_owned(),
                table: self.catalog.table().to_owned(),
            }),
        }
    }

    /// Jobs, newest first; at most `limit`.
    pub async fn list(&self, limit: Option<usize>) -> Result<Vec<JobRecord>, JobError> {
        let mut pages = self
            .catalog
            .client()
            .query()
            .table_name(self.catalog.table())
            .index_name(keys::BY_TIME)
            .key_condition_expression("gsi2pk = :job")
            .expression_attribute_values(":job", AttributeValue::S(keys::JOB_GSI2PK.into()))
            .scan_index_forward(false)
            .into_paginator()
            .items()
            .send();
        let mut jobs = Vec::new();
        while let Some(item) = pages.next().await {
            jobs.push(self.record_from_item(&item.map_err(|e| self.error(e))?)?);
            if limit.is_some_and(|l| jobs.len() >= l) {
                break;
            }
        }
        Ok(jobs)
    }

    fn record_from_item(&self, item: &HashMap<String, AttributeValue>) -> Result<JobRecord, JobError> {
        let pk = crate::catalog::item_pk(item);
        let corrupt = |message: String| JobError::Corrupt {
            table: self.catalog.table().to_owned(),
            pk: pk.clone(),
            message,
        };
        let text = item
            .get("record")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| corrupt("no record attribute".into()))?;
        serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))
    }
}

/// A subject's lease as the catalog holds it (`joblease#SUBJECT`,
/// `joblease`): who runs a job of the subject now, and until when that
/// run's last heartbeat holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseRecord {
    pub pk: String,
    pub sk: String,
    /// The holding run's random token: its renewals and release are conditional on it.
    pub owner: String,
    /// Who runs it: `cli:USER@HOST` (or `lambda:FUNCTION`).
    pub holder: String,
    pub pid: u32,
    pub kind: JobKind,
    /// The job the run works on, once opened.
    #[serde(default)]
    pub job_id: Option<String>,
    pub since: String,
    pub heartbeat_at: String,
    /// The heartbeat plus the time to live: after it, the lease is stale.
    pub expires_at: String,
}

impl LeaseRecord {
    /// `a failover (job J) run by cli:me@host (pid 7)`.
    pub fn describe(&self) -> String {
        let job = self
            .job_id
            .as_deref()
            .map_or_else(|| "no job opened yet".to_owned(), |id| format!("job {id}"));
        format!("a {} ({job}) run by {} (pid {})", self.kind, self.holder, self.pid)
    }

    /// Whether its holder stopped renewing it in time (an unreadable expiry counts as stale).
    pub fn stale_at(&self, now: jiff::Timestamp) -> bool {
        times::parse(&self.expires_at).map_or(true, |expires| expires < now)
    }
}

/// The lease of the one run acting on a subject ([`Jobs::acquire_lease`]):
/// renewed by [`JobLease::keep`], given back by [`JobLease::release`].
#[derive(Debug)]
pub struct JobLease {
    jobs: Jobs,
    record: LeaseRecord,
    ttl: Duration,
    took_over: Option<LeaseRecord>,
}

impl Jobs {
    /// Takes the lease of `subject` for a run of `kind` that renews it
    /// within `ttl`: when no run holds it, or the holder's lease expired (it
    /// is then taken over: [`JobLease::took_over`] says from whom). A live
    /// lease of another run is [`JobError::Leased`], naming it.
    pub async fn acquire_lease(&self, kind: JobKind, subject: &str, ttl: Duration) -> Result<JobLease, JobError> {
        let pk = keys::job_lease_pk(subject);
        let now = times::now();
        let mut record = LeaseRecord {
            pk: pk.clone(),
            sk: keys::JOB_LEASE_SK.into(),
            owner: format!("{:016x}", rand::random::<u64>()),
            holder: crate::audit::record::actor_from_env(),
            pid: std::process::id(),
            kind,
            job_id: None,
            since: times::format(now),
            heartbeat_at: String::new(),
            expires_at: String::new(),
        };
        record.beat(now, ttl);
        // A few rounds: a lease may be released or taken between our reads.
        for _ in 0..3 {
            let item = self.catalog.to_item(&pk, &record)?;
            if self.catalog.put_new_item(item.clone()).await? {
                return Ok(JobLease::new(self, record, ttl, None));
            }
            let Some(held) = self.catalog.get_item(&pk, keys::JOB_LEASE_SK).await? else {
                continue;
            };
            let held: LeaseRecord = self.catalog.from_item(held)?;
            if !held.stale_at(times::now()) {
                return Err(JobError::Leased {
                    subject: subject.to_owned(),
                    holder: Box::new(held),
                });
            }
            let take = self
                .catalog
                .client()
                .put_item()
                .table_name(self.catalog.table())
                .set_item(Some(item))
                .condition_expression("#owner = :owner AND heartbeatAt = :beat")
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":owner", AttributeValue::S(held.owner.clone()))
                .expression_attribute_values(":beat", AttributeValue::S(held.heartbeat_at.clone()));
            if self.catalog.put_item_if(take).await? {
                tracing::warn!(subject, stale = %held.describe(), "took over a stale lease");
                return Ok(JobLease::new(self, record, ttl, Some(held)));
            }
        }
        let held = self.catalog.get_item(&pk, keys::JOB_LEASE_SK).await?;
        let holder = match held {
            Some(item) => self.catalog.from_item(item)?,
            None => record,
        };
        Err(JobError::Leased {
            subject: subject.to_owned(),
            holder: Box::new(holder),
        })
    }
}

impl LeaseRecord {
    fn beat(&mut self, now: jiff::Timestamp, ttl: Duration) {
        let ttl = jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::MAX);
        self.heartbeat_at = times::format(now);
        self.expires_at = times::format(now.saturating_add(ttl).unwrap_or(jiff::Timestamp::MAX));
    }
}

impl JobLease {
    fn new(jobs: &Jobs, record: LeaseRecord, ttl: Duration, took_over: Option<LeaseRecord>) -> Self {
        Self {
            jobs: jobs.clone(),
            record,
            ttl,
            took_over,
        }
    }

    /// The stale lease this one replaced, if it did.
    pub fn took_over(&self) -> Option<&LeaseRecord> {
        self.took_over.as_ref()
    }

    pub fn record(&self) -> &LeaseRecord {
        &self.record
    }

    /// Records the job this run works on (named to a run refused meanwhile).
    pub async fn attach(&mut self, job_id: &str) -> Result<(), JobError> {
        self.record.job_id = Some(job_id.to_owned());
        self.renew().await
    }

    /// A heartbeat: the lease held for another time to live, if still ours.
    pub async fn renew(&mut self) -> Result<(), JobError> {
        let mut next = self.record.clone();
        next.beat(times::now(), self.ttl);
        let catalog = &self.jobs.catalog;
        let put = catalog
            .client()
            .put_item()
            .table_name(catalog.table())
            .set_item(Some(catalog.to_item(&next.pk, &next)?))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", AttributeValue::S(self.record.owner.clone()));
        if catalog.put_item_if(put).await? {
            self.record = next;
            return Ok(());
        }
        let holder = match catalog.get_item(&next.pk, keys::JOB_LEASE_SK).await? {
            Some(item) => catalog.from_item(item)?,
            None => next,
        };
        Err(JobError::LeaseLost {
            subject: self.subject(),
            holder: Box::new(holder),
        })
    }

    fn subject(&self) -> String {
        self.record
            .pk
            .strip_prefix("joblease#")
            .unwrap_or(&self.record.pk)
            .to_owned()
    }

    /// Renews the lease every third of its time to live, for as long as the
    /// run lasts; returns only when it is lost (taken over by another run
    /// after this one failed to renew it in time).
    pub async fn keep(&mut self) -> JobError {
        loop {
            tokio::time::sleep(self.ttl / 3).await;
            match self.renew().await {
                Ok(()) => {}
                Err(lost @ JobError::LeaseLost { .. }) => return lost,
                // A failed write is tried again; the lease holds until it expires.
                Err(error) => tracing::warn!(%error, "could not renew the lease; trying again"),
            }
        }
    }

    /// Gives the lease back (unless another run took it over meanwhile).
    pub async fn release(self) -> Result<(), JobError> {
        let catalog = &self.jobs.catalog;
        let deleted = catalog
            .client()
            .delete_item()
            .table_name(catalog.table())
            .key("pk", AttributeValue::S(self.record.pk.clone()))
            .key("sk", AttributeValue::S(keys::JOB_LEASE_SK.into()))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", AttributeValue::S(self.record.owner.clone()))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(s)) if s.err().is_conditional_check_failed_exception() => Ok(()),
            Err(e) => Err(self.jobs.error(e)),
        }
    }
}

fn open_pk(kind: JobKind, subject: &str) -> String {
    keys::job_open_pk(&kind.to_string(), subject)
}

fn new_job_id() -> String {
    let stamp = times::now().strftime("%Y%m%dT%H%M%SZ").to_string();
    format!("job-{stamp}-{:08x}", rand::random::<u32>())
}

/// A job being run: its record, written to the catalog at every change.
#[derive(Debug)]
pub struct Job {
    jobs: Jobs,
    record: JobRecord,
    resumed: bool,
    /// The open-job pointer, for resumable jobs.
    open: Option<String>,
    /// `runs` as the catalog holds it. Every write is conditional on it, so
    /// when another process resumes the job (incrementing `runs`), this one's
    /// next write fails and it stops instead of running steps twice.
    stored_runs: u32,
}

impl Job {
    fn new(jobs: Jobs, kind: JobKind, subject: &str, resumed: bool, open: Option<String>) -> Self {
        Self {
            jobs,
            record: JobRecord {
                id: new_job_id(),
                kind,
                subject: subject.to_owned(),
                status: JobStatus::Running,
                started_at: times::now_text(),
                finished_at: None,
                error: None,
                steps: Vec::new(),
                report: None,
                runs: 1,
            },
            resumed,
            open,
            stored_runs: 0,
        }
    }

    pub fn id(&self) -> &str {
        &self.record.id
    }

    pub fn record(&self) -> &JobRecord {
        &self.record
    }

    /// Whether this run continues an interrupted one.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    pub fn step_done(&self, name: &str) -> bool {
        self.record.step(name).is_some_and(|s| s.status == StepStatus::Done)
    }

    /// Runs step `name`, unless an earlier run of this job completed it: then
    /// its recorded output is returned and `f` is not called.
    pub async fn step<T, E, F, Fut>(&mut self, name: &str, f: F) -> Result<T, StepError<E>>
    where
        T: Serialize + DeserializeOwned,
        E: fmt::Display,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let job_error = |error: JobError| StepError::Job {
            step: name.to_owned(),
            error,
        };
        if let Some(done) = self.record.step(name).filter(|s| s.status == StepStatus::Done) {
            match serde_json::from_value(done.output.clone()) {
                Ok(output) => return Ok(output),
                // Recorded by another version of Lifeboat in another shape: run it again.
                Err(e) => tracing::warn!(step = name, error = %e, "recorded output unreadable; running the step again"),
            }
        }
        let started = Instant::now();
        let index = match self.record.steps.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                self.record.steps.push(StepRecord {
                    name: name.to_owned(),
                    status: StepStatus::Running,
                    started_at: String::new(),
                    finished_at: None,
                    duration_ms: None,
                    output: serde_json::Value::Null,
                    error: None,
                    attempts: 0,
                });
                self.record.steps.len() - 1
            }
        };
        {
            let step = &mut self.record.steps[index];
            step.status = StepStatus::Running;
            step.started_at = times::now_text();
            step.finished_at = None;
            step.duration_ms = None;
            step.error = None;
            step.attempts += 1;
        }
        self.save().await.map_err(job_error)?;
        tracing::info!(job = %self.record.id, step = name, "step started");
        let result = f().await;
        let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let step = &mut self.record.steps[index];
        step.finished_at = Some(times::now_text());
        step.duration_ms = Some(elapsed);
        match result {
            Ok(output) => {
                step.status = StepStatus::Done;
                step.output = serde_json::to_value(&output).unwrap_or(serde_json::Value::Null);
                self.save().await.map_err(job_error)?;
                tracing::info!(job = %self.record.id, step = name, elapsed_ms = elapsed, "step done");
                Ok(output)
            }
            Err(error) => {
                step.status = StepStatus::Failed;
                step.error = Some(error.to_string());
                self.save().await.map_err(job_error)?;
                tracing::info!(job = %self.record.id, step = name, %error, "step failed");
                Err(StepError::Step {
                    step: name.to_owned(),
                    error,
                })
            }
        }
    }

    /// The job succeeded. It is no longer resumable.
    pub async fn finish(mut self, report: Option<serde_json::Value>) -> Result<JobRecord, JobError> {
        self.record.status = JobStatus::Succeeded;
        self.record.finished_at = Some(times::now_text());
        self.record.report = report;
        self.save().await?;
        self.close().await?;
        Ok(self.record)
    }

    /// The job failed; a resumable job stays open, so running it again
    /// continues from the failed step.
    pub async fn fail(mut self, error: &str) -> Result<JobRecord, JobError> {
        self.record.status = JobStatus::Failed;
        self.record.finished_at = Some(times::now_text());
        self.record.error = Some(error.to_owned());
        self.save().await?;
        Ok(self.record)
    }

    /// The job failed and must not be resumed (a drill after its teardown).
    pub async fn abandon(mut self, error: &str) -> Result<JobRecord, JobError> {
        self.record.status = JobStatus::Failed;
        self.record.finished_at = Some(times::now_text());
        self.record.error = Some(error.to_owned());
        self.save().await?;
        self.close().await?;
        Ok(self.record)
    }

    async fn close(&self) -> Result<(), JobError> {
        match &self.open {
            Some(pointer) => self.jobs.clear_open(pointer).await,
            None => Ok(()),
        }
    }

    async fn save(&mut self) -> Result<(), JobError> {
        let record = serde_json::to_string(&self.record).map_err(|e| JobError::Corrupt {
            table: self.jobs.catalog.table().to_owned(),
            pk: keys::job_pk(&self.record.id),
            message: e.to_string(),
        })?;
        let status = match self.record.status {
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
        };
        let result = self
            .jobs
            .catalog
            .client()
            .put_item()
            .table_name(self.jobs.catalog.table())
            .item("pk", AttributeValue::S(keys::job_pk(&self.record.id)))
            .item("sk", AttributeValue::S(keys::JOB_SK.into()))
            .item("gsi2pk", AttributeValue::S(keys::JOB_GSI2PK.into()))
            .item(
                "gsi2sk",
                AttributeValue::S(keys::job_order(&self.record.started_at, &self.record.id)),
            )
            .item("kind", AttributeValue::S(self.record.kind.as_str().into()))
            .item("subject", AttributeValue::S(self.record.subject.clone()))
            .item("status", AttributeValue::S(status.into()))
            .item("record", AttributeValue::S(record))
            .item("runs", AttributeValue::N(self.record.runs.to_string()))
            .condition_expression("attribute_not_exists(pk) OR #runs = :stored")
            .expression_attribute_names("#runs", "runs")
            .expression_attribute_values(":stored", AttributeValue::N(self.stored_runs.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => {
                self.stored_runs = self.record.runs;
                Ok(())
            }
            Err(SdkError::ServiceError(s)) if s.err().is_conditional_check_failed_exception() => {
                Err(JobError::TakenOver {
                    id: self.record.id.clone(),
                    runs: self.record.runs,
                })
            }
            Err(e) => Err(self.jobs.error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_stale_only_once_its_expiry_has_passed() {
        let mut lease = LeaseRecord {
            pk: keys::job_lease_pk("prod"),
            sk: keys::JOB_LEASE_SK.into(),
            owner: "0123456789abcdef".into(),
            holder: "cli:me@host".into(),
            pid: 7,
            kind: JobKind::Failover,
            job_id: None,
            since: String::new(),
            heartbeat_at: String::new(),
            expires_at: String::new(),
        };
        let now: jiff::Timestamp = "2026-11-23T10:00:00Z".parse().expect("time");
        lease.beat(now, Duration::from_secs(120));
        assert_eq!(lease.heartbeat_at, "2026-11-23T10:00:00.000Z");
        assert_eq!(lease.expires_at, "2026-11-23T10:02:00.000Z");
        assert!(!lease.stale_at(now + jiff::SignedDuration::from_secs(119)));
        assert!(lease.stale_at(now + jiff::SignedDuration::from_secs(121)));
        lease.expires_at = "garbage".into();
        assert!(lease.stale_at(now), "an unreadable expiry cannot hold a plan forever");
        assert_eq!(
            lease.describe(),
            "a failover (no job opened yet) run by cli:me@host (pid 7)"
        );
    }
}
