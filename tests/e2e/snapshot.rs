//! The snapshot function, its real binary run under a local Lambda Runtime
//! API, against the emulator's RDS in two regions: eu-central-1 (the
//! databases, the catalog) and us-west-2 (the DR region, with its own KMS
//! key).
//!
//! The emulator makes snapshots and copies `available` at once and emits no
//! RDS events, so:
//! - "in flight" for the copy limit is the catalog's `copying` status until
//!   a later run sees the copy available: the first run starts 5 copies to a
//!   region and queues the rest, the next run completes those and starts the
//!   rest;
//! - the RDS events of `events/` are fed to the function for snapshots whose
//!   records are still in progress (an earlier run that ended before it saw
//!   them available);
//! - what the emulator cannot show (a snapshot that stays `creating`, a copy
//!   that stays `copying` or fails in RDS, throttling and backoff) is driven
//!   by [`ScriptedRds`], a scripted implementation of the library's `SnapshotApi`
//!   trait, against the real catalog table in the emulator (so are the
//!   copy limit across plans and two runs racing);
//! - a plan's database source is dumped from this machine's PostgreSQL.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};
use lifeboat::catalog::Catalog;
use lifeboat::plan::{parse_plans, Plan};
use lifeboat::snapshot::{
    advance, run_scheduled, snapshot_name, CopyStatus, DbResource, RdsError, ResourceKind, SnapshotApi,
    SnapshotCatalog, SnapshotRecord, SnapshotState, SnapshotStatus, MAX_COPIES_IN_FLIGHT, TAG_CREATED_BY, TAG_PLAN,
    TAG_RETENTION_UNTIL,
};
use lifeboat_e2e::{invoke_function, s3_client, sdk_config_in, unique, workspace_bin};
use serde_json::{json, Value};

use crate::support::{sample_event, Engine, TestDb};

const PRIMARY: &str = "eu-central-1";
const DR: &str = "us-west-2";
/// The scheduled time of `events/snapshot-scheduled.json`.
const SCHEDULED: &str = "2026-11-23T02:00:00Z";

fn scheduled() -> Timestamp {
    SCHEDULED.parse().expect("a time")
}

/// A catalog table in the primary region, a KMS key in the DR region, and a
/// tag value no other test uses.
struct Setup {
    rds: aws_sdk_rds::Client,
    dr_rds: aws_sdk_rds::Client,
    table: String,
    records: SnapshotCatalog,
    dr_key: String,
    tag: String,
}

impl Setup {
    async fn new() -> Self {
        let primary = sdk_config_in(PRIMARY).await;
        let dr = sdk_config_in(DR).await;
        let table = unique("snapshots");
        let catalog = Catalog::new(aws_sdk_dynamodb::Client::new(&primary), &table, PRIMARY);
        catalog.create_table().await.expect("create the catalog table");
        let dr_key = aws_sdk_kms::Client::new(&dr)
            .create_key()
            .description("lifeboat DR key")
            .send()
            .await
            .expect("create the DR key")
            .key_metadata()
            .map(|m| m.arn().expect("key ARN").to_owned())
            .expect("key metadata");
        Self {
            rds: aws_sdk_rds::Client::new(&primary),
            dr_rds: aws_sdk_rds::Client::new(&dr),
            records: catalog.snapshots(),
            table,
            dr_key,
            tag: unique("nightly"),
        }
    }

    /// A DB instance (PostgreSQL), optionally in an Aurora cluster; its ARN.
    async fn instance(&self, prefix: &str, tags: &[(&str, &str)], cluster: Option<&str>) -> String {
        let id = unique(prefix);
        let mut request = self
            .rds
            .create_db_instance()
            .db_instance_identifier(&id)
            .set_tags(Some(rds_tags(tags)));
        request = match cluster {
            Some(cluster) => request
                .db_cluster_identifier(cluster)
                .engine("aurora-postgresql")
                .db_instance_class("db.r6g.large"),
            None => request
                .engine("postgres")
                .db_instance_class("db.t3.micro")
                .allocated_storage(20)
                .master_username("lifeboat")
                .master_user_password("not-a-secret-1"),
        };
        let output = request.send().await.expect("create a DB instance");
        output
            .db_instance()
            .and_then(|d| d.db_instance_arn())
            .expect("instance ARN")
            .to_owned()
    }

    /// An Aurora PostgreSQL cluster; (identifier, ARN).
    async fn cluster(&self, prefix: &str, tags: &[(&str, &str)]) -> (String, String) {
        let id = unique(prefix);
        let output = self
            .rds
            .create_db_cluster()
            .db_cluster_identifier(&id)
            .engine("aurora-postgresql")
            .master_username("lifeboat")
            .master_user_password("not-a-secret-1")
            .set_tags(Some(rds_tags(tags)))
            .send()
            .await
            .expect("create an Aurora cluster");
        let arn = output
            .db_cluster()
            .and_then(|c| c.db_cluster_arn())
            .expect("cluster ARN")
            .to_owned();
        (id, arn)
    }

    /// A plan file with one plan named as in the sample event.
    fn plans(&self, selection: &str, kms_key: &str) -> String {
        format!(
            r#"[[plan]]
name = "db-nightly"
schedule = "cron(0 2 * * ? *)"
{selection}
copy_regions = [{{ region = "{DR}", kms_key = "{kms_key}" }}]
retention = {{ keep_days = 2, daily = 30 }}
rpo = "26h"
tier = "critical"
"#
        )
    }

    fn tagged_plans(&self) -> String {
        self.plans(&format!("tags = {{ backup = \"{}\" }}", self.tag), &self.dr_key)
    }

    /// Runs the function once, configured as the stack configures it.
    async fn invoke(&self, plans: &[(&str, String)], event: &Value) -> Result<Value, Value> {
        let mut env = vec![
            ("AWS_REGION", PRIMARY.to_owned()),
            ("LIFEBOAT_TABLE", self.table.clone()),
        ];
        env.extend(plans.iter().cloned());
        invoke_function(&workspace_bin("snapshot"), event, &env)
            .await
            .expect("run the snapshot function")
    }

    async fn invoke_inline(&self, plans: &str, event: &Value) -> Result<Value, Value> {
        self.invoke(&[("LIFEBOAT_PLANS_TOML", plans.to_owned())], event).await
    }

    /// The DB snapshots of an instance in the primary region.
    async fn snapshots_of(&self, instance_id: &str) -> Vec<aws_sdk_rds::types::DbSnapshot> {
        self.rds
            .describe_db_snapshots()
            .db_instance_identifier(instance_id)
            .snapshot_type("manual")
            .send()
            .await
            .expect("describe DB snapshots")
            .db_snapshots()
            .to_vec()
    }

    /// The KMS key of a DB snapshot copy in the DR region, if it exists.
    async fn dr_db_copy_key(&self, name: &str) -> Option<String> {
        match self
            .dr_rds
            .describe_db_snapshots()
            .db_snapshot_identifier(name)
            .send()
            .await
        {
            Ok(output) => output
                .db_snapshots()
                .first()
                .map(|s| s.kms_key_id().unwrap_or_default().to_owned()),
            Err(_) => None,
        }
    }

    async fn dr_cluster_copy_key(&self, name: &str) -> Option<String> {
        match self
            .dr_rds
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier(name)
            .send()
            .await
        {
            Ok(output) => output
                .db_cluster_snapshots()
                .first()
                .map(|s| s.kms_key_id().unwrap_or_default().to_owned()),
            Err(_) => None,
        }
    }

    /// How many of `names` have a DB snapshot copy in the DR region.
    async fn dr_copies(&self, names: &[String]) -> usize {
        let mut count = 0;
        for name in names {
            if self.dr_db_copy_key(name).await.is_some() {
                count += 1;
            }
        }
        count
    }

    async fn record(&self, resource: &str) -> lifeboat::snapshot::SnapshotHistory {
        self.records
            .get("db-nightly", resource, SCHEDULED)
            .await
            .expect("read the snapshot record")
            .unwrap_or_else(|| panic!("no snapshot record for {resource}"))
    }
}

fn rds_tags(tags: &[(&str, &str)]) -> Vec<aws_sdk_rds::types::Tag> {
    tags.iter()
        .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(*k).value(*v).build())
        .collect()
}

fn id_of(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

fn strings(value: &Value) -> Vec<String> {
    let mut list: Vec<String> = value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect();
    list.sort();
    list
}

#[tokio::test]
async fn a_scheduled_run_snapshots_the_tagged_databases_and_copies_them_with_the_dr_key() {
    let setup = Setup::new().await;
    let tag = setup.tag.clone();
    let tagged = [("backup", tag.as_str()), ("team", "orders")];
    let db_a = setup.instance("orders-db", &tagged, None).await;
    let db_b = setup.instance("billing-db", &[("backup", tag.as_str())], None).await;
    let untagged = setup.instance("scratch-db", &[], None).await;
    let other_value = setup.instance("weekly-db", &[("backup", "weekly")], None).await;
    let (cluster_id, cluster) = setup.cluster("orders", &[("backup", tag.as_str())]).await;
    // A tagged member of the cluster is taken through its cluster, not alone.
    let member = setup
        .instance("orders-member", &[("backup", tag.as_str())], Some(&cluster_id))
        .await;
    let (_, untagged_cluster) = setup.cluster("analytics", &[]).await;

    // The plan file in S3, as the stack configures it.
    let s3 = s3_client().await;
    let bucket = unique("plans");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create the plan bucket");
    s3.put_object()
        .bucket(&bucket)
        .key("lifeboat/plans.toml")
        .body(setup.tagged_plans().into_bytes().into())
        .send()
        .await
        .expect("upload the plan file");
    let plans = [("LIFEBOAT_PLANS", format!("s3://{bucket}/lifeboat/plans.toml"))];

    let event = sample_event("snapshot-scheduled.json");
    let summary = setup
        .invoke(&plans, &event)
        .await
        .unwrap_or_else(|e| panic!("the scheduled run failed: {e}"));
    let name = |arn: &str| snapshot_name("db-nightly", id_of(arn), scheduled());
    let mut expected = vec![name(&db_a), name(&db_b), name(&cluster)];
    expected.sort();
    assert_eq!(strings(&summary["selected"]).len(), 3, "{summary}");
    assert_eq!(strings(&summary["created"]), expected, "{summary}");
    assert_eq!(strings(&summary["completed"]), expected, "{summary}");
    let copies: Vec<String> = expected.iter().map(|n| format!("{n}@{DR}")).collect();
    assert_eq!(strings(&summary["copiesStarted"]), copies, "{summary}");
    assert_eq!(summary["failures"], json!([]), "{summary}");

    // Exactly the tagged ones have snapshots, tagged for Lifeboat.
    for arn in [&db_a, &db_b] {
        let snapshots = setup.snapshots_of(id_of(arn)).await;
        assert_eq!(snapshots.len(), 1, "{arn}: {snapshots:?}");
        assert_eq!(snapshots[0].db_snapshot_identifier(), Some(name(arn).as_str()));
        let tags: BTreeMap<&str, &str> = snapshots[0]
            .tag_list()
            .iter()
            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
            .collect();
        assert_eq!(tags.get(TAG_PLAN), Some(&"db-nightly"), "{tags:?}");
        assert_eq!(tags.get(TAG_CREATED_BY), Some(&"lifeboat-snapshot"), "{tags:?}");
        assert_eq!(tags.get(TAG_RETENTION_UNTIL), Some(&"2026-12-23T02:00:00Z"), "{tags:?}");
    }
    for arn in [&untagged, &other_value, &member] {
        assert!(setup.snapshots_of(id_of(arn)).await.is_empty(), "{arn} was snapshotted");
    }
    let cluster_snapshots = setup
        .rds
        .describe_db_cluster_snapshots()
        .db_cluster_identifier(id_of(&untagged_cluster))
        .send()
        .await
        .expect("describe cluster snapshots");
    assert!(
        cluster_snapshots
            .db_cluster_snapshots()
            .iter()
            .all(|s| s.snapshot_type() != Some("manual")),
        "the untagged cluster was snapshotted"
    );

    // The copies exist in the DR region, encrypted with the DR key.
    for arn in [&db_a, &db_b] {
        assert_eq!(
            setup.dr_db_copy_key(&name(arn)).await.as_deref(),
            Some(setup.dr_key.as_str())
        );
    }
    assert_eq!(
        setup.dr_cluster_copy_key(&name(&cluster)).await.as_deref(),
        Some(setup.dr_key.as_str())
    );
    let copy = setup
        .dr_rds
        .describe_db_snapshots()
        .db_snapshot_identifier(name(&db_a))
        .send()
        .await
        .expect("describe the DR copy");
    let copy_tags: BTreeMap<&str, &str> = copy.db_snapshots()[0]
        .tag_list()
        .iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
        .collect();
    assert_eq!(copy_tags.get(TAG_PLAN), Some(&"db-nightly"), "{copy_tags:?}");
    assert_eq!(
        copy_tags.get(TAG_RETENTION_UNTIL),
        Some(&"2026-12-23T02:00:00Z"),
        "{copy_tags:?}"
    );

    // The catalog: completed, the copy started.
    for arn in [&db_a, &db_b, &cluster] {
        let entry = setup.record(arn).await;
        assert_eq!(entry.snapshot.status, SnapshotStatus::Completed, "{entry:?}");
        assert_eq!(entry.snapshot.snapshot_id, name(arn));
        assert!(entry.snapshot.snapshot_arn.is_some(), "{entry:?}");
        let copy = entry.copy_in(DR).expect("a copy record");
        assert_eq!(
            (copy.status, copy.kms_key_id.as_str()),
            (CopyStatus::Copying, setup.dr_key.as_str())
        );
    }

    // The same event again: nothing new is created; the copies complete.
    let again = setup
        .invoke(&plans, &event)
        .await
        .unwrap_or_else(|e| panic!("the redelivered event failed: {e}"));
    assert_eq!(again["created"], json!([]), "{again}");
    assert_eq!(strings(&again["alreadyTaken"]), expected, "{again}");
    assert_eq!(strings(&again["copiesCompleted"]), copies, "{again}");
    for arn in [&db_a, &db_b] {
        assert_eq!(
            setup.snapshots_of(id_of(arn)).await.len(),
            1,
            "{arn}: a second snapshot"
        );
    }
    let latest = setup
        .records
        .latest_completed(&db_a)
        .await
        .expect("read the history")
        .expect("a completed snapshot");
    assert_eq!(latest.snapshot.snapshot_id, name(&db_a));
    assert_eq!(latest.copy_in(DR).map(|c| c.status), Some(CopyStatus::Completed));
    assert!(latest
        .copy_in(DR)
        .and_then(|c| c.snapshot_arn.as_deref())
        .is_some_and(|a| a.contains(DR)));

    // A direct invocation for the next day's run: a second snapshot; the
    // history lists both, newest first, and the newest is the latest.
    let next_day = json!({"plan": "db-nightly", "scheduledTime": "2026-11-24T02:00:17Z"});
    let direct = setup
        .invoke(&plans, &next_day)
        .await
        .unwrap_or_else(|e| panic!("the direct run failed: {e}"));
    assert_eq!(direct["scheduledTime"], "2026-11-24T02:00:00Z", "{direct}");
    assert_eq!(direct["created"].as_array().map(Vec::len), Some(3), "{direct}");
    let tomorrow: Timestamp = "2026-11-24T02:00:00Z".parse().expect("a time");
    let history = setup.records.history(&db_a).await.expect("read the history");
    let ids: Vec<&str> = history.iter().map(|h| h.snapshot.snapshot_id.as_str()).collect();
    let newest = snapshot_name("db-nightly", id_of(&db_a), tomorrow);
    assert_eq!(ids, [newest.as_str(), name(&db_a).as_str()]);
    let latest = setup
        .records
        .latest_completed(&db_a)
        .await
        .expect("read the history")
        .expect("a completed snapshot");
    assert_eq!(latest.snapshot.snapshot_id, newest);
    assert_eq!(latest.copy_in(DR).map(|c| c.status), Some(CopyStatus::Copying));
    let all = setup.records.list().await.expect("list the snapshot records");
    assert_eq!(all.len(), 6, "{all:?}");
    assert_eq!(all[0].scheduled_time, "2026-11-24T02:00:00Z");
}

#[tokio::test]
async fn more_than_five_copies_to_one_region_are_queued_not_dropped() {
    let setup = Setup::new().await;
    let tag = setup.tag.clone();
    let mut names = Vec::new();
    for i in 0..7 {
        let arn = setup
            .instance(&format!("fleet{i}"), &[("backup", tag.as_str())], None)
            .await;
        names.push(snapshot_name("db-nightly", id_of(&arn), scheduled()));
    }
    let plans = setup.tagged_plans();
    let event = sample_event("snapshot-scheduled.json");

    let first = setup.invoke_inline(&plans, &event).await.expect("first run");
    assert_eq!(first["created"].as_array().map(Vec::len), Some(7), "{first}");
    assert_eq!(
        first["copiesStarted"].as_array().map(Vec::len),
        Some(MAX_COPIES_IN_FLIGHT),
        "{first}"
    );
    assert_eq!(first["copiesQueued"].as_array().map(Vec::len), Some(2), "{first}");
    assert_eq!(
        setup.dr_copies(&names).await,
        5,
        "copies in the DR region after the first run"
    );
    let work = setup.records.open_work("db-nightly").await.expect("open work");
    let statuses: Vec<CopyStatus> = work.copies.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == CopyStatus::Copying).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == CopyStatus::Queued).count(),
        2,
        "{statuses:?}"
    );

    // The next run (here an RDS event) sees the five done and starts the rest.
    let mut rds_event = sample_event("rds-db-snapshot-event.json");
    rds_event["detail"]["SourceIdentifier"] = json!(names[0]);
    let second = setup.invoke_inline(&plans, &rds_event).await.expect("second run");
    assert_eq!(second["copiesCompleted"].as_array().map(Vec::len), Some(5), "{second}");
    assert_eq!(second["copiesStarted"].as_array().map(Vec::len), Some(2), "{second}");
    assert_eq!(setup.dr_copies(&names).await, 7);

    let third = setup.invoke_inline(&plans, &rds_event).await.expect("third run");
    assert_eq!(third["copiesCompleted"].as_array().map(Vec::len), Some(2), "{third}");
    let work = setup.records.open_work("db-nightly").await.expect("open work");
    assert!(work.snapshots.is_empty() && work.copies.is_empty(), "{work:?}");
}

/// A record in progress, as a run leaves it that ended before it saw its
/// snapshot available; the snapshot made directly in RDS.
async fn in_progress(setup: &Setup, kind: ResourceKind, arn: &str) -> String {
    let name = snapshot_name("db-nightly", id_of(arn), scheduled());
    let created_arn = match kind {
        ResourceKind::DbInstance => setup
            .rds
            .create_db_snapshot()
            .db_instance_identifier(id_of(arn))
            .db_snapshot_identifier(&name)
            .send()
            .await
            .expect("create a DB snapshot")
            .db_snapshot()
            .and_then(|s| s.db_snapshot_arn().map(str::to_owned)),
        ResourceKind::Cluster => setup
            .rds
            .create_db_cluster_snapshot()
            .db_cluster_identifier(id_of(arn))
            .db_cluster_snapshot_identifier(&name)
            .send()
            .await
            .expect("create a cluster snapshot")
            .db_cluster_snapshot()
            .and_then(|s| s.db_cluster_snapshot_arn().map(str::to_owned)),
    };
    let record = SnapshotRecord {
        plan: "db-nightly".into(),
        resource: arn.to_owned(),
        resource_id: id_of(arn).to_owned(),
        resource_kind: kind,
        region: PRIMARY.into(),
        scheduled_time: SCHEDULED.into(),
        snapshot_id: name.clone(),
        snapshot_arn: created_arn,
        status: SnapshotStatus::InProgress,
        created_at: "2026-11-23T02:00:01.000Z".into(),
        completed_at: None,
        retention_until: None,
        engine: None,
        error: None,
        failed_at: None,
    };
    setup.records.claim(&record).await.expect("claim");
    name
}

#[tokio::test]
async fn rds_snapshot_events_complete_the_record_and_start_the_copy() {
    let setup = Setup::new().await;
    let db = setup.instance("events-db", &[], None).await;
    let (_, cluster) = setup.cluster("events", &[]).await;
    let plans = setup.plans(&format!("resources = [\"{db}\", \"{cluster}\"]"), &setup.dr_key);
    let db_name = in_progress(&setup, ResourceKind::DbInstance, &db).await;
    let cluster_name = in_progress(&setup, ResourceKind::Cluster, &cluster).await;

    let mut event = sample_event("rds-db-snapshot-event.json");
    event["detail"]["SourceIdentifier"] = json!(db_name);
    event["detail"]["SourceArn"] = json!(format!("arn:aws:rds:{PRIMARY}:123456789012:snapshot:{db_name}"));
    let summary = setup
        .invoke_inline(&plans, &event)
        .await
        .expect("the DB snapshot event");
    // One event advances all open work: both records complete.
    assert_eq!(strings(&summary["completed"]), {
        let mut both = vec![db_name.clone(), cluster_name.clone()];
        both.sort();
        both
    });
    let entry = setup.record(&db).await;
    assert_eq!(entry.snapshot.status, SnapshotStatus::Completed, "{entry:?}");
    assert!(entry.snapshot.completed_at.is_some());
    assert_eq!(entry.copy_in(DR).map(|c| c.status), Some(CopyStatus::Copying));
    assert_eq!(
        setup.dr_db_copy_key(&db_name).await.as_deref(),
        Some(setup.dr_key.as_str())
    );
    assert_eq!(
        setup.dr_cluster_copy_key(&cluster_name).await.as_deref(),
        Some(setup.dr_key.as_str())
    );

    let mut event = sample_event("rds-cluster-snapshot-event.json");
    event["detail"]["SourceIdentifier"] = json!(cluster_name);
    let summary = setup
        .invoke_inline(&plans, &event)
        .await
        .expect("the cluster snapshot event");
    assert_eq!(
        summary["copiesCompleted"].as_array().map(Vec::len),
        Some(2),
        "{summary}"
    );
    let entry = setup.record(&cluster).await;
    assert_eq!(entry.copy_in(DR).map(|c| c.status), Some(CopyStatus::Completed));

    // An event about a snapshot that is not Lifeboat's changes nothing.
    let mut foreign = sample_event("rds-db-snapshot-event.json");
    foreign["detail"]["SourceIdentifier"] = json!("rds:orders-2026-11-23-02-00");
    let summary = setup.invoke_inline(&plans, &foreign).await.expect("a foreign event");
    assert_eq!(summary["plans"], json!([]), "{summary}");
}

#[tokio::test]
async fn failures_are_recorded_with_the_aws_error_and_the_others_proceed() {
    let setup = Setup::new().await;
    let db = setup.instance("present-db", &[], None).await;
    let missing = unique("missing-db");
    let plans = setup.plans(&format!("resources = [\"{db}\", \"{missing}\"]"), &setup.dr_key);
    let event = sample_event("snapshot-scheduled.json");
    let error = setup
        .invoke_inline(&plans, &event)
        .await
        .expect_err("a missing instance did not fail the invocation");
    assert_eq!(error["errorType"], "Lifeboat.SnapshotFailed", "{error}");
    let message = error["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains(&missing) && message.contains("DBInstanceNotFound"),
        "{message}"
    );

    let failed = setup.record(&missing).await.snapshot;
    assert_eq!(failed.status, SnapshotStatus::Failed);
    assert!(
        failed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("DBInstanceNotFound")),
        "{failed:?}"
    );
    let present = setup.record(&db).await;
    assert_eq!(present.snapshot.status, SnapshotStatus::Completed);
    assert_eq!(present.copy_in(DR).map(|c| c.status), Some(CopyStatus::Copying));

    // A copy region whose key does not exist: the snapshot completes, the copy fails.
    let other = setup.instance("badkey-db", &[], None).await;
    let bad_key = format!("arn:aws:kms:{DR}:123456789012:key/00000000-0000-0000-0000-000000000000");
    let plans = setup.plans(&format!("resources = [\"{other}\"]"), &bad_key);
    let error = setup
        .invoke_inline(&plans, &event)
        .await
        .expect_err("a missing copy key did not fail the invocation");
    assert_eq!(error["errorType"], "Lifeboat.SnapshotFailed", "{error}");
    let entry = setup.record(&other).await;
    assert_eq!(entry.snapshot.status, SnapshotStatus::Completed);
    let copy = entry.copy_in(DR).expect("a copy record");
    assert_eq!(copy.status, CopyStatus::Failed, "{copy:?}");
    assert!(
        copy.error.as_deref().is_some_and(|e| e.contains("NotFoundException")),
        "{copy:?}"
    );
    let name = snapshot_name("db-nightly", id_of(&other), scheduled());
    assert_eq!(
        setup.dr_db_copy_key(&name).await,
        None,
        "a copy was made with a missing key"
    );

    // A copy region that is the snapshot's own region: refused, recorded.
    let local = setup.instance("samekey-db", &[], None).await;
    let own_key = bad_key.replace(DR, PRIMARY);
    let plans = setup
        .plans(&format!("resources = [\"{local}\"]"), &own_key)
        .replace(&format!("region = \"{DR}\""), &format!("region = \"{PRIMARY}\""));
    let error = setup
        .invoke_inline(&plans, &event)
        .await
        .expect_err("a copy into the snapshot's own region did not fail the invocation");
    assert!(
        error["errorMessage"].as_str().is_some_and(|m| m.contains("own region")),
        "{error}"
    );
    let copy = setup
        .record(&local)
        .await
        .copy_in(PRIMARY)
        .cloned()
        .expect("a copy record");
    assert_eq!(copy.status, CopyStatus::Failed, "{copy:?}");
}

#[tokio::test]
async fn bad_plans_are_rejected_at_start() {
    let setup = Setup::new().await;
    let bad = setup
        .plans("tags = { backup = \"x\" }", "not-an-arn")
        .replace("cron(0 2 * * ? *)", "cron(0 2 * * *)");
    let outcome = invoke_function(
        &workspace_bin("snapshot"),
        &sample_event("snapshot-scheduled.json"),
        &[
            ("AWS_REGION", PRIMARY.to_owned()),
            ("LIFEBOAT_TABLE", setup.table.clone()),
            ("LIFEBOAT_PLANS_TOML", bad),
        ],
    )
    .await;
    let text = match outcome {
        Ok(Ok(answer)) => panic!("the function ran with a bad plan file: {answer}"),
        Ok(Err(error)) => error.to_string(),
        Err(error) => format!("{error:#}"),
    };
    assert!(text.contains("plan db-nightly, field schedule"), "{text}");
    assert!(text.contains("copy_regions"), "{text}");

    // An event naming a plan the file does not have.
    let mut event = sample_event("snapshot-scheduled.json");
    event["detail"]["plan"] = json!("no-such-plan");
    let error = setup
        .invoke_inline(&setup.tagged_plans(), &event)
        .await
        .expect_err("an unknown plan was accepted");
    assert_eq!(error["errorType"], "Lifeboat.BadEvent", "{error}");
}

// ---------------------------------------------------------------------------
// States the emulator cannot show, scripted
// ---------------------------------------------------------------------------

/// A `SnapshotApi` whose answers the test sets: each snapshot's (and copy's)
/// status per region, and what each copy request answers.
#[derive(Default)]
struct ScriptedRds {
    resources: Vec<DbResource>,
    state: Mutex<Script>,
}

#[derive(Default)]
struct Script {
    /// (region, snapshot id) → status.
    statuses: BTreeMap<(String, String), String>,
    /// Answers of the next copy requests; an empty queue accepts.
    copy_answers: VecDeque<Result<(), RdsError>>,
    /// Copies requested: (region, snapshot id, KMS key).
    copies: Vec<(String, String, String)>,
}

impl ScriptedRds {
    fn set(&self, region: &str, snapshot: &str, status: &str) {
        let mut script = self.state.lock().expect("script");
        script
            .statuses
            .insert((region.to_owned(), snapshot.to_owned()), status.to_owned());
    }

    fn copies(&self) -> Vec<(String, String, String)> {
        self.state.lock().expect("script").copies.clone()
    }

    fn state(region: &str, snapshot: &str, status: &str) -> SnapshotState {
        SnapshotState {
            status: status.to_owned(),
            arn: Some(format!("arn:aws:rds:{region}:123456789012:snapshot:{snapshot}")),
            engine: Some("postgres".to_owned()),
            ..SnapshotState::default()
        }
    }
}

impl SnapshotApi for ScriptedRds {
    fn region(&self) -> &str {
        PRIMARY
    }

    async fn list_resources(&self) -> Result<Vec<DbResource>, RdsError> {
        Ok(self.resources.clone())
    }

    async fn find_resource(&self, id: &str, _kind: Option<ResourceKind>) -> Result<DbResource, RdsError> {
        self.resources
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or_else(|| RdsError::new(Some("DBInstanceNotFound"), format!("DBInstance {id} not found.")))
    }

    async fn create_snapshot(
        &self,
        _resource: &DbResource,
        snapshot_id: &str,
        _tags: &[(String, String)],
    ) -> Result<SnapshotState, RdsError> {
        self.set(PRIMARY, snapshot_id, "creating");
        Ok(Self::state(PRIMARY, snapshot_id, "creating"))
    }

    async fn describe_snapshot(
        &self,
        region: &str,
        _kind: ResourceKind,
        snapshot_id: &str,
    ) -> Result<Option<SnapshotState>, RdsError> {
        let script = self.state.lock().expect("script");
        Ok(script
            .statuses
            .get(&(region.to_owned(), snapshot_id.to_owned()))
            .map(|status| Self::state(region, snapshot_id, status)))
    }

    async fn copy_snapshot(
        &self,
        region: &str,
        _kind: ResourceKind,
        _source_arn: &str,
        target_id: &str,
        kms_key: &str,
        _tags: &[(String, String)],
    ) -> Result<SnapshotState, RdsError> {
        let mut script = self.state.lock().expect("script");
        script.copy_answers.pop_front().unwrap_or(Ok(()))?;
        script
            .copies
            .push((region.to_owned(), target_id.to_owned(), kms_key.to_owned()));
        script
            .statuses
            .insert((region.to_owned(), target_id.to_owned()), "pending".to_owned());
        Ok(Self::state(region, target_id, "pending"))
    }

    async fn check_key(&self, _region: &str, _kms_key: &str) -> Result<(), RdsError> {
        Ok(())
    }
}

fn scripted_plan(setup: &Setup) -> Plan {
    parse_plans(&setup.tagged_plans(), scheduled())
        .expect("the plan parses")
        .remove(0)
}

#[tokio::test]
async fn scripted_states_creating_copying_failed_throttled_and_backoff() {
    let setup = Setup::new().await;
    let resources: Vec<DbResource> = (0..7)
        .map(|i| DbResource {
            kind: ResourceKind::DbInstance,
            id: format!("db{i}"),
            arn: format!("arn:aws:rds:{PRIMARY}:123456789012:db:{}-db{i}", setup.tag),
            tags: [("backup".to_owned(), setup.tag.clone())].into(),
            cluster: None,
        })
        .collect();
    let names: Vec<String> = resources
        .iter()
        .map(|r| snapshot_name("db-nightly", &r.id, scheduled()))
        .collect();
    let rds = ScriptedRds {
        resources,
        ..ScriptedRds::default()
    };
    let plans = [scripted_plan(&setup)];
    let mut now = scheduled() + SignedDuration::from_secs(5);

    // Creating: recorded in progress, nothing copied.
    let summary = run_scheduled(&rds, &setup.records, &plans, "db-nightly", scheduled(), now)
        .await
        .expect("run");
    assert_eq!((summary.created.len(), summary.creating.len()), (7, 7), "{summary:?}");
    assert!(summary.completed.is_empty() && rds.copies().is_empty());

    // Still creating on the next run; then available: completed, 5 copies started.
    now += SignedDuration::from_mins(5);
    let summary = advance(&rds, &setup.records, &plans, now).await.expect("advance");
    assert_eq!(summary.creating.len(), 7, "{summary:?}");
    for name in &names {
        rds.set(PRIMARY, name, "available");
    }
    now += SignedDuration::from_mins(5);
    let summary = advance(&rds, &setup.records, &plans, now).await.expect("advance");
    assert_eq!(summary.completed.len(), 7, "{summary:?}");
    assert_eq!(
        (summary.copies_started.len(), summary.copies_queued.len()),
        (5, 2),
        "{summary:?}"
    );
    assert!(rds
        .copies()
        .iter()
        .all(|(region, _, key)| region == DR && *key == setup.dr_key));

    // In flight in RDS ("copying"): nothing more starts.
    for (_, name, _) in rds.copies() {
        rds.set(DR, &name, "copying");
    }
    now += SignedDuration::from_mins(5);
    let summary = advance(&rds, &setup.records, &plans, now).await.expect("advance");
    assert_eq!(
        (
            summary.copies_in_flight.len(),
            summary.copies_started.len(),
            summary.copies_queued.len()
        ),
        (5, 0, 2),
        "{summary:?}"
    );

    // Two finish, one fails in RDS: three slots; the first request is throttled.
    let started = rds.copies();
    rds.set(DR, &started[0].1, "available");
    rds.set(DR, &started[1].1, "available");
    rds.set(DR, &started[2].1, "failed");
    rds.state
        .lock()
        .expect("script")
        .copy_answers
        .push_back(Err(RdsError::new(Some("ThrottlingException"), "Rate exceeded")));
    now += SignedDuration::from_mins(5);
    let summary = advance(&rds, &setup.records, &plans, now).await.expect("advance");
    assert_eq!(summary.copies_completed.len(), 2, "{summary:?}");
    assert_eq!(summary.failures.len(), 1, "{summary:?}");
    assert!(summary.failures[0].error.contains("\"failed\""), "{summary:?}");
    assert!(
        summary.copies_started.is_empty(),
        "started after throttling: {summary:?}"
    );
    assert_eq!(summary.copies_queued.len(), 2, "{summary:?}");
    let failed = setup
        .records
        .get(
            "db-nightly",
            &format!("arn:aws:rds:{PRIMARY}:123456789012:db:{}-db2", setup.tag),
            SCHEDULED,
        )
        .await
        .expect("read")
        .expect("a record");
    let failed_copy = failed.copy_in(DR).expect("copy");
    assert_eq!(failed_copy.status, CopyStatus::Failed, "{failed_copy:?}");
    let work = setup.records.open_work("db-nightly").await.expect("open work");
    let throttled: Vec<_> = work
        .copies
        .iter()
        .filter(|c| c.attempts == 1 && c.status == CopyStatus::Queued)
        .collect();
    assert_eq!(throttled.len(), 1, "{work:?}");
    assert_eq!(
        throttled[0].error.as_deref(),
        Some("ThrottlingException: Rate exceeded")
    );
    let retry_at: Timestamp = throttled[0]
        .next_attempt_at
        .as_deref()
        .expect("backoff")
        .parse()
        .expect("a time");
    assert_eq!(retry_at, now + SignedDuration::from_mins(5));
    let throttled_id = throttled[0].snapshot_id.clone();

    // A minute later: the other queued copy starts, the throttled one waits.
    now += SignedDuration::from_mins(1);
    let summary = advance(&rds, &setup.records, &plans, now).await.expect("advance");
    assert_eq!(summary.copies_started.len(), 1, "{summary:?}");
    assert_eq!(
        summary.copies_queued,
        vec![format!("{throttled_id}@{DR}")],
        "{summary:?}"
    );

    // After its backoff it starts: its second attempt.
    now += SignedDuration::from_mins(5);
    let summary = advance(&rds, &setup.records, &plans, now).await.expect("advance");
    assert_eq!(
        summary.copies_started,
        vec![format!("{throttled_id}@{DR}")],
        "{summary:?}"
    );
    let work = setup.records.open_work("db-nightly").await.expect("open work");
    let retried = work
        .copies
        .iter()
        .find(|c| c.snapshot_id == throttled_id)
        .expect("still open");
    assert_eq!((retried.status, retried.attempts), (CopyStatus::Copying, 2));
    // Open: the two of the first five still copying, and the two started since.
    assert_eq!(work.copies.len(), 4, "{work:?}");
}

#[tokio::test]
async fn copies_of_every_plan_to_one_region_share_its_limit() {
    let setup = Setup::new().await;
    let tagged = |prefix: &str| -> Vec<DbResource> {
        (0..4)
            .map(|i| DbResource {
                kind: ResourceKind::DbInstance,
                id: format!("{prefix}{i}"),
                arn: format!("arn:aws:rds:{PRIMARY}:123456789012:db:{}-{prefix}{i}", setup.tag),
                tags: [("backup".to_owned(), prefix.to_owned())].into(),
                cluster: None,
            })
            .collect()
    };
    let rds = ScriptedRds {
        resources: [tagged("nightly"), tagged("hourly")].concat(),
        ..ScriptedRds::default()
    };
    let hourly = setup
        .plans("tags = { backup = \"hourly\" }", &setup.dr_key)
        .replace("db-nightly", "db-hourly")
        .replace("cron(0 2 * * ? *)", "cron(0 * * * ? *)")
        .replace("26h", "1h");
    let text = format!(
        "{}\n{hourly}",
        setup.plans("tags = { backup = \"nightly\" }", &setup.dr_key)
    );
    let plans = parse_plans(&text, scheduled()).expect("the plans parse");
    let now = scheduled() + SignedDuration::from_secs(5);
    for plan in ["db-nightly", "db-hourly"] {
        let summary = run_scheduled(&rds, &setup.records, &plans, plan, scheduled(), now)
            .await
            .expect("run");
        assert_eq!(summary.created.len(), 4, "{summary:?}");
    }
    for resource in &rds.resources {
        let plan = if resource.id.starts_with("nightly") {
            "db-nightly"
        } else {
            "db-hourly"
        };
        rds.set(PRIMARY, &snapshot_name(plan, &resource.id, scheduled()), "available");
    }
    let summary = advance(&rds, &setup.records, &plans, now + SignedDuration::from_mins(5))
        .await
        .expect("advance");
    assert_eq!(summary.completed.len(), 8, "{summary:?}");
    assert_eq!(
        (summary.copies_started.len(), summary.copies_queued.len()),
        (MAX_COPIES_IN_FLIGHT, 3),
        "{summary:?}"
    );
    assert_eq!(rds.copies().len(), MAX_COPIES_IN_FLIGHT);
}

// ---------------------------------------------------------------------------
// A plan's database sources: logical dumps on its schedule
// ---------------------------------------------------------------------------

/// The snapshot function's environment as infra/lifeboat.yaml sets it, each
/// variable given this test's value (the store, its key, the catalog, the
/// plan file in a bucket), and PATH holding the database tools layer when
/// it is built (crate::db_tools).
fn deployed_environment(store: &crate::support::Store, plans: &str) -> Vec<(&'static str, String)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/lifeboat.yaml"))
        .expect("read infra/lifeboat.yaml");
    let template: serde_yaml::Value = serde_yaml::from_str(&text).expect("the template is YAML");
    let variables = template["Resources"]["SnapshotFunction"]["Properties"]["Environment"]["Variables"]
        .as_mapping()
        .expect("the snapshot function's environment");
    let mut env: Vec<(&'static str, String)> = variables
        .keys()
        .map(|name| match name.as_str().unwrap_or_default() {
            "LIFEBOAT_TABLE" => ("LIFEBOAT_TABLE", store.table.clone()),
            "LIFEBOAT_STORE" => ("LIFEBOAT_STORE", store.url.clone()),
            "LIFEBOAT_KMS_KEY" => ("LIFEBOAT_KMS_KEY", store.kms_key.clone()),
            "LIFEBOAT_PLANS" => ("LIFEBOAT_PLANS", plans.to_owned()),
            other => panic!("the template sets {other} for the snapshot function: give it a value in this test"),
        })
        .collect();
    if let Some(layer) = crate::db_tools::db_tools_layer() {
        env.push(("PATH", crate::db_tools::layer_path(layer)));
    }
    env
}

#[tokio::test]
async fn a_plans_database_sources_are_dumped_once_per_scheduled_run() {
    let store = crate::support::Store::new().await;
    let source = TestDb::create(Engine::Postgres, "plandump");
    let database = source.name.clone();
    let restored = format!("{database}_restored");
    let _restored = TestDb {
        engine: Engine::Postgres,
        name: restored.clone(),
    };
    source.sql(
        "CREATE TABLE orders (id int PRIMARY KEY, item text); INSERT INTO orders VALUES (1, 'boat'), (2, 'oar'), (3, 'life vest')",
    );
    // Deployed, the plan names the database by its secret, not its password.
    let secret = crate::db_tools::create_secret(
        &json!({"engine": "postgres", "host": "127.0.0.1", "port": 5432, "username": "postgres",
                "password": "plan-file-never-sees-this", "dbname": database})
        .to_string(),
    )
    .await;
    let plans = format!(
        r#"[[plan]]
name = "db-nightly"
schedule = "cron(0 2 * * ? *)"
sources = ["{secret}"]
retention = {{ daily = 7 }}
rpo = "26h"
tier = "important"
"#
    );
    let code_bucket = crate::support::create_bucket(&store.s3, "code").await;
    store
        .s3
        .put_object()
        .bucket(&code_bucket)
        .key("lifeboat/plans.toml")
        .body(plans.clone().into_bytes().into())
        .send()
        .await
        .expect("upload the plan file");
    let env = deployed_environment(&store, &format!("s3://{code_bucket}/lifeboat/plans.toml"));
    let event = sample_event("snapshot-scheduled.json");
    let binary = workspace_bin("snapshot");
    let summary = invoke_function(&binary, &event, &env)
        .await
        .expect("run the snapshot function")
        .unwrap_or_else(|e| panic!("the dump run failed: {e}"));
    let dumps = strings(&summary["dumps"]);
    assert_eq!(dumps.len(), 1, "{summary}");
    let backup = store.json(&["backups", "show", &dumps[0]]);
    assert_eq!(backup["status"], "completed", "{backup}");
    assert_eq!(backup["engine"], "postgresql", "{backup}");
    assert_eq!(backup["database"], database.as_str(), "{backup}");
    assert_eq!(
        backup["source"],
        format!("postgresql://postgres@127.0.0.1:5432/{database}"),
        "{backup}"
    );

    // Redelivered: no second dump.
    let again = invoke_function(&binary, &event, &env)
        .await
        .expect("run the snapshot function")
        .unwrap_or_else(|e| panic!("the redelivered event failed: {e}"));
    assert_eq!(again["dumps"], json!([]), "{again}");
    assert_eq!(
        strings(&again["alreadyTaken"]),
        [backup["source"].as_str().unwrap_or_default()]
    );
    let listed = store.json(&["backups", "list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    // The dump restores (made by the layer's newer pg_dump when it is there).
    match crate::db_tools::db_tools_layer() {
        Some(layer) => crate::db_tools::restore_newer_postgres_dump(&store, layer, &dumps[0], &restored),
        None => {
            store.ok(&[
                "restore",
                "dump",
                &dumps[0],
                "--to",
                &format!("postgres://postgres@127.0.0.1:5432/{restored}"),
            ]);
        }
    }
    assert_eq!(
        Engine::Postgres
            .sql(&restored, "SELECT string_agg(item, ',' ORDER BY id) FROM orders")
            .trim(),
        "boat,oar,life vest"
    );

    // Without a store the function does not start.
    let outcome = invoke_function(
        &binary,
        &event,
        &[("LIFEBOAT_TABLE", store.table.clone()), ("LIFEBOAT_PLANS_TOML", plans)],
    )
    .await;
    let text = match outcome {
        Ok(Ok(answer)) => panic!("the function ran without a store: {answer}"),
        Ok(Err(error)) => error.to_string(),
        Err(error) => format!("{error:#}"),
    };
    assert!(text.contains("LIFEBOAT_STORE"), "{text}");
}

#[tokio::test]
async fn two_runs_at_once_complete_each_snapshot_and_start_each_copy_once() {
    let setup = Setup::new().await;
    let resources: Vec<DbResource> = (0..3)
        .map(|i| DbResource {
            kind: ResourceKind::DbInstance,
            id: format!("race{i}"),
            arn: format!("arn:aws:rds:{PRIMARY}:123456789012:db:{}-race{i}", setup.tag),
            tags: [("backup".to_owned(), setup.tag.clone())].into(),
            cluster: None,
        })
        .collect();
    let rds = ScriptedRds {
        resources,
        ..ScriptedRds::default()
    };
    let plans = [scripted_plan(&setup)];
    let now = scheduled() + SignedDuration::from_secs(5);
    run_scheduled(&rds, &setup.records, &plans, "db-nightly", scheduled(), now)
        .await
        .expect("run");
    for resource in &rds.resources {
        rds.set(
            PRIMARY,
            &snapshot_name("db-nightly", &resource.id, scheduled()),
            "available",
        );
    }
    // An RDS event and a later run at the same moment: the conditional
    // writes let each transition happen once.
    let later = now + SignedDuration::from_mins(5);
    let (a, b) = tokio::join!(
        advance(&rds, &setup.records, &plans, later),
        advance(&rds, &setup.records, &plans, later)
    );
    let (a, b) = (a.expect("first run"), b.expect("second run"));
    assert_eq!(a.completed.len() + b.completed.len(), 3, "{a:?}\n{b:?}");
    assert_eq!(a.copies_started.len() + b.copies_started.len(), 3, "{a:?}\n{b:?}");
    assert!(a.failures.is_empty() && b.failures.is_empty(), "{a:?}\n{b:?}");
    assert_eq!(rds.copies().len(), 3, "each copy requested once");
}

/// The plan's generated schedule (`lifeboat plan schedules`) sends the
/// snapshot function its direct-invoke payload; with Scheduler's scheduled
/// time in place, the run snapshots the plan's databases for that time.
#[tokio::test]
async fn the_generated_schedules_input_runs_the_plan() {
    let setup = Setup::new().await;
    let db = setup
        .instance("scheduled-db", &[("backup", setup.tag.as_str())], None)
        .await;
    let plans = setup.tagged_plans();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("plans.toml");
    std::fs::write(&file, &plans).expect("write the plan file");
    let output = std::process::Command::new(workspace_bin("lifeboat"))
        .args(["plan", "schedules"])
        .arg(&file)
        .output()
        .expect("run lifeboat plan schedules");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let template: Value = serde_json::from_slice(&output.stdout).expect("the template is JSON");
    let schedule = &template["Resources"]["DbNightlySnapshotSchedule"]["Properties"];
    assert_eq!(schedule["ScheduleExpression"], "cron(0 2 * * ? *)");
    assert_eq!(schedule["ScheduleExpressionTimezone"], "UTC");
    let input = schedule["Target"]["Input"].as_str().expect("an input");
    // Scheduler's context attribute, as it fills it in for the run.
    let event: Value = serde_json::from_str(&input.replace("<aws.scheduler.scheduled-time>", "2026-11-25T02:00:00Z"))
        .expect("the input is JSON");
    let summary = setup
        .invoke_inline(&plans, &event)
        .await
        .unwrap_or_else(|e| panic!("the scheduled run failed: {e}"));
    let at: Timestamp = "2026-11-25T02:00:00Z".parse().expect("a time");
    let expected = snapshot_name("db-nightly", id_of(&db), at);
    assert_eq!(strings(&summary["created"]), [expected], "{summary}");
    assert_eq!(
        setup.snapshots_of(id_of(&db)).await.len(),
        1,
        "one snapshot, for that time"
    );
}
