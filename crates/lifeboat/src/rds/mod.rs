//! RDS, through one client for every region: what snapshots, restores,
//! restore tests, failovers and drills ask of it, each error naming the call,
//! what it was about and the region ([`RdsError`]).
//!
//! [`Rds`] is one region's client; [`Rds::in_region`] gives another region's
//! from the same configuration. [`wait`] is the one waiter for a database to
//! become usable. The snapshot run reaches RDS through the
//! [`crate::snapshot::SnapshotApi`] trait, implemented here, so its tests can
//! script what the emulator cannot show.

pub mod wait;

use std::collections::BTreeMap;
use std::fmt;

use aws_config::{Region, SdkConfig};
use aws_sdk_rds::types::{DbCluster, DbClusterSnapshot, DbInstance, DbSnapshot, Tag};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::aws::error_code;
use crate::snapshot::SnapshotApi;
use wait::{Observed, Poll, StatusSource, WaitError};

/// A DB instance or an Aurora cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    DbInstance,
    Cluster,
}

impl ResourceKind {
    pub fn describe(self) -> &'static str {
        match self {
            ResourceKind::DbInstance => "DB instance",
            ResourceKind::Cluster => "Aurora cluster",
        }
    }
}

/// A database a plan may select, as RDS describes it.
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
    /// The DB instance or cluster it was taken of.
    pub source: Option<String>,
    /// When this snapshot was created (a copy: when the copy was).
    pub created_at: Option<Timestamp>,
    /// When the data was captured: the original snapshot's creation time.
    pub taken_at: Option<Timestamp>,
}

/// What Lifeboat needs to know of a DB instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub id: String,
    pub arn: String,
    pub status: String,
    pub replica_of: Option<String>,
    pub endpoint: Option<String>,
    pub port: Option<u16>,
    pub engine: Option<String>,
    pub encrypted: bool,
}

/// An RDS (or KMS) error: the AWS error code (when AWS answered) and
/// message, and, for a call this module made, which call on what, where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RdsError {
    pub code: Option<String>,
    pub message: String,
    pub call: Option<Box<RdsCall>>,
}

/// The call an [`RdsError`] came from: e.g. `PromoteReadReplica` on
/// `DB instance orders-dr` in `eu-west-1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RdsCall {
    pub region: String,
    pub action: String,
    pub what: String,
}

impl RdsCall {
    fn boxed(region: &str, action: &str, what: &str) -> Option<Box<Self>> {
        Some(Box::new(Self {
            region: region.to_owned(),
            action: action.to_owned(),
            what: what.to_owned(),
        }))
    }
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
    "DBClusterNotFound",
    "DBClusterNotFoundFault",
    "DBSnapshotNotFound",
    "DBSnapshotNotFoundFault",
    "DBClusterSnapshotNotFoundFault",
    "DBInstanceAutomatedBackupNotFound",
    "DBInstanceAutomatedBackupNotFoundFault",
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
            call: None,
        }
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
        if let Some(call) = &self.call {
            write!(f, "RDS in {}, {} on {}: ", call.region, call.action, call.what)?;
        }
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for RdsError {}

/// One region's RDS (and KMS, for the keys snapshots are encrypted with).
#[derive(Clone, Debug)]
pub struct Rds {
    config: SdkConfig,
    region: String,
    client: aws_sdk_rds::Client,
}

impl Rds {
    /// The client of `config`'s region (see `aws::load_config`).
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            config: config.clone(),
            region: config.region().map(|r| r.to_string()).unwrap_or_default(),
            client: aws_sdk_rds::Client::new(config),
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The SDK client, for calls only one caller makes.
    pub fn client(&self) -> &aws_sdk_rds::Client {
        &self.client
    }

    /// The same configuration's client of another region (this one if it is).
    pub fn in_region(&self, region: &str) -> Rds {
        if region == self.region {
            return self.clone();
        }
        let config = aws_sdk_rds::config::Builder::from(&self.config)
            .region(Region::new(region.to_owned()))
            .build();
        Rds {
            config: self.config.clone(),
            region: region.to_owned(),
            client: aws_sdk_rds::Client::from_conf(config),
        }
    }

    fn kms_in(&self, region: &str) -> aws_sdk_kms::Client {
        let config = aws_sdk_kms::config::Builder::from(&self.config)
            .region(Region::new(region.to_owned()))
            .build();
        aws_sdk_kms::Client::from_conf(config)
    }

    /// The error of `action` on `what` in this region.
    pub fn fail<E, R>(&self, action: &str, what: &str, error: &aws_sdk_rds::error::SdkError<E, R>) -> RdsError
    where
        E: aws_sdk_rds::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        let (code, message) = error_code(error);
        RdsError {
            code,
            message,
            call: RdsCall::boxed(&self.region, action, what),
        }
    }

    /// A DB instance as RDS describes it; `None` if there is none.
    pub async fn describe_instance(&self, id: &str) -> Result<Option<DbInstance>, RdsError> {
        let answer = self
            .client
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await;
        match answer {
            Ok(output) => Ok(output.db_instances().first().cloned()),
            Err(e) => none_if_missing(self.fail("DescribeDBInstances", &format!("DB instance {id}"), &e)),
        }
    }

    /// An Aurora cluster as RDS describes it; `None` if there is none.
    pub async fn describe_cluster(&self, id: &str) -> Result<Option<DbCluster>, RdsError> {
        let answer = self
            .client
            .describe_db_clusters()
            .db_cluster_identifier(id)
            .send()
            .await;
        match answer {
            Ok(output) => Ok(output.db_clusters().first().cloned()),
            Err(e) => none_if_missing(self.fail("DescribeDBClusters", &format!("Aurora cluster {id}"), &e)),
        }
    }

    /// The instance, or `None` if it does not exist.
    pub async fn instance(&self, id: &str) -> Result<Option<Instance>, RdsError> {
        Ok(self.describe_instance(id).await?.map(|i| Instance {
            id: i.db_instance_identifier().unwrap_or(id).to_owned(),
            arn: i.db_instance_arn().unwrap_or_default().to_owned(),
            status: i.db_instance_status().unwrap_or("unknown").to_owned(),
            replica_of: i.read_replica_source_db_instance_identifier().map(str::to_owned),
            endpoint: i.endpoint().and_then(|e| e.address()).map(str::to_owned),
            port: i.endpoint().and_then(|e| e.port()).and_then(|p| u16::try_from(p).ok()),
            engine: i.engine().map(str::to_owned),
            encrypted: i.storage_encrypted().unwrap_or(false),
        }))
    }

    /// Every DB instance of the region.
    pub async fn instances(&self) -> Result<Vec<DbInstance>, RdsError> {
        let mut pages = self.client.describe_db_instances().into_paginator().send();
        let mut all = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.fail("DescribeDBInstances", "the region's DB instances", &e))?;
            all.extend(page.db_instances().iter().cloned());
        }
        Ok(all)
    }

    /// Every Aurora cluster of the region.
    pub async fn clusters(&self) -> Result<Vec<DbCluster>, RdsError> {
        let mut pages = self.client.describe_db_clusters().into_paginator().send();
        let mut all = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.fail("DescribeDBClusters", "the region's Aurora clusters", &e))?;
            all.extend(page.db_clusters().iter().cloned());
        }
        Ok(all)
    }

    pub async fn promote(&self, id: &str) -> Result<(), RdsError> {
        self.client
            .promote_read_replica()
            .db_instance_identifier(id)
            .send()
            .await
            .map_err(|e| self.fail("PromoteReadReplica", &format!("DB instance {id}"), &e))?;
        Ok(())
    }

    /// The newest available DB snapshot of `instance` in this region
    /// (manual copies and automated ones).
    pub async fn newest_snapshot(&self, instance: &str) -> Result<Option<(String, Timestamp)>, RdsError> {
        let mut pages = self
            .client
            .describe_db_snapshots()
            .db_instance_identifier(instance)
            .into_paginator()
            .send();
        let mut newest: Option<(String, Timestamp)> = None;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.fail("DescribeDBSnapshots", &format!("snapshots of {instance}"), &e))?;
            for snapshot in page.db_snapshots().iter().filter(|s| s.status() == Some("available")) {
                let state = db_snapshot_state(snapshot);
                if let (Some(taken), Some(id)) = (state.taken_at, snapshot.db_snapshot_identifier()) {
                    if newest.as_ref().is_none_or(|(_, t)| taken > *t) {
                        newest = Some((id.to_owned(), taken));
                    }
                }
            }
        }
        Ok(newest)
    }

    /// Restores a DB snapshot of this region to a new instance.
    pub async fn restore_snapshot(&self, request: &RestoreRequest<'_>) -> Result<(), RdsError> {
        self.client
            .restore_db_instance_from_db_snapshot()
            .db_instance_identifier(request.instance)
            .db_snapshot_identifier(request.snapshot)
            .set_db_instance_class(request.instance_class.map(str::to_owned))
            .set_db_subnet_group_name(request.subnet_group.map(str::to_owned))
            .set_vpc_security_group_ids((!request.security_groups.is_empty()).then(|| request.security_groups.to_vec()))
            .set_publicly_accessible(request.publicly_accessible)
            .set_tags(Some(tags(request.tags)))
            .send()
            .await
            .map_err(|e| {
                self.fail(
                    "RestoreDBInstanceFromDBSnapshot",
                    &format!("DB instance {} from snapshot {}", request.instance, request.snapshot),
                    &e,
                )
            })?;
        Ok(())
    }

    /// Creates an instance here as a read replica of `source_arn` (another region's instance).
    pub async fn create_replica(&self, request: &ReplicaRequest<'_>) -> Result<(), RdsError> {
        self.client
            .create_db_instance_read_replica()
            .db_instance_identifier(request.instance)
            .source_db_instance_identifier(request.source_arn)
            .set_db_instance_class(request.instance_class.map(str::to_owned))
            .set_kms_key_id(request.kms_key.map(str::to_owned))
            .set_tags(Some(tags(request.tags)))
            .send()
            .await
            .map_err(|e| {
                self.fail(
                    "CreateDBInstanceReadReplica",
                    &format!("DB instance {} replicating {}", request.instance, request.source_arn),
                    &e,
                )
            })?;
        Ok(())
    }

    /// Deletes an instance without a final snapshot (only what Lifeboat
    /// made for a while: drills, restore tests); `false` if it was gone.
    pub async fn delete_instance(&self, id: &str) -> Result<bool, RdsError> {
        let answer = self
            .client
            .delete_db_instance()
            .db_instance_identifier(id)
            .skip_final_snapshot(true)
            .delete_automated_backups(true)
            .send()
            .await;
        match answer {
            Ok(_) => Ok(true),
            Err(e) => none_if_missing(self.fail("DeleteDBInstance", &format!("DB instance {id}"), &e))
                .map(|_: Option<()>| false),
        }
    }

    /// A snapshot's state in this region; `None` if RDS has no such snapshot.
    pub async fn snapshot(&self, kind: ResourceKind, snapshot_id: &str) -> Result<Option<SnapshotState>, RdsError> {
        match kind {
            ResourceKind::DbInstance => {
                let answer = self
                    .client
                    .describe_db_snapshots()
                    .db_snapshot_identifier(snapshot_id)
                    .send()
                    .await;
                match answer {
                    Ok(o) => Ok(o.db_snapshots().first().map(db_snapshot_state)),
                    Err(e) => none_if_missing(self.fail("DescribeDBSnapshots", &format!("snapshot {snapshot_id}"), &e)),
                }
            }
            ResourceKind::Cluster => {
                let answer = self
                    .client
                    .describe_db_cluster_snapshots()
                    .db_cluster_snapshot_identifier(snapshot_id)
                    .send()
                    .await;
                match answer {
                    Ok(o) => Ok(o.db_cluster_snapshots().first().map(cluster_snapshot_state)),
                    Err(e) => none_if_missing(self.fail(
                        "DescribeDBClusterSnapshots",
                        &format!("cluster snapshot {snapshot_id}"),
                        &e,
                    )),
                }
            }
        }
    }

    /// A snapshot of either kind (`kind` `None`: a DB snapshot first, then a
    /// cluster snapshot), with its kind; `None` if there is neither.
    pub async fn find_snapshot(
        &self,
        snapshot_id: &str,
        kind: Option<ResourceKind>,
    ) -> Result<Option<(ResourceKind, SnapshotState)>, RdsError> {
        for candidate in [ResourceKind::DbInstance, ResourceKind::Cluster] {
            if kind.is_none_or(|k| k == candidate) {
                if let Some(state) = self.snapshot(candidate, snapshot_id).await? {
                    return Ok(Some((candidate, state)));
                }
            }
        }
        Ok(None)
    }

    /// Deletes a snapshot in this region; `false` if it was gone already.
    pub async fn delete_snapshot(&self, kind: ResourceKind, snapshot_id: &str) -> Result<bool, RdsError> {
        let what = format!("snapshot {snapshot_id}");
        let result = match kind {
            ResourceKind::DbInstance => self
                .client
                .delete_db_snapshot()
                .db_snapshot_identifier(snapshot_id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.fail("DeleteDBSnapshot", &what, &e)),
            ResourceKind::Cluster => self
                .client
                .delete_db_cluster_snapshot()
                .db_cluster_snapshot_identifier(snapshot_id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.fail("DeleteDBClusterSnapshot", &what, &e)),
        };
        match result {
            Ok(()) => Ok(true),
            Err(error) => none_if_missing(error).map(|_: Option<()>| false),
        }
    }

    /// A KMS key's ARN and whether it is enabled (`key`: id, alias or ARN)
    /// in `region`, as RDS reports the key a snapshot is encrypted with.
    pub async fn key(&self, region: &str, key: &str) -> Result<(String, bool, String), RdsError> {
        let output = self
            .kms_in(region)
            .describe_key()
            .key_id(key)
            .send()
            .await
            .map_err(|e| {
                let (code, message) = error_code(&e);
                RdsError {
                    code,
                    message,
                    call: RdsCall::boxed(region, "kms:DescribeKey", &format!("key {key}")),
                }
            })?;
        let metadata = output.key_metadata().ok_or_else(|| {
            RdsError::new(
                None,
                format!("KMS key {key} in {region}: DescribeKey returned no metadata"),
            )
        })?;
        let state = metadata
            .key_state()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_else(|| "unknown".into());
        Ok((metadata.arn().unwrap_or(key).to_owned(), metadata.enabled(), state))
    }
}

/// `Ok(None)` for a "not found" error, the error otherwise.
fn none_if_missing<T>(error: RdsError) -> Result<Option<T>, RdsError> {
    if error.is_not_found() {
        Ok(None)
    } else {
        Err(error)
    }
}

pub(crate) fn timestamp(time: &aws_smithy_types::DateTime) -> Option<Timestamp> {
    Timestamp::new(time.secs(), i32::try_from(time.subsec_nanos()).ok()?).ok()
}

fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
    pairs
        .iter()
        .map(|(key, value)| Tag::builder().key(*key).value(*value).build())
        .collect()
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
        .collect()
}

/// A restore of a DB snapshot to a new instance.
#[derive(Debug, Default)]
pub struct RestoreRequest<'a> {
    pub instance: &'a str,
    pub snapshot: &'a str,
    pub instance_class: Option<&'a str>,
    pub subnet_group: Option<&'a str>,
    pub security_groups: &'a [String],
    /// `Some(false)` keeps a temporary instance off the internet.
    pub publicly_accessible: Option<bool>,
    pub tags: &'a [(&'a str, &'a str)],
}

/// A cross-region read replica.
#[derive(Debug, Default)]
pub struct ReplicaRequest<'a> {
    pub instance: &'a str,
    pub source_arn: &'a str,
    pub instance_class: Option<&'a str>,
    pub kms_key: Option<&'a str>,
    pub tags: &'a [(&'a str, &'a str)],
}

fn instance_resource(db: &DbInstance) -> Option<DbResource> {
    Some(DbResource {
        kind: ResourceKind::DbInstance,
        id: db.db_instance_identifier()?.to_owned(),
        arn: db.db_instance_arn()?.to_owned(),
        tags: tag_map(db.tag_list()),
        cluster: db.db_cluster_identifier().map(str::to_owned),
    })
}

fn cluster_resource(cluster: &DbCluster) -> Option<DbResource> {
    Some(DbResource {
        kind: ResourceKind::Cluster,
        id: cluster.db_cluster_identifier()?.to_owned(),
        arn: cluster.db_cluster_arn()?.to_owned(),
        tags: tag_map(cluster.tag_list()),
        cluster: None,
    })
}

fn db_snapshot_state(s: &DbSnapshot) -> SnapshotState {
    let created_at = s.snapshot_create_time().and_then(timestamp);
    SnapshotState {
        status: s.status().unwrap_or_default().to_owned(),
        arn: s.db_snapshot_arn().map(str::to_owned),
        kms_key_id: s.kms_key_id().map(str::to_owned),
        engine: s.engine().map(str::to_owned),
        source: s.db_instance_identifier().map(str::to_owned),
        created_at,
        taken_at: s.original_snapshot_create_time().and_then(timestamp).or(created_at),
    }
}

fn cluster_snapshot_state(s: &DbClusterSnapshot) -> SnapshotState {
    let created_at = s.snapshot_create_time().and_then(timestamp);
    SnapshotState {
        status: s.status().unwrap_or_default().to_owned(),
        arn: s.db_cluster_snapshot_arn().map(str::to_owned),
        kms_key_id: s.kms_key_id().map(str::to_owned),
        engine: s.engine().map(str::to_owned),
        source: s.db_cluster_identifier().map(str::to_owned),
        created_at,
        taken_at: created_at,
    }
}

/// One place the snapshot run's [`SnapshotApi`] meets RDS. `region` names
/// the region a call goes to; resources and new snapshots are in this one.
impl SnapshotApi for Rds {
    fn region(&self) -> &str {
        &self.region
    }

    async fn list_resources(&self) -> Result<Vec<DbResource>, RdsError> {
        let mut resources: Vec<DbResource> = self.instances().await?.iter().filter_map(instance_resource).collect();
        resources.extend(self.clusters().await?.iter().filter_map(cluster_resource));
        Ok(resources)
    }

    async fn find_resource(&self, id: &str, kind: Option<ResourceKind>) -> Result<DbResource, RdsError> {
        let missing = |kind: ResourceKind, code: &str| {
            RdsError::new(
                Some(code),
                format!("{} {id} not found in {}.", kind.describe(), self.region),
            )
        };
        if kind != Some(ResourceKind::Cluster) {
            if let Some(resource) = self.describe_instance(id).await?.as_ref().and_then(instance_resource) {
                return Ok(resource);
            }
            if kind == Some(ResourceKind::DbInstance) {
                return Err(missing(ResourceKind::DbInstance, "DBInstanceNotFound"));
            }
        }
        match self.describe_cluster(id).await?.as_ref().and_then(cluster_resource) {
            Some(resource) => Ok(resource),
            None if kind.is_none() => Err(RdsError::new(
                Some("DBInstanceNotFound"),
                format!("no DB instance or Aurora cluster {id} in {}", self.region),
            )),
            None => Err(missing(ResourceKind::Cluster, "DBClusterNotFoundFault")),
        }
    }

    async fn create_snapshot(
        &self,
        resource: &DbResource,
        snapshot_id: &str,
        tags: &[(String, String)],
    ) -> Result<SnapshotState, RdsError> {
        let tags = owned_tags(tags);
        let what = format!("snapshot {snapshot_id} of {}", resource.id);
        match resource.kind {
            ResourceKind::DbInstance => {
                let output = self
                    .client
                    .create_db_snapshot()
                    .db_instance_identifier(&resource.id)
                    .db_snapshot_identifier(snapshot_id)
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map_err(|e| self.fail("CreateDBSnapshot", &what, &e))?;
                Ok(output.db_snapshot().map(db_snapshot_state).unwrap_or_default())
            }
            ResourceKind::Cluster => {
                let output = self
                    .client
                    .create_db_cluster_snapshot()
                    .db_cluster_identifier(&resource.id)
                    .db_cluster_snapshot_identifier(snapshot_id)
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map_err(|e| self.fail("CreateDBClusterSnapshot", &what, &e))?;
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
        let rds = self.in_region(region);
        let tags = owned_tags(tags);
        let what = format!("copy {target_id} of {source_arn}");
        // The source is named by its ARN, which carries its region; RDS
        // needs no pre-signed URL for that outside GovCloud.
        match kind {
            ResourceKind::DbInstance => {
                let output = rds
                    .client
                    .copy_db_snapshot()
                    .source_db_snapshot_identifier(source_arn)
                    .target_db_snapshot_identifier(target_id)
                    .kms_key_id(kms_key)
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map_err(|e| rds.fail("CopyDBSnapshot", &what, &e))?;
                Ok(output.db_snapshot().map(db_snapshot_state).unwrap_or_default())
            }
            ResourceKind::Cluster => {
                let output = rds
                    .client
                    .copy_db_cluster_snapshot()
                    .source_db_cluster_snapshot_identifier(source_arn)
                    .target_db_cluster_snapshot_identifier(target_id)
                    .kms_key_id(kms_key)
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map_err(|e| rds.fail("CopyDBClusterSnapshot", &what, &e))?;
                Ok(output
                    .db_cluster_snapshot()
                    .map(cluster_snapshot_state)
                    .unwrap_or_default())
            }
        }
    }

    async fn check_key(&self, region: &str, kms_key: &str) -> Result<(), RdsError> {
        let (_, enabled, state) = self.key(region, kms_key).await?;
        if enabled {
            Ok(())
        } else {
            Err(RdsError::new(
                Some("KMSKeyNotAccessibleFault"),
                format!("KMS key {kms_key} in {region} is not enabled (state {state})"),
            ))
        }
    }
}

fn owned_tags(pairs: &[(String, String)]) -> Vec<Tag> {
    pairs
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// A read of a status for [`wait::wait_for`]: what RDS answered, a transient
/// error as worth another poll, any other as the end of the wait.
fn poll_outcome(what: String, answer: Result<Option<Observed>, RdsError>) -> Result<Poll, WaitError> {
    match answer {
        Ok(Some(seen)) => Ok(Poll::Seen(seen)),
        Ok(None) => Ok(Poll::NotFound),
        Err(error) if error.is_retryable() => Ok(Poll::Transient(error.to_string())),
        Err(error) => Err(WaitError::Read {
            what,
            message: error.to_string(),
        }),
    }
}

/// Waiting for a DB instance.
impl StatusSource for Rds {
    async fn poll(&self, id: &str) -> Result<Poll, WaitError> {
        let answer = self.instance(id).await.map(|found| {
            found.map(|i| Observed {
                status: i.status,
                replica_of: i.replica_of,
                endpoint: i.endpoint,
                port: i.port,
            })
        });
        poll_outcome(self.describe(id), answer)
    }
}

/// Waiting for an Aurora cluster.
pub struct ClusterStatus<'a>(pub &'a Rds);

impl StatusSource for ClusterStatus<'_> {
    fn describe(&self, id: &str) -> String {
        format!("Aurora cluster {id}")
    }

    async fn poll(&self, id: &str) -> Result<Poll, WaitError> {
        let answer = self.0.describe_cluster(id).await.map(|found| {
            found.map(|c| Observed {
                status: c.status().unwrap_or("unknown").to_owned(),
                replica_of: None,
                endpoint: c.endpoint().map(str::to_owned),
                port: c.port().and_then(|p| u16::try_from(p).ok()),
            })
        });
        poll_outcome(self.describe(id), answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_classify_by_code_and_name_the_call() {
        assert!(RdsError::new(Some("Throttling"), "x").is_retryable());
        assert!(RdsError::new(None, "timeout").is_retryable());
        assert!(!RdsError::new(Some("KMSKeyNotAccessibleFault"), "x").is_retryable());
        assert!(RdsError::new(Some("DBInstanceNotFound"), "x").is_not_found());
        assert!(RdsError::new(Some("DBClusterSnapshotAlreadyExistsFault"), "x").is_already_exists());
        assert_eq!(RdsError::new(Some("Code"), "text").to_string(), "Code: text");
        let call = RdsError {
            call: RdsCall::boxed("eu-west-1", "PromoteReadReplica", "DB instance db1"),
            ..RdsError::new(Some("InvalidDBInstanceState"), "not a replica")
        };
        assert_eq!(
            call.to_string(),
            "RDS in eu-west-1, PromoteReadReplica on DB instance db1: InvalidDBInstanceState: not a replica"
        );
    }
}
