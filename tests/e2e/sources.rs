//! Directory sources through the real `lifeboat` binary: a name that is not
//! UTF-8 round-trips exactly, an unreadable directory is skipped and
//! reported (exit 3) while the rest is backed up, and a same-size rewrite
//! that keeps its mtime is still seen by an incremental.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use lifeboat_e2e::{aws_env, workspace_bin};

use crate::support::{describe, random_bytes, Store};

#[tokio::test]
async fn a_file_name_that_is_not_utf8_round_trips_byte_for_byte() {
    let store = Store::new().await;
    let source = tempfile::tempdir().unwrap();
    let latin1 = OsStr::from_bytes(b"caf\xe9.txt");
    let nested = OsStr::from_bytes(b"dir-\xff\xfe");
    std::fs::write(source.path().join(latin1), b"latin-1 name").unwrap();
    std::fs::create_dir(source.path().join(nested)).unwrap();
    std::fs::write(source.path().join(nested).join("inner"), random_bytes(50_000, "inner")).unwrap();
    // A UTF-8 name that looks like the display form of the Latin-1 one.
    std::fs::write(source.path().join("caf\\xe9.txt"), b"a real backslash").unwrap();
    let path = source.path().to_str().unwrap();
    let backup = store.json(&["backup", "files", path]);
    assert_eq!(backup["entriesScanned"], 3, "{backup}");
    assert_eq!(backup["skipped"].as_array().map(Vec::len), Some(0), "{backup}");

    let target = tempfile::tempdir().unwrap();
    let id = backup["backupId"].as_str().unwrap();
    store.ok(&["restore", "files", id, "--to", target.path().to_str().unwrap()]);
    assert_eq!(std::fs::read(target.path().join(latin1)).unwrap(), b"latin-1 name");
    assert_eq!(
        std::fs::read(target.path().join(nested).join("inner")).unwrap(),
        random_bytes(50_000, "inner")
    );
    assert_eq!(
        std::fs::read(target.path().join("caf\\xe9.txt")).unwrap(),
        b"a real backslash"
    );

    // An incremental finds all three unchanged (each by its exact name).
    let incremental = store.json(&["backup", "files", path, "--type", "incremental"]);
    assert_eq!(incremental["entriesChanged"], 0, "{incremental}");
}

#[tokio::test]
async fn an_unreadable_directory_is_skipped_and_reported_and_the_rest_backed_up() {
    let store = Store::new().await;
    let source = tempfile::tempdir().unwrap();
    std::fs::set_permissions(source.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(source.path().join("readable.txt"), b"readable").unwrap();
    std::fs::create_dir(source.path().join("locked")).unwrap();
    std::fs::write(source.path().join("locked/secret"), b"secret").unwrap();
    std::fs::set_permissions(source.path().join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::write(source.path().join("unreadable.txt"), b"no").unwrap();
    std::fs::set_permissions(
        source.path().join("unreadable.txt"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();

    // Root reads everything: run the backup as nobody.
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(workspace_bin("lifeboat"))
        .args(["backup", "files", source.path().to_str().unwrap(), "--output", "json"])
        .envs(aws_env())
        .env("LIFEBOAT_STORE", &store.url)
        .env("LIFEBOAT_TABLE", &store.table)
        .env("LIFEBOAT_KMS_KEY", &store.kms_key)
        .env("HOME", "/nonexistent")
        .output()
        .expect("run lifeboat as nobody");
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).expect("a JSON summary");
    assert_eq!(summary["status"], "completed", "{summary}");
    assert_eq!(summary["entriesScanned"], 1, "{summary}");
    let skipped = summary["skipped"].as_array().expect("skipped entries");
    let reasons: Vec<(String, String)> = skipped
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_owned(),
                s["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0].0, "locked");
    assert!(reasons[0].1.contains("permission denied"), "{reasons:?}");
    assert_eq!(reasons[1].0, "unreadable.txt");
    assert!(reasons[1].1.contains("could not be opened"), "{reasons:?}");

    let target = tempfile::tempdir().unwrap();
    let id = summary["backupId"].as_str().unwrap();
    store.ok(&["restore", "files", id, "--to", target.path().to_str().unwrap()]);
    assert_eq!(std::fs::read(target.path().join("readable.txt")).unwrap(), b"readable");
    let shown = store.json(&["backups", "show", id]);
    assert_eq!(shown["status"], "completed", "{shown}");
}

#[tokio::test]
async fn a_same_size_rewrite_that_keeps_its_mtime_is_backed_up_by_an_incremental() {
    let store = Store::new().await;
    let source = tempfile::tempdir().unwrap();
    let file = source.path().join("ledger.csv");
    std::fs::write(&file, b"balance,100\n").unwrap();
    std::fs::write(source.path().join("other"), b"unchanged").unwrap();
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    let path = source.path().to_str().unwrap();
    let full = store.json(&["backup", "files", path]);
    assert_eq!(full["entriesScanned"], 2);

    // Same size, mtime put back: only the ctime tells.
    std::fs::write(&file, b"balance,999\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), mtime);
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
    assert_eq!(
        std::fs::read(target.path().join("ledger.csv")).unwrap(),
        b"balance,999\n"
    );
    assert_eq!(std::fs::read(target.path().join("other")).unwrap(), b"unchanged");
}
