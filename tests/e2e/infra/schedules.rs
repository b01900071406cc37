//! The plans' schedules and continuous backup: the scheduler's role, the
//! S3 Object Created rule, and the schedules template `lifeboat plan
//! schedules` writes.

use aws_sdk_cloudformation::types::{Parameter, StackStatus};
use lifeboat_e2e::cfn::{template, Stack};
use lifeboat_e2e::iam::{evaluate, Decision, Request};
use lifeboat_e2e::{sdk_config, unique, ACCOUNT_ID, REGION};
use serde_json::{json, Value};

use super::{assert_decisions, primary_parameters, sample_event, Resources, STACK};

/// The plans' schedules (generated, `lifeboat plan schedules`) run as the
/// scheduler's role: it may invoke the snapshot and file-backup functions
/// and dead-letter to the queue, nothing else; the key lets it encrypt
/// dead letters through SQS only.
#[test]
fn the_scheduler_role_only_runs_the_plans() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let r = Resources::of(&stack);
    let trust = stack.property("SchedulerRole", "AssumeRolePolicyDocument");
    assert_eq!(trust["Statement"][0]["Principal"]["Service"], "scheduler.amazonaws.com");
    assert_eq!(
        trust["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"],
        ACCOUNT_ID
    );
    let policies = stack.role_policies("SchedulerRole");
    let function = |logical: &str| stack.attribute(logical, "Arn");
    let via_sqs = format!("sqs.{REGION}.amazonaws.com");
    let allowed = [
        Request::new("lambda:InvokeFunction", &function("SnapshotFunction")),
        Request::new("lambda:InvokeFunction", &function("FileBackupFunction")),
        Request::new("sqs:SendMessage", &r.queue),
        Request::new("kms:GenerateDataKey", &r.key).with("kms:ViaService", &via_sqs),
    ];
    let denied = [
        Request::new("lambda:InvokeFunction", &function("RetentionFunction")),
        Request::new("lambda:InvokeFunction", &function("VerifyFunction")),
        Request::new("lambda:InvokeFunction", &function("AlertFunction")),
        Request::new("lambda:UpdateFunctionCode", &function("FileBackupFunction")),
        Request::new("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:another-queue"),
        Request::new("sqs:ReceiveMessage", &r.queue),
        Request::new("kms:GenerateDataKey", &r.key),
        Request::new("kms:Decrypt", &r.key).with("kms:ViaService", &format!("s3.{REGION}.amazonaws.com")),
        Request::new("s3:GetObject", &r.object("lifeboat/config")),
        Request::new("iam:PassRole", "*"),
    ];
    assert_decisions("SchedulerRole", &policies, &allowed, &denied);

    // The key policy names the role for dead letters through SQS only.
    let policy: Value = serde_json::from_str(stack.property("StoreKey", "KeyPolicy").as_str().unwrap()).unwrap();
    let key_policies = [policy];
    let role = stack.attribute("SchedulerRole", "Arn");
    let through = |via: &str| {
        evaluate(
            &key_policies,
            &Request::new("kms:GenerateDataKey", "*")
                .by(&role)
                .with("kms:ViaService", via),
        )
    };
    assert_eq!(through(&via_sqs), Decision::Allow);
    assert_eq!(through(&format!("s3.{REGION}.amazonaws.com")), Decision::ImplicitDeny);

    // The primary stack exports what the schedules' stack imports.
    for output in [
        "SnapshotFunctionArn",
        "FileBackupFunctionArn",
        "SchedulerRoleArn",
        "DeadLetterQueueArn",
    ] {
        let export = stack.resolve(&template["Outputs"][output]["Export"]["Name"]);
        assert_eq!(export, json!(format!("{STACK}-{output}")), "{output}");
    }
    // The functions run plans from the plan file.
    let plans = "s3://lifeboat-code/lifeboat/plans.toml";
    for function in ["SnapshotFunction", "FileBackupFunction"] {
        let environment = stack.property(function, "Environment");
        assert_eq!(environment["Variables"]["LIFEBOAT_PLANS"], plans, "{function}");
    }
    let file_backup = stack.role_policies("FileBackupRole");
    assert_eq!(
        evaluate(
            &file_backup,
            &Request::new("s3:GetObject", "arn:aws:s3:::lifeboat-code/lifeboat/plans.toml")
        ),
        Decision::Allow
    );
}

/// Continuous backup is off unless asked for; on, the rule matches S3's
/// Object Created events under the source prefix (the sample) and no others.
#[test]
fn the_object_created_rule_matches_the_sources_new_objects() {
    let template = template("lifeboat.yaml");
    let off = Stack::new(&template, STACK, &primary_parameters());
    assert!(!off.condition("HasContinuousBackup"));
    let on = Stack::new(
        &template,
        STACK,
        &[primary_parameters(), vec![("ContinuousBackup", "true")]].concat(),
    );
    assert!(on.condition("HasContinuousBackup"));
    let pattern = on.property("FileBackupObjectCreated", "EventPattern");
    let prefix = pattern["detail"]["object"]["key"][0]["prefix"]
        .as_str()
        .expect("a key prefix");
    assert_eq!(prefix, "app/");
    let matches = |event: &Value| {
        let listed = |field: &Value, value: &Value| field.as_array().is_some_and(|l| l.contains(value));
        listed(&pattern["source"], &event["source"])
            && listed(&pattern["detail-type"], &event["detail-type"])
            && listed(&pattern["detail"]["bucket"]["name"], &event["detail"]["bucket"]["name"])
            && event["detail"]["object"]["key"]
                .as_str()
                .is_some_and(|key| key.starts_with(prefix))
    };
    let sample = sample_event("s3-object-created-eventbridge.json");
    assert!(matches(&sample));
    let mut elsewhere = sample.clone();
    elsewhere["detail"]["object"]["key"] = json!("other/x.csv");
    assert!(!matches(&elsewhere));
    let mut other_bucket = sample.clone();
    other_bucket["detail"]["bucket"]["name"] = json!("someone-elses");
    assert!(!matches(&other_bucket));
    let target = &on.property("FileBackupObjectCreated", "Targets")[0];
    assert_eq!(target["Arn"], on.attribute("FileBackupFunction", "Arn").as_str());
    assert!(
        target["InputTransformer"].is_null(),
        "S3's events are delivered as they are"
    );
    assert_eq!(
        target["DeadLetterConfig"]["Arn"],
        on.attribute("DeadLetterQueue", "Arn").as_str()
    );
    assert_eq!(
        on.property("FileBackupObjectCreatedPermission", "SourceArn"),
        on.attribute("FileBackupObjectCreated", "Arn").as_str()
    );
    let sources = &on.property("DeadLetterQueuePolicy", "PolicyDocument")["Statement"][0]["Condition"]["ArnEquals"]
        ["aws:SourceArn"];
    assert!(sources
        .as_array()
        .unwrap()
        .contains(&json!(on.attribute("FileBackupObjectCreated", "Arn"))));
    // A whole-bucket source matches every key.
    let whole = Stack::new(
        &template,
        STACK,
        &[
            primary_parameters(),
            vec![("ContinuousBackup", "true"), ("SourcePrefix", "")],
        ]
        .concat(),
    );
    let pattern = whole.property("FileBackupObjectCreated", "EventPattern");
    assert_eq!(pattern["detail"]["object"]["key"], json!([{"prefix": ""}]));
}

/// `lifeboat plan schedules` of the sample plan file: one schedule per plan
/// and function, with the plan's expression and time zone and the
/// function's direct-invoke payload; cfn-lint accepts it; the emulator
/// creates the stack (it skips the Scheduler types: a smoke test only).
#[tokio::test]
async fn the_plans_schedules_template_is_one_schedule_per_plan() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/plans.toml");
    let output = std::process::Command::new(lifeboat_e2e::workspace_bin("lifeboat"))
        .args(["plan", "schedules", file])
        .output()
        .expect("run lifeboat plan schedules");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    let generated: Value = serde_json::from_str(&text).expect("the template is JSON");
    let plans = lifeboat::plan::parse_plans(&std::fs::read_to_string(file).expect("read"), jiff::Timestamp::now())
        .expect("the sample plans are valid");
    let schedules: Vec<&Value> = generated["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::Scheduler::Schedule")
        .collect();
    let mut expected_count = 0;
    for plan in &plans {
        let snapshot = !plan.tags.is_empty() || !plan.resources.is_empty() || !plan.database_sources().is_empty();
        let files = plan.sources.iter().any(|s| !lifeboat::db::url::is_database_url(s));
        for (runs, function, export) in [
            (snapshot, "snapshot", "SnapshotFunctionArn"),
            (files, "file-backup", "FileBackupFunctionArn"),
        ] {
            let found: Vec<&&Value> = schedules
                .iter()
                .filter(|s| s["Properties"]["Name"] == format!("{}-{function}", plan.name))
                .collect();
            assert_eq!(found.len(), usize::from(runs), "plan {} by {function}", plan.name);
            let Some(schedule) = found.first() else { continue };
            expected_count += 1;
            let p = &schedule["Properties"];
            assert_eq!(p["ScheduleExpression"], plan.schedule_text.as_str());
            assert_eq!(p["ScheduleExpressionTimezone"], plan.timezone.as_str());
            assert_eq!(p["FlexibleTimeWindow"]["Mode"], "OFF");
            assert_eq!(p["State"], "ENABLED");
            let target = &p["Target"];
            assert_eq!(
                target["Arn"],
                json!({"Fn::ImportValue": {"Fn::Sub": format!("${{PrimaryStack}}-{export}")}})
            );
            assert_eq!(
                target["RoleArn"],
                json!({"Fn::ImportValue": {"Fn::Sub": "${PrimaryStack}-SchedulerRoleArn"}})
            );
            assert_eq!(
                target["DeadLetterConfig"]["Arn"],
                json!({"Fn::ImportValue": {"Fn::Sub": "${PrimaryStack}-DeadLetterQueueArn"}})
            );
            assert!(target["RetryPolicy"]["MaximumRetryAttempts"]
                .as_u64()
                .is_some_and(|n| n > 0));
            let input: Value = serde_json::from_str(target["Input"].as_str().unwrap()).expect("JSON input");
            assert_eq!(
                input,
                json!({"plan": plan.name, "scheduledTime": "<aws.scheduler.scheduled-time>"})
            );
        }
    }
    assert_eq!(schedules.len(), expected_count, "no schedule for anything else");
    // The primary stack exports every name the generated stack imports.
    let primary = template("lifeboat.yaml");
    for import in text.match_indices("${PrimaryStack}-").map(|(i, _)| &text[i + 16..]) {
        let name: String = import.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        assert!(
            primary["Outputs"][&name]["Export"].is_object(),
            "the primary stack exports {name}"
        );
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("schedules.json");
    std::fs::write(&path, &text).expect("write the template");
    let lint = std::process::Command::new("cfn-lint").arg(&path).output();
    match lint {
        Ok(lint) => assert!(
            lint.status.success(),
            "cfn-lint: {}{}",
            String::from_utf8_lossy(&lint.stdout),
            String::from_utf8_lossy(&lint.stderr)
        ),
        Err(e) => eprintln!("cfn-lint is not on the PATH ({e}); scripts/setup installs it"),
    }

    let cloudformation = aws_sdk_cloudformation::Client::new(&sdk_config().await);
    let name = unique("schedules");
    cloudformation
        .create_stack()
        .stack_name(&name)
        .template_body(&text)
        .parameters(
            Parameter::builder()
                .parameter_key("PrimaryStack")
                .parameter_value("lifeboat")
                .build(),
        )
        .send()
        .await
        .expect("create-stack of the schedules");
    let described = cloudformation
        .describe_stacks()
        .stack_name(&name)
        .send()
        .await
        .expect("describe-stacks");
    assert_eq!(described.stacks()[0].stack_status(), Some(&StackStatus::CreateComplete));
}
