//! Continuous backup under a burst of S3 events (issue 13, numbered case 3):
//! six objects created together under one source give six concurrent
//! invocations of the real file-backup binary. Backups of a source run one
//! after the other under the source's lease, each on the newest completed
//! one, so the newest backup holds every object.

use std::collections::BTreeMap;

use lifeboat_e2e::{invoke_function, workspace_bin};
use serde_json::{json, Value};

use crate::support::{
    assert_same_tree, create_bucket, dir_contents, list_objects, put_objects, random_bytes, relative, sample_event,
    text_bytes, Store,
};

/// The function's environment as the stack sets it, with a plan file.
fn environment(store: &Store, plans: &str) -> Vec<(&'static str, String)> {
    vec![
        ("LIFEBOAT_TABLE", store.table.clone()),
        ("LIFEBOAT_KMS_KEY", store.kms_key.clone()),
        ("LIFEBOAT_STORE", store.url.clone()),
        ("LIFEBOAT_PLANS_TOML", plans.to_owned()),
    ]
}

/// S3's notification of one created object.
fn created(bucket: &str, key: &str, sequencer: &str) -> Value {
    let mut event = sample_event("s3-object-created.json");
    let object = &mut event["Records"][0]["s3"];
    object["bucket"]["name"] = json!(bucket);
    object["bucket"]["arn"] = json!(format!("arn:aws:s3:::{bucket}"));
    object["object"]["key"] = json!(key);
    object["object"]["sequencer"] = json!(sequencer);
    event
}

/// The one backup an answer lists.
fn only_backup(answer: &Value) -> &Value {
    let backups = answer["backups"]
        .as_array()
        .unwrap_or_else(|| panic!("no backups in {answer}"));
    assert_eq!(backups.len(), 1, "{answer}");
    &backups[0]
}

#[tokio::test]
async fn a_burst_of_six_object_created_events_leaves_every_object_in_the_newest_backup() {
    let store = Store::new().await;
    let data = create_bucket(&store.s3, "burst").await;
    let before = BTreeMap::from([
        ("app/config.json".to_owned(), br#"{"burst": true}"#.to_vec()),
        ("app/reports/q3.csv".to_owned(), text_bytes(120_000, "burst-q3")),
        ("app/media/logo.bin".to_owned(), random_bytes(400_000, "burst-logo")),
    ]);
    put_objects(&store.s3, &data, &before).await;
    let plans = format!(
        r#"[[plan]]
name = "burst"
schedule = "cron(0 2 * * ? *)"
sources = ["s3://{data}/app"]
retention = {{ keep_last = 30 }}
rpo = "26h"
tier = "standard"
"#
    );
    let env = environment(&store, &plans);
    let binary = workspace_bin("file-backup");

    // The plan's scheduled run makes the first backup.
    let run = json!({"plan": "burst", "scheduledTime": "2026-11-23T01:00:00Z"});
    let first = invoke_function(&binary, &run, &env)
        .await
        .expect("file-backup answers")
        .unwrap_or_else(|e| panic!("the scheduled backup failed: {e}"));
    assert_eq!(only_backup(&first)["status"], "completed", "{first}");

    // Six objects created together, and six notifications delivered at once.
    let burst: BTreeMap<String, Vec<u8>> = (0..6)
        .map(|i| {
            (
                format!("app/burst/object-{i}.bin"),
                random_bytes(300_000 + i * 1000, &format!("burst-{i}")),
            )
        })
        .collect();
    put_objects(&store.s3, &data, &burst).await;
    let mut invocations = tokio::task::JoinSet::new();
    for (i, key) in burst.keys().enumerate() {
        let event = created(&data, key, &format!("00{i:016X}"));
        let (binary, env) = (binary.clone(), env.clone());
        invocations.spawn(async move { invoke_function(&binary, &event, &env).await });
    }
    let mut made = Vec::new();
    while let Some(outcome) = invocations.join_next().await {
        let answer = outcome
            .expect("the invocation task ran")
            .expect("file-backup answers")
            .unwrap_or_else(|e| panic!("a backup of the burst failed: {e}"));
        let backup = only_backup(&answer);
        assert_eq!(backup["status"], "completed", "{answer}");
        assert_eq!(backup["duplicate"], false, "{answer}");
        made.push(backup.clone());
    }
    assert_eq!(made.len(), 6);

    // Serialised: each backup built on the one before, one chain, no fork.
    let parents: std::collections::BTreeSet<String> = made
        .iter()
        .map(|b| b["parentBackup"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        parents.len(),
        6,
        "two backups of the burst built on the same parent: {made:#?}"
    );

    // The newest completed backup restores every object, byte for byte.
    let listed = store.json(&["backups", "list"]);
    let newest = listed
        .as_array()
        .expect("backups list prints an array")
        .iter()
        .find(|r| r["status"] == "completed")
        .unwrap_or_else(|| panic!("no completed backup: {listed}"));
    assert_eq!(newest["entryCount"], (before.len() + burst.len()) as u64, "{newest}");
    let restored = tempfile::tempdir().expect("temp dir");
    store.ok(&[
        "restore",
        "files",
        newest["id"].as_str().expect("an id"),
        "--to",
        restored.path().to_str().expect("utf-8"),
    ]);
    let expected = relative(&list_objects(&store.s3, &data, "app/").await, "app/");
    assert_eq!(expected.len(), before.len() + burst.len());
    assert_same_tree(&dir_contents(restored.path()), &expected);
}
