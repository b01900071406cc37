//! File backups through the real `lifeboat` binary: round trips of many
//! objects of mixed sizes, incremental growth, dedup of copies, directories.

use std::collections::BTreeMap;

use crate::support::{
    assert_same_tree, create_bucket, dir_contents, list_objects, put_objects, random_bytes, relative, text_bytes, Store,
};

/// 200+ objects: empty, tiny, text, random, a 64 MiB one, duplicates, nested prefixes.
fn mixed_objects() -> BTreeMap<String, Vec<u8>> {
    let mut objects = BTreeMap::new();
    objects.insert("data/empty".to_owned(), Vec::new());
    for i in 0..60 {
        objects.insert(
            format!("data/tiny/{i:03}.txt"),
            format!("tiny object {i}\n").into_bytes(),
        );
    }
    for i in 0..90 {
        let len = 1_000 + i * 2_311;
        objects.insert(
            format!("data/text/{:02}/doc-{i}.csv", i % 7),
            text_bytes(len, &format!("text-{i}")),
        );
    }
    for i in 0..40 {
        let len = 10_000 + i * 61_417;
        objects.insert(
            format!("data/bin/blob-{i}.bin"),
            random_bytes(len, &format!("random-{i}")),
        );
    }
    objects.insert("data/huge/64mib.bin".to_owned(), random_bytes(64 << 20, "huge"));
    for i in 0..15 {
        let original = objects[&format!("data/bin/blob-{}.bin", i * 2)].clone();
        objects.insert(format!("data/dupes/copy-{i}.bin"), original);
    }
    objects
}

#[tokio::test]
async fn many_mixed_objects_round_trip_to_a_directory_and_to_a_bucket() {
    let store = Store::new().await;
    let source = create_bucket(&store.s3, "src").await;
    let objects = mixed_objects();
    assert!(objects.len() >= 200, "{} objects", objects.len());
    put_objects(&store.s3, &source, &objects).await;

    let summary = store.json(&["backup", "files", &format!("s3://{source}/data")]);
    assert_eq!(summary["status"], "completed", "{summary}");
    assert_eq!(summary["entriesScanned"], objects.len() as u64);
    let total: u64 = objects.values().map(|v| v.len() as u64).sum();
    assert_eq!(summary["bytesScanned"], total);
    // The 15 duplicates are stored once; text compresses.
    let duplicates: u64 = (0..15)
        .map(|i| objects[&format!("data/bin/blob-{}.bin", i * 2)].len() as u64)
        .sum();
    assert!(summary["bytesNew"].as_u64().unwrap() <= total - duplicates, "{summary}");
    assert!(
        store.stored_bytes().await < total - duplicates,
        "store is larger than the unique data"
    );
    let id = summary["backupId"].as_str().unwrap().to_owned();

    let target = tempfile::tempdir().unwrap();
    let restored = store.json(&["restore", "files", &id, "--to", target.path().to_str().unwrap()]);
    assert_eq!(restored["entriesRestored"], objects.len() as u64);
    assert_same_tree(&dir_contents(target.path()), &relative(&objects, "data/"));

    let destination = create_bucket(&store.s3, "dst").await;
    store.ok(&["restore", "files", &id, "--to", &format!("s3://{destination}/restored")]);
    let back = list_objects(&store.s3, &destination, "").await;
    assert_same_tree(&relative(&back, "restored/"), &relative(&objects, "data/"));

    // --include restores only what matches.
    let subset = tempfile::tempdir().unwrap();
    store.ok(&[
        "restore",
        "files",
        &id,
        "--to",
        subset.path().to_str().unwrap(),
        "--include",
        "text/**/*.csv",
    ]);
    let expected: BTreeMap<_, _> = relative(&objects, "data/")
        .into_iter()
        .filter(|(k, _)| k.starts_with("text/"))
        .collect();
    assert_same_tree(&dir_contents(subset.path()), &expected);
}

#[tokio::test]
async fn an_incremental_stores_only_the_changed_chunks_and_copies_add_no_data() {
    let store = Store::new().await;
    let source = create_bucket(&store.s3, "src").await;
    let mut objects = BTreeMap::new();
    for i in 0..30 {
        objects.insert(
            format!("app/file-{i:02}.bin"),
            random_bytes(300_000 + i * 40_000, &format!("inc-{i}")),
        );
    }
    objects.insert("app/large.bin".to_owned(), random_bytes(12 << 20, "large"));
    put_objects(&store.s3, &source, &objects).await;
    let url = format!("s3://{source}/app");

    let full = store.json(&["backup", "files", &url]);
    let after_full = store.stored_bytes().await;

    // Change 5 objects: new random content, so their chunks are all new.
    let mut changed_bytes = 0;
    for i in [3, 7, 11, 19, 23] {
        let body = random_bytes(250_000 + i * 10_000, &format!("changed-{i}"));
        changed_bytes += body.len() as u64;
        objects.insert(format!("app/file-{i:02}.bin"), body);
    }
    put_objects(&store.s3, &source, &objects).await;
    let incremental = store.json(&["backup", "files", &url, "--type", "incremental"]);
    assert_eq!(incremental["entriesChanged"], 5, "{incremental}");
    assert_eq!(incremental["parentBackup"], full["backupId"]);
    assert_eq!(
        incremental["bytesRead"], changed_bytes,
        "unchanged objects must not be read"
    );
    let growth = store.stored_bytes().await - after_full;
    println!("store grew by {growth} bytes for {changed_bytes} bytes of changed data");
    assert!(
        growth >= changed_bytes,
        "random data cannot shrink: grew {growth} for {changed_bytes}"
    );
    assert!(
        growth < changed_bytes + 64 * 1024,
        "grew {growth} bytes for {changed_bytes} changed bytes"
    );

    // A second copy of an existing object adds no chunk data.
    let before_copy = store.stored_bytes().await;
    let packs_before = store.packs().await;
    objects.insert("app/large-copy.bin".to_owned(), objects["app/large.bin"].clone());
    put_objects(&store.s3, &source, &objects).await;
    let copy = store.json(&["backup", "files", &url, "--type", "incremental"]);
    assert_eq!(copy["entriesChanged"], 1);
    assert_eq!(copy["bytesNew"], 0, "{copy}");
    assert_eq!(store.packs().await, packs_before, "a copy must not write a pack");
    assert!(
        store.stored_bytes().await - before_copy < 16 * 1024,
        "only a manifest should be added"
    );

    // A differential builds on the full, not on the incrementals.
    let differential = store.json(&["backup", "files", &url, "--type", "differential"]);
    assert_eq!(differential["parentBackup"], full["backupId"]);
    assert_eq!(differential["entriesChanged"], 6);
    assert_eq!(differential["bytesNew"], 0);

    let target = tempfile::tempdir().unwrap();
    store.ok(&[
        "restore",
        "files",
        "latest",
        "--source",
        &url,
        "--to",
        target.path().to_str().unwrap(),
    ]);
    assert_same_tree(&dir_contents(target.path()), &relative(&objects, "app/"));

    let list = store.json(&["backups", "list", "--source", &url]);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4);
    assert_eq!(ids[0], differential["backupId"].as_str().unwrap(), "newest first");
    let shown = store.json(&["backups", "show", "latest", "--source", &url]);
    for field in [
        "id",
        "type",
        "status",
        "source",
        "size",
        "compressedSize",
        "createdAt",
        "completedAt",
        "checksum",
    ] {
        assert!(shown.get(field).is_some(), "{field} missing: {shown}");
    }
    assert_eq!(shown["type"], "differential");
}

#[tokio::test]
async fn a_directory_round_trips_with_modes_and_an_incremental_sees_changes() {
    use std::os::unix::fs::PermissionsExt;
    let store = Store::new().await;
    let source = tempfile::tempdir().unwrap();
    let mut files = BTreeMap::new();
    files.insert("README".to_owned(), text_bytes(5_000, "readme"));
    files.insert("bin/tool".to_owned(), random_bytes(700_000, "tool"));
    files.insert("deep/a/b/c/d.txt".to_owned(), b"deep".to_vec());
    files.insert("empty".to_owned(), Vec::new());
    for (path, body) in &files {
        let full = source.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, body).unwrap();
    }
    std::fs::set_permissions(source.path().join("bin/tool"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let path = source.path().to_str().unwrap();
    let full = store.json(&["backup", "files", path]);
    assert_eq!(full["entriesScanned"], 4);

    std::fs::write(source.path().join("deep/a/b/c/d.txt"), b"deeper").unwrap();
    files.insert("deep/a/b/c/d.txt".to_owned(), b"deeper".to_vec());
    let incremental = store.json(&["backup", "files", path, "--type", "incremental"]);
    assert_eq!(incremental["entriesChanged"], 1, "{incremental}");

    let target = tempfile::tempdir().unwrap();
    store.ok(&[
        "restore",
        "files",
        "latest",
        "--source",
        path,
        "--to",
        target.path().to_str().unwrap(),
    ]);
    assert_same_tree(&dir_contents(target.path()), &files);
    let mode = std::fs::metadata(target.path().join("bin/tool"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o750);
}
