//! The catalog's idempotency claims and status transitions, against the
//! emulator's DynamoDB (condition expressions and transactions).

use lifeboat::catalog::{BackupRecord, BackupStatus, Begin, Catalog, CatalogError, Completion};
use lifeboat::format::BackupType;
use lifeboat::ids::BackupId;
use lifeboat_e2e::{dynamodb_client, unique, REGION};

fn record(minutes_ago: i64) -> BackupRecord {
    let at = lifeboat::times::now() - lifeboat::times::SignedDuration::from_mins(minutes_ago);
    BackupRecord {
        id: BackupId::new(at).to_string(),
        backup_type: BackupType::Full,
        status: BackupStatus::Pending,
        source: "s3://data/app/".into(),
        size: 0,
        compressed_size: 0,
        entry_count: 0,
        changed_count: 0,
        created_at: lifeboat::times::format(at),
        completed_at: None,
        retention_until: None,
        checksum: None,
        storage_location: "s3://store/manifests/x".into(),
        store_id: None,
        parent_backup: None,
        kms_key_id: "arn:aws:kms:us-east-1:123456789012:key/k".into(),
        error: None,
        engine: None,
        server_version: None,
        database: None,
        gc_ticket: None,
        heartbeat_at: Some(lifeboat::times::format(at)),
    }
}

async fn catalog() -> Catalog {
    let catalog = Catalog::new(dynamodb_client().await, &unique("catalog"), REGION);
    assert!(catalog.create_table().await.expect("create table"));
    assert!(!catalog.create_table().await.expect("second create is harmless"));
    catalog
}

fn duplicate_of(begin: Begin) -> String {
    match begin {
        Begin::Duplicate(existing) => existing.id,
        Begin::Started => panic!("expected a duplicate, a new backup was started"),
        Begin::Busy(running) => panic!("expected a duplicate, found {} still running", running.id),
    }
}

fn busy_with(begin: Begin) -> String {
    match begin {
        Begin::Busy(running) => running.id,
        other => panic!("expected the claim's backup still running, got {other:?}"),
    }
}

#[tokio::test]
async fn a_claimed_event_returns_the_first_backup_until_it_fails_or_is_abandoned() {
    let catalog = catalog().await;

    // A running backup holds its event's claim: a redelivery meanwhile is
    // told it is still running (an error for the caller), not a duplicate.
    let first = record(0);
    assert!(matches!(
        catalog.begin(&first, Some("evt-1")).await.unwrap(),
        Begin::Started
    ));
    assert_eq!(
        busy_with(catalog.begin(&record(0), Some("evt-1")).await.unwrap()),
        first.id
    );
    catalog.mark_in_progress(&first.id).await.unwrap();
    assert_eq!(
        busy_with(catalog.begin(&record(0), Some("evt-1")).await.unwrap()),
        first.id
    );

    // Completed: still the same backup, and it cannot complete twice.
    let done = Completion {
        size: 1,
        compressed_size: 1,
        entry_count: 1,
        changed_count: 1,
        checksum: "c".into(),
    };
    catalog.complete(&first.id, &done).await.unwrap();
    assert!(matches!(
        catalog.complete(&first.id, &done).await,
        Err(CatalogError::Conflict { .. })
    ));
    assert_eq!(
        duplicate_of(catalog.begin(&record(0), Some("evt-1")).await.unwrap()),
        first.id
    );

    // A failed backup's event is retried by its redelivery, once.
    let failing = record(0);
    assert!(matches!(
        catalog.begin(&failing, Some("evt-2")).await.unwrap(),
        Begin::Started
    ));
    catalog.fail(&failing.id, "source bucket missing").await.unwrap();
    let retry = record(0);
    assert!(matches!(
        catalog.begin(&retry, Some("evt-2")).await.unwrap(),
        Begin::Started
    ));
    assert_eq!(
        busy_with(catalog.begin(&record(0), Some("evt-2")).await.unwrap()),
        retry.id
    );

    // An unfinished backup whose heartbeat stopped was abandoned: the
    // redelivery marks it failed, saying why, and retries.
    let stuck = record(90);
    assert!(matches!(
        catalog.begin(&stuck, Some("evt-3")).await.unwrap(),
        Begin::Started
    ));
    catalog.mark_in_progress(&stuck.id).await.unwrap();
    let rescue = record(0);
    assert!(matches!(
        catalog.begin(&rescue, Some("evt-3")).await.unwrap(),
        Begin::Started
    ));
    let stuck_now = catalog.get(&stuck.id).await.unwrap();
    assert_eq!(stuck_now.status, BackupStatus::Failed);
    assert!(
        stuck_now.error.as_deref().unwrap_or_default().contains("abandoned"),
        "{stuck_now:?}"
    );
    assert_eq!(
        busy_with(catalog.begin(&record(0), Some("evt-3")).await.unwrap()),
        rescue.id
    );

    // Without a key every call is a new backup; transitions are conditional.
    let free = record(0);
    assert!(matches!(catalog.begin(&free, None).await.unwrap(), Begin::Started));
    assert!(
        matches!(
            catalog.complete(&free.id, &done).await,
            Err(CatalogError::Conflict { .. })
        ),
        "pending cannot complete"
    );
    assert!(matches!(
        catalog.get("bk-20000101T000000Z-00000000").await,
        Err(CatalogError::UnknownBackup { .. })
    ));
}
