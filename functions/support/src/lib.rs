//! What every Lifeboat Lambda shares, so each function's `main.rs` is only
//! its settings and one library call:
//!
//! - JSON logs through `tracing` (CloudWatch Logs Insights reads the fields);
//! - settings read from the environment once, at start;
//! - the two shapes of event each function accepts: an EventBridge event
//!   whose `detail` is the request (its `id` then makes deliveries
//!   idempotent), or a direct invocation whose payload is the request;
//! - errors reported to the runtime with a type that says what went wrong.

use lambda_runtime::Diagnostic;
use serde::de::DeserializeOwned;

/// Sets up JSON logs, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_current_span(false)
        .without_time()
        .with_target(false)
        .init();
}

/// A setting from the environment; empty counts as unset.
pub fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A required setting; the error names it, for a failed init.
pub fn required_setting(name: &str) -> Result<String, String> {
    setting(name).ok_or_else(|| format!("the function's environment has no {name}: set it in the stack (see infra/)"))
}

/// An error for the runtime: `kind` is e.g. `Lifeboat.BadEvent`.
pub fn diagnostic(kind: &str, message: impl ToString) -> Diagnostic {
    Diagnostic {
        error_type: kind.to_owned(),
        error_message: message.to_string(),
    }
}

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
    let body = serde_path_to_error::deserialize(body).map_err(|e| {
        let field = e.path().to_string();
        if field == "." {
            format!("the request in the event is not valid: {}", e.inner())
        } else {
            format!("the request in the event is not valid: field {field:?}: {}", e.inner())
        }
    })?;
    Ok(Request { body, event_id })
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
