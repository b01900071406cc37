//! The events the function accepts, and how each becomes an alert request.
//!
//! - An EventBridge event (a schedule rule's, with the rules as its `detail`;
//!   see `events/alert-scheduled.json`), or a failure event put on a bus
//!   with the same `detail`.
//! - A direct invocation whose payload is the rules themselves.
//!
//! Besides the rules (`lifeboat::alert::AlertRules`), the request may carry
//! `digest: true` (also publish one summary of everything open) and `at`
//! (RFC 3339: evaluate as of that time instead of the clock's now; for
//! replaying a past moment, and for tests, since time does not pass in the
//! emulator).

use jiff::Timestamp;
use lifeboat::alert::AlertRules;
use lifeboat_lambda::{parse_request, Request};
use serde_json::Value;

const EXAMPLE: &str = "events/alert-scheduled.json";

#[derive(Debug)]
pub struct AlertRequest {
    pub rules: AlertRules,
    pub at: Option<Timestamp>,
    pub digest: bool,
}

impl AlertRequest {
    pub fn from_event(mut payload: Value) -> Result<Self, String> {
        // `at` and `digest` are options of the run, not rules: take them out
        // first, so that the rules can refuse unknown fields.
        let body = if payload.get("detail-type").is_some() {
            payload.get_mut("detail")
        } else {
            Some(&mut payload)
        };
        let (at, digest) = match body.and_then(Value::as_object_mut) {
            Some(map) => (map.remove("at"), map.remove("digest")),
            None => (None, None),
        };
        let at = match at {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.parse::<Timestamp>().map_err(|e| {
                format!("field \"at\": {text:?} is not an RFC 3339 time such as 2026-11-23T12:00:00Z ({e})")
            })?),
            Some(other) => {
                return Err(format!(
                    "field \"at\": expected an RFC 3339 time as a string, not {other}"
                ))
            }
        };
        let digest = match digest {
            None | Some(Value::Null) => false,
            Some(Value::Bool(yes)) => yes,
            Some(other) => return Err(format!("field \"digest\": expected true or false, not {other}")),
        };
        let Request { body: rules, .. } = parse_request::<AlertRules>(payload, EXAMPLE)?;
        Ok(Self { rules, at, digest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scheduled_and_direct_events_parse() {
        let text = include_str!("../../../events/alert-scheduled.json");
        let event: Value = serde_json::from_str(text).unwrap();
        let request = AlertRequest::from_event(event).unwrap();
        assert!(!request.rules.sources.is_empty());
        assert_eq!(request.at, None);

        let request = AlertRequest::from_event(json!({
            "sources": [{"source": "s3://b/app/", "maxAgeHours": 26, "tier": "critical"}],
            "digest": true, "at": "2026-11-24T18:00:00Z"
        }))
        .unwrap();
        assert!(request.digest);
        assert_eq!(request.at.map(|t| t.as_second()), Some(1_795_543_200));
    }

    #[test]
    fn bad_events_say_what_is_wrong() {
        let cases = [
            (json!([1]), "not a JSON object"),
            (
                json!({"detail-type": "Scheduled Event", "id": "x"}),
                "no request in its \"detail\"",
            ),
            (json!({"sources": [], "at": "yesterday"}), "field \"at\""),
            (json!({"sources": [], "at": 5}), "field \"at\""),
            (json!({"sources": [], "digest": "yes"}), "field \"digest\""),
            (
                json!({"sources": [{"source": "s3://a", "maxAgeHours": "26"}]}),
                "invalid type: string \"26\"",
            ),
            (
                json!({"sources": [], "verificationMaxAge": 3}),
                "unknown field `verificationMaxAge`",
            ),
        ];
        for (event, expected) in cases {
            let err = AlertRequest::from_event(event.clone()).unwrap_err();
            assert!(err.contains(expected), "{event}: {err}");
        }
    }
}
