//! The audit trail against the emulator's DynamoDB: concurrent appenders make
//! one unbroken chain; `lifeboat audit-log verify` (the real binary) exits 7
//! naming the record that was altered, removed or cut off; backups, restores
//! and key re-wraps through the toolkit, and backups by the Lambda function,
//! leave their records.

use std::collections::{BTreeMap, HashMap};
use std::process::Output;

use aws_sdk_dynamodb::types::AttributeValue;
use lifeboat::audit::{AuditEvent, AuditRecord, AuditTrail, GENESIS_HASH};
use lifeboat_e2e::{dynamodb_client, invoke_function, unique, workspace_bin, REGION};
use serde_json::Value;

use crate::support::{create_bucket, describe, new_kms_key, put_objects, random_bytes, Store};

fn event(action: &str, subject: &str, n: u64) -> AuditEvent {
    AuditEvent {
        action: action.into(),
        subject: subject.into(),
        actor: "test:e2e".into(),
        details: serde_json::json!({"n": n, "nested": {"b": [1, 2], "a": "x"}}),
    }
}

fn record_key(seq: u64) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S("audit".into())),
        ("sk".to_owned(), AttributeValue::S(format!("{seq:020}"))),
    ])
}

/// `lifeboat audit-log verify --output json`: the exit code and the report.
fn verify(store: &Store) -> (Option<i32>, Value, Output) {
    let output = store.run(&["audit-log", "verify", "--output", "json"]);
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("audit-log verify printed no JSON ({e}):\n{}", describe(&output)));
    (output.status.code(), report, output)
}

/// Asserts `audit-log verify` finds tampering at `seq` of `kind`, in JSON and in text.
fn assert_tampered(store: &Store, seq: u64, kind: &str) {
    let (code, report, output) = verify(store);
    assert_eq!(code, Some(7), "expected exit 7:\n{}", describe(&output));
    assert_eq!(report["intact"], false, "{report}");
    assert_eq!(report["problem"]["seq"], seq, "{report}");
    assert_eq!(report["problem"]["kind"], kind, "{report}");
    let text = store.run(&["audit-log", "verify"]);
    assert_eq!(text.status.code(), Some(7), "{}", describe(&text));
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains(&format!("TAMPERED: record {seq} ")),
        "the verdict does not name record {seq}:\n{stdout}"
    );
}

fn assert_intact(store: &Store, records: u64) {
    let (code, report, output) = verify(store);
    assert_eq!(code, Some(0), "expected an intact trail:\n{}", describe(&output));
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["records"], records, "{report}");
}

#[tokio::test]
async fn concurrent_appends_make_one_chain_and_tampering_is_named_by_record() {
    let store = Store::new().await;
    let dynamodb = dynamodb_client().await;
    let trail = AuditTrail::new(&lifeboat::catalog::Catalog::new(dynamodb.clone(), &store.table, REGION));
    assert!(trail.verify().await.expect("verify empty trail").intact);

    for n in 0..3 {
        let record = trail
            .append(event("backup.completed", "bk-seq", n))
            .await
            .expect("append");
        assert_eq!(record.seq, n + 1);
    }
    // Few writers on purpose: moto rolls a failed transaction back by
    // restoring a deep copy of the whole table taken before it, which is not
    // thread-safe; many conflicting writers can lose another writer's commit
    // in the emulator (DynamoDB's transactions are serializable). Three
    // writers still contend for the head on every round.
    let (tasks, each) = (3u64, 2u64);
    let mut handles = Vec::new();
    for task in 0..tasks {
        let trail = trail.clone();
        handles.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for n in 0..each {
                let record = trail
                    .append(event("hold.added", &format!("task-{task}"), n))
                    .await
                    .expect("concurrent append");
                seqs.push(record.seq);
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for handle in handles {
        seqs.extend(handle.await.expect("appender task"));
    }
    seqs.sort_unstable();
    let total = 3 + tasks * each;
    assert_eq!(seqs, (4..=total).collect::<Vec<_>>(), "seqs are shared or skipped");

    let records: Vec<AuditRecord> = trail.list(None).await.expect("list");
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    assert_eq!(records[0].prev_hash, GENESIS_HASH);
    for pair in records.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash, "record {} is not linked", pair[1].seq);
    }
    for r in &records {
        assert_eq!(r.computed_hash(), r.hash, "record {}", r.seq);
    }
    // Each task's own appends stay in its order.
    let per_task: BTreeMap<&str, Vec<u64>> = records.iter().fold(BTreeMap::new(), |mut m, r| {
        m.entry(r.subject.as_str())
            .or_default()
            .push(r.details["n"].as_u64().unwrap_or(u64::MAX));
        m
    });
    for (subject, ns) in &per_task {
        let mut sorted = ns.clone();
        sorted.sort_unstable();
        assert_eq!(ns, &sorted, "{subject}");
    }
    let report = trail.verify().await.expect("verify");
    assert!(report.intact, "{report:?}");
    assert_eq!(report.records, total);
    assert_eq!(report.head_seq, Some(total));
    assert_intact(&store, total);

    // Altered: record 5's subject changed behind the trail's back.
    let original = dynamodb
        .get_item()
        .table_name(&store.table)
        .set_key(Some(record_key(5)))
        .send()
        .await
        .expect("get record 5")
        .item
        .expect("record 5 exists");
    dynamodb
        .update_item()
        .table_name(&store.table)
        .set_key(Some(record_key(5)))
        .update_expression("SET #s = :s")
        .expression_attribute_names("#s", "subject")
        .expression_attribute_values(":s", AttributeValue::S("bk-someone-else".into()))
        .send()
        .await
        .expect("tamper with record 5");
    assert_tampered(&store, 5, "altered");
    let report = trail.verify().await.expect("verify");
    assert!(
        report.problem.as_ref().is_some_and(|p| p.detail.contains("record 5")),
        "{report:?}"
    );
    put_back(&dynamodb, &store.table, original).await;
    assert_intact(&store, total);

    // Removed: record 8 deleted leaves a gap.
    let removed = dynamodb
        .delete_item()
        .table_name(&store.table)
        .set_key(Some(record_key(8)))
        .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
        .send()
        .await
        .expect("delete record 8")
        .attributes
        .expect("record 8 existed");
    assert_tampered(&store, 8, "removed");
    put_back(&dynamodb, &store.table, removed).await;
    assert_intact(&store, total);

    // Truncated: the last record deleted; the head still names it.
    dynamodb
        .delete_item()
        .table_name(&store.table)
        .set_key(Some(record_key(total)))
        .send()
        .await
        .expect("delete the last record");
    assert_tampered(&store, total, "truncated");
}

async fn put_back(dynamodb: &aws_sdk_dynamodb::Client, table: &str, item: HashMap<String, AttributeValue>) {
    dynamodb
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .expect("put the record back");
}

#[tokio::test]
async fn backups_restores_and_rewraps_through_the_toolkit_are_in_the_trail() {
    let store = Store::new().await;
    let data = create_bucket(&store.s3, "audit-data").await;
    let entries = BTreeMap::from([
        ("app/a.bin".to_owned(), random_bytes(100_000, "audit-a")),
        ("app/b.bin".to_owned(), random_bytes(20_000, "audit-b")),
    ]);
    put_objects(&store.s3, &data, &entries).await;
    let source = format!("s3://{data}/app");
    let summary = store.json(&["backup", "files", &source]);
    let id = summary["backupId"].as_str().expect("backupId").to_owned();
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("restored");
    store.ok(&["restore", "files", &id, "--to", target.to_str().expect("utf-8")]);
    let new_key = new_kms_key(&store.kms).await;
    store.ok(&["keys", "rewrap", "--kms-key", &new_key]);

    let shown = store.json(&["audit-log", "show"]);
    let records = shown.as_array().unwrap_or_else(|| panic!("not an array: {shown}"));
    let actions: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r["action"].as_str().unwrap_or(""), r["subject"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("backup.completed", id.as_str()),
            ("restore.completed", id.as_str()),
            ("keys.rewrapped", store.url.as_str()),
        ],
        "{shown}"
    );
    let seqs: Vec<u64> = records.iter().filter_map(|r| r["seq"].as_u64()).collect();
    assert_eq!(seqs, vec![1, 2, 3], "{shown}");
    assert_eq!(records[0]["details"]["source"], format!("{source}/"), "{shown}");
    assert_eq!(records[0]["details"]["entries"], 2, "{shown}");
    assert_eq!(records[1]["details"]["entries"], 2, "{shown}");
    assert_eq!(records[2]["details"]["kmsKeyId"], new_key.as_str(), "{shown}");
    for r in records {
        assert!(r["actor"].as_str().is_some_and(|a| a.starts_with("cli:")), "{r}");
        assert_eq!(r["hash"].as_str().map(str::len), Some(64), "{r}");
    }
    assert_eq!(records[1]["prevHash"], records[0]["hash"]);
    assert_intact(&store, 3);

    // --since: a time after the last record shows nothing; the first record's time shows all.
    let later = store.json(&["audit-log", "show", "--since", "2999-01-01T00:00:00Z"]);
    assert_eq!(later, serde_json::json!([]));
    let first_at = records[0]["at"].as_str().expect("at").to_owned();
    let since_first = store.json(&["audit-log", "show", "--since", &first_at]);
    assert_eq!(since_first.as_array().map(Vec::len), Some(3), "{since_first}");
    let text = store.ok(&["audit-log", "show"]);
    assert!(text.contains("restore.completed") && text.contains(&id), "{text}");
    let bad = store.run(&["audit-log", "show", "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(1), "{}", describe(&bad));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"),
        "{}",
        describe(&bad)
    );

    // Audit items never show as backups.
    let listed = store.json(&["backups", "list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
}

#[tokio::test]
async fn a_backup_by_the_function_is_recorded_once_as_done_by_the_lambda() {
    let store = Store::new().await;
    let data = create_bucket(&store.s3, "audit-fn-data").await;
    let entries = BTreeMap::from([("app/one.bin".to_owned(), random_bytes(50_000, "audit-fn"))]);
    put_objects(&store.s3, &data, &entries).await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/file-backup-direct.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let mut event: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    event["source"] = serde_json::json!(format!("s3://{data}/app"));
    event["store"] = serde_json::json!(store.url);
    event["idempotencyKey"] = serde_json::json!(unique("audit-fn"));
    let env = [
        ("LIFEBOAT_TABLE", store.table.clone()),
        ("LIFEBOAT_KMS_KEY", store.kms_key.clone()),
    ];
    let mut ids = Vec::new();
    // The second delivery is a duplicate: no new backup, no new record.
    for _ in 0..2 {
        let summary = invoke_function(&workspace_bin("file-backup"), &event, &env)
            .await
            .unwrap_or_else(|e| panic!("file-backup did not answer: {e:#}"))
            .unwrap_or_else(|e| panic!("the backup failed: {e}"));
        ids.push(summary["backupId"].as_str().expect("backupId").to_owned());
    }
    assert_eq!(ids[0], ids[1], "the redelivery made another backup");

    let shown = store.json(&["audit-log", "show"]);
    let records = shown.as_array().unwrap_or_else(|| panic!("not an array: {shown}"));
    assert_eq!(records.len(), 1, "{shown}");
    assert_eq!(records[0]["action"], "backup.completed", "{shown}");
    assert_eq!(records[0]["subject"], ids[0].as_str(), "{shown}");
    assert!(
        records[0]["actor"].as_str().is_some_and(|a| a.starts_with("lambda:")),
        "{shown}"
    );
    assert_intact(&store, 1);
}
