//! `lifeboat failover`, `failback` and `drill` against the emulator's RDS,
//! Route 53, KMS and DynamoDB in two regions (primary eu-central-1, DR
//! us-west-2), with validation SQL against the real PostgreSQL and MariaDB.
//!
//! moto is shared by every test of the process, so each test names its
//! resources with a token of its own and compares only what carries it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use lifeboat::catalog::Catalog;
use lifeboat::jobs::{JobRecord, StepStatus};
use lifeboat_e2e::{aws_env, dynamodb_client, sdk_config_in, unique, workspace_bin, REGION};
use serde_json::Value;

use crate::support::{describe, Engine, TestDb};

pub(crate) const PRIMARY: &str = "eu-central-1";
pub(crate) const DR: &str = "us-west-2";

/// A database of its own with an empty `orders` table, dropped at the end.
pub(crate) fn orders_db(engine: Engine) -> TestDb {
    let db = TestDb::create(engine, "dr");
    db.sql("CREATE TABLE orders (id integer PRIMARY KEY, total integer NOT NULL)");
    db
}

/// A checks file asserting at least `rows` orders in `db`.
pub(crate) fn orders_checks(db: &TestDb, rows: i64) -> String {
    format!(
        "url = \"{}\"\n[[check]]\nname = \"orders present\"\nsql = \"SELECT count(*) FROM orders\"\nat_least = {rows}\n",
        db.url()
    )
}

/// Two regions, a hosted zone, a catalog table, a report directory: one test's world.
pub(crate) struct Dr {
    pub(crate) token: String,
    pub(crate) table: String,
    pub(crate) primary: aws_sdk_rds::Client,
    pub(crate) dr: aws_sdk_rds::Client,
    pub(crate) route53: aws_sdk_route53::Client,
    pub(crate) dr_key: String,
    pub(crate) zone: String,
    pub(crate) dir: tempfile::TempDir,
}

impl Dr {
    pub(crate) async fn new() -> Self {
        let token = unique("t").trim_start_matches("t-").to_owned();
        let table = unique("dr-catalog");
        Catalog::new(dynamodb_client().await, &table, REGION)
            .create_table()
            .await
            .expect("create catalog table");
        let dr_config = sdk_config_in(DR).await;
        let dr_key = aws_sdk_kms::Client::new(&dr_config)
            .create_key()
            .send()
            .await
            .expect("create DR KMS key")
            .key_metadata()
            .map(|m| m.arn().unwrap_or_default().to_owned())
            .expect("key ARN");
        Self {
            zone: format!("z{token}.internal"),
            token,
            table,
            primary: aws_sdk_rds::Client::new(&sdk_config_in(PRIMARY).await),
            dr: aws_sdk_rds::Client::new(&dr_config),
            route53: aws_sdk_route53::Client::new(&sdk_config_in(REGION).await),
            dr_key,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// `NAME-TOKEN`: a name only this test uses.
    pub(crate) fn name(&self, name: &str) -> String {
        format!("{name}-{}", self.token)
    }

    /// A PostgreSQL instance in the primary region; returns its endpoint.
    pub(crate) async fn primary_instance(&self, id: &str) -> String {
        let instance = self
            .primary
            .create_db_instance()
            .db_instance_identifier(id)
            .db_instance_class("db.t3.micro")
            .engine("postgres")
            .master_username("app")
            .master_user_password("password1")
            .allocated_storage(20)
            .backup_retention_period(7)
            .send()
            .await
            .expect("create primary instance");
        let endpoint = instance
            .db_instance()
            .and_then(|i| i.endpoint())
            .and_then(|e| e.address());
        endpoint.expect("primary endpoint").to_owned()
    }

    /// A cross-region read replica of `primary` in the DR region; returns its endpoint.
    pub(crate) async fn replica(&self, primary: &str, id: &str) -> String {
        let arn = format!("arn:aws:rds:{PRIMARY}:123456789012:db:{primary}");
        let replica = self
            .dr
            .create_db_instance_read_replica()
            .db_instance_identifier(id)
            .source_db_instance_identifier(arn)
            .db_instance_class("db.t3.micro")
            .send()
            .await
            .expect("create cross-region read replica");
        let endpoint = replica
            .db_instance()
            .and_then(|i| i.endpoint())
            .and_then(|e| e.address());
        endpoint.expect("replica endpoint").to_owned()
    }

    /// A snapshot of `primary`, copied to the DR region with the DR key; returns the copy's id.
    pub(crate) async fn copied_snapshot(&self, primary: &str) -> String {
        let source = format!("{primary}-snap");
        let snapshot = self
            .primary
            .create_db_snapshot()
            .db_snapshot_identifier(&source)
            .db_instance_identifier(primary)
            .send()
            .await
            .expect("create snapshot");
        let arn = snapshot
            .db_snapshot()
            .and_then(|s| s.db_snapshot_arn())
            .expect("snapshot ARN")
            .to_owned();
        let copy = format!("{primary}-copy");
        self.dr
            .copy_db_snapshot()
            .source_db_snapshot_identifier(arn)
            .target_db_snapshot_identifier(&copy)
            .kms_key_id(&self.dr_key)
            .send()
            .await
            .expect("copy snapshot to the DR region");
        copy
    }

    pub(crate) async fn create_zone(&self) -> String {
        let zone = self
            .route53
            .create_hosted_zone()
            .name(&self.zone)
            .caller_reference(unique("ref"))
            .send()
            .await
            .expect("create hosted zone");
        zone.hosted_zone().expect("zone").id().to_owned()
    }

    pub(crate) async fn zone_id(&self) -> String {
        let zones = self
            .route53
            .list_hosted_zones_by_name()
            .dns_name(&self.zone)
            .send()
            .await
            .expect("list hosted zones");
        zones
            .hosted_zones()
            .iter()
            .find(|z| z.name().trim_end_matches('.') == self.zone)
            .map(|z| z.id().to_owned())
            .expect("the test's hosted zone exists")
    }

    /// Sets `NAME.ZONE` (CNAME) to `value`.
    pub(crate) async fn set_record(&self, name: &str, value: &str) {
        use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
        let set = ResourceRecordSet::builder()
            .name(format!("{name}.{}", self.zone))
            .r#type(RrType::Cname)
            .ttl(60)
            .resource_records(ResourceRecord::builder().value(value).build().expect("record"))
            .build()
            .expect("record set");
        let change = Change::builder()
            .action(ChangeAction::Upsert)
            .resource_record_set(set)
            .build()
            .expect("change");
        self.route53
            .change_resource_record_sets()
            .hosted_zone_id(self.zone_id().await)
            .change_batch(ChangeBatch::builder().changes(change).build().expect("batch"))
            .send()
            .await
            .expect("set record");
    }

    /// Every record of the zone: "NAME TYPE" → values.
    pub(crate) async fn records(&self) -> BTreeMap<String, Vec<String>> {
        let sets = self
            .route53
            .list_resource_record_sets()
            .hosted_zone_id(self.zone_id().await)
            .send()
            .await
            .expect("list records");
        sets.resource_record_sets()
            .iter()
            .map(|r| {
                (
                    format!("{} {}", r.name(), r.r#type().as_str()),
                    r.resource_records().iter().map(|v| v.value().to_owned()).collect(),
                )
            })
            .collect()
    }

    pub(crate) async fn record(&self, name: &str) -> Option<String> {
        let key = format!("{name}.{}. CNAME", self.zone);
        self.records().await.get(&key).and_then(|v| v.first().cloned())
    }

    /// This test's DB instances and clusters in both regions, with what matters of each.
    pub(crate) async fn resources(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (region, client) in [(PRIMARY, &self.primary), (DR, &self.dr)] {
            let instances = client.describe_db_instances().send().await.expect("describe instances");
            for i in instances.db_instances() {
                let id = i.db_instance_identifier().unwrap_or_default();
                if id.contains(&self.token) {
                    out.insert(
                        format!("{region} instance {id}"),
                        format!(
                            "{} replica_of={:?}",
                            i.db_instance_status().unwrap_or_default(),
                            i.read_replica_source_db_instance_identifier()
                        ),
                    );
                }
            }
            let clusters = client.describe_db_clusters().send().await.expect("describe clusters");
            for c in clusters.db_clusters() {
                let id = c.db_cluster_identifier().unwrap_or_default();
                if id.contains(&self.token) {
                    out.insert(
                        format!("{region} cluster {id}"),
                        c.status().unwrap_or_default().to_owned(),
                    );
                }
            }
        }
        out
    }

    /// This test's instance ids in the DR region.
    pub(crate) async fn dr_instances(&self) -> Vec<String> {
        self.resources()
            .await
            .into_keys()
            .filter_map(|k| k.strip_prefix(&format!("{DR} instance ")).map(str::to_owned))
            .collect()
    }

    pub(crate) async fn endpoint(&self, client: &aws_sdk_rds::Client, id: &str) -> String {
        let answer = client
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
            .expect("describe instance");
        let endpoint = answer
            .db_instances()
            .first()
            .and_then(|i| i.endpoint())
            .and_then(|e| e.address());
        endpoint.expect("endpoint").to_owned()
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }

    pub(crate) fn reports(&self) -> PathBuf {
        self.dir.path().join("reports")
    }

    /// Runs `lifeboat ARGS` with the emulator and this test's catalog.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        let reports = self.reports();
        Command::new(workspace_bin("lifeboat"))
            .args(args)
            .args(["--poll-interval", "10ms", "--report-dir"])
            .arg(&reports)
            .envs(aws_env())
            .env("LIFEBOAT_TABLE", &self.table)
            .env_remove("LIFEBOAT_OUTPUT")
            .stdin(Stdio::null())
            .output()
            .expect("run lifeboat")
    }

    /// Runs `lifeboat ARGS --output json`, asserting success; returns the report.
    pub(crate) fn ok_json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        let output = self.run(&args);
        assert!(
            output.status.success(),
            "lifeboat {args:?} failed:\n{}",
            describe(&output)
        );
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("lifeboat {args:?} printed no JSON ({e}):\n{}", describe(&output)))
    }

    /// Runs `lifeboat ARGS` with 3 s between polls and sends it SIGINT
    /// while a job's step `step` is running. The emulator keeps a promoted
    /// replica's link, so waiting for a promotion takes three polls (6 s):
    /// time to interrupt it.
    pub(crate) async fn interrupt_during(&self, args: &[&str], step: &str) -> Output {
        let child = Command::new(workspace_bin("lifeboat"))
            .args(args)
            .args(["--poll-interval", "3s", "--report-dir"])
            .arg(self.reports())
            .envs(aws_env())
            .env("LIFEBOAT_TABLE", &self.table)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lifeboat");
        let jobs = Catalog::new(dynamodb_client().await, &self.table, REGION).jobs();
        let mut running = false;
        for _ in 0..100 {
            let listed = jobs.list(None).await.expect("list jobs");
            if listed
                .iter()
                .any(|j| j.step(step).is_some_and(|s| s.status == StepStatus::Running))
            {
                running = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(running, "step {step} never ran");
        let signal = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("send SIGINT");
        assert!(signal.success());
        child.wait_with_output().expect("wait for lifeboat")
    }

    pub(crate) async fn job(&self, id: &str) -> JobRecord {
        Catalog::new(dynamodb_client().await, &self.table, REGION)
            .jobs()
            .get(id)
            .await
            .expect("job record")
    }
}

pub(crate) fn step<'a>(job: &'a JobRecord, name: &str) -> &'a lifeboat::jobs::StepRecord {
    job.step(name)
        .unwrap_or_else(|| panic!("job {} has no step {name}: {:?}", job.id, job.steps))
}

pub(crate) fn database<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["databases"]
        .as_array()
        .and_then(|dbs| dbs.iter().find(|d| d["name"] == name))
        .unwrap_or_else(|| panic!("no database {name} in the report: {report:#}"))
}

/// Asserts a database's measured RTO is present and plausible.
pub(crate) fn assert_sane_rto(db: &Value) {
    let rto = db["rtoSeconds"].as_f64().unwrap_or_else(|| panic!("no RTO: {db:#}"));
    assert!((0.0..300.0).contains(&rto), "RTO {rto} s: {db:#}");
}

#[tokio::test]
async fn failover_promotes_a_replica_restores_a_snapshot_switches_dns_and_reports() {
    let dr = Dr::new().await;
    let (orders, billing) = (dr.name("orders"), dr.name("billing"));
    let orders_primary = dr.primary_instance(&dr.name("orders-db")).await;
    let orders_replica = dr.replica(&dr.name("orders-db"), &dr.name("orders-dr")).await;
    let billing_primary = dr.primary_instance(&dr.name("billing-db")).await;
    let copy = dr.copied_snapshot(&dr.name("billing-db")).await;
    dr.create_zone().await;
    dr.set_record("orders", &orders_primary).await;
    dr.set_record("billing", &billing_primary).await;
    let pg = orders_db(Engine::Postgres);
    pg.sql("INSERT INTO orders VALUES (1, 10), (2, 20)");
    let maria = orders_db(Engine::Mariadb);
    maria.sql("INSERT INTO orders VALUES (1, 10)");
    let checks = dr.write("orders-checks.toml", &orders_checks(&pg, 2));
    let plan = dr.write(
        "dr.toml",
        &format!(
            r#"
name = "{plan}"
primary_region = "{PRIMARY}"
dr_region = "{DR}"

[[database]]
name = "{orders}"
primary_instance = "{orders_db}"
strategy = "replica"
replica_instance = "{orders_dr}"
checks = "{checks}"
[[database.record]]
zone = "{zone}"
name = "orders.{zone}"
[[database.record]]
zone = "{zone}"
name = "orders-proxy.{zone}"
ttl = 30
target = "orders-proxy.us-west-2.example.internal"

[[database]]
name = "{billing}"
primary_instance = "{billing_db}"
strategy = "snapshot"
restore_instance = "{billing_dr}"
[database.validation]
url = "{maria_url}"
[[database.validation.check]]
name = "orders present"
sql = "SELECT count(*) FROM orders"
equals = 1
[[database.record]]
zone = "{zone}"
name = "billing.{zone}"
"#,
            plan = dr.name("prod"),
            orders_db = dr.name("orders-db"),
            orders_dr = dr.name("orders-dr"),
            checks = checks.display(),
            zone = dr.zone,
            billing_db = dr.name("billing-db"),
            billing_dr = dr.name("billing-dr"),
            maria_url = maria.url(),
        ),
    );
    let plan = plan.to_str().expect("utf-8 path");

    let report = dr.ok_json(&["failover", "--plan", plan, "--yes"]);

    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    assert_eq!(dr.record("orders").await.as_deref(), Some(orders_replica.as_str()));
    assert_eq!(
        dr.record("orders-proxy").await.as_deref(),
        Some("orders-proxy.us-west-2.example.internal"),
        "an explicit target wins over the endpoint"
    );
    let billing_endpoint = dr.endpoint(&dr.dr, &dr.name("billing-dr")).await;
    assert_eq!(dr.record("billing").await, Some(billing_endpoint));
    let orders_report = database(&report, &orders);
    assert_sane_rto(orders_report);
    assert_eq!(orders_report["rpo"]["kind"], "replica", "{orders_report:#}");
    assert_eq!(orders_report["validation"]["results"][0]["value"], 2);
    let billing_report = database(&report, &billing);
    assert_sane_rto(billing_report);
    assert_eq!(billing_report["rpo"]["kind"], "snapshot");
    assert_eq!(billing_report["rpo"]["snapshot"], copy.as_str());
    let rpo = billing_report["rpo"]["seconds"].as_i64().expect("RPO seconds");
    assert!((0..300).contains(&rpo), "RPO {rpo} s");
    assert_eq!(billing_report["validation"]["results"][0]["passed"], true);

    // Both files, named after the job.
    let job_id = report["jobId"].as_str().expect("job id");
    let written: Value = serde_json::from_str(
        &std::fs::read_to_string(dr.reports().join(format!("{job_id}.json"))).expect("JSON report"),
    )
    .expect("JSON");
    assert_eq!(written["jobId"], job_id);
    let markdown = std::fs::read_to_string(dr.reports().join(format!("{job_id}.md"))).expect("Markdown report");
    assert!(markdown.contains("RTO") && markdown.contains(&orders), "{markdown}");
    let job = dr.job(job_id).await;
    for name in [
        "preflight",
        "orders/promote",
        "orders/wait",
        "orders/validate",
        "orders/dns",
    ] {
        let name = name.replace("orders", &orders);
        assert_eq!(step(&job, &name).status, StepStatus::Done, "{name}");
    }
    assert_eq!(step(&job, &format!("{billing}/restore")).attempts, 1);

    // Again: already done, nothing changes, nothing new is created.
    let before = dr.resources().await;
    let again = dr.ok_json(&["failover", "--plan", plan, "--yes"]);
    assert_eq!(again["outcome"], "nothing_to_do", "{again:#}");
    assert_eq!(dr.resources().await, before);
    let text = dr.run(&["failover", "--plan", plan]);
    assert!(text.status.success(), "{}", describe(&text));
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("nothing to do"),
        "{}",
        describe(&text)
    );
}

/// A snapshot-strategy plan whose check needs a row the database does not
/// have yet: (plan file, the database, the record's value before failover).
async fn failing_validation_plan(dr: &Dr) -> (PathBuf, TestDb, String) {
    let billing = dr.name("billing");
    let primary = dr.primary_instance(&dr.name("billing-db")).await;
    dr.copied_snapshot(&dr.name("billing-db")).await;
    dr.create_zone().await;
    dr.set_record("billing", &primary).await;
    let pg = orders_db(Engine::Postgres);
    let checks = dr.write("checks.toml", &orders_checks(&pg, 1));
    let plan = dr.write(
        "dr.toml",
        &format!(
            "name = \"{}\"\nprimary_region = \"{PRIMARY}\"\ndr_region = \"{DR}\"\n[[database]]\nname = \"{billing}\"\n\
             primary_instance = \"{}\"\nstrategy = \"snapshot\"\nchecks = \"{}\"\n[[database.record]]\nzone = \"{}\"\nname = \"billing.{}\"\n",
            dr.name("prod"),
            dr.name("billing-db"),
            checks.display(),
            dr.zone,
            dr.zone
        ),
    );
    (plan, pg, primary)
}

#[tokio::test]
async fn a_failover_stopped_by_failing_validation_resumes_without_restoring_twice() {
    let dr = Dr::new().await;
    let billing = dr.name("billing");
    let (plan, pg, primary) = failing_validation_plan(&dr).await;
    let plan = plan.to_str().expect("utf-8 path");

    let failed = dr.run(&["failover", "--plan", plan, "--yes"]);
    assert_eq!(failed.status.code(), Some(1), "{}", describe(&failed));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("SELECT count(*) FROM orders returned 0, expected at least 1"),
        "the message names the query and the values: {stderr}"
    );
    assert!(stderr.contains("run the same command again"), "{stderr}");
    assert_eq!(
        dr.record("billing").await.as_deref(),
        Some(primary.as_str()),
        "DNS untouched"
    );
    let restored = dr.dr_instances().await;
    assert_eq!(
        restored,
        vec![dr.name("billing-db")],
        "restored once, under the primary's name"
    );

    pg.sql("INSERT INTO orders VALUES (1, 10)");
    let report = dr.ok_json(&["failover", "--plan", plan, "--yes"]);

    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    assert_eq!(report["runs"], 2);
    assert_eq!(dr.dr_instances().await, restored, "no second restored instance");
    let endpoint = dr.endpoint(&dr.dr, &dr.name("billing-db")).await;
    assert_eq!(dr.record("billing").await, Some(endpoint));
    let job = dr.job(report["jobId"].as_str().expect("job id")).await;
    assert_eq!(step(&job, "preflight").attempts, 1);
    assert_eq!(step(&job, &format!("{billing}/restore")).attempts, 1, "restored once");
    assert_eq!(step(&job, &format!("{billing}/wait")).attempts, 1);
    let validate = step(&job, &format!("{billing}/validate"));
    assert_eq!((validate.attempts, validate.status), (2, StepStatus::Done));
    assert_sane_rto(database(&report, &billing));
}

#[tokio::test]
async fn a_restarted_failover_abandons_the_unfinished_job_and_restores_nothing_new() {
    let dr = Dr::new().await;
    let billing = dr.name("billing");
    let (plan, pg, _) = failing_validation_plan(&dr).await;
    let plan = plan.to_str().expect("utf-8 path");
    let failed = dr.run(&["failover", "--plan", plan, "--yes"]);
    assert_eq!(failed.status.code(), Some(1), "{}", describe(&failed));
    let written: Vec<PathBuf> = std::fs::read_dir(dr.reports())
        .expect("the failed run wrote its report")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    let first: Value = serde_json::from_slice(&std::fs::read(&written[0]).expect("report")).expect("JSON");
    assert_eq!(first["outcome"], "failed");
    let first_id = first["jobId"].as_str().expect("job id");
    let restored = dr.dr_instances().await;

    pg.sql("INSERT INTO orders VALUES (1, 10)");
    let report = dr.ok_json(&["failover", "--plan", plan, "--yes", "--restart"]);

    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    assert_ne!(report["jobId"], first_id, "a new job");
    assert_eq!(report["runs"], 1);
    let abandoned = dr.job(first_id).await;
    assert_eq!(abandoned.status, lifeboat::jobs::JobStatus::Failed);
    assert!(
        abandoned.error.as_deref().is_some_and(|e| e.contains("--restart")),
        "{abandoned:?}"
    );
    let job = dr.job(report["jobId"].as_str().expect("job id")).await;
    // A fresh preflight found the instance the first job restored: wait, validate, switch only.
    assert_eq!(
        step(&job, "preflight").output["databases"][0]["action"]["action"],
        "continue"
    );
    assert!(job.step(&format!("{billing}/restore")).is_none(), "{:?}", job.steps);
    assert_eq!(step(&job, &format!("{billing}/dns")).status, StepStatus::Done);
    assert_eq!(
        dr.dr_instances().await,
        restored,
        "the instance the first job restored was used, no second one"
    );
}

#[tokio::test]
async fn a_failover_waiting_for_its_hosted_zone_resumes_without_promoting_twice() {
    let dr = Dr::new().await;
    let orders = dr.name("orders");
    dr.primary_instance(&dr.name("orders-db")).await;
    let replica = dr.replica(&dr.name("orders-db"), &dr.name("orders-dr")).await;
    let maria = orders_db(Engine::Mariadb);
    maria.sql("INSERT INTO orders VALUES (1, 10), (2, 20), (3, 30)");
    let plan = dr.write(
        "dr.toml",
        &format!(
            "name = \"{}\"\nprimary_region = \"{PRIMARY}\"\ndr_region = \"{DR}\"\n[[database]]\nname = \"{orders}\"\n\
             primary_instance = \"{}\"\nstrategy = \"replica\"\nreplica_instance = \"{}\"\n[database.validation]\n{}\
             [[database.record]]\nzone = \"{}\"\nname = \"orders.{}\"\n",
            dr.name("prod"),
            dr.name("orders-db"),
            dr.name("orders-dr"),
            orders_checks(&maria, 3).replace("[[check]]", "[[database.validation.check]]"),
            dr.zone,
            dr.zone
        ),
    );
    let plan = plan.to_str().expect("utf-8 path");

    let failed = dr.run(&["failover", "--plan", plan, "--yes"]);
    assert_eq!(failed.status.code(), Some(1), "{}", describe(&failed));
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains(&format!("no Route 53 hosted zone is named {}", dr.zone)),
        "{}",
        describe(&failed)
    );
    dr.create_zone().await;
    let report = dr.ok_json(&["failover", "--plan", plan, "--yes"]);

    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    assert_eq!(dr.record("orders").await, Some(replica));
    let job = dr.job(report["jobId"].as_str().expect("job id")).await;
    assert_eq!(job.runs, 2);
    assert_eq!(step(&job, &format!("{orders}/promote")).attempts, 1, "promoted once");
    assert_eq!(step(&job, &format!("{orders}/validate")).attempts, 1);
    assert_eq!(step(&job, &format!("{orders}/dns")).attempts, 2);
    assert_eq!(database(&report, &orders)["validation"]["results"][0]["value"], 3);
}

#[tokio::test]
async fn a_dry_run_or_an_unconfirmed_failover_changes_nothing() {
    let dr = Dr::new().await;
    let primary = dr.primary_instance(&dr.name("orders-db")).await;
    let replica = dr.replica(&dr.name("orders-db"), &dr.name("orders-dr")).await;
    dr.primary_instance(&dr.name("billing-db")).await;
    let copy = dr.copied_snapshot(&dr.name("billing-db")).await;
    dr.create_zone().await;
    dr.set_record("orders", &primary).await;
    let plan = dr.write(
        "dr.toml",
        &format!(
            "name = \"{}\"\nprimary_region = \"{PRIMARY}\"\ndr_region = \"{DR}\"\n\
             [[database]]\nname = \"orders\"\nprimary_instance = \"{}\"\nstrategy = \"replica\"\nreplica_instance = \"{}\"\n\
             [[database.record]]\nzone = \"{}\"\nname = \"orders.{}\"\n\
             [[database]]\nname = \"billing\"\nprimary_instance = \"{}\"\nstrategy = \"snapshot\"\nrestore_instance = \"{}\"\n",
            dr.name("prod"),
            dr.name("orders-db"),
            dr.name("orders-dr"),
            dr.zone,
            dr.zone,
            dr.name("billing-db"),
            dr.name("billing-dr"),
        ),
    );
    let plan = plan.to_str().expect("utf-8 path");
    let (resources, records) = (dr.resources().await, dr.records().await);

    let dry = dr.ok_json(&["failover", "--plan", plan, "--dry-run"]);
    assert_eq!(dry["dryRun"], true);
    let databases = dry["inspection"]["databases"].as_array().expect("databases");
    assert_eq!(databases[0]["action"]["action"], "promote");
    assert_eq!(databases[0]["rpo"]["kind"], "replica");
    assert_eq!(databases[1]["action"]["snapshot"]["id"], copy.as_str());
    assert!(databases[1]["rpo"]["seconds"].as_i64().is_some(), "{dry:#}");
    let text = dr.run(&["failover", "--plan", plan, "--dry-run"]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("dry run: nothing changed") && stdout.contains("RPO now"),
        "{}",
        describe(&text)
    );

    let refused = dr.run(&["failover", "--plan", plan]);
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("not confirmed") && stderr.contains("--yes"), "{stderr}");
    assert!(
        String::from_utf8_lossy(&refused.stdout).contains("promote read replica"),
        "says what would happen"
    );
    // On a terminal it asks for the plan's name; another answer does nothing.
    let typed = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "(sleep 1; echo orders) | script -qec '{} failover --plan {plan}' /dev/null",
            workspace_bin("lifeboat").display()
        ))
        .envs(aws_env())
        .env("LIFEBOAT_TABLE", &dr.table)
        .output()
        .expect("run lifeboat on a terminal");
    let shown = String::from_utf8_lossy(&typed.stdout);
    assert!(
        shown.contains(&format!("Type the plan's name ({}) to fail over now", dr.name("prod")))
            && shown.contains("not confirmed"),
        "{}",
        describe(&typed)
    );
    let dry_drill = dr.run(&["drill", "--plan", plan, "--dry-run"]);
    assert!(dry_drill.status.success(), "{}", describe(&dry_drill));

    assert_eq!(dr.resources().await, resources, "DB instances and clusters unchanged");
    assert_eq!(dr.records().await, records, "Route 53 records unchanged");
    assert!(!dr.reports().exists(), "no job ran, so no report");

    // A record someone pointed at the replica by hand does not make it a writer.
    dr.set_record("orders", &replica).await;
    let dry = dr.ok_json(&["failover", "--plan", plan, "--dry-run"]);
    assert_eq!(
        dry["inspection"]["databases"][0]["action"]["action"], "promote",
        "{dry:#}"
    );
}

#[tokio::test]
async fn a_drill_deletes_what_it_created_even_when_validation_fails_and_leaves_dns_alone() {
    let dr = Dr::new().await;
    let (orders, billing) = (dr.name("orders"), dr.name("billing"));
    let primary = dr.primary_instance(&dr.name("orders-db")).await;
    dr.replica(&dr.name("orders-db"), &dr.name("orders-dr")).await;
    dr.primary_instance(&dr.name("billing-db")).await;
    dr.copied_snapshot(&dr.name("billing-db")).await;
    dr.create_zone().await;
    dr.set_record("orders", &primary).await;
    let pg = orders_db(Engine::Postgres);
    let checks = dr.write("checks.toml", &orders_checks(&pg, 1));
    let plan = dr.write(
        "dr.toml",
        &format!(
            "name = \"{}\"\nprimary_region = \"{PRIMARY}\"\ndr_region = \"{DR}\"\n\
             [[database]]\nname = \"{orders}\"\nprimary_instance = \"{}\"\nstrategy = \"replica\"\nreplica_instance = \"{}\"\n\
             [[database.record]]\nzone = \"{}\"\nname = \"orders.{}\"\n\
             [[database]]\nname = \"{billing}\"\nprimary_instance = \"{}\"\nstrategy = \"snapshot\"\nchecks = \"{}\"\n",
            dr.name("prod"),
            dr.name("orders-db"),
            dr.name("orders-dr"),
            dr.zone,
            dr.zone,
            dr.name("billing-db"),
            checks.display(),
        ),
    );
    let plan = plan.to_str().expect("utf-8 path");
    let (resources, records) = (dr.resources().await, dr.records().await);
    // What a killed drill leaves: an instance tagged with its (ended) job.
    let leftover = format!("drill-{orders}-0badf00d");
    dr.dr
        .create_db_instance()
        .db_instance_identifier(&leftover)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .tags(
            aws_sdk_rds::types::Tag::builder()
                .key("lifeboat:drill")
                .value("job-20260101T000000Z-0badf00d")
                .build(),
        )
        .tags(
            aws_sdk_rds::types::Tag::builder()
                .key("lifeboat:plan")
                .value(dr.name("prod"))
                .build(),
        )
        .send()
        .await
        .expect("create a leftover drill instance");
    let dry = dr.ok_json(&["drill", "--plan", plan, "--dry-run"]);
    assert_eq!(
        dry["inspection"]["leftovers"][0]["instance"],
        leftover.as_str(),
        "{dry:#}"
    );
    assert_eq!(dry["inspection"]["leftovers"][0]["deletable"], true);

    let failed = dr.run(&["drill", "--plan", plan]);
    assert_eq!(failed.status.code(), Some(1), "{}", describe(&failed));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("returned 0, expected at least 1") && stderr.contains("deleted"),
        "{stderr}"
    );
    assert_eq!(
        dr.resources().await,
        resources,
        "the failed drill left nothing behind, and deleted what a killed one had left"
    );
    assert_eq!(dr.records().await, records, "DNS untouched");

    pg.sql("INSERT INTO orders VALUES (1, 10)");
    let report = dr.ok_json(&["drill", "--plan", plan]);
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    let job_id = report["jobId"].as_str().expect("job id");
    for name in [&orders, &billing] {
        let db = database(&report, name);
        assert_sane_rto(db);
        let instance = db["instance"].as_str().expect("drill instance");
        assert!(instance.starts_with(&format!("drill-{name}-")), "{instance}");
        assert!(
            db["records"].as_array().is_some_and(Vec::is_empty),
            "a drill switches no record"
        );
    }
    assert!(database(&report, &billing)["rpo"]["seconds"].as_i64().is_some());
    let job = dr.job(job_id).await;
    for name in [
        format!("{orders}/replicate"),
        format!("{orders}/promote"),
        format!("{orders}/teardown"),
        format!("{billing}/restore"),
        format!("{billing}/validate"),
        format!("{billing}/teardown"),
    ] {
        assert_eq!(step(&job, &name).status, StepStatus::Done, "{name}");
    }
    assert_eq!(dr.resources().await, resources, "the drill left nothing behind");
    assert_eq!(dr.records().await, records, "DNS untouched");
    assert_eq!(
        dr.resources()
            .await
            .get(&format!("{DR} instance {}", dr.name("orders-dr"))),
        resources.get(&format!("{DR} instance {}", dr.name("orders-dr"))),
        "the real replica was not promoted"
    );
}

#[tokio::test]
async fn an_interrupted_drill_still_tears_down() {
    let dr = Dr::new().await;
    let orders = dr.name("orders");
    dr.primary_instance(&dr.name("orders-db")).await;
    let plan = dr.write(
        "dr.toml",
        &format!(
            "name = \"{}\"\nprimary_region = \"{PRIMARY}\"\ndr_region = \"{DR}\"\n[[database]]\nname = \"{orders}\"\n\
             primary_instance = \"{}\"\nstrategy = \"replica\"\nreplica_instance = \"{}\"\n",
            dr.name("prod"),
            dr.name("orders-db"),
            dr.name("orders-dr"),
        ),
    );
    let resources = dr.resources().await;

    let output = dr
        .interrupt_during(
            &["drill", "--plan", plan.to_str().expect("utf-8 path")],
            &format!("{orders}/wait"),
        )
        .await;

    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("interrupted") && stderr.contains("deleted"), "{stderr}");
    assert_eq!(
        dr.resources().await,
        resources,
        "the interrupted drill left nothing behind"
    );
    let report: Value = serde_json::from_slice(
        &std::fs::read(
            std::fs::read_dir(dr.reports())
                .expect("report written")
                .map(|e| e.expect("entry").path())
                .find(|p| p.extension().is_some_and(|e| e == "json"))
                .expect("JSON report"),
        )
        .expect("read report"),
    )
    .expect("JSON");
    let job = dr.job(report["jobId"].as_str().expect("job id")).await;
    assert_eq!(job.status, lifeboat::jobs::JobStatus::Failed);
    assert_eq!(step(&job, &format!("{orders}/teardown")).status, StepStatus::Done);
}

#[tokio::test]
async fn a_failover_interrupted_while_waiting_resumes_without_promoting_twice() {
    let dr = Dr::new().await;
    let orders = dr.name("orders");
    let primary = dr.primary_instance(&dr.name("orders-db")).await;
    let replica = dr.replica(&dr.name("orders-db"), &dr.name("orders-dr")).await;
    dr.create_zone().await;
    dr.set_record("orders", &primary).await;
    let plan = dr.write(
        "dr.toml",
        &format!(
            "name = \"{}\"\nprimary_region = \"{PRIMARY}\"\ndr_region = \"{DR}\"\n[[database]]\nname = \"{orders}\"\n\
             primary_instance = \"{}\"\nstrategy = \"replica\"\nreplica_instance = \"{}\"\n\
             [[database.record]]\nzone = \"{}\"\nname = \"orders.{}\"\n",
            dr.name("prod"),
            dr.name("orders-db"),
            dr.name("orders-dr"),
            dr.zone,
            dr.zone
        ),
    );
    let plan = plan.to_str().expect("utf-8 path");

    let output = dr
        .interrupt_during(&["failover", "--plan", plan, "--yes"], &format!("{orders}/wait"))
        .await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("interrupted"),
        "{}",
        describe(&output)
    );
    assert_eq!(dr.record("orders").await, Some(primary), "DNS not switched yet");

    let report = dr.ok_json(&["failover", "--plan", plan, "--yes"]);
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    assert_eq!(dr.record("orders").await, Some(replica));
    let job = dr.job(report["jobId"].as_str().expect("job id")).await;
    assert_eq!(job.runs, 2);
    assert_eq!(step(&job, &format!("{orders}/promote")).attempts, 1, "promoted once");
    assert_eq!(
        step(&job, &format!("{orders}/wait")).attempts,
        2,
        "the interrupted wait ran again"
    );
}

#[tokio::test]
async fn failback_recreates_the_primary_switches_dns_back_and_records_its_steps() {
    let dr = Dr::new().await;
    let orders = dr.name("orders");
    let primary = dr.primary_instance(&dr.name("orders-db")).await;
    let replica = dr.replica(&dr.name("orders-db"), &dr.name("orders-dr")).await;
    dr.create_zone().await;
    dr.set_record("orders", &primary).await;
    let pg = orders_db(Engine::Postgres);
    pg.sql("INSERT INTO orders VALUES (1, 10)");
    let checks = dr.write("checks.toml", &orders_checks(&pg, 1));
    let plan = dr.write(
        "dr.toml",
        &format!(
            "name = \"{}\"\nprimary_region = \"{PRIMARY}\"\ndr_region = \"{DR}\"\n[[database]]\nname = \"{orders}\"\n\
             primary_instance = \"{}\"\nstrategy = \"replica\"\nreplica_instance = \"{}\"\nchecks = \"{}\"\n\
             [[database.record]]\nzone = \"{}\"\nname = \"orders.{}\"\n",
            dr.name("prod"),
            dr.name("orders-db"),
            dr.name("orders-dr"),
            checks.display(),
            dr.zone,
            dr.zone
        ),
    );
    let plan = plan.to_str().expect("utf-8 path");

    let early = dr.run(&["failback", "--plan", plan, "--yes"]);
    assert_eq!(early.status.code(), Some(1), "no failover yet:\n{}", describe(&early));
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("fail over first"),
        "{}",
        describe(&early)
    );

    dr.ok_json(&["failover", "--plan", plan, "--yes"]);
    assert_eq!(dr.record("orders").await, Some(replica));
    let report = dr.ok_json(&["failback", "--plan", plan, "--yes"]);

    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    assert_eq!(report["kind"], "failback");
    let failback_instance = format!("{}-failback", dr.name("orders-db"));
    let endpoint = dr.endpoint(&dr.primary, &failback_instance).await;
    assert!(endpoint.contains(PRIMARY), "{endpoint}");
    assert_eq!(
        dr.record("orders").await,
        Some(endpoint),
        "DNS back in the primary region"
    );
    let db = database(&report, &orders);
    assert_sane_rto(db);
    assert_eq!(db["region"], PRIMARY);
    let job = dr.job(report["jobId"].as_str().expect("job id")).await;
    assert_eq!(job.kind, lifeboat::jobs::JobKind::Failback);
    for name in [
        "preflight",
        "orders/replicate",
        "orders/wait-replica",
        "orders/promote",
        "orders/wait",
        "orders/validate",
        "orders/dns",
    ] {
        let name = name.replace("orders", &orders);
        assert_eq!(step(&job, &name).status, StepStatus::Done, "{name}");
    }
    let again = dr.ok_json(&["failback", "--plan", plan, "--yes"]);
    assert_eq!(again["outcome"], "nothing_to_do", "{again:#}");
}
