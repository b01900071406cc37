//! One record of the audit trail: the event appended ([`AuditEvent`]), the
//! stored record ([`AuditRecord`]) with its hash over canonical bytes
//! (FORMAT.md, "Audit trail"), who acts ([`actor_from_env`]), and the
//! record and head items as the catalog table stores them
//! (`pk = audit`, `sk = SEQ` (20 digits) or `head`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::catalog::keys;

/// The first record's `prevHash`.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The prefix of every record's canonical bytes: names the format and its version.
const CANONICAL_PREFIX: &[u8] = b"lifeboat-audit-v1\n";

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

/// The head item: the last record's seq and hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Head {
    pub(super) seq: u64,
    pub(super) hash: String,
}

pub(super) fn key(sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(keys::AUDIT_PK.into())),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

pub(super) fn record_item(record: &AuditRecord) -> HashMap<String, AttributeValue> {
    let mut item = key(&keys::audit_record_sk(record.seq));
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

pub(super) fn string_attr(item: &HashMap<String, AttributeValue>, name: &str) -> Result<String, String> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Ok(s.clone()),
        Some(_) => Err(format!("attribute {name} is not a string")),
        None => Err(format!("attribute {name} is missing")),
    }
}

pub(super) fn number_attr(item: &HashMap<String, AttributeValue>, name: &str) -> Result<u64, String> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n
            .parse()
            .map_err(|_| format!("attribute {name} ({n}) is not a whole number")),
        Some(_) => Err(format!("attribute {name} is not a number")),
        None => Err(format!("attribute {name} is missing")),
    }
}

pub(super) fn parse_record(item: &HashMap<String, AttributeValue>) -> Result<AuditRecord, String> {
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

pub(super) fn parse_head(item: &HashMap<String, AttributeValue>) -> Result<Head, String> {
    Ok(Head {
        seq: number_attr(item, "seq")?,
        hash: string_attr(item, "hash")?,
    })
}

#[cfg(test)]
pub(super) mod fixture {
    use super::*;

    /// A record with every field set, hashed.
    pub fn record() -> AuditRecord {
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
}

#[cfg(test)]
mod tests {
    use super::fixture::record;
    use super::*;

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
}
