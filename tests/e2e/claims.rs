//! Claims with a heartbeat (issue 13): a backup killed mid-run (Lambda
//! timeout, out of memory) leaves its claim in progress with a heartbeat
//! that stops; a redelivery of its event takes it over and completes, and
//! the old holder can never complete afterwards. A redelivery while the
//! backup still runs fails retryably (`Lifeboat.BackupInProgress`) instead
//! of being answered "duplicate" as if it had succeeded. Dump claims the
//! same way.

use std::collections::BTreeMap;
use std::time::Duration;

use lifeboat::catalog::{
    BackupRecord, BackupStatus, Begin, Catalog, CatalogError, ClaimTarget, ClaimTiming, Completion, Heartbeat,
};
use lifeboat::ids::BackupId;
use lifeboat::snapshot::records::{DumpClaim, SnapshotStatus};
use lifeboat::times::{self, SignedDuration};
use lifeboat_e2e::{dynamodb_client, invoke_function, workspace_bin, REGION};
use serde_json::{json, Value};

use crate::support::{assert_same_tree, create_bucket, dir_contents, put_objects, relative, text_bytes, Store};

async fn catalog(store: &Store) -> Catalog {
    Catalog::new(dynamodb_client().await, &store.table, REGION)
}

/// An unfinished backup record of `source`, started `started_ago` and last
/// alive `heartbeat_ago` before now.
fn unfinished(source: &str, started_ago: SignedDuration, heartbeat_ago: SignedDuration) -> BackupRecord {
    let now = times::now();
    let started = now - started_ago;
    serde_json::from_value(json!({
        "id": BackupId::new(started).to_string(),
        "type": "full",
        "status": "pending",
        "source": source,
        "size": 0,
        "compressedSize": 0,
        "entryCount": 0,
        "changedCount": 0,
        "createdAt": times::format(started),
        "heartbeatAt": times::format(now - heartbeat_ago),
        "storageLocation": "s3://store/manifests/killed",
        "kmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/k",
    }))
    .expect("a backup record")
}

/// A data bucket with a source under `app/`, and a direct backup request
/// of it with `key` as its idempotency key.
async fn source_and_request(store: &Store, key: &str) -> (String, BTreeMap<String, Vec<u8>>, Value) {
    let data = create_bucket(&store.s3, "claims").await;
    let objects = BTreeMap::from([
        ("app/a.txt".to_owned(), text_bytes(40_000, "claims-a")),
        ("app/b/c.txt".to_owned(), text_bytes(70_000, "claims-c")),
    ]);
    put_objects(&store.s3, &data, &objects).await;
    let request = json!({
        "source": format!("s3://{data}/app"),
        "type": "full",
        "store": store.url,
        "idempotencyKey": key,
    });
    (format!("s3://{data}/app/"), relative(&objects, "app/"), request)
}

async fn invoke(store: &Store, event: &Value) -> Result<Value, Value> {
    invoke_function(
        &workspace_bin("file-backup"),
        event,
        &[
            ("LIFEBOAT_TABLE", store.table.clone()),
            ("LIFEBOAT_KMS_KEY", store.kms_key.clone()),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("file-backup did not answer: {e:#}"))
}

#[tokio::test]
async fn a_killed_backups_redelivery_takes_over_its_stale_claim_and_completes() {
    let store = Store::new().await;
    let catalog = catalog(&store).await;
    let (source, contents, request) = source_and_request(&store, "evt-killed").await;

    // What a run killed 10 minutes ago leaves: its claim, its record in
    // progress, a heartbeat that stopped 5 minutes ago.
    let killed = unfinished(&source, SignedDuration::from_mins(10), SignedDuration::from_mins(5));
    assert!(matches!(
        catalog.begin(&killed, Some("evt-killed")).await.unwrap(),
        Begin::Started
    ));
    catalog.mark_in_progress(&killed.id).await.unwrap();

    // The retry (well within the old 20 minutes) is a real backup, not "duplicate".
    let summary = invoke(&store, &request)
        .await
        .unwrap_or_else(|e| panic!("the redelivery failed: {e}"));
    assert_eq!(summary["status"], "completed", "{summary}");
    assert_eq!(
        summary["duplicate"], false,
        "the retry was answered as a duplicate: {summary}"
    );
    assert_ne!(summary["backupId"], killed.id.as_str());

    let old = catalog.get(&killed.id).await.unwrap();
    assert_eq!(old.status, BackupStatus::Failed, "{old:?}");
    let error = old.error.unwrap_or_default();
    assert!(error.contains("abandoned: no heartbeat since"), "{error}");
    // The old holder, were it only paused, can never complete now.
    assert!(matches!(
        catalog.complete(&killed.id, &Completion::default()).await,
        Err(CatalogError::Conflict { .. })
    ));

    let restored = tempfile::tempdir().expect("temp dir");
    let id = summary["backupId"].as_str().expect("an id");
    store.ok(&["restore", "files", id, "--to", restored.path().to_str().expect("utf-8")]);
    assert_same_tree(&dir_contents(restored.path()), &contents);
}

#[tokio::test]
async fn a_redelivery_while_the_backup_still_runs_fails_retryably_instead_of_reporting_success() {
    let store = Store::new().await;
    let catalog = catalog(&store).await;
    let (source, _, request) = source_and_request(&store, "evt-live").await;

    let running = unfinished(&source, SignedDuration::from_mins(2), SignedDuration::from_secs(5));
    assert!(matches!(
        catalog.begin(&running, Some("evt-live")).await.unwrap(),
        Begin::Started
    ));
    catalog.mark_in_progress(&running.id).await.unwrap();

    let error = match invoke(&store, &request).await {
        Ok(answer) => panic!("a redelivery of a running backup reported success: {answer}"),
        Err(error) => error,
    };
    assert_eq!(error["errorType"], "Lifeboat.BackupInProgress", "{error}");
    let message = error["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains(&running.id) && message.contains("still running"),
        "{message}"
    );
    // Nothing was touched: the running backup goes on, no second one was made.
    let now = catalog.get(&running.id).await.unwrap();
    assert_eq!(now.status, BackupStatus::InProgress);
    assert_eq!(catalog.list(Some(&source)).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_running_backup_keeps_its_claim_fresh_until_it_is_taken_over() {
    let store = Store::new().await;
    let timing = ClaimTiming {
        heartbeat: Duration::from_millis(100),
        stale_after: SignedDuration::from_secs(60),
        lease_wait: Duration::from_secs(1),
    };
    let catalog = catalog(&store).await.with_claim_timing(timing);
    let record = unfinished(
        "s3://data/hb/",
        SignedDuration::from_mins(1),
        SignedDuration::from_mins(1),
    );
    catalog.begin(&record, None).await.unwrap();
    let heartbeat = Heartbeat::start(&catalog, vec![ClaimTarget::Backup(record.id.clone())]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let refreshed = catalog.get(&record.id).await.unwrap();
    let beat = times::parse(refreshed.last_alive()).unwrap();
    assert!(
        times::now().duration_since(beat) < SignedDuration::from_secs(5),
        "the heartbeat was not refreshed: {refreshed:?}"
    );
    drop(heartbeat);

    // Once failed (taken over), a refresh no longer counts as the holder's.
    catalog.fail(&record.id, "taken over").await.unwrap();
    assert!(!catalog.refresh(&ClaimTarget::Backup(record.id.clone())).await.unwrap());
}

fn dump_claim(heartbeat_ago: SignedDuration, holder: &str) -> DumpClaim {
    let now = times::now();
    DumpClaim {
        plan: "nightly".into(),
        source: "postgresql://app@db.internal:5432/app".into(),
        scheduled_time: "2026-11-23T02:00Z".into(),
        status: SnapshotStatus::InProgress,
        backup_id: None,
        error: None,
        created_at: times::format(now - heartbeat_ago),
        heartbeat_at: Some(times::format(now - heartbeat_ago)),
        holder: Some(holder.into()),
    }
}

#[tokio::test]
async fn a_dump_claim_stuck_in_progress_is_taken_over_and_a_live_one_is_not() {
    let store = Store::new().await;
    let claims = catalog(&store).await.snapshots();

    let stuck = dump_claim(SignedDuration::from_mins(30), "killed");
    assert!(claims.claim_dump(&stuck).await.unwrap().is_none());
    // Its redelivery: the holder stopped 30 minutes ago, so the claim is taken.
    let retry = dump_claim(SignedDuration::ZERO, "retry");
    assert!(
        claims.claim_dump(&retry).await.unwrap().is_none(),
        "a dump claim stuck in progress was not taken over"
    );
    // The old holder cannot record an end over its successor's claim.
    let mut late = stuck.clone();
    late.status = SnapshotStatus::Completed;
    assert!(claims.finish_dump(&late).await.is_err());

    // While the retry is alive, another delivery finds it running.
    let another = dump_claim(SignedDuration::ZERO, "another");
    let held = claims
        .claim_dump(&another)
        .await
        .unwrap()
        .expect("a live dump claim was taken over");
    assert_eq!(held.holder.as_deref(), Some("retry"));
    assert_eq!(held.status, SnapshotStatus::InProgress);

    let mut done = retry.clone();
    done.status = SnapshotStatus::Completed;
    claims.finish_dump(&done).await.unwrap();
}
