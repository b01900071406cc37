//! Looking after RDS snapshots (`lifeboat::snapshot`) against the
//! emulator's RDS in two regions: eu-central-1 (the databases, the catalog)
//! and us-west-2 (the DR region, with its own KMS key). Snapshots and their
//! copies are made by the snapshot run itself (`run_scheduled`, then
//! `advance` to see the copies finish, as the function would on its next
//! run); verification, retention and alerts run through the real function
//! binaries and the real `lifeboat` binary; the restore test's SQL runs
//! against the real PostgreSQL on this machine.
//!
//! The emulator's restored instances answer on no port, so the restore
//! test's checks file names the local PostgreSQL with a literal URL.

use std::process::{Command, Output};

use aws_sdk_sqs::types::QueueAttributeName;
use jiff::{SignedDuration, Timestamp};
use lifeboat::catalog::Catalog;
use lifeboat::plan::{parse_plans, Plan};
use lifeboat::snapshot::ProblemKind;
use lifeboat::snapshot::{
    advance, run_scheduled, snapshot_name, time_text, CopyStatus, ResourceKind, SnapshotRecord, SnapshotStatus,
};
use lifeboat_e2e::{aws_env, invoke_function, sdk_config_in, unique, workspace_bin};
use serde_json::{json, Value};

use crate::support::{describe, sample_event, Engine, TestDb};

const PRIMARY: &str = "eu-central-1";
const DR: &str = "us-west-2";

/// The current minute, less `days` days.
fn days_ago(days: i64) -> Timestamp {
    let now = Timestamp::now().as_second().div_euclid(60) * 60;
    Timestamp::from_second(now - days * 86_400).expect("a time")
}

struct Setup {
    primary: aws_config::SdkConfig,
    rds: aws_sdk_rds::Client,
    dr_rds: aws_sdk_rds::Client,
    dr_kms: aws_sdk_kms::Client,
    catalog: Catalog,
    table: String,
    primary_key: String,
    dr_key: String,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Self {
        let primary = sdk_config_in(PRIMARY).await;
        let dr = sdk_config_in(DR).await;
        let table = unique("snapshot-ops");
        let catalog = Catalog::new(aws_sdk_dynamodb::Client::new(&primary), &table, PRIMARY);
        catalog.create_table().await.expect("create the catalog table");
        let dr_kms = aws_sdk_kms::Client::new(&dr);
        let dr_key = new_key(&dr_kms).await;
        let primary_key = new_key(&aws_sdk_kms::Client::new(&primary)).await;
        Self {
            rds: aws_sdk_rds::Client::new(&primary),
            dr_rds: aws_sdk_rds::Client::new(&dr),
            dr_kms,
            primary,
            catalog,
            table,
            primary_key,
            dr_key,
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// An encrypted PostgreSQL DB instance: (identifier, ARN).
    async fn instance(&self) -> (String, String) {
        let id = unique("ops");
        let output = self
            .rds
            .create_db_instance()
            .db_instance_identifier(&id)
            .engine("postgres")
            .db_instance_class("db.t3.micro")
            .allocated_storage(20)
            .master_username("lifeboat")
            .master_user_password("not-a-secret-1")
            .storage_encrypted(true)
            .kms_key_id(&self.primary_key)
            .send()
            .await
            .expect("create a DB instance");
        let arn = output
            .db_instance()
            .and_then(|d| d.db_instance_arn())
            .expect("instance ARN")
            .to_owned();
        (id, arn)
    }

    /// A plan file with one plan, `db-nightly`, for one instance.
    fn plan_text(&self, instance: &str, dr_key: &str, retention: &str) -> String {
        format!(
            r#"[[plan]]
name = "db-nightly"
schedule = "cron(0 2 * * ? *)"
resources = ["{instance}"]
copy_regions = [{{ region = "{DR}", kms_key = "{dr_key}" }}]
retention = {{ {retention} }}
rpo = "26h"
tier = "critical"
"#
        )
    }

    /// Writes a plan file into the test's directory; its path.
    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write a file");
        path.display().to_string()
    }

    /// The snapshot run at `scheduled`, then a later run that sees the
    /// copies finish: the snapshot completed with its DR copy completed.
    async fn snapshot(&self, plans: &str, scheduled: Timestamp) -> SnapshotRecord {
        let plans: Vec<Plan> = parse_plans(plans, scheduled).expect("the plan parses");
        let rds = lifeboat::rds::Rds::new(&self.primary);
        let records = self.catalog.snapshots();
        let summary = run_scheduled(&rds, &records, &plans, "db-nightly", scheduled, Timestamp::now())
            .await
            .expect("the snapshot run");
        assert!(summary.ok() && summary.created.len() == 1, "{summary:?}");
        let summary = advance(&rds, &records, &plans, Timestamp::now())
            .await
            .expect("advance");
        assert!(summary.ok(), "{summary:?}");
        let resource = summary_resource(&records, &plans[0], scheduled).await;
        let history = records
            .get("db-nightly", &resource, &time_text(scheduled))
            .await
            .expect("read the record")
            .expect("a record");
        assert_eq!(history.snapshot.status, SnapshotStatus::Completed, "{history:?}");
        assert_eq!(
            history.copy_in(DR).map(|c| c.status),
            Some(CopyStatus::Completed),
            "{history:?}"
        );
        history.snapshot
    }

    fn lifeboat(&self, args: &[&str]) -> Output {
        Command::new(workspace_bin("lifeboat"))
            .args(args)
            .envs(aws_env())
            .env("AWS_REGION", PRIMARY)
            .env("LIFEBOAT_TABLE", &self.table)
            .output()
            .expect("run lifeboat")
    }

    fn lifeboat_json(&self, args: &[&str], code: i32) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let output = self.lifeboat(&all);
        assert_eq!(output.status.code(), Some(code), "{}", describe(&output));
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("lifeboat printed no JSON ({e}): {}", describe(&output)))
    }

    /// Runs a function binary once with the plan file's text, as the stack configures it.
    async fn invoke(
        &self,
        function: &str,
        plans: &str,
        event: &Value,
        extra: &[(&str, String)],
    ) -> Result<Value, Value> {
        let mut env = vec![
            ("AWS_REGION", PRIMARY.to_owned()),
            ("LIFEBOAT_TABLE", self.table.clone()),
            ("LIFEBOAT_PLANS_TOML", plans.to_owned()),
        ];
        env.extend(extra.iter().cloned());
        invoke_function(&workspace_bin(function), event, &env)
            .await
            .unwrap_or_else(|e| panic!("{function} did not answer: {e:#}"))
    }

    /// Whether a DB snapshot exists in the primary region / in the DR region.
    async fn exists(&self, id: &str) -> (bool, bool) {
        let primary = self.rds.describe_db_snapshots().db_snapshot_identifier(id).send().await;
        let dr = self
            .dr_rds
            .describe_db_snapshots()
            .db_snapshot_identifier(id)
            .send()
            .await;
        let found = |r: Result<aws_sdk_rds::operation::describe_db_snapshots::DescribeDbSnapshotsOutput, _>| {
            r.map(|o| !o.db_snapshots().is_empty()).unwrap_or(false)
        };
        (found(primary), found(dr))
    }
}

async fn new_key(kms: &aws_sdk_kms::Client) -> String {
    kms.create_key()
        .description("lifeboat snapshot-ops test key")
        .send()
        .await
        .expect("create a KMS key")
        .key_metadata()
        .and_then(|m| m.arn())
        .expect("key ARN")
        .to_owned()
}

/// The resource (ARN) the plan's one named instance resolves to.
async fn summary_resource(records: &lifeboat::snapshot::SnapshotCatalog, plan: &Plan, scheduled: Timestamp) -> String {
    let time = time_text(scheduled);
    records
        .list()
        .await
        .expect("list snapshot records")
        .into_iter()
        .find(|r| r.plan == plan.name && r.scheduled_time == time)
        .map(|r| r.resource)
        .expect("the run's record")
}

fn error_message(outcome: &Result<Value, Value>) -> String {
    match outcome {
        Err(error) => error["errorMessage"].as_str().unwrap_or_default().to_owned(),
        Ok(summary) => panic!("expected the invocation to fail, it answered {summary}"),
    }
}

#[tokio::test]
async fn verification_passes_then_names_a_wrongly_keyed_or_missing_dr_copy() {
    let setup = Setup::new().await;
    let (instance, _) = setup.instance().await;
    let plans = setup.plan_text(&instance, &setup.dr_key, "keep_days = 7");
    let scheduled = days_ago(0);
    let record = setup.snapshot(&plans, scheduled).await;
    let checks = setup.catalog.snapshot_checks();
    let event = json!({"snapshots": true, "plans": ["db-nightly"]});

    // Healthy: available, encrypted, copied with the plan's DR key, fresh.
    let summary = setup
        .invoke("verify", &plans, &event, &[])
        .await
        .unwrap_or_else(|e| panic!("a healthy snapshot failed verification: {e}"));
    let verification = &summary["snapshots"]["verifications"][0];
    assert_eq!(verification["snapshotId"], record.snapshot_id.as_str(), "{summary}");
    assert_eq!(verification["status"], "passed", "{summary}");
    assert_eq!(verification["regions"], json!([PRIMARY, DR]), "{summary}");
    let stored = checks.verifications(&record, 1).await.expect("read verifications");
    assert!(
        stored[0].passed() && stored[0].restore_test_passed.is_none(),
        "{stored:?}"
    );

    // The plan now names another DR key than the copy was made with.
    let other_key = new_key(&setup.dr_kms).await;
    let other_plans = setup.plan_text(&instance, &other_key, "keep_days = 7");
    let outcome = setup.invoke("verify", &other_plans, &event, &[]).await;
    let message = error_message(&outcome);
    assert_eq!(
        outcome.as_ref().err().map(|e| e["errorType"].clone()),
        Some(json!("Lifeboat.DamageFound"))
    );
    assert!(message.contains("wrong_key (us-west-2)"), "{message}");
    assert!(
        message.contains(&setup.dr_key) && message.contains(&other_key),
        "{message}"
    );

    // The DR copy is deleted behind Lifeboat's back.
    setup
        .dr_rds
        .delete_db_snapshot()
        .db_snapshot_identifier(&record.snapshot_id)
        .send()
        .await
        .expect("delete the DR copy");
    let outcome = setup.invoke("verify", &plans, &event, &[]).await;
    let message = error_message(&outcome);
    assert!(message.contains("missing (us-west-2)"), "{message}");
    assert!(message.contains("does not exist in us-west-2"), "{message}");
    let stored = checks.verifications(&record, 1).await.expect("read verifications");
    assert!(!stored[0].passed(), "{stored:?}");
    let kinds: Vec<(&str, ProblemKind)> = stored[0].problems.iter().map(|p| (p.region.as_str(), p.kind)).collect();
    assert_eq!(kinds, [(DR, ProblemKind::Missing)], "{stored:?}");
}

#[tokio::test]
async fn a_failing_restore_test_is_recorded_and_its_instance_deleted_a_passing_one_passes() {
    let setup = Setup::new().await;
    let db = TestDb::create(Engine::Postgres, "rt");
    let database = db.name.clone();
    db.sql("CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)");

    let (instance, _) = setup.instance().await;
    let plans = setup.plan_text(&instance, &setup.dr_key, "keep_days = 7");
    let record = setup.snapshot(&plans, days_ago(0)).await;
    let plan_file = setup.write("plans.toml", &plans);
    let checks_file = setup.write(
        "checks.toml",
        &format!(
            r#"url = "postgres://postgres@127.0.0.1:5432/{database}"
[[check]]
name = "orders present"
sql = "SELECT count(*) FROM orders"
at_least = 1
[[check]]
name = "all 99 orders"
sql = "SELECT count(*) FROM orders"
equals = 99
"#
        ),
    );

    let report = setup.lifeboat_json(
        &[
            "snapshots",
            "verify",
            "--plans",
            &plan_file,
            "--restore-test",
            &checks_file,
        ],
        6,
    );
    let verification = &report["verifications"][0];
    assert_eq!(verification["snapshotId"], record.snapshot_id.as_str(), "{report}");
    assert_eq!(verification["restoreTestPassed"], false, "{report}");
    let test = &verification["restoreTest"];
    let temporary = test["instance"].as_str().expect("the temporary instance").to_owned();
    assert!(temporary.starts_with("lifeboat-rt-"), "{report}");
    assert_eq!(test["cleanedUp"], true, "{report}");
    // The checks ran against the restored database: one passed, one failed.
    let results = test["validation"]["results"].as_array().expect("check results");
    let passed: Vec<bool> = results.iter().map(|r| r["passed"].as_bool().unwrap_or(true)).collect();
    assert_eq!(passed, [true, false], "{report}");
    let error = test["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("all 99 orders") && error.contains("returned 1"),
        "{report}"
    );
    assert!(
        verification["rtoSeconds"].as_f64().is_some_and(|s| s >= 0.0),
        "{report}"
    );
    let problems = verification["problems"].as_array().expect("problems");
    assert!(problems.iter().any(|p| p["kind"] == "restore_test_failed"), "{report}");

    // Whatever happened, the temporary instance is gone.
    let described = setup
        .rds
        .describe_db_instances()
        .db_instance_identifier(&temporary)
        .send()
        .await;
    assert!(described.is_err(), "{temporary} still exists: {described:?}");

    // Recorded in the catalog with the RTO sample.
    let stored = setup
        .catalog
        .snapshot_checks()
        .verifications(&record, 1)
        .await
        .expect("read verifications");
    assert_eq!(stored[0].restore_test_passed, Some(false), "{stored:?}");
    assert!(stored[0].rto_seconds.is_some(), "{stored:?}");

    // With only the assertion that holds, the same restore test passes.
    let passing = setup.write(
        "passing.toml",
        &format!(
            r#"url = "postgres://postgres@127.0.0.1:5432/{database}"
[[check]]
name = "orders present"
sql = "SELECT count(*) FROM orders"
at_least = 1
"#
        ),
    );
    let report = setup.lifeboat_json(
        &["snapshots", "verify", "--plans", &plan_file, "--restore-test", &passing],
        0,
    );
    drop(db);
    let verification = &report["verifications"][0];
    assert_eq!(verification["status"], "passed", "{report}");
    assert_eq!(verification["restoreTestPassed"], true, "{report}");
    assert_eq!(verification["restoreTest"]["cleanedUp"], true, "{report}");
}

#[tokio::test]
async fn retention_deletes_what_the_policy_says_in_both_regions_and_keeps_the_rest() {
    let setup = Setup::new().await;
    let (instance, arn) = setup.instance().await;
    let plans = setup.plan_text(&instance, &setup.dr_key, "keep_last = 2");
    let plan_file = setup.write("plans.toml", &plans);
    let first_day = days_ago(6);
    let day = |d: i64| first_day + SignedDuration::from_hours(24 * d);
    let name = |d: i64| snapshot_name("db-nightly", &instance, day(d));

    // Days 1 to 3; day 3's snapshot is verified while it is the newest.
    for d in 1..=3 {
        setup.snapshot(&plans, day(d)).await;
    }
    let at = time_text(day(3) + SignedDuration::from_hours(1));
    let verified = setup.lifeboat_json(&["snapshots", "verify", "--plans", &plan_file, "--at", &at], 0);
    assert_eq!(
        verified["verifications"][0]["snapshotId"],
        name(3).as_str(),
        "{verified}"
    );
    // Days 4 and 5; day 1 held; a day-0 snapshot the run never finished.
    for d in 4..=5 {
        setup.snapshot(&plans, day(d)).await;
    }
    let held = setup.lifeboat_json(&["snapshots", "hold", &name(1), "--reason", "case 42"], 0);
    assert_eq!(held["added"], true, "{held}");
    let unfinished = SnapshotRecord {
        plan: "db-nightly".into(),
        resource: arn.clone(),
        resource_id: instance.clone(),
        resource_kind: ResourceKind::DbInstance,
        region: PRIMARY.into(),
        scheduled_time: time_text(day(0)),
        snapshot_id: name(0),
        snapshot_arn: None,
        status: SnapshotStatus::InProgress,
        created_at: time_text(day(0)),
        completed_at: None,
        retention_until: None,
        engine: None,
        error: None,
        failed_at: None,
    };
    setup
        .catalog
        .snapshots()
        .claim(&unfinished)
        .await
        .expect("record an unfinished snapshot");

    // Dry run: what would go and why; nothing deleted.
    let planned = setup.lifeboat_json(&["snapshots", "retention", "--plans", &plan_file, "--dry-run"], 0);
    let plan = &planned["plans"][0];
    let doomed: Vec<&str> = plan["delete"]
        .as_array()
        .expect("delete list")
        .iter()
        .map(|d| d["snapshotId"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(doomed, [name(2).as_str()], "{planned}");
    assert_eq!(plan["delete"][0]["regions"], json!([PRIMARY, DR]), "{planned}");
    let reasons = |d: i64| {
        plan["keep"]
            .as_array()
            .expect("keep list")
            .iter()
            .find(|k| k["snapshotId"] == name(d).as_str())
            .map(|k| k["reasons"].to_string())
            .unwrap_or_else(|| panic!("{} not kept: {planned}", name(d)))
    };
    assert!(reasons(0).contains("not finished"), "{planned}");
    assert!(reasons(1).contains("held"), "{planned}");
    assert!(reasons(3).contains("newest verified"), "{planned}");
    assert!(
        reasons(4).contains("keep-last") && reasons(5).contains("keep-last"),
        "{planned}"
    );
    for d in 1..=5 {
        assert_eq!(
            setup.exists(&name(d)).await,
            (true, true),
            "{} after the dry run",
            name(d)
        );
    }

    // The function, forced to dry runs by its setting: nothing deleted either.
    let event = sample_event("retention-snapshots.json");
    let summary = setup
        .invoke("retention", &plans, &event, &[("LIFEBOAT_DRY_RUN", "true".to_owned())])
        .await
        .unwrap_or_else(|e| panic!("dry run failed: {e}"));
    assert_eq!(summary["dryRun"], true, "{summary}");
    assert_eq!(
        summary["snapshotPlan"]["plans"][0]["delete"][0]["snapshotId"],
        name(2).as_str(),
        "{summary}"
    );
    assert!(summary.get("snapshotExpiry").is_none(), "{summary}");
    assert_eq!(setup.exists(&name(2)).await, (true, true));

    // The real run: day 2 deleted in both regions, the rest untouched.
    let summary = setup
        .invoke("retention", &plans, &event, &[])
        .await
        .unwrap_or_else(|e| panic!("retention failed: {e}"));
    let deleted = &summary["snapshotExpiry"]["deleted"];
    assert_eq!(deleted.as_array().map(Vec::len), Some(1), "{summary}");
    assert_eq!(deleted[0]["snapshotId"], name(2).as_str(), "{summary}");
    assert_eq!(deleted[0]["deletedIn"], json!([PRIMARY, DR]), "{summary}");
    assert_eq!(setup.exists(&name(2)).await, (false, false));
    for d in [1, 3, 4, 5] {
        assert_eq!(
            setup.exists(&name(d)).await,
            (true, true),
            "{} after retention",
            name(d)
        );
    }
    let history = setup.catalog.snapshots().history(&arn).await.expect("history");
    let listed: Vec<&str> = history.iter().map(|h| h.snapshot.snapshot_id.as_str()).collect();
    assert!(!listed.contains(&name(2).as_str()) && listed.len() == 5, "{listed:?}");

    // In the audit trail, once.
    let trail = setup.lifeboat_json(&["audit-log", "show"], 0);
    let deletions: Vec<&Value> = trail
        .as_array()
        .expect("audit records")
        .iter()
        .filter(|r| r["action"] == "snapshot.deleted")
        .collect();
    assert_eq!(deletions.len(), 1, "{trail}");
    assert_eq!(deletions[0]["subject"], name(2).as_str(), "{trail}");
    assert_eq!(deletions[0]["details"]["deletedIn"], json!([PRIMARY, DR]), "{trail}");

    // A second run finds nothing more to delete.
    let summary = setup
        .invoke("retention", &plans, &event, &[])
        .await
        .expect("second run");
    assert_eq!(summary["snapshotExpiry"]["deleted"], json!([]), "{summary}");
}

/// A new SNS topic with a new SQS queue subscribed to it: (topic ARN, SQS client, queue URL).
async fn topic_with_queue() -> (String, aws_sdk_sqs::Client, String) {
    let config = sdk_config_in(PRIMARY).await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topic = sns
        .create_topic()
        .name(unique("snapshot-alerts"))
        .send()
        .await
        .expect("create the topic")
        .topic_arn()
        .expect("topic ARN")
        .to_owned();
    let queue_url = sqs
        .create_queue()
        .queue_name(unique("snapshot-inbox"))
        .send()
        .await
        .expect("create the queue")
        .queue_url()
        .expect("queue URL")
        .to_owned();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("read the queue's ARN")
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
        .expect("subscribe the queue");
    (topic, sqs, queue_url)
}

/// Every message waiting: (subject, body), deleted as read, by subject.
async fn drain(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<(String, Value)> {
    let mut delivered = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        if received.messages().is_empty() {
            break;
        }
        for message in received.messages() {
            let envelope: Value = serde_json::from_str(message.body().unwrap_or_default()).expect("an SNS envelope");
            let body = serde_json::from_str(envelope["Message"].as_str().unwrap_or_default()).expect("a JSON alert");
            delivered.push((envelope["Subject"].as_str().unwrap_or_default().to_owned(), body));
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete a message");
        }
    }
    delivered.sort_by(|a, b| a.0.cmp(&b.0));
    delivered
}

#[tokio::test]
async fn missing_and_failed_dr_copies_are_alerted_once_through_sns_then_resolved() {
    let setup = Setup::new().await;
    let (topic, sqs, queue) = topic_with_queue().await;
    let (instance, arn) = setup.instance().await;
    let plans = setup.plan_text(&instance, &setup.dr_key, "keep_days = 7");
    let this_minute = days_ago(0);
    let minute = |before_now: i64| this_minute - SignedDuration::from_mins(before_now);
    let first = setup.snapshot(&plans, minute(30)).await;
    let verify = json!({"snapshots": true});
    setup
        .invoke("verify", &plans, &verify, &[])
        .await
        .expect("a healthy verification");
    let alert = |rules: Value| {
        let setup = &setup;
        let topic = topic.clone();
        let plans = plans.clone();
        async move {
            setup
                .invoke("alert", &plans, &rules, &[("LIFEBOAT_ALERT_TOPIC_ARN", topic)])
                .await
                .unwrap_or_else(|e| panic!("the alert run failed: {e}"))
        }
    };
    let rules = json!({"sources": [], "verificationMaxAgeHours": 48});

    // Healthy: nothing sent.
    let summary = alert(rules.clone()).await;
    assert_eq!(summary["opened"], json!([]), "{summary}");
    assert!(drain(&sqs, &queue).await.is_empty());

    // The DR copy disappears; verification finds it gone; the alert opens once.
    setup
        .dr_rds
        .delete_db_snapshot()
        .db_snapshot_identifier(&first.snapshot_id)
        .send()
        .await
        .expect("delete the DR copy");
    assert!(setup.invoke("verify", &plans, &verify, &[]).await.is_err());
    let missing = format!("snapshot_copy_missing#{arn}");
    let failed = format!("snapshot_verification_failed#{arn}");
    let summary = alert(rules.clone()).await;
    assert_eq!(summary["opened"], json!([missing, failed]), "{summary}");
    let delivered = drain(&sqs, &queue).await;
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    let copy_alert = delivered
        .iter()
        .find(|(_, body)| body["condition"] == "snapshot_copy_missing")
        .unwrap_or_else(|| panic!("no copy alert: {delivered:?}"));
    assert!(copy_alert.0.starts_with("[Lifeboat critical]"), "{delivered:?}");
    assert_eq!(copy_alert.1["severity"], "critical", "{delivered:?}");
    assert_eq!(copy_alert.1["plan"], "db-nightly", "{delivered:?}");
    assert!(
        copy_alert.1["summary"].as_str().unwrap_or_default().contains(DR),
        "{delivered:?}"
    );

    // Still missing: not sent again.
    let summary = alert(rules.clone()).await;
    assert_eq!(summary["stillOpen"], json!([missing, failed]), "{summary}");
    assert!(drain(&sqs, &queue).await.is_empty());

    // A new snapshot with its copy, verified: both resolve, once.
    let second = setup.snapshot(&plans, minute(20)).await;
    setup
        .invoke("verify", &plans, &verify, &[])
        .await
        .expect("the new snapshot verifies");
    let summary = alert(rules.clone()).await;
    assert_eq!(summary["resolved"], json!([missing, failed]), "{summary}");
    let delivered = drain(&sqs, &queue).await;
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    assert!(
        delivered
            .iter()
            .all(|(subject, body)| subject.starts_with("[Lifeboat resolved]") && body["status"] == "resolved"),
        "{delivered:?}"
    );
    let summary = alert(rules.clone()).await;
    assert!(
        summary["opened"] == json!([]) && summary["resolved"] == json!([]),
        "{summary}"
    );
    assert!(drain(&sqs, &queue).await.is_empty());

    // The newest snapshot's DR copy fails in RDS, recorded with the AWS
    // error as the snapshot run records it (the emulator never fails a copy).
    let records = setup.catalog.snapshots();
    let history = records.latest_completed(&arn).await.expect("read").expect("a snapshot");
    assert_eq!(history.snapshot.snapshot_id, second.snapshot_id);
    let mut copy = history.copy_in(DR).cloned().expect("the DR copy");
    copy.status = CopyStatus::Failed;
    copy.error = Some("KMSKeyNotAccessibleFault: The specified KMS key is disabled".to_owned());
    copy.failed_at = Some(time_text(Timestamp::now()));
    assert!(records
        .update_copy(&copy, CopyStatus::Completed)
        .await
        .expect("record the failure"));
    let copy_failed = format!("snapshot_copy_failed#{}@{DR}", second.snapshot_id);
    let summary = alert(rules.clone()).await;
    assert_eq!(summary["opened"], json!([copy_failed]), "{summary}");
    let delivered = drain(&sqs, &queue).await;
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0].1["condition"], "snapshot_copy_failed", "{delivered:?}");
    assert!(
        delivered[0].1["error"]
            .as_str()
            .unwrap_or_default()
            .contains("KMSKeyNotAccessibleFault"),
        "{delivered:?}"
    );
    let summary = alert(rules.clone()).await;
    assert_eq!(summary["stillOpen"], json!([copy_failed]), "{summary}");
    assert!(drain(&sqs, &queue).await.is_empty());

    // A run without the plan file does not evaluate snapshots: it leaves
    // their alerts open rather than resolving them.
    let summary = setup
        .invoke(
            "alert",
            &plans,
            &rules,
            &[
                ("LIFEBOAT_ALERT_TOPIC_ARN", topic.clone()),
                ("LIFEBOAT_PLANS_TOML", String::new()),
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("the alert run without plans failed: {e}"));
    assert!(
        summary["opened"] == json!([]) && summary["resolved"] == json!([]),
        "{summary}"
    );
    assert!(drain(&sqs, &queue).await.is_empty());

    // The next snapshot is copied: resolved, once.
    setup.snapshot(&plans, minute(10)).await;
    let summary = alert(rules).await;
    assert_eq!(summary["resolved"], json!([copy_failed]), "{summary}");
    let delivered = drain(&sqs, &queue).await;
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0].1["status"], "resolved", "{delivered:?}");
}

/// A plan's `[plan.restore_test]` against the local database `database`:
/// orders present, no order without its customer, and (`failing`) exactly
/// 99 orders, which does not hold.
fn restore_test_block(database: &str, failing: bool) -> String {
    let mut block = format!(
        r#"[plan.restore_test]
url = "postgres://postgres@127.0.0.1:5432/{database}"
every = "7d"
timeout = "30m"
[[plan.restore_test.check]]
name = "orders present"
sql = "SELECT count(*) FROM orders"
at_least = 1
[[plan.restore_test.check]]
name = "no orphaned orders"
sql = "SELECT count(*) FROM orders o LEFT JOIN customers c ON c.id = o.customer_id WHERE c.id IS NULL"
equals = 0
"#
    );
    if failing {
        block.push_str(
            r#"[[plan.restore_test.check]]
name = "all 99 orders"
sql = "SELECT count(*) FROM orders"
equals = 99
"#,
        );
    }
    block
}

impl Setup {
    /// Whether a DB instance exists in the primary region.
    async fn instance_exists(&self, id: &str) -> bool {
        self.rds
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
            .is_ok_and(|o| !o.db_instances().is_empty())
    }
}

/// The scheduled restore tests (`[plan.restore_test]`), driven as the stack
/// drives them: the verify function invoked with
/// events/verify-restore-tests.json. One test function, so that one
/// scenario's orphan sweep never meets another's instance mid-test.
#[tokio::test]
async fn scheduled_restore_tests_pass_or_record_the_failed_assertion_and_always_delete() {
    let db = TestDb::create(Engine::Postgres, "srt");
    let database = db.name.clone();
    db.sql(
        "CREATE TABLE customers (id int PRIMARY KEY); CREATE TABLE orders (id int, customer_id int); \
         INSERT INTO customers VALUES (1), (2); INSERT INTO orders VALUES (1, 1), (2, 2)",
    );
    let event = sample_event("verify-restore-tests.json");

    // A passing test: restored, checked, recorded with its RTO sample, deleted.
    let setup = Setup::new().await;
    let (instance, _) = setup.instance().await;
    let plans = setup.plan_text(&instance, &setup.dr_key, "keep_days = 7") + &restore_test_block(&database, false);
    let record = setup.snapshot(&plans, days_ago(0)).await;
    let summary = setup
        .invoke("verify", &plans, &event, &[])
        .await
        .unwrap_or_else(|e| panic!("a passing restore test failed the invocation: {e}"));
    let report = &summary["restoreTests"];
    let temporary = report["started"][0].as_str().expect("a test started").to_owned();
    assert!(temporary.starts_with("lifeboat-rt-"), "{summary}");
    let verification = &report["finished"][0];
    assert_eq!(verification["snapshotId"], record.snapshot_id.as_str(), "{summary}");
    assert_eq!(verification["status"], "passed", "{summary}");
    assert_eq!(verification["restoreTestPassed"], true, "{summary}");
    let results = verification["restoreTest"]["validation"]["results"]
        .as_array()
        .expect("check results");
    assert_eq!(results.len(), 2, "{summary}");
    let checks = setup.catalog.snapshot_checks();
    let stored = checks.verifications(&record, 10).await.expect("read verifications");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].restore_test_passed, Some(true), "{stored:?}");
    assert!(stored[0].rto_seconds.is_some_and(|s| s >= 0.0), "{stored:?}");
    assert!(!setup.instance_exists(&temporary).await, "{temporary} was left behind");

    // An instance tagged as a scheduled restore test's that no test owns.
    let orphan = unique("lifeboat-rt-orphan");
    setup
        .rds
        .restore_db_instance_from_db_snapshot()
        .db_snapshot_identifier(&record.snapshot_id)
        .db_instance_identifier(&orphan)
        .tags(
            aws_sdk_rds::types::Tag::builder()
                .key(lifeboat::snapshot::trial_restore::TAG_RESTORE_TEST)
                .value(&record.snapshot_id)
                .build(),
        )
        .tags(
            aws_sdk_rds::types::Tag::builder()
                .key(lifeboat::snapshot::restore_tests::TAG_SCHEDULED)
                .value("db-nightly")
                .build(),
        )
        .send()
        .await
        .expect("restore an orphan");
    assert!(setup.instance_exists(&orphan).await);

    // The next run, well before `every` (7 days) has passed: no new test,
    // but the orphan is swept.
    let summary = setup
        .invoke("verify", &plans, &event, &[])
        .await
        .unwrap_or_else(|e| panic!("the second run failed: {e}"));
    let report = &summary["restoreTests"];
    assert_eq!(report["started"], json!([]), "{summary}");
    assert_eq!(report["finished"], json!([]), "{summary}");
    assert_eq!(report["orphansDeleted"], json!([orphan]), "{summary}");
    assert!(
        !setup.instance_exists(&orphan).await,
        "the orphan {orphan} is still there"
    );
    let stored = checks.verifications(&record, 10).await.expect("read verifications");
    assert_eq!(stored.len(), 1, "a second test ran: {stored:?}");

    // A failing assertion: recorded with the query and the values, and the
    // temporary instance deleted all the same.
    let setup = Setup::new().await;
    let (instance, _) = setup.instance().await;
    let plans = setup.plan_text(&instance, &setup.dr_key, "keep_days = 7") + &restore_test_block(&database, true);
    let record = setup.snapshot(&plans, days_ago(0)).await;
    let outcome = setup.invoke("verify", &plans, &event, &[]).await;
    let message = error_message(&outcome);
    assert_eq!(
        outcome.as_ref().err().map(|e| e["errorType"].clone()),
        Some(json!("Lifeboat.DamageFound"))
    );
    assert!(
        message.contains("all 99 orders") && message.contains("returned 2, expected exactly 99"),
        "{message}"
    );
    let stored = setup
        .catalog
        .snapshot_checks()
        .verifications(&record, 10)
        .await
        .expect("read verifications");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].restore_test_passed, Some(false), "{stored:?}");
    assert!(
        stored[0]
            .problems
            .iter()
            .any(|p| p.kind == ProblemKind::RestoreTestFailed),
        "{stored:?}"
    );
    let test = stored[0].restore_test.as_ref().expect("the restore test's outcome");
    assert!(test.cleaned_up, "{test:?}");
    let passed: Vec<bool> = test
        .validation
        .as_ref()
        .map(|v| v.results.iter().map(|r| r.passed).collect())
        .unwrap_or_default();
    assert_eq!(passed, [true, true, false], "{test:?}");
    assert!(stored[0].rto_seconds.is_some(), "{stored:?}");
    let temporary =
        lifeboat::snapshot::trial_restore::restore_test_instance(&record.resource_id, &record.scheduled_time);
    assert_eq!(test.instance, temporary);
    assert!(!setup.instance_exists(&temporary).await, "{temporary} was left behind");

    // The toolkit runs the same state machine to completion.
    let setup = Setup::new().await;
    let (instance, _) = setup.instance().await;
    let plans = setup.plan_text(&instance, &setup.dr_key, "keep_days = 7") + &restore_test_block(&database, false);
    let record = setup.snapshot(&plans, days_ago(0)).await;
    let plan_file = setup.write("plans.toml", &plans);
    let args = ["snapshots", "verify", "--plans", plan_file.as_str(), "--restore-tests"];
    let report = setup.lifeboat_json(&args, 0);
    drop(db);
    assert_eq!(
        report["finished"][0]["snapshotId"],
        record.snapshot_id.as_str(),
        "{report}"
    );
    assert_eq!(report["finished"][0]["restoreTestPassed"], true, "{report}");
    let temporary = report["started"][0].as_str().expect("a test started").to_owned();
    assert!(!setup.instance_exists(&temporary).await, "{temporary} was left behind");
    let again = setup.lifeboat_json(&args, 0);
    assert_eq!(again["started"], json!([]), "{again}");
}
