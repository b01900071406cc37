//! What the scheduled restore tests' state machine works through: RDS, the
//! checks' databases, the snapshot checks and the clock ([`RestoreTestEnv`],
//! [`RdsRestoreTests`] in production) and the catalog ([`RestoreTestStore`],
//! [`SnapshotChecks`] in production); the unit tests script both.

use std::future::Future;

use jiff::Timestamp;

use super::state::RestoreTestState;
use crate::catalog::CatalogError;
use crate::plan::{Plan, RestoreTestPlan};
use crate::rds::{Rds, RdsError, RestoreRequest};
use crate::snapshot::checks::Observed;
use crate::snapshot::error::SnapshotOpsError;
use crate::snapshot::observe::observe;
use crate::snapshot::records::{SnapshotHistory, SnapshotRecord};
use crate::snapshot::trial_restore::{InstanceState, TAG_RESTORE_TEST};
use crate::snapshot::verifications::{SnapshotChecks, SnapshotVerification};
use crate::validate::{self, Checks, ValidateError, ValidationReport};

/// The tag a scheduled restore test's instance carries besides
/// [`TAG_RESTORE_TEST`] (the plan): the orphan sweep deletes only instances
/// with both, never one an operator's `lifeboat snapshots verify
/// --restore-test CHECKS` is using.
pub const TAG_SCHEDULED: &str = "lifeboat:restore-test-plan";

/// Everything outside the state machine: RDS, the checks' databases, the
/// snapshot checks and the clock. [`RdsRestoreTests`] in production,
/// scripts in the unit tests.
pub trait RestoreTestEnv {
    fn now(&self) -> Timestamp;
    fn restore(
        &self,
        snapshot: &SnapshotRecord,
        instance: &str,
        test: &RestoreTestPlan,
    ) -> impl Future<Output = Result<(), RdsError>> + Send;
    /// The instance's status and endpoint; `None` if it does not exist.
    fn status(
        &self,
        region: &str,
        instance: &str,
    ) -> impl Future<Output = Result<Option<InstanceState>, RdsError>> + Send;
    /// Deletes the instance without a final snapshot; `false` if it was gone.
    fn delete(&self, region: &str, instance: &str) -> impl Future<Output = Result<bool, RdsError>> + Send;
    /// The instances of `region` tagged [`TAG_RESTORE_TEST`] and
    /// [`TAG_SCHEDULED`]: (identifier, status).
    fn tagged_instances(&self, region: &str) -> impl Future<Output = Result<Vec<(String, String)>, RdsError>> + Send;
    /// The snapshot in its region and copy regions (`super::verify`).
    fn observe(
        &self,
        history: &SnapshotHistory,
        plan: &Plan,
    ) -> impl Future<Output = Result<Observed, SnapshotOpsError>> + Send;
    fn run_checks(
        &self,
        url: &str,
        checks: &Checks,
    ) -> impl Future<Output = Result<ValidationReport, ValidateError>> + Send;
}

/// The catalog side: the states, the snapshots, the verifications.
pub trait RestoreTestStore {
    fn states(&self) -> impl Future<Output = Result<Vec<RestoreTestState>, CatalogError>> + Send;
    /// Writes `state` if the stored version is `expected` (`None`: no item
    /// yet); `false` if another run wrote first.
    fn save(
        &self,
        state: &RestoreTestState,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<bool, CatalogError>> + Send;
    fn histories(&self, plans: &[Plan]) -> impl Future<Output = Result<Vec<SnapshotHistory>, CatalogError>> + Send;
    fn record(&self, verification: &SnapshotVerification) -> impl Future<Output = Result<(), CatalogError>> + Send;
}

/// Production: RDS through `crate::rds` (the primary region's client), the
/// checks through psql / mariadb.
#[derive(Clone, Debug)]
pub struct RdsRestoreTests(pub Rds);

impl RestoreTestEnv for RdsRestoreTests {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    async fn restore(&self, snapshot: &SnapshotRecord, instance: &str, test: &RestoreTestPlan) -> Result<(), RdsError> {
        let tags = [
            (TAG_RESTORE_TEST, snapshot.snapshot_id.as_str()),
            (TAG_SCHEDULED, snapshot.plan.as_str()),
        ];
        self.0
            .in_region(&snapshot.region)
            .restore_snapshot(&RestoreRequest {
                instance,
                snapshot: &snapshot.snapshot_id,
                instance_class: Some(&test.instance_class),
                subnet_group: test.subnet_group.as_deref(),
                security_groups: &test.security_groups,
                publicly_accessible: Some(false),
                tags: &tags,
            })
            .await
    }

    async fn status(&self, region: &str, instance: &str) -> Result<Option<InstanceState>, RdsError> {
        Ok(self.0.in_region(region).instance(instance).await?.map(|i| {
            let endpoint = i.endpoint.zip(i.port);
            (i.status, endpoint)
        }))
    }

    async fn delete(&self, region: &str, instance: &str) -> Result<bool, RdsError> {
        self.0.in_region(region).delete_instance(instance).await
    }

    async fn tagged_instances(&self, region: &str) -> Result<Vec<(String, String)>, RdsError> {
        Ok(self
            .0
            .in_region(region)
            .instances()
            .await?
            .iter()
            .filter(|db| {
                let tagged = |key: &str| db.tag_list().iter().any(|t| t.key() == Some(key));
                tagged(TAG_RESTORE_TEST) && tagged(TAG_SCHEDULED)
            })
            .filter_map(|db| {
                Some((
                    db.db_instance_identifier()?.to_owned(),
                    db.db_instance_status().unwrap_or_default().to_owned(),
                ))
            })
            .collect())
    }

    async fn observe(&self, history: &SnapshotHistory, plan: &Plan) -> Result<Observed, SnapshotOpsError> {
        observe(&self.0, history, plan).await
    }

    async fn run_checks(&self, url: &str, checks: &Checks) -> Result<ValidationReport, ValidateError> {
        validate::run(url, checks).await
    }
}

impl RestoreTestStore for SnapshotChecks {
    async fn states(&self) -> Result<Vec<RestoreTestState>, CatalogError> {
        self.restore_test_states().await
    }

    async fn save(&self, state: &RestoreTestState, expected: Option<u64>) -> Result<bool, CatalogError> {
        self.save_restore_test_state(state, expected).await
    }

    async fn histories(&self, plans: &[Plan]) -> Result<Vec<SnapshotHistory>, CatalogError> {
        SnapshotChecks::histories(self, plans).await
    }

    async fn record(&self, verification: &SnapshotVerification) -> Result<(), CatalogError> {
        SnapshotChecks::record(self, verification).await
    }
}
