//! The RDS and KMS calls of verification, restore tests and retention, in
//! any region, from one SDK configuration (`aws::load_config`).

use aws_config::{Region, SdkConfig};

use crate::aws::error_code;
use crate::snapshot::{AwsRds, Rds, RdsError, ResourceKind, SnapshotState};

fn rds_error<E, R>(error: &aws_sdk_rds::error::SdkError<E, R>) -> RdsError
where
    E: aws_sdk_rds::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let (code, message) = error_code(error);
    RdsError::new(code.as_deref(), message)
}

/// An instance's status and endpoint (host, port), as RDS describes it.
pub type InstanceState = (String, Option<(String, u16)>);

/// A temporary instance's state, read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestorePhase {
    /// Usable.
    Ready,
    /// Still being created (or briefly modified, backed up).
    Waiting,
    /// Will not become usable.
    Failed,
}

/// RDS's DB instance statuses, read for a restore test.
pub fn restore_phase(status: &str) -> RestorePhase {
    match status {
        "available" => RestorePhase::Ready,
        "creating"
        | "backing-up"
        | "modifying"
        | "configuring-enhanced-monitoring"
        | "configuring-log-exports"
        | "upgrading"
        | "rebooting"
        | "starting"
        | "" => RestorePhase::Waiting,
        _ => RestorePhase::Failed,
    }
}

/// RDS and KMS in the primary region and any other.
#[derive(Clone, Debug)]
pub struct SnapshotAws {
    config: SdkConfig,
    snapshots: AwsRds,
    rds: aws_sdk_rds::Client,
}

impl SnapshotAws {
    /// `config` must have a region (see `aws::load_config`): the primary one.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            config: config.clone(),
            snapshots: AwsRds::new(config),
            rds: aws_sdk_rds::Client::new(config),
        }
    }

    pub fn region(&self) -> &str {
        self.snapshots.region()
    }

    fn rds_in(&self, region: &str) -> aws_sdk_rds::Client {
        if region == self.region() {
            return self.rds.clone();
        }
        aws_sdk_rds::Client::from_conf(
            aws_sdk_rds::config::Builder::from(&self.config)
                .region(Region::new(region.to_owned()))
                .build(),
        )
    }

    /// A snapshot's state in `region`; `None` if RDS has no such snapshot.
    pub async fn describe(
        &self,
        region: &str,
        kind: ResourceKind,
        snapshot_id: &str,
    ) -> Result<Option<SnapshotState>, RdsError> {
        self.snapshots.describe_snapshot(region, kind, snapshot_id).await
    }

    /// The ARN of a KMS key (id, alias or ARN) of `region`, as RDS reports
    /// the key a snapshot is encrypted with.
    pub async fn key_arn(&self, region: &str, key: &str) -> Result<String, RdsError> {
        let kms = aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::config::Builder::from(&self.config)
                .region(Region::new(region.to_owned()))
                .build(),
        );
        let output = kms.describe_key().key_id(key).send().await.map_err(|e| {
            let (code, message) = error_code(&e);
            RdsError::new(code.as_deref(), message)
        })?;
        output
            .key_metadata()
            .and_then(|m| m.arn())
            .map(str::to_owned)
            .ok_or_else(|| RdsError::new(None, format!("KMS key {key} in {region} has no ARN")))
    }

    /// Deletes a snapshot in `region`; `false` if it was gone already.
    pub async fn delete_snapshot(&self, region: &str, kind: ResourceKind, snapshot_id: &str) -> Result<bool, RdsError> {
        let rds = self.rds_in(region);
        let result = match kind {
            ResourceKind::DbInstance => rds
                .delete_db_snapshot()
                .db_snapshot_identifier(snapshot_id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| rds_error(&e)),
            ResourceKind::Cluster => rds
                .delete_db_cluster_snapshot()
                .db_cluster_snapshot_identifier(snapshot_id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| rds_error(&e)),
        };
        match result {
            Ok(()) => Ok(true),
            Err(error) if error.is_not_found() => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Restores a DB snapshot of the primary region to a new instance,
    /// tagged as a restore test's.
    pub async fn restore_instance(
        &self,
        snapshot_id: &str,
        instance: &str,
        instance_class: &str,
        tags: &[(String, String)],
    ) -> Result<(), RdsError> {
        self.rds
            .restore_db_instance_from_db_snapshot()
            .db_snapshot_identifier(snapshot_id)
            .db_instance_identifier(instance)
            .db_instance_class(instance_class)
            .publicly_accessible(false)
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| rds_error(&e))?;
        Ok(())
    }

    /// An instance's status and endpoint (host, port); `None` if it does not exist.
    pub async fn instance(&self, instance: &str) -> Result<Option<InstanceState>, RdsError> {
        match self
            .rds
            .describe_db_instances()
            .db_instance_identifier(instance)
            .send()
            .await
        {
            Ok(output) => Ok(output.db_instances().first().map(|db| {
                let endpoint = db.endpoint().and_then(|e| {
                    Some((
                        e.address()?.to_owned(),
                        u16::try_from(e.port().unwrap_or_default()).ok()?,
                    ))
                });
                (db.db_instance_status().unwrap_or_default().to_owned(), endpoint)
            })),
            Err(e) => {
                let error = rds_error(&e);
                if error.is_not_found() {
                    Ok(None)
                } else {
                    Err(error)
                }
            }
        }
    }

    /// Deletes an instance without a final snapshot; `false` if it was gone.
    pub async fn delete_instance(&self, instance: &str) -> Result<bool, RdsError> {
        match self
            .rds
            .delete_db_instance()
            .db_instance_identifier(instance)
            .skip_final_snapshot(true)
            .delete_automated_backups(true)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => {
                let error = rds_error(&e);
                if error.is_not_found() {
                    Ok(false)
                } else {
                    Err(error)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_statuses_read_as_phases() {
        for (status, phase) in [
            ("available", RestorePhase::Ready),
            ("creating", RestorePhase::Waiting),
            ("backing-up", RestorePhase::Waiting),
            ("", RestorePhase::Waiting),
            ("failed", RestorePhase::Failed),
            ("incompatible-restore", RestorePhase::Failed),
            ("storage-full", RestorePhase::Failed),
        ] {
            assert_eq!(restore_phase(status), phase, "{status}");
        }
    }
}
