//! `lifeboat plan schedules`: the CloudFormation stack of the plans'
//! schedules, one EventBridge Scheduler schedule per plan and function,
//! in the plan's own time zone. `scripts/deploy --plans` deploys it next to
//! the primary stack, whose exports it imports (the functions, the
//! scheduler's role, the dead-letter queue).

use anyhow::{bail, Result};
use lifeboat::db::url::is_database_url;
use lifeboat::plan::Plan;
use serde_json::{json, Map, Value};

/// What Scheduler puts in place of this in a target's input: the run's
/// scheduled time (RFC 3339, UTC), which makes redeliveries idempotent.
pub const SCHEDULED_TIME: &str = "<aws.scheduler.scheduled-time>";

/// The functions a plan's schedule invokes, with the primary stack's export naming each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Plans selecting RDS resources (tags, resources) or dumping databases.
    Snapshot,
    /// Plans with S3 sources.
    FileBackup,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Snapshot => "snapshot",
            Target::FileBackup => "file-backup",
        }
    }

    fn logical(self) -> &'static str {
        match self {
            Target::Snapshot => "Snapshot",
            Target::FileBackup => "FileBackup",
        }
    }

    fn export(self) -> &'static str {
        match self {
            Target::Snapshot => "SnapshotFunctionArn",
            Target::FileBackup => "FileBackupFunctionArn",
        }
    }
}

/// The functions that run a plan.
pub fn targets(plan: &Plan) -> Vec<Target> {
    let mut targets = Vec::new();
    if !plan.tags.is_empty() || !plan.resources.is_empty() || !plan.database_sources().is_empty() {
        targets.push(Target::Snapshot);
    }
    if plan.sources.iter().any(|s| !is_database_url(s)) {
        targets.push(Target::FileBackup);
    }
    targets
}

/// `orders-hourly` → `OrdersHourly`.
fn camel(name: &str) -> String {
    let mut out = String::new();
    let mut upper = true;
    for c in name.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn import(export: &str) -> Value {
    json!({"Fn::ImportValue": {"Fn::Sub": format!("${{PrimaryStack}}-{export}")}})
}

/// The template: a schedule group named after the stack, and per plan and
/// target function a schedule whose input is the function's direct-invoke
/// payload `{"plan": NAME, "scheduledTime": ...}`.
pub fn template(plans: &[Plan], file: &str) -> Result<Value> {
    let mut resources = Map::new();
    resources.insert(
        "ScheduleGroup".into(),
        json!({
            "Type": "AWS::Scheduler::ScheduleGroup",
            "Properties": {"Name": {"Ref": "AWS::StackName"}}
        }),
    );
    for plan in plans {
        let targets = targets(plan);
        if targets.is_empty() {
            bail!(
                "plan {} selects nothing a function runs (no tags, resources or sources)",
                plan.name
            );
        }
        for target in targets {
            let logical = format!("{}{}Schedule", camel(&plan.name), target.logical());
            if resources.contains_key(&logical) {
                bail!(
                    "plans' names map to the same CloudFormation id {logical} (hyphens are dropped): rename one of them"
                );
            }
            let input = json!({"plan": plan.name, "scheduledTime": SCHEDULED_TIME}).to_string();
            let description = format!(
                "Lifeboat plan {}: {} ({}, {}), by the {} function",
                plan.name,
                plan.schedule_text,
                plan.schedule.describe(),
                plan.timezone,
                target.name()
            );
            resources.insert(
                logical,
                json!({
                    "Type": "AWS::Scheduler::Schedule",
                    "Properties": {
                        "Name": format!("{}-{}", plan.name, target.name()),
                        "GroupName": {"Ref": "ScheduleGroup"},
                        "Description": description,
                        "ScheduleExpression": plan.schedule_text.trim(),
                        "ScheduleExpressionTimezone": plan.timezone,
                        "FlexibleTimeWindow": {"Mode": "OFF"},
                        "State": "ENABLED",
                        "Target": {
                            "Arn": import(target.export()),
                            "RoleArn": import("SchedulerRoleArn"),
                            "Input": input,
                            "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600},
                            "DeadLetterConfig": {"Arn": import("DeadLetterQueueArn")}
                        }
                    }
                }),
            );
        }
    }
    Ok(json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("Lifeboat plan schedules from {file}, generated by `lifeboat plan schedules`: one EventBridge Scheduler schedule per plan and function, in the plan's time zone."),
        "Parameters": {
            "PrimaryStack": {
                "Type": "String",
                "Description": "The primary stack (infra/lifeboat.yaml) whose exports name the functions, the scheduler's role and the dead-letter queue.",
                "AllowedPattern": "[a-zA-Z][-a-zA-Z0-9]*"
            }
        },
        "Resources": resources
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plans() -> Vec<Plan> {
        let text = r#"
[[plan]]
name = "orders-hourly"
schedule = "cron(0 * * * ? *)"
timezone = "Europe/Berlin"
tags = { backup = "hourly" }
sources = ["postgres://app@db/orders", "s3://exports/orders"]
retention = { keep_last = 24 }
rpo = "1h"
tier = "critical"

[[plan]]
name = "reports"
schedule = "rate(1 day)"
sources = ["s3://reports/"]
retention = { keep_last = 7 }
rpo = "26h"
tier = "standard"
"#;
        lifeboat::plan::parse_plans(text, jiff::Timestamp::UNIX_EPOCH).unwrap()
    }

    #[test]
    fn one_schedule_per_plan_and_function_in_the_plans_zone() {
        let template = template(&plans(), "plans.toml").unwrap();
        let resources = template["Resources"].as_object().unwrap();
        let mut ids: Vec<&str> = resources.keys().map(String::as_str).collect();
        ids.sort();
        assert_eq!(
            ids,
            [
                "OrdersHourlyFileBackupSchedule",
                "OrdersHourlySnapshotSchedule",
                "ReportsFileBackupSchedule",
                "ScheduleGroup"
            ]
        );
        let snapshot = &resources["OrdersHourlySnapshotSchedule"]["Properties"];
        assert_eq!(snapshot["ScheduleExpression"], "cron(0 * * * ? *)");
        assert_eq!(snapshot["ScheduleExpressionTimezone"], "Europe/Berlin");
        assert_eq!(snapshot["Name"], "orders-hourly-snapshot");
        assert_eq!(snapshot["FlexibleTimeWindow"]["Mode"], "OFF");
        assert_eq!(
            snapshot["Target"]["Arn"],
            json!({"Fn::ImportValue": {"Fn::Sub": "${PrimaryStack}-SnapshotFunctionArn"}})
        );
        let input: Value = serde_json::from_str(snapshot["Target"]["Input"].as_str().unwrap()).unwrap();
        assert_eq!(input, json!({"plan": "orders-hourly", "scheduledTime": SCHEDULED_TIME}));
        let reports = &resources["ReportsFileBackupSchedule"]["Properties"];
        assert_eq!(reports["ScheduleExpression"], "rate(1 day)");
        assert_eq!(reports["ScheduleExpressionTimezone"], "UTC");
        assert_eq!(
            reports["Target"]["Arn"],
            json!({"Fn::ImportValue": {"Fn::Sub": "${PrimaryStack}-FileBackupFunctionArn"}})
        );
    }

    #[test]
    fn names_that_collide_are_refused() {
        let text = r#"
[[plan]]
name = "a-1"
schedule = "rate(1 day)"
sources = ["s3://x/"]
retention = { keep_last = 7 }
rpo = "26h"
tier = "standard"

[[plan]]
name = "a1"
schedule = "rate(1 day)"
sources = ["s3://y/"]
retention = { keep_last = 7 }
rpo = "26h"
tier = "standard"
"#;
        let plans = lifeboat::plan::parse_plans(text, jiff::Timestamp::UNIX_EPOCH).unwrap();
        let error = template(&plans, "p.toml").unwrap_err().to_string();
        assert!(
            error.contains("A1FileBackupSchedule") && error.contains("rename"),
            "{error}"
        );
    }
}
