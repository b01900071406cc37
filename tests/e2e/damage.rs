//! What the "must show" list asks of damage and misuse, through the
//! real `lifeboat` binary: damaged packs make a restore partial (exit 3) and
//! never leave a half-restored entry; wrong, disabled and re-wrapped KMS keys;
//! bad input that must fail with a message saying what is wrong.
//!
//! Which entries a damaged pack affects is arranged, not decrypted: a first
//! backup stores the `keep/` entries, a second (incremental) backup adds the
//! `new/` entries, so the one pack the second backup writes holds exactly the
//! chunks of the `new/` entries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;

use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;

use crate::support::{
    assert_same_tree, create_bucket, describe, dir_contents, list_objects, new_kms_key, put_objects, random_bytes,
    relative, text_bytes, Store,
};

const SOURCE_PREFIX: &str = "app/";

/// Key → (size, ETag) of every object under `prefix`, without downloading them.
async fn listing(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> BTreeMap<String, (i64, String)> {
    let mut out = BTreeMap::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
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

async fn get_object(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get object");
    object.body.collect().await.expect("read object").into_bytes().to_vec()
}

async fn put_object(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .expect("put object");
}

fn with_prefix(objects: &BTreeMap<String, Vec<u8>>, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    objects
        .iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v.clone()))
        .collect()
}

/// The key id of a KMS key ARN (moto's DisableKey and EnableKey accept only ids).
fn key_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn id_of(summary: &Value) -> String {
    summary["backupId"]
        .as_str()
        .unwrap_or_else(|| panic!("no backupId in {summary}"))
        .to_owned()
}

/// Entries the first backup stores (paths relative to the source).
fn kept_entries() -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        ("keep/a1.bin".to_owned(), random_bytes(1_500_000, "keep-a1")),
        ("keep/a2.txt".to_owned(), text_bytes(300_000, "keep-a2")),
        ("keep/sub/a3.bin".to_owned(), random_bytes(700_000, "keep-a3")),
        ("keep/empty.txt".to_owned(), Vec::new()),
    ])
}

/// A store holding two backups of one source: the first of `kept_entries`,
/// the second (incremental) adding `added`, whose chunks are all in the one
/// pack the second backup wrote.
struct TwoBackups {
    store: Store,
    source: String,
    second: String,
    kept: BTreeMap<String, Vec<u8>>,
    added: BTreeMap<String, Vec<u8>>,
    /// The key (in the store bucket) of the only pack the second backup wrote.
    pack: String,
}

impl TwoBackups {
    async fn new(added: BTreeMap<String, Vec<u8>>) -> Self {
        let store = Store::new().await;
        let data = create_bucket(&store.s3, "damage-data").await;
        let source = format!("s3://{data}/{}", SOURCE_PREFIX.trim_end_matches('/'));
        let kept = kept_entries();
        put_objects(&store.s3, &data, &with_prefix(&kept, SOURCE_PREFIX)).await;
        let first = store.json(&["backup", "files", &source]);
        assert_eq!(first["status"], "completed", "{first}");

        let packs_before: BTreeSet<String> = listing(&store.s3, &store.bucket, "lifeboat/data/")
            .await
            .into_keys()
            .collect();
        assert!(!packs_before.is_empty(), "the first backup wrote no pack");
        put_objects(&store.s3, &data, &with_prefix(&added, SOURCE_PREFIX)).await;
        let second = store.json(&["backup", "files", &source, "--type", "incremental"]);
        assert_eq!(second["status"], "completed", "{second}");
        assert_eq!(second["parentBackup"], first["backupId"], "{second}");
        assert_eq!(second["entriesChanged"], added.len() as u64, "{second}");
        let new_packs: Vec<String> = listing(&store.s3, &store.bucket, "lifeboat/data/")
            .await
            .into_keys()
            .filter(|key| !packs_before.contains(key))
            .collect();
        assert_eq!(
            new_packs.len(),
            1,
            "the second backup should write one pack (less than 16 MiB of new data): {new_packs:?}"
        );
        let pack = new_packs[0].clone();
        Self {
            store,
            source,
            second: id_of(&second),
            kept,
            added,
            pack,
        }
    }

    /// Every entry of the second backup.
    fn all(&self) -> BTreeMap<String, Vec<u8>> {
        self.kept
            .iter()
            .chain(&self.added)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    async fn pack_bytes(&self) -> Vec<u8> {
        get_object(&self.store.s3, &self.store.bucket, &self.pack).await
    }

    /// Flips one byte in the middle of the pack's blobs (not its header).
    async fn flip_byte_at(&self, pick: impl FnOnce(usize) -> usize) {
        let mut pack = self.pack_bytes().await;
        let end = blobs_end(&pack);
        let at = pick(end);
        assert!(at < end, "byte {at} is not in the blob region 0..{end}");
        pack[at] ^= 0xff;
        put_object(&self.store.s3, &self.store.bucket, &self.pack, pack).await;
    }
}

/// Where a pack's blobs end and its header begins (FORMAT.md, "Pack": the
/// last 4 bytes are the header's length, little-endian, in the clear).
fn blobs_end(pack: &[u8]) -> usize {
    let n = pack.len();
    assert!(n > 4, "pack of {n} bytes");
    let header = u32::from_le_bytes(pack[n - 4..].try_into().expect("4 bytes")) as usize;
    assert!(
        header + 4 < n,
        "header length {header} does not fit a pack of {n} bytes"
    );
    n - 4 - header
}

/// Asserts a restore to `dir` failed with exit 3 naming exactly the
/// `affected` entries and the pack, left no temporary file and no file of an
/// affected entry, and restored every other entry byte-identical.
fn assert_partial_restore(
    output: &Output,
    dir: &Path,
    pack: &str,
    all: &BTreeMap<String, Vec<u8>>,
    affected: &BTreeSet<&str>,
) {
    assert_eq!(
        output.status.code(),
        Some(3),
        "a damaged pack must make the restore partial:\n{}",
        describe(output)
    );
    let stderr = stderr(output);
    assert!(
        stderr.contains(pack),
        "stderr does not name the damaged pack {pack}:\n{stderr}"
    );
    for path in all.keys() {
        let named = stderr.contains(path.as_str());
        if affected.contains(path.as_str()) {
            assert!(named, "stderr does not name the affected entry {path}:\n{stderr}");
        } else {
            assert!(
                !named,
                "stderr names {path}, whose chunks are not in the damaged pack:\n{stderr}"
            );
        }
    }
    let files = dir_contents(dir);
    let temporaries: Vec<&String> = files
        .keys()
        .filter(|k| k.rsplit('/').next().is_some_and(|name| name.starts_with(".lifeboat-")))
        .collect();
    assert!(
        temporaries.is_empty(),
        "temporary files left in the target: {temporaries:?}"
    );
    for path in affected {
        assert!(
            !dir.join(path).exists(),
            "{path} exists under its final name although it could not be restored"
        );
    }
    let expected: BTreeMap<String, Vec<u8>> = all
        .iter()
        .filter(|(k, _)| !affected.contains(k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_same_tree(&files, &expected);
}

fn added_two() -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        ("new/b1.bin".to_owned(), random_bytes(2_500_000, "new-b1")),
        ("new/b2.bin".to_owned(), random_bytes(600_000, "new-b2")),
    ])
}

#[tokio::test]
async fn a_flipped_byte_in_a_pack_fails_only_the_entry_holding_it() {
    let fixture = TwoBackups::new(added_two()).await;
    // The middle of the blob region lies in new/b1.bin's blobs whatever their
    // order in the pack: b1 is 2.5 MB of the pack's 3.1 MB of blobs.
    fixture.flip_byte_at(|end| end / 2).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("restored");
    let output = fixture.store.run(&[
        "restore",
        "files",
        &fixture.second,
        "--to",
        target.to_str().expect("utf-8"),
    ]);
    assert_partial_restore(
        &output,
        &target,
        &fixture.pack,
        &fixture.all(),
        &BTreeSet::from(["new/b1.bin"]),
    );
    assert!(
        stderr(&output).contains("authentication"),
        "the reason should say the chunk failed authentication:\n{}",
        describe(&output)
    );
}

#[tokio::test]
async fn a_truncated_pack_fails_its_entries_and_leaves_no_partial_files() {
    let fixture = TwoBackups::new(added_two()).await;
    // An interrupted upload: only the first 64 KiB arrived. Every blob of the
    // pack is at least 256 KiB (the chunker's minimum; both entries are larger),
    // so every blob is cut.
    let pack = fixture.pack_bytes().await;
    put_object(
        &fixture.store.s3,
        &fixture.store.bucket,
        &fixture.pack,
        pack[..64 * 1024].to_vec(),
    )
    .await;

    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("restored");
    let output = fixture.store.run(&[
        "restore",
        "files",
        &fixture.second,
        "--to",
        target.to_str().expect("utf-8"),
    ]);
    assert_partial_restore(
        &output,
        &target,
        &fixture.pack,
        &fixture.all(),
        &BTreeSet::from(["new/b1.bin", "new/b2.bin"]),
    );
    assert!(
        stderr(&output).contains("truncated"),
        "the reason should say the pack is truncated:\n{}",
        describe(&output)
    );
}

#[tokio::test]
async fn a_deleted_pack_fails_its_entries_and_restores_the_rest() {
    let fixture = TwoBackups::new(added_two()).await;
    fixture
        .store
        .s3
        .delete_object()
        .bucket(&fixture.store.bucket)
        .key(&fixture.pack)
        .send()
        .await
        .expect("delete pack");

    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("restored");
    let output = fixture.store.run(&[
        "restore",
        "files",
        &fixture.second,
        "--to",
        target.to_str().expect("utf-8"),
    ]);
    assert_partial_restore(
        &output,
        &target,
        &fixture.pack,
        &fixture.all(),
        &BTreeSet::from(["new/b1.bin", "new/b2.bin"]),
    );
    assert!(
        stderr(&output).contains("missing"),
        "the reason should say the pack is missing:\n{}",
        describe(&output)
    );

    // The first backup does not use the deleted pack: it restores in full.
    let first = fixture.store.json(&["backups", "list", "--source", &fixture.source]);
    let first_id = first
        .as_array()
        .and_then(|a| a.last())
        .map(|r| r["id"].as_str().unwrap_or_default().to_owned());
    let first_id = first_id.expect("the first backup is listed");
    let again = dir.path().join("first");
    fixture
        .store
        .ok(&["restore", "files", &first_id, "--to", again.to_str().expect("utf-8")]);
    assert_same_tree(&dir_contents(&again), &fixture.kept);
}

#[tokio::test]
async fn a_damaged_pack_restored_to_s3_leaves_no_object_and_no_upload_of_the_affected_entry() {
    // 14 MB in one entry: its last chunk starts past 10 MB (chunks are at most
    // 4 MiB), so by the time that chunk is read the restore has begun a
    // multipart upload (8 MiB parts) which it must abort.
    let added = BTreeMap::from([("new/big.bin".to_owned(), random_bytes(14_000_000, "new-big"))]);
    let fixture = TwoBackups::new(added).await;
    fixture.flip_byte_at(|end| end - 100).await;

    let target = create_bucket(&fixture.store.s3, "damage-target").await;
    // An upload of our own, left open, shows the listing below does list open uploads.
    let control = fixture
        .store
        .s3
        .create_multipart_upload()
        .bucket(&target)
        .key("control/open-upload")
        .send()
        .await
        .expect("create a control multipart upload");
    let output = fixture.store.run(&[
        "restore",
        "files",
        &fixture.second,
        "--to",
        &format!("s3://{target}/restored"),
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let stderr = stderr(&output);
    assert!(
        stderr.contains(&fixture.pack),
        "stderr does not name the damaged pack {}:\n{stderr}",
        fixture.pack
    );
    assert!(
        stderr.contains("new/big.bin"),
        "stderr does not name the affected entry:\n{stderr}"
    );
    for path in fixture.kept.keys() {
        assert!(
            !stderr.contains(path.as_str()),
            "stderr names {path}, which is not affected:\n{stderr}"
        );
    }

    let restored = relative(&list_objects(&fixture.store.s3, &target, "").await, "restored/");
    assert_same_tree(&restored, &fixture.kept);
    let uploads = fixture
        .store
        .s3
        .list_multipart_uploads()
        .bucket(&target)
        .send()
        .await
        .expect("list multipart uploads");
    let open: Vec<&str> = uploads.uploads().iter().filter_map(|u| u.key()).collect();
    assert_eq!(
        open,
        ["control/open-upload"],
        "the restore left a multipart upload open in the target bucket"
    );
    fixture
        .store
        .s3
        .abort_multipart_upload()
        .bucket(&target)
        .key("control/open-upload")
        .upload_id(control.upload_id().expect("upload id"))
        .send()
        .await
        .expect("abort the control upload");
}

/// A small source of its own, backed up once: (source, its entries, backup id).
async fn small_backup(store: &Store) -> (String, BTreeMap<String, Vec<u8>>, String) {
    let data = create_bucket(&store.s3, "keys-data").await;
    let entries = BTreeMap::from([
        ("docs/readme.txt".to_owned(), text_bytes(40_000, "keys-readme")),
        ("bin/blob.bin".to_owned(), random_bytes(900_000, "keys-blob")),
    ]);
    put_objects(&store.s3, &data, &with_prefix(&entries, SOURCE_PREFIX)).await;
    let source = format!("s3://{data}/app");
    let summary = store.json(&["backup", "files", &source]);
    assert_eq!(summary["status"], "completed", "{summary}");
    (source, entries, id_of(&summary))
}

fn backup_ids(store: &Store) -> Vec<String> {
    let listed = store.json(&["backups", "list"]);
    listed
        .as_array()
        .unwrap_or_else(|| panic!("backups list printed no array: {listed}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_wrong_kms_key_is_refused_with_exit_5_naming_both_keys() {
    let store = Store::new().await;
    let (source, _, id) = small_backup(&store).await;
    let other = new_kms_key(&store.kms).await;

    // Listing reads only the catalog: it works whatever key is configured.
    let listed = store.run_with(
        &["backups", "list", "--output", "json"],
        &[("LIFEBOAT_KMS_KEY", &other)],
    );
    assert!(listed.status.success(), "{}", describe(&listed));
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(&id),
        "{}",
        describe(&listed)
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("restored");
    let restore = store.run(&[
        "restore",
        "files",
        &id,
        "--to",
        target.to_str().expect("utf-8"),
        "--kms-key",
        &other,
    ]);
    let backup = store.run(&["backup", "files", &source, "--kms-key", &other]);
    for (what, output) in [("restore", &restore), ("backup", &backup)] {
        assert_eq!(
            output.status.code(),
            Some(5),
            "{what} with the wrong key:\n{}",
            describe(output)
        );
        let stderr = stderr(output);
        assert!(
            stderr.contains(&store.kms_key),
            "{what}: the store's key is not named:\n{stderr}"
        );
        assert!(stderr.contains(&other), "{what}: the given key is not named:\n{stderr}");
        assert!(
            stderr.contains("lifeboat keys rewrap"),
            "{what}: no hint at `lifeboat keys rewrap`:\n{stderr}"
        );
    }
    assert!(dir_contents(dir.path()).is_empty(), "the refused restore wrote files");
    assert_eq!(backup_ids(&store), vec![id], "the refused backup must not be recorded");
}

#[tokio::test]
async fn a_disabled_kms_key_is_refused_with_exit_5_and_how_to_enable_it() {
    let store = Store::new().await;
    let (source, entries, id) = small_backup(&store).await;
    store
        .kms
        .disable_key()
        .key_id(key_id(&store.kms_key))
        .send()
        .await
        .expect("disable key");

    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("restored");
    let restore = store.run(&["restore", "files", &id, "--to", target.to_str().expect("utf-8")]);
    let backup = store.run(&["backup", "files", &source]);
    for (what, output) in [("restore", &restore), ("backup", &backup)] {
        assert_eq!(
            output.status.code(),
            Some(5),
            "{what} with a disabled key:\n{}",
            describe(output)
        );
        let stderr = stderr(output);
        assert!(
            stderr.contains(&store.kms_key),
            "{what}: the key is not named:\n{stderr}"
        );
        assert!(
            stderr.contains("Disabled"),
            "{what}: the key's state is not named:\n{stderr}"
        );
        assert!(
            stderr.contains("enable-key"),
            "{what}: no hint how to enable the key:\n{stderr}"
        );
    }
    assert!(dir_contents(dir.path()).is_empty(), "the refused restore wrote files");
    assert_eq!(
        backup_ids(&store),
        vec![id.clone()],
        "the refused backup must not be recorded"
    );

    // The key's state was the only problem.
    store
        .kms
        .enable_key()
        .key_id(key_id(&store.kms_key))
        .send()
        .await
        .expect("enable key");
    store.ok(&["restore", "files", &id, "--to", target.to_str().expect("utf-8")]);
    assert_same_tree(&dir_contents(&target), &entries);
}

#[tokio::test]
async fn keys_rewrap_moves_the_store_to_another_key_rewriting_only_the_config() {
    let store = Store::new().await;
    let (source, entries, id) = small_backup(&store).await;
    let old = store.kms_key.clone();
    let new = new_kms_key(&store.kms).await;
    let before = listing(&store.s3, &store.bucket, "lifeboat/").await;

    let rewrapped = store.json(&["keys", "rewrap", "--kms-key", &new]);
    assert_eq!(rewrapped["previousKmsKeyId"], old.as_str(), "{rewrapped}");
    assert_eq!(rewrapped["kmsKeyId"], new.as_str(), "{rewrapped}");

    let after = listing(&store.s3, &store.bucket, "lifeboat/").await;
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "objects appeared or vanished"
    );
    assert!(
        before.keys().any(|k| k.starts_with("lifeboat/data/")),
        "no pack to compare: {before:?}"
    );
    assert!(
        before.keys().any(|k| k.starts_with("lifeboat/index/")),
        "no index to compare: {before:?}"
    );
    assert!(
        before.keys().any(|k| k.starts_with("lifeboat/manifests/")),
        "no manifest to compare: {before:?}"
    );
    for (key, was) in &before {
        if key == "lifeboat/config" {
            assert_ne!(&after[key], was, "the config was not rewritten");
        } else {
            assert_eq!(&after[key], was, "{key} changed: a rewrap must rewrite no data");
        }
    }

    // The new key opens the store; the old one is now the wrong key.
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("with-new-key");
    let restore = store.run(&[
        "restore",
        "files",
        &id,
        "--to",
        target.to_str().expect("utf-8"),
        "--kms-key",
        &new,
    ]);
    assert!(restore.status.success(), "{}", describe(&restore));
    assert_same_tree(&dir_contents(&target), &entries);

    let refused_dir = dir.path().join("with-old-key");
    let refused = store.run(&[
        "restore",
        "files",
        &id,
        "--to",
        refused_dir.to_str().expect("utf-8"),
        "--kms-key",
        &old,
    ]);
    assert_eq!(refused.status.code(), Some(5), "{}", describe(&refused));
    let stderr = stderr(&refused);
    assert!(
        stderr.contains(&new) && stderr.contains(&old),
        "both keys should be named:\n{stderr}"
    );
    assert!(stderr.contains("lifeboat keys rewrap"), "{stderr}");
    assert!(
        !refused_dir.exists() || dir_contents(&refused_dir).is_empty(),
        "the refused restore wrote files"
    );

    // The old key is no longer needed at all: disabled, the store still opens
    // with the new key, and new backups record the new key.
    store
        .kms
        .disable_key()
        .key_id(key_id(&old))
        .send()
        .await
        .expect("disable the old key");
    let again = dir.path().join("old-key-disabled");
    let restore = store.run(&[
        "restore",
        "files",
        &id,
        "--to",
        again.to_str().expect("utf-8"),
        "--kms-key",
        &new,
    ]);
    assert!(restore.status.success(), "{}", describe(&restore));
    assert_same_tree(&dir_contents(&again), &entries);
    let next = store.json(&["backup", "files", &source, "--kms-key", &new]);
    let record = store.json(&["backups", "show", &id_of(&next), "--kms-key", &new]);
    assert_eq!(record["kmsKeyId"], new.as_str(), "{record}");
}

#[tokio::test]
async fn a_missing_store_bucket_or_an_uninitialised_prefix_is_named() {
    let store = Store::new().await;
    let (source, _, id) = small_backup(&store).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("restored");
    let target = target.to_str().expect("utf-8");

    let missing = lifeboat_e2e::unique("no-such-store");
    let missing_store = format!("s3://{missing}/lifeboat");
    for args in [
        vec!["backup", "files", &source],
        vec!["restore", "files", &id, "--to", target],
    ] {
        let output = store.run_with(&args, &[("LIFEBOAT_STORE", &missing_store)]);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?} with a missing store bucket:\n{}",
            describe(&output)
        );
        let stderr = stderr(&output);
        assert!(
            stderr.contains(&missing),
            "{args:?}: the missing bucket is not named:\n{stderr}"
        );
        assert!(
            stderr.contains("does not exist"),
            "{args:?}: does not say the bucket does not exist:\n{stderr}"
        );
        assert!(
            !stderr.contains("lifeboat init"),
            "{args:?}: a missing bucket is not an uninitialised store:\n{stderr}"
        );
    }

    let uninitialised = format!("s3://{}/never-initialised", store.bucket);
    for args in [
        vec!["backup", "files", &source],
        vec!["restore", "files", &id, "--to", target],
    ] {
        let output = store.run_with(&args, &[("LIFEBOAT_STORE", &uninitialised)]);
        assert_eq!(
            output.status.code(),
            Some(4),
            "{args:?} on an uninitialised prefix:\n{}",
            describe(&output)
        );
        let stderr = stderr(&output);
        assert!(
            stderr.contains(&uninitialised),
            "{args:?}: the store is not named:\n{stderr}"
        );
        assert!(
            stderr.contains("lifeboat init"),
            "{args:?}: no `lifeboat init` hint:\n{stderr}"
        );
    }
    assert!(dir_contents(dir.path()).is_empty(), "a refused restore wrote files");
    assert_eq!(backup_ids(&store), vec![id], "refused backups must not be recorded");
}

#[tokio::test]
async fn bad_restore_arguments_are_named() {
    let store = Store::new().await;
    let (source, _, id) = small_backup(&store).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("restored");
    let target = target.to_str().expect("utf-8");

    let unknown = "bk-20200101T000000Z-0badc0de";
    let output = store.run(&["restore", "files", unknown, "--to", target]);
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        stderr(&output).contains(unknown),
        "the unknown id is not named:\n{}",
        describe(&output)
    );

    let malformed = "yesterdays-backup";
    let output = store.run(&["restore", "files", malformed, "--to", target]);
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        stderr(&output).contains(malformed),
        "the bad id is not named:\n{}",
        describe(&output)
    );

    let glob = "docs/[unclosed";
    let output = store.run(&["restore", "files", &id, "--to", target, "--include", glob]);
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        stderr(&output).contains(glob),
        "the bad glob is not named:\n{}",
        describe(&output)
    );

    let output = store.run(&["restore", "files", "latest", "--to", target]);
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        stderr(&output).contains("--source"),
        "`latest` without --source should ask for it:\n{}",
        describe(&output)
    );

    // `latest` of a source with no backup says so.
    let output = store.run(&[
        "restore",
        "files",
        "latest",
        "--source",
        "s3://never-backed-up/app",
        "--to",
        target,
    ]);
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(stderr(&output).contains("never-backed-up"), "{}", describe(&output));

    assert!(dir_contents(dir.path()).is_empty(), "a refused restore wrote files");
    // And with the right arguments the same restore works.
    let output = store.run(&["restore", "files", "latest", "--source", &source, "--to", target]);
    assert!(output.status.success(), "{}", describe(&output));
}
