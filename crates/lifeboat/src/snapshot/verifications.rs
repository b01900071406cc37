//! The catalog's view of looking after snapshots ([`SnapshotChecks`],
//! `Catalog::snapshot_checks()`): the recorded verifications of snapshot
//! records ([`SnapshotVerification`]), holds on snapshots, and the
//! tombstones retention leaves of deleted snapshots.
//!
//! Catalog items this module writes (ARCHITECTURE.md, "The catalog table"):
//!
//! | item | `pk` | `sk` |
//! |---|---|---|
//! | snapshot verification | the snapshot's `pk` (`snapshot#PLAN#RESOURCE#TIME`) | `verify#STARTEDAT` |
//! | hold on a snapshot | `hold#SNAPSHOTID` | `hold` (a `HoldRecord` whose `backupId` is the snapshot's identifier) |
//! | deleted snapshot (tombstone) | `snapshot-deleted#PLAN#RESOURCE#TIME` | `snapshot` (`status = deleted`, `deletedAt`, the record as `snapshot`, its `copies`) |
//!
//! The restore test state items (`pk = restore-test`) are read and written
//! by `super::restore_tests::state`.
//!
//! Retention moves a deleted snapshot's record (and its copy items) to its
//! tombstone in one transaction, so `SnapshotCatalog::history`, `list` and
//! `latest_completed` no longer return it (its verification items stay
//! under the old `pk`, read by nothing but these modules).

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::checks::{RestoreTestOutcome, SnapshotProblem};
use super::error::SnapshotOpsError;
use super::records::{CopyRecord, SnapshotCatalog, SnapshotHistory, SnapshotRecord};
use crate::catalog::keys::{self, VERIFY_SK_PREFIX};
use crate::catalog::{Catalog, CatalogError, HoldRecord, VerificationStatus};
use crate::plan::Plan;

/// The snapshot's `pk` (as `crate::snapshot` writes it).
pub fn snapshot_pk(record: &SnapshotRecord) -> String {
    keys::snapshot_pk(&record.plan, &record.resource, &record.scheduled_time)
}

/// One verification of one snapshot record, stored under the snapshot's
/// `pk` with `sk = verify#STARTEDAT`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotVerification {
    pub plan: String,
    pub resource: String,
    pub scheduled_time: String,
    pub snapshot_id: String,
    pub status: VerificationStatus,
    pub started_at: String,
    pub completed_at: String,
    /// Regions whose snapshot or copy was looked at.
    pub regions: Vec<String>,
    #[serde(default)]
    pub problems: Vec<SnapshotProblem>,
    /// `None` when no restore test ran.
    #[serde(default)]
    pub restore_test_passed: Option<bool>,
    /// The measured restore time (seconds), an RTO sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_test: Option<RestoreTestOutcome>,
    /// The problems in one line, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SnapshotVerification {
    /// A finished verification of `record` with these problems.
    pub fn new(
        record: &SnapshotRecord,
        regions: Vec<String>,
        problems: Vec<SnapshotProblem>,
        started_at: String,
        completed_at: String,
    ) -> Self {
        let mut verification = Self {
            plan: record.plan.clone(),
            resource: record.resource.clone(),
            scheduled_time: record.scheduled_time.clone(),
            snapshot_id: record.snapshot_id.clone(),
            status: VerificationStatus::Passed,
            started_at,
            completed_at,
            regions,
            problems: Vec::new(),
            restore_test_passed: None,
            rto_seconds: None,
            restore_test: None,
            error: None,
        };
        verification.set_problems(problems);
        verification
    }

    /// Replaces the problems, and the status and error they imply.
    pub fn set_problems(&mut self, problems: Vec<SnapshotProblem>) {
        self.status = if problems.is_empty() {
            VerificationStatus::Passed
        } else {
            VerificationStatus::Failed
        };
        self.error = (!problems.is_empty()).then(|| {
            problems
                .iter()
                .map(|p| format!("{} ({}): {}", p.kind.as_str(), p.region, p.detail))
                .collect::<Vec<_>>()
                .join("; ")
        });
        self.problems = problems;
    }

    pub fn passed(&self) -> bool {
        self.status == VerificationStatus::Passed
    }

    fn pk(&self) -> String {
        keys::snapshot_pk(&self.plan, &self.resource, &self.scheduled_time)
    }
}

#[derive(Serialize, Deserialize)]
struct VerificationItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    record: SnapshotVerification,
}

/// A deleted snapshot's tombstone.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeletedItem {
    pk: String,
    sk: String,
    status: String,
    deleted_at: String,
    snapshot: SnapshotRecord,
    copies: Vec<CopyRecord>,
}

/// This module's items in the catalog table (get one with
/// `Catalog::snapshot_checks`), next to the snapshot records it reads.
#[derive(Clone, Debug)]
pub struct SnapshotChecks {
    pub(super) catalog: Catalog,
    records: SnapshotCatalog,
}

impl Catalog {
    /// Snapshot verifications, holds and deletions kept in this catalog's table.
    pub fn snapshot_checks(&self) -> SnapshotChecks {
        SnapshotChecks {
            catalog: self.clone(),
            records: self.snapshots(),
        }
    }
}

impl SnapshotChecks {
    /// The snapshot records themselves.
    pub fn records(&self) -> &SnapshotCatalog {
        &self.records
    }

    pub(super) fn error<E, R>(&self, error: SdkError<E, R>) -> CatalogError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        self.catalog.error(error)
    }

    pub(super) fn corrupt(&self, pk: String, message: impl ToString) -> CatalogError {
        self.catalog.corrupt(pk, message.to_string())
    }

    /// Stores one verification.
    pub async fn record(&self, verification: &SnapshotVerification) -> Result<(), CatalogError> {
        let pk = verification.pk();
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(VerificationItem {
            pk: pk.clone(),
            sk: keys::verify_sk(&verification.started_at),
            record: verification.clone(),
        })
        .map_err(|e| self.corrupt(pk, e))?;
        self.catalog
            .client()
            .put_item()
            .table_name(self.catalog.table())
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// A snapshot record's verifications, newest first; at most `limit`.
    pub async fn verifications(
        &self,
        record: &SnapshotRecord,
        limit: usize,
    ) -> Result<Vec<SnapshotVerification>, CatalogError> {
        let pk = snapshot_pk(record);
        let output = self
            .catalog
            .client()
            .query()
            .table_name(self.catalog.table())
            .key_condition_expression("pk = :pk AND begins_with(sk, :verify)")
            .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
            .expression_attribute_values(":verify", AttributeValue::S(VERIFY_SK_PREFIX.into()))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX).max(1))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        output
            .items()
            .iter()
            .map(|item| {
                serde_dynamo::from_item::<_, VerificationItem>(item.clone())
                    .map(|i| i.record)
                    .map_err(|e| self.corrupt(pk.clone(), e))
            })
            .collect()
    }

    /// Every snapshot (with copies) of the plans named, newest first per
    /// resource; deleted ones are not returned.
    pub async fn histories(&self, plans: &[Plan]) -> Result<Vec<SnapshotHistory>, CatalogError> {
        let mut resources: Vec<String> = self
            .records
            .list()
            .await?
            .into_iter()
            .filter(|r| plans.iter().any(|p| p.name == r.plan))
            .map(|r| r.resource)
            .collect();
        resources.sort();
        resources.dedup();
        let mut histories = Vec::new();
        for resource in resources {
            histories.extend(
                self.records
                    .history(&resource)
                    .await?
                    .into_iter()
                    .filter(|h| plans.iter().any(|p| p.name == h.snapshot.plan)),
            );
        }
        Ok(histories)
    }

    /// The snapshot record with this identifier, if the catalog has one (a scan).
    pub async fn find(&self, snapshot_id: &str) -> Result<Option<SnapshotRecord>, CatalogError> {
        Ok(self
            .records
            .list()
            .await?
            .into_iter()
            .find(|r| r.snapshot_id == snapshot_id))
    }

    /// Marks a snapshot deleted: in one transaction, a tombstone item
    /// (`pk = snapshot-deleted#PLAN#RESOURCE#TIME`, `status = deleted`, the
    /// record and its copies, `deletedAt`) is written and the snapshot item
    /// (on the status it had, so a run that changed it meanwhile wins) and
    /// its copy items are removed, so no listing or history returns it.
    pub async fn mark_deleted(&self, history: &SnapshotHistory, at: &str) -> Result<(), CatalogError> {
        let record = &history.snapshot;
        let pk = snapshot_pk(record);
        let tombstone_pk = keys::snapshot_deleted_pk(&record.plan, &record.resource, &record.scheduled_time);
        let tombstone: HashMap<String, AttributeValue> = serde_dynamo::to_item(DeletedItem {
            pk: tombstone_pk.clone(),
            sk: keys::SNAPSHOT_SK.into(),
            status: "deleted".into(),
            deleted_at: at.to_owned(),
            snapshot: record.clone(),
            copies: history.copies.clone(),
        })
        .map_err(|e| self.corrupt(tombstone_pk, e))?;
        let key = |sk: String| {
            aws_sdk_dynamodb::types::Delete::builder()
                .table_name(self.catalog.table())
                .key("pk", AttributeValue::S(pk.clone()))
                .key("sk", AttributeValue::S(sk))
        };
        let build = |e: aws_sdk_dynamodb::error::BuildError| self.corrupt(pk.clone(), e);
        let mut items = vec![
            aws_sdk_dynamodb::types::TransactWriteItem::builder()
                .put(
                    aws_sdk_dynamodb::types::Put::builder()
                        .table_name(self.catalog.table())
                        .set_item(Some(tombstone))
                        .build()
                        .map_err(build)?,
                )
                .build(),
            aws_sdk_dynamodb::types::TransactWriteItem::builder()
                .delete(
                    key("snapshot".into())
                        .condition_expression("#status = :status")
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_values(":status", AttributeValue::S(record.status.as_str().into()))
                        .build()
                        .map_err(build)?,
                )
                .build(),
        ];
        for copy in &history.copies {
            items.push(
                aws_sdk_dynamodb::types::TransactWriteItem::builder()
                    .delete(key(keys::copy_sk(&copy.region)).build().map_err(build)?)
                    .build(),
            );
        }
        match self
            .catalog
            .client()
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(s)) if s.err().is_transaction_canceled_exception() => {
                Err(CatalogError::Conflict {
                    id: pk,
                    expected: record.status.as_str().to_owned(),
                })
            }
            Err(e) => Err(self.error(e)),
        }
    }

    /// Places a hold on a snapshot the catalog knows (by its identifier);
    /// `false` if it was held already. `lifeboat hold list` shows it, and
    /// `Catalog::remove_hold` lifts it.
    pub async fn add_hold(&self, hold: &HoldRecord) -> Result<bool, SnapshotOpsError> {
        self.catalog
            .add_hold_if(hold, async {
                match self.find(&hold.backup_id).await? {
                    Some(_) => Ok(()),
                    None => Err(SnapshotOpsError::UnknownSnapshot {
                        id: hold.backup_id.clone(),
                    }),
                }
            })
            .await
    }
}
