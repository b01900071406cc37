//! Snapshots in RDS: DB snapshots and cluster snapshots alike, keyed by
//! [`ResourceKind`]: their state ([`SnapshotState`]), creating, copying to
//! another region, finding, listing a database's manual ones, deleting; and
//! the KMS keys they are encrypted with.

use aws_sdk_rds::types::{DbClusterSnapshot, DbSnapshot};
use jiff::Timestamp;

use super::{none_if_missing, owned_tags, tag_pairs, timestamp, DbResource, Rds, RdsCall, RdsError, ResourceKind};
use crate::aws::error_code;

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

impl Rds {
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

    /// Starts a manual snapshot of a resource (of this region) with tags.
    pub async fn create_snapshot(
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

    /// Starts a copy of `source_arn` (another region's snapshot) into
    /// `region` as `target_id`, re-encrypted with `kms_key` (a key of `region`).
    pub async fn copy_snapshot(
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

    /// Checks that `kms_key` exists in `region` and is enabled.
    pub async fn check_key(&self, region: &str, kms_key: &str) -> Result<(), RdsError> {
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

/// A snapshot as a listing shows it, with its identifier and tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedSnapshot {
    pub id: String,
    pub state: SnapshotState,
    /// The tags the listing carried (on AWS all; some emulators none).
    pub tags: Vec<(String, String)>,
}

impl Rds {
    /// The manual snapshots of a DB instance or Aurora cluster of this region.
    pub async fn manual_snapshots(&self, kind: ResourceKind, id: &str) -> Result<Vec<ListedSnapshot>, RdsError> {
        let mut found = Vec::new();
        let what = format!("snapshots of {id}");
        match kind {
            ResourceKind::DbInstance => {
                let mut pages = self
                    .client
                    .describe_db_snapshots()
                    .db_instance_identifier(id)
                    .snapshot_type("manual")
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| self.fail("DescribeDBSnapshots", &what, &e))?;
                    found.extend(page.db_snapshots().iter().filter_map(|s| {
                        Some(ListedSnapshot {
                            id: s.db_snapshot_identifier()?.to_owned(),
                            state: db_snapshot_state(s),
                            tags: tag_pairs(s.tag_list()),
                        })
                    }));
                }
            }
            ResourceKind::Cluster => {
                let mut pages = self
                    .client
                    .describe_db_cluster_snapshots()
                    .db_cluster_identifier(id)
                    .snapshot_type("manual")
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| self.fail("DescribeDBClusterSnapshots", &what, &e))?;
                    found.extend(page.db_cluster_snapshots().iter().filter_map(|s| {
                        Some(ListedSnapshot {
                            id: s.db_cluster_snapshot_identifier()?.to_owned(),
                            state: cluster_snapshot_state(s),
                            tags: tag_pairs(s.tag_list()),
                        })
                    }));
                }
            }
        }
        Ok(found)
    }

    /// The tags of an RDS resource (a snapshot, a database) by its ARN.
    pub async fn tags_of(&self, arn: &str) -> Result<Vec<(String, String)>, RdsError> {
        let listed = self
            .client
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await
            .map_err(|e| self.fail("ListTagsForResource", arn, &e))?;
        Ok(tag_pairs(listed.tag_list()))
    }
}
