//! The events the function accepts, and how each becomes a backup request.
//!
//! - An EventBridge event (a schedule rule's event with the plan as its
//!   `detail`, or any event put on a bus): the event `id` is the idempotency
//!   key, so a redelivered event makes no second backup.
//! - A direct invocation whose payload is the plan itself, optionally with an
//!   `idempotencyKey`.
//! - A plan of the function's plan file, by name: `{"plan": "NAME",
//!   "scheduledTime": "RFC3339"}` (what the per-plan EventBridge Scheduler
//!   schedules send), or a Scheduled Event whose `detail` is `{"plan":
//!   "NAME"}` (its `time` is the scheduled time). The plan and the scheduled
//!   time, to the minute, make redeliveries idempotent.
//! - S3's ObjectCreated notification (`{"Records": [...]}`, keys
//!   URL-encoded as S3 sends them) or EventBridge's `Object Created` event
//!   (source `aws.s3`): continuous backup of the objects named. Each object's
//!   key and `sequencer` make redeliveries idempotent, whichever way the
//!   event came.
//!
//! See `events/file-backup-*.json` and `events/s3-object-created*.json` for samples.

use jiff::Timestamp;
use lifeboat::format::BackupType;
use lifeboat_lambda::{event_time, field_error, parse_request, Request};
use serde::Deserialize;
use serde_json::Value;

const EXAMPLES: &str = "events/file-backup-scheduled.json, events/file-backup-direct.json, events/s3-object-created.json or events/s3-object-created-eventbridge.json";

/// What an event asks of the function.
#[derive(Debug, PartialEq, Eq)]
pub enum FileRequest {
    /// A plan the event carries.
    Backup(BackupRequest),
    /// The file sources of a plan of the plan file, for the run at `scheduled_time`.
    PlanRun { plan: String, scheduled_time: Timestamp },
    /// Objects S3 says were created, in the order the event lists them.
    ObjectsCreated(Vec<CreatedObject>),
}

/// An object an S3 event names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedObject {
    pub bucket: String,
    /// The key itself (decoded).
    pub key: String,
    /// S3's sequencer (or, when the event has none, the ETag): tells this
    /// write of the key from the next.
    pub sequencer: String,
}

impl FileRequest {
    pub fn from_event(payload: Value) -> Result<Self, String> {
        let Some(object) = payload.as_object() else {
            return Err(format!("the payload is not a JSON object: see {EXAMPLES}"));
        };
        if object.contains_key("Records") {
            return s3_notification(&payload).map(Self::ObjectsCreated);
        }
        match object.get("detail-type").map(|t| t.as_str()) {
            Some(Some("Object Created")) => return eventbridge_object(&payload).map(Self::ObjectsCreated),
            Some(Some("Scheduled Event")) if payload["detail"].get("plan").is_some() => {
                let detail: PlanDetail = serde_path_to_error::deserialize(payload["detail"].clone())
                    .map_err(|e| field_error(&e, "event's \"detail\"", EXAMPLES))?;
                let Some(at) = object.get("time").and_then(Value::as_str) else {
                    return Err("the Scheduled Event has no \"time\": EventBridge always sends one".to_owned());
                };
                return Ok(Self::PlanRun {
                    plan: detail.plan,
                    scheduled_time: event_time(at, "time")?,
                });
            }
            None if object.contains_key("plan") => {
                let direct: PlanRunPayload = serde_path_to_error::deserialize(payload.clone())
                    .map_err(|e| field_error(&e, "request", EXAMPLES))?;
                return Ok(Self::PlanRun {
                    plan: direct.plan,
                    scheduled_time: event_time(&direct.scheduled_time, "scheduledTime")?,
                });
            }
            _ => {}
        }
        BackupRequest::from_event(payload).map(Self::Backup)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanDetail {
    plan: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PlanRunPayload {
    plan: String,
    scheduled_time: String,
}

/// One record of S3's event notification (only what the function reads).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Record {
    event_source: String,
    event_name: String,
    s3: S3Entity,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: S3Bucket,
    object: S3Object,
}

#[derive(Deserialize)]
struct S3Bucket {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Object {
    key: String,
    #[serde(default)]
    e_tag: Option<String>,
    #[serde(default)]
    sequencer: Option<String>,
}

/// The detail of EventBridge's `Object Created` (only what the function reads).
#[derive(Deserialize)]
struct EventBridgeDetail {
    bucket: S3Bucket,
    object: EventBridgeObject,
}

#[derive(Deserialize)]
struct EventBridgeObject {
    key: String,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    sequencer: Option<String>,
}

fn created_object(
    bucket: String,
    key: String,
    sequencer: Option<String>,
    etag: Option<String>,
) -> Result<CreatedObject, String> {
    if bucket.is_empty() || key.is_empty() {
        return Err(format!(
            "an object in the S3 event names no bucket or no key (bucket {bucket:?}, key {key:?})"
        ));
    }
    let sequencer = sequencer.or(etag).ok_or_else(|| {
        format!("object s3://{bucket}/{key} has neither a sequencer nor an ETag in the event: S3 always sends them (see {EXAMPLES})")
    })?;
    Ok(CreatedObject { bucket, key, sequencer })
}

fn s3_notification(payload: &Value) -> Result<Vec<CreatedObject>, String> {
    let records: Vec<S3Record> = serde_path_to_error::deserialize(payload["Records"].clone())
        .map_err(|e| field_error(&e, "S3 event", EXAMPLES))?;
    if records.is_empty() {
        return Err("the S3 event has no records".to_owned());
    }
    let mut objects = Vec::with_capacity(records.len());
    for record in records {
        if record.event_source != "aws:s3" || !record.event_name.starts_with("ObjectCreated:") {
            return Err(format!(
                "the S3 event's record is {} from {}: this function takes only ObjectCreated events from aws:s3 (see {EXAMPLES})",
                record.event_name, record.event_source
            ));
        }
        let key = form_decode(&record.s3.object.key)?;
        objects.push(created_object(
            record.s3.bucket.name,
            key,
            record.s3.object.sequencer,
            record.s3.object.e_tag,
        )?);
    }
    Ok(objects)
}

fn eventbridge_object(payload: &Value) -> Result<Vec<CreatedObject>, String> {
    if payload["source"] != "aws.s3" {
        return Err(format!(
            "an \"Object Created\" event from {}: this function takes them from aws.s3 only",
            payload["source"]
        ));
    }
    let detail: EventBridgeDetail = serde_path_to_error::deserialize(payload["detail"].clone())
        .map_err(|e| field_error(&e, "event's \"detail\"", EXAMPLES))?;
    // EventBridge sends the key as it is (not URL-encoded).
    Ok(vec![created_object(
        detail.bucket.name,
        detail.object.key,
        detail.object.sequencer,
        detail.object.etag,
    )?])
}

/// Decodes a key the way S3's notifications encode it
/// (`application/x-www-form-urlencoded`: `+` is a space, `%XX` a byte).
fn form_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let byte = text
                    .get(i + 1..i + 3)
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| format!("the key {text:?} in the S3 event has a bad %-escape"))?;
                out.push(byte);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("the key {text:?} in the S3 event does not decode to UTF-8"))
}

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
        if let Some(days) = plan.retention_days {
            lifeboat::times::check_days("retentionDays", days.into())?;
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
    fn a_huge_retention_days_is_refused_instead_of_overflowing_retention_until() {
        let event = |days: u32| json!({"source": "s3://data/app", "retentionDays": days});
        let message = BackupRequest::from_event(event(u32::MAX)).unwrap_err();
        assert!(
            message.contains("4294967295 days, more than the maximum 36500"),
            "{message}"
        );
        assert_eq!(
            BackupRequest::from_event(event(36_500)).unwrap().retention_days,
            Some(36_500)
        );
    }

    fn sample(name: &str) -> Value {
        let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn both_shapes_of_s3_events_name_the_same_object() {
        let expected = FileRequest::ObjectsCreated(vec![CreatedObject {
            bucket: "lifeboat-demo-data".into(),
            key: "app/reports/q4 final(2).csv".into(),
            sequencer: "0055AED6DCD90281E5".into(),
        }]);
        assert_eq!(
            FileRequest::from_event(sample("s3-object-created.json")).unwrap(),
            expected
        );
        assert_eq!(
            FileRequest::from_event(sample("s3-object-created-eventbridge.json")).unwrap(),
            expected
        );
    }

    #[test]
    fn plan_runs_by_name() {
        let at: Timestamp = "2026-11-23T02:00:00Z".parse().unwrap();
        let run = FileRequest::PlanRun {
            plan: "reports".into(),
            scheduled_time: at,
        };
        assert_eq!(
            FileRequest::from_event(json!({"plan": "reports", "scheduledTime": "2026-11-23T02:00:00Z"})).unwrap(),
            run
        );
        let mut scheduled = sample("file-backup-scheduled.json");
        scheduled["detail"] = json!({"plan": "reports"});
        assert_eq!(FileRequest::from_event(scheduled).unwrap(), run);
        let efs = FileRequest::from_event(sample("file-backup-efs.json")).unwrap();
        assert!(
            matches!(efs, FileRequest::Backup(BackupRequest { ref source, .. }) if source.starts_with('/')),
            "{efs:?}"
        );
    }

    #[test]
    fn bad_s3_events_say_what_is_wrong() {
        let mut removed = sample("s3-object-created.json");
        removed["Records"][0]["eventName"] = json!("ObjectRemoved:Delete");
        let mut bad_escape = sample("s3-object-created.json");
        bad_escape["Records"][0]["s3"]["object"]["key"] = json!("app/%zz");
        let mut no_sequencer = sample("s3-object-created-eventbridge.json");
        no_sequencer["detail"]["object"] = json!({"key": "app/x"});
        let mut foreign = sample("s3-object-created-eventbridge.json");
        foreign["source"] = json!("my.app");
        let cases = [
            (removed, "only ObjectCreated"),
            (bad_escape, "bad %-escape"),
            (no_sequencer, "neither a sequencer nor an ETag"),
            (foreign, "aws.s3 only"),
            (json!({"Records": []}), "no records"),
            (json!({"plan": "p"}), "missing field `scheduledTime`"),
            (json!({"plan": "p", "scheduledTime": "soon"}), "field \"scheduledTime\""),
        ];
        for (event, expected) in cases {
            let err = FileRequest::from_event(event.clone()).unwrap_err();
            assert!(err.contains(expected), "{event}: {err}");
        }
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
