//! Hostile stores, through the real `lifeboat` binary: a tampered `config`
//! and a pack replaced by an object of another length get a clear error
//! naming the object, never a panic or an allocation of what the object
//! claims (FORMAT.md, "Config" and "Hostile input").

use std::collections::BTreeMap;
use std::process::Output;

use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;

use crate::support::{create_bucket, describe, dir_contents, put_objects, random_bytes, text_bytes, Store};

async fn get_object(store: &Store, key: &str) -> Vec<u8> {
    let object = store
        .s3
        .get_object()
        .bucket(&store.bucket)
        .key(key)
        .send()
        .await
        .expect("get object");
    object.body.collect().await.expect("read object").into_bytes().to_vec()
}

async fn put_object(store: &Store, key: &str, body: Vec<u8>) {
    store
        .s3
        .put_object()
        .bucket(&store.bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .expect("put object");
}

async fn config(store: &Store) -> Value {
    serde_json::from_slice(&get_object(store, "lifeboat/config").await).expect("config is JSON")
}

async fn put_config(store: &Store, config: &Value) {
    put_object(
        store,
        "lifeboat/config",
        serde_json::to_vec_pretty(config).expect("json"),
    )
    .await;
}

/// A source of two entries backed up once: (source, entries, backup id).
async fn one_backup(store: &Store) -> (String, BTreeMap<String, Vec<u8>>, String) {
    let data = create_bucket(&store.s3, "hostile-data").await;
    let entries = BTreeMap::from([
        ("app/readme.txt".to_owned(), text_bytes(40_000, "hostile-readme")),
        ("app/blob.bin".to_owned(), random_bytes(900_000, "hostile-blob")),
    ]);
    put_objects(&store.s3, &data, &entries).await;
    let source = format!("s3://{data}/app");
    let summary = store.json(&["backup", "files", &source]);
    assert_eq!(summary["status"], "completed", "{summary}");
    let id = summary["backupId"].as_str().expect("backupId").to_owned();
    (source, entries, id)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_refused(output: &Output, expected: &str) {
    assert!(!output.status.success(), "should have failed:\n{}", describe(output));
    let stderr = stderr(output);
    assert!(!stderr.contains("panicked"), "a panic:\n{stderr}");
    assert!(stderr.contains(expected), "stderr does not say {expected:?}:\n{stderr}");
}

#[tokio::test]
async fn a_tampered_config_chunker_size_is_refused_with_a_clear_error_not_a_panic() {
    let store = Store::new().await;
    let (source, _, _) = one_backup(&store).await;
    let original = config(&store).await;
    assert!(
        original["mac"].is_string(),
        "a new store's config carries a MAC: {original}"
    );

    // Out of range: before range checks, fastcdc's assertion panicked every
    // worker (or the chunker allocated 2 × 4 GiB).
    let mut huge = original.clone();
    huge["chunker"]["max"] = u32::MAX.into();
    put_config(&store, &huge).await;
    let output = store.run(&["backup", "files", &source]);
    assert_refused(
        &output,
        "chunker.max is 4294967295, outside the allowed 1024..=16777216",
    );
    assert_refused(&output, &format!("s3://{}/lifeboat/config is not valid", store.bucket));

    // In range but not what the store was created with: the MAC refuses it.
    let mut edited = original.clone();
    edited["chunker"]["min"] = (128 * 1024).into();
    put_config(&store, &edited).await;
    let output = store.run(&["backup", "files", &source]);
    assert_refused(&output, "its parameters fail authentication under the store's key");

    put_config(&store, &original).await;
    let summary = store.json(&["backup", "files", &source]);
    assert_eq!(summary["status"], "completed", "{summary}");
}

#[tokio::test]
async fn a_config_from_before_macs_still_opens_and_init_adds_its_mac() {
    let store = Store::new().await;
    let mut legacy = config(&store).await;
    let mac = legacy.as_object_mut().expect("an object").remove("mac").expect("a MAC");
    put_config(&store, &legacy).await;
    let (_, entries, id) = one_backup(&store).await;
    let dir = tempfile::tempdir().expect("temp dir");
    store.ok(&["restore", "files", &id, "--to", dir.path().to_str().expect("utf-8")]);
    assert_eq!(dir_contents(dir.path()).len(), entries.len());

    store.ok(&["init"]);
    let upgraded = config(&store).await;
    assert!(upgraded["mac"].is_string(), "init added no MAC: {upgraded}");
    // The same key, the same parameters: the same MAC bytes are not required
    // (a fresh nonce), but the rest of the config is untouched.
    let mut without = upgraded.clone();
    without.as_object_mut().expect("an object").remove("mac");
    assert_eq!(without, legacy);
    assert_ne!(upgraded["mac"], mac);
}

#[tokio::test]
async fn a_pack_replaced_by_a_longer_object_is_refused_by_its_announced_length() {
    let store = Store::new().await;
    let (_, entries, id) = one_backup(&store).await;
    let packs = store.packs().await;
    assert_eq!(packs.len(), 1, "{packs:?}");
    let pack = &packs[0];
    let genuine = get_object(&store, pack).await;
    // The genuine pack with 24 MiB appended: every blob still where the index
    // says, so only a length check finds it.
    let mut longer = genuine.clone();
    longer.resize(genuine.len() + (24 << 20), 0);
    put_object(&store, pack, longer).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("restored");
    let output = store.run(&["restore", "files", &id, "--to", target.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let expected = format!(
        "{pack} is {} bytes, but the index records {}: the object was altered, replaced or truncated",
        genuine.len() + (24 << 20),
        genuine.len()
    );
    assert_refused(&output, &expected);
    for path in entries.keys() {
        assert!(
            !target.join(path.trim_start_matches("app/")).exists(),
            "{path} restored"
        );
    }

    put_object(&store, pack, genuine).await;
    store.ok(&["restore", "files", &id, "--to", target.to_str().expect("utf-8")]);
    assert_eq!(dir_contents(&target).len(), entries.len());
}
