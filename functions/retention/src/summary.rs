//! The function's answer to one request.

use lifeboat::expire::ExpirySummary;
use lifeboat::gc::GcReport;
use lifeboat::retention::RetentionPlan;
use lifeboat::snapshot::retention::{SnapshotExpirySummary, SnapshotRetentionPlan};
use serde::Serialize;

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSummary {
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<RetentionPlan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_plan: Option<SnapshotRetentionPlan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_expiry: Option<SnapshotExpirySummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry: Option<ExpirySummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub garbage: Option<GcReport>,
}
