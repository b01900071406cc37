//! The events the function accepts, and how each becomes a backup request.
//!
//! - An EventBridge event (a schedule rule's event with the plan as its
//!   `detail`, or any event put on a bus): the event `id` is the idempotency
//!   key, so a redelivered event makes no second backup.
//! - A direct invocation whose payload is the plan itself, optionally with an
//!   `idempotencyKey`.
//!
//! See `events/file-backup-*.json` for samples.

use lifeboat::format::BackupType;
use lifeboat_lambda::{parse_request, Request};
use serde::Deserialize;

/// A backup plan as the event carries it.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Plan {
    /// Optional human name of the plan, for logs.
    #[serde(default)]
    name: Option<String>,
    source: String,
    #[serde(rename = "type", default = "full")]
    backup_type: String,
    #[serde(default)]
    store: Option<String>,
    #[serde(default)]
    kms_key: Option<String>,
    #[serde(default)]
    concurrency: Option<usize>,
    #[serde(default)]
    retention_days: Option<u32>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

fn full() -> String {
    "full".to_owned()
}

#[derive(Debug, PartialEq, Eq)]
pub struct BackupRequest {
    pub source: String,
    pub backup_type: BackupType,
    pub store: Option<String>,
    pub kms_key: Option<String>,
    pub concurrency: Option<usize>,
    pub retention_days: Option<u32>,
    pub idempotency_key: Option<String>,
}

impl BackupRequest {
    pub fn from_event(payload: serde_json::Value) -> Result<Self, String> {
        let Request { body: plan, event_id } = parse_request::<Plan>(
            payload,
            "events/file-backup-scheduled.json or events/file-backup-direct.json",
        )?;
        let backup_type = plan.backup_type.parse::<BackupType>()?;
        if plan.concurrency == Some(0) {
            return Err("the plan's concurrency must be at least 1".to_owned());
        }
        if let Some(name) = &plan.name {
            tracing::info!(plan = %name, "plan");
        }
        Ok(Self {
            source: plan.source,
            backup_type,
            store: plan.store,
            kms_key: plan.kms_key,
            concurrency: plan.concurrency,
            retention_days: plan.retention_days,
            idempotency_key: event_id.or(plan.idempotency_key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn eventbridge_events_use_their_id_as_idempotency_key() {
        let event = json!({
            "version": "0", "id": "evt-1", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-23T02:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"source": "s3://data/app", "type": "incremental", "store": "s3://backups/lifeboat"}
        });
        let request = BackupRequest::from_event(event).unwrap();
        assert_eq!(request.idempotency_key.as_deref(), Some("evt-1"));
        assert_eq!(request.backup_type, BackupType::Incremental);
        assert_eq!(request.store.as_deref(), Some("s3://backups/lifeboat"));
    }

    #[test]
    fn direct_payloads_are_plans() {
        let request = BackupRequest::from_event(json!({"source": "/mnt/efs/app", "idempotencyKey": "k"})).unwrap();
        assert_eq!(request.backup_type, BackupType::Full);
        assert_eq!(request.idempotency_key.as_deref(), Some("k"));
    }

    #[test]
    fn bad_events_say_what_is_wrong() {
        let cases = [
            (json!([1, 2]), "not a JSON object"),
            (
                json!({"detail-type": "Scheduled Event", "id": "x", "detail": {}}),
                "missing field `source`",
            ),
            (
                json!({"detail-type": "Scheduled Event", "id": "x"}),
                "no request in its \"detail\"",
            ),
            (
                json!({"source": "s3://a", "type": "weekly"}),
                "unknown backup type \"weekly\"",
            ),
            (json!({"source": "s3://a", "sorce": "typo"}), "unknown field `sorce`"),
            (
                json!({"source": 5}),
                "field \"source\": invalid type: integer `5`, expected a string",
            ),
            (
                json!({"source": "s3://a", "retentionDays": "35"}),
                "field \"retentionDays\": invalid type: string \"35\"",
            ),
            (json!({"source": "s3://a", "concurrency": 0}), "at least 1"),
        ];
        for (event, expected) in cases {
            let err = BackupRequest::from_event(event.clone()).unwrap_err();
            assert!(err.contains(expected), "{event}: {err}");
        }
    }
}
