//! Who may do what across the stack: where the roles differ, who may use the
//! store's key, the operator's and the read-only policies.

use lifeboat_e2e::cfn::{infra_file, template, Stack};
use lifeboat_e2e::iam::{evaluate, Decision, Request};
use lifeboat_e2e::{ACCOUNT_ID, REGION};
use serde_json::Value;

use super::{primary_parameters, Resources, FUNCTIONS, OPERATOR_ROLE, STACK};

/// What tells the roles apart: only retention deletes from the store, only
/// alert publishes, verify never writes, and none of them can destroy the
/// key or the catalog.
#[test]
fn the_roles_differ_where_it_matters() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let r = Resources::of(&stack);
    let delete_pack = Request::new("s3:DeleteObject", &r.object("lifeboat/packs/0a/0a1b2c"));
    let delete_manifest = Request::new("s3:DeleteObject", &r.object("lifeboat/manifests/20261123T020000Z-ab"));
    let publish = Request::new("sns:Publish", &r.topic);
    for (_, role, _) in FUNCTIONS {
        let policies = stack.role_policies(role);
        let decide = |request: &Request| evaluate(&policies, request);
        let may_delete = role == "RetentionRole";
        for request in [&delete_pack, &delete_manifest] {
            assert_eq!(decide(request) == Decision::Allow, may_delete, "{role}: {request:?}");
        }
        assert_eq!(
            decide(&publish) == Decision::Allow,
            role == "AlertRole",
            "{role}: sns:Publish"
        );
        // Only the snapshot function makes snapshots; none deletes one.
        let snapshot =
            format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:snapshot:lifeboat-db-nightly-orders-db-20261123-0200");
        let instance = format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:db:orders-db");
        for action in ["rds:CreateDBSnapshot", "rds:CopyDBSnapshot"] {
            assert_eq!(
                decide(&Request::new(action, &snapshot)) == Decision::Allow,
                role == "SnapshotRole",
                "{role}: {action}"
            );
        }
        assert_eq!(
            decide(&Request::new("rds:CreateDBSnapshot", &instance)) == Decision::Allow,
            role == "SnapshotRole",
            "{role}: rds:CreateDBSnapshot of an instance"
        );
        // Only retention deletes one (Lifeboat's own, by name); verify and
        // retention read their state.
        assert_eq!(
            decide(&Request::new("rds:DeleteDBSnapshot", &snapshot)) == Decision::Allow,
            role == "RetentionRole",
            "{role}: rds:DeleteDBSnapshot"
        );
        let foreign = format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:snapshot:rds:orders-db-2026-11-23-02-00");
        assert_eq!(
            decide(&Request::new("rds:DeleteDBSnapshot", &foreign)),
            Decision::ImplicitDeny,
            "{role}: rds:DeleteDBSnapshot of an automated snapshot"
        );
        assert_eq!(
            decide(&Request::new("rds:DescribeDBSnapshots", &snapshot)) == Decision::Allow,
            matches!(role, "SnapshotRole" | "VerifyRole" | "RetentionRole"),
            "{role}: rds:DescribeDBSnapshots"
        );
        for request in [
            Request::new("kms:ScheduleKeyDeletion", &r.key),
            Request::new("kms:ScheduleKeyDeletion", "*"),
            Request::new("kms:DisableKey", &r.key),
            Request::new("kms:PutKeyPolicy", &r.key),
            Request::new("dynamodb:DeleteTable", &r.table),
            Request::new("dynamodb:DeleteTable", "*"),
            Request::new("dynamodb:UpdateTable", &r.table),
            Request::new("s3:DeleteBucket", &r.bucket),
            Request::new("s3:DeleteObjectVersion", &r.object("lifeboat/packs/0a/0a1b2c")),
            Request::new("s3:PutObjectRetention", &r.object("lifeboat/packs/0a/0a1b2c")),
            Request::new("s3:BypassGovernanceRetention", &r.object("lifeboat/packs/0a/0a1b2c")),
            Request::new("iam:PassRole", "*"),
            Request::new("sts:AssumeRole", "*"),
        ] {
            assert_eq!(decide(&request), Decision::ImplicitDeny, "{role}: {request:?}");
        }
    }
    let verify = stack.role_policies("VerifyRole");
    for key in ["lifeboat/packs/0a/0a1b2c", "lifeboat/index/0a1b", "lifeboat/config"] {
        assert_eq!(
            evaluate(&verify, &Request::new("s3:PutObject", &r.object(key))),
            Decision::ImplicitDeny,
            "verify may not write {key}"
        );
    }
}

#[test]
fn only_the_functions_and_the_operator_use_the_key() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let policy_text = stack.property("StoreKey", "KeyPolicy");
    let policy: Value = serde_json::from_str(policy_text.as_str().expect("a JSON string (see the template)"))
        .expect("the key policy is JSON");
    let policies = [policy];
    let role = stack.attribute("FileBackupRole", "Arn");
    let root = format!("arn:aws:iam::{ACCOUNT_ID}:root");
    let stranger = format!("arn:aws:iam::{ACCOUNT_ID}:role/someone-else");
    let decide = |principal: &str, action: &str| evaluate(&policies, &Request::new(action, "*").by(principal));

    for action in ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"] {
        assert_eq!(decide(&role, action), Decision::Allow, "the function: {action}");
        assert_eq!(decide(OPERATOR_ROLE, action), Decision::Allow, "the operator: {action}");
    }
    assert_eq!(
        decide(OPERATOR_ROLE, "kms:ReEncryptFrom"),
        Decision::Allow,
        "keys rewrap"
    );
    for action in ["kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt", "kms:ReEncryptFrom"] {
        assert_eq!(
            decide(&stranger, action),
            Decision::ImplicitDeny,
            "a stranger: {action}"
        );
        assert_eq!(
            decide(&root, action),
            Decision::ImplicitDeny,
            "the account administers only: {action}"
        );
    }
    assert_eq!(decide(&root, "kms:ScheduleKeyDeletion"), Decision::Allow);
    assert_eq!(decide(&root, "kms:PutKeyPolicy"), Decision::Allow);
    assert_eq!(decide(&role, "kms:ScheduleKeyDeletion"), Decision::ImplicitDeny);
    assert_eq!(decide(&role, "kms:CreateGrant"), Decision::ImplicitDeny);

    // The other functions: retention writes to the store (SSE-KMS needs
    // GenerateDataKey), verify only reads, alert only through SNS.
    let verify = stack.attribute("VerifyRole", "Arn");
    let retention = stack.attribute("RetentionRole", "Arn");
    let alert = stack.attribute("AlertRole", "Arn");
    let snapshot = stack.attribute("SnapshotRole", "Arn");
    // The snapshot function writes database dumps into the store.
    for action in ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"] {
        assert_eq!(decide(&retention, action), Decision::Allow, "retention: {action}");
        assert_eq!(decide(&snapshot, action), Decision::Allow, "snapshot: {action}");
    }
    for action in ["kms:Decrypt", "kms:DescribeKey"] {
        assert_eq!(decide(&verify, action), Decision::Allow, "verify: {action}");
    }
    assert_eq!(
        decide(&verify, "kms:GenerateDataKey"),
        Decision::ImplicitDeny,
        "verify writes nothing"
    );
    for action in ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"] {
        assert_eq!(
            decide(&alert, action),
            Decision::ImplicitDeny,
            "alert, directly: {action}"
        );
        let via_sns = Request::new(action, "*")
            .by(&alert)
            .with("kms:ViaService", &format!("sns.{REGION}.amazonaws.com"))
            .with("kms:CallerAccount", ACCOUNT_ID);
        let expected = if action == "kms:DescribeKey" {
            Decision::ImplicitDeny
        } else {
            Decision::Allow
        };
        assert_eq!(evaluate(&policies, &via_sns), expected, "alert, through SNS: {action}");
    }
    for function_role in [&role, &verify, &retention, &alert, &snapshot] {
        for action in [
            "kms:ScheduleKeyDeletion",
            "kms:DisableKey",
            "kms:PutKeyPolicy",
            "kms:CreateGrant",
            "kms:Encrypt",
        ] {
            assert_eq!(
                decide(function_role, action),
                Decision::ImplicitDeny,
                "{function_role}: {action}"
            );
        }
        let via_dynamodb = Request::new("kms:Decrypt", "*")
            .by(function_role)
            .with("kms:ViaService", &format!("dynamodb.{REGION}.amazonaws.com"))
            .with("kms:CallerAccount", ACCOUNT_ID);
        assert_eq!(
            evaluate(&policies, &via_dynamodb),
            Decision::Allow,
            "{function_role}: the catalog"
        );
    }

    // Through DynamoDB (the catalog's encryption), and only through it.
    let via_dynamodb = |principal: &str, action: &str| {
        let request = Request::new(action, "*")
            .by(principal)
            .with("kms:ViaService", &format!("dynamodb.{REGION}.amazonaws.com"))
            .with("kms:CallerAccount", ACCOUNT_ID);
        evaluate(&policies, &request)
    };
    assert_eq!(via_dynamodb(&role, "kms:Encrypt"), Decision::Allow);
    assert_eq!(via_dynamodb(&role, "kms:CreateGrant"), Decision::Allow);
    assert_eq!(via_dynamodb(&stranger, "kms:Decrypt"), Decision::ImplicitDeny);
    assert_eq!(decide(&role, "kms:Encrypt"), Decision::ImplicitDeny, "not directly");

    // Deployers (IAM principals of the account) encrypt a function's
    // settings through Lambda, and do nothing else with the key.
    let via_lambda = |action: &str| {
        let request = Request::new(action, "*")
            .by(&root)
            .with("kms:ViaService", &format!("lambda.{REGION}.amazonaws.com"));
        evaluate(&policies, &request)
    };
    assert_eq!(via_lambda("kms:Encrypt"), Decision::Allow);
    assert_eq!(via_lambda("kms:Decrypt"), Decision::ImplicitDeny);

    // The services that encrypt for the stack.
    assert_eq!(
        decide("service:cloudwatch.amazonaws.com", "kms:GenerateDataKey"),
        Decision::Allow
    );
    assert_eq!(
        decide("service:events.amazonaws.com", "kms:GenerateDataKey"),
        Decision::Allow
    );
    assert_eq!(
        decide("service:s3.amazonaws.com", "kms:Decrypt"),
        Decision::ImplicitDeny
    );
}

#[test]
fn the_operator_and_read_only_policies() {
    // The placeholders of infra/README.md, filled in.
    let fill = |name: &str| -> Vec<Value> {
        let text = infra_file(&format!("policies/{name}"))
            .replace("<Partition>", "aws")
            .replace("<Region>", REGION)
            .replace("<AccountId>", ACCOUNT_ID)
            .replace("<BackupBucket>", "lifeboat-backups")
            .replace("<StorePrefix>", "lifeboat")
            .replace("<StoreKeyArn>", "arn:aws:kms:us-east-1:123456789012:key/k1")
            .replace("<DrKeyArn>", "arn:aws:kms:us-west-2:123456789012:key/k2")
            .replace("<CatalogTable>", "lifeboat-catalog")
            .replace("<RestoreBucket>", "lifeboat-restores")
            .replace("<HostedZoneId>", "Z123");
        assert!(
            !text.contains('<'),
            "policies/{name} has a placeholder the README does not list"
        );
        vec![serde_json::from_str(&text).unwrap_or_else(|e| panic!("policies/{name}: {e}"))]
    };
    let operator = fill("operator.json");
    let read_only = fill("read-only.json");
    let table = "arn:aws:dynamodb:us-east-1:123456789012:table/lifeboat-catalog";
    let store = |key: &str| format!("arn:aws:s3:::lifeboat-backups/lifeboat/{key}");
    let snapshot = "arn:aws:rds:us-east-1:123456789012:snapshot:lifeboat-app-1";
    let allow = |policies: &[Value], request: Request, expected: Decision| {
        assert_eq!(evaluate(policies, &request), expected, "{request:?}");
    };
    use Decision::{Allow, ImplicitDeny};
    for (request, for_operator, for_reader) in [
        (Request::new("s3:GetObject", &store("manifests/x")), Allow, Allow),
        (
            Request::new("s3:ListBucket", "arn:aws:s3:::lifeboat-backups").with("s3:prefix", "lifeboat/packs/"),
            Allow,
            Allow,
        ),
        (Request::new("s3:PutObject", &store("config")), Allow, ImplicitDeny),
        (
            Request::new("s3:DeleteObject", &store("packs/0a/x")),
            Allow,
            ImplicitDeny,
        ),
        (
            Request::new("s3:PutObject", "arn:aws:s3:::lifeboat-restores/app/x"),
            Allow,
            ImplicitDeny,
        ),
        (
            Request::new("s3:BypassGovernanceRetention", &store("packs/0a/x")),
            ImplicitDeny,
            ImplicitDeny,
        ),
        (
            Request::new("s3:PutBucketPolicy", "arn:aws:s3:::lifeboat-backups"),
            ImplicitDeny,
            ImplicitDeny,
        ),
        (
            Request::new("kms:Decrypt", "arn:aws:kms:us-east-1:123456789012:key/k1"),
            Allow,
            Allow,
        ),
        (
            Request::new("kms:ReEncryptFrom", "arn:aws:kms:us-east-1:123456789012:key/k1"),
            Allow,
            ImplicitDeny,
        ),
        (
            Request::new("kms:ScheduleKeyDeletion", "arn:aws:kms:us-east-1:123456789012:key/k1"),
            ImplicitDeny,
            ImplicitDeny,
        ),
        (
            Request::new("dynamodb:Query", &format!("{table}/index/bySource")),
            Allow,
            Allow,
        ),
        (Request::new("dynamodb:UpdateItem", table), Allow, ImplicitDeny),
        (Request::new("dynamodb:DeleteTable", table), ImplicitDeny, ImplicitDeny),
        (Request::new("rds:DescribeDBSnapshots", "*"), Allow, Allow),
        // Drills and restore tests tear down their own instances, nothing else;
        // snapshot retention deletes Lifeboat's snapshots only.
        (
            Request::new(
                "rds:DeleteDBInstance",
                "arn:aws:rds:us-west-2:123456789012:db:drill-orders-1a2b3c4d",
            ),
            Allow,
            ImplicitDeny,
        ),
        (
            Request::new(
                "rds:DeleteDBInstance",
                "arn:aws:rds:us-east-1:123456789012:db:orders-db",
            ),
            ImplicitDeny,
            ImplicitDeny,
        ),
        (Request::new("rds:DeleteDBSnapshot", snapshot), Allow, ImplicitDeny),
        (
            Request::new(
                "rds:DeleteDBSnapshot",
                "arn:aws:rds:us-east-1:123456789012:snapshot:orders-manual",
            ),
            ImplicitDeny,
            ImplicitDeny,
        ),
        (
            Request::new("rds:CreateDBInstanceReadReplica", "*"),
            Allow,
            ImplicitDeny,
        ),
        (
            Request::new("rds:RestoreDBInstanceFromDBSnapshot", snapshot),
            Allow,
            ImplicitDeny,
        ),
        (
            Request::new("route53:ChangeResourceRecordSets", "arn:aws:route53:::hostedzone/Z123"),
            Allow,
            ImplicitDeny,
        ),
        (
            Request::new("route53:ListResourceRecordSets", "arn:aws:route53:::hostedzone/Z123"),
            Allow,
            Allow,
        ),
        (Request::new("iam:PassRole", "*"), ImplicitDeny, ImplicitDeny),
    ] {
        allow(&operator, request.clone(), for_operator);
        allow(&read_only, request, for_reader);
    }
    // The read-only policy grants nothing but reads.
    for statement in read_only[0]["Statement"].as_array().unwrap() {
        for action in statement["Action"].as_array().unwrap() {
            let action = action.as_str().unwrap();
            let verb = action.split_once(':').unwrap().1;
            let reads = ["Get", "List", "Describe", "Query", "Scan", "Decrypt"];
            assert!(reads.iter().any(|r| verb.starts_with(r)), "read-only grants {action}");
        }
    }
}
