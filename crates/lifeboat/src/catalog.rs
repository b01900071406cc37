//! The catalog: one DynamoDB table holding a record per backup.
//!
//! Keys (see ARCHITECTURE.md, "The catalog table"):
//! - backup record: `pk = backup#ID`, `sk = backup`;
//! - idempotency claim: `pk = event#KEY`, `sk = event`, pointing at a backup;
//! - hold (legal hold): `pk = hold#ID`, `sk = hold`, no GSI keys;
//! - GSI `bySource` (`gsi1pk = source#SOURCE`, `gsi1sk = CREATEDAT#ID`): a
//!   source's backups in time order;
//! - GSI `byTime` (`gsi2pk = backup`, `gsi2sk = CREATEDAT#ID`): all backups in
//!   time order.
//!
//! Status moves pending → in_progress → completed | failed (and, by retention,
//! completed | failed → deleted), each step a conditional update, so two
//! writers can never both complete one backup.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, Put, ScalarAttributeType, TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};

use crate::format::BackupType;

pub const DEFAULT_TABLE: &str = "lifeboat-catalog";
/// An unfinished backup claimed by an event this long ago was abandoned (a
/// Lambda invocation lasts at most 15 minutes).
pub const ABANDONED_AFTER: time::Duration = time::Duration::minutes(20);
const BY_SOURCE: &str = "bySource";
const BY_TIME: &str = "byTime";

/// Now, as the catalog writes times: RFC 3339, UTC, milliseconds.
pub fn now_rfc3339() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

pub fn format_time(at: time::OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupStatus {
    Pending,
    InProgress,
    Completed,
    Failed,
    /// Expired by retention: the manifest is gone (or going); the record stays as history.
    Deleted,
}

impl BackupStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Deleted => "deleted",
        }
    }
}

/// A backup's catalog record. Field names are the API's (`--output json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub backup_type: BackupType,
    pub status: BackupStatus,
    pub source: String,
    /// Plaintext bytes of every entry of the backup.
    pub size: u64,
    /// Bytes this backup added to the store (packs, index, manifest).
    pub compressed_size: u64,
    pub entry_count: u64,
    /// Entries read because they were new or changed (the rest came from the parent).
    pub changed_count: u64,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_until: Option<String>,
    /// SHA-256 of the stored manifest object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Where the manifest is: `s3://bucket/prefix/manifests/ID`.
    pub storage_location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_backup: Option<String>,
    pub kms_key_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A database dump's engine (`postgresql`, `mysql`); absent for file backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The dumped server's version, as the server reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// The dumped database's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

/// The stored item: the record plus its keys.
#[derive(Serialize, Deserialize)]
struct BackupItem {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    gsi2pk: String,
    gsi2sk: String,
    #[serde(flatten)]
    record: BackupRecord,
}

impl BackupItem {
    fn new(record: BackupRecord) -> Self {
        let order = format!("{}#{}", record.created_at, record.id);
        Self {
            pk: backup_pk(&record.id),
            sk: "backup".into(),
            gsi1pk: format!("source#{}", record.source),
            gsi1sk: order.clone(),
            gsi2pk: "backup".into(),
            gsi2sk: order,
            record,
        }
    }
}

/// Whether an RFC 3339 time lies more than `age` in the past. An unreadable
/// time counts as old: a record nobody can date cannot hold a claim forever.
fn started_before(created_at: &str, age: time::Duration) -> bool {
    match time::OffsetDateTime::parse(created_at, &time::format_description::well_known::Rfc3339) {
        Ok(at) => time::OffsetDateTime::now_utc() - at > age,
        Err(_) => true,
    }
}

fn backup_pk(id: &str) -> String {
    format!("backup#{id}")
}

fn hold_pk(id: &str) -> String {
    format!("hold#{id}")
}

fn event_pk(key: &str) -> String {
    format!("event#{key}")
}

/// What a DynamoDB error means for the catalog table (also used by the
/// audit trail, which lives in the same table).
pub(crate) fn dynamo_error<E, R>(table: &str, region: &str, error: SdkError<E, R>) -> CatalogError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let (code, message) = match &error {
        SdkError::ServiceError(service) => {
            let err = service.err();
            (
                err.code().map(str::to_owned),
                err.message().map(str::to_owned).unwrap_or_else(|| err.to_string()),
            )
        }
        other => (None, aws_sdk_dynamodb::error::DisplayErrorContext(other).to_string()),
    };
    match code.as_deref() {
        Some("ResourceNotFoundException") => CatalogError::NoTable {
            table: table.to_owned(),
            region: region.to_owned(),
        },
        Some("AccessDeniedException") => CatalogError::AccessDenied {
            table: table.to_owned(),
            message,
        },
        _ => CatalogError::Dynamo {
            table: table.to_owned(),
            message,
        },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog table {table} does not exist in region {region}: run `lifeboat init --create-table`, deploy the Lifeboat stack, or pass --table / set LIFEBOAT_TABLE")]
    NoTable { table: String, region: String },
    #[error("access to catalog table {table} was denied ({message}): the role needs dynamodb:GetItem, PutItem, UpdateItem and Query on it")]
    AccessDenied { table: String, message: String },
    #[error("backup {id} is not {expected} (someone else changed it first): nothing was overwritten")]
    Conflict { id: String, expected: String },
    #[error("no backup {id} in catalog table {table}: list backups with `lifeboat backups list`")]
    UnknownBackup { id: String, table: String },
    #[error("catalog table {table}: {message}")]
    Dynamo { table: String, message: String },
    #[error("catalog table {table} holds an item Lifeboat cannot read ({pk}): {message}")]
    Corrupt { table: String, pk: String, message: String },
}

/// The result of claiming a backup.
#[derive(Debug)]
pub enum Begin {
    Started,
    /// The idempotency key was claimed before: this is that backup.
    Duplicate(Box<BackupRecord>),
}

/// Fields set when a backup completes.
#[derive(Clone, Debug, Default)]
pub struct Completion {
    pub size: u64,
    pub compressed_size: u64,
    pub entry_count: u64,
    pub changed_count: u64,
    pub checksum: String,
}

/// The kind of a verification (API: `backup_verifications.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerificationType {
    /// The manifest, the index and a listing of the packs: no data read.
    Quick,
    /// Also every pack and every entry read back and checked.
    Deep,
    /// A share of the store's packs read whole (`verify::sample`); recorded
    /// on the backups whose data it found damaged.
    Sample,
}

impl VerificationType {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Quick => "quick",
            Self::Deep => "deep",
            Self::Sample => "sample",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerificationStatus {
    Passed,
    Failed,
}

impl VerificationStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
        }
    }
}

/// One verification of a backup, as the API's `backup_verifications` has it.
/// Stored as `pk = backup#ID`, `sk = verify#STARTEDAT`, with no GSI keys, so
/// it never appears in backup listings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationRecord {
    pub backup_id: String,
    #[serde(rename = "type")]
    pub verification_type: VerificationType,
    pub status: VerificationStatus,
    pub started_at: String,
    pub completed_at: String,
    pub checksum_valid: bool,
    /// Whether a test restore succeeded; `null` for file backups (a deep
    /// verification reads every entry back instead).
    pub restore_test_passed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The stored verification item: the record plus its keys (no GSI keys).
#[derive(Serialize, Deserialize)]
struct VerificationItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    record: VerificationRecord,
}

const VERIFY_SK_PREFIX: &str = "verify#";

/// A hold (legal hold) on a backup: retention never deletes a held backup.
/// Stored as `pk = hold#ID`, `sk = hold`, with no GSI keys, so it never
/// appears in backup listings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldRecord {
    pub backup_id: String,
    pub reason: String,
    /// Who placed it.
    pub actor: String,
    pub created_at: String,
}

#[derive(Serialize, Deserialize)]
struct HoldItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    record: HoldRecord,
}

#[derive(Clone, Debug)]
pub struct Catalog {
    client: aws_sdk_dynamodb::Client,
    table: String,
    region: String,
}

impl Catalog {
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str, region: &str) -> Self {
        Self {
            client,
            table: table.to_owned(),
            region: region.to_owned(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The audit trail kept in this catalog's table (`crate::audit`).
    pub fn audit_trail(&self) -> crate::audit::AuditTrail {
        crate::audit::AuditTrail::new(self.client.clone(), &self.table, &self.region)
    }

    /// The recovery jobs kept in this catalog's table (`crate::jobs`).
    pub fn jobs(&self) -> crate::jobs::Jobs {
        crate::jobs::Jobs::new(self.client.clone(), &self.table, &self.region)
    }

    /// The snapshot and copy records kept in this catalog's table (`crate::snapshot`).
    pub fn snapshots(&self) -> crate::snapshot::SnapshotCatalog {
        crate::snapshot::SnapshotCatalog::new(self.client.clone(), &self.table, &self.region)
    }

    /// Snapshot verifications, holds and deletions (`crate::snapshot::verifications`).
    pub fn snapshot_checks(&self) -> crate::snapshot::SnapshotChecks {
        crate::snapshot::SnapshotChecks::new(self.client.clone(), &self.table, &self.region)
    }

    /// The alert state kept in this catalog's table (`crate::alert`).
    pub fn alert_state(&self) -> crate::alert::AlertState {
        crate::alert::AlertState::new(self.client.clone(), &self.table, &self.region)
    }

    fn error<E, R>(&self, error: SdkError<E, R>) -> CatalogError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        dynamo_error(&self.table, &self.region, error)
    }

    /// Creates the table with its indexes; `false` if it already existed.
    pub async fn create_table(&self) -> Result<bool, CatalogError> {
        let key = |name: &str, kind: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let gsi = |name: &str, hash: &str, range: &str| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(hash, KeyType::Hash).expect("static key schema"))
                .key_schema(key(range, KeyType::Range).expect("static key schema"))
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
        };
        let request = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash).expect("static key schema"))
            .key_schema(key("sk", KeyType::Range).expect("static key schema"))
            .set_attribute_definitions(Some(
                ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"]
                    .into_iter()
                    .map(|n| attr(n).expect("static attribute"))
                    .collect(),
            ))
            .global_secondary_indexes(gsi(BY_SOURCE, "gsi1pk", "gsi1sk").expect("static index"))
            .global_secondary_indexes(gsi(BY_TIME, "gsi2pk", "gsi2sk").expect("static index"));
        match request.send().await {
            Ok(_) => {}
            Err(e) => {
                let exists = matches!(&e, SdkError::ServiceError(s) if s.err().is_resource_in_use_exception());
                if exists {
                    return Ok(false);
                }
                return Err(self.error(e));
            }
        }
        for _ in 0..120 {
            let described = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| self.error(e))?;
            let active = described
                .table()
                .and_then(|t| t.table_status())
                .is_some_and(|s| *s == aws_sdk_dynamodb::types::TableStatus::Active);
            if active {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        Ok(true)
    }

    fn to_item(&self, record: &BackupRecord) -> Result<HashMap<String, AttributeValue>, CatalogError> {
        serde_dynamo::to_item(BackupItem::new(record.clone())).map_err(|e| CatalogError::Corrupt {
            table: self.table.clone(),
            pk: backup_pk(&record.id),
            message: e.to_string(),
        })
    }

    fn record_from_item(&self, item: HashMap<String, AttributeValue>) -> Result<BackupRecord, CatalogError> {
        let pk = item.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        serde_dynamo::from_item::<_, BackupItem>(item)
            .map(|i| i.record)
            .map_err(|e| CatalogError::Corrupt {
                table: self.table.clone(),
                pk,
                message: e.to_string(),
            })
    }

    /// Records a new backup as pending. With an idempotency key (a scheduled
    /// event's id), a second claim of the same key returns the first backup
    /// instead, unless that one failed, in which case this one takes over.
    pub async fn begin(&self, record: &BackupRecord, idempotency_key: Option<&str>) -> Result<Begin, CatalogError> {
        let put_backup = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.to_item(record)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| CatalogError::Dynamo {
                table: self.table.clone(),
                message: e.to_string(),
            })?;
        let Some(key) = idempotency_key else {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(put_backup.item().clone()))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await
                .map_err(|e| self.error(e))?;
            return Ok(Begin::Started);
        };
        let claim = Put::builder()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(event_pk(key)))
            .item("sk", AttributeValue::S("event".into()))
            .item("backupId", AttributeValue::S(record.id.clone()))
            .item("createdAt", AttributeValue::S(record.created_at.clone()))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| CatalogError::Dynamo {
                table: self.table.clone(),
                message: e.to_string(),
            })?;
        let first = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(claim).build())
            .transact_items(TransactWriteItem::builder().put(put_backup.clone()).build())
            .send()
            .await;
        match first {
            Ok(_) => return Ok(Begin::Started),
            Err(e) if !is_condition_failure(&e) => return Err(self.error(e)),
            Err(_) => {}
        }
        // Claimed before: find the backup that holds the claim.
        let claim = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(event_pk(key)))
            .key("sk", AttributeValue::S("event".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        let holder = claim
            .item()
            .and_then(|i| i.get("backupId"))
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let existing = self.get(&holder).await?;
        let unfinished = matches!(existing.status, BackupStatus::Pending | BackupStatus::InProgress);
        let abandoned = unfinished && started_before(&existing.created_at, ABANDONED_AFTER);
        if existing.status != BackupStatus::Failed && !abandoned {
            return Ok(Begin::Duplicate(Box::new(existing)));
        }
        if abandoned {
            // No function runs longer than Lambda's 15 minutes: whoever ran
            // this backup is gone. Say so in its record, then retry it.
            let message = format!(
                "abandoned: still {} {} minutes after it started; a redelivery of the same event retried it",
                existing.status.as_str(),
                ABANDONED_AFTER.whole_minutes()
            );
            match self.fail(&existing.id, &message).await {
                Ok(()) | Err(CatalogError::Conflict { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        // The earlier attempt failed: a redelivery retries it under a new id.
        let take_over = Update::builder()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(event_pk(key)))
            .key("sk", AttributeValue::S("event".into()))
            .update_expression("SET backupId = :new")
            .condition_expression("backupId = :old")
            .expression_attribute_values(":new", AttributeValue::S(record.id.clone()))
            .expression_attribute_values(":old", AttributeValue::S(holder))
            .build()
            .map_err(|e| CatalogError::Dynamo {
                table: self.table.clone(),
                message: e.to_string(),
            })?;
        match self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(take_over).build())
            .transact_items(TransactWriteItem::builder().put(put_backup).build())
            .send()
            .await
        {
            Ok(_) => Ok(Begin::Started),
            Err(e) if is_condition_failure(&e) => Ok(Begin::Duplicate(Box::new(existing))),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn update_status(
        &self,
        id: &str,
        from: &[BackupStatus],
        to: BackupStatus,
        extra: &[(&str, AttributeValue)],
    ) -> Result<(), CatalogError> {
        let mut expression = String::from("SET #status = :to");
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(backup_pk(id)))
            .key("sk", AttributeValue::S("backup".into()))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":to", AttributeValue::S(to.as_str().into()));
        for (i, (name, value)) in extra.iter().enumerate() {
            expression.push_str(&format!(", #f{i} = :v{i}"));
            request = request
                .expression_attribute_names(format!("#f{i}"), *name)
                .expression_attribute_values(format!(":v{i}"), value.clone());
        }
        let mut condition = Vec::new();
        for (i, status) in from.iter().enumerate() {
            condition.push(format!("#status = :from{i}"));
            request =
                request.expression_attribute_values(format!(":from{i}"), AttributeValue::S(status.as_str().into()));
        }
        let result = request
            .update_expression(expression)
            .condition_expression(format!("attribute_exists(pk) AND ({})", condition.join(" OR ")))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(s)) if s.err().is_conditional_check_failed_exception() => {
                Err(CatalogError::Conflict {
                    id: id.to_owned(),
                    expected: from.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or "),
                })
            }
            Err(e) => Err(self.error(e)),
        }
    }

    pub async fn mark_in_progress(&self, id: &str) -> Result<(), CatalogError> {
        self.update_status(id, &[BackupStatus::Pending], BackupStatus::InProgress, &[])
            .await
    }

    /// The last write of a backup: only an in-progress backup can complete.
    pub async fn complete(&self, id: &str, done: &Completion) -> Result<(), CatalogError> {
        let n = |v: u64| AttributeValue::N(v.to_string());
        self.update_status(
            id,
            &[BackupStatus::InProgress],
            BackupStatus::Completed,
            &[
                ("size", n(done.size)),
                ("compressedSize", n(done.compressed_size)),
                ("entryCount", n(done.entry_count)),
                ("changedCount", n(done.changed_count)),
                ("checksum", AttributeValue::S(done.checksum.clone())),
                ("completedAt", AttributeValue::S(now_rfc3339())),
            ],
        )
        .await
    }

    /// Marks a completed or failed backup deleted (retention), recording when
    /// as `deletedAt`. Anything else (unfinished, already deleted) is a conflict.
    pub async fn mark_deleted(&self, id: &str, at: &str) -> Result<(), CatalogError> {
        self.update_status(
            id,
            &[BackupStatus::Completed, BackupStatus::Failed],
            BackupStatus::Deleted,
            &[("deletedAt", AttributeValue::S(at.to_owned()))],
        )
        .await
    }

    pub async fn fail(&self, id: &str, error: &str) -> Result<(), CatalogError> {
        self.update_status(
            id,
            &[BackupStatus::Pending, BackupStatus::InProgress],
            BackupStatus::Failed,
            &[
                ("error", AttributeValue::S(error.to_owned())),
                ("completedAt", AttributeValue::S(now_rfc3339())),
            ],
        )
        .await
    }

    pub async fn get(&self, id: &str) -> Result<BackupRecord, CatalogError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(backup_pk(id)))
            .key("sk", AttributeValue::S("backup".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        match output.item {
            Some(item) => self.record_from_item(item),
            None => Err(CatalogError::UnknownBackup {
                id: id.to_owned(),
                table: self.table.clone(),
            }),
        }
    }

    /// Backups, newest first; of one source when `source` is given.
    pub async fn list(&self, source: Option<&str>) -> Result<Vec<BackupRecord>, CatalogError> {
        let (index, key_name, key_value) = match source {
            Some(source) => (BY_SOURCE, "gsi1pk", format!("source#{source}")),
            None => (BY_TIME, "gsi2pk", "backup".to_owned()),
        };
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", key_name)
            .expression_attribute_values(":v", AttributeValue::S(key_value))
            .scan_index_forward(false)
            .into_paginator()
            .items()
            .send();
        let mut records = Vec::new();
        while let Some(item) = pages.next().await {
            records.push(self.record_from_item(item.map_err(|e| self.error(e))?)?);
        }
        Ok(records)
    }

    /// The newest completed backup of `source` that `accept` accepts.
    pub async fn latest_completed(
        &self,
        source: &str,
        accept: impl Fn(&BackupRecord) -> bool,
    ) -> Result<Option<BackupRecord>, CatalogError> {
        Ok(self
            .list(Some(source))
            .await?
            .into_iter()
            .find(|r| r.status == BackupStatus::Completed && accept(r)))
    }

    /// Stores one verification of a backup (`pk = backup#ID`, `sk = verify#STARTEDAT`).
    pub async fn record_verification(&self, record: &VerificationRecord) -> Result<(), CatalogError> {
        let pk = backup_pk(&record.backup_id);
        let item = serde_dynamo::to_item(VerificationItem {
            pk: pk.clone(),
            sk: format!("{VERIFY_SK_PREFIX}{}", record.started_at),
            record: record.clone(),
        })
        .map_err(|e| CatalogError::Corrupt {
            table: self.table.clone(),
            pk,
            message: e.to_string(),
        })?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// A backup's verifications, newest first; at most `limit` when given.
    pub async fn verifications(&self, id: &str, limit: Option<i32>) -> Result<Vec<VerificationRecord>, CatalogError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :verify)")
            .expression_attribute_values(":pk", AttributeValue::S(backup_pk(id)))
            .expression_attribute_values(":verify", AttributeValue::S(VERIFY_SK_PREFIX.into()))
            .scan_index_forward(false)
            .set_limit(limit)
            .into_paginator()
            .items()
            .send();
        let mut records = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| self.error(e))?;
            let record = serde_dynamo::from_item::<_, VerificationItem>(item)
                .map(|i| i.record)
                .map_err(|e| CatalogError::Corrupt {
                    table: self.table.clone(),
                    pk: backup_pk(id),
                    message: e.to_string(),
                })?;
            records.push(record);
            if limit.is_some_and(|n| records.len() >= n.max(0) as usize) {
                break;
            }
        }
        Ok(records)
    }
}

impl Catalog {
    /// Places a hold on a backup that exists. Returns `false` (and changes
    /// nothing) if the backup was already held.
    pub async fn add_hold(&self, hold: &HoldRecord) -> Result<bool, CatalogError> {
        self.get(&hold.backup_id).await?;
        let pk = hold_pk(&hold.backup_id);
        let item = serde_dynamo::to_item(HoldItem {
            pk: pk.clone(),
            sk: "hold".into(),
            record: hold.clone(),
        })
        .map_err(|e| CatalogError::Corrupt {
            table: self.table.clone(),
            pk,
            message: e.to_string(),
        })?;
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
            Err(e) => Err(self.error(e)),
        }
    }

    /// Lifts the hold on a backup. Returns the hold lifted, `None` if there was none.
    pub async fn remove_hold(&self, id: &str) -> Result<Option<HoldRecord>, CatalogError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(hold_pk(id)))
            .key("sk", AttributeValue::S("hold".into()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        output.attributes.map(|item| self.hold_from_item(item)).transpose()
    }

    /// Every hold, oldest first. A scan of the table (holds have no index;
    /// they are few and read only by retention and `lifeboat hold list`).
    pub async fn list_holds(&self) -> Result<Vec<HoldRecord>, CatalogError> {
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :hold AND begins_with(pk, :prefix)")
            .expression_attribute_values(":hold", AttributeValue::S("hold".into()))
            .expression_attribute_values(":prefix", AttributeValue::S("hold#".into()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut holds = Vec::new();
        while let Some(item) = pages.next().await {
            holds.push(self.hold_from_item(item.map_err(|e| self.error(e))?)?);
        }
        holds.sort_by(|a, b| (&a.created_at, &a.backup_id).cmp(&(&b.created_at, &b.backup_id)));
        Ok(holds)
    }

    fn hold_from_item(&self, item: HashMap<String, AttributeValue>) -> Result<HoldRecord, CatalogError> {
        let pk = item.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        serde_dynamo::from_item::<_, HoldItem>(item)
            .map(|i| i.record)
            .map_err(|e| CatalogError::Corrupt {
                table: self.table.clone(),
                pk,
                message: e.to_string(),
            })
    }
}

fn is_condition_failure<R>(
    error: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
) -> bool {
    match error {
        SdkError::ServiceError(service) => match service.err() {
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(t) => t
                .cancellation_reasons()
                .iter()
                .any(|r| r.code() == Some("ConditionalCheckFailed")),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> BackupRecord {
        BackupRecord {
            id: "bk-20261123T105300Z-0000abcd".into(),
            backup_type: BackupType::Incremental,
            status: BackupStatus::InProgress,
            source: "s3://data/app".into(),
            size: 10,
            compressed_size: 5,
            entry_count: 2,
            changed_count: 1,
            created_at: "2026-11-23T10:53:00.000Z".into(),
            completed_at: None,
            retention_until: None,
            checksum: None,
            storage_location: "s3://store/manifests/bk".into(),
            parent_backup: Some("bk-parent".into()),
            kms_key_id: "arn:k".into(),
            error: None,
            engine: None,
            server_version: None,
            database: None,
        }
    }

    #[test]
    fn items_carry_keys_and_round_trip() {
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(BackupItem::new(record())).unwrap();
        assert_eq!(item["pk"].as_s().unwrap(), "backup#bk-20261123T105300Z-0000abcd");
        assert_eq!(item["gsi1pk"].as_s().unwrap(), "source#s3://data/app");
        assert_eq!(item["status"].as_s().unwrap(), "in_progress");
        assert_eq!(item["type"].as_s().unwrap(), "incremental");
        assert!(!item.contains_key("error"));
        let back: BackupItem = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back.record, record());
    }

    #[test]
    fn verification_items_have_no_gsi_keys_and_round_trip() {
        let record = VerificationRecord {
            backup_id: "bk-20261123T105300Z-0000abcd".into(),
            verification_type: VerificationType::Deep,
            status: VerificationStatus::Failed,
            started_at: "2026-11-23T11:00:00.000Z".into(),
            completed_at: "2026-11-23T11:00:05.000Z".into(),
            checksum_valid: true,
            restore_test_passed: None,
            error: Some("1 problem".into()),
        };
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(VerificationItem {
            pk: backup_pk(&record.backup_id),
            sk: format!("{VERIFY_SK_PREFIX}{}", record.started_at),
            record: record.clone(),
        })
        .unwrap();
        assert_eq!(item["sk"].as_s().unwrap(), "verify#2026-11-23T11:00:00.000Z");
        assert_eq!(item["type"].as_s().unwrap(), "deep");
        assert_eq!(item["status"].as_s().unwrap(), "failed");
        assert!(matches!(item["restoreTestPassed"], AttributeValue::Null(true)));
        assert!(item.keys().all(|k| !k.starts_with("gsi")), "{item:?}");
        let back: VerificationItem = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back.record, record);
    }

    #[test]
    fn hold_items_have_no_gsi_keys_and_round_trip() {
        let hold = HoldRecord {
            backup_id: "bk-20261123T105300Z-0000abcd".into(),
            reason: "litigation 2026-17".into(),
            actor: "alice".into(),
            created_at: "2026-11-23T11:00:00.000Z".into(),
        };
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(HoldItem {
            pk: hold_pk(&hold.backup_id),
            sk: "hold".into(),
            record: hold.clone(),
        })
        .unwrap();
        assert_eq!(item["pk"].as_s().unwrap(), "hold#bk-20261123T105300Z-0000abcd");
        assert_eq!(item["sk"].as_s().unwrap(), "hold");
        assert_eq!(item["createdAt"].as_s().unwrap(), "2026-11-23T11:00:00.000Z");
        assert!(item.keys().all(|k| !k.starts_with("gsi")), "{item:?}");
        let back: HoldItem = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back.record, hold);
    }

    #[test]
    fn claims_expire_only_after_the_abandon_time() {
        let now = time::OffsetDateTime::now_utc();
        let minutes_ago = |m: i64| format_time(now - time::Duration::minutes(m));
        assert!(!started_before(&minutes_ago(1), ABANDONED_AFTER));
        assert!(!started_before(&minutes_ago(19), ABANDONED_AFTER));
        assert!(started_before(&minutes_ago(21), ABANDONED_AFTER));
        assert!(started_before("not a time", ABANDONED_AFTER));
    }

    #[test]
    fn json_uses_the_api_field_names() {
        let json = serde_json::to_value(record()).unwrap();
        for field in [
            "id",
            "type",
            "status",
            "source",
            "size",
            "compressedSize",
            "createdAt",
            "parentBackup",
            "storageLocation",
        ] {
            assert!(json.get(field).is_some(), "{field} missing from {json}");
        }
    }
}

/// Where the store walk of sample verification (`verify::sample`) stopped.
/// Stored as `pk = verifysample#STORE`, `sk = cursor`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SampleCursor {
    /// The key of the last pack checked; the next run starts after it.
    pub after: String,
    /// Complete walks of the store so far.
    pub passes: u64,
    pub updated_at: String,
}

impl Catalog {
    pub async fn sample_cursor(&self, store: &str) -> Result<Option<SampleCursor>, CatalogError> {
        let pk = format!("verifysample#{store}");
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.clone()))
            .key("sk", AttributeValue::S("cursor".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error(e))?
            .item;
        item.map(|item| {
            serde_dynamo::from_item(item).map_err(|e| CatalogError::Corrupt {
                table: self.table.clone(),
                pk: pk.clone(),
                message: e.to_string(),
            })
        })
        .transpose()
    }

    pub async fn set_sample_cursor(&self, store: &str, cursor: &SampleCursor) -> Result<(), CatalogError> {
        let pk = format!("verifysample#{store}");
        let mut item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(cursor).map_err(|e| CatalogError::Corrupt {
                table: self.table.clone(),
                pk: pk.clone(),
                message: e.to_string(),
            })?;
        item.insert("pk".into(), AttributeValue::S(pk));
        item.insert("sk".into(), AttributeValue::S("cursor".into()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }
}
