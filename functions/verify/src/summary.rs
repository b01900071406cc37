//! The function's answer to one request.

use lifeboat::snapshot::restore_tests::RestoreTestsReport;
use lifeboat::snapshot::verify::SnapshotVerifyReport;
use lifeboat::verify::sample::SampleReport;
use lifeboat::verify::VerifyReport;
use serde::Serialize;

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifySummary {
    pub verified: usize,
    pub damaged: usize,
    pub reports: Vec<VerifyReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<SampleReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<SnapshotVerifyReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_tests: Option<RestoreTestsReport>,
}
