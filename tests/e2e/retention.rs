//! `lifeboat hold` and `lifeboat retention apply`, through the real binary:
//! a dry run changes nothing; a real run marks exactly the planned backups
//! `deleted`, removes their manifests, records the deletions in the audit
//! trail, and leaves the held, verified and kept backups restorable.

use std::collections::{BTreeMap, BTreeSet};

use lifeboat::times::{self, SignedDuration};
use serde_json::Value;

use crate::support::{describe, dir_contents, random_bytes, text_bytes, Store};

/// Now plus a day, so every backup of the test is in the past.
fn tomorrow() -> String {
    times::format(times::now() + SignedDuration::from_hours(24))
}

fn ids_in(values: &Value, field: &str) -> BTreeSet<String> {
    values[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} in {values}"))
        .iter()
        .map(|v| v["id"].as_str().expect("id").to_owned())
        .collect()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).clone()).collect()
}

fn statuses(store: &Store) -> BTreeMap<String, String> {
    let list = store.json(&["backups", "list"]);
    list.as_array()
        .expect("a list")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().expect("id").to_owned(),
                r["status"].as_str().expect("status").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn retention_deletes_only_what_the_policy_and_protections_allow() {
    let store = Store::new().await;
    let source = tempfile::tempdir().unwrap();
    let shared = random_bytes(300_000, "retention-shared");
    // Six backups of one directory, each with a different version of one file.
    let mut ids = Vec::new();
    let mut contents = Vec::new();
    for i in 0..6 {
        std::fs::write(source.path().join("shared.bin"), &shared).unwrap();
        std::fs::write(
            source.path().join("version.txt"),
            text_bytes(20_000 + i * 1000, &format!("v{i}")),
        )
        .unwrap();
        let summary = store.json(&["backup", "files", source.path().to_str().unwrap()]);
        assert_eq!(summary["status"], "completed", "{summary}");
        ids.push(summary["backupId"].as_str().unwrap().to_owned());
        contents.push(dir_contents(source.path()));
    }

    // Hold the second oldest; verify the third (so it is the newest verified one).
    let held = store.json(&["hold", "add", &ids[1], "--reason", "case 2026-17"]);
    assert_eq!(held["added"], true, "{held}");
    let again = store.json(&["hold", "add", &ids[1], "--reason", "again"]);
    assert_eq!(again["added"], false, "{again}");
    let holds = store.json(&["hold", "list"]);
    assert_eq!(holds.as_array().unwrap().len(), 1, "{holds}");
    assert_eq!(holds[0]["backupId"], ids[1].as_str());
    assert_eq!(holds[0]["reason"], "case 2026-17");
    let verified = store.json(&["verify", &ids[2]]);
    assert_eq!(verified["ok"], true, "{verified}");

    // Bad input: no rule, unknown time zone, a bad --at. Nothing happens.
    let no_rule = store.run(&["retention", "apply"]);
    assert!(!no_rule.status.success(), "{}", describe(&no_rule));
    assert!(
        String::from_utf8_lossy(&no_rule.stderr).contains("at least one of --keep-last"),
        "{}",
        describe(&no_rule)
    );
    let bad_zone = store.run(&["retention", "apply", "--keep-last", "2", "--timezone", "Mars/Base"]);
    assert!(!bad_zone.status.success(), "{}", describe(&bad_zone));
    assert!(
        String::from_utf8_lossy(&bad_zone.stderr).contains("Mars/Base"),
        "{}",
        describe(&bad_zone)
    );
    let bad_at = store.run(&["retention", "apply", "--keep-last", "2", "--at", "yesterday"]);
    assert!(!bad_at.status.success(), "{}", describe(&bad_at));

    // A dry run prints the plan and changes nothing.
    let at = tomorrow();
    let records_before = store.json(&["backups", "list"]);
    let objects_before = store.objects().await;
    let dry = store.json(&["retention", "apply", "--keep-last", "2", "--at", &at, "--dry-run"]);
    assert_eq!(dry["dryRun"], true, "{dry}");
    let plan = &dry["plan"];
    assert_eq!(ids_in(plan, "delete"), set(&[&ids[0], &ids[3]]), "{plan}");
    assert_eq!(
        ids_in(plan, "keep"),
        set(&[&ids[1], &ids[2], &ids[4], &ids[5]]),
        "{plan}"
    );
    let reasons = |id: &str| -> Vec<Value> {
        plan["keep"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id)
            .map(|k| k["reasons"].as_array().unwrap().clone())
            .unwrap_or_default()
    };
    assert!(reasons(&ids[1]).iter().any(|r| r["rule"] == "held"), "{plan}");
    assert!(
        reasons(&ids[2])
            .iter()
            .any(|r| r["rule"] == "newest" && r["verified"] == true),
        "{plan}"
    );
    assert!(reasons(&ids[5]).iter().any(|r| r["rule"] == "last"), "{plan}");
    let text = store.ok(&["retention", "apply", "--keep-last", "2", "--at", &at, "--dry-run"]);
    assert!(text.contains("Dry run: nothing was changed."), "{text}");
    assert!(text.contains(&format!("delete  {}", ids[0])), "{text}");
    assert_eq!(
        store.json(&["backups", "list"]),
        records_before,
        "a dry run changed the catalog"
    );
    assert_eq!(store.objects().await, objects_before, "a dry run changed the store");

    // The real run.
    let applied = store.json(&["retention", "apply", "--keep-last", "2", "--at", &at]);
    assert_eq!(ids_in(&applied, "deleted"), set(&[&ids[0], &ids[3]]), "{applied}");
    assert!(applied["failed"].as_array().unwrap().is_empty(), "{applied}");
    assert!(applied["skipped"].as_array().unwrap().is_empty(), "{applied}");
    let after = statuses(&store);
    for (i, id) in ids.iter().enumerate() {
        let expected = if i == 0 || i == 3 { "deleted" } else { "completed" };
        assert_eq!(after[id], expected, "backup {i} ({id})");
    }
    let objects = store.objects().await;
    for (i, id) in ids.iter().enumerate() {
        let present = objects.contains_key(&format!("lifeboat/manifests/{id}"));
        assert_eq!(present, i != 0 && i != 3, "manifest of backup {i} ({id})");
    }
    // Chunk data stays (garbage collection's job): every pack is still there.
    let packs_before: Vec<_> = objects_before
        .keys()
        .filter(|k| k.starts_with("lifeboat/data/"))
        .collect();
    assert!(
        packs_before.iter().all(|k| objects.contains_key(*k)),
        "a pack was deleted"
    );

    // The deletions are in the audit trail.
    let trail = store.json(&["audit-log", "show"]);
    let deleted_in_trail: BTreeSet<String> = trail
        .as_array()
        .expect("audit records")
        .iter()
        .filter(|r| r["action"] == "backup.deleted")
        .map(|r| r["subject"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(deleted_in_trail, set(&[&ids[0], &ids[3]]), "{trail}");

    // What stays restores byte for byte; what went does not restore.
    for i in [1, 2, 4, 5] {
        let target = tempfile::tempdir().unwrap();
        store.ok(&["restore", "files", &ids[i], "--to", target.path().to_str().unwrap()]);
        assert_eq!(
            dir_contents(target.path()),
            contents[i],
            "backup {i} restored differently"
        );
    }
    let gone = tempfile::tempdir().unwrap();
    let restore_deleted = store.run(&["restore", "files", &ids[0], "--to", gone.path().to_str().unwrap()]);
    assert!(!restore_deleted.status.success(), "{}", describe(&restore_deleted));

    // Running it again deletes nothing more.
    let again = store.json(&["retention", "apply", "--keep-last", "2", "--at", &at]);
    assert!(again["deleted"].as_array().unwrap().is_empty(), "{again}");

    // Once the hold is lifted, the held backup goes too.
    let removed = store.json(&["hold", "remove", &ids[1]]);
    assert_eq!(removed["removed"]["reason"], "case 2026-17", "{removed}");
    assert!(store.json(&["hold", "list"]).as_array().unwrap().is_empty());
    let last = store.json(&["retention", "apply", "--keep-last", "2", "--at", &at]);
    assert_eq!(ids_in(&last, "deleted"), set(&[&ids[1]]), "{last}");
}

#[tokio::test]
async fn incremental_chains_stay_whole_and_a_hold_placed_after_the_plan_wins() {
    use lifeboat::catalog::Catalog;
    use lifeboat::expire::{apply_expiry, plan_expiry};
    use lifeboat::keys::Kms;
    use lifeboat::repo::Repository;
    use lifeboat::retention::{KeepReason, RetentionPolicy};
    use lifeboat::storage::Storage;
    use lifeboat_e2e::{dynamodb_client, REGION};

    let store = Store::new().await;
    let source = tempfile::tempdir().unwrap();
    let path = source.path().to_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for (i, kind) in ["full", "incremental", "incremental"].into_iter().enumerate() {
        std::fs::write(
            source.path().join(format!("f{i}.bin")),
            random_bytes(50_000, &format!("chain-{i}")),
        )
        .unwrap();
        let summary = store.json(&["backup", "files", &path, "--type", kind]);
        assert_eq!(summary["type"], kind, "{summary}");
        ids.push(summary["backupId"].as_str().unwrap().to_owned());
    }
    let catalog = Catalog::new(dynamodb_client().await, &store.table, REGION);
    let policy = RetentionPolicy {
        keep_last: Some(1),
        ..RetentionPolicy::default()
    };
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24);

    // The newest incremental is kept, and so is its whole chain.
    let plan = plan_expiry(&catalog, None, &policy, later).await.unwrap();
    assert!(plan.delete.is_empty(), "{plan:?}");
    let parent_of = |id: &str, child: &str| {
        plan.keep
            .iter()
            .any(|k| k.id == id && k.reasons.contains(&KeepReason::Parent { child: child.into() }))
    };
    assert!(parent_of(&ids[1], &ids[2]) && parent_of(&ids[0], &ids[1]), "{plan:?}");

    // A new full backup ends the chain's protection.
    let summary = store.json(&["backup", "files", &path, "--type", "full"]);
    ids.push(summary["backupId"].as_str().unwrap().to_owned());
    let source_name = summary["source"].as_str().unwrap().to_owned();
    let plan = plan_expiry(&catalog, Some(&source_name), &policy, later).await.unwrap();
    let doomed: BTreeSet<String> = plan.delete.iter().map(|d| d.id.clone()).collect();
    assert_eq!(doomed, set(&[&ids[0], &ids[1], &ids[2]]), "{plan:?}");

    // A hold placed between plan and apply wins.
    store.ok(&["hold", "add", &ids[0], "--reason", "late hold"]);
    let storage = Storage::s3(store.s3.clone(), &store.bucket, REGION);
    let kms = Kms::new(store.kms.clone(), REGION);
    let repo = Repository::open(storage, "lifeboat", &kms, None).await.unwrap();
    let summary = apply_expiry(&repo, &catalog, None, &plan).await.unwrap();
    let deleted: BTreeSet<String> = summary.deleted.iter().map(|d| d.id.clone()).collect();
    assert_eq!(deleted, set(&[&ids[1], &ids[2]]), "{summary:?}");
    assert_eq!(summary.skipped.len(), 1, "{summary:?}");
    assert_eq!(summary.skipped[0].id, ids[0]);
    assert!(summary.skipped[0].reason.contains("held"), "{summary:?}");
    let after = statuses(&store);
    assert_eq!(after[&ids[0]], "completed");
    assert_eq!(after[&ids[1]], "deleted");
    assert_eq!(after[&ids[2]], "deleted");
    assert_eq!(after[&ids[3]], "completed");

    // Applying the same plan again changes nothing more: the records moved on.
    let again = apply_expiry(&repo, &catalog, None, &plan).await.unwrap();
    assert!(again.deleted.is_empty(), "{again:?}");
}
