//! Garbage collection never deletes what a completed backup references:
//! whatever the store is called (store identity), whichever table is used
//! (the store's catalog binding), whatever index object was lost (refusal,
//! then `lifeboat index rebuild`), and not most of the store at once
//! without `--force`. Incrementals take their parent from their own store.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use aws_sdk_dynamodb::types::AttributeValue;
use lifeboat_e2e::{aws_env, dynamodb_client, unique, workspace_bin, REGION};
use serde_json::Value;

use crate::support::{
    assert_same_tree, create_bucket, describe, dir_contents, list_objects, put_objects, random_bytes, relative, Store,
};

/// `lifeboat ARGS` run from `cwd` against `store` (any spelling), the
/// catalog table and KMS key of `keys`.
fn lifeboat_in(cwd: &Path, keys: &Store, store: &str, args: &[&str]) -> Output {
    Command::new(workspace_bin("lifeboat"))
        .args(args)
        .args(["--output", "json"])
        .current_dir(cwd)
        .envs(aws_env())
        .env("LIFEBOAT_STORE", store)
        .env("LIFEBOAT_TABLE", &keys.table)
        .env("LIFEBOAT_KMS_KEY", &keys.kms_key)
        .env_remove("LIFEBOAT_OUTPUT")
        .output()
        .expect("run lifeboat")
}

fn ok_json(output: Output, what: &str) -> Value {
    assert!(output.status.success(), "{what} failed:\n{}", describe(&output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{what} printed no JSON ({e})"))
}

/// A directory source of a few files, larger than one pack together.
fn write_source(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for i in 0..3 {
        files.insert(format!("f{i}.bin"), random_bytes(7 << 20, &format!("dir-{i}")));
    }
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    files
}

/// Removes `storeId` from a backup's record, as a record written before
/// store identities looks.
async fn forget_store_id(table: &str, id: &str) {
    dynamodb_client()
        .await
        .update_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("backup#{id}")))
        .key("sk", AttributeValue::S("backup".into()))
        .update_expression("REMOVE storeId")
        .send()
        .await
        .expect("remove storeId");
}

/// Case 1 of issue 13: a backup into a directory store by its absolute
/// path, then `gc` twice from the parent directory with a relative
/// `--store`: GC must see the backup as this store's and delete nothing.
/// With `legacy`, the record has no `storeId` (written before store ids)
/// and is attributed by the store's canonical location.
async fn gc_through_a_relative_spelling(legacy: bool) {
    let keys = Store::new().await;
    let parent = tempfile::tempdir().unwrap();
    let store_dir = parent.path().join("st");
    std::fs::create_dir(&store_dir).unwrap();
    let absolute = store_dir.to_str().unwrap().to_owned();
    let source = tempfile::tempdir().unwrap();
    let files = write_source(source.path());
    ok_json(lifeboat_in(parent.path(), &keys, &absolute, &["init"]), "init");
    let backup = ok_json(
        lifeboat_in(
            parent.path(),
            &keys,
            &absolute,
            &["backup", "files", source.path().to_str().unwrap()],
        ),
        "backup",
    );
    let id = backup["backupId"].as_str().unwrap().to_owned();
    if legacy {
        forget_store_id(&keys.table, &id).await;
    }
    let before = dir_contents(&store_dir);
    for run in 0..2 {
        let report = ok_json(
            lifeboat_in(parent.path(), &keys, "st", &["gc", "--grace", "0s", "--force"]),
            &format!("gc run {run}"),
        );
        assert!(
            report["marked"].is_null(),
            "nothing of a live backup is garbage: {report}"
        );
    }
    let after = dir_contents(&store_dir);
    assert_eq!(
        before.keys().filter(|k| k.starts_with("data/")).collect::<Vec<_>>(),
        after.keys().filter(|k| k.starts_with("data/")).collect::<Vec<_>>(),
        "gc through another spelling of the store deleted packs"
    );
    let target = tempfile::tempdir().unwrap();
    ok_json(
        lifeboat_in(
            parent.path(),
            &keys,
            "st",
            &["restore", "files", &id, "--to", target.path().to_str().unwrap()],
        ),
        "restore",
    );
    assert_same_tree(&dir_contents(target.path()), &files);
}

#[tokio::test]
async fn gc_through_a_relative_store_path_keeps_live_packs() {
    gc_through_a_relative_spelling(false).await;
}

#[tokio::test]
async fn gc_through_a_relative_store_path_keeps_packs_of_backups_recorded_before_store_ids() {
    gc_through_a_relative_spelling(true).await;
}

/// An S3 store with one backup of `objects` under `app/`; returns the
/// store, the backup's id and the data.
async fn store_with_backup(seed: &str) -> (Store, String, BTreeMap<String, Vec<u8>>) {
    let store = Store::new().await;
    let source = create_bucket(&store.s3, "src").await;
    let mut data = BTreeMap::new();
    for i in 0..3 {
        data.insert(format!("app/{i}.bin"), random_bytes(7 << 20, &format!("{seed}-{i}")));
    }
    put_objects(&store.s3, &source, &data).await;
    let id = store.json(&["backup", "files", &format!("s3://{source}/app")])["backupId"]
        .as_str()
        .unwrap()
        .to_owned();
    (store, id, data)
}

async fn delete_objects_under(store: &Store, prefix: &str) -> Vec<String> {
    let keys: Vec<String> = store
        .objects()
        .await
        .into_keys()
        .filter(|k| k.starts_with(prefix))
        .collect();
    for key in &keys {
        store
            .s3
            .delete_object()
            .bucket(&store.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
    }
    keys
}

fn restore_matches(store: &Store, id: &str, expected: &BTreeMap<String, Vec<u8>>) {
    let target = tempfile::tempdir().unwrap();
    store.ok(&["restore", "files", id, "--to", target.path().to_str().unwrap()]);
    assert_same_tree(&dir_contents(target.path()), &relative(expected, "app/"));
}

/// Case 2 of issue 13: one lost index object made GC sweep the packs it
/// described as "packs no index lists", although a completed backup
/// references every chunk in them.
#[tokio::test]
async fn gc_after_a_lost_index_object_deletes_nothing_and_index_rebuild_repairs_it() {
    let (store, id, data) = store_with_backup("lost-index").await;
    let lost = delete_objects_under(&store, "lifeboat/index/").await;
    assert_eq!(lost.len(), 1, "one backup, one index object");
    let before = store.objects().await;
    for run in 0..2 {
        let output = store.run(&["gc", "--grace", "0s", "--force"]);
        assert!(
            !output.status.success(),
            "gc run {run} must refuse:\n{}",
            describe(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&id) && stderr.contains("lifeboat index rebuild"),
            "the refusal names the backup and the repair:\n{stderr}"
        );
        assert_eq!(store.objects().await, before, "gc run {run} wrote or deleted something");
    }

    let rebuilt = store.json(&["index", "rebuild"]);
    assert!(rebuilt["packsRecovered"].as_u64().unwrap() >= 1, "{rebuilt}");
    assert_eq!(rebuilt["damagedBackups"], serde_json::json!([]), "{rebuilt}");
    let again = store.json(&["index", "rebuild"]);
    assert_eq!(
        again["unindexedPacks"], 0,
        "a second rebuild finds nothing left: {again}"
    );

    for _ in 0..2 {
        store.json(&["gc", "--grace", "0s", "--force"]);
    }
    restore_matches(&store, &id, &data);
    let verify = store.json(&["verify", &id, "--deep"]);
    assert_eq!(verify["ok"], true, "{verify}");
}

#[tokio::test]
async fn index_rebuild_names_a_backup_whose_pack_is_gone_as_damaged() {
    let (store, id, _) = store_with_backup("lost-pack").await;
    delete_objects_under(&store, "lifeboat/index/").await;
    let packs = store.packs().await;
    assert!(packs.len() >= 2, "the backup spans packs: {packs:?}");
    store
        .s3
        .delete_object()
        .bucket(&store.bucket)
        .key(&packs[0])
        .send()
        .await
        .unwrap();
    let output = store.run(&["index", "rebuild", "--output", "json"]);
    assert_eq!(output.status.code(), Some(6), "{}", describe(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["damagedBackups"][0]["backupId"], id.as_str(), "{report}");
    assert!(report["damagedBackups"][0]["chunks"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(
        report["packsRecovered"].as_u64(),
        Some(packs.len() as u64 - 1),
        "{report}"
    );
    // GC still refuses: the backup's missing chunks are in no index.
    let refused = store.run(&["gc", "--grace", "0s", "--force"]);
    assert!(!refused.status.success(), "{}", describe(&refused));
}

/// What retention does to an expired backup: the record, then the manifest.
async fn expire(store: &Store, id: &str) {
    dynamodb_client()
        .await
        .update_item()
        .table_name(&store.table)
        .key("pk", AttributeValue::S(format!("backup#{id}")))
        .key("sk", AttributeValue::S("backup".into()))
        .update_expression("SET #s = :d")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":d", AttributeValue::S("deleted".into()))
        .send()
        .await
        .unwrap();
    store
        .s3
        .delete_object()
        .bucket(&store.bucket)
        .key(format!("lifeboat/manifests/{id}"))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn gc_refuses_to_sweep_most_of_the_store_in_one_go_without_force() {
    let (store, old, _) = store_with_backup("mostly-garbage").await;
    let source = create_bucket(&store.s3, "small").await;
    let mut small = BTreeMap::new();
    small.insert("app/small.bin".to_owned(), random_bytes(1 << 20, "small"));
    put_objects(&store.s3, &source, &small).await;
    let kept = store.json(&["backup", "files", &format!("s3://{source}/app")])["backupId"]
        .as_str()
        .unwrap()
        .to_owned();
    expire(&store, &old).await;
    let marked = store.json(&["gc", "--grace", "0s"]);
    assert!(marked["marked"]["list"].is_string(), "{marked}");
    let before = store.objects().await;
    let output = store.run(&["gc", "--grace", "0s"]);
    assert!(!output.status.success(), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("more than the 50%") && stderr.contains("--force"),
        "the refusal gives the numbers and the way on:\n{stderr}"
    );
    assert_eq!(store.objects().await, before, "a refused sweep changed the store");
    let swept = store.json(&["gc", "--grace", "0s", "--max-delete-share", "100"]);
    assert!(swept["swept"][0]["packsDeleted"].as_u64().unwrap() >= 1, "{swept}");
    let target = tempfile::tempdir().unwrap();
    store.ok(&["restore", "files", &kept, "--to", target.path().to_str().unwrap()]);
    assert_same_tree(&dir_contents(target.path()), &relative(&small, "app/"));
}

#[tokio::test]
async fn a_store_refuses_backups_and_gc_recorded_in_another_catalog_table() {
    let (store, _, _) = store_with_backup("binding").await;
    // Another catalog table that exists: without the binding, a backup
    // recorded there would be invisible to a collection reading the first.
    let other = unique("othercatalog");
    lifeboat::catalog::Catalog::new(dynamodb_client().await, &other, REGION)
        .create_table()
        .await
        .expect("create the other table");
    let source = create_bucket(&store.s3, "src2").await;
    put_objects(
        &store.s3,
        &source,
        &BTreeMap::from([("a.bin".to_owned(), random_bytes(1000, "a"))]),
    )
    .await;
    let url = format!("s3://{source}/");
    for args in [&["backup", "files", &url][..], &["gc", "--grace", "0s"][..]] {
        let output = store.run_with(args, &[("LIFEBOAT_TABLE", &other)]);
        assert!(!output.status.success(), "{args:?}: {}", describe(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&store.table) && stderr.contains(&other),
            "{args:?}: the refusal names both tables:\n{stderr}"
        );
    }
    // A store from before bindings (no `catalog` object) is bound by its
    // first backup, and refuses another table from then on.
    store
        .s3
        .delete_object()
        .bucket(&store.bucket)
        .key("lifeboat/catalog")
        .send()
        .await
        .unwrap();
    store.json(&["backup", "files", &url]);
    let binding = list_objects(&store.s3, &store.bucket, "lifeboat/catalog").await;
    let bound: Value = serde_json::from_slice(&binding["lifeboat/catalog"]).unwrap();
    assert_eq!(bound["table"], store.table.as_str(), "{bound}");
    let output = store.run_with(&["gc", "--grace", "0s"], &[("LIFEBOAT_TABLE", &other)]);
    assert!(!output.status.success(), "{}", describe(&output));
}

#[tokio::test]
async fn an_incremental_takes_its_parent_from_its_own_store_only() {
    let first = Store::new().await;
    // A second store recording into the same catalog table.
    let bucket = create_bucket(&first.s3, "store2").await;
    let second = Store {
        url: format!("s3://{bucket}/lifeboat"),
        bucket,
        table: first.table.clone(),
        kms_key: first.kms_key.clone(),
        s3: first.s3.clone(),
        kms: first.kms.clone(),
    };
    second.ok(&["init"]);
    let source = create_bucket(&first.s3, "src").await;
    let url = format!("s3://{source}/app");
    let mut data = BTreeMap::new();
    data.insert("app/a.bin".to_owned(), random_bytes(3 << 20, "parent-a"));
    put_objects(&first.s3, &source, &data).await;
    let one = first.json(&["backup", "files", &url, "--type", "incremental"]);
    // The same source into the other store: no parent there, so a full one.
    let two = second.json(&["backup", "files", &url, "--type", "incremental"]);
    assert!(two["parentBackup"].is_null(), "parent taken from another store: {two}");
    data.insert("app/b.bin".to_owned(), random_bytes(1 << 20, "parent-b"));
    put_objects(&first.s3, &source, &data).await;
    let three = first.json(&["backup", "files", &url, "--type", "incremental"]);
    assert_eq!(three["parentBackup"], one["backupId"], "{three}");
    let four = second.json(&["backup", "files", &url, "--type", "incremental"]);
    assert_eq!(four["parentBackup"], two["backupId"], "{four}");
    for (store, backup) in [(&first, &three), (&second, &four)] {
        let target = tempfile::tempdir().unwrap();
        let id = backup["backupId"].as_str().unwrap();
        store.ok(&["restore", "files", id, "--to", target.path().to_str().unwrap()]);
        assert_same_tree(&dir_contents(target.path()), &relative(&data, "app/"));
    }
}
