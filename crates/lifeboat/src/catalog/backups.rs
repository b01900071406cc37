//! Backup records in the catalog (`pk = backup#ID`, `sk = backup`, listed
//! through `bySource` and `byTime`) and the idempotency claims
//! (`pk = event#KEY`) that tie a scheduled event to the backup it started.
//!
//! Status moves pending → in_progress → completed | failed (and, by
//! retention, completed | failed → deleted), each step a conditional update,
//! so two writers can never both complete one backup. A running backup
//! refreshes `heartbeatAt` (`super::claims`); invariant: a claim is taken
//! over only when its record is unfinished with a heartbeat older than the
//! stale threshold, and the takeover fails that record first (conditional on
//! the stale heartbeat), so the old holder's `complete` can never succeed.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::claims::is_stale;
use super::{keys, Catalog, CatalogError, Item};
use crate::format::BackupType;
use crate::times;

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
    /// The `storeId` of the store's `config`: which store holds the backup,
    /// whatever its location is called. Absent on records written before
    /// stores were identified (see `repo::Repository::attribute`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
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
    /// The backup's ticket of its store's GC sequence, taken before it
    /// loaded the index (`catalog::leases`); absent on older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_ticket: Option<u64>,
    /// When the backup's holder last said it was alive (`catalog::claims`):
    /// set at the start, refreshed while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_at: Option<String>,
}

impl BackupRecord {
    /// When its holder was last known alive: the heartbeat, else the start.
    pub fn last_alive(&self) -> &str {
        self.heartbeat_at.as_deref().unwrap_or(&self.created_at)
    }
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
        let order = keys::backup_order(&record.created_at, &record.id);
        Self {
            pk: keys::backup_pk(&record.id),
            sk: keys::BACKUP_SK.into(),
            gsi1pk: keys::source_gsi1pk(&record.source),
            gsi1sk: order.clone(),
            gsi2pk: keys::BACKUP_GSI2PK.into(),
            gsi2sk: order,
            record,
        }
    }
}

/// The result of claiming a backup.
#[derive(Debug)]
pub enum Begin {
    Started,
    /// The idempotency key was claimed before: this is that backup
    /// (completed; a failed one is retried, an abandoned one taken over).
    Duplicate(Box<BackupRecord>),
    /// The idempotency key is held by a backup still running (its heartbeat
    /// is fresh): this delivery must fail, retryably, not report success.
    Busy(Box<BackupRecord>),
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

impl Catalog {
    fn backup_item(&self, record: &BackupRecord) -> Result<Item, CatalogError> {
        self.to_item(&keys::backup_pk(&record.id), BackupItem::new(record.clone()))
    }

    fn record_from_item(&self, item: Item) -> Result<BackupRecord, CatalogError> {
        self.from_item::<BackupItem>(item).map(|i| i.record)
    }

    /// Records a new backup as pending. With an idempotency key (a scheduled
    /// event's id), a second claim of the same key returns the first backup
    /// if it completed ([`Begin::Duplicate`]) or is still running with a
    /// fresh heartbeat ([`Begin::Busy`]); if it failed, or its heartbeat is
    /// older than the stale threshold (it is marked failed, "abandoned"),
    /// this one takes the claim over.
    pub async fn begin(&self, record: &BackupRecord, idempotency_key: Option<&str>) -> Result<Begin, CatalogError> {
        let put_backup = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.backup_item(record)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| self.build_error(e))?;
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
            .item("pk", AttributeValue::S(keys::event_pk(key)))
            .item("sk", AttributeValue::S(keys::EVENT_SK.into()))
            .item("backupId", AttributeValue::S(record.id.clone()))
            .item("createdAt", AttributeValue::S(record.created_at.clone()))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| self.build_error(e))?;
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
        let claim = self.get_item(&keys::event_pk(key), keys::EVENT_SK).await?;
        let holder = claim
            .as_ref()
            .and_then(|i| i.get("backupId"))
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let existing = self.get(&holder).await?;
        let unfinished = matches!(existing.status, BackupStatus::Pending | BackupStatus::InProgress);
        let stale = unfinished && is_stale(existing.last_alive(), self.claims.stale_after, times::now());
        match existing.status {
            BackupStatus::Failed => {}
            _ if stale => {
                // Its holder stopped refreshing the claim (killed by the
                // Lambda timeout, out of memory): fail it, conditional on the
                // heartbeat judged stale, so it can never complete afterwards.
                if !self.abandon(&existing).await? {
                    return Ok(Begin::Busy(Box::new(self.get(&existing.id).await?)));
                }
            }
            _ if unfinished => return Ok(Begin::Busy(Box::new(existing))),
            _ => return Ok(Begin::Duplicate(Box::new(existing))),
        }
        // The earlier attempt failed: a redelivery retries it under a new id.
        let take_over = Update::builder()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(keys::event_pk(key)))
            .key("sk", AttributeValue::S(keys::EVENT_SK.into()))
            .update_expression("SET backupId = :new")
            .condition_expression("backupId = :old")
            .expression_attribute_values(":new", AttributeValue::S(record.id.clone()))
            .expression_attribute_values(":old", AttributeValue::S(holder))
            .build()
            .map_err(|e| self.build_error(e))?;
        match self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(take_over).build())
            .transact_items(TransactWriteItem::builder().put(put_backup).build())
            .send()
            .await
        {
            Ok(_) => Ok(Begin::Started),
            // Another redelivery took the claim over first: that one runs.
            Err(e) if is_condition_failure(&e) => Ok(Begin::Busy(Box::new(existing))),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Marks an unfinished backup whose heartbeat is stale failed, if it is
    /// still unfinished with that very heartbeat; `false` if its holder
    /// refreshed it (or finished) meanwhile.
    async fn abandon(&self, existing: &BackupRecord) -> Result<bool, CatalogError> {
        let seen = existing.last_alive();
        let message = format!(
            "abandoned: no heartbeat since {seen} (more than {} ago); a redelivery of the same event took the backup over",
            times::duration_text(self.claims.stale_after)
        );
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let heartbeat_condition = if existing.heartbeat_at.is_some() {
            "#hb = :seen"
        } else {
            "attribute_not_exists(#hb)"
        };
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&keys::backup_pk(&existing.id)))
            .key("sk", s(keys::BACKUP_SK))
            .update_expression("SET #status = :failed, #error = :error, completedAt = :now")
            .condition_expression(format!("#status IN (:pending, :running) AND {heartbeat_condition}"))
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
            .expression_attribute_names("#hb", "heartbeatAt")
            .expression_attribute_values(":failed", s(BackupStatus::Failed.as_str()))
            .expression_attribute_values(":error", s(&message))
            .expression_attribute_values(":now", s(&times::now_text()))
            .expression_attribute_values(":pending", s(BackupStatus::Pending.as_str()))
            .expression_attribute_values(":running", s(BackupStatus::InProgress.as_str()));
        if existing.heartbeat_at.is_some() {
            request = request.expression_attribute_values(":seen", s(seen));
        }
        match request.send().await {
            Ok(_) => {
                tracing::warn!(backup_id = %existing.id, heartbeat_at = seen, "unfinished backup without a heartbeat taken over");
                Ok(true)
            }
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(false),
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
            .key("pk", AttributeValue::S(keys::backup_pk(id)))
            .key("sk", AttributeValue::S(keys::BACKUP_SK.into()))
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
                ("completedAt", AttributeValue::S(times::now_text())),
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
                ("completedAt", AttributeValue::S(times::now_text())),
            ],
        )
        .await
    }

    pub async fn get(&self, id: &str) -> Result<BackupRecord, CatalogError> {
        match self.get_item(&keys::backup_pk(id), keys::BACKUP_SK).await? {
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
            Some(source) => (keys::BY_SOURCE, "gsi1pk", keys::source_gsi1pk(source)),
            None => (keys::BY_TIME, "gsi2pk", keys::BACKUP_GSI2PK.to_owned()),
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
    use std::collections::HashMap;

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
            store_id: Some("00".repeat(16)),
            parent_backup: Some("bk-parent".into()),
            kms_key_id: "arn:k".into(),
            error: None,
            engine: None,
            server_version: None,
            database: None,
            gc_ticket: None,
            heartbeat_at: Some("2026-11-23T10:54:00.000Z".into()),
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
            "storeId",
        ] {
            assert!(json.get(field).is_some(), "{field} missing from {json}");
        }
    }
}
