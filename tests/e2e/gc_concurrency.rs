//! Garbage collection beside other runs: one collection per store (the GC
//! lease), the sweep ordered against backups by the catalog's GC sequence
//! rather than clocks, registered restores waited for, the parents of
//! running backups kept, and orphan manifests collected (FORMAT.md,
//! "Garbage collection").

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;

use lifeboat::aws::Clients;
use lifeboat::catalog::leases::LEASE_TTL;
use lifeboat::catalog::{BackupRecord, BackupStatus, Catalog, HoldRecord};
use lifeboat::keys::Kms;
use lifeboat::repo::{storage_for, Repository};
use lifeboat::storage::Location;
use lifeboat::times::{self, SignedDuration};
use lifeboat_e2e::{sdk_config, REGION};
use serde_json::Value;

use crate::support::{
    assert_same_tree, create_bucket, describe, dir_contents, put_objects, random_bytes, relative, Store,
};

pub(crate) struct Library {
    pub(crate) repo: Arc<Repository>,
    pub(crate) catalog: Catalog,
}

impl Library {
    pub(crate) async fn open(store: &Store) -> Self {
        let clients = Clients::new(&sdk_config().await);
        let location = Location::parse(&store.url).unwrap();
        let (storage, prefix) = storage_for(&location, &clients.s3, REGION);
        let kms = Kms::new(clients.kms.clone(), REGION);
        let repo = Repository::open(storage, &prefix, &kms, None)
            .await
            .expect("open store");
        Self {
            repo: Arc::new(repo),
            catalog: Catalog::new(clients.dynamodb.clone(), &store.table, REGION),
        }
    }

    pub(crate) fn store_id(&self) -> &str {
        &self.repo.config.store_id
    }

    /// What retention does to an expired backup: record first, then manifest.
    async fn expire(&self, id: &str) {
        self.catalog.mark_deleted(id, &times::now_text()).await.unwrap();
        self.repo.storage.delete(&self.repo.layout.manifest(id)).await.unwrap();
    }

    /// A new unfinished backup record like `like`'s (a backup in flight),
    /// created at `created_at` by its host's clock, an incremental of `parent`.
    async fn running(&self, like: &str, created_at: times::Time, parent: Option<&str>) -> BackupRecord {
        let id = lifeboat::ids::BackupId::new(times::now()).to_string();
        let record = BackupRecord {
            storage_location: self.repo.storage.describe(&self.repo.layout.manifest(&id)),
            id,
            status: BackupStatus::Pending,
            created_at: times::format(created_at),
            error: None,
            checksum: None,
            completed_at: None,
            gc_ticket: None,
            parent_backup: parent.map(str::to_owned),
            ..self.catalog.get(like).await.unwrap()
        };
        self.catalog.begin(&record, None).await.unwrap();
        self.catalog.mark_in_progress(&record.id).await.unwrap();
        record
    }

    /// Takes a GC ticket for `id` and records it, as a backup does before
    /// it loads the index.
    async fn take_ticket(&self, id: &str) -> u64 {
        let ticket = self.catalog.take_gc_ticket(self.store_id()).await.unwrap();
        self.catalog.record_gc_ticket(id, ticket).await.unwrap();
        ticket
    }

    /// Stores a copy of `from`'s manifest as backup `id`'s.
    async fn copy_manifest(&self, from: &str, id: &str) {
        let mut manifest = self.repo.get_manifest(from, None).await.unwrap();
        manifest.backup_id = id.to_owned();
        self.repo.put_manifest(&manifest).await.unwrap();
    }

    async fn has_manifest(&self, id: &str) -> bool {
        self.repo
            .storage
            .get_optional(&self.repo.layout.manifest(id))
            .await
            .unwrap()
            .is_some()
    }
}

fn backup(store: &Store, source: &str) -> String {
    store.json(&["backup", "files", source])["backupId"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn gc(store: &Store) -> Value {
    store.json(&["gc", "--grace", "0s"])
}

fn restore_matches(store: &Store, id: &str, expected: &BTreeMap<String, Vec<u8>>) {
    let target = tempfile::tempdir().unwrap();
    store.ok(&["restore", "files", id, "--to", target.path().to_str().unwrap()]);
    assert_same_tree(&dir_contents(target.path()), &relative(expected, "app/"));
}

fn data(round: &str) -> BTreeMap<String, Vec<u8>> {
    (0..3)
        .map(|i| (format!("app/{i}.bin"), random_bytes(1 << 20, &format!("{round}-{i}"))))
        .collect()
}

/// A store with two backups of one source, the first expired: its chunks
/// are garbage. Returns the source URL, the first and the kept backup and
/// the kept backup's data.
async fn store_with_garbage(store: &Store, library: &Library) -> (String, String, String, BTreeMap<String, Vec<u8>>) {
    let source = create_bucket(&store.s3, "src").await;
    let url = format!("s3://{source}/app");
    put_objects(&store.s3, &source, &data("old")).await;
    let first = backup(store, &url);
    let kept = data("new");
    put_objects(&store.s3, &source, &kept).await;
    let second = backup(store, &url);
    library.expire(&first).await;
    (url, first, second, kept)
}

#[tokio::test]
async fn a_gc_run_while_another_holds_the_lease_refuses_and_deletes_nothing() {
    let store = Store::new().await;
    let library = Library::open(&store).await;
    let (_, _, kept, data) = store_with_garbage(&store, &library).await;
    assert!(gc(&store)["marked"]["list"].is_string());
    let objects = store.objects().await;

    let held = library
        .catalog
        .acquire_gc_lease(library.store_id(), "cli:other@host#1", times::now(), LEASE_TTL)
        .await
        .unwrap();
    let refused = store.run(&["gc", "--grace", "0s"]);
    assert!(!refused.status.success(), "{}", describe(&refused));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("garbage-collection lease")
            && message.contains("cli:other@host#1")
            && message.contains(" until "),
        "the refusal names the lease, its holder and its expiry: {message}"
    );
    assert_eq!(
        store.objects().await,
        objects,
        "nothing may change while another run holds the lease"
    );

    held.release().await.unwrap();
    let swept = gc(&store);
    assert!(swept["swept"][0]["packsDeleted"].as_u64().unwrap() >= 1, "{swept}");
    restore_matches(&store, &kept, &data);
}

#[tokio::test]
async fn a_stale_gc_lease_is_taken_over() {
    let store = Store::new().await;
    let library = Library::open(&store).await;
    let (_, _, kept, data) = store_with_garbage(&store, &library).await;
    // A run that died two hours ago without releasing its lease.
    let two_hours_ago = times::now() - SignedDuration::from_hours(2);
    drop(
        library
            .catalog
            .acquire_gc_lease(library.store_id(), "cli:dead@host#1", two_hours_ago, LEASE_TTL)
            .await
            .unwrap(),
    );
    assert!(gc(&store)["marked"]["list"].is_string());
    assert!(gc(&store)["swept"][0]["packsDeleted"].as_u64().unwrap() >= 1);
    // Each run released the lease it took: a new one is free.
    let free = library
        .catalog
        .acquire_gc_lease(library.store_id(), "cli:next@host#1", times::now(), LEASE_TTL)
        .await;
    assert!(free.is_ok(), "the lease was left held: {:?}", free.err());
    restore_matches(&store, &kept, &data);
}

#[tokio::test]
async fn two_gc_runs_at_once_never_both_act_and_lose_nothing() {
    let store = Store::new().await;
    let library = Library::open(&store).await;
    let (_, _, kept, data) = store_with_garbage(&store, &library).await;
    assert!(gc(&store)["marked"]["list"].is_string());
    let store = Arc::new(store);
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.run(&["gc", "--grace", "0s", "--output", "json"]))
        })
        .collect();
    let mut swept = 0;
    for run in runs {
        let output = run.await.unwrap();
        if output.status.success() {
            let report: Value = serde_json::from_slice(&output.stdout).unwrap();
            swept += report["swept"].as_array().unwrap().len();
        } else {
            let message = String::from_utf8_lossy(&output.stderr);
            assert!(message.contains("garbage-collection lease"), "{message}");
        }
    }
    assert_eq!(swept, 1, "the list is swept exactly once");
    restore_matches(&store, &kept, &data);
    let verify = store.json(&["verify", &kept, "--deep"]);
    assert_eq!(verify["ok"], true, "{verify}");
}

#[tokio::test]
async fn a_backup_whose_clock_runs_hours_ahead_still_blocks_the_sweep() {
    let store = Store::new().await;
    let library = Library::open(&store).await;
    let (_, first, _, _) = store_with_garbage(&store, &library).await;
    let first_manifest = library.repo.get_manifest(&first, None).await;
    assert!(first_manifest.is_err(), "expired: its manifest is gone");
    // A backup whose host clock is three hours fast took its ticket (and
    // loaded the index) before the mark; another, whose clock is a day slow,
    // takes its ticket after the mark (it loads the index with the list).
    let fast = library
        .running(&first, times::now() + SignedDuration::from_hours(3), None)
        .await;
    library.take_ticket(&fast.id).await;
    let marked = gc(&store);
    assert!(marked["marked"]["list"].is_string(), "{marked}");
    let slow = library
        .running(&first, times::now() - SignedDuration::from_hours(23), None)
        .await;
    library.take_ticket(&slow.id).await;

    let packs = store.packs().await;
    let blocked = gc(&store);
    let reason = blocked["waiting"][0]["reason"].as_str().unwrap_or_default();
    assert!(blocked["swept"].as_array().unwrap().is_empty(), "{blocked}");
    assert!(reason.contains(&fast.id), "the fast-clocked backup blocks: {blocked}");
    assert_eq!(store.packs().await, packs, "nothing may go while it runs");

    library.catalog.fail(&fast.id, "test: ended").await.unwrap();
    let swept = gc(&store);
    assert!(
        swept["swept"][0]["packsDeleted"].as_u64().unwrap() >= 1,
        "the slow-clocked backup took its ticket after the list: it does not block: {swept}"
    );
}

#[tokio::test]
async fn a_registered_restore_blocks_the_sweep_until_it_ends() {
    let store = Store::new().await;
    let library = Library::open(&store).await;
    let (_, _, kept, data) = store_with_garbage(&store, &library).await;
    assert!(gc(&store)["marked"]["list"].is_string());
    let restore = library
        .catalog
        .register_restore(library.store_id(), &kept, "cli:ops@laptop#7", times::now(), LEASE_TTL)
        .await
        .unwrap();
    // A registration whose restore died two hours ago does not count.
    drop(
        library
            .catalog
            .register_restore(
                library.store_id(),
                &kept,
                "cli:ops@laptop#6",
                times::now() - SignedDuration::from_hours(2),
                LEASE_TTL,
            )
            .await
            .unwrap(),
    );
    let packs = store.packs().await;
    let blocked = gc(&store);
    assert!(blocked["swept"].as_array().unwrap().is_empty(), "{blocked}");
    let reason = blocked["waiting"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("restore") && reason.contains("cli:ops@laptop#7"),
        "{blocked}"
    );
    assert!(!reason.contains("1 more"), "the stale registration counts: {blocked}");
    assert_eq!(store.packs().await, packs);

    restore.release().await.unwrap();
    let swept = gc(&store);
    assert!(swept["swept"][0]["packsDeleted"].as_u64().unwrap() >= 1, "{swept}");
    // The real restore registers and deregisters itself.
    restore_matches(&store, &kept, &data);
    let live = library
        .catalog
        .live_restores(library.store_id(), times::now())
        .await
        .unwrap();
    assert_eq!(live.len(), 0, "a finished restore left its registration: {live:?}");
}

/// `lifeboat verify` reads the store's packs like a restore, so it registers
/// itself the same way: caught registered (and frozen there with SIGSTOP),
/// it makes a sweep wait; once it ends, its registration is gone and the
/// sweep runs. Verification used to run unregistered, and a sweep could
/// delete a pack under it.
#[tokio::test]
async fn a_running_verification_is_registered_so_a_sweep_waits_for_it() {
    let store = Store::new().await;
    let library = Library::open(&store).await;
    let (_, _, kept, data) = store_with_garbage(&store, &library).await;
    assert!(gc(&store)["marked"]["list"].is_string());

    let mut verify = store
        .command(&["verify", &kept, "--deep", "--concurrency", "1", "--output", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lifeboat verify");
    let pid = verify.id().to_string();
    let registration = loop {
        let live = library
            .catalog
            .live_restores(library.store_id(), times::now())
            .await
            .unwrap();
        if let Some(registration) = live.into_iter().next() {
            signal("-STOP", &pid);
            break registration;
        }
        if verify.try_wait().unwrap().is_some() {
            let output = verify.wait_with_output().unwrap();
            panic!(
                "the verification ran without registering itself:\n{}",
                describe(&output)
            );
        }
    };
    assert_eq!(
        registration.backup_id.as_deref(),
        Some(kept.as_str()),
        "{registration:?}"
    );
    assert!(registration.owner.starts_with("cli:"), "{registration:?}");

    let packs = store.packs().await;
    let blocked = gc(&store);
    signal("-CONT", &pid);
    assert!(blocked["swept"].as_array().unwrap().is_empty(), "{blocked}");
    let reason = blocked["waiting"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("verification") && reason.contains(&registration.owner),
        "{blocked}"
    );
    assert_eq!(store.packs().await, packs);

    let output = verify.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    let live = library
        .catalog
        .live_restores(library.store_id(), times::now())
        .await
        .unwrap();
    assert_eq!(live.len(), 0, "a finished verification left its registration: {live:?}");
    let swept = gc(&store);
    assert!(swept["swept"][0]["packsDeleted"].as_u64().unwrap() >= 1, "{swept}");
    restore_matches(&store, &kept, &data);
}

/// Sends `signal` (`-STOP`, `-CONT`) to process `pid`.
fn signal(signal: &str, pid: &str) {
    let status = std::process::Command::new("kill").args([signal, pid]).status().unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

#[tokio::test]
async fn gc_keeps_the_chunks_of_a_running_backups_deleted_parent() {
    let store = Store::new().await;
    let library = Library::open(&store).await;
    let source = create_bucket(&store.s3, "src").await;
    let url = format!("s3://{source}/app");
    let parent_data = data("parent");
    put_objects(&store.s3, &source, &parent_data).await;
    let parent = backup(&store, &url);
    // An incremental of it is running (it reuses the parent's chunk lists);
    // retention marks the parent deleted before deleting its manifest.
    let child = library.running(&parent, times::now(), Some(&parent)).await;
    library.take_ticket(&child.id).await;
    library.catalog.mark_deleted(&parent, &times::now_text()).await.unwrap();

    let report = gc(&store);
    assert!(
        report["marked"].is_null(),
        "the running backup's parent's chunks were marked as garbage: {report}"
    );
    assert!(
        library.has_manifest(&parent).await,
        "the parent's manifest, which the running backup reads, was collected: {report}"
    );
}

#[tokio::test]
async fn gc_collects_manifests_of_failed_deleted_and_unknown_backups_but_never_live_or_held_ones() {
    let store = Store::new().await;
    let library = Library::open(&store).await;
    let source = create_bucket(&store.s3, "src").await;
    let url = format!("s3://{source}/app");
    let kept_data = data("kept");
    put_objects(&store.s3, &source, &kept_data).await;
    let kept = backup(&store, &url);
    // Retention crashed between marking a backup deleted and deleting its manifest.
    let deleted = backup(&store, &url);
    library
        .catalog
        .mark_deleted(&deleted, &times::now_text())
        .await
        .unwrap();
    // A backup failed after writing its manifest; one held; one running.
    let failed = library.running(&kept, times::now(), None).await;
    library.copy_manifest(&kept, &failed.id).await;
    library.catalog.fail(&failed.id, "test: failed").await.unwrap();
    let held = library.running(&kept, times::now(), None).await;
    library.copy_manifest(&kept, &held.id).await;
    library.catalog.fail(&held.id, "test: failed").await.unwrap();
    library
        .catalog
        .add_hold(&HoldRecord {
            backup_id: held.id.clone(),
            reason: "case 17".into(),
            actor: "test".into(),
            created_at: times::now_text(),
        })
        .await
        .unwrap();
    let running = library.running(&kept, times::now(), None).await;
    library.copy_manifest(&kept, &running.id).await;
    // A manifest whose record does not exist at all.
    let unknown = lifeboat::ids::BackupId::new(times::now()).to_string();
    library.copy_manifest(&kept, &unknown).await;

    let young = store.json(&["gc", "--grace", "1h"]);
    assert_eq!(
        young["orphanManifests"],
        serde_json::json!([]),
        "within the grace period: {young}"
    );
    let report = gc(&store);
    let mut collected: Vec<String> = serde_json::from_value(report["orphanManifests"].clone()).unwrap();
    collected.sort();
    let mut expected = vec![deleted.clone(), failed.id.clone(), unknown.clone()];
    expected.sort();
    assert_eq!(collected, expected, "{report}");
    for id in [&deleted, &failed.id, &unknown] {
        assert!(!library.has_manifest(id).await, "{id}'s manifest is still there");
    }
    for id in [&kept, &held.id, &running.id] {
        assert!(library.has_manifest(id).await, "{id}'s manifest was deleted");
    }
    restore_matches(&store, &kept, &kept_data);
}

#[tokio::test]
async fn gc_is_not_stopped_by_a_backup_retention_expires_while_it_reads_the_manifests() {
    use lifeboat::gc::references::{referenced_chunks, store_backups};
    let store = Store::new().await;
    let library = Library::open(&store).await;
    let source = create_bucket(&store.s3, "src").await;
    let url = format!("s3://{source}/app");
    put_objects(&store.s3, &source, &data("old")).await;
    let expiring = backup(&store, &url);
    put_objects(&store.s3, &source, &data("new")).await;
    let kept = backup(&store, &url);
    // GC read the records (both completed) and the index; then retention
    // expired one: record `deleted` first, then its manifest.
    let records = store_backups(&library.repo, &library.catalog).await.unwrap();
    let index = library.repo.load_index().await.unwrap();
    library.expire(&expiring).await;

    let references = referenced_chunks(&library.repo, &library.catalog, &records, &index)
        .await
        .expect("a manifest retention deleted after the records were read stopped garbage collection");
    let kept_manifest = library.repo.get_manifest(&kept, None).await.unwrap();
    assert!(
        kept_manifest
            .entries
            .iter()
            .flat_map(|e| &e.chunks)
            .all(|c| references.chunks.contains(c)),
        "the kept backup's chunks are not all referenced"
    );

    // A completed record whose manifest is gone is still damage: GC stops.
    library
        .repo
        .storage
        .delete(&library.repo.layout.manifest(&kept))
        .await
        .unwrap();
    let error = referenced_chunks(&library.repo, &library.catalog, &records, &index)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.contains(&kept) && error.contains("manifest cannot be read"),
        "a completed backup without its manifest did not stop garbage collection: {error:?}"
    );
}
