//! The request inside an event: an EventBridge event whose `detail` is the
//! request (its `id` then makes deliveries idempotent), or a direct
//! invocation whose payload is the request; fields at fault named in words.

use serde::de::DeserializeOwned;

/// A request taken out of an event, with the EventBridge event's id.
#[derive(Debug)]
pub struct Request<T> {
    pub body: T,
    pub event_id: Option<String>,
}

/// Parses `payload` as an EventBridge event carrying `T` in its `detail`,
/// or as `T` itself. `example` names a sample in `events/` for messages.
/// A field at fault is named (`field "source": invalid type ...`).
pub fn parse_request<T: DeserializeOwned>(payload: serde_json::Value, example: &str) -> Result<Request<T>, String> {
    let is_eventbridge = payload.get("detail-type").is_some();
    let (body, event_id) = if is_eventbridge {
        let id = payload.get("id").and_then(|v| v.as_str()).map(str::to_owned);
        (payload.get("detail").cloned().unwrap_or(serde_json::Value::Null), id)
    } else {
        (payload, None)
    };
    if !body.is_object() {
        return Err(if is_eventbridge {
            format!("the EventBridge event has no request in its \"detail\": see {example}")
        } else {
            format!("the payload is not a JSON object: see {example}")
        });
    }
    let body = serde_path_to_error::deserialize(body).map_err(|e| field_error(&e, "request in the event", example))?;
    Ok(Request { body, event_id })
}

/// A payload that did not deserialise, naming the field at fault:
/// `the WHAT is not valid: field "detail.plan": invalid type ... (see EXAMPLE)`.
pub fn field_error(e: &serde_path_to_error::Error<serde_json::Error>, what: &str, example: &str) -> String {
    let path = e.path().to_string();
    if path == "." {
        format!("the {what} is not valid: {} (see {example})", e.inner())
    } else {
        format!("the {what} is not valid: field {path:?}: {} (see {example})", e.inner())
    }
}

/// An event's RFC 3339 time field.
pub fn event_time(text: &str, field: &str) -> Result<jiff::Timestamp, String> {
    text.parse::<jiff::Timestamp>()
        .map_err(|e| format!("field {field:?}: {text:?} is not an RFC 3339 time such as 2026-11-23T02:00:00Z ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        source: String,
    }

    #[test]
    fn both_event_shapes_parse_and_bad_ones_say_why() {
        let direct: Request<Body> = parse_request(json!({"source": "s3://a"}), "events/x.json").unwrap();
        assert_eq!((direct.body.source.as_str(), direct.event_id), ("s3://a", None));
        let bridged: Request<Body> = parse_request(
            json!({"detail-type": "Scheduled Event", "id": "e-1", "detail": {"source": "s3://b"}}),
            "x",
        )
        .unwrap();
        assert_eq!(
            (bridged.body.source.as_str(), bridged.event_id.as_deref()),
            ("s3://b", Some("e-1"))
        );
        for (payload, expected) in [
            (json!([1]), "not a JSON object: see x"),
            (
                json!({"detail-type": "Scheduled Event"}),
                "no request in its \"detail\"",
            ),
            (json!({"source": 5}), "field \"source\": invalid type"),
            (json!({}), "missing field `source`"),
            (json!({"source": "s", "extra": 1}), "unknown field `extra`"),
        ] {
            let err = parse_request::<Body>(payload.clone(), "x").unwrap_err();
            assert!(err.contains(expected), "{payload}: {err}");
        }
    }
}
