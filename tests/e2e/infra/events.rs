//! The primary template's EventBridge rules: the schedule sends the shape of
//! the sample scheduled event; the RDS events rule matches Lifeboat's
//! snapshot events and no others.

use std::collections::BTreeMap;

use lifeboat_e2e::cfn::{template, Stack};
use serde_json::{json, Value};

use super::{primary_parameters, props, render_input, sample_event, STACK};

#[test]
fn the_schedule_sends_the_shape_of_the_sample_scheduled_event() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let store = format!("s3://{}/lifeboat", stack.reference("BackupBucket"));
    let by_parameter = |name: &str| json!({"Ref": name});
    let schedules = [
        (
            "Verify",
            by_parameter("VerifyScheduleExpression"),
            "verify-scheduled.json",
        ),
        (
            "Retention",
            by_parameter("RetentionScheduleExpression"),
            "retention-scheduled.json",
        ),
        ("Alert", by_parameter("AlertScheduleExpression"), "alert-scheduled.json"),
        (
            "VerifySnapshots",
            by_parameter("VerifyScheduleExpression"),
            "verify-snapshots.json",
        ),
        (
            "RetentionSnapshots",
            by_parameter("RetentionScheduleExpression"),
            "retention-snapshots.json",
        ),
        // The scheduled restore tests advance every 15 minutes.
        (
            "VerifyRestoreTests",
            json!("rate(15 minutes)"),
            "verify-restore-tests.json",
        ),
    ];
    let mut rules = stack.resources_of_type("AWS::Events::Rule");
    rules.sort();
    let mut expected_rules: Vec<String> = schedules.iter().map(|(f, _, _)| format!("{f}Schedule")).collect();
    // And rules for events: RDS's snapshot events, to the snapshot function;
    // S3's Object Created, to file-backup. The plans' own schedules are the
    // generated stack's (lifeboat plan schedules), not rules here.
    expected_rules.push("SnapshotRdsEvents".to_owned());
    expected_rules.push("FileBackupObjectCreated".to_owned());
    expected_rules.sort();
    assert_eq!(rules, expected_rules, "one schedule per function, and the event rules");
    let mut rendered_events = BTreeMap::new();
    for (function, expression, sample_name) in schedules {
        let rule_name = format!("{function}Schedule");
        let rule = props(stack.resource(&rule_name));
        assert_eq!(rule["ScheduleExpression"], expression, "{rule_name}");
        let targets = stack.property(&rule_name, "Targets");
        assert_eq!(targets.as_array().unwrap().len(), 1, "{rule_name}");
        let target = &targets[0];
        let target_function = function
            .strip_suffix("Snapshots")
            .or_else(|| function.strip_suffix("RestoreTests"))
            .unwrap_or(function);
        assert_eq!(
            target["Arn"],
            stack.attribute(&format!("{target_function}Function"), "Arn").as_str()
        );
        assert_eq!(
            target["DeadLetterConfig"]["Arn"],
            stack.attribute("DeadLetterQueue", "Arn").as_str(),
            "{rule_name}"
        );
        let sample = sample_event(sample_name);
        let rendered = render_input(&target["InputTransformer"], &sample);
        // The envelope is the event's own, whatever the function.
        for field in [
            "version",
            "id",
            "detail-type",
            "source",
            "account",
            "time",
            "region",
            "resources",
        ] {
            assert_eq!(rendered[field], sample[field], "{rule_name}: {field}");
        }
        rendered_events.insert(function, (rendered, sample));

        // The function's permission names the rule; the dead-letter queue
        // takes the rule's undeliverable events.
        let permission = stack.property(&format!("{function}SchedulePermission"), "SourceArn");
        assert_eq!(permission, stack.attribute(&rule_name, "Arn").as_str());
        let queue_policy = stack.property("DeadLetterQueuePolicy", "PolicyDocument");
        let sources = &queue_policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"];
        assert!(
            sources
                .as_array()
                .unwrap()
                .contains(&json!(stack.attribute(&rule_name, "Arn"))),
            "the dead-letter queue accepts {rule_name}'s events: {sources}"
        );
    }

    // verify's restore tests: the sample as it is.
    let (rendered, sample) = &rendered_events["VerifyRestoreTests"];
    assert_eq!(rendered, sample);

    // verify: the sample, with the stack's store.
    let (rendered, sample) = &rendered_events["Verify"];
    let mut expected = sample.clone();
    expected["detail"]["store"] = json!(store);
    assert_eq!(rendered, &expected);

    // retention: the sample (its source is the plan's, as backups record it:
    // s3://BUCKET/PREFIX/), with the stack's store.
    let (rendered, sample) = &rendered_events["Retention"];
    let mut expected = sample.clone();
    expected["detail"]["store"] = json!(store);
    assert_eq!(rendered, &expected);
    let policy: lifeboat::retention::RetentionPolicy =
        serde_json::from_value(rendered["detail"]["policy"].clone()).expect("the library reads the policy");
    assert!(policy.has_rules());
    // A whole-bucket plan is recorded as s3://BUCKET/.
    let whole = Stack::new(
        &template,
        STACK,
        &[primary_parameters(), vec![("SourcePrefix", "")]].concat(),
    );
    let target = &whole.property("RetentionSchedule", "Targets")[0];
    let rendered_whole = render_input(&target["InputTransformer"], sample);
    assert_eq!(rendered_whole["detail"]["source"], "s3://lifeboat-demo-data/");

    // The snapshot plan's verification and retention: the samples, for the stack's plan.
    for function in ["VerifySnapshots", "RetentionSnapshots"] {
        let (rendered, sample) = &rendered_events[function];
        assert_eq!(rendered, sample, "{function}");
    }

    // alert: the sample's shape, with the plan as its one source; the
    // library reads the rules.
    let (rendered, sample) = &rendered_events["Alert"];
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&rendered["detail"]), keys(&sample["detail"]));
    assert_eq!(
        keys(&rendered["detail"]["sources"][0]),
        keys(&sample["detail"]["sources"][0])
    );
    assert_eq!(
        rendered["detail"]["sources"],
        json!([{"source": "s3://lifeboat-demo-data/app/", "plan": "app-nightly", "maxAgeHours": 26, "tier": "critical"}])
    );
    assert_eq!(rendered["detail"]["digest"], false);
    let mut rules = rendered["detail"].clone();
    rules.as_object_mut().unwrap().remove("digest");
    let rules: lifeboat::alert::AlertRules = serde_json::from_value(rules).expect("the library reads the rules");
    assert_eq!(rules.sources.len(), 1);
    assert_eq!(rules.sources[0].plan.as_deref(), Some("app-nightly"));
}

/// The RDS events rule sends RDS's snapshot events about Lifeboat's
/// snapshots (the samples) as they are, and no others.
#[test]
fn the_rds_events_rule_matches_lifeboats_snapshot_events() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let pattern = stack.property("SnapshotRdsEvents", "EventPattern");
    // What EventBridge matches here: source, detail-type, a prefix of
    // detail.SourceIdentifier.
    let matches = |event: &Value| {
        let listed = |field: &Value, value: &Value| field.as_array().is_some_and(|l| l.contains(value));
        let prefix = pattern["detail"]["SourceIdentifier"][0]["prefix"]
            .as_str()
            .expect("a prefix");
        listed(&pattern["source"], &event["source"])
            && listed(&pattern["detail-type"], &event["detail-type"])
            && event["detail"]["SourceIdentifier"]
                .as_str()
                .is_some_and(|id| id.starts_with(prefix))
    };
    for sample_name in ["rds-db-snapshot-event.json", "rds-cluster-snapshot-event.json"] {
        let sample = sample_event(sample_name);
        assert!(matches(&sample), "{sample_name}");
        let mut automated = sample.clone();
        automated["detail"]["SourceIdentifier"] = json!("rds:orders-2026-11-23-02-00");
        assert!(!matches(&automated), "{sample_name}: a snapshot that is not Lifeboat's");
    }
    assert!(!matches(&sample_event("snapshot-scheduled.json")));
    let target = &stack.property("SnapshotRdsEvents", "Targets")[0];
    assert_eq!(target["Arn"], stack.attribute("SnapshotFunction", "Arn").as_str());
    assert!(
        target["InputTransformer"].is_null(),
        "RDS events are delivered as they are"
    );
    assert_eq!(
        target["DeadLetterConfig"]["Arn"],
        stack.attribute("DeadLetterQueue", "Arn").as_str()
    );
    assert_eq!(
        stack.property("SnapshotRdsEventsPermission", "SourceArn"),
        stack.attribute("SnapshotRdsEvents", "Arn").as_str()
    );
    let queue_policy = stack.property("DeadLetterQueuePolicy", "PolicyDocument");
    let sources = &queue_policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"];
    assert!(sources
        .as_array()
        .unwrap()
        .contains(&json!(stack.attribute("SnapshotRdsEvents", "Arn"))));
}
