//! Memory stays bounded whatever the entry's size: backing up and restoring
//! a file much larger than the limit keeps the process's peak RSS under it.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use lifeboat_e2e::{aws_env, workspace_bin};

use crate::support::{describe, random_bytes, Store};

const FILE_MIB: usize = 512;
const LIMIT_MIB: u64 = 320;

/// Runs `lifeboat ARGS` and returns (output, peak resident set in MiB),
/// sampling the child's VmHWM (the kernel's high-water mark) until it exits.
fn run_measuring_peak(store: &Store, args: &[&str]) -> (std::process::Output, u64) {
    let child = Command::new(workspace_bin("lifeboat"))
        .args(args)
        .envs(aws_env())
        .env("LIFEBOAT_STORE", &store.url)
        .env("LIFEBOAT_TABLE", &store.table)
        .env("LIFEBOAT_KMS_KEY", &store.kms_key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lifeboat");
    let status_path = format!("/proc/{}/status", child.id());
    let sampler = std::thread::spawn(move || {
        let mut peak_kib = 0u64;
        while let Ok(status) = std::fs::read_to_string(&status_path) {
            let hwm = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            match hwm {
                Some(kib) => peak_kib = peak_kib.max(kib),
                None => break, // a zombie has no memory lines: the process has ended
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        peak_kib / 1024
    });
    let output = child.wait_with_output().expect("wait for lifeboat");
    (output, sampler.join().expect("sampler"))
}

#[tokio::test]
async fn backing_up_and_restoring_a_large_file_uses_bounded_memory() {
    let store = Store::new().await;
    let source = tempfile::tempdir().unwrap();
    let path = source.path().join("large.bin");
    {
        let mut file = std::fs::File::create(&path).unwrap();
        for part in 0..FILE_MIB / 64 {
            file.write_all(&random_bytes(64 << 20, &format!("large-{part}")))
                .unwrap();
        }
    }
    let (output, backup_peak) = run_measuring_peak(&store, &["backup", "files", source.path().to_str().unwrap()]);
    assert!(output.status.success(), "{}", describe(&output));
    println!("backup of a {FILE_MIB} MiB file: peak RSS {backup_peak} MiB");
    assert!(backup_peak > 0, "the sampler saw no memory figures");
    assert!(
        backup_peak < LIMIT_MIB,
        "backup peak RSS {backup_peak} MiB for a {FILE_MIB} MiB file"
    );

    let target = tempfile::tempdir().unwrap();
    let (output, restore_peak) = run_measuring_peak(
        &store,
        &[
            "restore",
            "files",
            "latest",
            "--source",
            source.path().to_str().unwrap(),
            "--to",
            target.path().to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{}", describe(&output));
    println!("restore of a {FILE_MIB} MiB file: peak RSS {restore_peak} MiB");
    assert!(
        restore_peak < LIMIT_MIB,
        "restore peak RSS {restore_peak} MiB for a {FILE_MIB} MiB file"
    );
    let restored = std::fs::metadata(target.path().join("large.bin")).unwrap().len();
    assert_eq!(restored, (FILE_MIB as u64) << 20);
    // Content equality is checked by restore itself (SHA-256 before rename);
    // compare the first and last 64 MiB here too, to be independent of it.
    let bytes = std::fs::read(target.path().join("large.bin")).unwrap();
    assert!(bytes[..64 << 20] == random_bytes(64 << 20, "large-0")[..]);
    let last = FILE_MIB / 64 - 1;
    assert!(bytes[(last << 26)..] == random_bytes(64 << 20, &format!("large-{last}"))[..]);
}
