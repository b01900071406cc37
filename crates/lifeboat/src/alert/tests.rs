//! Tests of the alert conditions, their messages and their stored state.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::evaluate::parse_time;
use super::state::AlertItem;
use super::*;
use crate::catalog::VerificationType;
use serde_json::json;

use crate::catalog::{keys, VerificationStatus};
use crate::format::BackupType;
use crate::times::{self, SignedDuration};

const NOW: &str = "2026-11-23T12:00:00Z";

fn at(hours_ago: f64) -> String {
    let now = parse_time(NOW).unwrap();
    times::format(now - SignedDuration::from_secs_f64(hours_ago * 3600.0))
}

/// A record from a one-line spec: `"ID SOURCE STATUS HOURS_AGO [HEARTBEAT_HOURS_AGO]"`.
fn record(spec: &str) -> BackupRecord {
    let parts: Vec<&str> = spec.split_whitespace().collect();
    let status = match parts[2] {
        "completed" => BackupStatus::Completed,
        "failed" => BackupStatus::Failed,
        "deleted" => BackupStatus::Deleted,
        "running" => BackupStatus::InProgress,
        other => panic!("status {other}"),
    };
    let created = at(parts[3].parse().unwrap());
    BackupRecord {
        id: parts[0].into(),
        backup_type: BackupType::Full,
        status,
        source: parts[1].into(),
        size: 1,
        compressed_size: 1,
        entry_count: 1,
        changed_count: 1,
        created_at: created.clone(),
        completed_at: Some(created),
        retention_until: None,
        checksum: None,
        storage_location: "s3://store/manifests/x".into(),
        store_id: None,
        parent_backup: None,
        kms_key_id: "k".into(),
        error: (status == BackupStatus::Failed).then(|| "NoSuchBucket".into()),
        engine: None,
        server_version: None,
        database: None,
        gc_ticket: None,
        heartbeat_at: parts.get(4).map(|h| at(h.parse().unwrap())),
    }
}

/// A verification from `"BACKUPID passed|failed HOURS_AGO"`.
fn verification(spec: &str) -> VerificationRecord {
    let parts: Vec<&str> = spec.split_whitespace().collect();
    VerificationRecord {
        backup_id: parts[0].into(),
        verification_type: VerificationType::Quick,
        status: if parts[1] == "passed" {
            VerificationStatus::Passed
        } else {
            VerificationStatus::Failed
        },
        started_at: at(parts[2].parse().unwrap()),
        completed_at: at(parts[2].parse().unwrap()),
        checksum_valid: true,
        restore_test_passed: None,
        error: None,
    }
}

fn rules() -> AlertRules {
    serde_json::from_value(json!({
        "sources": [
            {"source": "s3://b/a", "maxAgeHours": 26, "tier": "critical"},
            {"source": "s3://b/c/", "maxAgeHours": 2, "tier": "standard", "plan": "c-hourly"}
        ],
        "verificationMaxAgeHours": 192,
        "failedLookbackHours": 24
    }))
    .unwrap()
}

/// The keys of the conditions that hold for these records and verifications.
fn keys(records: &[String], verifications: &[String]) -> Vec<String> {
    let records: Vec<BackupRecord> = records.iter().map(|s| record(s)).collect();
    let verifications: Vec<VerificationRecord> = verifications.iter().map(|s| verification(s)).collect();
    evaluate(&records, &verifications, &rules(), parse_time(NOW).unwrap())
        .iter()
        .map(Condition::key)
        .collect()
}

/// One case, `"NAME: RECORDS | VERIFICATIONS | EXPECTED KEYS"`, each list
/// comma-separated. `A` and `C` stand for a healthy source (backed up 3 h
/// and 1 h ago), `VA` and `VC` for their passed verifications.
fn check(case: &str) {
    let (name, rest) = case.split_once(": ").unwrap();
    let expand = |item: &str| match item {
        "A" => "a1 s3://b/a/ completed 3".to_owned(),
        "C" => "c1 s3://b/c/ completed 1".to_owned(),
        "VA" => "a1 passed 2".to_owned(),
        "VC" => "c1 passed 0.5".to_owned(),
        other => other.to_owned(),
    };
    let lists: Vec<Vec<String>> = rest
        .split('|')
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(expand)
                .collect()
        })
        .collect();
    assert_eq!(keys(&lists[0], &lists[1]), lists[2], "case {name:?}");
}

#[test]
fn conditions_hold_exactly_when_they_should() {
    for case in [
        "healthy: A, C | VA, VC |",
        "nothing on record: | | backup_overdue#s3://b/a, backup_overdue#s3://b/c/",
        "a is 30 h old: a1 s3://b/a/ completed 30, C | a1 passed 29, VC | backup_overdue#s3://b/a",
        "a is 25 h old: a1 s3://b/a/ completed 25, C | a1 passed 24, VC |",
        "deleted backups do not count: a1 s3://b/a/ deleted 3, C | VC | backup_overdue#s3://b/a",
        "unfinished ones neither: a2 s3://b/a/ running 1 0.01, a1 s3://b/a/ completed 27, C | VA, VC | backup_overdue#s3://b/a",
        "running, heartbeat 3 min ago: A, C, a2 s3://b/a/ running 2 0.05 | VA, VC |",
        "running, heartbeat 1 h ago: A, C, a2 s3://b/a/ running 2 1 | VA, VC | backup_stuck#a2",
        "running, never a heartbeat, started 1 h ago: A, C, x1 s3://o/ running 1 | VA, VC | backup_stuck#x1",
        "finished with an old heartbeat: a2 s3://b/a/ completed 2 1, A, C | VA, VC |",
        "records after now are not seen: a1 s3://b/a/ completed 30, a2 s3://b/a/ completed -1, C | a1 passed 29, VC | backup_overdue#s3://b/a",
        "failed, recent: A, C, a2 s3://b/a/ failed 1 | VA, VC | backup_failed#a2",
        "failed, then completed: a2 s3://b/a/ failed 5, A, C | VA, VC |",
        "failed, before the lookback: A, C, a2 s3://b/a/ failed 25 | VA, VC |",
        "failed, of a source no rule names: A, C, x1 s3://other/ failed 2 | VA, VC | backup_failed#x1",
        "two failures, two conditions: A, C, x1 s3://o/ failed 2, x2 s3://o/ failed 1 | VA, VC | backup_failed#x1, backup_failed#x2",
        "newest verification failed: A, C | VA, a1 failed 1, VC | verification_failed#s3://b/a",
        "failed, then passed: A, C | a1 failed 2, a1 passed 1, VC |",
        "an older backup's failed verification: A, a0 s3://b/a/ completed 20, C | a0 failed 10, VA, VC |",
        "last pass 200 h ago: A, a0 s3://b/a/ completed 300, C | a0 passed 200, VC | verification_stale#s3://b/a",
        "last pass 100 h ago: A, a0 s3://b/a/ completed 300, C | a0 passed 100, VC |",
        "never verified, backups new: A, C | |",
        "never verified for 300 h: A, a0 s3://b/a/ completed 300, C | VC | verification_stale#s3://b/a",
    ] {
        check(case);
    }
}

#[test]
fn messages_say_what_where_since_when_and_what_to_do() {
    let records = [record("a1 s3://b/a/ completed 30"), record("x1 s3://other/ failed 2")];
    let conditions = evaluate(&records, &[], &rules(), parse_time(NOW).unwrap());
    let overdue = conditions
        .iter()
        .find(|c| c.kind == ConditionKind::BackupOverdue && c.resource == "s3://b/a")
        .unwrap();
    assert_eq!(
        overdue.subject(),
        "[Lifeboat critical] s3://b/a: no completed backup for 30 h (RPO 26 h)"
    );
    assert_eq!(overdue.severity, Severity::Critical);
    let body = overdue.body();
    assert_eq!(body["condition"], "backup_overdue");
    assert_eq!(body["since"], at(4.0).as_str());
    assert_eq!(body["lastGoodBackup"]["id"], "a1");
    assert_eq!(body["tier"], "critical");
    assert!(body["suggestedAction"]
        .as_str()
        .unwrap()
        .contains("lifeboat backup files s3://b/a"));

    let failed = conditions
        .iter()
        .find(|c| c.kind == ConditionKind::BackupFailed)
        .unwrap();
    assert_eq!(failed.subject(), "[Lifeboat standard] s3://other/: backup x1 failed");
    assert_eq!(failed.severity, Severity::Warning);
    assert_eq!(failed.body()["error"], "NoSuchBucket");
    assert_eq!(failed.body()["lastGoodBackup"], Value::Null);

    let never = conditions.iter().find(|c| c.resource == "s3://b/c/").unwrap();
    assert_eq!(never.summary, "no completed backup on record (RPO 2 h)");
    assert_eq!(never.body()["plan"], "c-hourly");
    assert_eq!(never.since, None);
}

#[test]
fn subjects_fit_sns() {
    let long = format!("[Lifeboat critical] s3://{}/: x", "b".repeat(200));
    let subject = subject_line(&long);
    assert_eq!(subject.len(), SUBJECT_MAX_CHARS);
    assert!(subject.ends_with("..."));
    assert_eq!(subject_line("s3://b/é\nx"), "s3://b/??x");
}

#[test]
fn durations_read_plainly() {
    for (minutes, text) in [
        (45, "45 min"),
        (60, "1 h"),
        (30 * 60 + 5, "30 h"),
        (192 * 60, "8 d"),
        (50 * 60, "2 d 2 h"),
    ] {
        assert_eq!(describe_duration(SignedDuration::from_mins(minutes)), text);
    }
}

#[test]
fn bad_rules_are_refused_with_the_reason() {
    let cases = [
        (
            json!({"sources": [{"source": "s3://a", "maxAgeHours": 0}]}),
            "maxAgeHours of s3://a must be a positive",
        ),
        (
            json!({"sources": [{"source": "s3://a", "maxAgeHours": 1}, {"source": "s3://a/", "maxAgeHours": 2}]}),
            "two rules",
        ),
        (json!({"sources": [{"source": " ", "maxAgeHours": 1}]}), "empty"),
        (
            json!({"sources": [{"source": "s3://a"}]}),
            "missing field `maxAgeHours`",
        ),
        (json!({"sources": [], "failedLookbackHours": -1}), "failedLookbackHours"),
        (json!({"source": []}), "unknown field `source`"),
    ];
    for (value, expected) in cases {
        let err = serde_json::from_value::<AlertRules>(value.clone())
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{value}: {err}");
    }
    let rules: AlertRules =
        serde_json::from_value(json!({"sources": [{"source": "s3://a", "maxAgeHours": 1.5}]})).unwrap();
    assert_eq!(rules.sources[0].max_age, SignedDuration::from_mins(90));
    assert_eq!(rules.sources[0].tier, DEFAULT_TIER);
    assert_eq!(rules.failed_lookback, SignedDuration::from_hours(24));
    assert_eq!(rules.verification_max_age, None);
}

#[test]
fn resolved_messages_keep_the_facts_and_say_resolved() {
    let condition = &evaluate(
        &[record("a1 s3://b/a/ completed 30")],
        &[],
        &rules(),
        parse_time(NOW).unwrap(),
    )[0];
    let record = AlertRecord::opened(condition, NOW);
    let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(AlertItem {
        pk: keys::alert_pk(&record.key),
        sk: keys::ALERT_SK.into(),
        record: record.clone(),
    })
    .unwrap();
    assert_eq!(item["pk"].as_s().unwrap(), "alert#backup_overdue#s3://b/a");
    assert_eq!(item["status"].as_s().unwrap(), "open");
    assert!(item.keys().all(|k| !k.starts_with("gsi")), "{item:?}");
    let (subject, body) = record.resolved_message("2026-11-23T13:00:00.000Z");
    assert_eq!(
        subject,
        "[Lifeboat resolved] s3://b/a: no completed backup for 30 h (RPO 26 h)"
    );
    assert_eq!(body["status"], "resolved");
    assert_eq!(body["condition"], "backup_overdue");
    assert_eq!(body["resolvedAt"], "2026-11-23T13:00:00.000Z");
    let (subject, digest, severity) = digest_message(std::slice::from_ref(condition), NOW);
    assert_eq!(subject, "[Lifeboat digest] 1 open condition");
    assert_eq!(digest["open"][0]["key"], "backup_overdue#s3://b/a");
    assert_eq!(severity, "critical");
}
