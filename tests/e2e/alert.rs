//! The alert function, its real binary run under a local Lambda Runtime API,
//! publishing to a real SNS topic in the emulator with an SQS queue
//! subscribed to it (SNS's JSON envelope, so the subject arrives too).
//!
//! Time does not pass in the emulator, so each run pins its "now" with the
//! request's `at` (RFC 3339): 30 hours after the backups, source A is past
//! its 26-hour RPO; minutes after them, it is not.

use std::collections::BTreeMap;

use aws_sdk_sqs::types::QueueAttributeName;
use lifeboat::times::{self, SignedDuration, Time};
use lifeboat_e2e::{invoke_function, sdk_config, unique, workspace_bin};
use serde_json::{json, Value};

use crate::support::{create_bucket, describe, put_objects, text_bytes, Store};

/// A message as it arrived in the queue.
#[derive(Debug)]
struct Delivered {
    subject: String,
    body: Value,
    /// SNS message attributes: name → value.
    attributes: BTreeMap<String, String>,
}

/// An SQS queue subscribed to the alert topic.
struct Inbox {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl Inbox {
    /// Every message waiting, received until the queue answers empty and
    /// deleted as it is read, ordered by subject.
    async fn drain(&self) -> Vec<Delivered> {
        let mut delivered = Vec::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive from the alert queue");
            let messages = received.messages();
            if messages.is_empty() {
                break;
            }
            for message in messages {
                let text = message.body().expect("message body");
                let envelope: Value =
                    serde_json::from_str(text).unwrap_or_else(|e| panic!("not an SNS envelope ({e}): {text}"));
                let body_text = envelope["Message"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no Message in {envelope}"));
                let body = serde_json::from_str(body_text)
                    .unwrap_or_else(|e| panic!("the alert's Message is not JSON ({e}): {body_text}"));
                let attributes = envelope["MessageAttributes"]
                    .as_object()
                    .map(|map| {
                        map.iter()
                            .map(|(k, v)| (k.clone(), v["Value"].as_str().unwrap_or_default().to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                delivered.push(Delivered {
                    subject: envelope["Subject"].as_str().unwrap_or_default().to_owned(),
                    body,
                    attributes,
                });
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(message.receipt_handle().expect("receipt handle"))
                    .send()
                    .await
                    .expect("delete a received message");
            }
        }
        delivered.sort_by(|a, b| a.subject.cmp(&b.subject));
        delivered
    }
}

/// A new SNS topic with a new SQS queue subscribed to it: (topic ARN, inbox).
async fn topic_with_inbox() -> (String, Inbox) {
    let config = sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topic = sns
        .create_topic()
        .name(unique("alerts"))
        .send()
        .await
        .expect("create the alert topic")
        .topic_arn()
        .expect("topic ARN")
        .to_owned();
    let queue_url = sqs
        .create_queue()
        .queue_name(unique("alert-inbox"))
        .send()
        .await
        .expect("create the inbox queue")
        .queue_url()
        .expect("queue URL")
        .to_owned();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("read the queue's ARN");
    let queue_arn = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .expect("queue ARN")
        .clone();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(queue_arn)
        .send()
        .await
        .expect("subscribe the queue to the topic");
    (topic, Inbox { sqs, queue_url })
}

/// Runs the alert function once, configured as the stack configures it.
async fn invoke(store: &Store, topic: &str, event: &Value) -> Result<Value, Value> {
    invoke_function(
        &workspace_bin("alert"),
        event,
        &[
            ("LIFEBOAT_TABLE", store.table.clone()),
            ("LIFEBOAT_ALERT_TOPIC_ARN", topic.to_owned()),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("alert did not answer: {e:#}"))
}

fn summary(outcome: Result<Value, Value>) -> Value {
    outcome.unwrap_or_else(|e| panic!("the alert run failed: {e}"))
}

fn keys(summary: &Value, field: &str) -> Vec<String> {
    summary[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} in {summary}"))
        .iter()
        .map(|k| k.as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn each_condition_is_sent_once_while_it_lasts_then_resolved_once() {
    let store = Store::new().await;
    let (topic, inbox) = topic_with_inbox().await;

    // Source A: one completed backup. Source B: a bucket that does not
    // exist, so its backup fails and the catalog records it failed.
    let data = create_bucket(&store.s3, "al").await;
    put_objects(
        &store.s3,
        &data,
        &BTreeMap::from([("app/a.txt".to_owned(), text_bytes(20_000, "alert-a"))]),
    )
    .await;
    let source_a = format!("s3://{data}/app");
    let a = store.json(&["backup", "files", &source_a]);
    assert_eq!(a["status"], "completed", "{a}");
    // After A's backup (so 30 hours on, A is at least 30 hours old), before B's.
    let backed_up = times::now();
    let a_id = a["backupId"].as_str().expect("backup id").to_owned();
    let missing = unique("nx");
    let source_b = format!("s3://{missing}/db");
    let output = store.run(&["backup", "files", &source_b]);
    assert!(
        !output.status.success(),
        "a backup of a missing bucket succeeded: {}",
        describe(&output)
    );
    let listed = store.json(&["backups", "list"]);
    let b = listed
        .as_array()
        .expect("backups list prints an array")
        .iter()
        .find(|r| r["status"] == "failed")
        .unwrap_or_else(|| panic!("no failed backup recorded: {listed}"));
    let b_id = b["id"].as_str().expect("backup id").to_owned();

    let rules = |at: Time| {
        json!({
            "sources": [{"source": source_a, "plan": "app-nightly", "maxAgeHours": 26, "tier": "critical"}],
            "failedLookbackHours": 48,
            "at": times::format(at),
        })
    };
    let later = backed_up + SignedDuration::from_hours(30);
    let overdue_key = format!("backup_overdue#{source_a}");
    let failed_key = format!("backup_failed#{b_id}");

    // 30 hours on: A is overdue, B failed. One message each.
    let first = summary(invoke(&store, &topic, &rules(later)).await);
    assert_eq!(
        keys(&first, "opened"),
        [failed_key.clone(), overdue_key.clone()],
        "{first}"
    );
    assert_eq!(first["sent"], 2, "{first}");
    let messages = inbox.drain().await;
    assert_eq!(messages.len(), 2, "{messages:#?}");
    let (failed, overdue) = (&messages[1], &messages[0]);
    assert_eq!(
        overdue.subject,
        format!("[Lifeboat critical] {source_a}: no completed backup for 30 h (RPO 26 h)")
    );
    assert_eq!(overdue.body["condition"], "backup_overdue", "{:#}", overdue.body);
    assert_eq!(overdue.body["resource"], source_a.as_str());
    assert_eq!(overdue.body["plan"], "app-nightly");
    assert_eq!(overdue.body["severity"], "critical");
    assert_eq!(overdue.body["lastGoodBackup"]["id"], a_id.as_str());
    assert!(overdue.body["since"].is_string(), "{:#}", overdue.body);
    assert!(overdue.body["suggestedAction"].is_string(), "{:#}", overdue.body);
    assert_eq!(
        overdue.attributes.get("condition").map(String::as_str),
        Some("backup_overdue")
    );
    assert_eq!(overdue.attributes.get("severity").map(String::as_str), Some("critical"));
    assert_eq!(
        failed.subject,
        format!("[Lifeboat standard] {source_b}/: backup {b_id} failed")
    );
    assert_eq!(failed.body["condition"], "backup_failed", "{:#}", failed.body);
    assert_eq!(failed.body["backupId"], b_id.as_str());
    let error = failed.body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&missing),
        "the failure's error is not in the message: {:#}",
        failed.body
    );
    assert_eq!(failed.attributes.get("severity").map(String::as_str), Some("warning"));

    // The same moment again: both still hold, nothing is sent twice.
    let second = summary(invoke(&store, &topic, &rules(later)).await);
    assert_eq!(
        keys(&second, "stillOpen"),
        [failed_key.clone(), overdue_key.clone()],
        "{second}"
    );
    assert_eq!(second["sent"], 0, "{second}");
    let messages = inbox.drain().await;
    assert!(messages.is_empty(), "a condition was sent twice: {messages:#?}");

    // Minutes after the backups, A is within its RPO: one "resolved"
    // message for it; B's failure still holds and is not sent again.
    let soon = backed_up + SignedDuration::from_mins(5);
    let third = summary(invoke(&store, &topic, &rules(soon)).await);
    assert_eq!(keys(&third, "resolved"), [overdue_key], "{third}");
    assert_eq!(keys(&third, "stillOpen"), [failed_key], "{third}");
    assert_eq!(third["sent"], 1, "{third}");
    let messages = inbox.drain().await;
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(
        messages[0].subject,
        format!("[Lifeboat resolved] {source_a}: no completed backup for 30 h (RPO 26 h)")
    );
    assert_eq!(messages[0].body["status"], "resolved", "{:#}", messages[0].body);
    assert_eq!(messages[0].body["condition"], "backup_overdue");
    assert_eq!(
        messages[0].attributes.get("condition").map(String::as_str),
        Some("backup_overdue")
    );
    let fourth = summary(invoke(&store, &topic, &rules(soon)).await);
    assert_eq!(fourth["sent"], 0, "{fourth}");
    assert!(inbox.drain().await.is_empty(), "a resolved condition was sent again");

    // The digest: one message listing what is open.
    let mut digest = rules(soon);
    digest["digest"] = json!(true);
    let fifth = summary(invoke(&store, &topic, &digest).await);
    assert_eq!(fifth["sent"], 1, "{fifth}");
    assert_eq!(fifth["digestSent"], true, "{fifth}");
    let messages = inbox.drain().await;
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0].subject, "[Lifeboat digest] 1 open condition");
    assert_eq!(
        messages[0].body["open"][0]["backupId"],
        b_id.as_str(),
        "{:#}",
        messages[0].body
    );
    assert_eq!(
        messages[0].attributes.get("condition").map(String::as_str),
        Some("digest")
    );
}

#[tokio::test]
async fn bad_events_and_missing_settings_fail_with_what_to_fix() {
    let store = Store::new().await;
    let (topic, inbox) = topic_with_inbox().await;
    let error = invoke(
        &store,
        &topic,
        &json!({"sources": [{"source": "s3://a", "maxAgeHours": "26"}]}),
    )
    .await
    .expect_err("a bad event was accepted");
    assert_eq!(error["errorType"], "Lifeboat.BadEvent", "{error}");
    assert!(
        error["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("maxAgeHours"),
        "the field at fault is not named: {error}"
    );
    let error = invoke(&store, &topic, &json!({"sources": [], "at": "yesterday"}))
        .await
        .expect_err("a bad time was accepted");
    assert_eq!(error["errorType"], "Lifeboat.BadEvent", "{error}");
    assert!(inbox.drain().await.is_empty(), "a bad event sent something");

    // Without its topic, the function fails at init and names the setting.
    let outcome = invoke_function(
        &workspace_bin("alert"),
        &json!({"sources": []}),
        &[("LIFEBOAT_TABLE", store.table.clone())],
    )
    .await;
    let text = match outcome {
        Ok(Ok(answer)) => panic!("the function ran without its topic: {answer}"),
        Ok(Err(error)) => error.to_string(),
        Err(error) => format!("{error:#}"),
    };
    assert!(text.contains("LIFEBOAT_ALERT_TOPIC_ARN"), "{text}");
}

/// A backup whose run was killed stays `in_progress` with a heartbeat that
/// stopped: `backup_stuck` is sent once, and resolved once the record is
/// finished (here: failed by a redelivery's takeover).
#[tokio::test]
async fn a_backup_whose_heartbeat_stopped_alerts_as_stuck_until_it_is_taken_over() {
    use lifeboat::catalog::{BackupRecord, Catalog};

    let store = Store::new().await;
    let (topic, inbox) = topic_with_inbox().await;
    let catalog = Catalog::new(
        lifeboat_e2e::dynamodb_client().await,
        &store.table,
        lifeboat_e2e::REGION,
    );
    let now = times::now();
    let source = "s3://data/stuck/";
    let record: BackupRecord = serde_json::from_value(json!({
        "id": lifeboat::ids::BackupId::new(now - SignedDuration::from_hours(2)).to_string(),
        "type": "full",
        "status": "pending",
        "source": source,
        "size": 0,
        "compressedSize": 0,
        "entryCount": 0,
        "changedCount": 0,
        "createdAt": times::format(now - SignedDuration::from_hours(2)),
        "heartbeatAt": times::format(now - SignedDuration::from_hours(1)),
        "storageLocation": "s3://store/manifests/stuck",
        "kmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/k",
    }))
    .expect("a backup record");
    catalog.begin(&record, None).await.expect("record the backup");
    catalog.mark_in_progress(&record.id).await.expect("in progress");
    let rules = json!({"sources": [], "stuckAfterMinutes": 10, "at": times::format(now)});
    let stuck_key = format!("backup_stuck#{}", record.id);

    let first = summary(invoke(&store, &topic, &rules).await);
    assert_eq!(keys(&first, "opened"), std::slice::from_ref(&stuck_key), "{first}");
    let messages = inbox.drain().await;
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let stuck = &messages[0];
    assert_eq!(stuck.body["condition"], "backup_stuck", "{:#}", stuck.body);
    assert_eq!(stuck.body["backupId"], record.id.as_str());
    assert!(
        stuck.body["summary"]
            .as_str()
            .unwrap_or_default()
            .ends_with("in_progress with no heartbeat for 1 h"),
        "{:#}",
        stuck.body
    );
    assert_eq!(
        stuck.attributes.get("condition").map(String::as_str),
        Some("backup_stuck")
    );

    // Still stuck: not sent again.
    let again = summary(invoke(&store, &topic, &rules).await);
    assert_eq!(keys(&again, "stillOpen"), std::slice::from_ref(&stuck_key), "{again}");
    assert!(inbox.drain().await.is_empty());

    // Taken over (failed): resolved, once.
    catalog
        .fail(&record.id, "abandoned: no heartbeat")
        .await
        .expect("fail it");
    let resolved = summary(invoke(&store, &topic, &rules).await);
    assert_eq!(keys(&resolved, "resolved"), [stuck_key], "{resolved}");
    let messages = inbox.drain().await;
    assert!(
        messages
            .iter()
            .any(|m| m.body["condition"] == "backup_stuck" && m.body["status"] == "resolved"),
        "{messages:#?}"
    );
}
