//! Least privilege, proven from the template: each function's role may make
//! its calls (the library's and the runtime's) and nothing else.

use lifeboat_e2e::cfn::{template, Stack};
use lifeboat_e2e::iam::{evaluate, Decision, Request};
use lifeboat_e2e::{ACCOUNT_ID, REGION};

use super::{assert_decisions, log_stream, primary_parameters, Resources, DR_KEY, DR_REGION, STACK};

#[test]
fn the_file_backup_role_may_make_its_calls_and_nothing_else() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let policies = stack.role_policies("FileBackupRole");

    let bucket = stack.attribute("BackupBucket", "Arn");
    let key = stack.attribute("StoreKey", "Arn");
    let table = stack.attribute("CatalogTable", "Arn");
    let queue = stack.attribute("DeadLetterQueue", "Arn");
    let log_stream = format!(
        "arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{}:log-stream:2026/11/23/[$LATEST]abc",
        stack.reference("FileBackupLogGroup")
    );
    let object = |key: &str| format!("{bucket}/{key}");
    let source = "arn:aws:s3:::lifeboat-demo-data";

    // The calls the library makes for a backup (Repository::open,
    // load_index, put_pack/put_index/put_manifest, source listing and
    // reads, Kms::unwrap, Catalog::begin/mark_in_progress/complete/fail,
    // latest_completed, the audit trail's append) and the runtime's own.
    let allowed = [
        Request::new("s3:GetObject", &object("lifeboat/config")),
        Request::new("s3:GetObject", &object("lifeboat/index/0a1b")),
        Request::new("s3:PutObject", &object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:PutObject", &object("lifeboat/manifests/20261123T020000Z-ab")),
        Request::new("s3:ListBucket", &bucket).with("s3:prefix", "lifeboat/index/"),
        Request::new("s3:GetObject", &format!("{source}/app/users/1.json")),
        Request::new("s3:ListBucket", source).with("s3:prefix", "app"),
        Request::new("kms:Decrypt", &key),
        Request::new("kms:GenerateDataKey", &key),
        Request::new("kms:DescribeKey", &key),
        Request::new("dynamodb:GetItem", &table),
        Request::new("dynamodb:PutItem", &table),
        Request::new("dynamodb:UpdateItem", &table),
        Request::new("dynamodb:Query", &table),
        Request::new("dynamodb:Query", &format!("{table}/index/bySource")),
        Request::new("dynamodb:Query", &format!("{table}/index/byTime")),
        Request::new("sqs:SendMessage", &queue),
        Request::new("logs:CreateLogStream", &log_stream),
        Request::new("logs:PutLogEvents", &log_stream),
    ];
    for request in &allowed {
        assert_eq!(evaluate(&policies, request), Decision::Allow, "{request:?}");
    }
    // TransactWriteItems is authorised item by item: the claim and the record
    // (PutItem), the audit head (UpdateItem), condition checks.
    for item_action in ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"] {
        let request = Request::new(item_action, &table);
        assert_eq!(
            evaluate(&policies, &request),
            Decision::Allow,
            "TransactWriteItems needs {item_action}"
        );
    }

    let other_key = format!("arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/ffffffff-0000-4000-8000-000000000000");
    let other_table = format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/someone-elses");
    let denied = [
        // Backups are never deleted or unlocked by the backup function.
        Request::new("s3:DeleteObject", &object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:DeleteObjectVersion", &object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:BypassGovernanceRetention", &object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:PutObjectRetention", &object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:PutBucketPolicy", &bucket),
        Request::new("s3:PutBucketObjectLockConfiguration", &bucket),
        // Only the store's prefix, only reading the source.
        Request::new("s3:PutObject", &object("elsewhere/x")),
        Request::new("s3:GetObject", &object("elsewhere/x")),
        Request::new("s3:ListBucket", &bucket).with("s3:prefix", "elsewhere/"),
        Request::new("s3:PutObject", &format!("{source}/app/users/1.json")),
        Request::new("s3:DeleteObject", &format!("{source}/app/users/1.json")),
        Request::new("s3:GetObject", &format!("{source}/secrets/db.env")),
        Request::new("s3:GetObject", "arn:aws:s3:::another-bucket/app/x"),
        // The key: use, not manage; no other key.
        Request::new("kms:ScheduleKeyDeletion", &key),
        Request::new("kms:DisableKey", &key),
        Request::new("kms:PutKeyPolicy", &key),
        Request::new("kms:Encrypt", &key),
        Request::new("kms:ReEncryptFrom", &key),
        Request::new("kms:Decrypt", &other_key),
        // The catalog: no deletes, scans or table changes; no other table.
        Request::new("dynamodb:DeleteTable", &table),
        Request::new("dynamodb:UpdateTable", &table),
        Request::new("dynamodb:DeleteItem", &table),
        Request::new("dynamodb:Scan", &table),
        Request::new("dynamodb:UpdateContinuousBackups", &table),
        Request::new("dynamodb:PutItem", &other_table),
        // What other functions will do (retention, snapshots, alerts).
        Request::new(
            "rds:DeleteDBSnapshot",
            "arn:aws:rds:us-east-1:123456789012:snapshot:lifeboat-1",
        ),
        Request::new("rds:CreateDBSnapshot", "*"),
        Request::new("sns:Publish", &stack.reference("AlertsTopic")),
        Request::new("sns:Publish", "arn:aws:sns:us-east-1:123456789012:another-topic"),
        Request::new("iam:PassRole", "*"),
        Request::new("sts:AssumeRole", "*"),
        Request::new("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:another-queue"),
    ];
    for request in &denied {
        assert_eq!(evaluate(&policies, request), Decision::ImplicitDeny, "{request:?}");
    }
}

/// A catalog write by the file-backup role: `action` on the item `pk`
/// touching `attributes` (IAM's `dynamodb:LeadingKeys` and `dynamodb:Attributes`).
fn catalog_write(table: &str, action: &str, pk: &str, attributes: &[&str]) -> Request {
    attributes.iter().fold(
        Request::new(action, table).with("dynamodb:LeadingKeys", pk),
        |request, attribute| request.with("dynamodb:Attributes", attribute),
    )
}

#[test]
fn the_file_backup_role_completes_its_records_but_cannot_mark_a_backup_deleted() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let policies = stack.role_policies("FileBackupRole");
    let table = stack.attribute("CatalogTable", "Arn");

    // Every attribute of a backup record as the catalog stores it (a record
    // with each optional field set), plus its keys: what `begin` puts.
    let record: lifeboat::catalog::BackupRecord = serde_json::from_value(serde_json::json!({
        "id": "bk-1", "type": "incremental", "status": "pending", "source": "s3://d/app/",
        "size": 1, "compressedSize": 1, "entryCount": 1, "changedCount": 1,
        "createdAt": "2026-11-23T10:00:00.000Z", "completedAt": "2026-11-23T10:01:00.000Z",
        "retentionUntil": "2026-12-23T10:00:00.000Z", "checksum": "c", "storageLocation": "s3://s/m/bk-1",
        "parentBackup": "bk-0", "kmsKeyId": "k", "error": "e", "engine": "postgresql",
        "serverVersion": "15", "database": "app", "heartbeatAt": "2026-11-23T10:00:30.000Z",
    }))
    .expect("a full backup record");
    let mut begin: Vec<String> = serde_json::to_value(&record)
        .expect("json")
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    begin.extend(["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"].map(String::from));
    let begin: Vec<&str> = begin.iter().map(String::as_str).collect();
    let backup = "backup#bk-20261123T100000Z-0000abcd";

    let allowed = [
        catalog_write(&table, "dynamodb:PutItem", backup, &begin),
        catalog_write(
            &table,
            "dynamodb:PutItem",
            "event#objects:s3://d/app/:ab12",
            &["pk", "sk", "backupId", "createdAt"],
        ),
        catalog_write(
            &table,
            "dynamodb:UpdateItem",
            "event#plan:p:s3://d/app/:2026-11-23T02:00Z",
            &["pk", "sk", "backupId"],
        ),
        // mark_in_progress, heartbeat, takeover of a stale claim, complete, fail
        catalog_write(&table, "dynamodb:UpdateItem", backup, &["pk", "sk", "status"]),
        catalog_write(
            &table,
            "dynamodb:UpdateItem",
            backup,
            &["pk", "sk", "status", "heartbeatAt"],
        ),
        catalog_write(
            &table,
            "dynamodb:UpdateItem",
            backup,
            &["pk", "sk", "status", "error", "completedAt", "heartbeatAt"],
        ),
        catalog_write(
            &table,
            "dynamodb:UpdateItem",
            backup,
            &[
                "pk",
                "sk",
                "status",
                "size",
                "compressedSize",
                "entryCount",
                "changedCount",
                "checksum",
                "completedAt",
            ],
        ),
        // the source's lease: taken, renewed, released
        catalog_write(
            &table,
            "dynamodb:PutItem",
            "sourcelease#s3://d/app/",
            &["pk", "sk", "source", "holder", "heartbeatAt", "expiresAt"],
        ),
        catalog_write(
            &table,
            "dynamodb:UpdateItem",
            "sourcelease#s3://d/app/",
            &["pk", "sk", "holder", "heartbeatAt", "expiresAt"],
        ),
        // the audit trail's record and head
        catalog_write(
            &table,
            "dynamodb:PutItem",
            "audit",
            &[
                "pk", "sk", "seq", "at", "action", "subject", "actor", "details", "prevHash", "hash",
            ],
        ),
        catalog_write(&table, "dynamodb:UpdateItem", "audit", &["pk", "sk", "seq", "hash"]),
        catalog_write(&table, "dynamodb:ConditionCheckItem", backup, &["pk", "sk", "status"]),
    ];
    let denied = [
        // Retention's mark: `deletedAt` is not the file-backup role's to write.
        catalog_write(
            &table,
            "dynamodb:UpdateItem",
            backup,
            &["pk", "sk", "status", "deletedAt"],
        ),
        catalog_write(
            &table,
            "dynamodb:PutItem",
            backup,
            &[&begin[..], &["deletedAt"]].concat(),
        ),
        // Other kinds of item: holds, alert state, jobs, snapshots, dump claims.
        catalog_write(&table, "dynamodb:UpdateItem", "hold#bk-1", &["pk", "sk", "reason"]),
        catalog_write(&table, "dynamodb:PutItem", "hold#bk-1", &["pk", "sk", "backupId"]),
        catalog_write(
            &table,
            "dynamodb:UpdateItem",
            "alert#backup_failed#bk-1",
            &["pk", "sk", "status"],
        ),
        catalog_write(&table, "dynamodb:PutItem", "job#j-1", &["pk", "sk", "status"]),
        catalog_write(
            &table,
            "dynamodb:UpdateItem",
            "snapshot#p#arn#t",
            &["pk", "sk", "status"],
        ),
        catalog_write(&table, "dynamodb:PutItem", "dump#p#s#t", &["pk", "sk", "status"]),
        // No reading other attributes back through a write.
        catalog_write(&table, "dynamodb:UpdateItem", backup, &["pk", "sk", "status"])
            .with("dynamodb:ReturnValues", "ALL_OLD"),
        // Deleting stays denied.
        catalog_write(&table, "dynamodb:DeleteItem", backup, &["pk", "sk"]),
    ];
    assert_decisions("FileBackupRole", &policies, &allowed, &denied);
}

#[test]
fn the_verify_role_reads_the_store_and_records_verifications() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let policies = stack.role_policies("VerifyRole");
    let r = Resources::of(&stack);
    let stream = log_stream(&stack, "VerifyLogGroup");
    let snapshot = format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:snapshot:lifeboat-db-nightly-orders-db-20261123-0200");
    let copy = format!("arn:aws:rds:{DR_REGION}:{ACCOUNT_ID}:snapshot:lifeboat-db-nightly-orders-db-20261123-0200");
    let cluster_copy =
        format!("arn:aws:rds:{DR_REGION}:{ACCOUNT_ID}:cluster-snapshot:lifeboat-db-nightly-orders-20261123-0200");
    let temporary = format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:db:lifeboat-rt-orders-db-202611230200");
    let database = format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:db:orders-db");
    let subnet_group = format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:subgrp:lifeboat-checks");
    let snapshot_key = format!("arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/0f1e2d3c-orders");
    let rds_service = format!("rds.{REGION}.amazonaws.com");
    // Repository::open_at (config, Kms::describe/unwrap), the index and
    // manifests and packs it reads, Catalog::get/list/verifications,
    // record_verification.
    let allowed = [
        Request::new("s3:GetObject", &r.object("lifeboat/config")),
        Request::new("s3:GetObject", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:GetObject", &r.object("lifeboat/manifests/20261123T020000Z-ab")),
        Request::new("s3:ListBucket", &r.bucket).with("s3:prefix", "lifeboat/index/"),
        Request::new("kms:Decrypt", &r.key),
        Request::new("kms:DescribeKey", &r.key),
        Request::new("dynamodb:GetItem", &r.table),
        Request::new("dynamodb:Query", &r.table),
        Request::new("dynamodb:Query", &format!("{}/index/bySource", r.table)),
        Request::new("dynamodb:Query", &format!("{}/index/byTime", r.table)),
        Request::new("dynamodb:PutItem", &r.table),
        Request::new("sqs:SendMessage", &r.queue),
        Request::new("logs:CreateLogStream", &stream),
        Request::new("logs:PutLogEvents", &stream),
        // Snapshot verification (snapshot::verify): the plan file, the
        // snapshots and their copies, the copy region's key.
        Request::new("s3:GetObject", "arn:aws:s3:::lifeboat-code/lifeboat/plans.toml"),
        Request::new("rds:DescribeDBSnapshots", &snapshot),
        Request::new("rds:DescribeDBSnapshots", &copy),
        Request::new("rds:DescribeDBClusterSnapshots", &cluster_copy),
        Request::new("kms:DescribeKey", DR_KEY),
        // Scheduled restore tests (snapshot::restore_tests): restore a
        // Lifeboat snapshot to a lifeboat-rt-* instance, tag, watch and
        // delete it; list the instances (orphan sweep); RDS uses the
        // snapshot's key through a grant; the snapshot records are scanned.
        Request::new("rds:RestoreDBInstanceFromDBSnapshot", &snapshot),
        Request::new("rds:RestoreDBInstanceFromDBSnapshot", &temporary),
        Request::new("rds:RestoreDBInstanceFromDBSnapshot", &subnet_group),
        Request::new("rds:AddTagsToResource", &temporary),
        Request::new("rds:DescribeDBInstances", &temporary),
        Request::new("rds:DescribeDBInstances", &database),
        Request::new("rds:DeleteDBInstance", &temporary),
        Request::new("kms:CreateGrant", &snapshot_key).with("kms:ViaService", &rds_service),
        Request::new("dynamodb:Scan", &r.table),
        // A verification's GC registration (catalog::leases::registered):
        // put above, renewed and removed here.
        Request::new("dynamodb:UpdateItem", &r.table).with("dynamodb:LeadingKeys", "gcuse#st-0a1b2c"),
        Request::new("dynamodb:DeleteItem", &r.table).with("dynamodb:LeadingKeys", "gcuse#st-0a1b2c"),
    ];
    let denied = [
        // Snapshots are read and restored to lifeboat-rt-* instances, never
        // deleted, copied or restored over anything else.
        Request::new("rds:DeleteDBSnapshot", &snapshot),
        Request::new("rds:DeleteDBSnapshot", &copy),
        Request::new("rds:DeleteDBClusterSnapshot", &cluster_copy),
        Request::new("rds:CopyDBSnapshot", &snapshot),
        Request::new("rds:RestoreDBInstanceFromDBSnapshot", &database),
        Request::new(
            "rds:RestoreDBInstanceFromDBSnapshot",
            &format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:snapshot:rds:orders-db-2026-11-23"),
        ),
        Request::new("rds:RestoreDBClusterFromSnapshot", &cluster_copy),
        // Only the temporary instances are tagged, changed or deleted.
        Request::new("rds:DeleteDBInstance", &database),
        Request::new(
            "rds:DeleteDBInstance",
            &format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:db:lifeboat-orders"),
        ),
        Request::new("rds:AddTagsToResource", &database),
        Request::new("rds:ModifyDBInstance", &temporary),
        Request::new(
            "rds:DeleteDBCluster",
            &format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:cluster:orders"),
        ),
        Request::new("kms:CreateGrant", &snapshot_key),
        Request::new("kms:CreateGrant", DR_KEY),
        // Verification never changes the store.
        Request::new("s3:PutObject", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:PutObject", &r.object("lifeboat/config")),
        Request::new("s3:DeleteObject", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:DeleteObjectVersion", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:PutObjectRetention", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:GetObject", &r.object("elsewhere/x")),
        Request::new("s3:ListBucket", &r.bucket).with("s3:prefix", "elsewhere/"),
        Request::new("s3:GetObject", "arn:aws:s3:::lifeboat-demo-data/app/users/1.json"),
        Request::new("kms:GenerateDataKey", &r.key),
        Request::new("kms:Encrypt", &r.key),
        // The catalog changes only by its GC registration: no other item
        // updated or deleted (DynamoDB names every item's partition key).
        Request::new("dynamodb:UpdateItem", &r.table)
            .with("dynamodb:LeadingKeys", "backup#bk-20261123T020000Z-0000abcd"),
        Request::new("dynamodb:DeleteItem", &r.table)
            .with("dynamodb:LeadingKeys", "backup#bk-20261123T020000Z-0000abcd"),
        Request::new("dynamodb:UpdateItem", &r.table).with("dynamodb:LeadingKeys", "audit"),
        Request::new("dynamodb:DeleteItem", &r.table).with("dynamodb:LeadingKeys", "gclease#st-0a1b2c"),
        Request::new("dynamodb:UpdateItem", &r.table).with("dynamodb:LeadingKeys", "gcseq#st-0a1b2c"),
        Request::new("sns:Publish", &r.topic),
    ];
    assert_decisions("VerifyRole", &policies, &allowed, &denied);
}

#[test]
fn the_retention_role_expires_collects_and_audits() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let policies = stack.role_policies("RetentionRole");
    let r = Resources::of(&stack);
    let stream = log_stream(&stack, "RetentionLogGroup");
    let snapshot = format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:snapshot:lifeboat-db-nightly-orders-db-20261123-0200");
    let copy = format!("arn:aws:rds:{DR_REGION}:{ACCOUNT_ID}:snapshot:lifeboat-db-nightly-orders-db-20261123-0200");
    let cluster_copy =
        format!("arn:aws:rds:{DR_REGION}:{ACCOUNT_ID}:cluster-snapshot:lifeboat-db-nightly-orders-20261123-0200");
    // plan_expiry (Catalog::list, list_holds: Scan), apply_expiry
    // (Catalog::get, mark_deleted, the manifest's deletion, the audit
    // trail's head and append: a transaction of Put/Update/ConditionCheck),
    // collect_garbage (listing, marks written, unreferenced objects deleted).
    let allowed = [
        Request::new("s3:GetObject", &r.object("lifeboat/manifests/20261123T020000Z-ab")),
        Request::new("s3:PutObject", &r.object("lifeboat/gc/mark")),
        Request::new("s3:DeleteObject", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:DeleteObject", &r.object("lifeboat/manifests/20261123T020000Z-ab")),
        Request::new("s3:ListBucket", &r.bucket).with("s3:prefix", "lifeboat/packs/"),
        Request::new("kms:Decrypt", &r.key),
        Request::new("kms:DescribeKey", &r.key),
        Request::new("kms:GenerateDataKey", &r.key),
        Request::new("dynamodb:GetItem", &r.table),
        Request::new("dynamodb:Query", &r.table),
        Request::new("dynamodb:Query", &format!("{}/index/bySource", r.table)),
        Request::new("dynamodb:Scan", &r.table),
        Request::new("dynamodb:PutItem", &r.table),
        Request::new("dynamodb:UpdateItem", &r.table),
        Request::new("dynamodb:ConditionCheckItem", &r.table),
        Request::new("sqs:SendMessage", &r.queue),
        Request::new("logs:CreateLogStream", &stream),
        Request::new("logs:PutLogEvents", &stream),
        // Snapshot retention (snapshot::retention): the plan file,
        // Lifeboat's snapshots and their copies, the record moved to its
        // tombstone in one transaction.
        Request::new("s3:GetObject", "arn:aws:s3:::lifeboat-code/lifeboat/plans.toml"),
        Request::new("rds:DescribeDBSnapshots", &snapshot),
        Request::new("rds:DeleteDBSnapshot", &snapshot),
        Request::new("rds:DeleteDBSnapshot", &copy),
        Request::new("rds:DeleteDBClusterSnapshot", &cluster_copy),
        Request::new("dynamodb:DeleteItem", &r.table).with(
            "dynamodb:LeadingKeys",
            "snapshot#db-nightly#arn:aws:rds:us-east-1:123456789012:db:orders-db#2026-11-23T02:00:00Z",
        ),
        // Garbage collection's lease, released at the end of a run.
        Request::new("dynamodb:DeleteItem", &r.table).with("dynamodb:LeadingKeys", "gclease#st-0a1b2c"),
    ];
    let denied = [
        // Object Lock keeps each version: never deleted, never unlocked.
        Request::new("s3:DeleteObjectVersion", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:BypassGovernanceRetention", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:PutObjectRetention", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:PutBucketObjectLockConfiguration", &r.bucket),
        Request::new("s3:PutLifecycleConfiguration", &r.bucket),
        Request::new("s3:DeleteObject", &r.object("elsewhere/x")),
        Request::new("s3:DeleteObject", "arn:aws:s3:::lifeboat-demo-data/app/users/1.json"),
        Request::new("kms:Encrypt", &r.key),
        // Backup records are marked deleted, never removed.
        Request::new("dynamodb:DeleteItem", &r.table)
            .with("dynamodb:LeadingKeys", "backup#bk-20261123T020000Z-0000abcd"),
        Request::new("dynamodb:DeleteItem", &r.table).with("dynamodb:LeadingKeys", "audit"),
        // Never a database, nor a snapshot that is not Lifeboat's.
        Request::new(
            "rds:DeleteDBInstance",
            &format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:db:orders-db"),
        ),
        Request::new(
            "rds:DeleteDBSnapshot",
            &format!("arn:aws:rds:{REGION}:{ACCOUNT_ID}:snapshot:orders-manual"),
        ),
        Request::new("dynamodb:BatchWriteItem", &r.table),
        Request::new("sns:Publish", &r.topic),
    ];
    assert_decisions("RetentionRole", &policies, &allowed, &denied);
}

#[test]
fn the_alert_role_reads_the_catalog_and_publishes_to_the_topic() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let policies = stack.role_policies("AlertRole");
    let r = Resources::of(&stack);
    let stream = log_stream(&stack, "AlertLogGroup");
    let via_sns = format!("sns.{REGION}.amazonaws.com");
    // run_alerts: Catalog::latest_completed/list/verifications, the alert
    // records (Scan, conditional PutItem/UpdateItem), AlertTopic::publish
    // (SNS encrypts for the publisher with the topic's key).
    let allowed = [
        Request::new("dynamodb:GetItem", &r.table),
        Request::new("dynamodb:Query", &r.table),
        Request::new("dynamodb:Query", &format!("{}/index/byTime", r.table)),
        Request::new("dynamodb:Scan", &r.table),
        Request::new("dynamodb:PutItem", &r.table),
        Request::new("dynamodb:UpdateItem", &r.table),
        Request::new("sns:Publish", &r.topic),
        Request::new("kms:GenerateDataKey", &r.key).with("kms:ViaService", &via_sns),
        Request::new("kms:Decrypt", &r.key).with("kms:ViaService", &via_sns),
        Request::new("sqs:SendMessage", &r.queue),
        Request::new("logs:CreateLogStream", &stream),
        Request::new("logs:PutLogEvents", &stream),
        // The plan file, for the snapshot conditions.
        Request::new("s3:GetObject", "arn:aws:s3:::lifeboat-code/lifeboat/plans.toml"),
    ];
    let denied = [
        Request::new("sns:Publish", "arn:aws:sns:us-east-1:123456789012:another-topic"),
        Request::new("sns:Subscribe", &r.topic),
        Request::new("sns:SetTopicAttributes", &r.topic),
        // The key only through SNS.
        Request::new("kms:Decrypt", &r.key),
        Request::new("kms:GenerateDataKey", &r.key),
        Request::new("kms:Decrypt", &r.key).with("kms:ViaService", &format!("s3.{REGION}.amazonaws.com")),
        // No store access at all.
        Request::new("s3:GetObject", &r.object("lifeboat/config")),
        Request::new("s3:ListBucket", &r.bucket).with("s3:prefix", "lifeboat/"),
        Request::new("dynamodb:DeleteItem", &r.table),
    ];
    assert_decisions("AlertRole", &policies, &allowed, &denied);
}

#[test]
fn the_snapshot_role_snapshots_and_copies_and_nothing_else() {
    let template = template("lifeboat.yaml");
    let stack = Stack::new(&template, STACK, &primary_parameters());
    let policies = stack.role_policies("SnapshotRole");
    let r = Resources::of(&stack);
    let log = log_stream(&stack, "SnapshotLogGroup");
    let rds = |region: &str, kind: &str, name: &str| format!("arn:aws:rds:{region}:{ACCOUNT_ID}:{kind}:{name}");
    let db = rds(REGION, "db", "orders-db");
    let cluster = rds(REGION, "cluster", "orders");
    let snapshot = rds(REGION, "snapshot", "lifeboat-db-nightly-orders-db-20261123-0200");
    let cluster_snapshot = rds(REGION, "cluster-snapshot", "lifeboat-db-nightly-orders-20261123-0200");
    let copy = rds(DR_REGION, "snapshot", "lifeboat-db-nightly-orders-db-20261123-0200");
    let cluster_copy = rds(
        DR_REGION,
        "cluster-snapshot",
        "lifeboat-db-nightly-orders-20261123-0200",
    );
    let plans = "arn:aws:s3:::lifeboat-code/lifeboat/plans.toml";

    // The library's calls (snapshot::load_plans, AwsRds, SnapshotCatalog)
    // and the runtime's.
    let allowed = [
        Request::new("s3:GetObject", plans),
        Request::new("rds:DescribeDBInstances", &db),
        Request::new("rds:DescribeDBClusters", &cluster),
        Request::new("rds:CreateDBSnapshot", &db),
        Request::new("rds:CreateDBSnapshot", &snapshot),
        Request::new("rds:CreateDBClusterSnapshot", &cluster),
        Request::new("rds:CreateDBClusterSnapshot", &cluster_snapshot),
        Request::new("rds:AddTagsToResource", &snapshot),
        Request::new("rds:AddTagsToResource", &cluster_snapshot),
        Request::new("rds:AddTagsToResource", &copy),
        Request::new("rds:AddTagsToResource", &cluster_copy),
        Request::new("rds:DescribeDBSnapshots", &snapshot),
        Request::new("rds:DescribeDBSnapshots", &copy),
        Request::new("rds:DescribeDBClusterSnapshots", &cluster_snapshot),
        Request::new("rds:DescribeDBClusterSnapshots", &cluster_copy),
        Request::new("rds:CopyDBSnapshot", &snapshot),
        Request::new("rds:CopyDBSnapshot", &copy),
        Request::new("rds:CopyDBClusterSnapshot", &cluster_snapshot),
        Request::new("rds:CopyDBClusterSnapshot", &cluster_copy),
        Request::new("kms:DescribeKey", DR_KEY),
        Request::new("kms:CreateGrant", DR_KEY).with("kms:GrantIsForAWSResource", "true"),
        Request::new("dynamodb:PutItem", &r.table),
        Request::new("dynamodb:Query", &r.table),
        Request::new("dynamodb:Query", &format!("{}/index/byTime", r.table)),
        Request::new("dynamodb:Query", &format!("{}/index/bySource", r.table)),
        Request::new("sqs:SendMessage", &r.queue),
        Request::new("logs:CreateLogStream", &log),
        Request::new("logs:PutLogEvents", &log),
        // A plan's database dumps (snapshot::run_plan_dumps): the dump's
        // claim (PutItem, GetItem when taken), the store (Repository::open,
        // load_index, packs, index, manifest, Kms::unwrap, SSE-KMS) and the
        // backup record (Catalog::begin PutItem, mark_in_progress / complete
        // / fail UpdateItem).
        Request::new("dynamodb:GetItem", &r.table),
        Request::new("dynamodb:UpdateItem", &r.table),
        Request::new("s3:GetObject", &r.object("lifeboat/config")),
        Request::new("s3:GetObject", &r.object("lifeboat/index/0a1b")),
        Request::new("s3:ListBucket", &r.bucket).with("s3:prefix", "lifeboat/index/"),
        Request::new("s3:PutObject", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:PutObject", &r.object("lifeboat/index/0a1b")),
        Request::new("s3:PutObject", &r.object("lifeboat/manifests/20261123T020000Z-ab")),
        Request::new("kms:Decrypt", &r.key),
        Request::new("kms:GenerateDataKey", &r.key),
        Request::new("kms:DescribeKey", &r.key),
    ];
    let denied = [
        // Dumps never delete or unlock store objects, never write elsewhere.
        Request::new("s3:DeleteObject", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:DeleteObject", &r.object("lifeboat/manifests/20261123T020000Z-ab")),
        Request::new("s3:DeleteObjectVersion", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:PutObjectRetention", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:BypassGovernanceRetention", &r.object("lifeboat/packs/0a/0a1b2c")),
        Request::new("s3:PutObject", &r.object("elsewhere/x")),
        Request::new("s3:ListBucket", &r.bucket).with("s3:prefix", "elsewhere/"),
        Request::new("kms:Encrypt", &r.key),
        Request::new("kms:ReEncryptFrom", &r.key),
        // No secret unless the stack names it (DatabaseSecretArns).
        Request::new(
            "secretsmanager:GetSecretValue",
            &format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:orders-db-AbCdEf"),
        ),
        // Never deletes, shares or restores; never touches the databases.
        Request::new("rds:DeleteDBSnapshot", &snapshot),
        Request::new("rds:DeleteDBSnapshot", &copy),
        Request::new("rds:DeleteDBClusterSnapshot", &cluster_snapshot),
        Request::new("rds:ModifyDBSnapshotAttribute", &snapshot),
        Request::new("rds:RestoreDBInstanceFromDBSnapshot", &snapshot),
        Request::new("rds:DeleteDBInstance", &db),
        Request::new("rds:ModifyDBInstance", &db),
        Request::new("rds:DeleteDBCluster", &cluster),
        // Only snapshots under Lifeboat's names, only in its two regions.
        Request::new("rds:CreateDBSnapshot", &rds(REGION, "snapshot", "someone-elses")),
        Request::new("rds:CopyDBSnapshot", &rds("eu-west-1", "snapshot", "lifeboat-x")),
        Request::new("rds:DescribeDBInstances", &rds(DR_REGION, "db", "orders-db")),
        // The DR key only for RDS's grants and DescribeKey; no other key.
        Request::new("kms:CreateGrant", DR_KEY),
        Request::new("kms:Decrypt", DR_KEY),
        Request::new("kms:ScheduleKeyDeletion", DR_KEY),
        Request::new(
            "kms:DescribeKey",
            &format!("arn:aws:kms:{DR_REGION}:{ACCOUNT_ID}:key/ffffffff-0000-4000-8000-000000000000"),
        ),
        // Not the plan file's neighbours, no publishing.
        Request::new("s3:PutObject", plans),
        Request::new(
            "s3:GetObject",
            "arn:aws:s3:::lifeboat-code/lifeboat/snapshot/bootstrap.zip",
        ),
        Request::new("dynamodb:DeleteItem", &r.table),
        Request::new("dynamodb:Scan", &r.table),
        Request::new("dynamodb:DeleteTable", &r.table),
        Request::new("sns:Publish", &r.topic),
        Request::new("iam:PassRole", "*"),
    ];
    assert_decisions("SnapshotRole", &policies, &allowed, &denied);
    // One run at a time, so that runs cannot together exceed the copy limit.
    assert_eq!(stack.property("SnapshotFunction", "ReservedConcurrentExecutions"), 1);

    // Without a copy region, no copies and no DR key at all.
    let no_copies: Vec<(&str, &str)> = primary_parameters()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("SnapshotCopy"))
        .collect();
    let local = Stack::new(&template, STACK, &no_copies);
    let policies = local.role_policies("SnapshotRole");
    assert_decisions(
        "SnapshotRole without copies",
        &policies,
        &[Request::new("rds:CreateDBSnapshot", &snapshot)],
        &[
            Request::new("rds:CopyDBSnapshot", &copy),
            Request::new("rds:DescribeDBSnapshots", &copy),
            Request::new("kms:DescribeKey", DR_KEY),
        ],
    );
}
