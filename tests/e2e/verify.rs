//! `lifeboat verify`, through the real binary: a healthy store verifies OK in
//! both modes; each kind of damage, on a store of its own, is found by the
//! mode that can see it, named with the object and the entries it affects,
//! and exits 6; every verification is recorded in the catalog.
//!
//! Each fixture is one backup of four entries, all in one pack. Which entry a
//! flipped byte hits is arranged with the library: the store's own keys open
//! the manifest and the index, which say where `big.bin`'s first blob lies.

use std::collections::BTreeMap;
use std::process::Output;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::primitives::ByteStream;
use lifeboat::crypto::{Keys, KEY_MATERIAL_LEN};
use lifeboat::keys::Kms;
use lifeboat::repo::Repository;
use lifeboat::storage::Storage;
use lifeboat_e2e::{dynamodb_client, REGION};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{create_bucket, describe, put_objects, random_bytes, text_bytes, Store};

/// Entries with chunks (every entry but the empty one).
const WITH_CHUNKS: [&str; 3] = ["big.bin", "notes.txt", "small.bin"];

/// A store holding one backup of four entries.
struct OneBackup {
    store: Store,
    source: String,
    id: String,
    /// The key (in the store bucket) of the backup's only pack.
    pack: String,
}

impl OneBackup {
    async fn new() -> Self {
        let store = Store::new().await;
        let data = create_bucket(&store.s3, "verify-data").await;
        let entries = BTreeMap::from([
            ("app/big.bin".to_owned(), random_bytes(2_500_000, "verify-big")),
            ("app/small.bin".to_owned(), random_bytes(600_000, "verify-small")),
            ("app/notes.txt".to_owned(), text_bytes(40_000, "verify-notes")),
            ("app/empty.txt".to_owned(), Vec::new()),
        ]);
        put_objects(&store.s3, &data, &entries).await;
        let source = format!("s3://{data}/app");
        let summary = store.json(&["backup", "files", &source]);
        assert_eq!(summary["status"], "completed", "{summary}");
        let id = summary["backupId"].as_str().expect("backupId").to_owned();
        let packs = store.packs().await;
        assert_eq!(packs.len(), 1, "the backup should write one pack: {packs:?}");
        Self {
            pack: packs[0].clone(),
            store,
            source,
            id,
        }
    }

    /// The store, opened with its own keys through the library.
    async fn repo(&self) -> Repository {
        let storage = Storage::s3(self.store.s3.clone(), &self.store.bucket, REGION);
        let kms = Kms::new(self.store.kms.clone(), REGION);
        Repository::open(storage, "lifeboat", &kms, None)
            .await
            .expect("open the store with its keys")
    }

    async fn get(&self, key: &str) -> Vec<u8> {
        let object = self
            .store
            .s3
            .get_object()
            .bucket(&self.store.bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
        object.body.collect().await.expect("read object").into_bytes().to_vec()
    }

    async fn put(&self, key: &str, body: Vec<u8>) {
        self.store
            .s3
            .put_object()
            .bucket(&self.store.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }

    async fn delete(&self, key: &str) {
        self.store
            .s3
            .delete_object()
            .bucket(&self.store.bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("delete {key}: {e:?}"));
    }

    /// Runs `lifeboat verify ID [EXTRA] --output json`: (exit code, report).
    fn verify(&self, extra: &[&str]) -> (Option<i32>, Value, Output) {
        let mut args = vec!["verify", self.id.as_str()];
        args.extend(extra);
        args.extend(["--output", "json"]);
        let output = self.store.run(&args);
        let report = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("verify printed no JSON report ({e}):\n{}", describe(&output)));
        (output.status.code(), report, output)
    }

    /// The verification items of the backup in the catalog table, oldest first.
    async fn verification_items(&self) -> Vec<std::collections::HashMap<String, AttributeValue>> {
        let output = dynamodb_client()
            .await
            .query()
            .table_name(&self.store.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :verify)")
            .expression_attribute_values(":pk", AttributeValue::S(format!("backup#{}", self.id)))
            .expression_attribute_values(":verify", AttributeValue::S("verify#".into()))
            .send()
            .await
            .expect("query the catalog table");
        output.items().to_vec()
    }
}

/// Asserts verification found exactly one problem, of `kind`, naming
/// `object` (a key of the store bucket) and exactly the `affected` entries;
/// returns the problem.
fn assert_one_problem(
    exit: Option<i32>,
    report: &Value,
    output: &Output,
    kind: &str,
    object: &str,
    affected: &[&str],
) -> Value {
    assert_eq!(exit, Some(6), "damage must exit 6:\n{}", describe(output));
    assert_eq!(report["ok"], false, "{report}");
    let problems = report["problems"].as_array().expect("problems array");
    assert_eq!(problems.len(), 1, "expected one problem: {report:#}");
    let problem = &problems[0];
    assert_eq!(problem["kind"], kind, "{problem:#}");
    let named = problem["object"].as_str().unwrap_or_default();
    assert!(
        named.ends_with(object),
        "the problem names {named}, not {object}: {problem:#}"
    );
    let entries: Vec<&str> = problem["entries"]
        .as_array()
        .expect("entries array")
        .iter()
        .map(|e| e.as_str().unwrap_or_default())
        .collect();
    assert_eq!(entries, affected, "{problem:#}");
    problem.clone()
}

fn assert_healthy(exit: Option<i32>, report: &Value, output: &Output, mode: &str) {
    assert_eq!(exit, Some(0), "{}", describe(output));
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["mode"], mode, "{report:#}");
    assert_eq!(report["problems"].as_array().map(Vec::len), Some(0), "{report:#}");
}

#[tokio::test]
async fn a_healthy_store_verifies_ok_in_both_modes_and_each_run_is_recorded() {
    let fixture = OneBackup::new().await;
    let shown = fixture.store.ok(&["backups", "show", &fixture.id]);
    assert!(shown.contains("last verified    never"), "{shown}");
    let (exit, quick, output) = fixture.verify(&[]);
    assert_healthy(exit, &quick, &output, "quick");
    let (exit, deep, output) = fixture.verify(&["--deep"]);
    assert_healthy(exit, &deep, &output, "deep");
    for report in [&quick, &deep] {
        let checked = &report["checked"];
        assert_eq!(checked["entries"], 4, "{report:#}");
        assert_eq!(checked["packs"], 1, "{report:#}");
        assert_eq!(checked["indexObjects"], 1, "{report:#}");
        assert_eq!(checked["bytes"], 2_500_000 + 600_000 + 40_000, "{report:#}");
        assert_eq!(report["checksumValid"], true, "{report:#}");
    }

    // Text, and `latest`.
    let text = fixture
        .store
        .ok(&["verify", "latest", "--source", &fixture.source, "--deep"]);
    assert!(
        text.contains(&format!("Backup {} verified OK (deep)", fixture.id)),
        "{text}"
    );

    let items = fixture.verification_items().await;
    assert_eq!(items.len(), 3, "one catalog item per verification: {items:#?}");
    let types: Vec<&str> = items.iter().map(|i| i["type"].as_s().expect("type").as_str()).collect();
    assert_eq!(types.iter().filter(|t| **t == "quick").count(), 1, "{types:?}");
    assert_eq!(types.iter().filter(|t| **t == "deep").count(), 2, "{types:?}");
    for item in &items {
        assert_eq!(item["status"].as_s().expect("status"), "passed", "{item:#?}");
        assert_eq!(item["checksumValid"].as_bool().ok(), Some(&true), "{item:#?}");
        assert!(
            matches!(item["restoreTestPassed"], AttributeValue::Null(true)),
            "{item:#?}"
        );
        assert_eq!(item["backupId"].as_s().expect("backupId"), &fixture.id);
        for field in ["startedAt", "completedAt"] {
            assert!(item.contains_key(field), "{field} missing: {item:#?}");
        }
        assert!(!item.contains_key("error"), "{item:#?}");
        assert!(item.keys().all(|k| !k.starts_with("gsi")), "{item:#?}");
    }
    let shown = fixture.store.ok(&["backups", "show", &fixture.id]);
    assert!(shown.contains("last verified    deep passed, "), "{shown}");
    // Verification items stay out of the backup listings.
    let listed = fixture.store.json(&["backups", "list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed:#}");
    let listed = fixture.store.json(&["backups", "list", "--source", &fixture.source]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed:#}");
}

#[tokio::test]
async fn a_flipped_byte_in_a_pack_passes_quick_and_fails_deep_naming_the_pack_and_entry() {
    let fixture = OneBackup::new().await;
    // The middle of big.bin's first blob, found with the store's keys.
    let repo = fixture.repo().await;
    let manifest = repo.get_manifest(&fixture.id, None).await.expect("manifest");
    let index = repo.load_index().await.expect("index");
    let big = manifest.entries.iter().find(|e| e.path == "big.bin").expect("big.bin");
    let location = index.chunks[&big.chunks[0]];
    let mut pack = fixture.get(&fixture.pack).await;
    pack[(location.offset + location.length / 2) as usize] ^= 0x01;
    fixture.put(&fixture.pack, pack).await;

    // Same size, so quick mode cannot see it.
    let (exit, quick, output) = fixture.verify(&[]);
    assert_healthy(exit, &quick, &output, "quick");

    let (exit, deep, output) = fixture.verify(&["--deep"]);
    let problem = assert_one_problem(
        exit,
        &deep,
        &output,
        "failed_authentication",
        &fixture.pack,
        &["big.bin"],
    );
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("not its name"),
        "the pack's wrong SHA-256 is not mentioned: {detail}"
    );
    assert_eq!(deep["checksumValid"], false, "{deep:#}");

    let text = fixture.store.run(&["verify", &fixture.id, "--deep"]);
    assert_eq!(text.status.code(), Some(6), "{}", describe(&text));
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains(&fixture.pack) && stdout.contains("big.bin"), "{stdout}");
    assert!(
        !stdout.contains("small.bin") && !stdout.contains("notes.txt"),
        "{stdout}"
    );
    assert!(stdout.contains("1 problem found (deep)"), "{stdout}");

    let items = fixture.verification_items().await;
    let failed: Vec<_> = items
        .iter()
        .filter(|i| i["status"].as_s().map(String::as_str) == Ok("failed"))
        .collect();
    assert_eq!(failed.len(), 2, "{items:#?}");
    for item in failed {
        assert_eq!(item["type"].as_s().expect("type"), "deep");
        let error = item["error"].as_s().expect("a failed verification records its error");
        assert!(error.contains(&fixture.pack), "{error}");
    }
}

#[tokio::test]
async fn a_truncated_pack_is_found_by_quick_verification_as_the_wrong_size() {
    let fixture = OneBackup::new().await;
    let pack = fixture.get(&fixture.pack).await;
    fixture.put(&fixture.pack, pack[..64 * 1024].to_vec()).await;
    for mode in [&[][..], &["--deep"][..]] {
        let (exit, report, output) = fixture.verify(mode);
        let problem = assert_one_problem(exit, &report, &output, "wrong_size", &fixture.pack, &WITH_CHUNKS);
        assert!(
            problem["detail"].as_str().unwrap_or_default().contains("65536 bytes"),
            "{problem:#}"
        );
    }
}

#[tokio::test]
async fn a_missing_pack_is_found_by_quick_verification() {
    let fixture = OneBackup::new().await;
    fixture.delete(&fixture.pack).await;
    let (exit, report, output) = fixture.verify(&[]);
    assert_one_problem(exit, &report, &output, "missing", &fixture.pack, &WITH_CHUNKS);
}

#[tokio::test]
async fn a_missing_index_object_leaves_the_chunks_not_in_the_index() {
    let fixture = OneBackup::new().await;
    let index_objects: Vec<String> = fixture
        .store
        .objects()
        .await
        .into_keys()
        .filter(|k| k.starts_with("lifeboat/index/"))
        .collect();
    assert_eq!(index_objects.len(), 1, "{index_objects:?}");
    fixture.delete(&index_objects[0]).await;
    let (exit, report, output) = fixture.verify(&[]);
    assert_one_problem(exit, &report, &output, "not_in_index", "lifeboat/index/", &WITH_CHUNKS);
    assert_eq!(report["checked"]["indexObjects"], 0, "{report:#}");
}

#[tokio::test]
async fn a_manifest_encrypted_under_another_key_is_named_as_such() {
    let fixture = OneBackup::new().await;
    let repo = fixture.repo().await;
    let manifest = repo.get_manifest(&fixture.id, None).await.expect("manifest");
    let other = Keys::from_material(&[0x5a; KEY_MATERIAL_LEN]).expect("keys");
    let sealed = manifest.seal(&other).expect("seal");
    let checksum = hex::encode(Sha256::digest(&sealed));
    let key = format!("lifeboat/manifests/{}", fixture.id);
    fixture.put(&key, sealed).await;
    // The catalog agrees with the object: the decryption is what fails.
    dynamodb_client()
        .await
        .update_item()
        .table_name(&fixture.store.table)
        .key("pk", AttributeValue::S(format!("backup#{}", fixture.id)))
        .key("sk", AttributeValue::S("backup".into()))
        .update_expression("SET checksum = :c")
        .expression_attribute_values(":c", AttributeValue::S(checksum))
        .send()
        .await
        .expect("update the catalog record's checksum");

    let (exit, report, output) = fixture.verify(&[]);
    let problem = assert_one_problem(exit, &report, &output, "foreign_key", &key, &[]);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("encrypted under a key this store does not have"),
        "{problem:#}"
    );
    assert_eq!(report["checksumValid"], true, "{report:#}");
    let text = fixture.store.run(&["verify", &fixture.id]);
    assert_eq!(text.status.code(), Some(6), "{}", describe(&text));
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("encrypted under a key this store does not have"),
        "{}",
        describe(&text)
    );
}

#[tokio::test]
async fn an_entry_whose_chunks_do_not_hash_to_its_checksum_fails_deep_verification_only() {
    let fixture = OneBackup::new().await;
    let repo = fixture.repo().await;
    let mut manifest = repo.get_manifest(&fixture.id, None).await.expect("manifest");
    let entry = manifest
        .entries
        .iter_mut()
        .find(|e| e.path == "notes.txt")
        .expect("notes.txt");
    entry.sha256 = "00".repeat(32);
    // Sealed with the store's own keys and recorded in the catalog: only
    // reading the entry back can tell.
    let checksum = repo.put_manifest(&manifest).await.expect("store the manifest");
    dynamodb_client()
        .await
        .update_item()
        .table_name(&fixture.store.table)
        .key("pk", AttributeValue::S(format!("backup#{}", fixture.id)))
        .key("sk", AttributeValue::S("backup".into()))
        .update_expression("SET checksum = :c")
        .expression_attribute_values(":c", AttributeValue::S(checksum))
        .send()
        .await
        .expect("update the catalog record's checksum");

    let (exit, quick, output) = fixture.verify(&[]);
    assert_healthy(exit, &quick, &output, "quick");
    let (exit, deep, output) = fixture.verify(&["--deep"]);
    let key = format!("lifeboat/manifests/{}", fixture.id);
    let problem = assert_one_problem(exit, &deep, &output, "checksum_mismatch", &key, &["notes.txt"]);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(&"00".repeat(32)),
        "{problem:#}"
    );
    assert_eq!(deep["checksumValid"], false, "{deep:#}");
}

/// `lifeboat verify --sample`: repeated runs walk the whole store; a flipped
/// byte is found by the run whose share holds its pack, named with the
/// backups and entries it affects, and recorded on the affected backup.
#[tokio::test]
async fn sample_verification_walks_the_store_and_names_the_backups_damage_affects() {
    let store = Store::new().await;
    let data = create_bucket(&store.s3, "sample-data").await;
    // Four backups of four sources: one pack each.
    let mut backups = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let entries = BTreeMap::from([(
            format!("{name}/file-{name}.bin"),
            random_bytes(300_000, &format!("sample-{name}")),
        )]);
        put_objects(&store.s3, &data, &entries).await;
        let before = store.packs().await;
        let summary = store.json(&["backup", "files", &format!("s3://{data}/{name}")]);
        assert_eq!(summary["status"], "completed", "{summary}");
        let new: Vec<String> = store
            .packs()
            .await
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        assert_eq!(new.len(), 1, "each backup writes one pack: {new:?}");
        backups.push((
            summary["backupId"].as_str().expect("backupId").to_owned(),
            new[0].clone(),
        ));
    }

    let sample = |expect_exit: i32| {
        let output = store.run(&["verify", "--sample", "50", "--output", "json"]);
        assert_eq!(output.status.code(), Some(expect_exit), "{}", describe(&output));
        serde_json::from_slice::<Value>(&output.stdout)
            .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{}", describe(&output)))
    };
    // Healthy: two runs of 50% read every pack once; no false alarm.
    let first = sample(0);
    let second = sample(0);
    for report in [&first, &second] {
        assert_eq!(report["ok"], true, "{report:#}");
        assert_eq!(report["packsInStore"], 4, "{report:#}");
        assert_eq!(report["packsChecked"], 2, "{report:#}");
    }
    assert_eq!(first["walkCompleted"], false, "{first:#}");
    assert_eq!(second["walkCompleted"], true, "{second:#}");
    assert_eq!(second["passes"], 1, "{second:#}");
    assert!(
        first["lastPack"].as_str() < second["firstPack"].as_str(),
        "the second run continues after the first: {first:#} {second:#}"
    );

    // Damage in backup c's pack: flip a byte in the middle of its first blob.
    let (damaged_id, damaged_pack) = backups[2].clone();
    let repo = {
        let storage = Storage::s3(store.s3.clone(), &store.bucket, REGION);
        let kms = Kms::new(store.kms.clone(), REGION);
        Repository::open(storage, "lifeboat", &kms, None)
            .await
            .expect("open the store")
    };
    let index = repo.load_index().await.expect("index");
    let manifest = repo.get_manifest(&damaged_id, None).await.expect("manifest");
    let location = index.chunks[&manifest.entries[0].chunks[0]];
    let object = store
        .s3
        .get_object()
        .bucket(&store.bucket)
        .key(&damaged_pack)
        .send()
        .await
        .expect("get the pack");
    let mut bytes = object
        .body
        .collect()
        .await
        .expect("read the pack")
        .into_bytes()
        .to_vec();
    bytes[(location.offset + location.length / 2) as usize] ^= 0x01;
    store
        .s3
        .put_object()
        .bucket(&store.bucket)
        .key(&damaged_pack)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .expect("put the damaged pack");

    // Two more runs cover the store again: exactly one finds the damage.
    let reports = [
        store.run(&["verify", "--sample", "50", "--output", "json"]),
        store.run(&["verify", "--sample", "50", "--output", "json"]),
    ];
    let failing: Vec<Value> = reports
        .iter()
        .filter(|o| o.status.code() != Some(0))
        .map(|o| {
            assert_eq!(o.status.code(), Some(6), "{}", describe(o));
            serde_json::from_slice(&o.stdout).expect("JSON report")
        })
        .collect();
    assert_eq!(failing.len(), 1, "one of two runs holds the damaged pack");
    let report = &failing[0];
    let problems = report["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 1, "{report:#}");
    assert_eq!(problems[0]["kind"], "failed_authentication", "{report:#}");
    assert!(
        problems[0]["object"]
            .as_str()
            .unwrap_or_default()
            .ends_with(&damaged_pack),
        "{report:#}"
    );
    assert_eq!(
        problems[0]["entries"],
        serde_json::json!([format!("{damaged_id}:file-c.bin")]),
        "{report:#}"
    );
    assert_eq!(report["affectedBackups"], serde_json::json!([damaged_id]), "{report:#}");

    // Recorded on the affected backup, as a failed sample verification.
    let items = dynamodb_client()
        .await
        .query()
        .table_name(&store.table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :verify)")
        .expression_attribute_values(":pk", AttributeValue::S(format!("backup#{damaged_id}")))
        .expression_attribute_values(":verify", AttributeValue::S("verify#".into()))
        .send()
        .await
        .expect("query the catalog table")
        .items()
        .to_vec();
    assert_eq!(items.len(), 1, "{items:#?}");
    assert_eq!(items[0]["type"].as_s().expect("type"), "sample");
    assert_eq!(items[0]["status"].as_s().expect("status"), "failed");
    assert!(items[0]["error"].as_s().expect("error").contains(&damaged_pack));
}
