//! The steps failover, failback and drill share, and the job around them:
//! a job step with its error flattened, the preflight that records the
//! inspection, the `DB/wait`, `DB/validate` and `DB/dns` steps, a snapshot
//! restore under the plan's settings, the report built from the job's
//! steps, and [`run_switch`], the job runner of a failover or failback.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::dns::{Dns, RecordSwitch};
use super::plan::{DrDatabase, DrPlan};
use super::report::{seconds_between, DatabaseReport, DrReport, Outcome, Rpo};
use super::{Action, DatabaseState, DrError, DrInspection, DrOptions, DrRequest, DrRun, Regions, Snapshot};
use crate::jobs::{Job, JobKind, JobLease, JobRecord, Jobs, StepError, StepRecord, StepStatus};
use crate::rds::wait::{wait_for, Goal, Observed};
use crate::rds::{Rds, RestoreRequest};
use crate::validate::{self, ValidationReport};

/// Runs a step of `job`, flattening its error.
pub(super) async fn step<T, F, Fut>(job: &mut Job, name: &str, f: F) -> Result<T, DrError>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, DrError>>,
{
    job.step(name, f).await.map_err(|e| match e {
        StepError::Job { error, .. } => DrError::Job(error),
        other => DrError::Step(other.to_string()),
    })
}

/// What the promote/restore/replicate step records.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ActionDone {
    pub instance: String,
    pub at: String,
    pub snapshot: Option<Snapshot>,
    pub note: Option<String>,
}

impl ActionDone {
    /// `instance` acted on now.
    pub fn now(instance: &str, snapshot: Option<Snapshot>, note: Option<String>) -> Self {
        Self {
            instance: instance.to_owned(),
            at: crate::times::now_text(),
            snapshot,
            note,
        }
    }
}

/// Restores `snapshot` as `instance` in `rds`'s region, with `db`'s
/// instance class, subnet group and security groups.
pub(super) async fn restore_snapshot(
    rds: &Rds,
    db: &DrDatabase,
    instance: &str,
    snapshot: &Snapshot,
    tags: &[(&str, &str)],
) -> Result<(), DrError> {
    rds.restore_snapshot(&RestoreRequest {
        instance,
        snapshot: &snapshot.id,
        instance_class: db.instance_class.as_deref(),
        subnet_group: db.subnet_group.as_deref(),
        security_groups: &db.security_groups,
        tags,
        ..RestoreRequest::default()
    })
    .await?;
    Ok(())
}

/// Where a failover (or failback) of one database ends up.
pub(super) struct Target<'a> {
    pub rds: &'a Rds,
    pub instance: &'a str,
    pub failback: bool,
}

/// `DB/wait-replica`: until the new replica `instance` is available.
pub(super) async fn wait_replica(
    job: &mut Job,
    rds: &Rds,
    instance: &str,
    db: &DrDatabase,
    options: DrOptions,
) -> Result<(), DrError> {
    step(job, &format!("{}/wait-replica", db.name), || async {
        Ok(wait_for(rds, instance, Goal::Available, options.wait, |_| {}).await?)
    })
    .await
    .map(|_: Observed| ())
}

/// `DB/wait` until `instance` reaches `goal`, then `DB/validate` (with
/// checks); what the wait saw.
pub(super) async fn wait_validate(
    job: &mut Job,
    rds: &Rds,
    instance: &str,
    db: &DrDatabase,
    goal: Goal,
    options: DrOptions,
) -> Result<Observed, DrError> {
    let seen: Observed = step(job, &format!("{}/wait", db.name), || async {
        Ok(wait_for(rds, instance, goal, options.wait, |_| {}).await?)
    })
    .await?;
    if db.checks.is_some() {
        step(job, &format!("{}/validate", db.name), || validate_db(db, &seen)).await?;
    }
    Ok(seen)
}

/// A switch's last steps for one database: `DB/wait` until the target
/// reaches `goal`, `DB/validate` (with checks), `DB/fence` (failover:
/// [`super::fence`]), `DB/dns` (with records).
pub(super) async fn wait_validate_switch(
    job: &mut Job,
    regions: &Regions,
    db: &DrDatabase,
    target: Target<'_>,
    goal: Goal,
    options: DrOptions,
) -> Result<(), DrError> {
    let seen = wait_validate(job, target.rds, target.instance, db, goal, options).await?;
    if !target.failback {
        super::fence::fence_primary(job, &regions.primary, db, options.fence_timeout).await?;
    }
    if !db.records.is_empty() {
        step(job, &format!("{}/dns", db.name), || {
            switch_records(&regions.dns, db, seen.endpoint.as_deref(), target.failback)
        })
        .await?;
    }
    Ok(())
}

async fn validate_db(db: &DrDatabase, seen: &Observed) -> Result<Option<ValidationReport>, DrError> {
    let Some(checks) = &db.checks else {
        return Ok(None);
    };
    let url = if checks.uses_endpoint() {
        let host = seen.endpoint.as_deref().ok_or_else(|| DrError::State {
            database: db.name.clone(),
            message: "the instance has no endpoint to run the checks against".into(),
        })?;
        checks.url_for(host, seen.port.unwrap_or(5432))
    } else {
        checks.url.clone()
    };
    let report = validate::run(&url, checks).await.map_err(|error| DrError::Validate {
        database: db.name.clone(),
        error: Box::new(error),
    })?;
    match report.failure_message() {
        Some(message) => Err(DrError::Validation {
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
) -> Result<Vec<RecordSwitch>, DrError> {
    let mut switches = Vec::new();
    for record in &db.records {
        let explicit = if failback {
            record.failback_target.as_deref()
        } else {
            record.target.as_deref()
        };
        let target = explicit.or(endpoint).ok_or_else(|| DrError::State {
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
pub(super) fn build_report(
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
        .map(|state| database_report(record, plan, state))
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
        notes: Vec::new(),
    }
}

/// The steps of one database in a job record.
struct DatabaseSteps<'a> {
    record: &'a JobRecord,
    database: &'a str,
}

impl<'a> DatabaseSteps<'a> {
    fn get(&self, suffix: &str) -> Option<&'a StepRecord> {
        self.record.step(&format!("{}/{suffix}", self.database))
    }

    fn done(&self, suffix: &str) -> Option<&'a StepRecord> {
        self.get(suffix).filter(|s| s.status == StepStatus::Done)
    }

    /// The output of step `DB/suffix`, if it is done and reads as `T`.
    fn output<T: DeserializeOwned>(&self, suffix: &str) -> Option<T> {
        self.done(suffix)
            .and_then(|s| serde_json::from_value(s.output.clone()).ok())
    }

    /// What the promote, restore or replicate step did.
    fn action(&self) -> Option<ActionDone> {
        ["promote", "restore", "replicate"]
            .iter()
            .find_map(|s| self.done(s))
            .and_then(|s| serde_json::from_value(s.output.clone()).ok())
    }

    /// When the database was ready: validated (with checks) or available.
    fn ready_at(&self, plan: &DrPlan) -> Option<String> {
        let checked = plan
            .databases
            .iter()
            .find(|d| d.name == self.database)
            .is_some_and(|d| d.checks.is_some());
        self.done(if checked { "validate" } else { "wait" })
            .and_then(|s| s.finished_at.clone())
    }

    /// Where its RTO is measured from: the job's start, or for a drill
    /// (which runs the databases one after the other) its own first step.
    fn origin(&self) -> String {
        let prefix = format!("{}/", self.database);
        if self.record.kind == JobKind::Drill {
            self.record
                .steps
                .iter()
                .find(|s| s.name.starts_with(&prefix))
                .map(|s| s.started_at.clone())
                .unwrap_or_else(|| self.record.started_at.clone())
        } else {
            self.record.started_at.clone()
        }
    }

    /// What the report says besides figures: work already done, the
    /// action's note, the teardown, each failed step.
    fn notes(&self, state: &DatabaseState, action: Option<&ActionDone>) -> Vec<String> {
        let mut notes = Vec::new();
        if state.action == Action::Done {
            notes.push("already done before this run: nothing to do".to_owned());
        }
        if let Some(note) = action.and_then(|a| a.note.clone()) {
            notes.push(note);
        }
        if let Some(teardown) = self.output::<String>("teardown") {
            notes.push(teardown);
        }
        let prefix = format!("{}/", self.database);
        for failed in self
            .record
            .steps
            .iter()
            .filter(|s| s.name.starts_with(&prefix) && s.status == StepStatus::Failed)
        {
            notes.push(format!(
                "step {} failed: {}",
                failed.name,
                failed.error.as_deref().unwrap_or("no error recorded")
            ));
        }
        notes
    }
}

/// One database's part of the report.
fn database_report(record: &JobRecord, plan: &DrPlan, state: &DatabaseState) -> DatabaseReport {
    let steps = DatabaseSteps {
        record,
        database: &state.name,
    };
    let seen: Option<Observed> = steps.output("wait");
    let ready = steps.ready_at(plan);
    let rto_seconds = ready.as_deref().and_then(|r| seconds_between(&steps.origin(), r));
    let action = steps.action();
    // A snapshot's RPO runs to the restore, not to the inspection.
    let rpo = match (&state.rpo, &action) {
        (
            Some(Rpo::Snapshot { .. }),
            Some(ActionDone {
                snapshot: Some(snapshot),
                at,
                ..
            }),
        ) => Some(snapshot.rpo_at(crate::times::parse(at).unwrap_or_else(|_| crate::times::now()))),
        (rpo, _) => rpo.clone(),
    };
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
        validation: steps.output("validate"),
        records: steps.output("dns").unwrap_or_default(),
        fence: steps.output("fence").unwrap_or_default(),
        notes: steps.notes(state, action.as_ref()),
    }
}

/// Ends the job with its report (`notes` on the run as a whole):
/// finished, failed (resumable), or abandoned.
pub(super) async fn conclude(
    job: Job,
    plan: &DrPlan,
    inspection: &DrInspection,
    error: Option<DrError>,
    resumable: bool,
    notes: &[String],
) -> Result<DrRun, DrError> {
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
        crate::times::now_text(),
    );
    let mut report = report;
    report.notes = notes.to_vec();
    let value = serde_json::to_value(&report).ok();
    let record = match &error {
        None => job.finish(value).await?,
        Some(e) if resumable => job.fail(&e.to_string()).await?,
        Some(e) => job.abandon(&e.to_string()).await?,
    };
    report.steps = record.steps;
    if let Some(finished) = record.finished_at {
        report.finished_at = finished;
    }
    Ok(DrRun { report, resumed, error })
}

/// The inspection a job works from: recorded by its first run, reused when resumed.
pub(super) async fn preflight(job: &mut Job, inspection: &DrInspection) -> Result<DrInspection, DrError> {
    let fresh = inspection.clone();
    let recorded: DrInspection = step(job, "preflight", || async move {
        let problems = fresh.problems();
        if problems.is_empty() {
            Ok(fresh)
        } else {
            Err(DrError::Blocked {
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
async fn open_job(jobs: &Jobs, kind: JobKind, plan: &DrPlan, restart: bool) -> Result<Job, DrError> {
    let job = jobs.resume_or_start(kind, &plan.name).await?;
    if !(restart && job.resumed()) {
        return Ok(job);
    }
    let abandoned = job.id().to_owned();
    job.abandon("abandoned by a run with --restart").await?;
    tracing::info!(job = %abandoned, "unfinished job abandoned; starting anew");
    Ok(jobs.resume_or_start(kind, &plan.name).await?)
}

/// The plan's lease for a run of `kind` (one running job per plan), and
/// the report's note when it replaced a stale lease.
pub(super) async fn take_lease(
    jobs: &Jobs,
    kind: JobKind,
    plan: &DrPlan,
    options: DrOptions,
) -> Result<(JobLease, Vec<String>), DrError> {
    let lease = jobs.acquire_lease(kind, &plan.name, options.lease_ttl).await?;
    let notes = lease
        .took_over()
        .map(|stale| {
            format!(
                "took over the lease of plan {} from {}, whose heartbeat stopped at {} (expired {}): that run is presumed dead",
                plan.name,
                stale.describe(),
                stale.heartbeat_at,
                stale.expires_at
            )
        })
        .into_iter()
        .collect();
    Ok((lease, notes))
}

/// Gives the plan's lease back; a failure only delays the next run until it expires.
pub(super) async fn give_back(lease: JobLease) {
    if let Err(error) = lease.release().await {
        tracing::warn!(%error, "could not release the plan's lease; it expires by itself");
    }
}

/// A failover or a failback as a job of `kind`, under the plan's lease:
/// `steps` (which return the inspection the job recorded), stopped where
/// they stand when `interrupted` completes first or the lease is lost, and
/// the report.
pub(super) async fn run_switch<S>(
    kind: JobKind,
    request: &DrRequest<'_>,
    interrupted: impl Future<Output = ()>,
    steps: S,
) -> Result<DrRun, DrError>
where
    S: AsyncFnOnce(&mut Job) -> Result<DrInspection, DrError>,
{
    let (mut lease, notes) = take_lease(request.jobs, kind, request.plan, request.options).await?;
    let run = switch_leased(kind, request, interrupted, steps, &mut lease, &notes).await;
    give_back(lease).await;
    run
}

async fn switch_leased<S>(
    kind: JobKind,
    request: &DrRequest<'_>,
    interrupted: impl Future<Output = ()>,
    steps: S,
    lease: &mut JobLease,
    notes: &[String],
) -> Result<DrRun, DrError>
where
    S: AsyncFnOnce(&mut Job) -> Result<DrInspection, DrError>,
{
    let DrRequest {
        jobs,
        plan,
        inspection,
        options,
        ..
    } = *request;
    let mut job = open_job(jobs, kind, plan, options.restart).await?;
    lease.attach(job.id()).await?;
    if !job.resumed() && inspection.nothing_to_do() {
        return conclude(job, plan, inspection, None, true, notes).await;
    }
    let result = tokio::select! {
        result = steps(&mut job) => result,
        () = interrupted => Err(DrError::Interrupted),
        lost = lease.keep() => Err(DrError::Job(lost)),
    };
    let (inspection, error) = match result {
        Ok(recorded) => (recorded, None),
        Err(e) => (inspection.clone(), Some(e)),
    };
    conclude(job, plan, &inspection, error, true, notes).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dr::plan::Strategy;
    use crate::dr::tests::state;

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
        let plan = crate::dr::plan::parse(text, "dr.toml", std::path::Path::new(".")).expect("plan");
        let snapshot = Snapshot {
            id: "billing-copy".into(),
            taken_at: "2026-11-23T09:00:00Z".into(),
        };
        let mut db = state(Action::Restore {
            snapshot: snapshot.clone(),
        });
        db.name = "billing".into();
        db.strategy = Strategy::Snapshot;
        db.rpo = Some(snapshot.rpo_at("2026-11-23T10:30:00Z".parse().expect("time")));
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
}
