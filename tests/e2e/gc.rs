//! Garbage collection: only unreferenced data goes, kept backups still
//! restore, and a backup running during a collection never loses a chunk.

use std::collections::BTreeMap;
use std::sync::Arc;

use lifeboat::aws::Clients;
use lifeboat::catalog::Catalog;
use lifeboat::keys::Kms;
use lifeboat::repo::{storage_for, Repository};
use lifeboat::storage::Location;
use lifeboat_e2e::{sdk_config, REGION};
use serde_json::Value;

use crate::support::{assert_same_tree, create_bucket, dir_contents, put_objects, random_bytes, relative, Store};

/// The library's view of a test store, to set up states the CLI reaches
/// only over days (an expired backup) or by crashing (a backup in flight).
struct Library {
    repo: Arc<Repository>,
    catalog: Catalog,
}

impl Library {
    async fn open(store: &Store) -> Self {
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

    /// What retention does to an expired backup: record first, then manifest.
    async fn expire(&self, id: &str) {
        self.catalog
            .mark_deleted(id, &lifeboat::times::now_text())
            .await
            .expect("mark deleted");
        self.repo
            .storage
            .delete(&self.repo.layout.manifest(id))
            .await
            .expect("delete manifest");
    }
}

fn backup(store: &Store, source: &str) -> String {
    store.json(&["backup", "files", source])["backupId"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A collection as soon as possible; the share interlock has its own test
/// (gc_safety.rs), these small stores are often mostly garbage.
fn gc(store: &Store) -> Value {
    store.json(&["gc", "--grace", "0s", "--force"])
}

fn restore_matches(store: &Store, id: &str, expected: &BTreeMap<String, Vec<u8>>, prefix: &str) {
    let target = tempfile::tempdir().unwrap();
    store.ok(&["restore", "files", id, "--to", target.path().to_str().unwrap()]);
    assert_same_tree(&dir_contents(target.path()), &relative(expected, prefix));
}

#[tokio::test]
async fn gc_frees_what_expired_backups_alone_used_and_kept_backups_still_restore() {
    let store = Store::new().await;
    let library = Library::open(&store).await;
    let source = create_bucket(&store.s3, "src").await;
    let url = format!("s3://{source}/app");
    let shared = random_bytes(2 << 20, "shared");
    let mut old = BTreeMap::new();
    for i in 0..3 {
        old.insert(format!("app/old-{i}.bin"), random_bytes(5 << 20, &format!("old-{i}")));
    }
    old.insert("app/shared.bin".to_owned(), shared.clone());
    put_objects(&store.s3, &source, &old).await;
    let first = backup(&store, &url);
    for key in old.keys().filter(|k| k.contains("old-")) {
        store.s3.delete_object().bucket(&source).key(key).send().await.unwrap();
    }
    let mut new = BTreeMap::new();
    new.insert("app/new.bin".to_owned(), random_bytes(3 << 20, "new"));
    new.insert("app/shared.bin".to_owned(), shared);
    put_objects(&store.s3, &source, &new).await;
    let second = backup(&store, &url);

    // Nothing is garbage while both backups exist.
    let report = gc(&store);
    assert!(report["marked"].is_null(), "{report}");

    library.expire(&first).await;
    let before = store.stored_bytes().await;
    let marked = gc(&store);
    assert!(marked["marked"]["list"].is_string(), "{marked}");
    assert!(
        marked["marked"]["garbageBytes"].as_u64().unwrap() >= 15 << 20,
        "{marked}"
    );
    assert!(
        store.stored_bytes().await - before < 4096,
        "marking only writes a small list"
    );

    let swept = gc(&store);
    let sweep = &swept["swept"][0];
    assert!(
        sweep["packsDeleted"].as_u64().unwrap() + sweep["packsRewritten"].as_u64().unwrap() >= 1,
        "{swept}"
    );
    let after = store.stored_bytes().await;
    println!("store: {before} bytes before, {after} after garbage collection");
    assert!(
        before - after >= 14 << 20,
        "freed only {} bytes of 15 MiB of garbage",
        before - after
    );

    restore_matches(&store, &second, &new, "app/");
    let verify = store.json(&["verify", &second, "--deep"]);
    assert_eq!(verify["ok"], true, "{verify}");
    let again = gc(&store);
    assert!(
        again["marked"].is_null() && again["swept"].as_array().unwrap().is_empty(),
        "{again}"
    );
}

#[tokio::test]
async fn a_backup_running_across_the_mark_blocks_the_sweep_and_keeps_its_chunks() {
    let store = Store::new().await;
    let library = Library::open(&store).await;
    let source = create_bucket(&store.s3, "src").await;
    let url = format!("s3://{source}/app");
    let mut data = BTreeMap::new();
    for i in 0..3 {
        data.insert(format!("app/data-{i}.bin"), random_bytes(4 << 20, &format!("data-{i}")));
    }
    put_objects(&store.s3, &source, &data).await;
    let first = backup(&store, &url);
    let manifest = library.repo.get_manifest(&first, None).await.unwrap();
    library.expire(&first).await;

    // A backup that loaded the index before the mark, deduplicated against
    // every chunk of the expired one, and is still running.
    let now = lifeboat::times::now();
    let id = lifeboat::ids::BackupId::new(now).to_string();
    let running = lifeboat::catalog::BackupRecord {
        storage_location: library.repo.storage.describe(&library.repo.layout.manifest(&id)),
        id,
        status: lifeboat::catalog::BackupStatus::Pending,
        created_at: lifeboat::times::format(now),
        error: None,
        checksum: None,
        completed_at: None,
        ..library.catalog.get(&first).await.unwrap()
    };
    library.catalog.begin(&running, None).await.unwrap();
    library.catalog.mark_in_progress(&running.id).await.unwrap();

    let marked = gc(&store);
    assert!(marked["marked"]["list"].is_string(), "{marked}");
    let packs = store.packs().await;
    let blocked = gc(&store);
    assert!(blocked["swept"].as_array().unwrap().is_empty(), "{blocked}");
    let reason = blocked["waiting"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&running.id), "{blocked}");
    assert_eq!(store.packs().await, packs, "nothing may go while the backup runs");

    // The backup completes, referencing the candidates: the sweep rescues them.
    let mut finished = manifest.clone();
    finished.backup_id = running.id.clone();
    let checksum = library.repo.put_manifest(&finished).await.unwrap();
    let done = lifeboat::catalog::Completion {
        size: finished.size(),
        compressed_size: 0,
        entry_count: finished.entries.len() as u64,
        changed_count: 0,
        checksum,
    };
    library.catalog.complete(&running.id, &done).await.unwrap();
    let swept = gc(&store);
    assert_eq!(
        swept["swept"][0]["chunksRescued"].as_u64(),
        Some(manifest.entries.iter().map(|e| e.chunks.len() as u64).sum()),
        "{swept}"
    );
    restore_matches(&store, &running.id, &data, "app/");
}

#[tokio::test]
async fn real_backups_and_collections_running_together_lose_nothing() {
    let store = Store::new().await;
    let library = Library::open(&store).await;
    let source = create_bucket(&store.s3, "src").await;
    let url = format!("s3://{source}/app");
    let mut expected = Vec::new();
    let mut previous: Option<String> = None;
    for round in 0..4 {
        let mut data = BTreeMap::new();
        for i in 0..4 {
            // Half the data repeats the previous round's, so dedup meets candidates.
            let seed = format!("round-{}-{i}", if i % 2 == 0 { round / 2 } else { round });
            data.insert(format!("app/{i}.bin"), random_bytes(3 << 20, &seed));
        }
        put_objects(&store.s3, &source, &data).await;
        if let Some(old) = previous.take() {
            library.expire(&old).await;
        }
        // A backup and two collections at once, as separate processes.
        let (backup_store, gc_store) = (Arc::new(store_clone(&store)), Arc::new(store_clone(&store)));
        let url_for_backup = url.clone();
        let backup_task = tokio::task::spawn_blocking(move || backup(&backup_store, &url_for_backup));
        let gc_task = tokio::task::spawn_blocking(move || {
            gc(&gc_store);
            gc(&gc_store);
        });
        let id = backup_task.await.unwrap();
        gc_task.await.unwrap();
        expected.push((id.clone(), data));
        previous = Some(id);
    }
    // Collect until nothing is pending; the garbage is gone and the kept
    // backup restores and verifies.
    for _ in 0..4 {
        gc(&store);
    }
    let settled = store.json(&["gc", "--grace", "0s", "--force", "--dry-run"]);
    assert!(
        settled["marked"].is_null() && settled["waiting"].as_array().unwrap().is_empty(),
        "{settled}"
    );
    let (last, data) = expected.last().unwrap();
    let live: u64 = data.values().map(|v| v.len() as u64).sum();
    let stored = store.stored_bytes().await;
    println!("after 4 rounds: {stored} bytes stored for {live} bytes of live data");
    // A pack less than half garbage is left alone (rewriting it would cost
    // more than it frees), so up to as much garbage as live data may remain.
    assert!(
        stored < 2 * live,
        "garbage left behind: {stored} bytes stored for {live} live"
    );
    restore_matches(&store, last, data, "app/");
    let verify = store.json(&["verify", last, "--deep"]);
    assert_eq!(verify["ok"], true, "{verify}");
}

/// The same store, for another thread (the fixture is not `Clone` on purpose
/// elsewhere; here two processes share one store).
fn store_clone(store: &Store) -> Store {
    Store {
        bucket: store.bucket.clone(),
        url: store.url.clone(),
        table: store.table.clone(),
        kms_key: store.kms_key.clone(),
        s3: store.s3.clone(),
        kms: store.kms.clone(),
    }
}
