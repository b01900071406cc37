//! `lifeboat plan check`, through the real binary (no AWS needed): the sample
//! plan file passes; a broken one fails with exit 1 and every problem named.

use std::path::PathBuf;
use std::process::{Command, Output};

use lifeboat_e2e::workspace_bin;
use serde_json::Value;

const AT: &str = "2026-11-23T12:00:00Z";

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/plans.toml")
}

fn plan_check(file: &std::path::Path, json: bool) -> Output {
    let mut command = Command::new(workspace_bin("lifeboat"));
    command.args(["plan", "check"]).arg(file).args(["--at", AT]);
    if json {
        command.args(["--output", "json"]);
    }
    // No AWS: neither a region nor credentials are needed to check a plan.
    command
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("LIFEBOAT_OUTPUT");
    command.output().expect("run lifeboat plan check")
}

#[test]
fn the_sample_plan_file_passes() {
    let output = plan_check(&sample(), false);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for needle in [
        "Plan orders-hourly (critical)",
        "every hour at :00",
        "Mon 2026-11-23 14:00 CET",
        "copies to        us-west-2",
        "Plan reports-nightly (standard)",
        "s3://acme-reports/exports/",
        "no problem",
    ] {
        assert!(stdout.contains(needle), "{needle:?} not in:\n{stdout}");
    }
    let output = plan_check(&sample(), true);
    assert_eq!(output.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON output");
    assert_eq!(report["ok"], true);
    let orders = &report["plans"][0];
    assert_eq!(orders["name"], "orders-hourly");
    assert_eq!(orders["tier"], "critical");
    assert_eq!(orders["rpoSeconds"], 3600);
    assert_eq!(orders["nextRuns"][0], "2026-11-23T14:00:00+01:00[Europe/Berlin]");
    assert_eq!(orders["nextRuns"].as_array().map(Vec::len), Some(3));
}

const BROKEN: &str = r#"
[[plan]]
name = "orders-hourly"
schedule = "cron(0 2 * * * *)"
timezone = "Europe/Atlantis"
resources = ["arn:aws:rds:eu-central-1:123456789012:cluster:orders"]
copy_regions = [
    { region = "us-west-2" },
    { region = "eu-west-1", kms_key = "arn:aws:kms:us-east-1:123456789012:key/abcd" },
]
retention = { daily = 7 }
rpo = "1h"
tier = "critical"
colour = "red"

[[plan]]
name = "orders-hourly"
schedule = "cron(0 2 * * ? *)"
retention = { keep_last = 3 }
rpo = "1h"
tier = "standard"
"#;

#[test]
fn a_broken_plan_file_fails_naming_every_problem() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("plans.toml");
    std::fs::write(&file, BROKEN).expect("write plan file");
    let output = plan_check(&file, false);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    for needle in [
        "plan orders-hourly, field colour: unknown field",
        "plan orders-hourly, field timezone: unknown time zone \"Europe/Atlantis\"",
        "plan orders-hourly, field schedule: cron(0 2 * * * *): exactly one of day-of-month and day-of-week must be `?`",
        "plan orders-hourly, field copy_regions: copy region us-west-2 has no kms_key",
        "kms_key arn:aws:kms:us-east-1:123456789012:key/abcd is in us-east-1 but copies go to eu-west-1",
        "plan orders-hourly, field name: plans #1 and #2 are both named \"orders-hourly\"",
        "plan orders-hourly, field selection: the plan selects nothing",
        "plan orders-hourly, field rpo: plan orders-hourly runs every 24 h but promises an RPO of 1 h",
        "8 problem(s)",
    ] {
        assert!(stdout.contains(needle), "{needle:?} not in:\n{stdout}");
    }
    let output = plan_check(&file, true);
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON output");
    assert_eq!(report["ok"], false);
    assert_eq!(report["problems"].as_array().map(Vec::len), Some(8), "{report}");
    assert_eq!(report["problems"][0]["plan"], "orders-hourly");
}

#[test]
fn a_missing_plan_file_is_named() {
    let output = plan_check(std::path::Path::new("/nonexistent/plans.toml"), false);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot read plan file /nonexistent/plans.toml"),
        "{stderr}"
    );
}
