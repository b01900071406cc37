//! Deploying into the emulator: the primary template with create-stack, and
//! `scripts/deploy` creating then updating both stacks.

use std::collections::BTreeMap;

use aws_sdk_cloudformation::types::{Capability, Parameter, StackStatus};
use aws_sdk_s3::primitives::ByteStream;
use lifeboat_e2e::cfn::{infra_file, template};
use lifeboat_e2e::{dynamodb_client, kms_client, s3_client, sdk_config, unique};
use serde_json::{json, Value};

use super::{render_input, sample_event, OPERATOR_ROLE};

/// An IAM policy document as GetRolePolicy returns it (URL-encoded on AWS).
fn policy_document(text: &str) -> Value {
    let decoded = if text.trim_start().starts_with('{') {
        text.to_owned()
    } else {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).expect("percent-encoding"));
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).expect("UTF-8 policy")
    };
    serde_json::from_str(&decoded).unwrap_or_else(|e| panic!("not a policy document ({e}): {decoded}"))
}

/// A deployment package for the emulator: an empty zip (CreateFunction in the
/// emulator stores it without running it).
const EMPTY_ZIP: [u8; 22] = [
    0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

#[tokio::test]
async fn the_primary_template_deploys_into_the_emulator() {
    let config = sdk_config().await;
    let cloudformation = aws_sdk_cloudformation::Client::new(&config);
    let s3 = s3_client().await;

    let code_bucket = unique("code");
    s3.create_bucket()
        .bucket(&code_bucket)
        .send()
        .await
        .expect("create code bucket");
    for function in ["file-backup", "verify", "retention", "alert", "snapshot"] {
        s3.put_object()
            .bucket(&code_bucket)
            .key(format!("lifeboat/{function}/bootstrap.zip"))
            .body(ByteStream::from(EMPTY_ZIP.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("upload the {function} package: {e}"));
    }

    let stack_name = unique("lifeboat");
    let table_name = unique("catalog");
    let parameters = [
        ("CodeBucket", code_bucket.as_str()),
        ("OperatorRoleArn", OPERATOR_ROLE),
        ("TableName", table_name.as_str()),
        ("PlanName", "app-nightly"),
        ("SourceBucket", "lifeboat-demo-data"),
        ("SourcePrefix", "app"),
        ("ContinuousBackup", "true"),
    ];
    let created = cloudformation
        .create_stack()
        .stack_name(&stack_name)
        .template_body(infra_file("lifeboat.yaml"))
        .capabilities(Capability::CapabilityIam)
        .set_parameters(Some(
            parameters
                .iter()
                .map(|(k, v)| Parameter::builder().parameter_key(*k).parameter_value(*v).build())
                .collect(),
        ))
        .send()
        .await
        .expect("create-stack");
    let stack_id = created.stack_id().expect("a stack id").to_owned();
    let described = cloudformation
        .describe_stacks()
        .stack_name(&stack_name)
        .send()
        .await
        .expect("describe-stacks");
    let stack = &described.stacks()[0];
    assert_eq!(
        stack.stack_status(),
        Some(&StackStatus::CreateComplete),
        "{:?}",
        stack.stack_status_reason()
    );
    let outputs: BTreeMap<String, String> = stack
        .outputs()
        .iter()
        .map(|o| (o.output_key().unwrap().to_owned(), o.output_value().unwrap().to_owned()))
        .collect();

    // The table, with the schema and flags the emulator keeps.
    assert_eq!(outputs["CatalogTableName"], table_name);
    let table = dynamodb_client()
        .await
        .describe_table()
        .table_name(&table_name)
        .send()
        .await
        .expect("the catalog table exists");
    let table = table.table().unwrap();
    let mut indexes: Vec<&str> = table
        .global_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name())
        .collect();
    indexes.sort();
    assert_eq!(indexes, ["bySource", "byTime"]);
    assert_eq!(table.deletion_protection_enabled(), Some(true));
    assert_eq!(
        table
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|m| m.as_str()),
        Some("PAY_PER_REQUEST")
    );

    // The key: enabled, rotating; the bucket encrypted with it.
    let key_arn = &outputs["StoreKeyArn"];
    let kms = kms_client().await;
    let key = kms
        .describe_key()
        .key_id(key_arn)
        .send()
        .await
        .expect("describe the key");
    assert!(key.key_metadata().unwrap().enabled());
    let rotation = kms
        .get_key_rotation_status()
        .key_id(key_arn)
        .send()
        .await
        .expect("key rotation status");
    assert!(rotation.key_rotation_enabled());
    let bucket = &outputs["BackupBucketName"];
    s3.head_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("the backup bucket exists");
    let encryption = s3
        .get_bucket_encryption()
        .bucket(bucket)
        .send()
        .await
        .expect("bucket encryption");
    let rule = &encryption.server_side_encryption_configuration().unwrap().rules()[0];
    let default = rule.apply_server_side_encryption_by_default().unwrap();
    assert_eq!(default.sse_algorithm().as_str(), "aws:kms");
    assert_eq!(default.kms_master_key_id(), Some(key_arn.as_str()));
    assert_eq!(outputs["StoreUrl"], format!("s3://{bucket}/lifeboat"));

    // The topic, encrypted with the key.
    let sns = aws_sdk_sns::Client::new(&config);
    let topic = sns
        .get_topic_attributes()
        .topic_arn(&outputs["AlertsTopicArn"])
        .send()
        .await
        .expect("the alerts topic exists");
    assert_eq!(topic.attributes().and_then(|a| a.get("KmsMasterKeyId")), Some(key_arn));

    // Continuous backup: S3's Object Created events for the source, to file-backup.
    let events = aws_sdk_eventbridge::Client::new(&config);
    let rule_name = format!("{stack_name}-file-backup-object-created");
    let rule = events
        .describe_rule()
        .name(&rule_name)
        .send()
        .await
        .expect("the Object Created rule exists");
    let pattern: Value = serde_json::from_str(rule.event_pattern().expect("a pattern")).expect("JSON pattern");
    assert_eq!(pattern["detail"]["bucket"]["name"], json!(["lifeboat-demo-data"]));
    assert_eq!(pattern["detail"]["object"]["key"], json!([{"prefix": "app/"}]));
    let targets = events
        .list_targets_by_rule()
        .rule(&rule_name)
        .send()
        .await
        .expect("the rule's targets");
    assert_eq!(targets.targets()[0].arn(), outputs["FileBackupFunctionArn"]);

    // The plans' schedules (a stack of their own) run as the scheduler's
    // role, under the stack's IAM path like every role here.
    assert!(
        outputs["SchedulerRoleArn"].contains(&format!(":role/lifeboat/{stack_name}/")),
        "{}",
        outputs["SchedulerRoleArn"]
    );
    assert!(outputs["DeadLetterQueueArn"].starts_with("arn:aws:sqs:"));

    // The other functions' schedules, each targeting its function with the
    // shape of its sample event.
    for (rule_suffix, output, sample_name, schedule) in [
        (
            "verify",
            "VerifyFunctionArn",
            "verify-scheduled.json",
            "cron(0 4 * * ? *)",
        ),
        (
            "retention-app-nightly",
            "RetentionFunctionArn",
            "retention-scheduled.json",
            "cron(0 5 * * ? *)",
        ),
        (
            "alert-app-nightly",
            "AlertFunctionArn",
            "alert-scheduled.json",
            "rate(1 hour)",
        ),
    ] {
        let rule_name = format!("{stack_name}-{rule_suffix}");
        let rule = events
            .describe_rule()
            .name(&rule_name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("the rule {rule_name} exists: {e}"));
        assert_eq!(rule.schedule_expression(), Some(schedule), "{rule_name}");
        let targets = events
            .list_targets_by_rule()
            .rule(&rule_name)
            .send()
            .await
            .expect("the rule's targets");
        let target = &targets.targets()[0];
        assert_eq!(target.arn(), outputs[output], "{rule_name}");
        let transformer = target.input_transformer().expect("an input transformer");
        let transformer = json!({
            "InputPathsMap": transformer.input_paths_map().unwrap(),
            "InputTemplate": transformer.input_template(),
        });
        let sample = sample_event(sample_name);
        let rendered = render_input(&transformer, &sample);
        assert_eq!(rendered["id"], sample["id"], "{rule_name}");
        assert_eq!(
            rendered["detail"]["store"].as_str().unwrap_or(&outputs["StoreUrl"]),
            outputs["StoreUrl"]
        );
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&rendered["detail"]), keys(&sample["detail"]), "{rule_name}");
    }

    // The role, assumable by Lambda only, with the template's policy.
    let iam = aws_sdk_iam::Client::new(&config);
    let role_name = outputs["FileBackupRoleArn"].rsplit('/').next().unwrap().to_owned();
    let role = iam
        .get_role()
        .role_name(&role_name)
        .send()
        .await
        .expect("the role exists");
    let trust = policy_document(role.role().unwrap().assume_role_policy_document().unwrap());
    assert_eq!(
        trust["Statement"][0]["Principal"]["Service"], "lambda.amazonaws.com",
        "{trust}"
    );
    let inline = iam
        .get_role_policy()
        .role_name(&role_name)
        .policy_name("file-backup")
        .send()
        .await
        .expect("the role's policy");
    let deployed = policy_document(inline.policy_document());
    let sids = |policy: &Value| -> Vec<String> {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Sid"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let template = template("lifeboat.yaml");
    let written = &template["Resources"]["FileBackupPolicy"]["Properties"]["PolicyDocument"];
    assert_eq!(sids(&deployed), sids(written));
    let store_objects = &deployed["Statement"][0];
    assert_eq!(store_objects["Resource"], format!("arn:aws:s3:::{bucket}/lifeboat/*"));

    // Deleting the stack keeps the catalog (DeletionPolicy Retain, deletion
    // protection): the backups' records outlive the stack.
    cloudformation
        .delete_stack()
        .stack_name(&stack_id)
        .send()
        .await
        .expect("delete-stack");
    let after = cloudformation.describe_stacks().stack_name(&stack_name).send().await;
    assert!(after.is_err(), "the stack is gone: {after:?}");
    dynamodb_client()
        .await
        .describe_table()
        .table_name(&table_name)
        .send()
        .await
        .expect("the catalog table survives the stack");
}

/// `scripts/deploy`, the README's deploy path, against the emulator: it
/// uploads the package, creates both stacks, and a second run updates them.
#[tokio::test]
async fn scripts_deploy_creates_then_updates_the_stacks() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let package = dir.path().join("bootstrap.zip");
    std::fs::write(&package, EMPTY_ZIP).expect("write the package");
    let stack = unique("deployed");
    let table = unique("catalog");
    let deploy = || {
        let output = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/deploy"))
            .args([
                "--stack",
                &stack,
                "--code-bucket",
                &unique("code"),
                "--operator-role-arn",
                OPERATOR_ROLE,
            ])
            .args(["--parameter", "SourceBucket=lifeboat-demo-data", "--parameter"])
            .arg(format!("TableName={table}"))
            .args(
                ["file-backup", "verify", "retention", "alert", "snapshot"]
                    .iter()
                    .flat_map(|function| ["--package".to_owned(), format!("{function}={}", package.display())]),
            )
            .args(["--dr-region", "us-west-2"])
            .args([
                "--plans",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/plans.toml"),
            ])
            .env("LIFEBOAT_BIN", lifeboat_e2e::workspace_bin("lifeboat"))
            .envs(lifeboat_e2e::aws_env())
            .output()
            .expect("run scripts/deploy");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "scripts/deploy failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    let first = deploy();
    assert!(first.contains(&format!("CatalogTableName={table}\n")), "{first}");
    assert!(first.contains("StoreUrl=s3://"), "{first}");
    assert!(first.contains("\nDrKeyArn=arn:aws:kms:us-west-2:"), "{first}");
    // The plans' schedules, a third stack, from the plan file.
    assert!(
        first.contains(&format!("SchedulesStack={stack}-schedules\n")),
        "{first}"
    );
    // The DR key trusts the primary stack's roles by name: nothing to pair.
    let cloudformation = aws_sdk_cloudformation::Client::new(&lifeboat_e2e::sdk_config_in("us-west-2").await);
    let dr = cloudformation
        .describe_stacks()
        .stack_name(format!("{stack}-dr"))
        .send()
        .await
        .expect("the DR stack");
    let primary_stack = dr.stacks()[0]
        .parameters()
        .iter()
        .find(|p| p.parameter_key() == Some("PrimaryStack"))
        .and_then(|p| p.parameter_value());
    assert_eq!(primary_stack, Some(stack.as_str()));
    let second = deploy();
    assert!(second.contains(&format!("CatalogTableName={table}\n")), "{second}");
}
