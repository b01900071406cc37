//! The DR template (`infra/lifeboat-dr.yaml`): its rotating key and who may use it.

use lifeboat_e2e::cfn::{template, Stack};
use lifeboat_e2e::iam::{evaluate, Decision, Request};
use lifeboat_e2e::ACCOUNT_ID;
use serde_json::{json, Value};

use super::{primary_parameters, props, DR_KEY, OPERATOR_ROLE, STACK};

#[test]
fn the_dr_template_has_a_rotating_key() {
    let template = template("lifeboat-dr.yaml");
    let stack = Stack::new(&template, "lifeboat-dr", &[("OperatorRoleArn", OPERATOR_ROLE)]);
    let keys = stack.resources_of_type("AWS::KMS::Key");
    assert_eq!(keys, ["DrKey"]);
    assert_eq!(props(stack.resource("DrKey"))["EnableKeyRotation"], true);
    assert_eq!(
        stack.property("DrKeyAlias", "TargetKeyId"),
        json!(stack.reference("DrKey"))
    );
    assert!(template["Outputs"]["DrKeyArn"].is_object());

    // The key policy trusts the primary stack's roles by their IAM path:
    // the DR stack needs only the primary stack's name, no role ARNs.
    let text = stack.property("DrKey", "KeyPolicy");
    let policy: Value = serde_json::from_str(text.as_str().unwrap()).expect("the DR key policy is JSON");
    let policies = [policy];
    let primary_template = self::template("lifeboat.yaml");
    let primary = Stack::new(&primary_template, STACK, &primary_parameters());
    let snapshot_role = primary.attribute("SnapshotRole", "Arn");
    let verify_role = primary.attribute("VerifyRole", "Arn");
    assert_eq!(
        snapshot_role,
        format!("arn:aws:iam::{ACCOUNT_ID}:role/lifeboat/{STACK}/{STACK}-SnapshotRole")
    );
    let via_rds = "rds.us-east-1.amazonaws.com";
    let copy = |principal: &str, action: &str, via: &str| {
        evaluate(
            &policies,
            &Request::new(action, "*").by(principal).with("kms:ViaService", via),
        )
    };
    // The primary snapshot role may use the DR key for copies, through RDS.
    for action in [
        "kms:CreateGrant",
        "kms:GenerateDataKey",
        "kms:Encrypt",
        "kms:DescribeKey",
    ] {
        assert_eq!(copy(&snapshot_role, action, via_rds), Decision::Allow, "{action}");
    }
    // ... not directly, and never to decrypt; it (and verify) may check the key.
    assert_eq!(
        copy(&snapshot_role, "kms:CreateGrant", "s3.us-east-1.amazonaws.com"),
        Decision::ImplicitDeny
    );
    assert_eq!(copy(&snapshot_role, "kms:Decrypt", via_rds), Decision::ImplicitDeny);
    for role in [&snapshot_role, &verify_role] {
        assert_eq!(
            evaluate(&policies, &Request::new("kms:DescribeKey", "*").by(role)),
            Decision::Allow,
            "{role}"
        );
    }
    // A role outside the path, another stack's, or another account's may not.
    for outsider in [
        format!("arn:aws:iam::{ACCOUNT_ID}:role/{STACK}-SnapshotRole"),
        format!("arn:aws:iam::{ACCOUNT_ID}:role/lifeboat/other-stack/{STACK}-SnapshotRole"),
        format!("arn:aws:iam::210987654321:role/lifeboat/{STACK}/{STACK}-SnapshotRole"),
        OPERATOR_ROLE.replace("lifeboat-operator", "lifeboat/lifeboat-operator"),
    ] {
        assert_eq!(
            copy(&outsider, "kms:CreateGrant", via_rds),
            Decision::ImplicitDeny,
            "{outsider}"
        );
        assert_eq!(
            evaluate(&policies, &Request::new("kms:DescribeKey", "*").by(&outsider)),
            Decision::ImplicitDeny,
            "{outsider}"
        );
    }
    // The operator restores from the copies.
    assert_eq!(
        evaluate(&policies, &Request::new("kms:Decrypt", "*").by(OPERATOR_ROLE)),
        Decision::Allow
    );
    // And the snapshot role's own policy grants what the copy needs on that key.
    let own = primary.role_policies("SnapshotRole");
    assert_eq!(
        evaluate(
            &own,
            &Request::new("kms:CreateGrant", DR_KEY).with("kms:GrantIsForAWSResource", "true")
        ),
        Decision::Allow
    );
}
