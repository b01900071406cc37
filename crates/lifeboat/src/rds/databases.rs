//! DB instances and Aurora clusters: what RDS says of them, found by
//! identifier or listed, and the calls on one (promote, replicate, delete).

use std::collections::BTreeMap;
use std::fmt;

use aws_sdk_rds::types::{DbCluster, DbInstance};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{none_if_missing, tag_map, timestamp, Rds, RdsError};

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
    /// Its tags (a DR run adopts only an instance its own job tagged).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl Rds {
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
            tags: tag_map(i.tag_list()),
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

    /// Adds (or overwrites) tags on the resource `arn`.
    pub async fn add_tags(&self, arn: &str, pairs: &[(&str, &str)]) -> Result<(), RdsError> {
        self.client
            .add_tags_to_resource()
            .resource_name(arn)
            .set_tags(Some(super::tags(pairs)))
            .send()
            .await
            .map_err(|e| self.fail("AddTagsToResource", arn, &e))?;
        Ok(())
    }

    /// Stops a DB instance (RDS starts a stopped instance again by itself after seven days).
    pub async fn stop_instance(&self, id: &str) -> Result<(), RdsError> {
        self.client
            .stop_db_instance()
            .db_instance_identifier(id)
            .send()
            .await
            .map_err(|e| self.fail("StopDBInstance", &format!("DB instance {id}"), &e))?;
        Ok(())
    }

    /// Every DB instance and DB cluster of the region, with tags.
    pub async fn resources(&self) -> Result<Vec<DbResource>, RdsError> {
        let mut resources: Vec<DbResource> = self.instances().await?.iter().filter_map(instance_resource).collect();
        resources.extend(self.clusters().await?.iter().filter_map(cluster_resource));
        Ok(resources)
    }

    /// One DB instance or cluster by identifier; `kind` `None` tries an
    /// instance first, then a cluster. The error is a "not found" one when
    /// there is none.
    pub async fn find_resource(&self, id: &str, kind: Option<ResourceKind>) -> Result<DbResource, RdsError> {
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

/// Where a database answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A DB instance or an Aurora cluster as RDS describes it, whatever its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Database {
    pub kind: ResourceKind,
    pub id: String,
    pub arn: Option<String>,
    /// RDS's status (`creating`, `available`, …), when it reported one.
    pub status: Option<String>,
    pub engine: Option<String>,
    /// An instance's class; a cluster's own (Multi-AZ DB clusters) if any.
    pub instance_class: Option<String>,
    pub subnet_group: Option<String>,
    pub security_groups: Vec<String>,
    /// An instance's endpoint; a cluster's writer endpoint.
    pub endpoint: Option<Endpoint>,
    pub tags: BTreeMap<String, String>,
    /// An instance that is a member of an Aurora cluster: the cluster.
    pub cluster: Option<String>,
    /// A cluster's member instances, the writer first.
    pub members: Vec<String>,
    /// A read replica: the instance it replicates.
    pub replica_of: Option<String>,
    pub encrypted: bool,
    pub created_at: Option<Timestamp>,
    /// The automated backups' retention period (days; 0: none).
    pub backup_retention_days: i32,
    /// A cluster's earliest restorable time.
    pub earliest_restorable: Option<Timestamp>,
    pub latest_restorable: Option<Timestamp>,
}

impl Database {
    /// `DB instance ID` or `Aurora cluster ID`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.kind.describe(), self.id)
    }

    pub(super) fn from_instance(db: &DbInstance) -> Self {
        Self {
            kind: ResourceKind::DbInstance,
            id: db.db_instance_identifier().unwrap_or_default().to_owned(),
            arn: db.db_instance_arn().map(str::to_owned),
            status: db.db_instance_status().map(str::to_owned),
            engine: db.engine().map(str::to_owned),
            instance_class: db.db_instance_class().map(str::to_owned),
            subnet_group: db
                .db_subnet_group()
                .and_then(|g| g.db_subnet_group_name())
                .map(str::to_owned),
            security_groups: db
                .vpc_security_groups()
                .iter()
                .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
                .collect(),
            endpoint: db.endpoint().and_then(|e| {
                Some(Endpoint {
                    host: e.address()?.to_owned(),
                    port: u16::try_from(e.port()?).ok()?,
                })
            }),
            tags: tag_map(db.tag_list()),
            cluster: db.db_cluster_identifier().map(str::to_owned),
            members: Vec::new(),
            replica_of: db.read_replica_source_db_instance_identifier().map(str::to_owned),
            encrypted: db.storage_encrypted().unwrap_or(false),
            created_at: db.instance_create_time().and_then(timestamp),
            backup_retention_days: db.backup_retention_period().unwrap_or(0),
            earliest_restorable: None,
            latest_restorable: db.latest_restorable_time().and_then(timestamp),
        }
    }

    pub(super) fn from_cluster(cluster: &DbCluster) -> Self {
        let mut members: Vec<_> = cluster.db_cluster_members().iter().collect();
        members.sort_by_key(|m| !m.is_cluster_writer().unwrap_or(false));
        Self {
            kind: ResourceKind::Cluster,
            id: cluster.db_cluster_identifier().unwrap_or_default().to_owned(),
            arn: cluster.db_cluster_arn().map(str::to_owned),
            status: cluster.status().map(str::to_owned),
            engine: cluster.engine().map(str::to_owned),
            instance_class: cluster.db_cluster_instance_class().map(str::to_owned),
            subnet_group: cluster.db_subnet_group().map(str::to_owned),
            security_groups: cluster
                .vpc_security_groups()
                .iter()
                .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
                .collect(),
            endpoint: cluster.endpoint().and_then(|host| {
                Some(Endpoint {
                    host: host.to_owned(),
                    port: u16::try_from(cluster.port()?).ok()?,
                })
            }),
            tags: tag_map(cluster.tag_list()),
            cluster: None,
            members: members
                .iter()
                .filter_map(|m| m.db_instance_identifier().map(str::to_owned))
                .collect(),
            replica_of: None,
            encrypted: cluster.storage_encrypted().unwrap_or(false),
            created_at: cluster.cluster_create_time().and_then(timestamp),
            backup_retention_days: cluster.backup_retention_period().unwrap_or(0),
            earliest_restorable: cluster.earliest_restorable_time().and_then(timestamp),
            latest_restorable: cluster.latest_restorable_time().and_then(timestamp),
        }
    }
}

impl Rds {
    /// A database by identifier, whatever its kind: `kind` `None` looks for
    /// a DB instance first, then an Aurora cluster; `None` if there is none.
    pub async fn database(&self, id: &str, kind: Option<ResourceKind>) -> Result<Option<Database>, RdsError> {
        if kind != Some(ResourceKind::Cluster) {
            if let Some(instance) = self.describe_instance(id).await? {
                return Ok(Some(Database::from_instance(&instance)));
            }
        }
        if kind != Some(ResourceKind::DbInstance) {
            if let Some(cluster) = self.describe_cluster(id).await? {
                return Ok(Some(Database::from_cluster(&cluster)));
            }
        }
        Ok(None)
    }

    /// The class a new instance of `database` gets: its own; for a cluster,
    /// its writer's (else any member's).
    pub async fn instance_class(&self, database: &Database) -> Result<Option<String>, RdsError> {
        if let Some(class) = &database.instance_class {
            return Ok(Some(class.clone()));
        }
        for member in &database.members {
            if let Some(class) = self
                .describe_instance(member)
                .await?
                .and_then(|i| i.db_instance_class().map(str::to_owned))
            {
                return Ok(Some(class));
            }
        }
        Ok(None)
    }

    /// The automated backups' restore window (earliest, latest) of a DB
    /// instance, when RDS reports one.
    pub async fn automated_backup_window(
        &self,
        id: &str,
    ) -> Result<Option<(Option<Timestamp>, Option<Timestamp>)>, RdsError> {
        let answer = self
            .client
            .describe_db_instance_automated_backups()
            .db_instance_identifier(id)
            .send()
            .await;
        let out = match answer {
            Ok(out) => out,
            Err(e) => {
                return none_if_missing(self.fail(
                    "DescribeDBInstanceAutomatedBackups",
                    &format!("DB instance {id}"),
                    &e,
                ))
            }
        };
        Ok(out
            .db_instance_automated_backups()
            .iter()
            .filter_map(|b| b.restore_window())
            .map(|w| {
                (
                    w.earliest_time().and_then(timestamp),
                    w.latest_time().and_then(timestamp),
                )
            })
            .next())
    }
}
