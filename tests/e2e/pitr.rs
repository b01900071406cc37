//! `lifeboat restore db` (point in time) and `lifeboat restore snapshot`
//! through the real binary against the emulator's RDS, each restore a
//! recovery job read back from the catalog; `--validate` against this
//! machine's PostgreSQL and MariaDB.
//!
//! The emulator accepts any restore time and gives instances no earliest
//! restorable time, so the window Lifeboat enforces is its own (created at …
//! latest restorable time): a time before the instance existed is outside it.
//! Restored databases are `available` at once there, so `--wait` returns on
//! its first look (the waiting loop itself is unit-tested in `pitr.rs`).

use std::process::Output;

use lifeboat::catalog::Catalog;
use lifeboat::jobs::{JobKind, JobRecord, JobStatus, StepStatus};
use lifeboat_e2e::{sdk_config, unique, REGION};
use serde_json::Value;

use crate::support::{describe, Engine, Store, TestDb};

/// A catalog (through `lifeboat init`) and the emulator's RDS.
struct Rig {
    store: Store,
    rds: aws_sdk_rds::Client,
    catalog: Catalog,
}

impl Rig {
    async fn new() -> Self {
        let config = sdk_config().await;
        let store = Store::new().await;
        let catalog = Catalog::new(aws_sdk_dynamodb::Client::new(&config), &store.table, REGION);
        Self {
            rds: aws_sdk_rds::Client::new(&config),
            store,
            catalog,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.store.run(args)
    }

    /// Runs a restore with `--output json`, asserting success; the job record it prints.
    fn restore_json(&self, args: &[&str]) -> Value {
        self.store.json(args)
    }

    async fn instance(&self, prefix: &str, retention_days: i32) -> String {
        let id = unique(prefix);
        self.rds
            .create_db_instance()
            .db_instance_identifier(&id)
            .db_instance_class("db.t3.micro")
            .engine("postgres")
            .master_username("app")
            .master_user_password("password1")
            .allocated_storage(20)
            .backup_retention_period(retention_days)
            .send()
            .await
            .expect("create DB instance");
        id
    }

    /// An Aurora cluster with one writer instance of class db.r6g.large.
    async fn cluster(&self, prefix: &str) -> String {
        let id = unique(prefix);
        self.rds
            .create_db_cluster()
            .db_cluster_identifier(&id)
            .engine("aurora-postgresql")
            .master_username("app")
            .master_user_password("password1")
            .backup_retention_period(3)
            .send()
            .await
            .expect("create cluster");
        self.rds
            .create_db_instance()
            .db_instance_identifier(format!("{id}-a"))
            .db_cluster_identifier(&id)
            .db_instance_class("db.r6g.large")
            .engine("aurora-postgresql")
            .send()
            .await
            .expect("create cluster instance");
        id
    }

    async fn instance_exists(&self, id: &str) -> Option<aws_sdk_rds::types::DbInstance> {
        match self.rds.describe_db_instances().db_instance_identifier(id).send().await {
            Ok(out) => out.db_instances().first().cloned(),
            Err(e) => {
                let code = aws_sdk_rds::error::ProvideErrorMetadata::code(&e.into_service_error()).map(str::to_owned);
                assert_eq!(code.as_deref(), Some("DBInstanceNotFound"), "describe {id}");
                None
            }
        }
    }

    async fn cluster_exists(&self, id: &str) -> Option<aws_sdk_rds::types::DbCluster> {
        match self.rds.describe_db_clusters().db_cluster_identifier(id).send().await {
            Ok(out) => out.db_clusters().first().cloned(),
            Err(_) => None,
        }
    }

    /// Instances other than `source` whose names begin with it, or tagged as restored from it
    /// (other tests create instances in the same emulator meanwhile).
    async fn restored_from(&self, source: &str) -> Vec<String> {
        self.rds
            .describe_db_instances()
            .send()
            .await
            .expect("list instances")
            .db_instances()
            .iter()
            .filter(|i| {
                let id = i.db_instance_identifier().unwrap_or_default();
                (id != source && id.starts_with(source)) || tag(i, "lifeboat:restored-from").as_deref() == Some(source)
            })
            .map(|i| i.db_instance_identifier().unwrap_or_default().to_owned())
            .collect()
    }

    /// The catalog's jobs of `kind` for `subject`, newest first.
    async fn jobs_of(&self, kind: JobKind, subject: &str) -> Vec<JobRecord> {
        self.catalog
            .jobs()
            .list(None)
            .await
            .expect("list jobs")
            .into_iter()
            .filter(|j| j.kind == kind && j.subject == subject)
            .collect()
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn step_names(job: &Value) -> Vec<String> {
    job["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["name"].as_str().expect("step name").to_owned())
        .collect()
}

fn tag(instance: &aws_sdk_rds::types::DbInstance, key: &str) -> Option<String> {
    instance
        .tag_list()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value().map(str::to_owned))
}

#[tokio::test]
async fn point_in_time_restore_refuses_times_outside_the_window_and_records_each_job() {
    let rig = Rig::new().await;
    let source = rig.instance("pitr-src", 7).await;
    let target = format!("{source}-restored");

    // Before the instance existed: refused, the window named, nothing created.
    let output = rig.run(&[
        "restore",
        "db",
        &source,
        "--to-time",
        "2020-01-01T00:00:00Z",
        "--as",
        &target,
    ]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    for needle in [
        "failed at step check-window",
        &format!("2020-01-01T00:00:00Z is outside the restorable window of DB instance {source}"),
        "it can be restored to any time from 20",
        "--to-time latest",
    ] {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
    // In the future: refused too.
    let future = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)).to_string();
    let output = rig.run(&["restore", "db", &source, "--to-time", &future, "--as", &target]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        stderr(&output).contains("is outside the restorable window"),
        "{}",
        describe(&output)
    );
    assert!(
        rig.instance_exists(&target).await.is_none(),
        "a refused restore created {target}"
    );
    assert_eq!(
        rig.restored_from(&source).await,
        Vec::<String>::new(),
        "a refused restore created an instance"
    );

    // Inside the window: restored, the job printed and recorded with its steps.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let inside = jiff::Timestamp::now().to_string();
    let job = rig.restore_json(&[
        "restore",
        "db",
        &source,
        "--to-time",
        &inside,
        "--as",
        &target,
        "--wait",
    ]);
    assert_eq!(job["status"], "succeeded", "{job:#}");
    assert_eq!(job["kind"], "restore_db");
    assert_eq!(step_names(&job), ["check-window", "restore", "wait"]);
    let job_id = job["id"].as_str().expect("job id");
    let restored = rig
        .instance_exists(&target)
        .await
        .expect("the restored instance exists");
    assert_eq!(restored.db_instance_status(), Some("available"));
    assert_eq!(tag(&restored, "lifeboat:recovery-job").as_deref(), Some(job_id));
    assert_eq!(
        tag(&restored, "lifeboat:restored-from").as_deref(),
        Some(source.as_str())
    );
    assert_eq!(job["report"]["restored"]["endpoint"]["port"], 5432);

    let jobs = rig.jobs_of(JobKind::RestoreDb, &source).await;
    assert_eq!(jobs.len(), 3, "two refusals and one restore: {jobs:#?}");
    let done = jobs.iter().find(|j| j.id == job_id).expect("the job in the catalog");
    assert_eq!(done.status, JobStatus::Succeeded);
    assert!(done.finished_at.is_some());
    for step in &done.steps {
        assert_eq!(step.status, StepStatus::Done, "{step:?}");
        assert!(step.duration_ms.is_some() && step.finished_at.is_some(), "{step:?}");
    }
    assert_eq!(
        done.report.as_ref().map(|r| r["restoreTime"].clone()),
        Some(Value::from(inside.clone()))
    );
    let refused: Vec<&JobRecord> = jobs.iter().filter(|j| j.status == JobStatus::Failed).collect();
    assert_eq!(refused.len(), 2);
    for job in refused {
        assert_eq!(job.steps.len(), 1);
        assert_eq!(job.steps[0].name, "check-window");
        assert_eq!(job.steps[0].status, StepStatus::Failed);
        assert!(job
            .error
            .as_deref()
            .unwrap_or("")
            .contains("outside the restorable window"));
    }

    // The same name again: refused, the existing instance named.
    let output = rig.run(&["restore", "db", &source, "--to-time", "latest", "--as", &target]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        stderr(&output).contains(&format!("DB instance {target} already exists in region {REGION}")),
        "{}",
        describe(&output)
    );

    // `latest` without a name: the predictable one; `jobs show` reads the job back.
    let output = rig.run(&["restore", "db", &source, "--to-time", "latest"]);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{}", describe(&output));
    let name = text
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{source}-pitr-")))
        .expect("the default name in the output");
    assert_eq!(name.len(), source.len() + "-pitr-".len() + 12, "{name}");
    assert!(rig.instance_exists(name).await.is_some(), "{name} was not created");
    let job_id = text
        .split_whitespace()
        .find(|w| w.starts_with("job-"))
        .expect("the job id in the output");
    let shown = rig.store.ok(&["jobs", "show", job_id]);
    assert!(
        shown.contains("restore_db of") && shown.contains("check-window"),
        "{shown}"
    );
    let listed = rig.store.ok(&["jobs", "list"]);
    assert!(listed.contains(job_id), "{listed}");
}

#[tokio::test]
async fn no_automated_backups_and_missing_sources_are_clear_errors() {
    let rig = Rig::new().await;
    let source = rig.instance("pitr-nobackups", 0).await;
    let output = rig.run(&["restore", "db", &source, "--to-time", "latest"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "DB instance {source} keeps no automated backups (backup retention period 0)"
        )),
        "{err}"
    );
    assert!(err.contains("lifeboat restore snapshot"), "{err}");

    let output = rig.run(&[
        "restore",
        "db",
        &format!("arn:aws:rds:eu-west-1:123456789012:db:{source}"),
        "--to-time",
        "latest",
        "--region",
        REGION,
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        stderr(&output).contains("names region eu-west-1, but the restore was asked for region us-east-1"),
        "{}",
        describe(&output)
    );

    let missing = unique("pitr-missing");
    let output = rig.run(&["restore", "db", &missing, "--to-time", "latest"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        stderr(&output).contains(&format!(
            "no DB instance or Aurora cluster {missing} in region {REGION}"
        )),
        "{}",
        describe(&output)
    );
    let output = rig.run(&["restore", "snapshot", &missing]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "no DB snapshot or DB cluster snapshot {missing} in region {REGION}"
        )),
        "{err}"
    );
    assert!(
        err.contains("aws rds describe-db-snapshots --region us-east-1"),
        "{err}"
    );
    let jobs = rig.jobs_of(JobKind::RestoreSnapshot, &missing).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].steps[0].name, "check-snapshot");
    assert_eq!(jobs[0].steps[0].status, StepStatus::Failed);
}

#[tokio::test]
async fn cluster_point_in_time_restore_creates_the_cluster_and_its_instance() {
    let rig = Rig::new().await;
    let source = rig.cluster("pitr-cluster").await;
    let target = format!("{source}-r");
    // Named by its ARN: the ARN's region is where the restore happens.
    let arn = format!("arn:aws:rds:{REGION}:123456789012:cluster:{source}");
    let job = rig.restore_json(&["restore", "db", &arn, "--to-time", "latest", "--as", &target, "--wait"]);
    assert_eq!(job["status"], "succeeded", "{job:#}");
    assert_eq!(step_names(&job), ["check-window", "restore", "create-instance", "wait"]);
    let cluster = rig.cluster_exists(&target).await.expect("the restored cluster exists");
    assert_eq!(cluster.engine(), Some("aurora-postgresql"));
    let instance = rig
        .instance_exists(&format!("{target}-1"))
        .await
        .expect("the restored cluster's instance exists");
    assert_eq!(instance.db_cluster_identifier(), Some(target.as_str()));
    assert_eq!(instance.db_instance_class(), Some("db.r6g.large"));
    assert_eq!(instance.engine(), Some("aurora-postgresql"));

    // A member instance is restored through its cluster.
    let output = rig.run(&["restore", "db", &format!("{source}-a"), "--to-time", "latest"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        stderr(&output).contains(&format!("is a member of Aurora cluster {source}")),
        "{}",
        describe(&output)
    );
}

#[tokio::test]
async fn snapshots_of_instances_and_clusters_restore_into_new_databases() {
    let rig = Rig::new().await;
    let instance = rig.instance("snaprestore-db", 1).await;
    let snapshot = unique("snap-db");
    rig.rds
        .create_db_snapshot()
        .db_instance_identifier(&instance)
        .db_snapshot_identifier(&snapshot)
        .send()
        .await
        .expect("create DB snapshot");
    let target = unique("from-snap");
    let job = rig.restore_json(&["restore", "snapshot", &snapshot, "--as", &target, "--wait"]);
    assert_eq!(job["kind"], "restore_snapshot");
    assert_eq!(step_names(&job), ["check-snapshot", "restore", "wait"]);
    let restored = rig
        .instance_exists(&target)
        .await
        .expect("restored from the DB snapshot");
    assert_eq!(restored.engine(), Some("postgres"));
    assert_eq!(
        tag(&restored, "lifeboat:restored-from").as_deref(),
        Some(snapshot.as_str())
    );

    let cluster = rig.cluster("snaprestore-cl").await;
    let cluster_snapshot = unique("snap-cl");
    rig.rds
        .create_db_cluster_snapshot()
        .db_cluster_identifier(&cluster)
        .db_cluster_snapshot_identifier(&cluster_snapshot)
        .send()
        .await
        .expect("create cluster snapshot");
    let arn = format!("arn:aws:rds:{REGION}:123456789012:cluster-snapshot:{cluster_snapshot}");
    let target = unique("from-clsnap");
    let job = rig.restore_json(&["restore", "snapshot", &arn, "--as", &target, "--wait"]);
    assert_eq!(job["subject"], cluster_snapshot.as_str());
    assert_eq!(
        step_names(&job),
        ["check-snapshot", "restore", "create-instance", "wait"]
    );
    assert!(rig.cluster_exists(&target).await.is_some(), "restored cluster {target}");
    let member = rig
        .instance_exists(&format!("{target}-1"))
        .await
        .expect("the restored cluster's instance");
    assert_eq!(member.db_instance_class(), Some("db.r6g.large"));

    // An ARN of another region than --region is refused before anything is looked up.
    let output = rig.run(&["restore", "snapshot", &arn, "--region", "eu-west-1"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        stderr(&output).contains("names region us-east-1"),
        "{}",
        describe(&output)
    );
}

// ---------------------------------------------------------------------------
// --validate against the real databases
// ---------------------------------------------------------------------------

/// A database of its own with a table of 3 rows; dropped at the end.
fn accounts_db(engine: Engine) -> TestDb {
    let db = TestDb::create(engine, "pitrcheck");
    db.sql(
        "CREATE TABLE accounts (id INT PRIMARY KEY, balance INT NOT NULL); \
         INSERT INTO accounts VALUES (1, 10), (2, 20), (3, 30);",
    );
    db
}

fn checks_file(dir: &std::path::Path, name: &str, url: &str, expected_rows: i64) -> std::path::PathBuf {
    let path = dir.join(name);
    let text = format!(
        r#"url = "{url}"
[[check]]
name = "accounts present"
sql = "SELECT count(*) FROM accounts"
equals = {expected_rows}
[[check]]
name = "no negative balance"
sql = "SELECT count(*) FROM accounts WHERE balance < 0"
equals = 0
"#
    );
    std::fs::write(&path, text).expect("write checks file");
    path
}

async fn validate_against(engine: Engine) {
    let rig = Rig::new().await;
    let db = accounts_db(engine);
    let dir = tempfile::tempdir().expect("temp dir");
    let source = rig.instance("pitr-validate", 7).await;

    let passing = checks_file(dir.path(), "pass.toml", &db.url(), 3);
    let target = format!("{source}-ok");
    let job = rig.restore_json(&[
        "restore",
        "db",
        &source,
        "--to-time",
        "latest",
        "--as",
        &target,
        "--validate",
        passing.to_str().expect("path"),
    ]);
    assert_eq!(job["status"], "succeeded", "{job:#}");
    assert_eq!(step_names(&job), ["check-window", "restore", "wait", "validate"]);
    let results = &job["report"]["validation"]["results"];
    assert_eq!(results[0]["value"], 3, "{job:#}");
    assert_eq!(results[0]["passed"], true);
    assert_eq!(results[1]["value"], 0);

    let failing = checks_file(dir.path(), "fail.toml", &db.url(), 5);
    let target = format!("{source}-bad");
    let output = rig.run(&[
        "restore",
        "db",
        &source,
        "--to-time",
        "latest",
        "--as",
        &target,
        "--validate",
        failing.to_str().expect("path"),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let err = stderr(&output);
    for needle in [
        "failed at step validate",
        "check \"accounts present\" failed",
        "SELECT count(*) FROM accounts returned 3, expected exactly 5",
        "same command resumes it",
    ] {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
    assert!(
        !err.contains("no negative balance"),
        "a passing check reported as failed:\n{err}"
    );
    let jobs = rig.jobs_of(JobKind::RestoreDb, &source).await;
    let failed = jobs.first().expect("the failed job");
    assert_eq!(failed.status, JobStatus::Failed);
    let last = failed.steps.last().expect("steps");
    assert_eq!((last.name.as_str(), last.status), ("validate", StepStatus::Failed));
    assert!(last
        .error
        .as_deref()
        .unwrap_or("")
        .contains("returned 3, expected exactly 5"));
    // The restore itself happened and stays for inspection.
    assert!(rig.instance_exists(&target).await.is_some());

    // Rerun once the data is right: the job resumes at validate; nothing is restored again.
    assert!(db.try_sql("INSERT INTO accounts VALUES (4, 40), (5, 50);"));
    let job = rig.restore_json(&[
        "restore",
        "db",
        &source,
        "--to-time",
        "latest",
        "--as",
        &target,
        "--validate",
        failing.to_str().expect("path"),
    ]);
    assert_eq!(job["id"], failed.id.as_str(), "the rerun resumed the failed job");
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["runs"], 2);
    let restore_step = job["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == "restore");
    assert_eq!(restore_step.map(|s| s["attempts"].clone()), Some(Value::from(1)));
}

#[tokio::test]
async fn validate_runs_the_checks_against_postgres_and_fails_the_job_at_validate() {
    validate_against(Engine::Postgres).await;
}

#[tokio::test]
async fn validate_runs_the_checks_against_mariadb_and_fails_the_job_at_validate() {
    validate_against(Engine::Mariadb).await;
}

/// Rewrites a finished job in the catalog as a run that died right after RDS
/// accepted its restore call: the `restore` step still `running`, nothing
/// after it, the job open again (keys as ARCHITECTURE.md, "The catalog table").
async fn interrupt_after_restore_call(rig: &Rig, job: &JobRecord) {
    use aws_sdk_dynamodb::types::AttributeValue;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let mut record = job.clone();
    record.status = JobStatus::Running;
    record.finished_at = None;
    record.report = None;
    let restore = record
        .steps
        .iter()
        .position(|s| s.name == "restore")
        .expect("restore step");
    record.steps.truncate(restore + 1);
    let step = &mut record.steps[restore];
    step.status = StepStatus::Running;
    step.finished_at = None;
    step.duration_ms = None;
    step.output = Value::Null;
    let item = dynamodb
        .get_item()
        .table_name(&rig.store.table)
        .key("pk", AttributeValue::S(format!("job#{}", job.id)))
        .key("sk", AttributeValue::S("job".into()))
        .send()
        .await
        .expect("read the job item")
        .item
        .expect("the job item");
    dynamodb
        .put_item()
        .table_name(&rig.store.table)
        .set_item(Some(item))
        .item(
            "record",
            AttributeValue::S(serde_json::to_string(&record).expect("record JSON")),
        )
        .item("status", AttributeValue::S("running".into()))
        .send()
        .await
        .expect("rewrite the job");
    dynamodb
        .put_item()
        .table_name(&rig.store.table)
        .item("pk", AttributeValue::S(format!("jobopen#restore_db#{}", job.subject)))
        .item("sk", AttributeValue::S("jobopen".into()))
        .item("jobId", AttributeValue::S(job.id.clone()))
        .send()
        .await
        .expect("reopen the job");
}

#[tokio::test]
async fn a_restore_interrupted_after_the_rds_call_resumes_with_the_database_it_made() {
    let rig = Rig::new().await;
    let source = rig.instance("pitr-resume", 7).await;
    let target = format!("{source}-r");
    let first = rig.restore_json(&["restore", "db", &source, "--to-time", "latest", "--as", &target]);
    let job = rig
        .catalog
        .jobs()
        .get(first["id"].as_str().expect("job id"))
        .await
        .expect("the job");
    interrupt_after_restore_call(&rig, &job).await;

    // The rerun finds the instance tagged with its own job: no second restore, no "already exists".
    let resumed = rig.restore_json(&[
        "restore",
        "db",
        &source,
        "--to-time",
        "latest",
        "--as",
        &target,
        "--wait",
    ]);
    assert_eq!(resumed["id"], job.id.as_str(), "{resumed:#}");
    assert_eq!(resumed["status"], "succeeded");
    assert_eq!(resumed["runs"], 2);
    assert_eq!(step_names(&resumed), ["check-window", "restore", "wait"]);
    assert_eq!(resumed["steps"][0]["attempts"], 1, "the check was not run again");
    assert_eq!(resumed["steps"][1]["attempts"], 2);
    assert_eq!(resumed["report"]["restored"]["id"], target.as_str());
    assert_eq!(rig.restored_from(&source).await, [target]);

    // Another restore to that name is refused: only the job that made a database resumes with it.
    let stranger = rig.instance("pitr-stranger", 1).await;
    let output = rig.run(&[
        "restore",
        "db",
        &stranger,
        "--to-time",
        "latest",
        "--as",
        &format!("{source}-r"),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(stderr(&output).contains("already exists"), "{}", describe(&output));
}
