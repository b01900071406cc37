//! The RDS and KMS calls of the snapshot run, behind the [`SnapshotApi`]
//! trait, and its implementation for [`Rds`] (the AWS SDK); tests script what
//! the emulator cannot show (a snapshot that stays `creating`, a copy that
//! fails, throttling).

use std::future::Future;

use crate::rds::{DbResource, Rds, RdsError, ResourceKind, SnapshotState};

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

/// Production: the calls made with the AWS SDK through [`Rds`].
impl SnapshotApi for Rds {
    fn region(&self) -> &str {
        Rds::region(self)
    }

    async fn list_resources(&self) -> Result<Vec<DbResource>, RdsError> {
        self.resources().await
    }

    async fn find_resource(&self, id: &str, kind: Option<ResourceKind>) -> Result<DbResource, RdsError> {
        Rds::find_resource(self, id, kind).await
    }

    async fn create_snapshot(
        &self,
        resource: &DbResource,
        snapshot_id: &str,
        tags: &[(String, String)],
    ) -> Result<SnapshotState, RdsError> {
        Rds::create_snapshot(self, resource, snapshot_id, tags).await
    }

    async fn describe_snapshot(
        &self,
        region: &str,
        kind: ResourceKind,
        snapshot_id: &str,
    ) -> Result<Option<SnapshotState>, RdsError> {
        self.in_region(region).snapshot(kind, snapshot_id).await
    }

    async fn copy_snapshot(
        &self,
        region: &str,
        kind: ResourceKind,
        source_arn: &str,
        target_id: &str,
        kms_key: &str,
        tags: &[(String, String)],
    ) -> Result<SnapshotState, RdsError> {
        Rds::copy_snapshot(self, region, kind, source_arn, target_id, kms_key, tags).await
    }

    async fn check_key(&self, region: &str, kms_key: &str) -> Result<(), RdsError> {
        Rds::check_key(self, region, kms_key).await
    }
}
