//! The verify and retention Lambdas, their real binaries run under a local
//! Lambda Runtime API with the samples of `events/` pointed at test stores.

use std::collections::BTreeMap;

use lifeboat::times;
use lifeboat_e2e::{aws_env, invoke_function, workspace_bin, LocalInvoke};
use serde_json::Value;

use crate::gc_concurrency::Library;
use crate::support::{
    assert_same_tree, create_bucket, dir_contents, put_objects, random_bytes, relative, sample_event, Store,
};

async fn invoke(function: &str, store: &Store, event: &Value) -> Result<Value, Value> {
    invoke_function(
        &workspace_bin(function),
        event,
        &[("LIFEBOAT_TABLE", store.table.clone())],
    )
    .await
    .unwrap_or_else(|e| panic!("{function} did not answer: {e:#}"))
}

/// The scheduled sample with this test's store (and `detail` fields set).
fn scheduled(name: &str, store: &Store, fields: &[(&str, Value)]) -> Value {
    let mut event = sample_event(name);
    event["detail"]["store"] = Value::from(store.url.clone());
    for (field, value) in fields {
        event["detail"][*field] = value.clone();
    }
    event
}

#[tokio::test]
async fn the_verify_function_checks_every_sources_newest_backup_and_fails_on_damage() {
    let store = Store::new().await;
    let bucket = create_bucket(&store.s3, "src").await;
    let mut objects = BTreeMap::new();
    objects.insert("one/a.bin".to_owned(), random_bytes(300_000, "a"));
    objects.insert("two/b.bin".to_owned(), random_bytes(300_000, "b"));
    put_objects(&store.s3, &bucket, &objects).await;
    store.ok(&["backup", "files", &format!("s3://{bucket}/one")]);
    let packs_before = store.packs().await;
    store.ok(&["backup", "files", &format!("s3://{bucket}/two")]);
    let second_pack: Vec<String> = store
        .packs()
        .await
        .into_iter()
        .filter(|p| !packs_before.contains(p))
        .collect();
    assert_eq!(second_pack.len(), 1);

    let event = scheduled("verify-scheduled.json", &store, &[]);
    let healthy = invoke("verify", &store, &event)
        .await
        .unwrap_or_else(|e| panic!("verify failed: {e}"));
    assert_eq!(healthy["verified"], 2, "{healthy}");
    assert_eq!(healthy["damaged"], 0);

    store
        .s3
        .delete_object()
        .bucket(&store.bucket)
        .key(&second_pack[0])
        .send()
        .await
        .unwrap();
    let error = invoke("verify", &store, &event)
        .await
        .expect_err("a missing pack must fail the invocation");
    assert_eq!(error["errorType"], "Lifeboat.DamageFound", "{error}");
    assert!(
        error["errorMessage"].as_str().unwrap().contains(&second_pack[0]),
        "{error}"
    );
    let shown = store.ok(&["backups", "show", "latest", "--source", &format!("s3://{bucket}/two")]);
    assert!(
        shown.contains("quick failed"),
        "the failed verification is recorded:\n{shown}"
    );

    let bad = invoke(
        "verify",
        &store,
        &scheduled("verify-scheduled.json", &store, &[("mode", "thorough".into())]),
    )
    .await;
    assert_eq!(bad.expect_err("bad mode")["errorType"], "Lifeboat.BadEvent");
}

/// The verify function reads the store's packs, so it registers its run in
/// the catalog as a restore does (garbage collection's sweep waits while
/// the registration is live) and removes the registration at the end. It
/// used to run unregistered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verify_function_registers_its_run_while_it_reads() {
    let store = Store::new().await;
    let library = Library::open(&store).await;
    let bucket = create_bucket(&store.s3, "src").await;
    let objects: BTreeMap<String, Vec<u8>> = (0..4)
        .map(|i| (format!("one/{i}.bin"), random_bytes(1 << 20, &format!("reg-{i}"))))
        .collect();
    put_objects(&store.s3, &bucket, &objects).await;
    let id = store.json(&["backup", "files", &format!("s3://{bucket}/one")])["backupId"]
        .as_str()
        .unwrap()
        .to_owned();

    let event = scheduled("verify-scheduled.json", &store, &[("mode", "deep".into())]);
    let invocation = invoke("verify", &store, &event);
    tokio::pin!(invocation);
    let mut seen = None;
    let outcome = loop {
        tokio::select! {
            outcome = &mut invocation => break outcome,
            live = library.catalog.live_restores(library.store_id(), times::now()) => {
                if seen.is_none() {
                    seen = live.unwrap().into_iter().next();
                }
            }
        }
    };
    let answer = outcome.unwrap_or_else(|e| panic!("verify failed: {e}"));
    assert_eq!(answer["verified"], 1, "{answer}");
    let registration = seen.expect("the verify function ran without registering itself");
    assert_eq!(registration.backup_id.as_deref(), Some(id.as_str()), "{registration:?}");
    assert!(registration.owner.starts_with("lambda:"), "{registration:?}");
    let live = library
        .catalog
        .live_restores(library.store_id(), times::now())
        .await
        .unwrap();
    assert_eq!(live.len(), 0, "a finished verification left its registration: {live:?}");
}

/// The verify function in sample mode (`events/verify-sample.json`): two
/// runs of 50% read every pack once; each run writes the dashboard's
/// verification metrics as Embedded Metric Format lines in its log.
#[tokio::test]
async fn the_verify_function_samples_the_store_and_writes_its_metrics() {
    let store = Store::new().await;
    let bucket = create_bucket(&store.s3, "src").await;
    for name in ["one", "two"] {
        let objects = BTreeMap::from([(format!("{name}/x.bin"), random_bytes(200_000, name))]);
        put_objects(&store.s3, &bucket, &objects).await;
        store.ok(&["backup", "files", &format!("s3://{bucket}/{name}")]);
    }
    let event = scheduled("verify-sample.json", &store, &[("samplePercent", 50.into())]);
    let logs = tempfile::tempdir().unwrap();
    let mut read = Vec::new();
    for run in 0..2 {
        let log = logs.path().join(format!("run-{run}.log"));
        let mut invoke = LocalInvoke::new(&workspace_bin("verify")).log_file(&log);
        for (key, value) in aws_env() {
            invoke = invoke.env(key, value);
        }
        let answer = invoke
            .env("LIFEBOAT_TABLE", store.table.clone())
            .run(&event)
            .await
            .expect("verify answered")
            .unwrap_or_else(|e| panic!("sample failed: {e}"));
        let sample = &answer["sample"];
        assert_eq!(sample["ok"], true, "{answer:#}");
        assert_eq!(sample["packsChecked"], 1, "{answer:#}");
        assert_eq!(sample["packsInStore"], 2, "{answer:#}");
        read.push(sample["firstPack"].as_str().unwrap().to_owned());

        let text = std::fs::read_to_string(&log).unwrap();
        let metrics: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("_aws").is_some())
            .collect();
        assert_eq!(metrics.len(), 1, "one metric line per run:\n{text}");
        let line = &metrics[0];
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Lifeboat", "{line}");
        assert_eq!(line["VerificationsPassed"], 1.0, "{line}");
        assert_eq!(line["VerificationsFailed"], 0.0, "{line}");
    }
    read.sort();
    read.dedup();
    assert_eq!(read.len(), 2, "the two runs read different packs: {read:?}");
}

#[tokio::test]
async fn the_retention_function_expires_by_policy_then_collects_the_garbage() {
    let store = Store::new().await;
    let bucket = create_bucket(&store.s3, "src").await;
    let source = format!("s3://{bucket}/app");
    let mut ids = Vec::new();
    let mut objects = BTreeMap::new();
    for round in 0..4 {
        objects.insert(
            "app/data.bin".to_owned(),
            random_bytes(2 << 20, &format!("round-{round}")),
        );
        put_objects(&store.s3, &bucket, &objects).await;
        ids.push(
            store.json(&["backup", "files", &source])["backupId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let policy: Value = serde_json::json!({"keepLast": 2});
    let fields = [
        ("source", Value::from(format!("{source}/"))),
        ("policy", policy),
        ("graceMinutes", 0.into()),
    ];

    let dry = invoke(
        "retention",
        &store,
        &scheduled(
            "retention-scheduled.json",
            &store,
            &[fields[0].clone(), fields[1].clone(), ("dryRun", true.into())],
        ),
    )
    .await;
    let dry = dry.unwrap_or_else(|e| panic!("dry run failed: {e}"));
    assert_eq!(dry["plan"]["delete"].as_array().unwrap().len(), 2, "{dry}");
    let listed = store.json(&["backups", "list"]);
    assert!(
        listed.as_array().unwrap().iter().all(|r| r["status"] == "completed"),
        "a dry run changes nothing"
    );

    let event = scheduled("retention-scheduled.json", &store, &fields);
    let applied = invoke("retention", &store, &event)
        .await
        .unwrap_or_else(|e| panic!("retention failed: {e}"));
    assert_eq!(applied["expiry"]["deleted"].as_array().unwrap().len(), 2, "{applied}");
    assert!(applied["garbage"]["marked"]["list"].is_string(), "{applied}");
    let statuses: BTreeMap<String, String> = store
        .json(&["backups", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            statuses[id],
            if i < 2 { "deleted" } else { "completed" },
            "{statuses:?}"
        );
    }

    let before = store.stored_bytes().await;
    let swept = invoke("retention", &store, &event)
        .await
        .unwrap_or_else(|e| panic!("retention failed: {e}"));
    assert_eq!(swept["garbage"]["swept"].as_array().unwrap().len(), 1, "{swept}");
    assert!(
        before - store.stored_bytes().await >= 4 << 20,
        "two expired 2 MiB backups freed"
    );
    let target = tempfile::tempdir().unwrap();
    store.ok(&["restore", "files", &ids[3], "--to", target.path().to_str().unwrap()]);
    assert_same_tree(&dir_contents(target.path()), &relative(&objects, "app/"));

    let no_rule = invoke(
        "retention",
        &store,
        &scheduled("retention-scheduled.json", &store, &[("policy", serde_json::json!({}))]),
    )
    .await;
    assert!(no_rule.expect_err("no rule")["errorMessage"]
        .as_str()
        .unwrap()
        .contains("no rule"));
}
