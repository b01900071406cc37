//! Restores of any name through the real `lifeboat` binary: long names,
//! names a directory cannot hold, colliding names, existing files,
//! symbolic links in the target, setuid bits. One entry that cannot be
//! restored is named with its reason (exit 3), the rest are restored, and
//! nothing is written outside the target or over another entry.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::{
    assert_same_tree, create_bucket, describe, dir_contents, list_objects, put_objects, random_bytes, relative,
    text_bytes, Store,
};

/// Writes `files` (relative path → bytes) under `root`.
fn write_tree(root: &Path, files: &BTreeMap<String, Vec<u8>>) {
    for (path, body) in files {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, body).unwrap();
    }
}

/// Runs `lifeboat restore files ID --to TARGET EXTRA…`; returns the output.
fn restore(store: &Store, id: &str, target: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["restore", "files", id, "--to", target];
    args.extend_from_slice(extra);
    store.run(&args)
}

#[tokio::test]
async fn a_240_byte_file_name_no_longer_aborts_a_directory_restore() {
    let store = Store::new().await;
    let source = tempfile::tempdir().unwrap();
    let mut files = BTreeMap::new();
    files.insert("a".repeat(240), random_bytes(300_000, "long-240"));
    files.insert("b".repeat(255), text_bytes(5_000, "long-255"));
    files.insert(format!("{}/{}", "d".repeat(255), "e".repeat(250)), b"nested".to_vec());
    files.insert("short.txt".to_owned(), b"short".to_vec());
    write_tree(source.path(), &files);
    let backup = store.json(&["backup", "files", source.path().to_str().unwrap()]);
    assert_eq!(backup["entriesScanned"], 4, "{backup}");

    let target = tempfile::tempdir().unwrap();
    let output = restore(
        &store,
        backup["backupId"].as_str().unwrap(),
        target.path().to_str().unwrap(),
        &[],
    );
    assert!(output.status.success(), "{}", describe(&output));
    assert_same_tree(&dir_contents(target.path()), &files);
}

#[tokio::test]
async fn keys_a_directory_cannot_hold_are_each_reported_and_the_rest_restored() {
    let store = Store::new().await;
    let bucket = create_bucket(&store.s3, "names").await;
    let long = "n".repeat(256);
    let mut objects = BTreeMap::new();
    for (key, body) in [
        ("data/ok/plain.txt", "plain"),
        ("data/a/b", "the a/b object"),
        ("data/a//b", "the a//b object, another key"),
        ("data//absolute", "an absolute path below the prefix"),
        ("data/x/./y", "a dot name"),
        ("data/file-and-dir", "a file"),
        ("data/file-and-dir/inside", "below the file"),
    ] {
        objects.insert(key.to_owned(), body.as_bytes().to_vec());
    }
    objects.insert(format!("data/{long}/z"), b"a 256-byte name".to_vec());
    put_objects(&store.s3, &bucket, &objects).await;
    let backup = store.json(&["backup", "files", &format!("s3://{bucket}/data")]);
    assert_eq!(backup["entriesScanned"], objects.len() as u64, "{backup}");
    let id = backup["backupId"].as_str().unwrap();

    let parent = tempfile::tempdir().unwrap();
    let target = parent.path().join("target");
    let output = restore(&store, id, target.to_str().unwrap(), &[]);
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for (path, reason) in [
        ("a//b", "empty name"),
        ("/absolute", "absolute"),
        ("x/./y", "`.` name"),
        ("file-and-dir", "cannot be a file and a directory"),
        (&format!("{long}/z"), "256 bytes long"),
    ] {
        assert!(
            stderr.contains(&format!("  {path}: ")) && stderr.contains(reason),
            "{path} ({reason}) not reported:\n{stderr}"
        );
    }
    assert!(stderr.contains("3 entries restored, 5 could not be"), "{stderr}");
    // a/b holds its own bytes, never a//b's; nothing left the target.
    let mut expected = BTreeMap::new();
    expected.insert("ok/plain.txt".to_owned(), b"plain".to_vec());
    expected.insert("a/b".to_owned(), b"the a/b object".to_vec());
    expected.insert("file-and-dir/inside".to_owned(), b"below the file".to_vec());
    assert_same_tree(&dir_contents(&target), &expected);
    let beside: Vec<_> = std::fs::read_dir(parent.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, vec![std::ffi::OsString::from("target")]);

    // S3 holds every one of those keys: all restore there, each its own.
    let destination = create_bucket(&store.s3, "names-back").await;
    store.ok(&["restore", "files", id, "--to", &format!("s3://{destination}/back")]);
    let back = list_objects(&store.s3, &destination, "").await;
    assert_same_tree(&relative(&back, "back/"), &relative(&objects, "data/"));
}

#[tokio::test]
async fn an_existing_file_in_the_target_is_kept_unless_overwrite_is_given() {
    let store = Store::new().await;
    let source = tempfile::tempdir().unwrap();
    let mut files = BTreeMap::new();
    files.insert("kept.txt".to_owned(), b"from the backup".to_vec());
    files.insert("new/one.bin".to_owned(), random_bytes(100_000, "new-one"));
    write_tree(source.path(), &files);
    let backup = store.json(&["backup", "files", source.path().to_str().unwrap()]);
    let id = backup["backupId"].as_str().unwrap();

    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("kept.txt"), b"the user's own file").unwrap();
    let output = restore(&store, id, target.path().to_str().unwrap(), &[]);
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("kept.txt: it exists in the target; not overwritten (--overwrite replaces it)"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(target.path().join("kept.txt")).unwrap(),
        b"the user's own file"
    );
    assert_eq!(
        std::fs::read(target.path().join("new/one.bin")).unwrap(),
        files["new/one.bin"]
    );

    let output = restore(&store, id, target.path().to_str().unwrap(), &["--overwrite"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_same_tree(&dir_contents(target.path()), &files);

    // The same to S3: an existing object is kept unless --overwrite.
    let destination = create_bucket(&store.s3, "existing").await;
    let mut existing = BTreeMap::new();
    existing.insert("back/kept.txt".to_owned(), b"an object already there".to_vec());
    put_objects(&store.s3, &destination, &existing).await;
    let to = format!("s3://{destination}/back");
    let output = restore(&store, id, &to, &[]);
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let back = list_objects(&store.s3, &destination, "").await;
    assert_eq!(back["back/kept.txt"], b"an object already there");
    assert_eq!(back["back/new/one.bin"], files["new/one.bin"]);
    let output = restore(&store, id, &to, &["--overwrite"]);
    assert!(output.status.success(), "{}", describe(&output));
    let back = list_objects(&store.s3, &destination, "").await;
    assert_same_tree(&relative(&back, "back/"), &files);
}

#[tokio::test]
async fn a_symlinked_directory_in_the_target_is_not_written_through() {
    let store = Store::new().await;
    let source = tempfile::tempdir().unwrap();
    let mut files = BTreeMap::new();
    files.insert("etc/passwd".to_owned(), b"root::0:0::/:/bin/sh\n".to_vec());
    files.insert("etc/deeper/x".to_owned(), b"deeper".to_vec());
    files.insert("home/readme".to_owned(), b"safe".to_vec());
    write_tree(source.path(), &files);
    let backup = store.json(&["backup", "files", source.path().to_str().unwrap()]);
    let id = backup["backupId"].as_str().unwrap();

    let target = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), target.path().join("etc")).unwrap();
    let output = restore(&store, id, target.path().to_str().unwrap(), &[]);
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("etc/passwd: etc in the target is a symbolic link: it is not followed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("etc/deeper/x: etc in the target is a symbolic link"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "something was written through the link"
    );
    assert_eq!(std::fs::read(target.path().join("home/readme")).unwrap(), b"safe");
}

#[tokio::test]
async fn setuid_and_setgid_bits_are_not_restored_without_the_owner() {
    let store = Store::new().await;
    let source = tempfile::tempdir().unwrap();
    let tool = source.path().join("tool");
    std::fs::write(&tool, b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o6755)).unwrap();
    std::fs::write(source.path().join("plain"), b"x").unwrap();
    std::fs::set_permissions(source.path().join("plain"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let backup = store.json(&["backup", "files", source.path().to_str().unwrap()]);
    let id = backup["backupId"].as_str().unwrap();

    let target = tempfile::tempdir().unwrap();
    store.ok(&["restore", "files", id, "--to", target.path().to_str().unwrap()]);
    let mode = |name: &str| {
        std::fs::metadata(target.path().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("tool"), 0o755, "setuid/setgid must be stripped");
    assert_eq!(mode("plain"), 0o640);
}
