//! Disaster recovery of RDS databases across two regions, driven by a DR
//! plan ([`plan`], README.md "Disaster-recovery plans"): failover, failback
//! and drills, the types they share, and their errors.
//!
//! Every change is two calls: `inspect_*` ([`inspect`]) reads the world and
//! returns what would be done and the RPO it would cost (`--dry-run` prints
//! only that); `run_*` does it as a recovery job (`crate::jobs`) whose steps
//! are named per database (`orders/promote`, `orders/wait`,
//! `orders/validate`, `orders/dns`), so an interrupted run resumes where it
//! stopped and a finished one, run again, finds nothing to do.
//!
//! - **failover** ([`failover`]): per database, promote the cross-region
//!   read replica (strategy `replica`) or restore the newest snapshot copied
//!   to the DR region (strategy `snapshot`); wait until it is available; run
//!   its checks (`crate::validate`); stop the old primary if the primary
//!   region answers, else report it NOT fenced ([`fence`]); UPSERT its
//!   Route 53 records to the new endpoint (or the plan's explicit target).
//!   It adopts an instance already under the DR name only if the plan's
//!   unfinished failover, which it resumes, made it (its `lifeboat:job`
//!   tag); anything else is refused, so a failover after a failback never
//!   switches DNS to the stale DR instance of the one before.
//! - one run per plan: failover, failback and drill hold the plan's lease
//!   (`crate::jobs::JobLease`) while they run; a second run is refused
//!   naming the first, and takes over only a lease whose heartbeat expired.
//! - **failback** ([`failover`]): once the primary region is healthy: create
//!   a read replica of the DR writer in the primary region
//!   (`failback_instance`), wait, promote it, wait, validate, switch the
//!   records back.
//! - **drill** ([`drill`]): in the DR region, under drill names, restore the
//!   newest snapshot (strategy `snapshot`) or create and promote a temporary
//!   replica of the primary (strategy `replica`; the real replica is never
//!   touched), validate, measure, and delete everything it created, whatever
//!   happened. DNS is left alone.
//!
//! The wait, validate and DNS steps and the job runner are [`steps`]'s; the
//! RTO/RPO report is [`report`]'s. RDS calls and waiting are `crate::rds`'s;
//! Route 53 is [`dns`].

pub mod dns;
pub mod drill;
pub mod failover;
mod fence;
pub mod inspect;
pub mod plan;
pub mod report;
mod steps;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use self::dns::{Dns, DnsError};
pub use self::drill::{drill_instance, run_drill};
pub use self::failover::{run_failback, run_failover};
pub use self::inspect::{inspect_drill, inspect_failback, inspect_failover};
use self::plan::{DrPlan, Strategy};
use self::report::{DrReport, Rpo};
use crate::jobs::{JobError, JobKind};
use crate::rds::wait::{WaitError, WaitPolicy};
use crate::rds::{Instance, Rds, RdsError};
use crate::validate;

/// Why a failover, failback or drill could not be inspected or run.
#[derive(Debug, thiserror::Error)]
pub enum DrError {
    #[error(transparent)]
    Plan(#[from] plan::DrPlanError),
    #[error(transparent)]
    Rds(#[from] RdsError),
    #[error(transparent)]
    Dns(#[from] DnsError),
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
/// The tag naming the failover or failback job that created (or promoted)
/// an instance: a later run adopts the instance only if it resumes that job.
pub const JOB_TAG: &str = "lifeboat:job";
/// The tag saying when a job created (or promoted) an instance.
pub const CREATED_AT_TAG: &str = "lifeboat:created-at";
/// The tag a failover puts on the old primary it stopped: the job's id.
pub const FENCED_TAG: &str = "lifeboat:fenced";

/// The tags a job of `plan` puts on an instance it creates or promotes.
pub fn job_tags(plan: &str, job: &str) -> Vec<(&'static str, String)> {
    vec![
        (PLAN_TAG, plan.to_owned()),
        (JOB_TAG, job.to_owned()),
        (CREATED_AT_TAG, crate::times::now_text()),
    ]
}

/// A snapshot a restore can start from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub id: String,
    /// When the data was captured: the original snapshot's creation time
    /// (a copy's own creation time is later, and says nothing about data).
    pub taken_at: String,
}

impl Snapshot {
    /// The data a restore of this snapshot at `at` loses: the time since it was taken.
    pub fn rpo_at(&self, at: Timestamp) -> Rpo {
        let seconds = crate::times::parse(&self.taken_at)
            .map(|taken| at.duration_since(taken).as_secs())
            .unwrap_or_default();
        Rpo::Snapshot {
            snapshot: self.id.clone(),
            taken_at: self.taken_at.clone(),
            seconds,
        }
    }
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
    pub async fn connect(plan: &DrPlan) -> Result<Self, DrError> {
        let load = |region: String| async move {
            crate::aws::load_config(Some(&region))
                .await
                .map_err(|e| DrError::Config {
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
    /// See [`crate::rds::wait::Goal::Promoted`].
    pub settle_polls: u32,
    /// Abandon the plan's unfinished failover (failback) job instead of
    /// resuming it, and start anew from a fresh preflight.
    pub restart: bool,
    /// How long the plan's lease (one running job per plan) holds without a
    /// heartbeat; it is renewed every third of that.
    pub lease_ttl: std::time::Duration,
    /// How long a failover tries to fence the old primary before it reports
    /// it NOT fenced and goes on (the primary region may be down).
    pub fence_timeout: std::time::Duration,
}

impl DrOptions {
    /// What a run waits for: a promoted writer (`promoted`), or an available instance.
    pub fn goal(&self, promoted: bool) -> crate::rds::wait::Goal {
        if promoted {
            crate::rds::wait::Goal::Promoted {
                settle_polls: self.settle_polls,
            }
        } else {
            crate::rds::wait::Goal::Available
        }
    }
}

impl Default for DrOptions {
    fn default() -> Self {
        Self {
            wait: WaitPolicy::default(),
            settle_polls: 3,
            restart: false,
            lease_ttl: std::time::Duration::from_secs(120),
            fence_timeout: std::time::Duration::from_secs(60),
        }
    }
}

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

/// What a failover, failback or drill runs: the plan, as `inspection` found
/// it, in `regions`, recorded as a job in `jobs`.
#[derive(Clone, Copy)]
pub struct DrRequest<'a> {
    pub regions: &'a Regions,
    pub jobs: &'a crate::jobs::Jobs,
    pub plan: &'a plan::DrPlan,
    pub inspection: &'a DrInspection,
    pub options: DrOptions,
}

/// The outcome of a run: its report (also stored in the job record), and
/// the error that stopped it, if any.
#[derive(Debug)]
pub struct DrRun {
    pub report: DrReport,
    pub resumed: bool,
    pub error: Option<DrError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn state(action: Action) -> DatabaseState {
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
}
