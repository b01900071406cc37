//! Tests of `super`: plan files read into plans or problems.

use super::super::{check_plans, parse_plans, Tier};
use super::*;

const NOW: &str = "2026-11-23T12:00:00Z";

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

const GOOD: &str = r#"
[[plan]]
name = "orders-hourly"
schedule = "cron(0 * * * ? *)"
timezone = "Europe/Berlin"
resources = ["arn:aws:rds:eu-central-1:123456789012:cluster:orders"]
copy_regions = [{ region = "us-west-2", kms_key = "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab" }]
retention = { keep_days = 7, daily = 30 }
rpo = "1h"
tier = "critical"
"#;

/// Replaces `from` with `to` in the good plan, adds `extra`, and checks that
/// exactly `expected` problems come out (each as "plan/field: part of message").
fn problems(edits: &[(&str, &str)], extra: &str, expected: &[(&str, &str, &str)]) {
    let mut text = GOOD.to_owned();
    for (from, to) in edits {
        assert!(text.contains(from), "{from:?} not in the good plan");
        text = text.replace(from, to);
    }
    text.push_str(extra);
    let check = check_plans(&text, ts(NOW));
    let got: Vec<String> = check.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(check.problems.len(), expected.len(), "{got:#?}");
    for ((plan, field, needle), problem) in expected.iter().zip(&check.problems) {
        assert_eq!(problem.plan.as_deref(), Some(*plan), "{problem}");
        assert_eq!(problem.field, *field, "{problem}");
        assert!(problem.message.contains(needle), "{problem} lacks {needle:?}");
    }
}

#[test]
fn the_good_plan_passes() {
    let plans = parse_plans(GOOD, ts(NOW)).unwrap();
    assert_eq!(plans.len(), 1);
    let plan = &plans[0];
    assert_eq!(plan.tier, Tier::Critical);
    assert_eq!(plan.retention.timezone, "Europe/Berlin");
    assert_eq!(plan.rpo, SignedDuration::from_hours(1));
    let summary = plan.summary(ts(NOW));
    assert_eq!(summary.next_runs[0], "2026-11-23T14:00:00+01:00[Europe/Berlin]");
    assert_eq!(summary.schedule_words, "every hour at :00");
}

#[test]
fn validation_messages() {
    problems(
        &[("cron(0 * * * ? *)", "cron(0 25 * * ? *)")],
        "",
        &[("orders-hourly", "schedule", "hours")],
    );
    problems(
        &[("Europe/Berlin", "Europe/Atlantis")],
        "",
        &[("orders-hourly", "timezone", "Europe/Atlantis")],
    );
    problems(
        &[(
            ", kms_key = \"arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab\"",
            "",
        )],
        "",
        &[("orders-hourly", "copy_regions", "us-west-2 has no kms_key")],
    );
    problems(
        &[("arn:aws:kms:us-west-2", "arn:aws:kms:us-east-1")],
        "",
        &[(
            "orders-hourly",
            "copy_regions",
            "is in us-east-1 but copies go to us-west-2",
        )],
    );
    problems(
        &[("key/1234", "KEY1234")],
        "",
        &[("orders-hourly", "copy_regions", "not a KMS key ARN")],
    );
    problems(
        &[("us-west-2\",", "mars-1\",")],
        "",
        &[("orders-hourly", "copy_regions", "not an AWS region")],
    );
    problems(&[], GOOD, &[("orders-hourly", "name", "both named")]);
    problems(
        &[(
            "resources = [\"arn:aws:rds:eu-central-1:123456789012:cluster:orders\"]",
            "",
        )],
        "",
        &[("orders-hourly", "selection", "selects nothing")],
    );
    problems(&[("\"1h\"", "\"1h\"")], "", &[]);
    problems(
        &[("cron(0 * * * ? *)", "cron(0 2 * * ? *)")],
        "",
        &[(
            "orders-hourly",
            "rpo",
            "plan orders-hourly runs every 24 h but promises an RPO of 1 h",
        )],
    );
    problems(
        &[("cron(0 * * * ? *)", "rate(1 day)")],
        "",
        &[("orders-hourly", "rpo", "runs every 24 h but promises an RPO of 1 h")],
    );
    // A daily run in Berlin is 25 h apart on the autumn night; that does not count.
    problems(
        &[("cron(0 * * * ? *)", "cron(0 2 * * ? *)"), ("\"1h\"", "\"24h\"")],
        "",
        &[],
    );
    problems(&[("cron(0 * * * ? *)", "rate(30 minutes)")], "", &[]);
    problems(
        &[("\"1h\"", "\"soon\"")],
        "",
        &[("orders-hourly", "rpo", "not a duration")],
    );
    problems(
        &[("\"critical\"", "\"vital\"")],
        "",
        &[("orders-hourly", "tier", "critical, important or standard")],
    );
    problems(
        &[("orders-hourly", "Orders_Hourly")],
        "",
        &[("Orders_Hourly", "name", "lowercase")],
    );
    problems(
        &[("cluster:orders", "table/orders")],
        "",
        &[("orders-hourly", "resources", "not an RDS")],
    );
    problems(
        &[("keep_days = 7, daily = 30", "daily = 0")],
        "",
        &[("orders-hourly", "retention", "keep-daily")],
    );
    problems(
        &[("keep_days = 7, daily = 30", "")],
        "",
        &[("orders-hourly", "retention", "no rule")],
    );
    problems(
        &[("keep_days = 7", "keep_days = 7, timezone = \"Nowhere/Else\"")],
        "",
        &[("orders-hourly", "retention", "Nowhere/Else")],
    );
    problems(
        &[("cron(0 * * * ? *)", "cron(0 * * * ? 2020)")],
        "",
        &[("orders-hourly", "schedule", "never runs")],
    );
    problems(
        &[(
            "tier = \"critical\"",
            "tier = \"critical\"\ncolour = \"red\"\nowner = \"ops\"",
        )],
        "",
        &[
            ("orders-hourly", "colour", "unknown field"),
            ("orders-hourly", "owner", "unknown field"),
        ],
    );
    problems(
        &[("region = \"us-west-2\"", "region = \"us-west-2\", kms = \"x\"")],
        "",
        &[("orders-hourly", "copy_regions[0].kms", "unknown field")],
    );
    problems(
        &[("rpo = \"1h\"", "rpo = 1")],
        "",
        &[("orders-hourly", "plan", "string")],
    );
    // Several problems in one plan are all reported.
    problems(
        &[
            ("Europe/Berlin", "Nowhere"),
            ("\"critical\"", "\"vital\""),
            ("\"1h\"", "\"x\""),
        ],
        "",
        &[
            ("orders-hourly", "timezone", "Nowhere"),
            ("orders-hourly", "rpo", "not a duration"),
            ("orders-hourly", "tier", "vital"),
        ],
    );
}

const RESTORE_TEST: &str = r#"[plan.restore_test]
url = "postgres://app@{host}:{port}/orders"
every = "3d"
security_groups = ["sg-0123"]
[[plan.restore_test.check]]
name = "orders present"
sql = "SELECT count(*) FROM orders"
at_least = 1
"#;

#[test]
fn a_restore_test_is_read_with_its_checks_and_defaults() {
    let text = GOOD.replace("cluster:orders", "db:orders") + RESTORE_TEST;
    let plans = parse_plans(&text, ts(NOW)).unwrap();
    let test = plans[0].restore_test.as_ref().expect("a restore test");
    assert_eq!(test.every, SignedDuration::from_hours(72));
    assert_eq!(test.timeout, RESTORE_TEST_TIMEOUT);
    assert_eq!(test.instance_class, RESTORE_TEST_CLASS);
    assert_eq!(test.security_groups, ["sg-0123"]);
    assert_eq!(test.subnet_group, None);
    assert_eq!(test.checks.checks[0].name, "orders present");
    assert_eq!(test.checks.url_for("h", 1), "postgres://app@h:1/orders");
    assert!(parse_plans(GOOD, ts(NOW)).unwrap()[0].restore_test.is_none());
}

#[test]
fn restore_test_problems_name_the_field() {
    let instance = [("cluster:orders", "db:orders")];
    // The good plan selects only a cluster.
    problems(
        &[],
        RESTORE_TEST,
        &[("orders-hourly", "restore_test", "only Aurora clusters")],
    );
    // (in the block, from, to, field, part of the message)
    let cases = [
        (
            "every = \"3d\"",
            "every = \"soon\"",
            "restore_test.every",
            "not a duration",
        ),
        (
            "security_groups = [\"sg-0123\"]",
            "security_groups = [\"default\"]",
            "restore_test.security_groups",
            "not a security group",
        ),
        ("at_least = 1", "", "restore_test", "says nothing about the result"),
        (
            "url = \"postgres://app@{host}:{port}/orders\"",
            "url = \"redis://h:6379/0\"",
            "restore_test",
            "redis",
        ),
        (
            "every = \"3d\"",
            "every = \"3d\"\ncolour = \"red\"",
            "restore_test.colour",
            "unknown field",
        ),
        (
            "at_least = 1",
            "at_least = 1\natleast = 2",
            "restore_test.check[0].atleast",
            "unknown field",
        ),
    ];
    for (from, to, field, needle) in cases {
        problems(
            &instance,
            &RESTORE_TEST.replace(from, to),
            &[("orders-hourly", field, needle)],
        );
    }
    let sources_only = [(
        "resources = [\"arn:aws:rds:eu-central-1:123456789012:cluster:orders\"]",
        "sources = [\"s3://bucket/data\"]",
    )];
    problems(
        &sources_only,
        RESTORE_TEST,
        &[("orders-hourly", "restore_test", "takes no RDS snapshots")],
    );
}

#[test]
fn file_level_problems() {
    let check = check_plans("[[plan]\nname=", ts(NOW));
    assert_eq!(check.problems[0].field, "file");
    let check = check_plans("", ts(NOW));
    assert!(check.problems[0].message.contains("no plan"));
    let check = check_plans("[[plan]]\nschedule = \"rate(1 day)\"\n", ts(NOW));
    assert_eq!(check.problems[0].plan.as_deref(), Some("#1"));
    let errors = parse_plans("", ts(NOW)).unwrap_err();
    assert!(errors.to_string().contains("1 problem(s)"), "{errors}");
}

#[test]
fn secret_arns_are_database_sources() {
    let secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:orders-db-AbCdEf";
    assert!(is_secret_arn(secret));
    for not_one in [
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:",
        "arn:aws:secretsmanager::123456789012:secret:orders",
        "arn:aws:secretsmanager:eu-west-1:1234:secret:orders",
        "arn:aws:ssm:eu-west-1:123456789012:parameter/orders",
        "arn:aws:rds:eu-west-1:123456789012:db:orders",
    ] {
        assert!(!is_secret_arn(not_one), "{not_one}");
    }
    let text = format!(
            "[[plan]]\nname = \"dumps\"\nschedule = \"rate(1 day)\"\nsources = [\"{secret}\", \"s3://bucket/x\"]\nretention = {{ daily = 7 }}\nrpo = \"26h\"\ntier = \"important\"\n"
        );
    let plans = parse_plans(&text, ts(NOW)).expect("a plan with a secret source");
    assert_eq!(plans[0].database_sources(), [secret]);
    let bad = check_plans(
        &text.replace(secret, "arn:aws:secretsmanager:eu-west-1:1:secret:x"),
        ts(NOW),
    );
    assert_eq!(bad.problems[0].field, "sources", "{:?}", bad.problems);
}

#[test]
fn plan_check_shows_database_sources_without_their_passwords() {
    let text = "[[plan]]\nname = \"dumps\"\nschedule = \"rate(1 day)\"\n\
        sources = [\"postgres://app:hunter2@db.example/orders\", \"redis://:hunter2@cache:6379/0\"]\n\
        retention = { daily = 7 }\nrpo = \"26h\"\ntier = \"important\"\n\
        [[plan]]\nname = \"typo\"\nschedule = \"rate(1 day)\"\nsources = [\"postgress://app:hunter2@db/x\"]\n\
        retention = { daily = 7 }\nrpo = \"26h\"\ntier = \"important\"\n";
    let check = check_plans(text, ts(NOW));
    assert_eq!(
        check.plans[0].sources,
        ["postgres://app:***@db.example/orders", "redis://:***@cache:6379/0"]
    );
    assert_eq!(check.problems.len(), 1, "{:?}", check.problems);
    assert!(
        check.problems[0].message.contains("postgress://app:***@db/x"),
        "{:?}",
        check.problems
    );
    let shown = serde_json::to_string(&check).expect("JSON");
    assert!(!shown.contains("hunter2"), "{shown}");
    // The plan itself keeps the password: the dump connects with it.
    let plans = parse_plans(
        &text[..text.find("[[plan]]\nname = \"typo\"").unwrap_or(text.len())],
        ts(NOW),
    )
    .unwrap();
    assert_eq!(plans[0].sources[0], "postgres://app:hunter2@db.example/orders");
}

#[test]
fn huge_days_and_durations_are_refused_naming_the_field_and_the_maximum() {
    problems(
        &[
            ("keep_days = 7", "keep_days = 4294967295"),
            ("rpo = \"1h\"", "rpo = \"300000000years\""),
        ],
        "",
        &[
            (
                "orders-hourly",
                "retention",
                "keep-days is 4294967295, more than the maximum 36500",
            ),
            ("orders-hourly", "rpo", "more than the maximum, 36500 days"),
        ],
    );
    let past_u32 = check_plans(&GOOD.replace("keep_days = 7", "keep_days = 99999999999"), ts(NOW));
    assert_eq!(past_u32.problems.len(), 1, "{:?}", past_u32.problems);
    assert!(
        past_u32.problems[0].message.contains("99999999999"),
        "{:?}",
        past_u32.problems
    );
    let longest = GOOD.replace("rpo = \"1h\"", "rpo = \"36500days\"");
    assert!(check_plans(&longest, ts(NOW)).ok());
}
