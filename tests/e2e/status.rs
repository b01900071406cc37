//! `lifeboat status` through the real binary against the emulator's RDS in
//! two regions (us-east-1 with the databases, us-west-2 the DR region).
//!
//! The snapshots are made here the way the snapshot function makes them
//! (its name and tags, `lifeboat::snapshot::{snapshot_name, snapshot_tags}`;
//! copies under the same name with the DR key), since what `status` checks is
//! what RDS holds; one test runs the real snapshot function instead, so its
//! catalog records are compared too. The emulator cannot backdate a
//! snapshot, so an old one is shown with the hidden `--at` option: the same
//! snapshots judged later.

use std::process::Output;

use jiff::{SignedDuration, Timestamp};
use lifeboat::plan::parse_plans;
use lifeboat::snapshot::{snapshot_name, snapshot_tags};
use lifeboat_e2e::{invoke_function, sdk_config_in, unique, workspace_bin, REGION};
use serde_json::{json, Value};

use crate::support::{describe, Store};

const DR: &str = "us-west-2";

struct Rig {
    store: Store,
    rds: aws_sdk_rds::Client,
    dr_rds: aws_sdk_rds::Client,
    dr_key: String,
    dir: tempfile::TempDir,
}

impl Rig {
    async fn new() -> Self {
        let dr = sdk_config_in(DR).await;
        let dr_key = aws_sdk_kms::Client::new(&dr)
            .create_key()
            .send()
            .await
            .expect("create the DR key")
            .key_metadata()
            .and_then(|m| m.arn().map(str::to_owned))
            .expect("key ARN");
        Self {
            store: Store::new().await,
            rds: aws_sdk_rds::Client::new(&sdk_config_in(REGION).await),
            dr_rds: aws_sdk_rds::Client::new(&dr),
            dr_key,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    async fn instance(&self, prefix: &str, tag: &str) -> String {
        let id = unique(prefix);
        self.rds
            .create_db_instance()
            .db_instance_identifier(&id)
            .db_instance_class("db.t3.micro")
            .engine("postgres")
            .master_username("app")
            .master_user_password("password1")
            .allocated_storage(20)
            .tags(aws_sdk_rds::types::Tag::builder().key("backup").value(tag).build())
            .send()
            .await
            .expect("create DB instance");
        id
    }

    /// A plan file: hourly, RPO 1 h, copies to the DR region; `selection` is its tags / resources line.
    fn plan_file(&self, name: &str, selection: &str) -> std::path::PathBuf {
        let text = format!(
            r#"[[plan]]
name = "{name}"
schedule = "cron(0 * * * ? *)"
{selection}
copy_regions = [{{ region = "{DR}", kms_key = "{key}" }}]
retention = {{ keep_last = 24 }}
rpo = "1h"
tier = "critical"
"#,
            key = self.dr_key
        );
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("write plan file");
        path
    }

    /// A snapshot of `instance` as the snapshot function makes it; with `copy`, its DR copy too.
    async fn snapshot(&self, plan_path: &std::path::Path, instance: &str, copy: bool) -> String {
        let now = Timestamp::now();
        let plan = parse_plans(&std::fs::read_to_string(plan_path).expect("plan"), now)
            .expect("valid plan")
            .remove(0);
        let scheduled = Timestamp::from_second(now.as_second() / 60 * 60).expect("minute");
        let name = snapshot_name(&plan.name, instance, scheduled);
        let arn = format!("arn:aws:rds:{REGION}:123456789012:db:{instance}");
        let tags: Vec<aws_sdk_rds::types::Tag> = snapshot_tags(&plan, &arn, scheduled)
            .into_iter()
            .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
            .collect();
        let made = self
            .rds
            .create_db_snapshot()
            .db_instance_identifier(instance)
            .db_snapshot_identifier(&name)
            .set_tags(Some(tags.clone()))
            .send()
            .await
            .expect("create snapshot");
        if copy {
            let source = made
                .db_snapshot()
                .and_then(|s| s.db_snapshot_arn())
                .expect("snapshot ARN");
            self.dr_rds
                .copy_db_snapshot()
                .source_db_snapshot_identifier(source)
                .target_db_snapshot_identifier(&name)
                .kms_key_id(&self.dr_key)
                .set_tags(Some(tags))
                .send()
                .await
                .expect("copy snapshot");
        }
        name
    }

    fn status(&self, plans: &std::path::Path, extra: &[&str]) -> Output {
        let mut args = vec!["status", "--plans", plans.to_str().expect("path")];
        args.extend(extra);
        self.store.run(&args)
    }
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("no JSON ({e}):\n{}", describe(output)))
}

#[tokio::test]
async fn a_fresh_snapshot_with_its_dr_copy_is_ok_a_missing_copy_is_breached() {
    let rig = Rig::new().await;
    let tag = unique("status");
    let copied = rig.instance("status-copied", &tag).await;
    let uncopied = rig.instance("status-uncopied", &tag).await;
    let plans = rig.plan_file("tagged", &format!(r#"tags = {{ backup = "{tag}" }}"#));
    let snapshot = rig.snapshot(&plans, &copied, true).await;
    rig.snapshot(&plans, &uncopied, false).await;

    let output = rig.status(&plans, &["--output", "json"]);
    assert_eq!(output.status.code(), Some(8), "{}", describe(&output));
    let report = json(&output);
    assert_eq!(report["breached"], 1, "{report:#}");
    let resources = report["resources"].as_array().expect("resources");
    assert_eq!(resources.len(), 2, "{report:#}");
    let of = |id: &str| {
        resources
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id} not in {report:#}"))
    };
    let ok = of(&copied);
    assert_eq!(ok["health"], "ok", "{ok:#}");
    assert_eq!(ok["selectedBy"], "tags");
    assert_eq!(ok["lastSnapshot"]["id"], snapshot.as_str());
    assert_eq!(ok["copies"][0]["region"], DR);
    assert_eq!(ok["copies"][0]["state"], "available");
    assert!(
        ok["ageSeconds"].as_i64().is_some_and(|a| (0..120).contains(&a)),
        "{ok:#}"
    );
    assert!(ok["nextRun"].as_str().is_some_and(|n| n.contains(":00:00")), "{ok:#}");
    let breached = of(&uncopied);
    assert_eq!(breached["health"], "breached");
    assert_eq!(breached["copies"][0]["state"], "missing");
    assert!(
        breached["problems"][0]
            .as_str()
            .unwrap_or("")
            .contains(&format!("has no copy in {DR}")),
        "{breached:#}"
    );

    // The table an on-call engineer reads.
    let output = rig.status(&plans, &[]);
    assert_eq!(output.status.code(), Some(8), "{}", describe(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "STATE",
        "LAST SNAPSHOT",
        "DR COPIES",
        "NEXT RUN",
        &format!("DB instance {copied} (us-east-1)"),
        "us-west-2 ok",
        "us-west-2 MISSING",
        &format!("BREACHED tagged {uncopied}: snapshot"),
        "1 of 2 protected database(s) BREACHED",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
}

#[tokio::test]
async fn a_snapshot_older_than_the_rpo_is_breached_and_a_fresh_one_is_ok() {
    let rig = Rig::new().await;
    let tag = unique("status-unused");
    let db = rig.instance("status-rpo", &tag).await;
    let plans = rig.plan_file("explicit", &format!(r#"resources = ["{db}"]"#));
    let snapshot = rig.snapshot(&plans, &db, true).await;

    let output = rig.status(&plans, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("all 1 protected database(s) within target."), "{text}");

    // The same snapshot, judged 2 hours later: beyond the 1 h RPO.
    let later = (Timestamp::now() + SignedDuration::from_hours(2)).to_string();
    let output = rig.status(&plans, &["--at", &later, "--output", "json"]);
    assert_eq!(output.status.code(), Some(8), "{}", describe(&output));
    let report = json(&output);
    let resource = &report["resources"][0];
    assert_eq!(resource["health"], "breached", "{report:#}");
    assert_eq!(resource["lastSnapshot"]["id"], snapshot.as_str());
    assert_eq!(resource["selectedBy"], "resources");
    let problem = resource["problems"][0].as_str().unwrap_or("");
    assert!(problem.contains("old, beyond the RPO of 1 h"), "{problem}");

    // A database the plan names that RDS does not have, and no snapshot at all.
    let gone = unique("status-gone");
    let plans = rig.plan_file("gone", &format!(r#"resources = ["{gone}"]"#));
    let output = rig.status(&plans, &[]);
    assert_eq!(output.status.code(), Some(8), "{}", describe(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(&format!("{gone} is not in region us-east-1")), "{text}");
    assert!(text.contains("has no available snapshot from plan gone"), "{text}");
}

#[tokio::test]
async fn the_snapshot_functions_snapshots_and_copies_make_a_database_ok() {
    let rig = Rig::new().await;
    let tag = unique("status-fn");
    let db = rig.instance("status-fn", &tag).await;
    let plans = rig.plan_file("by-function", &format!(r#"tags = {{ backup = "{tag}" }}"#));
    let scheduled = Timestamp::from_second(Timestamp::now().as_second() / 60 * 60).expect("minute");
    let env = [
        ("AWS_REGION", REGION.to_owned()),
        ("LIFEBOAT_TABLE", rig.store.table.clone()),
        (
            "LIFEBOAT_PLANS_TOML",
            std::fs::read_to_string(&plans).expect("plan file"),
        ),
    ];
    let event = json!({"plan": "by-function", "scheduledTime": scheduled.to_string()});
    let answer = invoke_function(&workspace_bin("snapshot"), &event, &env)
        .await
        .expect("run the snapshot function");
    assert!(answer.is_ok(), "the snapshot function failed: {answer:?}");

    let output = rig.status(&plans, &["--output", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let report = json(&output);
    let resource = &report["resources"][0];
    assert_eq!(resource["id"], db.as_str(), "{report:#}");
    assert_eq!(resource["health"], "ok", "{report:#}");
    let name = snapshot_name("by-function", &db, scheduled);
    assert_eq!(resource["lastSnapshot"]["id"], name.as_str());
    assert_eq!(resource["copies"][0]["state"], "available", "{report:#}");
    // The catalog's record of the run names the same snapshot: no disagreement noted.
    assert_eq!(resource["catalogLatest"], name.as_str(), "{report:#}");
    assert_eq!(resource["notes"], json!([]), "{report:#}");
}
