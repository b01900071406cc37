//! The RDS and KMS calls of the snapshot run, behind the [`SnapshotApi`]
//! trait: [`crate::rds::Rds`] makes them with the AWS SDK; tests script what
//! the emulator cannot show (a snapshot that stays `creating`, a copy that
//! fails, throttling).

use std::future::Future;

use crate::rds::{DbResource, RdsError, ResourceKind, SnapshotState};

/// The calls the snapshot run makes. `region` names the region a call goes
/// to; resources and new snapshots are always in the primary region.
pub trait SnapshotApi: Sync {
    /// The primary region.
    fn region(&self) -> &str;

    /// Every DB instance and DB cluster of the primary region, with tags.
    fn list_resources(&self) -> impl Future<Output = Result<Vec<DbResource>, RdsError>> + Send;

    /// One DB instance or cluster by identifier; `kind` `None` tries an
    /// instance first, then a cluster. The error is a "not found" one when
    /// there is none.
    fn find_resource(
        &self,
        id: &str,
        kind: Option<ResourceKind>,
    ) -> impl Future<Output = Result<DbResource, RdsError>> + Send;

    /// Starts a manual snapshot of a resource with tags.
    fn create_snapshot(
        &self,
        resource: &DbResource,
        snapshot_id: &str,
        tags: &[(String, String)],
    ) -> impl Future<Output = Result<SnapshotState, RdsError>> + Send;

    /// A snapshot's state in `region`; `None` if there is no such snapshot.
    fn describe_snapshot(
        &self,
        region: &str,
        kind: ResourceKind,
        snapshot_id: &str,
    ) -> impl Future<Output = Result<Option<SnapshotState>, RdsError>> + Send;

    /// Starts a copy of `source_arn` (in the primary region) into `region`
    /// as `target_id`, re-encrypted with `kms_key` (a key of `region`).
    fn copy_snapshot(
        &self,
        region: &str,
        kind: ResourceKind,
        source_arn: &str,
        target_id: &str,
        kms_key: &str,
        tags: &[(String, String)],
    ) -> impl Future<Output = Result<SnapshotState, RdsError>> + Send;

    /// Checks that `kms_key` exists in `region` and is enabled.
    fn check_key(&self, region: &str, kms_key: &str) -> impl Future<Output = Result<(), RdsError>> + Send;
}
