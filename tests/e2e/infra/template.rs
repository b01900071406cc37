//! The primary template's storage, read as YAML: the store immutable
//! (Object Lock, versioning), encrypted with the stack's key and private.

use std::collections::BTreeMap;

use lifeboat_e2e::cfn::{template, Stack};
use lifeboat_e2e::iam::{evaluate, Decision, Request};
use serde_json::{json, Value};

use super::{primary_parameters, props, STACK};

#[test]
fn primary_template_keeps_backups_immutable_encrypted_and_private() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let key_arn = stack.attribute("StoreKey", "Arn");
    let bucket_arn = stack.attribute("BackupBucket", "Arn");

    // The bucket: Object Lock in compliance mode for the retention parameter,
    // versioning, no public access, SSE-KMS with the store key.
    let bucket = props(stack.resource("BackupBucket"));
    assert_eq!(bucket["ObjectLockEnabled"], true);
    assert_eq!(bucket["ObjectLockConfiguration"]["ObjectLockEnabled"], "Enabled");
    let retention = &bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"];
    assert_eq!(retention["Mode"], "COMPLIANCE");
    assert_eq!(retention["Days"], json!({"Ref": "ObjectLockRetentionDays"}));
    assert_eq!(template["Parameters"]["ObjectLockRetentionDays"]["Type"], "Number");
    assert_eq!(bucket["VersioningConfiguration"]["Status"], "Enabled");
    let block = &bucket["PublicAccessBlockConfiguration"];
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block[setting], true, "{setting}");
    }
    let encryption = stack.property("BackupBucket", "BucketEncryption");
    let default = &encryption["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"];
    assert_eq!(default["SSEAlgorithm"], "aws:kms");
    assert_eq!(default["KMSMasterKeyID"], key_arn.as_str());
    for retained in ["BackupBucket", "CatalogTable", "StoreKey"] {
        assert_eq!(stack.resource(retained)["DeletionPolicy"], "Retain", "{retained}");
    }

    // Lifecycle: what garbage collection deletes leaves a locked noncurrent
    // version; it expires no sooner than its lock ends (it became noncurrent
    // after it was written, and the lock runs from the write).
    let rules = bucket["LifecycleConfiguration"]["Rules"]
        .as_array()
        .expect("lifecycle rules");
    let reclaim = rules
        .iter()
        .find(|r| !r["NoncurrentVersionExpiration"].is_null())
        .expect("a rule expiring noncurrent versions");
    assert_eq!(reclaim["Status"], "Enabled");
    assert_eq!(
        reclaim["NoncurrentVersionExpiration"]["NoncurrentDays"],
        json!({"Ref": "ObjectLockRetentionDays"})
    );
    assert!(
        reclaim["Prefix"].is_null() && reclaim["Filter"].is_null(),
        "the whole bucket"
    );
    let abort = rules
        .iter()
        .find(|r| !r["AbortIncompleteMultipartUpload"].is_null())
        .expect("a rule aborting incomplete multipart uploads");
    assert_eq!(abort["Status"], "Enabled");
    assert!(
        abort["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
            .as_u64()
            .unwrap()
            <= 7
    );
    for rule in rules {
        assert!(
            rule["ExpirationInDays"].is_null() && rule["ExpirationDate"].is_null(),
            "no current version expires"
        );
        assert!(rule["Transitions"].is_null(), "no transitions (Object Lock, restores)");
    }

    // TLS only: every request to the bucket or its objects over plain HTTP
    // is denied, whoever makes it.
    let policies: Vec<Value> = stack
        .resources_of_type("AWS::S3::BucketPolicy")
        .into_iter()
        .filter(|p| props(stack.resource(p))["Bucket"] == json!({"Ref": "BackupBucket"}))
        .map(|p| stack.property(p, "PolicyDocument"))
        .collect();
    assert_eq!(policies.len(), 1, "one bucket policy for the backup bucket");
    let anyone = "arn:aws:iam::123456789012:role/lifeboat-operator";
    for (action, resource) in [
        ("s3:GetObject", format!("{bucket_arn}/lifeboat/config")),
        ("s3:PutObject", format!("{bucket_arn}/x")),
        ("s3:ListBucket", bucket_arn.clone()),
    ] {
        let plain = Request::new(action, &resource)
            .by(anyone)
            .with("aws:SecureTransport", "false");
        assert_eq!(
            evaluate(&policies, &plain),
            Decision::ExplicitDeny,
            "{action} over HTTP"
        );
        let tls = Request::new(action, &resource)
            .by(anyone)
            .with("aws:SecureTransport", "true");
        assert_ne!(evaluate(&policies, &tls), Decision::ExplicitDeny, "{action} over TLS");
    }

    // The catalog: the library's key schema and both indexes, on demand,
    // point-in-time recovery, deletion protection, the store key.
    let table = stack.property("CatalogTable", "TableName");
    assert_eq!(table, lifeboat::catalog::DEFAULT_TABLE, "the toolkit's default table");
    let table = props(stack.resource("CatalogTable"));
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(table["DeletionProtectionEnabled"], true);
    assert_eq!(
        table["KeySchema"],
        json!([{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    );
    // The index names and keys of crates/lifeboat/src/catalog.rs.
    let indexes: BTreeMap<String, Value> = table["GlobalSecondaryIndexes"]
        .as_array()
        .expect("GSIs")
        .iter()
        .map(|i| (i["IndexName"].as_str().unwrap().to_owned(), i.clone()))
        .collect();
    for (name, hash, range) in [("bySource", "gsi1pk", "gsi1sk"), ("byTime", "gsi2pk", "gsi2sk")] {
        let index = &indexes[name];
        assert_eq!(
            index["KeySchema"],
            json!([{"AttributeName": hash, "KeyType": "HASH"}, {"AttributeName": range, "KeyType": "RANGE"}]),
            "{name}"
        );
        assert_eq!(index["Projection"]["ProjectionType"], "ALL", "{name}");
    }
    assert_eq!(indexes.len(), 2);
    let sse = stack.property("CatalogTable", "SSESpecification");
    assert_eq!(sse["SSEEnabled"], true);
    assert_eq!(sse["SSEType"], "KMS");
    assert_eq!(sse["KMSMasterKeyId"], key_arn.as_str());

    // The key rotates; the topic and the dead-letter queue are encrypted.
    assert_eq!(props(stack.resource("StoreKey"))["EnableKeyRotation"], true);
    assert_eq!(
        stack.property("StoreKeyAlias", "TargetKeyId"),
        json!(stack.reference("StoreKey"))
    );
    assert_eq!(stack.property("AlertsTopic", "KmsMasterKeyId"), key_arn.as_str());
    assert_eq!(stack.property("DeadLetterQueue", "KmsMasterKeyId"), key_arn.as_str());
    assert_eq!(
        stack.resource("AlertsEmailSubscription")["Condition"],
        "HasAlertEmail",
        "the email subscription is optional"
    );
    assert!(!stack.condition("HasAlertEmail"), "no email by default");

    // Outputs.
    for output in [
        "CatalogTableName",
        "BackupBucketName",
        "StoreKeyArn",
        "AlertsTopicArn",
        "FileBackupFunctionArn",
        "FileBackupRoleArn",
        "VerifyFunctionArn",
        "VerifyRoleArn",
        "RetentionFunctionArn",
        "RetentionRoleArn",
        "AlertFunctionArn",
        "AlertRoleArn",
    ] {
        assert!(template["Outputs"][output].is_object(), "output {output}");
    }
}
