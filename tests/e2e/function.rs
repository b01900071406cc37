//! The file-backup Lambda function, its real binary run under a local Lambda
//! Runtime API with the sample events of `events/` pointed at the test's own
//! buckets: scheduled and direct invocations, idempotent redelivery,
//! incremental backups, and the errors it reports for bad events and plans.

use std::collections::BTreeMap;

use lifeboat_e2e::{invoke_function, unique, workspace_bin};
use serde_json::{json, Value};

use crate::support::{
    assert_same_tree, create_bucket, describe, dir_contents, list_objects, put_objects, random_bytes, relative,
    sample_event, text_bytes, Store,
};

/// Runs the function once with `event`, configured as the stack configures it
/// (catalog table and KMS key in its environment; the store from the event).
async fn invoke(store: &Store, event: &Value) -> Result<Value, Value> {
    invoke_function(
        &workspace_bin("file-backup"),
        event,
        &[
            ("LIFEBOAT_TABLE", store.table.clone()),
            ("LIFEBOAT_KMS_KEY", store.kms_key.clone()),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("file-backup did not answer: {e:#}"))
}

fn completed(outcome: Result<Value, Value>) -> Value {
    let summary = outcome.unwrap_or_else(|e| panic!("the backup failed: {e}"));
    assert_eq!(summary["status"], "completed", "{summary}");
    summary
}

fn failed(outcome: Result<Value, Value>, error_type: &str) -> String {
    let error = match outcome {
        Ok(summary) => panic!("expected {error_type}, the function answered {summary}"),
        Err(error) => error,
    };
    assert_eq!(error["errorType"], error_type, "{error}");
    error["errorMessage"]
        .as_str()
        .unwrap_or_else(|| panic!("no errorMessage in {error}"))
        .to_owned()
}

fn backup_id(summary: &Value) -> String {
    summary["backupId"]
        .as_str()
        .unwrap_or_else(|| panic!("no backupId in {summary}"))
        .to_owned()
}

/// Every backup record in the store's catalog.
fn records(store: &Store) -> Vec<Value> {
    let listed = store.json(&["backups", "list"]);
    listed
        .as_array()
        .unwrap_or_else(|| panic!("backups list printed no array: {listed}"))
        .clone()
}

/// Key → (size, ETag) of every object of the store.
async fn store_listing(store: &Store) -> BTreeMap<String, (i64, String)> {
    let mut out = BTreeMap::new();
    let mut pages = store
        .s3
        .list_objects_v2()
        .bucket(&store.bucket)
        .prefix("lifeboat/")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for object in page.expect("list objects").contents() {
            let key = object.key().expect("key").to_owned();
            out.insert(
                key,
                (
                    object.size().unwrap_or(-1),
                    object.e_tag().unwrap_or_default().to_owned(),
                ),
            );
        }
    }
    out
}

/// A data bucket with objects under `app/` (the source) and one outside it.
async fn data_bucket(store: &Store) -> (String, BTreeMap<String, Vec<u8>>) {
    let bucket = create_bucket(&store.s3, "fn-data").await;
    let objects = BTreeMap::from([
        ("app/config.json".to_owned(), br#"{"feature": true}"#.to_vec()),
        ("app/reports/q3.csv".to_owned(), text_bytes(250_000, "fn-q3")),
        ("app/reports/q4.csv".to_owned(), text_bytes(180_000, "fn-q4")),
        ("app/media/logo.bin".to_owned(), random_bytes(1_300_000, "fn-logo")),
        ("app/empty".to_owned(), Vec::new()),
        (
            "other/not-in-the-source.txt".to_owned(),
            b"outside the source prefix".to_vec(),
        ),
    ]);
    put_objects(&store.s3, &bucket, &objects).await;
    let source: BTreeMap<String, Vec<u8>> = relative(&objects, "app/")
        .into_iter()
        .filter(|(k, _)| !k.starts_with("other/"))
        .collect();
    (bucket, source)
}

#[tokio::test]
async fn a_scheduled_event_makes_one_backup_even_when_delivered_twice() {
    let store = Store::new().await;
    let (data, source) = data_bucket(&store).await;
    let mut event = sample_event("file-backup-scheduled.json");
    event["id"] = json!(unique("event"));
    event["detail"]["source"] = json!(format!("s3://{data}/app"));
    event["detail"]["store"] = json!(store.url);

    let first = completed(invoke(&store, &event).await);
    assert_eq!(first["duplicate"], false, "{first}");
    assert_eq!(first["source"], format!("s3://{data}/app/"), "{first}");
    assert_eq!(first["entriesScanned"], source.len() as u64, "{first}");
    // The sample asks for an incremental; with nothing to build on it is full.
    assert_eq!(first["type"], "full", "{first}");
    let id = backup_id(&first);

    let listed = records(&store);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["status"], "completed");
    assert_eq!(listed[0]["source"], format!("s3://{data}/app/"));
    assert_eq!(listed[0]["entryCount"], source.len() as u64);
    assert!(
        listed[0]["retentionUntil"].is_string(),
        "retentionDays from the event is not recorded: {}",
        listed[0]
    );
    let objects_before = store_listing(&store).await;

    // EventBridge delivers at least once: the same event again is no new backup.
    let again = completed(invoke(&store, &event).await);
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["backupId"], id.as_str(), "{again}");
    assert_eq!(records(&store).len(), 1, "a redelivered event made a second backup");
    assert_eq!(
        store_listing(&store).await,
        objects_before,
        "a redelivered event wrote to the store"
    );

    // The backup is real: it restores to the source's content.
    let dir = tempfile::tempdir().expect("temp dir");
    store.ok(&["restore", "files", &id, "--to", dir.path().to_str().expect("utf-8")]);
    assert_same_tree(&dir_contents(dir.path()), &source);
}

#[tokio::test]
async fn a_direct_invocation_then_an_incremental_reads_only_what_changed() {
    let store = Store::new().await;
    let (data, _) = data_bucket(&store).await;
    let mut event = sample_event("file-backup-direct.json");
    event["source"] = json!(format!("s3://{data}/app"));
    event["store"] = json!(store.url);
    event["idempotencyKey"] = json!(unique("manual"));

    let first = completed(invoke(&store, &event).await);
    assert_eq!(first["type"], "full", "{first}");
    assert_eq!(first["entriesChanged"], first["entriesScanned"], "{first}");
    let first_id = backup_id(&first);

    // Two objects change; the rest stay as they were.
    let changed = BTreeMap::from([
        ("app/reports/q3.csv".to_owned(), text_bytes(260_000, "fn-q3-revised")),
        ("app/media/logo.bin".to_owned(), random_bytes(1_200_000, "fn-logo-v2")),
    ]);
    put_objects(&store.s3, &data, &changed).await;
    let mut incremental = event.clone();
    incremental["type"] = json!("incremental");
    incremental["idempotencyKey"] = json!(unique("manual"));
    let second = completed(invoke(&store, &incremental).await);
    assert_eq!(second["type"], "incremental", "{second}");
    assert_eq!(second["duplicate"], false, "{second}");
    assert_eq!(second["entriesChanged"], 2, "{second}");
    assert_eq!(second["entriesScanned"], first["entriesScanned"], "{second}");
    assert_eq!(second["parentBackup"], first_id.as_str(), "{second}");
    assert_ne!(second["backupId"], first_id.as_str(), "{second}");

    let dir = tempfile::tempdir().expect("temp dir");
    let output = store.run(&[
        "restore",
        "files",
        "latest",
        "--source",
        &format!("s3://{data}/app"),
        "--to",
        dir.path().to_str().expect("utf-8"),
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    let current = relative(&list_objects(&store.s3, &data, "app/").await, "app/");
    assert_same_tree(&dir_contents(dir.path()), &current);
}

#[tokio::test]
async fn bad_events_and_plans_fail_the_invocation_with_a_typed_error() {
    let store = Store::new().await;
    let (data, _) = data_bucket(&store).await;

    // Malformed events: nothing is attempted, nothing is recorded.
    let message = failed(invoke(&store, &json!({"source": 5})).await, "Lifeboat.BadEvent");
    assert!(
        message.contains("\"source\"") && message.contains("invalid type"),
        "the field at fault is not named: {message}"
    );
    let mut no_detail = sample_event("file-backup-scheduled.json");
    no_detail["id"] = json!(unique("event"));
    no_detail.as_object_mut().expect("object").remove("detail");
    let message = failed(invoke(&store, &no_detail).await, "Lifeboat.BadEvent");
    assert!(message.contains("detail"), "{message}");
    let message = failed(
        invoke(
            &store,
            &json!({"source": format!("s3://{data}/app"), "store": store.url, "type": "weekly"}),
        )
        .await,
        "Lifeboat.BadEvent",
    );
    assert!(message.contains("weekly"), "{message}");
    assert!(records(&store).is_empty(), "a bad event was recorded");

    // A store bucket that does not exist.
    let missing_store = unique("no-such-store");
    let plan = json!({"source": format!("s3://{data}/app"), "store": format!("s3://{missing_store}/lifeboat")});
    let message = failed(invoke(&store, &plan).await, "Lifeboat.Store");
    assert!(message.contains(&missing_store), "{message}");
    assert!(records(&store).is_empty(), "a backup into a missing store was recorded");

    // A source bucket that does not exist: the backup is attempted, fails,
    // and the catalog says so.
    let missing_source = unique("no-such-source");
    let plan = json!({"source": format!("s3://{missing_source}/app"), "store": store.url});
    let message = failed(invoke(&store, &plan).await, "Lifeboat.BackupFailed");
    assert!(message.contains(&missing_source), "{message}");
    let listed = records(&store);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["status"], "failed", "{}", listed[0]);
    assert_eq!(
        listed[0]["source"],
        format!("s3://{missing_source}/app/"),
        "{}",
        listed[0]
    );
    let error = listed[0]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error recorded: {}", listed[0]));
    assert!(error.contains(&missing_source), "{error}");
    assert!(
        listed[0].get("checksum").is_none(),
        "a failed backup has a manifest checksum: {}",
        listed[0]
    );
}
