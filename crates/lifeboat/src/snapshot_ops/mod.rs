//! Looking after the RDS and Aurora snapshots the snapshot function takes
//! (`crate::snapshot`): verification, restore tests, retention and the
//! alert conditions about them.
//!
//! - [`verify`]: a snapshot is `available` in its region, encrypted, and
//!   every copy region holds a copy, `available`, encrypted with that
//!   region's key from the plan; the newest completed snapshot is within the
//!   plan's RPO. Each run records a [`SnapshotVerification`] per snapshot
//!   record in the catalog.
//! - [`restore_test`]: restores a resource's newest completed snapshot to a
//!   temporary DB instance `lifeboat-rt-…`, runs a checks file's SQL
//!   assertions (`crate::validate`) against it, records the measured restore
//!   time (an RTO sample) and `restoreTestPassed`, and deletes the instance
//!   (no final snapshot) whatever happened.
//! - [`scheduled`]: the plans' `[plan.restore_test]`: the same restore test
//!   as a resumable state machine in the catalog, advanced by each verify
//!   function invocation (every 15 minutes) and run to completion by the
//!   toolkit; tests that are due start, tests in progress resume, failed
//!   deletes are retried, orphaned instances are swept.
//! - [`retention`]: a plan's retention policy (`crate::retention`, in the
//!   plan's time zone) over each resource's snapshot history; never the
//!   newest completed or newest verified snapshot, a held one, or one still
//!   in progress (the snapshot or any of its copies). Applying marks the
//!   record deleted first (so no live record names a deleted snapshot),
//!   then deletes the snapshot in its region and every copy region, and
//!   audits each deletion.
//! - [`alerts`]: the snapshot conditions for `crate::alert` (pure).
//!
//! Catalog items this module writes (ARCHITECTURE.md, "The catalog table"):
//!
//! | item | `pk` | `sk` |
//! |---|---|---|
//! | snapshot verification | the snapshot's `pk` (`snapshot#PLAN#RESOURCE#TIME`) | `verify#STARTEDAT` |
//! | hold on a snapshot | `hold#SNAPSHOTID` | `hold` (a `HoldRecord` whose `backupId` is the snapshot's identifier) |
//! | restore test state | `restore-test` | `state#RESOURCE` (a [`scheduled::RestoreTestState`]) |
//! | deleted snapshot (tombstone) | `snapshot-deleted#PLAN#RESOURCE#TIME` | `snapshot` (`status = deleted`, `deletedAt`, the record as `snapshot`, its `copies`) |
//!
//! Retention moves a deleted snapshot's record (and its copy items) to its
//! tombstone in one transaction, so `SnapshotCatalog::history`, `list` and
//! `latest_completed` no longer return it (its verification items stay
//! under the old `pk`, read by nothing but this module).

pub mod alerts;
pub mod restore_test;
pub mod retention;
pub mod scheduled;
pub mod verify;

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use crate::audit::AuditError;
use crate::catalog::{dynamo_error, CatalogError, HoldRecord, VerificationStatus};
use crate::plan::Plan;
use crate::snapshot::{PlanSource, RdsError, SnapshotCatalog, SnapshotHistory, SnapshotRecord, SnapshotStatus};
use crate::validate::ValidateError;

/// An instance's status and endpoint (host, port), as RDS describes it.
pub type InstanceState = (String, Option<(String, u16)>);

const VERIFY_SK_PREFIX: &str = "verify#";
const HOLD_SK: &str = "hold";

#[derive(Debug, thiserror::Error)]
pub enum SnapshotOpsError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("{action} in {region} failed ({error}): check that the role may do it there and that the region is right")]
    Rds {
        action: String,
        region: String,
        error: RdsError,
    },
    #[error("no plan named {name:?} in the plan file (it has: {known})")]
    UnknownPlan { name: String, known: String },
    #[error("no snapshot {id:?} in the catalog: see `lifeboat snapshots list`")]
    UnknownSnapshot { id: String },
    #[error("restore test: {0}")]
    Checks(#[from] ValidateError),
    #[error("plan {plan}: its retention policy: {error}")]
    Retention {
        plan: String,
        error: crate::retention::RetentionError,
    },
}

/// The snapshot's `pk` (as `crate::snapshot` writes it).
pub fn snapshot_pk(record: &SnapshotRecord) -> String {
    format!("snapshot#{}#{}#{}", record.plan, record.resource, record.scheduled_time)
}

/// What went wrong with a snapshot, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// RDS has no such snapshot (in the source or a copy region).
    Missing,
    /// RDS reports a status other than `available`.
    NotAvailable,
    /// The snapshot is not encrypted.
    NotEncrypted,
    /// Encrypted with another key than the plan's for that region.
    WrongKey,
    /// The catalog has no completed copy for a copy region.
    CopyNotCompleted,
    /// The newest completed snapshot is older than the plan's RPO.
    RpoExceeded,
    /// The restore test failed (restore, wait, or a SQL assertion).
    RestoreTestFailed,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::NotAvailable => "not_available",
            Self::NotEncrypted => "not_encrypted",
            Self::WrongKey => "wrong_key",
            Self::CopyNotCompleted => "copy_not_completed",
            Self::RpoExceeded => "rpo_exceeded",
            Self::RestoreTestFailed => "restore_test_failed",
        }
    }
}

/// One problem: where, what, in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotProblem {
    pub region: String,
    pub kind: ProblemKind,
    pub detail: String,
}

/// A restore test's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreTestOutcome {
    /// The temporary instance.
    pub instance: String,
    pub passed: bool,
    /// From the restore request until the instance answered `available`
    /// (the RTO sample), when it got that far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_seconds: Option<f64>,
    /// The checks' results, when they ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<crate::validate::ValidationReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether the temporary instance was deleted afterwards.
    pub cleaned_up: bool,
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
        format!("snapshot#{}#{}#{}", self.plan, self.resource, self.scheduled_time)
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
    copies: Vec<crate::snapshot::CopyRecord>,
}

#[derive(Serialize, Deserialize)]
struct HoldItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    record: HoldRecord,
}

/// This module's items in the catalog table (get one with
/// `Catalog::snapshot_checks`), next to the snapshot records it reads.
#[derive(Clone, Debug)]
pub struct SnapshotChecks {
    client: aws_sdk_dynamodb::Client,
    table: String,
    region: String,
    records: SnapshotCatalog,
}

impl crate::catalog::Catalog {
    /// Snapshot verifications, holds and deletions kept in this catalog's table.
    pub fn snapshot_checks(&self) -> SnapshotChecks {
        SnapshotChecks::new(self.client().clone(), self.table(), self.region())
    }
}

impl SnapshotChecks {
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str, region: &str) -> Self {
        Self {
            records: SnapshotCatalog::new(client.clone(), table, region),
            client,
            table: table.to_owned(),
            region: region.to_owned(),
        }
    }

    /// The snapshot records themselves.
    pub fn records(&self) -> &SnapshotCatalog {
        &self.records
    }

    fn error<E, R>(&self, error: SdkError<E, R>) -> CatalogError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        dynamo_error(&self.table, &self.region, error)
    }

    fn corrupt(&self, pk: String, message: impl ToString) -> CatalogError {
        CatalogError::Corrupt {
            table: self.table.clone(),
            pk,
            message: message.to_string(),
        }
    }

    /// Stores one verification.
    pub async fn record(&self, verification: &SnapshotVerification) -> Result<(), CatalogError> {
        let pk = verification.pk();
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(VerificationItem {
            pk: pk.clone(),
            sk: format!("{VERIFY_SK_PREFIX}{}", verification.started_at),
            record: verification.clone(),
        })
        .map_err(|e| self.corrupt(pk, e))?;
        self.client
            .put_item()
            .table_name(&self.table)
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
            .client
            .query()
            .table_name(&self.table)
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
        let tombstone_pk = format!(
            "snapshot-deleted#{}#{}#{}",
            record.plan, record.resource, record.scheduled_time
        );
        let tombstone: HashMap<String, AttributeValue> = serde_dynamo::to_item(DeletedItem {
            pk: tombstone_pk.clone(),
            sk: "snapshot".into(),
            status: "deleted".into(),
            deleted_at: at.to_owned(),
            snapshot: record.clone(),
            copies: history.copies.clone(),
        })
        .map_err(|e| self.corrupt(tombstone_pk, e))?;
        let key = |sk: String| {
            aws_sdk_dynamodb::types::Delete::builder()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(pk.clone()))
                .key("sk", AttributeValue::S(sk))
        };
        let build = |e: aws_sdk_dynamodb::error::BuildError| self.corrupt(pk.clone(), e);
        let mut items = vec![
            aws_sdk_dynamodb::types::TransactWriteItem::builder()
                .put(
                    aws_sdk_dynamodb::types::Put::builder()
                        .table_name(&self.table)
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
                    .delete(key(format!("copy#{}", copy.region)).build().map_err(build)?)
                    .build(),
            );
        }
        match self
            .client
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
        if self.find(&hold.backup_id).await?.is_none() {
            return Err(SnapshotOpsError::UnknownSnapshot {
                id: hold.backup_id.clone(),
            });
        }
        let pk = format!("hold#{}", hold.backup_id);
        let item = serde_dynamo::to_item(HoldItem {
            pk: pk.clone(),
            sk: HOLD_SK.into(),
            record: hold.clone(),
        })
        .map_err(|e| self.corrupt(pk, e))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(s)) if s.err().is_conditional_check_failed_exception() => Ok(false),
            Err(e) => Err(self.error(e).into()),
        }
    }
}

/// The plans named (all when `names` is empty), or which name is unknown.
pub fn select_plans(plans: &[Plan], names: &[String]) -> Result<Vec<Plan>, SnapshotOpsError> {
    if names.is_empty() {
        return Ok(plans.to_vec());
    }
    names
        .iter()
        .map(|name| {
            plans
                .iter()
                .find(|p| &p.name == name)
                .cloned()
                .ok_or_else(|| SnapshotOpsError::UnknownPlan {
                    name: name.clone(),
                    known: plans.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "),
                })
        })
        .collect()
}

/// Where a function's plan file is, from its two settings
/// (`LIFEBOAT_PLANS_TOML`: the text; `LIFEBOAT_PLANS`: `s3://BUCKET/KEY` or
/// a path), as the snapshot function reads them; `None` if neither is set.
pub fn plan_source(inline: Option<String>, location: Option<String>) -> Result<Option<PlanSource>, String> {
    match (inline, location) {
        (Some(text), None) => Ok(Some(PlanSource::Inline(text))),
        (None, Some(location)) => PlanSource::parse(&location)
            .map(Some)
            .map_err(|e| format!("LIFEBOAT_PLANS: {e}")),
        (Some(_), Some(_)) => Err("both LIFEBOAT_PLANS and LIFEBOAT_PLANS_TOML are set: set one".to_owned()),
        (None, None) => Ok(None),
    }
}

/// The newest completed snapshot of each (plan, resource), by plan and resource.
pub fn newest_completed(histories: &[SnapshotHistory]) -> Vec<&SnapshotHistory> {
    let mut newest: std::collections::BTreeMap<(&str, &str), &SnapshotHistory> = std::collections::BTreeMap::new();
    for history in histories {
        if history.snapshot.status != SnapshotStatus::Completed {
            continue;
        }
        let key = (history.snapshot.plan.as_str(), history.snapshot.resource.as_str());
        let better = newest
            .get(&key)
            .is_none_or(|h| h.snapshot.scheduled_time < history.snapshot.scheduled_time);
        if better {
            newest.insert(key, history);
        }
    }
    newest.into_values().collect()
}

/// Whether a snapshot, or any of its copies, is still being made.
pub fn in_progress(history: &SnapshotHistory) -> bool {
    history.snapshot.status == SnapshotStatus::InProgress || history.copies.iter().any(|c| c.status.is_open())
}

/// A time as the records write it (RFC 3339, UTC, milliseconds).
pub(crate) fn moment(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_file_setting_is_one_of_two_or_none() {
        assert_eq!(plan_source(None, None), Ok(None));
        assert_eq!(
            plan_source(Some("[[plan]]".into()), None),
            Ok(Some(PlanSource::Inline("[[plan]]".into())))
        );
        assert_eq!(
            plan_source(None, Some("s3://b/plans.toml".into())),
            Ok(Some(PlanSource::S3 {
                bucket: "b".into(),
                key: "plans.toml".into()
            }))
        );
        let both = plan_source(Some("x".into()), Some("y".into())).unwrap_err();
        assert!(both.contains("set one"), "{both}");
        let bad = plan_source(None, Some("http://x".into())).unwrap_err();
        assert!(bad.starts_with("LIFEBOAT_PLANS"), "{bad}");
    }

    #[test]
    fn plans_are_selected_by_name_and_an_unknown_one_is_named() {
        let plans = crate::plan::parse_plans(
            r#"[[plan]]
name = "a"
schedule = "rate(1 day)"
resources = ["orders"]
retention = { keep_days = 7 }
rpo = "26h"
tier = "critical"
"#,
            "2026-11-23T00:00:00Z".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(select_plans(&plans, &[]).unwrap().len(), 1);
        assert_eq!(select_plans(&plans, &["a".into()]).unwrap()[0].name, "a");
        let unknown = select_plans(&plans, &["b".into()]).unwrap_err().to_string();
        assert!(unknown.contains("\"b\"") && unknown.contains("it has: a"), "{unknown}");
    }
}
