//! Making databases from others: a DB snapshot restored to a new instance,
//! a DB instance or Aurora cluster restored to a point in time or from a
//! snapshot (and a restored cluster's first instance), a cross-region
//! read replica.

use aws_sdk_rds::primitives::DateTime;
use jiff::Timestamp;

use super::{tags, Database, Rds, RdsError, ResourceKind};

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

impl Rds {
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
}

/// A restore of a DB instance or Aurora cluster to a point in time, into a
/// new database of the same kind.
#[derive(Debug)]
pub struct PointInTimeRestore<'a> {
    pub kind: ResourceKind,
    pub source: &'a str,
    pub target: &'a str,
    /// `None`: the latest restorable time.
    pub time: Option<Timestamp>,
    pub subnet_group: Option<&'a str>,
    pub security_groups: &'a [String],
    pub tags: &'a [(&'a str, &'a str)],
}

/// A restore of a DB snapshot or cluster snapshot into a new database.
#[derive(Debug)]
pub struct SnapshotRestore<'a> {
    /// What the snapshot is of, and so what the new database is.
    pub kind: ResourceKind,
    pub snapshot: &'a str,
    pub target: &'a str,
    /// A cluster's engine (RDS asks for it).
    pub engine: Option<&'a str>,
    pub tags: &'a [(&'a str, &'a str)],
}

fn sdk_time(at: Timestamp) -> DateTime {
    DateTime::from_secs_and_nanos(at.as_second(), at.subsec_nanosecond().unsigned_abs())
}

impl Rds {
    /// Starts a point-in-time restore; the new database as RDS first
    /// describes it, when it does.
    pub async fn restore_to_point_in_time(
        &self,
        request: &PointInTimeRestore<'_>,
    ) -> Result<Option<Database>, RdsError> {
        let security_groups = (!request.security_groups.is_empty()).then(|| request.security_groups.to_vec());
        let subnet_group = request.subnet_group.map(str::to_owned);
        match request.kind {
            ResourceKind::DbInstance => {
                let call = self
                    .client
                    .restore_db_instance_to_point_in_time()
                    .source_db_instance_identifier(request.source)
                    .target_db_instance_identifier(request.target)
                    .set_db_subnet_group_name(subnet_group)
                    .set_vpc_security_group_ids(security_groups)
                    .set_tags(Some(tags(request.tags)));
                let call = match request.time {
                    None => call.use_latest_restorable_time(true),
                    Some(at) => call.restore_time(sdk_time(at)),
                };
                let out = call.send().await.map_err(|e| {
                    let what = format!("DB instance {} from {}", request.target, request.source);
                    self.fail("RestoreDBInstanceToPointInTime", &what, &e)
                })?;
                Ok(out.db_instance().map(Database::from_instance))
            }
            ResourceKind::Cluster => {
                let call = self
                    .client
                    .restore_db_cluster_to_point_in_time()
                    .source_db_cluster_identifier(request.source)
                    .db_cluster_identifier(request.target)
                    .set_db_subnet_group_name(subnet_group)
                    .set_vpc_security_group_ids(security_groups)
                    .set_tags(Some(tags(request.tags)));
                let call = match request.time {
                    None => call.use_latest_restorable_time(true),
                    Some(at) => call.restore_to_time(sdk_time(at)),
                };
                let out = call.send().await.map_err(|e| {
                    let what = format!("Aurora cluster {} from {}", request.target, request.source);
                    self.fail("RestoreDBClusterToPointInTime", &what, &e)
                })?;
                Ok(out.db_cluster().map(Database::from_cluster))
            }
        }
    }

    /// Starts a restore of a snapshot of this region; the new database as
    /// RDS first describes it, when it does.
    pub async fn restore_from_snapshot(&self, request: &SnapshotRestore<'_>) -> Result<Option<Database>, RdsError> {
        match request.kind {
            ResourceKind::DbInstance => {
                let out = self
                    .client
                    .restore_db_instance_from_db_snapshot()
                    .db_instance_identifier(request.target)
                    .db_snapshot_identifier(request.snapshot)
                    .set_tags(Some(tags(request.tags)))
                    .send()
                    .await
                    .map_err(|e| {
                        let what = format!("DB instance {} from {}", request.target, request.snapshot);
                        self.fail("RestoreDBInstanceFromDBSnapshot", &what, &e)
                    })?;
                Ok(out.db_instance().map(Database::from_instance))
            }
            ResourceKind::Cluster => {
                let out = self
                    .client
                    .restore_db_cluster_from_snapshot()
                    .db_cluster_identifier(request.target)
                    .snapshot_identifier(request.snapshot)
                    .set_engine(request.engine.map(str::to_owned))
                    .set_tags(Some(tags(request.tags)))
                    .send()
                    .await
                    .map_err(|e| {
                        let what = format!("Aurora cluster {} from {}", request.target, request.snapshot);
                        self.fail("RestoreDBClusterFromSnapshot", &what, &e)
                    })?;
                Ok(out.db_cluster().map(Database::from_cluster))
            }
        }
    }

    /// Creates an instance `instance` of class `class` in Aurora cluster
    /// `cluster` (a restored cluster has none until one is made).
    pub async fn create_cluster_instance(
        &self,
        instance: &str,
        cluster: &Database,
        class: &str,
        tags_: &[(&str, &str)],
    ) -> Result<(), RdsError> {
        self.client
            .create_db_instance()
            .db_instance_identifier(instance)
            .db_cluster_identifier(&cluster.id)
            .db_instance_class(class)
            .engine(cluster.engine.as_deref().unwrap_or_default())
            .set_tags(Some(tags(tags_)))
            .send()
            .await
            .map_err(|e| {
                self.fail(
                    "CreateDBInstance",
                    &format!("DB instance {instance} in cluster {}", cluster.id),
                    &e,
                )
            })?;
        Ok(())
    }
}
