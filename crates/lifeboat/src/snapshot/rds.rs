//! The RDS and KMS calls of the snapshot run, behind the [`Rds`] trait.
//!
//! [`AwsRds`] makes them with the AWS SDK (the primary region's clients, and
//! one per copy region built from the same configuration). The trait exists
//! so that tests can script what the emulator cannot show: a snapshot that
//! stays `creating`, a copy that fails, throttling.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use aws_config::{Region, SdkConfig};
use serde::{Deserialize, Serialize};

use crate::aws::error_code;

/// A DB instance or an Aurora cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    DbInstance,
    Cluster,
}

/// A database the plan may select, as RDS describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbResource {
    pub kind: ResourceKind,
    pub id: String,
    pub arn: String,
    pub tags: BTreeMap<String, String>,
    /// For a DB instance that is a member of an Aurora cluster: the cluster.
    /// Such instances are snapshotted through their cluster.
    pub cluster: Option<String>,
}

/// What RDS says about one snapshot (a DB snapshot or a cluster snapshot).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotState {
    /// RDS's status: `creating`, `available`, `copying`, `pending`, `failed`, …
    pub status: String,
    pub arn: Option<String>,
    pub kms_key_id: Option<String>,
    pub engine: Option<String>,
}

/// An RDS or KMS error: the AWS error code (when AWS answered) and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RdsError {
    pub code: Option<String>,
    pub message: String,
}

/// Error codes that mean "try again later": throttling and quotas on
/// concurrent work. Errors with no code (timeouts, connection failures) too.
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SnapshotQuotaExceeded",
    "SnapshotQuotaExceededFault",
    "ServiceUnavailable",
    "InternalFailure",
];

const NOT_FOUND_CODES: &[&str] = &[
    "DBInstanceNotFound",
    "DBInstanceNotFoundFault",
    "DBClusterNotFoundFault",
    "DBSnapshotNotFound",
    "DBSnapshotNotFoundFault",
    "DBClusterSnapshotNotFoundFault",
];

const ALREADY_EXISTS_CODES: &[&str] = &[
    "DBSnapshotAlreadyExists",
    "DBSnapshotAlreadyExistsFault",
    "DBClusterSnapshotAlreadyExistsFault",
];

impl RdsError {
    pub fn new(code: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            code: code.map(str::to_owned),
            message: message.into(),
        }
    }

    fn from_sdk<E, R>(error: &aws_sdk_rds::error::SdkError<E, R>) -> Self
    where
        E: aws_sdk_rds::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        let (code, message) = error_code(error);
        Self { code, message }
    }

    fn is(&self, codes: &[&str]) -> bool {
        self.code.as_deref().is_some_and(|c| codes.contains(&c))
    }

    /// Throttled, over a concurrency quota, or unreachable: retry later.
    pub fn is_retryable(&self) -> bool {
        self.code.is_none() || self.is(RETRYABLE_CODES)
    }

    pub fn is_not_found(&self) -> bool {
        self.is(NOT_FOUND_CODES)
    }

    pub fn is_already_exists(&self) -> bool {
        self.is(ALREADY_EXISTS_CODES)
    }
}

impl fmt::Display for RdsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for RdsError {}

/// The calls the snapshot run makes. `region` names the region a call goes
/// to; resources and new snapshots are always in the primary region.
pub trait Rds: Sync {
    /// The primary region.
    fn region(&self) -> &str;

    /// Every DB instance and DB cluster of the primary region, with tags.
    fn list_resources(&self) -> impl Future<Output = Result<Vec<DbResource>, RdsError>> + Send;

    /// One DB instance or cluster by identifier; `kind` `None` tries an
    /// instance first, then a cluster. The error is AWS's when there is none.
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

/// [`Rds`] with the AWS SDK.
#[derive(Clone, Debug)]
pub struct AwsRds {
    config: SdkConfig,
    region: String,
    rds: aws_sdk_rds::Client,
}

impl AwsRds {
    /// `config` must have a region (see `aws::load_config`): the primary one.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            config: config.clone(),
            region: config.region().map(|r| r.to_string()).unwrap_or_default(),
            rds: aws_sdk_rds::Client::new(config),
        }
    }

    fn rds_in(&self, region: &str) -> aws_sdk_rds::Client {
        if region == self.region {
            return self.rds.clone();
        }
        let config = aws_sdk_rds::config::Builder::from(&self.config)
            .region(Region::new(region.to_owned()))
            .build();
        aws_sdk_rds::Client::from_conf(config)
    }

    fn kms_in(&self, region: &str) -> aws_sdk_kms::Client {
        let config = aws_sdk_kms::config::Builder::from(&self.config)
            .region(Region::new(region.to_owned()))
            .build();
        aws_sdk_kms::Client::from_conf(config)
    }

    async fn instance(&self, id: &str) -> Result<DbResource, RdsError> {
        let output = self
            .rds
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
            .map_err(|e| RdsError::from_sdk(&e))?;
        output
            .db_instances()
            .iter()
            .find_map(instance_resource)
            .ok_or_else(|| RdsError::new(Some("DBInstanceNotFound"), format!("DBInstance {id} not found.")))
    }

    async fn cluster(&self, id: &str) -> Result<DbResource, RdsError> {
        let output = self
            .rds
            .describe_db_clusters()
            .db_cluster_identifier(id)
            .send()
            .await
            .map_err(|e| RdsError::from_sdk(&e))?;
        output
            .db_clusters()
            .iter()
            .find_map(cluster_resource)
            .ok_or_else(|| RdsError::new(Some("DBClusterNotFoundFault"), format!("DBCluster {id} not found.")))
    }
}

fn tag_map(tags: &[aws_sdk_rds::types::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
        .collect()
}

fn sdk_tags(tags: &[(String, String)]) -> Vec<aws_sdk_rds::types::Tag> {
    tags.iter()
        .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
        .collect()
}

fn instance_resource(db: &aws_sdk_rds::types::DbInstance) -> Option<DbResource> {
    Some(DbResource {
        kind: ResourceKind::DbInstance,
        id: db.db_instance_identifier()?.to_owned(),
        arn: db.db_instance_arn()?.to_owned(),
        tags: tag_map(db.tag_list()),
        cluster: db.db_cluster_identifier().map(str::to_owned),
    })
}

fn cluster_resource(cluster: &aws_sdk_rds::types::DbCluster) -> Option<DbResource> {
    Some(DbResource {
        kind: ResourceKind::Cluster,
        id: cluster.db_cluster_identifier()?.to_owned(),
        arn: cluster.db_cluster_arn()?.to_owned(),
        tags: tag_map(cluster.tag_list()),
        cluster: None,
    })
}

fn db_snapshot_state(s: &aws_sdk_rds::types::DbSnapshot) -> SnapshotState {
    SnapshotState {
        status: s.status().unwrap_or_default().to_owned(),
        arn: s.db_snapshot_arn().map(str::to_owned),
        kms_key_id: s.kms_key_id().map(str::to_owned),
        engine: s.engine().map(str::to_owned),
    }
}

fn cluster_snapshot_state(s: &aws_sdk_rds::types::DbClusterSnapshot) -> SnapshotState {
    SnapshotState {
        status: s.status().unwrap_or_default().to_owned(),
        arn: s.db_cluster_snapshot_arn().map(str::to_owned),
        kms_key_id: s.kms_key_id().map(str::to_owned),
        engine: s.engine().map(str::to_owned),
    }
}

impl Rds for AwsRds {
    fn region(&self) -> &str {
        &self.region
    }

    async fn list_resources(&self) -> Result<Vec<DbResource>, RdsError> {
        let mut resources = Vec::new();
        let mut instances = self.rds.describe_db_instances().into_paginator().send();
        while let Some(page) = instances.next().await {
            let page = page.map_err(|e| RdsError::from_sdk(&e))?;
            resources.extend(page.db_instances().iter().filter_map(instance_resource));
        }
        let mut clusters = self.rds.describe_db_clusters().into_paginator().send();
        while let Some(page) = clusters.next().await {
            let page = page.map_err(|e| RdsError::from_sdk(&e))?;
            resources.extend(page.db_clusters().iter().filter_map(cluster_resource));
        }
        Ok(resources)
    }

    async fn find_resource(&self, id: &str, kind: Option<ResourceKind>) -> Result<DbResource, RdsError> {
        match kind {
            Some(ResourceKind::DbInstance) => self.instance(id).await,
            Some(ResourceKind::Cluster) => self.cluster(id).await,
            None => match self.instance(id).await {
                Err(instance_error) if instance_error.is_not_found() => {
                    self.cluster(id).await.map_err(|cluster_error| {
                        if cluster_error.is_not_found() {
                            RdsError::new(
                                cluster_error.code.as_deref(),
                                format!("{instance_error}; {cluster_error}"),
                            )
                        } else {
                            cluster_error
                        }
                    })
                }
                other => other,
            },
        }
    }

    async fn create_snapshot(
        &self,
        resource: &DbResource,
        snapshot_id: &str,
        tags: &[(String, String)],
    ) -> Result<SnapshotState, RdsError> {
        match resource.kind {
            ResourceKind::DbInstance => {
                let output = self
                    .rds
                    .create_db_snapshot()
                    .db_instance_identifier(&resource.id)
                    .db_snapshot_identifier(snapshot_id)
                    .set_tags(Some(sdk_tags(tags)))
                    .send()
                    .await
                    .map_err(|e| RdsError::from_sdk(&e))?;
                Ok(output.db_snapshot().map(db_snapshot_state).unwrap_or_default())
            }
            ResourceKind::Cluster => {
                let output = self
                    .rds
                    .create_db_cluster_snapshot()
                    .db_cluster_identifier(&resource.id)
                    .db_cluster_snapshot_identifier(snapshot_id)
                    .set_tags(Some(sdk_tags(tags)))
                    .send()
                    .await
                    .map_err(|e| RdsError::from_sdk(&e))?;
                Ok(output
                    .db_cluster_snapshot()
                    .map(cluster_snapshot_state)
                    .unwrap_or_default())
            }
        }
    }

    async fn describe_snapshot(
        &self,
        region: &str,
        kind: ResourceKind,
        snapshot_id: &str,
    ) -> Result<Option<SnapshotState>, RdsError> {
        let rds = self.rds_in(region);
        let found = match kind {
            ResourceKind::DbInstance => rds
                .describe_db_snapshots()
                .db_snapshot_identifier(snapshot_id)
                .send()
                .await
                .map(|o| o.db_snapshots().first().map(db_snapshot_state))
                .map_err(|e| RdsError::from_sdk(&e)),
            ResourceKind::Cluster => rds
                .describe_db_cluster_snapshots()
                .db_cluster_snapshot_identifier(snapshot_id)
                .send()
                .await
                .map(|o| o.db_cluster_snapshots().first().map(cluster_snapshot_state))
                .map_err(|e| RdsError::from_sdk(&e)),
        };
        match found {
            Err(error) if error.is_not_found() => Ok(None),
            other => other,
        }
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
        let rds = self.rds_in(region);
        // The source is named by its ARN, which carries its region; RDS
        // needs no pre-signed URL for that outside GovCloud.
        match kind {
            ResourceKind::DbInstance => {
                let output = rds
                    .copy_db_snapshot()
                    .source_db_snapshot_identifier(source_arn)
                    .target_db_snapshot_identifier(target_id)
                    .kms_key_id(kms_key)
                    .set_tags(Some(sdk_tags(tags)))
                    .send()
                    .await
                    .map_err(|e| RdsError::from_sdk(&e))?;
                Ok(output.db_snapshot().map(db_snapshot_state).unwrap_or_default())
            }
            ResourceKind::Cluster => {
                let output = rds
                    .copy_db_cluster_snapshot()
                    .source_db_cluster_snapshot_identifier(source_arn)
                    .target_db_cluster_snapshot_identifier(target_id)
                    .kms_key_id(kms_key)
                    .set_tags(Some(sdk_tags(tags)))
                    .send()
                    .await
                    .map_err(|e| RdsError::from_sdk(&e))?;
                Ok(output
                    .db_cluster_snapshot()
                    .map(cluster_snapshot_state)
                    .unwrap_or_default())
            }
        }
    }

    async fn check_key(&self, region: &str, kms_key: &str) -> Result<(), RdsError> {
        let output = self
            .kms_in(region)
            .describe_key()
            .key_id(kms_key)
            .send()
            .await
            .map_err(|e| {
                let (code, message) = error_code(&e);
                RdsError { code, message }
            })?;
        let metadata = output.key_metadata();
        let state = metadata.and_then(|m| m.key_state()).map(|s| s.as_str().to_owned());
        if metadata.is_some_and(|m| m.enabled()) {
            Ok(())
        } else {
            Err(RdsError::new(
                Some("KMSKeyNotAccessibleFault"),
                format!(
                    "KMS key {kms_key} in {region} is not enabled (state {})",
                    state.as_deref().unwrap_or("unknown")
                ),
            ))
        }
    }
}
