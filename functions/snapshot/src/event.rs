//! The events the function accepts, and what each asks for.
//!
//! - An EventBridge Scheduled Event whose `detail` names the plan
//!   (`{"plan": "db-nightly"}`; see `events/snapshot-scheduled.json`): a
//!   scheduled run. The scheduled time is the event's `time`, to the minute,
//!   so a redelivery (or a second rule firing for the same minute) takes no
//!   second snapshot.
//! - An RDS snapshot event ("RDS DB Snapshot Event", "RDS DB Cluster
//!   Snapshot Event"; see `events/rds-*-snapshot-event.json`) about a
//!   snapshot Lifeboat named (`lifeboat-…`): advance every plan's open work
//!   (mark snapshots completed, start copies). Events about other snapshots
//!   are ignored.
//! - A direct invocation `{"plan": "db-nightly", "scheduledTime": "2026-11-23T02:00:00Z"}`:
//!   a scheduled run for that time.

use jiff::Timestamp;
use lifeboat_lambda::{event_time, field_error};
use serde::Deserialize;
use serde_json::Value;

const EXAMPLES: &str =
    "events/snapshot-scheduled.json, events/rds-db-snapshot-event.json or events/rds-cluster-snapshot-event.json";
/// Snapshots Lifeboat makes are named so (see `lifeboat::snapshot::snapshot_name`).
const OWN_PREFIX: &str = "lifeboat-";

#[derive(Debug, PartialEq, Eq)]
pub enum SnapshotRequest {
    /// Snapshot what `plan` selects for the run at `scheduled_time`.
    Scheduled { plan: String, scheduled_time: Timestamp },
    /// RDS says something happened to a snapshot.
    RdsEvent {
        snapshot: String,
        event_id: String,
        message: String,
    },
    /// An RDS event about a snapshot that is not Lifeboat's.
    Ignored { reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduledDetail {
    plan: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Direct {
    plan: String,
    scheduled_time: String,
}

/// The `detail` of RDS's events (only what the function reads).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RdsDetail {
    source_identifier: String,
    #[serde(rename = "EventID", default)]
    event_id: String,
    #[serde(default)]
    message: String,
}

impl SnapshotRequest {
    pub fn from_event(payload: Value) -> Result<Self, String> {
        let Some(object) = payload.as_object() else {
            return Err(format!("the payload is not a JSON object: see {EXAMPLES}"));
        };
        let Some(detail_type) = object.get("detail-type") else {
            let direct: Direct =
                serde_path_to_error::deserialize(payload).map_err(|e| field_error(&e, "request", EXAMPLES))?;
            return Ok(Self::Scheduled {
                plan: direct.plan,
                scheduled_time: event_time(&direct.scheduled_time, "scheduledTime")?,
            });
        };
        let detail = object.get("detail").cloned().unwrap_or(Value::Null);
        match detail_type.as_str() {
            Some("Scheduled Event") => {
                let Some(at) = object.get("time").and_then(Value::as_str) else {
                    return Err("the Scheduled Event has no \"time\": EventBridge always sends one".to_owned());
                };
                if !detail.is_object() {
                    return Err(format!(
                        "the Scheduled Event names no plan: its \"detail\" must be {{\"plan\": \"NAME\"}} (see {EXAMPLES})"
                    ));
                }
                let detail: ScheduledDetail =
                    serde_path_to_error::deserialize(detail).map_err(|e| field_error(&e, "event's \"detail\"", EXAMPLES))?;
                Ok(Self::Scheduled {
                    plan: detail.plan,
                    scheduled_time: event_time(at, "time")?,
                })
            }
            Some("RDS DB Snapshot Event" | "RDS DB Cluster Snapshot Event") => {
                let detail: RdsDetail =
                    serde_path_to_error::deserialize(detail).map_err(|e| field_error(&e, "RDS event's \"detail\"", EXAMPLES))?;
                if !detail.source_identifier.starts_with(OWN_PREFIX) {
                    return Ok(Self::Ignored {
                        reason: format!(
                            "snapshot {} is not Lifeboat's (its names start with {OWN_PREFIX})",
                            detail.source_identifier
                        ),
                    });
                }
                Ok(Self::RdsEvent {
                    snapshot: detail.source_identifier,
                    event_id: detail.event_id,
                    message: detail.message,
                })
            }
            Some(other) => Err(format!(
                "events of type {other:?} are not for this function: it takes Scheduled Events and RDS snapshot events (see {EXAMPLES})"
            )),
            None => Err(format!("\"detail-type\" is not a string (see {EXAMPLES})")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(name: &str) -> Value {
        let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn the_samples_parse() {
        assert_eq!(
            SnapshotRequest::from_event(sample("snapshot-scheduled.json")).unwrap(),
            SnapshotRequest::Scheduled {
                plan: "db-nightly".into(),
                scheduled_time: "2026-11-23T02:00:00Z".parse().unwrap()
            }
        );
        for (name, event_id) in [
            ("rds-db-snapshot-event.json", "RDS-EVENT-0042"),
            ("rds-cluster-snapshot-event.json", "RDS-EVENT-0075"),
        ] {
            match SnapshotRequest::from_event(sample(name)).unwrap() {
                SnapshotRequest::RdsEvent {
                    snapshot, event_id: id, ..
                } => {
                    assert!(snapshot.starts_with("lifeboat-db-nightly-"), "{snapshot}");
                    assert_eq!(id, event_id);
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn direct_and_foreign_events() {
        assert_eq!(
            SnapshotRequest::from_event(json!({"plan": "p", "scheduledTime": "2026-11-23T02:00:30Z"})).unwrap(),
            SnapshotRequest::Scheduled {
                plan: "p".into(),
                scheduled_time: "2026-11-23T02:00:30Z".parse().unwrap()
            }
        );
        let mut foreign = sample("rds-db-snapshot-event.json");
        foreign["detail"]["SourceIdentifier"] = json!("rds:orders-2026-11-23-02-00");
        assert!(matches!(
            SnapshotRequest::from_event(foreign).unwrap(),
            SnapshotRequest::Ignored { .. }
        ));
    }

    #[test]
    fn bad_events_say_what_is_wrong() {
        let scheduled = sample("snapshot-scheduled.json");
        let mut no_plan = scheduled.clone();
        no_plan["detail"] = json!({});
        let mut typo = scheduled.clone();
        typo["detail"] = json!({"plna": "x"});
        let mut no_time = scheduled.clone();
        no_time.as_object_mut().unwrap().remove("time");
        let mut empty_detail = scheduled;
        empty_detail.as_object_mut().unwrap().remove("detail");
        let cases = [
            (json!([1]), "not a JSON object"),
            (json!({"plan": "p"}), "missing field `scheduledTime`"),
            (json!({"plan": "p", "scheduledTime": "soon"}), "field \"scheduledTime\""),
            (no_plan, "missing field `plan`"),
            (typo, "unknown field `plna`"),
            (no_time, "no \"time\""),
            (empty_detail, "names no plan"),
            (
                json!({"detail-type": "Object Created", "detail": {}}),
                "not for this function",
            ),
        ];
        for (event, expected) in cases {
            let err = SnapshotRequest::from_event(event.clone()).unwrap_err();
            assert!(err.contains(expected), "{event}: {err}");
        }
    }
}
