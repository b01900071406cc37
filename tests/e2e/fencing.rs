//! Failover fencing (issue 13): a failover adopts only an instance its own
//! job made, so a failover after a failback restores afresh and reports the
//! real RPO; one run per plan holds the plan's lease; the old primary is
//! stopped, or the report says plainly that it was not.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};

use aws_sdk_dynamodb::types::AttributeValue;
use lifeboat::catalog::Catalog;
use lifeboat::jobs::StepStatus;
use lifeboat_e2e::{aws_env, dynamodb_client, endpoint, workspace_bin, REGION};
use serde_json::Value;

use crate::failover::{database, step, Dr, DR, PRIMARY};
use crate::support::describe;

/// A snapshot-strategy plan of one database `billing` (primary
/// `billing-db`, DR instance `billing-dr`) with one record.
fn snapshot_plan(dr: &Dr) -> String {
    let path = dr.write(
        "dr.toml",
        &format!(
            "name = \"{}\"\nprimary_region = \"{PRIMARY}\"\ndr_region = \"{DR}\"\n[[database]]\nname = \"billing\"\n\
             primary_instance = \"{}\"\nstrategy = \"snapshot\"\nrestore_instance = \"{}\"\n\
             [[database.record]]\nzone = \"{}\"\nname = \"billing.{}\"\n",
            dr.name("prod"),
            dr.name("billing-db"),
            dr.name("billing-dr"),
            dr.zone,
            dr.zone
        ),
    );
    path.to_str().expect("utf-8 path").to_owned()
}

/// A snapshot `NAME` of `primary`, copied to the DR region as `NAME-copy`; returns the copy's id.
async fn snapshot_copied(dr: &Dr, primary: &str, name: &str) -> String {
    let snapshot = dr
        .primary
        .create_db_snapshot()
        .db_snapshot_identifier(name)
        .db_instance_identifier(primary)
        .send()
        .await
        .expect("create snapshot");
    let arn = snapshot
        .db_snapshot()
        .and_then(|s| s.db_snapshot_arn())
        .expect("snapshot ARN")
        .to_owned();
    let copy = format!("{name}-copy");
    dr.dr
        .copy_db_snapshot()
        .source_db_snapshot_identifier(arn)
        .target_db_snapshot_identifier(&copy)
        .kms_key_id(&dr.dr_key)
        .send()
        .await
        .expect("copy snapshot to the DR region");
    copy
}

/// An instance's status and tags.
async fn instance(client: &aws_sdk_rds::Client, id: &str) -> (String, Vec<(String, String)>) {
    let answer = client
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .expect("describe instance");
    let found = answer.db_instances().first().expect("the instance exists");
    let tags = found
        .tag_list()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    (found.db_instance_status().unwrap_or_default().to_owned(), tags)
}

fn tag<'a>(tags: &'a [(String, String)], key: &str) -> Option<&'a str> {
    tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn fence_of(report: &Value, database_name: &str, instance: &str) -> Value {
    database(report, database_name)["fence"]
        .as_array()
        .and_then(|fences| fences.iter().find(|f| f["instance"] == instance).cloned())
        .unwrap_or_else(|| panic!("no fence of {instance} in the report: {report:#}"))
}

#[tokio::test]
async fn failover_after_failback_does_not_adopt_the_stale_dr_instance() {
    let dr = Dr::new().await;
    let (primary_id, dr_id) = (dr.name("billing-db"), dr.name("billing-dr"));
    let failback_id = format!("{primary_id}-failback");
    let primary = dr.primary_instance(&primary_id).await;
    let first_copy = snapshot_copied(&dr, &primary_id, &dr.name("first")).await;
    dr.create_zone().await;
    dr.set_record("billing", &primary).await;
    let plan = snapshot_plan(&dr);

    let first = dr.ok_json(&["failover", "--plan", &plan, "--yes"]);
    assert_eq!(first["outcome"], "succeeded", "{first:#}");
    assert_eq!(database(&first, "billing")["rpo"]["snapshot"], first_copy.as_str());
    let (status, tags) = instance(&dr.dr, &dr_id).await;
    assert_eq!(tag(&tags, "lifeboat:job"), first["jobId"].as_str(), "{tags:?}");
    assert_eq!(tag(&tags, "lifeboat:plan"), Some(dr.name("prod").as_str()));
    assert!(tag(&tags, "lifeboat:created-at").is_some(), "{tags:?}");
    assert_eq!(status, "available");
    // The old primary was fenced: stopped, tagged with the job.
    assert_eq!(
        fence_of(&first, "billing", &primary_id)["outcome"],
        "stopped",
        "{first:#}"
    );
    let (status, tags) = instance(&dr.primary, &primary_id).await;
    assert_eq!(status, "stopped");
    assert_eq!(tag(&tags, "lifeboat:fenced"), first["jobId"].as_str());

    let back = dr.ok_json(&["failback", "--plan", &plan, "--yes"]);
    assert_eq!(back["outcome"], "succeeded", "{back:#}");
    let failback_endpoint = dr.endpoint(&dr.primary, &failback_id).await;
    assert_eq!(dr.record("billing").await.as_deref(), Some(failback_endpoint.as_str()));
    // Newer data reaches the DR region (a second copy, taken later).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second_copy = snapshot_copied(&dr, &primary_id, &dr.name("second")).await;

    let refused = dr.run(&["failover", "--plan", &plan, "--yes"]);

    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let first_job = first["jobId"].as_str().expect("job id");
    assert!(
        stderr.contains(&format!("DB instance {dr_id} in {DR} was made by job {first_job}"))
            && stderr.contains("delete-db-instance")
            && stderr.contains("it may hold old data"),
        "{stderr}"
    );
    assert_eq!(
        dr.record("billing").await.as_deref(),
        Some(failback_endpoint.as_str()),
        "DNS not switched to the stale instance"
    );

    // The operator deletes the stale instance, as the message says; the next failover restores afresh.
    dr.dr
        .delete_db_instance()
        .db_instance_identifier(&dr_id)
        .skip_final_snapshot(true)
        .send()
        .await
        .expect("delete the stale DR instance");
    let fresh = dr.ok_json(&["failover", "--plan", &plan, "--yes"]);

    assert_eq!(fresh["outcome"], "succeeded", "{fresh:#}");
    let billing = database(&fresh, "billing");
    assert_eq!(billing["rpo"]["kind"], "snapshot", "{billing:#}");
    assert_eq!(
        billing["rpo"]["snapshot"],
        second_copy.as_str(),
        "the newest copy, not the stale data"
    );
    let rpo = billing["rpo"]["seconds"].as_i64().expect("RPO seconds");
    assert!((0..300).contains(&rpo), "RPO {rpo} s");
    let job = dr.job(fresh["jobId"].as_str().expect("job id")).await;
    let restored = step(&job, "billing/restore");
    assert_eq!(restored.status, StepStatus::Done);
    assert_eq!(restored.output["snapshot"]["id"], second_copy.as_str());
    let (_, tags) = instance(&dr.dr, &dr_id).await;
    assert_eq!(
        tag(&tags, "lifeboat:job"),
        fresh["jobId"].as_str(),
        "made by the new job"
    );
    let dr_endpoint = dr.endpoint(&dr.dr, &dr_id).await;
    assert_eq!(
        dr.record("billing").await,
        Some(dr_endpoint),
        "DNS on the fresh restore"
    );
    // What served writes in the primary region since the failback is fenced now.
    assert_eq!(
        fence_of(&fresh, "billing", &failback_id)["outcome"],
        "stopped",
        "{fresh:#}"
    );
    assert_eq!(fence_of(&fresh, "billing", &primary_id)["outcome"], "already_stopped");
    assert_eq!(instance(&dr.primary, &failback_id).await.0, "stopped");
}

#[tokio::test]
async fn an_untagged_instance_under_the_dr_name_is_refused_not_adopted() {
    let dr = Dr::new().await;
    let (primary_id, dr_id) = (dr.name("billing-db"), dr.name("billing-dr"));
    let primary = dr.primary_instance(&primary_id).await;
    snapshot_copied(&dr, &primary_id, &dr.name("snap")).await;
    dr.create_zone().await;
    dr.set_record("billing", &primary).await;
    dr.dr
        .create_db_instance()
        .db_instance_identifier(&dr_id)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .send()
        .await
        .expect("create an instance by hand under the DR name");
    let plan = snapshot_plan(&dr);
    let resources = dr.resources().await;

    let dry = dr.ok_json(&["failover", "--plan", &plan, "--dry-run"]);
    let action = &dry["inspection"]["databases"][0]["action"];
    assert_eq!(action["action"], "blocked", "{dry:#}");
    let refused = dr.run(&["failover", "--plan", &plan, "--yes"]);

    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!(
            "DB instance {dr_id} in {DR} exists, but no job of this plan made it"
        )) && stderr.contains("--new-db-instance-identifier"),
        "{stderr}"
    );
    assert_eq!(dr.record("billing").await, Some(primary), "DNS untouched");
    assert_eq!(dr.resources().await, resources, "nothing restored, nothing stopped");
}

/// Writes the lease of plan `plan` as a run on `host` would, expiring at `expires_at`.
async fn put_lease(table: &str, plan: &str, host: &str, job: &str, expires_at: &str) {
    let s = |v: &str| AttributeValue::S(v.to_owned());
    dynamodb_client()
        .await
        .put_item()
        .table_name(table)
        .item("pk", s(&format!("joblease#{plan}")))
        .item("sk", s("joblease"))
        .item("owner", s("0123456789abcdef"))
        .item("holder", s(&format!("cli:someone@{host}")))
        .item("pid", AttributeValue::N("4242".into()))
        .item("kind", s("failover"))
        .item("jobId", s(job))
        .item("since", s("2026-01-01T00:00:00.000Z"))
        .item("heartbeatAt", s("2026-01-01T00:00:00.000Z"))
        .item("expiresAt", s(expires_at))
        .send()
        .await
        .expect("write a lease");
}

async fn lease_exists(table: &str, plan: &str) -> bool {
    Catalog::new(dynamodb_client().await, table, REGION)
        .get_item(&format!("joblease#{plan}"), "joblease")
        .await
        .expect("read the lease")
        .is_some()
}

#[tokio::test]
async fn a_live_lease_refuses_a_second_run_and_a_stale_one_is_taken_over() {
    let dr = Dr::new().await;
    let primary_id = dr.name("billing-db");
    let primary = dr.primary_instance(&primary_id).await;
    snapshot_copied(&dr, &primary_id, &dr.name("snap")).await;
    dr.create_zone().await;
    dr.set_record("billing", &primary).await;
    let plan = snapshot_plan(&dr);
    let plan_name = dr.name("prod");
    let job = "job-20260101T000000Z-0badf00d";
    let in_an_hour = lifeboat::times::format(lifeboat::times::now() + jiff::SignedDuration::from_hours(1));
    put_lease(&dr.table, &plan_name, "other-laptop", job, &in_an_hour).await;
    let resources = dr.resources().await;

    for command in [vec!["failover", "--yes"], vec!["drill"]] {
        let refused = dr.run(&[command.as_slice(), &["--plan", &plan]].concat());
        let command = command[0];
        assert_eq!(refused.status.code(), Some(1), "{command}: {}", describe(&refused));
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains(&format!(
                "{plan_name} is busy: a failover (job {job}) run by cli:someone@other-laptop (pid 4242)"
            )) && stderr.contains("since 2026-01-01T00:00:00.000Z")
                && stderr.contains(&format!("expires at {in_an_hour}")),
            "{command}: {stderr}"
        );
    }
    assert_eq!(dr.resources().await, resources, "the refused runs changed nothing");
    assert_eq!(dr.record("billing").await.as_deref(), Some(primary.as_str()));

    // The same lease, expired: its run is dead; the next run takes it over and says so.
    put_lease(&dr.table, &plan_name, "dead-laptop", job, "2026-01-01T00:02:00.000Z").await;
    let report = dr.ok_json(&["failover", "--plan", &plan, "--yes"]);

    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    let note = report["notes"][0].as_str().unwrap_or_default();
    assert!(
        note.contains(&format!(
            "took over the lease of plan {plan_name} from a failover (job {job}) run by cli:someone@dead-laptop"
        )) && note.contains("presumed dead"),
        "{report:#}"
    );
    assert!(!lease_exists(&dr.table, &plan_name).await, "released at the end");
}

#[tokio::test]
async fn a_second_operator_cannot_take_over_a_running_failover() {
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
    // The first operator's run, slowed down (a promotion takes three polls, 3 s apart).
    let first = Command::new(workspace_bin("lifeboat"))
        .args([
            "failover",
            "--plan",
            plan,
            "--yes",
            "--poll-interval",
            "3s",
            "--report-dir",
        ])
        .arg(dr.reports())
        .envs(aws_env())
        .env("LIFEBOAT_TABLE", &dr.table)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the first run");
    let jobs = Catalog::new(dynamodb_client().await, &dr.table, REGION).jobs();
    let mut running = None;
    for _ in 0..200 {
        let listed = jobs.list(None).await.expect("list jobs");
        running = listed.into_iter().find(|j| {
            j.step(&format!("{orders}/wait"))
                .is_some_and(|s| s.status == StepStatus::Running)
        });
        if running.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let running = running.expect("the first run reached its wait");

    let second = dr.run(&["failover", "--plan", plan, "--yes", "--restart"]);

    assert_eq!(second.status.code(), Some(1), "{}", describe(&second));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!("is busy: a failover (job {}) run by cli:", running.id)),
        "names the live job and its holder: {stderr}"
    );
    let first = first.wait_with_output().expect("the first run ends");
    assert!(
        first.status.success(),
        "the first run was not disturbed:\n{}",
        describe(&first)
    );
    let job = dr.job(&running.id).await;
    assert_eq!((job.runs, job.status), (1, lifeboat::jobs::JobStatus::Succeeded));
    assert_eq!(dr.record("orders").await, Some(replica));
}

/// A proxy in front of the emulator refusing (HTTP 503) every request signed
/// for `lost_region`: that region's outage. Returns its URL; it serves until
/// the test process ends.
fn region_outage_proxy(lost_region: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
    let url = format!("http://{}", listener.local_addr().expect("proxy address"));
    let upstream = endpoint().trim_start_matches("http://").to_owned();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let upstream = upstream.clone();
            std::thread::spawn(move || relay(client, &upstream, lost_region));
        }
    });
    url
}

/// One request: refused if signed for `lost_region`, else sent on with
/// `Connection: close` (so the next request comes on a new connection and
/// is looked at too) and the answer relayed back.
fn relay(mut client: TcpStream, upstream: &str, lost_region: &str) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let scope = format!("/{lost_region}/");
    if text
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("authorization:") && l.contains(&scope))
    {
        let _ = client.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    let kept: String = text
        .trim_end()
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    if server
        .write_all(format!("{kept}Connection: close\r\n\r\n").as_bytes())
        .is_err()
    {
        return;
    }
    let (mut client_reader, mut server_writer) =
        (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
    let upload = std::thread::spawn(move || std::io::copy(&mut client_reader, &mut server_writer));
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Both);
    let _ = upload.join();
}

/// Runs `lifeboat ARGS --output json` through `endpoint`.
fn run_through(dr: &Dr, endpoint: &str, args: &[&str]) -> Output {
    Command::new(workspace_bin("lifeboat"))
        .args(args)
        .args(["--output", "json", "--poll-interval", "10ms", "--report-dir"])
        .arg(dr.reports())
        .envs(aws_env())
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("LIFEBOAT_TABLE", &dr.table)
        .env_remove("LIFEBOAT_OUTPUT")
        .stdin(Stdio::null())
        .output()
        .expect("run lifeboat")
}

#[tokio::test]
async fn a_failover_while_the_primary_region_is_down_reports_the_old_primary_not_fenced() {
    let dr = Dr::new().await;
    let (primary_id, dr_id) = (dr.name("billing-db"), dr.name("billing-dr"));
    let primary = dr.primary_instance(&primary_id).await;
    snapshot_copied(&dr, &primary_id, &dr.name("snap")).await;
    dr.create_zone().await;
    dr.set_record("billing", &primary).await;
    let plan = snapshot_plan(&dr);
    let outage = region_outage_proxy(PRIMARY);

    let output = run_through(&dr, &outage, &["failover", "--plan", &plan, "--yes"]);

    assert!(output.status.success(), "the failover goes on:\n{}", describe(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    let fence = fence_of(&report, "billing", &primary_id);
    assert_eq!(fence["outcome"], "not_fenced", "{report:#}");
    assert!(
        fence["todo"].as_str().is_some_and(|t| t.contains(&format!(
            "aws rds stop-db-instance --region {PRIMARY} --db-instance-identifier {primary_id}"
        ))),
        "{fence:#}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("old primary {primary_id} ({PRIMARY}) was NOT fenced")),
        "said plainly: {stderr}"
    );
    let markdown = std::fs::read_to_string(
        dr.reports()
            .join(format!("{}.md", report["jobId"].as_str().expect("id"))),
    )
    .expect("Markdown report");
    assert!(markdown.contains("was NOT fenced"), "{markdown}");
    assert_eq!(
        instance(&dr.primary, &primary_id).await.0,
        "available",
        "nothing reached it"
    );
    let dr_endpoint = dr.endpoint(&dr.dr, &dr_id).await;
    assert_eq!(
        dr.record("billing").await,
        Some(dr_endpoint),
        "DNS switched all the same"
    );
}
