//! The infrastructure templates of `infra/`, one topic per module.
//!
//! The emulator's CloudFormation is only a smoke test (shared/EMULATOR.md):
//! it skips some resource types and ignores many properties. So:
//! - the properties it ignores (Object Lock, versioning, public access block,
//!   TLS-only policy, PITR, key rotation, architecture, dead-letter queue…) are
//!   asserted on the template itself, read as YAML;
//! - what each function's role may and may not do is proven by a small IAM
//!   policy evaluator (`lifeboat_e2e::iam`) over the template's policies, with
//!   the template's intrinsic functions resolved for fixed parameter values
//!   (`lifeboat_e2e::cfn`);
//! - the template is deployed into the emulator with create-stack and what
//!   the emulator does create is checked, then the stack is deleted.
//!
//! This module holds what the topics share: the stack's parameters, its
//! functions, the resources a role's requests name, and sample events.

mod access;
mod deploy;
mod dr;
mod events;
mod functions;
mod roles;
mod schedules;
mod template;

use lifeboat_e2e::cfn::Stack;
use lifeboat_e2e::iam::{evaluate, Decision, Request};
use lifeboat_e2e::{ACCOUNT_ID, REGION};
use serde_json::Value;

/// A sample event of `events/`, as JSON.
fn sample_event(name: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/").to_owned() + name;
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

const STACK: &str = "lifeboat";
const OPERATOR_ROLE: &str = "arn:aws:iam::123456789012:role/lifeboat-operator";
/// The DR region and key the snapshot function copies to.
const DR_REGION: &str = "us-west-2";
const DR_KEY: &str = "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/// Parameters for the resolved template: the source of
/// events/file-backup-scheduled.json, the policy of
/// events/retention-scheduled.json.
fn primary_parameters() -> Vec<(&'static str, &'static str)> {
    vec![
        ("CodeBucket", "lifeboat-code"),
        ("OperatorRoleArn", OPERATOR_ROLE),
        ("PlanName", "app-nightly"),
        ("SourceBucket", "lifeboat-demo-data"),
        ("SourcePrefix", "app"),
        (
            "RetentionRules",
            r#"{"keepLast": 3, "daily": 7, "weekly": 5, "monthly": 12, "timezone": "Europe/Berlin"}"#,
        ),
        ("SnapshotCopyRegion", DR_REGION),
        ("SnapshotCopyKeyArn", DR_KEY),
    ]
}

/// The functions the template deploys, each with its role and log group.
const FUNCTIONS: [(&str, &str, &str); 5] = [
    ("FileBackupFunction", "FileBackupRole", "FileBackupLogGroup"),
    ("VerifyFunction", "VerifyRole", "VerifyLogGroup"),
    ("RetentionFunction", "RetentionRole", "RetentionLogGroup"),
    ("AlertFunction", "AlertRole", "AlertLogGroup"),
    ("SnapshotFunction", "SnapshotRole", "SnapshotLogGroup"),
];

fn props(resource: &Value) -> &Value {
    &resource["Properties"]
}

/// The requests of the library's calls for a function, and the runtime's.
struct Resources {
    bucket: String,
    key: String,
    table: String,
    queue: String,
    topic: String,
}

impl Resources {
    fn of(stack: &Stack) -> Self {
        Self {
            bucket: stack.attribute("BackupBucket", "Arn"),
            key: stack.attribute("StoreKey", "Arn"),
            table: stack.attribute("CatalogTable", "Arn"),
            queue: stack.attribute("DeadLetterQueue", "Arn"),
            topic: stack.reference("AlertsTopic"),
        }
    }

    fn object(&self, key: &str) -> String {
        format!("{}/{key}", self.bucket)
    }
}

fn log_stream(stack: &Stack, log_group: &str) -> String {
    format!(
        "arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{}:log-stream:2026/11/23/[$LATEST]abc",
        stack.reference(log_group)
    )
}

fn assert_decisions(role: &str, policies: &[Value], allowed: &[Request], denied: &[Request]) {
    for request in allowed {
        assert_eq!(evaluate(policies, request), Decision::Allow, "{role}: {request:?}");
    }
    for request in denied {
        assert_eq!(
            evaluate(policies, request),
            Decision::ImplicitDeny,
            "{role}: {request:?}"
        );
    }
}

/// Renders an EventBridge input transformer for an event, as EventBridge does.
fn render_input(transformer: &Value, event: &Value) -> Value {
    let mut text = transformer["InputTemplate"].as_str().expect("InputTemplate").to_owned();
    for (name, path) in transformer["InputPathsMap"].as_object().expect("InputPathsMap") {
        let field = path.as_str().unwrap().strip_prefix("$.").expect("a top-level path");
        let value = &event[field];
        let quoted = format!("\"<{name}>\"");
        text = match value {
            Value::String(s) if text.contains(&quoted) => text.replace(&format!("<{name}>"), s),
            other => text.replace(&format!("<{name}>"), &other.to_string()),
        };
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("the rendered input is not JSON ({e}): {text}"))
}
