//! What every Lifeboat Lambda shares, so each function's `main.rs` is only
//! its settings and one library call:
//!
//! - JSON logs through `tracing` (CloudWatch Logs Insights reads the fields);
//! - settings read from the environment once, at start;
//! - the two shapes of event each function accepts: an EventBridge event
//!   whose `detail` is the request (its `id` then makes deliveries
//!   idempotent), or a direct invocation whose payload is the request;
//! - errors reported to the runtime with a type that says what went wrong;
//! - metrics as CloudWatch Embedded Metric Format log lines ([`Metrics`]),
//!   which the stack's dashboard reads (namespace `Lifeboat`).

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

/// The metric namespace the stack's dashboard and alarms read.
pub const METRIC_NAMESPACE: &str = "Lifeboat";

/// Metrics of one invocation, written as one Embedded Metric Format line:
/// CloudWatch turns it into metrics without a `PutMetricData` call (or the
/// IAM right for one). Metrics without dimensions are the stack's totals;
/// [`Metrics::with_dimension`] adds one dimension to all of a line's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    dimension: Option<(String, String)>,
    values: Vec<(String, f64, &'static str)>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_dimension(name: &str, value: &str) -> Self {
        Self {
            dimension: Some((name.to_owned(), value.to_owned())),
            values: Vec::new(),
        }
    }

    /// Adds a metric; `unit` is a CloudWatch unit (`Count`, `Bytes`, `Seconds`).
    pub fn put(mut self, name: &str, value: f64, unit: &'static str) -> Self {
        self.values.push((name.to_owned(), value, unit));
        self
    }

    /// The EMF document, timestamped `at_ms` (milliseconds since the epoch).
    pub fn document(&self, at_ms: u128) -> serde_json::Value {
        let dimensions: Vec<&str> = self.dimension.iter().map(|(n, _)| n.as_str()).collect();
        let definitions: Vec<serde_json::Value> = self
            .values
            .iter()
            .map(|(name, _, unit)| serde_json::json!({"Name": name, "Unit": unit}))
            .collect();
        let mut document = serde_json::json!({
            "_aws": {
                "Timestamp": at_ms as u64,
                "CloudWatchMetrics": [{
                    "Namespace": METRIC_NAMESPACE,
                    "Dimensions": [dimensions],
                    "Metrics": definitions,
                }],
            },
        });
        if let Some(fields) = document.as_object_mut() {
            if let Some((name, value)) = &self.dimension {
                fields.insert(name.clone(), value.clone().into());
            }
            for (name, value, _) in &self.values {
                fields.insert(name.clone(), (*value).into());
            }
        }
        document
    }

    /// Writes the line to standard output (the function's log stream).
    pub fn emit(self) {
        if self.values.is_empty() {
            return;
        }
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        println!("{}", self.document(at_ms));
    }
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

    #[test]
    fn metrics_are_embedded_metric_format_documents() {
        let doc = Metrics::with_dimension("Source", "s3://a/")
            .put("RpoAgeSeconds", 90.0, "Seconds")
            .document(1_700_000_000_000);
        assert_eq!(
            doc,
            json!({
                "_aws": {"Timestamp": 1_700_000_000_000u64, "CloudWatchMetrics": [{
                    "Namespace": "Lifeboat",
                    "Dimensions": [["Source"]],
                    "Metrics": [{"Name": "RpoAgeSeconds", "Unit": "Seconds"}]}]},
                "Source": "s3://a/",
                "RpoAgeSeconds": 90.0
            })
        );
        let totals = Metrics::new().put("BackupsCompleted", 1.0, "Count").document(1);
        assert_eq!(totals["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
        assert_eq!(totals["BackupsCompleted"], 1.0);
    }
}
