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

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::catalog::format_time;

/// The partition every audit item lives in.
const AUDIT_PK: &str = "audit";
/// The head's sort key (sorts after every record's 20 digits).
const HEAD_SK: &str = "head";
/// The first record's `prevHash`.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The prefix of every record's canonical bytes: names the format and its version.
const CANONICAL_PREFIX: &[u8] = b"lifeboat-audit-v1\n";
/// Appends that lose the race for the head re-read it and try again, this often.
const MAX_ATTEMPTS: u32 = 60;

/// Something that happened, to be appended to the trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// What happened: `backup.completed`, `backup.deleted`, `restore.completed`,
    /// `hold.added`, `hold.removed`, `keys.rewrapped`, `failover.step`, …
    pub action: String,
    /// What it happened to: a backup id, a store, a region.
    pub subject: String,
    /// Who did it: see [`actor_from_env`].
    pub actor: String,
    /// Anything else worth keeping, as JSON.
    pub details: Value,
}

impl AuditEvent {
    /// An event by this process's actor ([`actor_from_env`]).
    pub fn new(action: &str, subject: &str, details: Value) -> Self {
        Self {
            action: action.to_owned(),
            subject: subject.to_owned(),
            actor: actor_from_env(),
            details,
        }
    }
}

/// One stored record of the trail. `--output json` uses these field names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// 1, 2, 3, … with no gaps.
    pub seq: u64,
    /// When it was appended: RFC 3339, UTC, milliseconds.
    pub at: String,
    pub action: String,
    pub subject: String,
    pub actor: String,
    pub details: Value,
    /// The previous record's `hash` ([`GENESIS_HASH`] for record 1).
    pub prev_hash: String,
    /// Lower-case hex SHA-256 of [`canonical_bytes`].
    pub hash: String,
}

impl AuditRecord {
    /// The hash this record's fields give (equal to `hash` unless it was altered).
    pub fn computed_hash(&self) -> String {
        hex::encode(Sha256::digest(canonical_bytes(self)))
    }
}

/// The bytes a record's hash covers: `lifeboat-audit-v1\n` followed by the
/// canonical JSON (see [`canonical_json`]) of the object with exactly the keys
/// `action`, `actor`, `at`, `details`, `prevHash`, `seq` (a number) and
/// `subject`. `hash` itself is not covered.
pub fn canonical_bytes(record: &AuditRecord) -> Vec<u8> {
    let object = serde_json::json!({
        "seq": record.seq,
        "at": record.at,
        "action": record.action,
        "subject": record.subject,
        "actor": record.actor,
        "details": record.details,
        "prevHash": record.prev_hash,
    });
    let mut bytes = CANONICAL_PREFIX.to_vec();
    bytes.extend_from_slice(canonical_json(&object).as_bytes());
    bytes
}

/// JSON with no whitespace and every object's keys sorted by their UTF-8
/// bytes, at every depth; strings escaped as serde_json escapes them, numbers
/// written as serde_json writes them. Independent of the order keys were
/// inserted in (and of serde_json's `preserve_order` feature).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Who this process acts for: `lambda:FUNCTION` inside Lambda
/// (`AWS_LAMBDA_FUNCTION_NAME`), else `cli:USER@HOST`.
pub fn actor_from_env() -> String {
    if let Some(function) = non_empty_env("AWS_LAMBDA_FUNCTION_NAME") {
        return format!("lambda:{function}");
    }
    let user = non_empty_env("USER")
        .or_else(|| non_empty_env("LOGNAME"))
        .or_else(|| non_empty_env("USERNAME"))
        .unwrap_or_else(|| "unknown".into());
    let host = non_empty_env("HOSTNAME")
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .or_else(|| non_empty_env("COMPUTERNAME"))
        .unwrap_or_else(|| "unknown".into());
    format!("cli:{user}@{host}")
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Parses an RFC 3339 time (for `--since`).
pub fn parse_time(text: &str) -> Result<time::OffsetDateTime, AuditError> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(|e| AuditError::BadTime {
        text: text.to_owned(),
        message: e.to_string(),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit trail: {0}")]
    Catalog(crate::catalog::CatalogError),
    #[error("audit trail in catalog table {table}: {message}")]
    Dynamo { table: String, message: String },
    #[error("audit item {sk} in catalog table {table} cannot be read ({message}): run `lifeboat audit-log verify` to see whether the trail was tampered with")]
    Corrupt { table: String, sk: String, message: String },
    #[error("could not append to the audit trail in catalog table {table}: {attempts} attempts each found the head moved by another writer (or record {seq} already exists although the head says otherwise); run `lifeboat audit-log verify`")]
    Contended { table: String, attempts: u32, seq: u64 },
    #[error("{text:?} is not an RFC 3339 time such as 2026-11-23T10:00:00Z ({message})")]
    BadTime { text: String, message: String },
}

/// What can be wrong with the trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditProblemKind {
    /// A record's contents no longer match its hash.
    Altered,
    /// A record lacks attributes or holds ones that cannot be read.
    Unreadable,
    /// A record is missing: a gap in the sequence numbers.
    Removed,
    /// A record's `prevHash` is not the previous record's hash (one was
    /// removed and the rest renumbered, or records were swapped or replaced).
    BrokenLink,
    /// The head names records after the last one stored: the tail was removed.
    Truncated,
    /// The head is missing, behind the last record, or holds another hash.
    HeadMismatch,
}

impl AuditProblemKind {
    pub fn describe(&self) -> &'static str {
        match self {
            Self::Altered => "altered",
            Self::Unreadable => "unreadable",
            Self::Removed => "removed",
            Self::BrokenLink => "broken link",
            Self::Truncated => "truncated",
            Self::HeadMismatch => "head mismatch",
        }
    }
}

/// The first thing found wrong, naming the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditProblem {
    /// The record that is altered or missing (for a head problem, the head's seq).
    pub seq: u64,
    pub kind: AuditProblemKind,
    pub detail: String,
}

/// The result of [`AuditTrail::verify`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditVerification {
    pub table: String,
    /// True when every record's hash and link checked out and the head agrees.
    pub intact: bool,
    /// Records read.
    pub records: u64,
    /// The head's seq (absent for an empty trail or a removed head).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_seq: Option<u64>,
    /// The last record's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_hash: Option<String>,
    /// The first problem found; `None` when intact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<AuditProblem>,
}

/// The head item: the last record's seq and hash.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Head {
    seq: u64,
    hash: String,
}

/// The audit trail in a catalog table.
#[derive(Clone, Debug)]
pub struct AuditTrail {
    client: aws_sdk_dynamodb::Client,
    table: String,
    region: String,
}

fn record_sk(seq: u64) -> String {
    format!("{seq:020}")
}

fn key(sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(AUDIT_PK.into())),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

fn record_item(record: &AuditRecord) -> HashMap<String, AttributeValue> {
    let mut item = key(&record_sk(record.seq));
    for (name, value) in [
        ("seq", AttributeValue::N(record.seq.to_string())),
        ("at", AttributeValue::S(record.at.clone())),
        ("action", AttributeValue::S(record.action.clone())),
        ("subject", AttributeValue::S(record.subject.clone())),
        ("actor", AttributeValue::S(record.actor.clone())),
        ("details", AttributeValue::S(canonical_json(&record.details))),
        ("prevHash", AttributeValue::S(record.prev_hash.clone())),
        ("hash", AttributeValue::S(record.hash.clone())),
    ] {
        item.insert(name.to_owned(), value);
    }
    item
}

fn string_attr(item: &HashMap<String, AttributeValue>, name: &str) -> Result<String, String> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Ok(s.clone()),
        Some(_) => Err(format!("attribute {name} is not a string")),
        None => Err(format!("attribute {name} is missing")),
    }
}

fn number_attr(item: &HashMap<String, AttributeValue>, name: &str) -> Result<u64, String> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n
            .parse()
            .map_err(|_| format!("attribute {name} ({n}) is not a whole number")),
        Some(_) => Err(format!("attribute {name} is not a number")),
        None => Err(format!("attribute {name} is missing")),
    }
}

fn parse_record(item: &HashMap<String, AttributeValue>) -> Result<AuditRecord, String> {
    let details_text = string_attr(item, "details")?;
    let details = serde_json::from_str(&details_text).map_err(|e| format!("attribute details is not JSON ({e})"))?;
    Ok(AuditRecord {
        seq: number_attr(item, "seq")?,
        at: string_attr(item, "at")?,
        action: string_attr(item, "action")?,
        subject: string_attr(item, "subject")?,
        actor: string_attr(item, "actor")?,
        details,
        prev_hash: string_attr(item, "prevHash")?,
        hash: string_attr(item, "hash")?,
    })
}

fn parse_head(item: &HashMap<String, AttributeValue>) -> Result<Head, String> {
    Ok(Head {
        seq: number_attr(item, "seq")?,
        hash: string_attr(item, "hash")?,
    })
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

    fn error<E, R>(&self, error: SdkError<E, R>) -> AuditError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        AuditError::Catalog(crate::catalog::dynamo_error(&self.table, &self.region, error))
    }

    fn corrupt(&self, sk: &str, message: String) -> AuditError {
        AuditError::Corrupt {
            table: self.table.clone(),
            sk: sk.to_owned(),
            message,
        }
    }

    async fn head(&self) -> Result<Option<Head>, AuditError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(HEAD_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        output
            .item
            .map(|item| parse_head(&item).map_err(|m| self.corrupt(HEAD_SK, m)))
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
                at: format_time(time::OffsetDateTime::now_utc()),
                action: event.action.clone(),
                subject: event.subject.clone(),
                actor: event.actor.clone(),
                details: event.details.clone(),
                prev_hash,
                hash: String::new(),
            };
            record.hash = record.computed_hash();
            let dynamo = |e: aws_sdk_dynamodb::error::BuildError| AuditError::Dynamo {
                table: self.table.clone(),
                message: e.to_string(),
            };
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(record_item(&record)))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(dynamo)?;
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(HEAD_SK)))
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
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(put).build())
                .transact_items(TransactWriteItem::builder().update(update).build())
                .send()
                .await;
            match result {
                Ok(_) => {
                    tracing::debug!(table = %self.table, seq, action = %record.action, subject = %record.subject, "audit record appended");
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
            table: self.table.clone(),
            attempts: MAX_ATTEMPTS,
            seq,
        })
    }

    /// Every stored record item in seq order (the head excluded), unparsed.
    async fn record_items(&self) -> Result<Vec<HashMap<String, AttributeValue>>, AuditError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :last")
            .expression_attribute_values(":pk", AttributeValue::S(AUDIT_PK.into()))
            .expression_attribute_values(":first", AttributeValue::S(record_sk(0)))
            .expression_attribute_values(":last", AttributeValue::S("9".repeat(20)))
            .consistent_read(true)
            .scan_index_forward(true)
            .into_paginator()
            .items()
            .send();
        let mut items = Vec::new();
        while let Some(item) = pages.next().await {
            items.push(item.map_err(|e| self.error(e))?);
        }
        Ok(items)
    }

    /// The records in seq order; only those appended at or after `since`.
    pub async fn list(&self, since: Option<time::OffsetDateTime>) -> Result<Vec<AuditRecord>, AuditError> {
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
        Ok(check_chain(&self.table, &items, head))
    }
}

/// The checks of [`AuditTrail::verify`], on items already read.
fn check_chain(
    table: &str,
    items: &[HashMap<String, AttributeValue>],
    head: Result<Option<Head>, String>,
) -> AuditVerification {
    let mut report = AuditVerification {
        table: table.to_owned(),
        intact: false,
        records: items.len() as u64,
        head_seq: head.as_ref().ok().and_then(|h| h.as_ref().map(|h| h.seq)),
        last_hash: None,
        problem: None,
    };
    let problem = |seq: u64, kind: AuditProblemKind, detail: String| Some(AuditProblem { seq, kind, detail });
    let mut expected_seq = 1u64;
    let mut prev_hash = GENESIS_HASH.to_owned();
    for item in items {
        let sk = string_attr(item, "sk").unwrap_or_default();
        let Ok(sk_seq) = sk.parse::<u64>() else {
            report.problem = problem(
                expected_seq,
                AuditProblemKind::Unreadable,
                format!("an audit item has sort key {sk:?}, which is not a sequence number"),
            );
            return report;
        };
        if sk_seq > expected_seq {
            let missing = if sk_seq - expected_seq == 1 {
                format!("record {expected_seq} is missing")
            } else {
                format!("records {expected_seq} to {} are missing", sk_seq - 1)
            };
            report.problem = problem(
                expected_seq,
                AuditProblemKind::Removed,
                format!("{missing} (the next stored record is {sk_seq})"),
            );
            return report;
        }
        if sk_seq < expected_seq {
            // Sort keys are unique and sorted, so only record 0 gets here.
            report.problem = problem(
                sk_seq,
                AuditProblemKind::Unreadable,
                format!("record {sk_seq} cannot exist: the trail starts at 1"),
            );
            return report;
        }
        let record = match parse_record(item) {
            Ok(record) => record,
            Err(message) => {
                report.problem = problem(sk_seq, AuditProblemKind::Unreadable, message);
                return report;
            }
        };
        if record.seq != sk_seq {
            report.problem = problem(
                sk_seq,
                AuditProblemKind::Altered,
                format!("record {sk_seq} says its seq is {}", record.seq),
            );
            return report;
        }
        let computed = record.computed_hash();
        if computed != record.hash {
            report.problem = problem(
                sk_seq,
                AuditProblemKind::Altered,
                format!(
                    "record {sk_seq} ({} of {}) does not match its hash: its contents were changed after it was written",
                    record.action, record.subject
                ),
            );
            return report;
        }
        if record.prev_hash != prev_hash {
            let previous = if sk_seq == 1 {
                "the start of the trail".to_owned()
            } else {
                format!("record {}", sk_seq - 1)
            };
            report.problem = problem(
                sk_seq,
                AuditProblemKind::BrokenLink,
                format!("record {sk_seq}'s prevHash does not match {previous}: a record before it was removed, replaced or reordered"),
            );
            return report;
        }
        prev_hash = record.hash;
        expected_seq = sk_seq + 1;
    }
    let last_seq = expected_seq - 1;
    report.last_hash = (last_seq > 0).then(|| prev_hash.clone());
    match head {
        Err(message) => {
            report.problem = problem(
                last_seq,
                AuditProblemKind::HeadMismatch,
                format!("the head item cannot be read: {message}"),
            )
        }
        Ok(None) if last_seq == 0 => {}
        Ok(None) => {
            report.problem = problem(
                last_seq,
                AuditProblemKind::HeadMismatch,
                format!("the head item is missing although {last_seq} records exist"),
            )
        }
        Ok(Some(head)) if head.seq > last_seq => {
            let missing = if head.seq - last_seq == 1 {
                format!("record {} is missing", head.seq)
            } else {
                format!("records {} to {} are missing", last_seq + 1, head.seq)
            };
            report.problem = problem(
                last_seq + 1,
                AuditProblemKind::Truncated,
                format!(
                    "the head says the last record is {} but the last stored is {last_seq}: {missing} (the tail was removed)",
                    head.seq
                ),
            );
        }
        Ok(Some(head)) if head.seq < last_seq => {
            report.problem = problem(
                head.seq,
                AuditProblemKind::HeadMismatch,
                format!(
                    "the head says the last record is {} but records up to {last_seq} exist: they were added outside the trail or the head was rolled back",
                    head.seq
                ),
            );
        }
        Ok(Some(head)) if head.hash != prev_hash => {
            report.problem = problem(
                head.seq,
                AuditProblemKind::HeadMismatch,
                format!(
                    "the head's hash does not match record {}: the last record was replaced",
                    head.seq
                ),
            );
        }
        Ok(Some(_)) => {}
    }
    report.intact = report.problem.is_none();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AuditRecord {
        let mut record = AuditRecord {
            seq: 7,
            at: "2026-11-23T10:53:00.123Z".into(),
            action: "backup.completed".into(),
            subject: "bk-20261123T105300Z-0000abcd".into(),
            actor: "cli:ops@laptop".into(),
            details: serde_json::json!({"source": "s3://data/app/", "entries": 3, "nested": {"b": [1, 2], "a": null}}),
            prev_hash: "ab".repeat(32),
            hash: String::new(),
        };
        record.hash = record.computed_hash();
        record
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth_and_has_no_whitespace() {
        for (input, canonical) in [
            (r#"{"b": 1, "a": 2}"#, r#"{"a":2,"b":1}"#),
            (
                r#"{"z": {"y": 1, "x": [3, {"d": 1, "c": 2}]}}"#,
                r#"{"z":{"x":[3,{"c":2,"d":1}],"y":1}}"#,
            ),
            (r#"[true, null, "q\"uote", 1.5, -3]"#, r#"[true,null,"q\"uote",1.5,-3]"#),
            (r#"{"é": 1, "e": 2, "E": 3}"#, r#"{"E":3,"e":2,"é":1}"#),
            (r#""line\nbreak""#, r#""line\nbreak""#),
            ("{}", "{}"),
        ] {
            let value: Value = serde_json::from_str(input).unwrap();
            assert_eq!(canonical_json(&value), canonical, "{input}");
        }
    }

    #[test]
    fn the_hash_does_not_depend_on_the_order_of_keys_in_details() {
        let a = record();
        let mut b = record();
        b.details =
            serde_json::from_str(r#"{"nested": {"a": null, "b": [1, 2]}, "entries": 3, "source": "s3://data/app/"}"#)
                .unwrap();
        assert_eq!(a.computed_hash(), b.computed_hash());
        assert_eq!(a.hash.len(), 64);
        assert!(a.hash.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn the_canonical_bytes_are_the_documented_ones() {
        let mut r = record();
        r.details = serde_json::json!({"b": 1, "a": "x"});
        let expected = format!(
            "lifeboat-audit-v1\n{{\"action\":\"backup.completed\",\"actor\":\"cli:ops@laptop\",\"at\":\"2026-11-23T10:53:00.123Z\",\"details\":{{\"a\":\"x\",\"b\":1}},\"prevHash\":\"{}\",\"seq\":7,\"subject\":\"bk-20261123T105300Z-0000abcd\"}}",
            "ab".repeat(32)
        );
        assert_eq!(String::from_utf8(canonical_bytes(&r)).unwrap(), expected);
        assert_eq!(r.computed_hash(), hex::encode(Sha256::digest(expected.as_bytes())));
    }

    #[test]
    fn changing_any_field_changes_the_hash() {
        let original = record().computed_hash();
        type Change = fn(&mut AuditRecord);
        let changes: [(&str, Change); 9] = [
            ("seq", |r| r.seq += 1),
            ("at", |r| r.at = "2026-11-23T10:53:00.124Z".into()),
            ("action", |r| r.action = "backup.deleted".into()),
            ("subject", |r| r.subject.push('x')),
            ("actor", |r| r.actor = "cli:mallory@laptop".into()),
            ("details value", |r| r.details["entries"] = serde_json::json!(4)),
            ("details number type", |r| r.details["entries"] = serde_json::json!("3")),
            ("details key", |r| r.details["extra"] = serde_json::json!(true)),
            ("prev_hash", |r| r.prev_hash = GENESIS_HASH.into()),
        ];
        for (field, change) in changes {
            let mut changed = record();
            change(&mut changed);
            assert_ne!(changed.computed_hash(), original, "changing {field} kept the hash");
        }
        // The stored hash itself is not covered.
        let mut rehashed = record();
        rehashed.hash = "0".repeat(64);
        assert_eq!(rehashed.computed_hash(), original);
    }

    #[test]
    fn items_round_trip_without_gsi_keys() {
        let r = record();
        let item = record_item(&r);
        assert_eq!(item["pk"].as_s().unwrap(), "audit");
        assert_eq!(item["sk"].as_s().unwrap(), "00000000000000000007");
        assert!(item.keys().all(|k| !k.starts_with("gsi")), "{item:?}");
        assert_eq!(parse_record(&item).unwrap(), r);
    }

    /// A chain of `n` records as stored, and its head.
    fn chain(n: u64) -> (Vec<HashMap<String, AttributeValue>>, Head) {
        let mut prev = GENESIS_HASH.to_owned();
        let mut items = Vec::new();
        for seq in 1..=n {
            let mut r = record();
            r.seq = seq;
            r.prev_hash = prev;
            r.hash = r.computed_hash();
            prev = r.hash.clone();
            items.push(record_item(&r));
        }
        (items, Head { seq: n, hash: prev })
    }

    fn verdict(items: &[HashMap<String, AttributeValue>], head: Option<Head>) -> Option<(u64, AuditProblemKind)> {
        check_chain("t", items, Ok(head)).problem.map(|p| (p.seq, p.kind))
    }

    #[test]
    fn verification_names_the_first_bad_record() {
        let (items, head) = chain(5);
        assert_eq!(verdict(&items, Some(head.clone())), None);
        assert!(check_chain("t", &items, Ok(Some(head.clone()))).intact);
        assert_eq!(verdict(&[], None), None);

        let mut altered = items.clone();
        altered[2].insert("subject".into(), AttributeValue::S("other".into()));
        assert_eq!(
            verdict(&altered, Some(head.clone())),
            Some((3, AuditProblemKind::Altered))
        );

        let mut gap = items.clone();
        gap.remove(1);
        assert_eq!(verdict(&gap, Some(head.clone())), Some((2, AuditProblemKind::Removed)));

        let mut first_gone = items.clone();
        first_gone.remove(0);
        assert_eq!(
            verdict(&first_gone, Some(head.clone())),
            Some((1, AuditProblemKind::Removed))
        );

        // Record 3 removed and the rest renumbered, each re-keyed and rehashed
        // but keeping its old prevHash: the link from 2 breaks.
        let mut relinked: Vec<AuditRecord> = items.iter().map(|i| parse_record(i).unwrap()).collect();
        relinked.remove(2);
        for (i, r) in relinked.iter_mut().enumerate() {
            r.seq = i as u64 + 1;
            r.hash = r.computed_hash();
        }
        let relinked: Vec<_> = relinked.iter().map(record_item).collect();
        assert_eq!(verdict(&relinked, None).map(|v| v.0), Some(3));
        assert_eq!(
            verdict(&relinked, None).map(|v| v.1),
            Some(AuditProblemKind::BrokenLink)
        );

        let mut unreadable = items.clone();
        unreadable[3].remove("hash");
        assert_eq!(
            verdict(&unreadable, Some(head.clone())),
            Some((4, AuditProblemKind::Unreadable))
        );

        let truncated = &items[..3];
        assert_eq!(
            verdict(truncated, Some(head.clone())),
            Some((4, AuditProblemKind::Truncated))
        );
        assert_eq!(verdict(&items, None), Some((5, AuditProblemKind::HeadMismatch)));
        let behind = Head {
            seq: 4,
            hash: head.hash.clone(),
        };
        assert_eq!(verdict(&items, Some(behind)), Some((4, AuditProblemKind::HeadMismatch)));
        let other_hash = Head {
            seq: 5,
            hash: GENESIS_HASH.into(),
        };
        assert_eq!(
            verdict(&items, Some(other_hash)),
            Some((5, AuditProblemKind::HeadMismatch))
        );
    }

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
