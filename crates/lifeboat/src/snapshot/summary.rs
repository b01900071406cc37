//! What a snapshot run reports: what it did ([`SnapshotSummary`]), each
//! failure ([`SnapshotFailure`]), and what stops it ([`SnapshotError`]).

use serde::Serialize;

use super::records::CopyRecord;
use crate::catalog::CatalogError;
use crate::rds::RdsError;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("listing the DB instances and clusters of {region} failed ({error}): the role needs rds:DescribeDBInstances and rds:DescribeDBClusters there")]
    List { region: String, error: RdsError },
    #[error("no plan named {name:?} in the plan file (it has: {known}): fix the schedule's event or the plan file")]
    UnknownPlan { name: String, known: String },
}

/// One failure of a run: the resource, the snapshot, the region, the error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotFailure {
    pub plan: String,
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// Where it failed; none for a database dump.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub error: String,
}

/// What one run did. Snapshots by identifier; copies as `ID@REGION`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotSummary {
    pub plans: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_time: Option<String>,
    /// Resources the plan selected (ARNs).
    pub selected: Vec<String>,
    /// Snapshots this run started.
    pub created: Vec<String>,
    /// Snapshots an earlier delivery of the same scheduled run started.
    pub already_taken: Vec<String>,
    /// Snapshots RDS still reports as being created.
    pub creating: Vec<String>,
    /// Snapshots that became available (completed) in this run.
    pub completed: Vec<String>,
    pub copies_started: Vec<String>,
    pub copies_in_flight: Vec<String>,
    /// Copies waiting for a free slot in their region, or backing off.
    pub copies_queued: Vec<String>,
    pub copies_completed: Vec<String>,
    /// Backups (ids) of the plan's databases dumped in this run ([`run_plan_dumps`]).
    pub dumps: Vec<String>,
    pub failures: Vec<SnapshotFailure>,
}

impl SnapshotSummary {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

pub(super) fn copy_label(copy: &CopyRecord) -> String {
    format!("{}@{}", copy.snapshot_id, copy.region)
}
