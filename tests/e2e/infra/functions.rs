//! The primary template's functions: arm64, each with its own role, a
//! dead-letter queue and alarms; the snapshot and verify functions' store,
//! secrets, network and tools layer when the stack is given them.

use lifeboat_e2e::cfn::{template, Stack};
use lifeboat_e2e::iam::{evaluate, Decision, Request};
use lifeboat_e2e::{ACCOUNT_ID, REGION};
use serde_json::json;

use super::{assert_decisions, primary_parameters, props, FUNCTIONS, STACK};

#[test]
fn every_function_is_arm64_with_its_own_role_a_dead_letter_queue_and_alarms() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let mut functions = stack.resources_of_type("AWS::Lambda::Function");
    functions.sort();
    let mut expected: Vec<&str> = FUNCTIONS.iter().map(|(f, _, _)| *f).collect();
    expected.sort();
    assert_eq!(functions, expected, "the functions the template deploys");
    let mut roles = Vec::new();
    for function in functions {
        let properties = props(stack.resource(function));
        assert_eq!(properties["Runtime"], "provided.al2023", "{function}");
        assert_eq!(properties["Architectures"], json!(["arm64"]), "{function}");
        assert_eq!(properties["Handler"], "bootstrap", "{function}");
        assert_eq!(
            properties["Code"]["S3Bucket"],
            json!({"Ref": "CodeBucket"}),
            "{function}"
        );
        let role = properties["Role"]["Fn::GetAtt"][0]
            .as_str()
            .expect("the role is the stack's");
        assert!(!roles.contains(&role), "{function} shares its role {role}");
        roles.push(role);
        let queue = properties["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{function} has no dead-letter queue"));
        assert_eq!(stack.resource_type(queue), "AWS::SQS::Queue");
        assert!(
            !props(stack.resource(queue))["KmsMasterKeyId"].is_null(),
            "{queue} is encrypted"
        );

        let invoke_configs: Vec<&str> = stack
            .resources_of_type("AWS::Lambda::EventInvokeConfig")
            .into_iter()
            .filter(|c| props(stack.resource(c))["FunctionName"] == json!({"Ref": function}))
            .collect();
        assert_eq!(invoke_configs.len(), 1, "{function} has one EventInvokeConfig");
        assert_eq!(
            props(stack.resource(invoke_configs[0]))["MaximumRetryAttempts"],
            json!({"Ref": "MaximumRetryAttempts"})
        );

        let alarmed: Vec<String> = stack
            .resources_of_type("AWS::CloudWatch::Alarm")
            .into_iter()
            .map(|a| props(stack.resource(a)))
            .filter(|a| a["Dimensions"][0]["Value"] == json!({"Ref": function}))
            .inspect(|a| assert_eq!(a["AlarmActions"], json!([{"Ref": "AlertsTopic"}])))
            .map(|a| a["MetricName"].as_str().unwrap().to_owned())
            .collect();
        assert!(alarmed.contains(&"Errors".to_owned()), "{function}: {alarmed:?}");
        assert!(alarmed.contains(&"Throttles".to_owned()), "{function}: {alarmed:?}");

        // Its package is its own parameter (scripts/deploy's FUNCTIONS).
        let code_key = properties["Code"]["S3Key"]["Ref"]
            .as_str()
            .expect("the package key is a parameter");
        assert_eq!(code_key, format!("{}CodeKey", function.trim_end_matches("Function")));
        // Encrypted settings, a JSON log group of its own, its own role policy.
        assert_eq!(
            stack.property(function, "KmsKeyArn"),
            stack.attribute("StoreKey", "Arn").as_str(),
            "{function}"
        );
        let (_, _, log_group) = FUNCTIONS.iter().find(|(f, _, _)| *f == function).unwrap();
        assert_eq!(
            properties["LoggingConfig"]["LogGroup"],
            json!({"Ref": log_group}),
            "{function}"
        );
        assert_eq!(properties["LoggingConfig"]["LogFormat"], "JSON", "{function}");
        assert!(!props(stack.resource(log_group))["KmsKeyId"].is_null(), "{log_group}");
        assert_eq!(
            props(stack.resource(log_group))["RetentionInDays"],
            json!({"Ref": "LogRetentionDays"})
        );
        let policy_resource = format!("{}Policy", function.trim_end_matches("Function"));
        assert_eq!(stack.resource_type(&policy_resource), "AWS::IAM::Policy");
        assert_eq!(props(stack.resource(&policy_resource))["Roles"], json!([{"Ref": role}]));
        assert_eq!(
            stack.resource(function)["DependsOn"],
            policy_resource.as_str(),
            "{function}"
        );

        // Its settings resolve to what the function accepts.
        let environment = stack.property(function, "Environment")["Variables"].clone();
        let names: Vec<&str> = environment.as_object().unwrap().keys().map(String::as_str).collect();
        let expected: &[&str] = match function {
            "FileBackupFunction" => &[
                "LIFEBOAT_CONCURRENCY",
                "LIFEBOAT_KMS_KEY",
                "LIFEBOAT_PLANS",
                "LIFEBOAT_STORE",
                "LIFEBOAT_TABLE",
            ],
            "VerifyFunction" => &["LIFEBOAT_PLANS", "LIFEBOAT_STORE", "LIFEBOAT_TABLE"],
            "RetentionFunction" => &["LIFEBOAT_DRY_RUN", "LIFEBOAT_PLANS", "LIFEBOAT_STORE", "LIFEBOAT_TABLE"],
            "AlertFunction" => &["LIFEBOAT_ALERT_TOPIC_ARN", "LIFEBOAT_PLANS", "LIFEBOAT_TABLE"],
            "SnapshotFunction" => &["LIFEBOAT_KMS_KEY", "LIFEBOAT_PLANS", "LIFEBOAT_STORE", "LIFEBOAT_TABLE"],
            other => panic!("no expected settings for {other}"),
        };
        assert_eq!(names, expected, "{function}");
        assert_eq!(environment["LIFEBOAT_TABLE"], stack.reference("CatalogTable").as_str());
        if let Some(store) = environment["LIFEBOAT_STORE"].as_str() {
            lifeboat::storage::Location::parse(store).unwrap_or_else(|e| panic!("LIFEBOAT_STORE={store}: {e}"));
        }
        if !environment["LIFEBOAT_KMS_KEY"].is_null() {
            assert_eq!(
                environment["LIFEBOAT_KMS_KEY"],
                stack.attribute("StoreKey", "Arn").as_str()
            );
        }
    }
    let environment = |function: &str| stack.property(function, "Environment")["Variables"].clone();
    assert_eq!(environment("RetentionFunction")["LIFEBOAT_DRY_RUN"], "false");
    assert_eq!(
        environment("AlertFunction")["LIFEBOAT_ALERT_TOPIC_ARN"],
        stack.reference("AlertsTopic").as_str()
    );
    let plans = environment("SnapshotFunction")["LIFEBOAT_PLANS"].clone();
    assert_eq!(plans, "s3://lifeboat-code/lifeboat/plans.toml");
    lifeboat::plan::load::PlanSource::parse(plans.as_str().unwrap()).expect("the function reads LIFEBOAT_PLANS");

    // The alert function failing means alerts may be lost: alarmed at the
    // first error, straight to the topic.
    let alert_errors = props(stack.resource("AlertErrorsAlarm"));
    assert_eq!(alert_errors["MetricName"], "Errors");
    assert_eq!(alert_errors["Dimensions"][0]["Value"], json!({"Ref": "AlertFunction"}));
    assert_eq!(alert_errors["Threshold"], 1);
    assert_eq!(alert_errors["ComparisonOperator"], "GreaterThanOrEqualToThreshold");
    assert_eq!(alert_errors["Statistic"], "Sum");
    assert_eq!(alert_errors["AlarmActions"], json!([{"Ref": "AlertsTopic"}]));
    // Reserved concurrency only when asked for.
    assert!(stack
        .property("FileBackupFunction", "ReservedConcurrentExecutions")
        .is_null());
    let reserved = Stack::new(
        &template,
        STACK,
        &[primary_parameters(), vec![("ReservedConcurrency", "5")]].concat(),
    );
    assert_eq!(
        reserved.property("FileBackupFunction", "ReservedConcurrentExecutions"),
        "5"
    );

    // The dead-letter queue's depth is alarmed.
    let depth = stack
        .resources_of_type("AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|a| props(stack.resource(a)))
        .find(|a| a["MetricName"] == "ApproximateNumberOfMessagesVisible")
        .expect("a dead-letter queue alarm");
    assert_eq!(depth["Namespace"], "AWS/SQS");
    assert_eq!(depth["AlarmActions"], json!([{"Ref": "AlertsTopic"}]));
}

/// The snapshot function's database dumps as deployed: the store in its
/// environment, the secrets the stack names and no others, the VPC and the
/// tools layer only when given.
#[test]
fn the_snapshot_function_dumps_with_the_stacks_store_secrets_network_and_layer() {
    let template = template("lifeboat.yaml");
    let secret = |name: &str| format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{name}");
    let (orders, shop) = (secret("orders-db-AbCdEf"), secret("shop-db-GhIjKl"));
    let layer = format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:layer:lifeboat-db-tools:3");
    let secrets_list = format!("{orders},{shop}");
    let mut parameters = primary_parameters();
    parameters.extend([
        ("DatabaseSecretArns", secrets_list.as_str()),
        ("FunctionSubnetIds", "subnet-0a1b,subnet-2c3d"),
        ("FunctionSecurityGroupIds", "sg-0a1b"),
        ("DbToolsLayerArn", layer.as_str()),
    ]);
    let stack = Stack::new(&template, STACK, &parameters);
    let environment = &stack.property("SnapshotFunction", "Environment")["Variables"];
    assert_eq!(
        environment["LIFEBOAT_STORE"],
        format!("s3://{}/lifeboat", stack.reference("BackupBucket")),
        "the store the toolkit and file-backup use"
    );
    assert_eq!(environment["LIFEBOAT_KMS_KEY"], stack.attribute("StoreKey", "Arn"));
    lifeboat::storage::Location::parse(environment["LIFEBOAT_STORE"].as_str().unwrap_or_default())
        .expect("the function reads LIFEBOAT_STORE");
    assert_eq!(stack.property("SnapshotFunction", "Layers"), json!([layer]));
    assert_eq!(
        stack.property("SnapshotFunction", "VpcConfig"),
        json!({"SubnetIds": ["subnet-0a1b", "subnet-2c3d"], "SecurityGroupIds": ["sg-0a1b"]})
    );
    // In a VPC, Lambda needs the network-interface rights of AWS's managed policy.
    assert_eq!(
        stack.resolve(&stack.resource("SnapshotRole")["Properties"]["ManagedPolicyArns"]),
        json!(["arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"])
    );
    // Dumps outlast the old 5 minutes.
    assert_eq!(stack.property("SnapshotFunction", "Timeout"), 900);

    // The role's policies, the managed one left out (what it allows is AWS's).
    let mut documents = Vec::new();
    for logical in stack.resources_of_type("AWS::IAM::Policy") {
        let resource = stack.resource(logical);
        let created = resource["Condition"].as_str().is_none_or(|c| stack.condition(c));
        if created && resource["Properties"]["Roles"] == json!([{"Ref": "SnapshotRole"}]) {
            documents.push(stack.resolve(&resource["Properties"]["PolicyDocument"]));
        }
    }
    assert_decisions(
        "SnapshotRole with secrets",
        &documents,
        &[
            Request::new("secretsmanager:GetSecretValue", &orders),
            Request::new("secretsmanager:GetSecretValue", &shop),
        ],
        &[
            Request::new("secretsmanager:GetSecretValue", &secret("payroll-db-MnOpQr")),
            Request::new("secretsmanager:PutSecretValue", &orders),
            Request::new("secretsmanager:ListSecrets", "*"),
        ],
    );

    // Without them: no VPC, no layer, no managed policy, no secret.
    let plain = Stack::new(&template, STACK, &primary_parameters());
    assert!(plain.property("SnapshotFunction", "VpcConfig").is_null());
    assert!(plain.property("SnapshotFunction", "Layers").is_null());
    let policies = plain.role_policies("SnapshotRole");
    assert_eq!(
        evaluate(&policies, &Request::new("secretsmanager:GetSecretValue", &orders)),
        Decision::ImplicitDeny
    );
}

#[test]
fn the_verify_function_reaches_restore_test_instances_through_the_stacks_network_and_layer() {
    let template = template("lifeboat.yaml");
    let layer = format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:layer:lifeboat-db-tools:3");
    let mut parameters = primary_parameters();
    parameters.extend([
        ("FunctionSubnetIds", "subnet-0a1b,subnet-2c3d"),
        ("FunctionSecurityGroupIds", "sg-0a1b"),
        ("DbToolsLayerArn", layer.as_str()),
    ]);
    let stack = Stack::new(&template, STACK, &parameters);
    assert_eq!(stack.property("VerifyFunction", "Layers"), json!([layer]));
    assert_eq!(
        stack.property("VerifyFunction", "VpcConfig"),
        json!({"SubnetIds": ["subnet-0a1b", "subnet-2c3d"], "SecurityGroupIds": ["sg-0a1b"]})
    );
    assert_eq!(
        stack.resolve(&stack.resource("VerifyRole")["Properties"]["ManagedPolicyArns"]),
        json!(["arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"])
    );
    // A restore test may outlast an invocation; the function runs its 15 minutes.
    assert_eq!(stack.property("VerifyFunction", "Timeout"), 900);

    let plain = Stack::new(&template, STACK, &primary_parameters());
    assert!(plain.property("VerifyFunction", "VpcConfig").is_null());
    assert!(plain.property("VerifyFunction", "Layers").is_null());
    assert!(plain
        .resolve(&plain.resource("VerifyRole")["Properties"]["ManagedPolicyArns"])
        .is_null());
}
