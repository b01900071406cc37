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

/// Runs the function with a plan file in its environment and the store as
/// its default, as the stack configures it.
async fn invoke_with_plans(store: &Store, plans: &str, event: &Value) -> Result<Value, Value> {
    invoke_function(
        &workspace_bin("file-backup"),
        event,
        &[
            ("LIFEBOAT_TABLE", store.table.clone()),
            ("LIFEBOAT_KMS_KEY", store.kms_key.clone()),
            ("LIFEBOAT_STORE", store.url.clone()),
            ("LIFEBOAT_PLANS_TOML", plans.to_owned()),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("file-backup did not answer: {e:#}"))
}

/// The one backup of a plan run or S3 event's answer.
fn only_backup(outcome: Result<Value, Value>) -> Value {
    let answer = outcome.unwrap_or_else(|e| panic!("the backup failed: {e}"));
    let backups = answer["backups"]
        .as_array()
        .unwrap_or_else(|| panic!("no backups in {answer}"));
    assert_eq!(backups.len(), 1, "{answer}");
    assert_eq!(backups[0]["status"], "completed", "{answer}");
    backups[0].clone()
}

/// The input the generated schedule of `plan` sends to the file-backup
/// function, as Scheduler sends it for a run at `at`.
fn schedule_input(plans_file: &std::path::Path, plan_logical: &str, at: &str) -> Value {
    let output = std::process::Command::new(workspace_bin("lifeboat"))
        .args(["plan", "schedules"])
        .arg(plans_file)
        .output()
        .expect("run lifeboat plan schedules");
    assert!(output.status.success(), "{}", describe(&output));
    let template: Value = serde_json::from_slice(&output.stdout).expect("the template is JSON");
    let schedule = &template["Resources"][plan_logical]["Properties"];
    assert_eq!(
        schedule["Target"]["Arn"]["Fn::ImportValue"]["Fn::Sub"], "${PrimaryStack}-FileBackupFunctionArn",
        "{schedule}"
    );
    let input = schedule["Target"]["Input"].as_str().expect("an input");
    serde_json::from_str(&input.replace("<aws.scheduler.scheduled-time>", at)).expect("the input is JSON")
}

/// Continuous backup: the plan's schedule makes the first backup, then S3's
/// ObjectCreated events (either shape) back up the new object on top of it;
/// every backup restores whole; redeliveries make none; an object no plan
/// covers, or one gone, fails clearly.
#[tokio::test]
async fn s3_object_created_events_back_up_new_objects_on_top_of_the_latest() {
    let store = Store::new().await;
    let (data, _) = data_bucket(&store).await;
    let plans = format!(
        r#"[[plan]]
name = "app-continuous"
schedule = "cron(0 2 * * ? *)"
timezone = "Europe/Berlin"
sources = ["s3://{data}/app"]
retention = {{ keep_last = 7 }}
rpo = "26h"
tier = "standard"
"#
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let plans_file = dir.path().join("plans.toml");
    std::fs::write(&plans_file, &plans).expect("write the plan file");
    let source = format!("s3://{data}/app/");

    // The plan's schedule, with the exact input the generated stack sends.
    let input = schedule_input(&plans_file, "AppContinuousFileBackupSchedule", "2026-11-23T01:00:00Z");
    assert_eq!(
        input,
        json!({"plan": "app-continuous", "scheduledTime": "2026-11-23T01:00:00Z"})
    );
    let first = only_backup(invoke_with_plans(&store, &plans, &input).await);
    assert_eq!(first["source"], source.as_str(), "{first}");
    assert_eq!(first["type"], "full", "nothing to build on yet: {first}");
    let again = only_backup(invoke_with_plans(&store, &plans, &input).await);
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["backupId"], first["backupId"], "{again}");

    // A new object, and S3's notification of it (the sample, pointed at the test's bucket).
    let key = "app/reports/q4 final(2).csv";
    put_objects(
        &store.s3,
        &data,
        &BTreeMap::from([(key.to_owned(), text_bytes(90_000, "fn-q4-final"))]),
    )
    .await;
    let mut notification = sample_event("s3-object-created.json");
    notification["Records"][0]["s3"]["bucket"]["name"] = json!(data);
    notification["Records"][0]["s3"]["bucket"]["arn"] = json!(format!("arn:aws:s3:::{data}"));
    let second = only_backup(invoke_with_plans(&store, &plans, &notification).await);
    assert_eq!(second["type"], "incremental", "{second}");
    assert_eq!(second["parentBackup"], first["backupId"], "{second}");
    assert_eq!(second["entriesChanged"], 1, "only the new object is read: {second}");
    assert_eq!(
        second["entriesScanned"].as_u64(),
        first["entriesScanned"].as_u64().map(|n| n + 1),
        "the parent's tree plus the new object: {second}"
    );
    let listed = records(&store);
    assert_eq!(listed.len(), 2, "backups list shows both: {listed:?}");

    // The backup is complete on its own: it restores the whole source, byte for byte.
    let restored = tempfile::tempdir().expect("temp dir");
    store.ok(&[
        "restore",
        "files",
        &backup_id(&second),
        "--to",
        restored.path().to_str().expect("utf-8"),
    ]);
    let current = relative(&list_objects(&store.s3, &data, "app/").await, "app/");
    assert!(current.contains_key("reports/q4 final(2).csv"));
    assert_same_tree(&dir_contents(restored.path()), &current);

    // Redelivered, or delivered the other way (EventBridge): no second backup.
    let objects_before = store_listing(&store).await;
    let redelivered = only_backup(invoke_with_plans(&store, &plans, &notification).await);
    assert_eq!(redelivered["duplicate"], true, "{redelivered}");
    assert_eq!(redelivered["backupId"], second["backupId"], "{redelivered}");
    let mut eventbridge = sample_event("s3-object-created-eventbridge.json");
    eventbridge["detail"]["bucket"]["name"] = json!(data);
    let other_way = only_backup(invoke_with_plans(&store, &plans, &eventbridge).await);
    assert_eq!(other_way["duplicate"], true, "{other_way}");
    assert_eq!(other_way["backupId"], second["backupId"], "{other_way}");
    assert_eq!(records(&store).len(), 2, "a redelivery made a backup");
    assert_eq!(
        store_listing(&store).await,
        objects_before,
        "a redelivery wrote to the store"
    );

    // An object no plan covers: a clear error, nothing backed up.
    let mut uncovered = notification.clone();
    uncovered["Records"][0]["s3"]["bucket"]["name"] = json!("someone-elses-bucket");
    let message = failed(
        invoke_with_plans(&store, &plans, &uncovered).await,
        "Lifeboat.NotCovered",
    );
    assert!(
        message.contains("s3://someone-elses-bucket/app/reports/q4 final(2).csv") && message.contains(&source),
        "{message}"
    );
    assert_eq!(records(&store).len(), 2, "an uncovered object was recorded");

    // An object gone by the time the event arrives: reported, not a silent success.
    let mut gone = eventbridge.clone();
    gone["detail"]["object"]["key"] = json!("app/uploads/deleted-already.bin");
    gone["detail"]["object"]["sequencer"] = json!("0055AED6DCD90281F0");
    let message = failed(invoke_with_plans(&store, &plans, &gone).await, "Lifeboat.BackupFailed");
    assert!(
        message.contains("uploads/deleted-already.bin") && message.contains("no longer exist"),
        "{message}"
    );
    let listed = records(&store);
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(
        listed.iter().any(|r| r["status"] == "failed"),
        "the failed attempt is in the catalog: {listed:?}"
    );
}

/// The EFS sample: a plan for a mounted directory, pointed at a temporary one.
#[tokio::test]
async fn the_efs_sample_backs_up_a_directory() {
    let store = Store::new().await;
    let source = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(source.path().join("avatars")).expect("mkdir");
    std::fs::write(source.path().join("avatars/1.png"), random_bytes(70_000, "efs-1")).expect("write");
    std::fs::write(source.path().join("notes.txt"), b"uploaded notes").expect("write");
    let mut event = sample_event("file-backup-efs.json");
    event["source"] = json!(source.path().to_str().expect("utf-8"));
    event["store"] = json!(store.url);
    let summary = completed(invoke(&store, &event).await);
    // The sample asks for a differential; with no full to build on it is full.
    assert_eq!(summary["type"], "full", "{summary}");
    assert_eq!(summary["entriesScanned"], 2, "{summary}");
    let restored = tempfile::tempdir().expect("temp dir");
    store.ok(&[
        "restore",
        "files",
        &backup_id(&summary),
        "--to",
        restored.path().to_str().expect("utf-8"),
    ]);
    assert_same_tree(&dir_contents(restored.path()), &dir_contents(source.path()));
}
