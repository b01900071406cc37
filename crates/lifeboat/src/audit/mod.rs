//! The audit trail: a tamper-evident, append-only log of what was done to the
//! backups (completed, deleted, restored, held, keys re-wrapped, failover
//! steps), kept in the catalog table.
//!
//! Items (see FORMAT.md, "Audit trail"):
//! - a record: `pk = audit`, `sk = SEQ` (20 digits, zero-padded), with `seq`,
//!   `at`, `action`, `subject`, `actor`, `details` (canonical JSON text),
//!   `prevHash` and `hash`;
//! - the head: `pk = audit`, `sk = head`, with the last `seq` and its `hash`.
//!
//! Neither carries the GSI keys, so the trail never shows in backup listings.
//!
//! Each record's `hash` is the SHA-256 of its canonical bytes, which include
//! the previous record's hash: altering a record breaks its hash, removing one
//! leaves a gap or a broken link, removing the tail leaves the head ahead of
//! the last record. An append writes its record and moves the head in one
//! transaction conditional on the head it read, so concurrent appenders never
//! share a sequence number or fork the chain.

//!
//! [`record`] holds a record, its canonical bytes and hash, and its items;
//! [`chain`] checks the chain; this module appends and reads.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use jiff::Timestamp;

use crate::catalog::{keys, Catalog, CatalogError};
use crate::times;

pub mod chain;
pub mod record;

use chain::check_chain;
pub use chain::{AuditProblem, AuditProblemKind, AuditVerification};
pub use record::{actor_from_env, canonical_bytes, canonical_json, AuditEvent, AuditRecord, GENESIS_HASH};
use record::{key, parse_head, parse_record, record_item, string_attr, Head};

/// Appends that lose the race for the head re-read it and try again, this often.
const MAX_ATTEMPTS: u32 = 60;

/// Parses an RFC 3339 time (for `--since`).
pub fn parse_time(text: &str) -> Result<Timestamp, AuditError> {
    times::parse(text).map_err(|e| AuditError::BadTime {
        text: text.to_owned(),
        message: e.message,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit trail: {0}")]
    Catalog(CatalogError),
    #[error("audit trail in catalog table {table}: {message}")]
    Dynamo { table: String, message: String },
    #[error("audit item {sk} in catalog table {table} cannot be read ({message}): run `lifeboat audit-log verify` to see whether the trail was tampered with")]
    Corrupt { table: String, sk: String, message: String },
    #[error("could not append to the audit trail in catalog table {table}: {attempts} attempts each found the head moved by another writer (or record {seq} already exists although the head says otherwise); run `lifeboat audit-log verify`")]
    Contended { table: String, attempts: u32, seq: u64 },
    #[error("{text:?} is not an RFC 3339 time such as 2026-11-23T10:00:00Z ({message})")]
    BadTime { text: String, message: String },
}

/// The audit trail in a catalog table.
#[derive(Clone, Debug)]
pub struct AuditTrail {
    catalog: Catalog,
}

impl Catalog {
    /// The audit trail kept in this catalog's table.
    pub fn audit_trail(&self) -> AuditTrail {
        AuditTrail::new(self)
    }
}

/// Whether a failed transaction lost a race (a condition or a concurrent
/// transaction), as opposed to failing for good.
fn lost_race<R>(error: &SdkError<TransactWriteItemsError, R>) -> bool {
    match error {
        SdkError::ServiceError(service) => match service.err() {
            TransactWriteItemsError::TransactionCanceledException(t) => t
                .cancellation_reasons()
                .iter()
                .any(|r| matches!(r.code(), Some("ConditionalCheckFailed" | "TransactionConflict"))),
            TransactWriteItemsError::TransactionInProgressException(_) => true,
            _ => false,
        },
        _ => false,
    }
}

impl AuditTrail {
    pub fn new(catalog: &Catalog) -> Self {
        Self {
            catalog: catalog.clone(),
        }
    }

    pub fn table(&self) -> &str {
        self.catalog.table()
    }

    fn client(&self) -> &aws_sdk_dynamodb::Client {
        self.catalog.client()
    }

    fn error<E, R>(&self, error: SdkError<E, R>) -> AuditError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        AuditError::Catalog(self.catalog.error(error))
    }

    fn corrupt(&self, sk: &str, message: String) -> AuditError {
        AuditError::Corrupt {
            table: self.table().to_owned(),
            sk: sk.to_owned(),
            message,
        }
    }

    async fn head(&self) -> Result<Option<Head>, AuditError> {
        let output = self
            .client()
            .get_item()
            .table_name(self.table())
            .set_key(Some(key(keys::AUDIT_HEAD_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        output
            .item
            .map(|item| parse_head(&item).map_err(|m| self.corrupt(keys::AUDIT_HEAD_SK, m)))
            .transpose()
    }

    /// Appends `event` as the next record and returns it. Safe against
    /// concurrent appenders: the record and the head move together, on the
    /// condition that the head is still the one read; a loser re-reads it.
    pub async fn append(&self, event: AuditEvent) -> Result<AuditRecord, AuditError> {
        let mut seq = 0;
        for attempt in 0..MAX_ATTEMPTS {
            let head = self.head().await?;
            let (previous_seq, prev_hash) = match &head {
                Some(h) => (h.seq, h.hash.clone()),
                None => (0, GENESIS_HASH.to_owned()),
            };
            seq = previous_seq + 1;
            let mut record = AuditRecord {
                seq,
                at: times::now_text(),
                action: event.action.clone(),
                subject: event.subject.clone(),
                actor: event.actor.clone(),
                details: event.details.clone(),
                prev_hash,
                hash: String::new(),
            };
            record.hash = record.computed_hash();
            let dynamo = |e: aws_sdk_dynamodb::error::BuildError| AuditError::Dynamo {
                table: self.table().to_owned(),
                message: e.to_string(),
            };
            let put = Put::builder()
                .table_name(self.table())
                .set_item(Some(record_item(&record)))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(dynamo)?;
            let update = Update::builder()
                .table_name(self.table())
                .set_key(Some(key(keys::AUDIT_HEAD_SK)))
                .update_expression("SET #seq = :seq, #hash = :hash")
                .expression_attribute_names("#seq", "seq")
                .expression_attribute_names("#hash", "hash")
                .expression_attribute_values(":seq", AttributeValue::N(seq.to_string()))
                .expression_attribute_values(":hash", AttributeValue::S(record.hash.clone()));
            let update = match &head {
                None => update.condition_expression("attribute_not_exists(pk)"),
                Some(h) => update
                    .condition_expression("#seq = :previous")
                    .expression_attribute_values(":previous", AttributeValue::N(h.seq.to_string())),
            }
            .build()
            .map_err(dynamo)?;
            let result = self
                .client()
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(put).build())
                .transact_items(TransactWriteItem::builder().update(update).build())
                .send()
                .await;
            match result {
                Ok(_) => {
                    tracing::debug!(table = %self.table(), seq, action = %record.action, subject = %record.subject, "audit record appended");
                    return Ok(record);
                }
                Err(e) if lost_race(&e) => {
                    let ceiling = 5 + 10 * u64::from(attempt.min(10));
                    let pause = rand::Rng::gen_range(&mut rand::thread_rng(), 1..=ceiling);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                Err(e) => return Err(self.error(e)),
            }
        }
        Err(AuditError::Contended {
            table: self.table().to_owned(),
            attempts: MAX_ATTEMPTS,
            seq,
        })
    }

    /// Every stored record item in seq order (the head excluded), unparsed.
    async fn record_items(&self) -> Result<Vec<HashMap<String, AttributeValue>>, AuditError> {
        let mut pages = self
            .client()
            .query()
            .table_name(self.table())
            .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :last")
            .expression_attribute_values(":pk", AttributeValue::S(keys::AUDIT_PK.into()))
            .expression_attribute_values(":first", AttributeValue::S(keys::audit_record_sk(0)))
            .expression_attribute_values(":last", AttributeValue::S("9".repeat(20)))
            .consistent_read(true)
            .scan_index_forward(true)
            .into_paginator()
            .items()
            .send();
        self.catalog
            .collect_items(async || pages.next().await, None)
            .await
            .map_err(AuditError::Catalog)
    }

    /// The records in seq order; only those appended at or after `since`.
    pub async fn list(&self, since: Option<Timestamp>) -> Result<Vec<AuditRecord>, AuditError> {
        let mut records = Vec::new();
        for item in self.record_items().await? {
            let sk = string_attr(&item, "sk").unwrap_or_default();
            let record = parse_record(&item).map_err(|m| self.corrupt(&sk, m))?;
            if let Some(since) = since {
                let at = parse_time(&record.at).map_err(|e| self.corrupt(&sk, format!("attribute at: {e}")))?;
                if at < since {
                    continue;
                }
            }
            records.push(record);
        }
        Ok(records)
    }

    /// Reads the whole trail and checks every record's hash, every link and
    /// the head. Tampering is a report (`intact: false`, naming the first
    /// record found wrong), not an error; errors are failures to read.
    pub async fn verify(&self) -> Result<AuditVerification, AuditError> {
        let items = self.record_items().await?;
        let head = match self.head().await {
            Ok(head) => Ok(head),
            Err(AuditError::Corrupt { message, .. }) => Err(message),
            Err(e) => return Err(e),
        };
        Ok(check_chain(self.table(), &items, head))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_name_the_lambda_function_or_the_user_and_host() {
        // Reads the environment only: whichever applies here has its prefix.
        let actor = actor_from_env();
        assert!(
            actor.starts_with("lambda:") || (actor.starts_with("cli:") && actor.contains('@')),
            "{actor}"
        );
    }
}
