//! Reading a plan file: TOML into validated [`Plan`]s, collecting **every**
//! problem (each naming the plan, the field and what to do) instead of
//! stopping at the first. One named check per section of a plan.

use std::collections::{BTreeMap, BTreeSet};

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use super::checks::{checks_from, CheckFile};
use super::schedule::Schedule;
use super::{
    duration_words, CopyRegion, Plan, PlanProblem, Resource, RestoreTestPlan, Tier, RESTORE_TEST_CLASS,
    RESTORE_TEST_EVERY, RESTORE_TEST_TIMEOUT,
};
use crate::db::url::{is_database_url, is_secret_arn, redact};
use crate::retention::{RetentionError, RetentionPolicy};
use crate::times::{MAX_DAYS, MAX_DURATION};

// The file's boundary types: TOML, snake_case, unknown fields refused.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanToml {
    name: String,
    #[serde(default)]
    description: Option<String>,
    schedule: String,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    sources: Vec<String>,
    #[serde(default)]
    copy_regions: Vec<CopyRegionToml>,
    #[serde(default)]
    retention: Option<RetentionToml>,
    rpo: String,
    tier: String,
    #[serde(default)]
    restore_test: Option<RestoreTestToml>,
}

const PLAN_FIELDS: &[&str] = &[
    "name",
    "description",
    "schedule",
    "timezone",
    "tags",
    "resources",
    "sources",
    "copy_regions",
    "retention",
    "rpo",
    "tier",
    "restore_test",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreTestToml {
    url: String,
    #[serde(default)]
    check: Vec<CheckFile>,
    every: Option<String>,
    instance_class: Option<String>,
    subnet_group: Option<String>,
    #[serde(default)]
    security_groups: Vec<String>,
    timeout: Option<String>,
}

const RESTORE_TEST_FIELDS: &[&str] = &[
    "url",
    "check",
    "every",
    "instance_class",
    "subnet_group",
    "security_groups",
    "timeout",
];

const CHECK_FIELDS: &[&str] = &["name", "sql", "equals", "at_least", "at_most"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CopyRegionToml {
    region: String,
    #[serde(default)]
    kms_key: Option<String>,
}

const COPY_FIELDS: &[&str] = &["region", "kms_key"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionToml {
    keep_days: Option<u32>,
    keep_last: Option<u32>,
    daily: Option<u32>,
    weekly: Option<u32>,
    monthly: Option<u32>,
    yearly: Option<u32>,
    /// Default: the plan's time zone.
    timezone: Option<String>,
}

const RETENTION_FIELDS: &[&str] = &[
    "keep_days",
    "keep_last",
    "daily",
    "weekly",
    "monthly",
    "yearly",
    "timezone",
];

struct Problems {
    list: Vec<PlanProblem>,
    plan: Option<String>,
}

impl Problems {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.list.push(PlanProblem {
            plan: self.plan.clone(),
            field: field.to_owned(),
            message: message.into(),
        });
    }
}

/// Reports and removes keys that `known` does not list.
fn unknown_keys(table: &mut toml::Table, known: &[&str], at: &str, problems: &mut Problems) {
    let unknown: Vec<String> = table.keys().filter(|k| !known.contains(&k.as_str())).cloned().collect();
    for key in unknown {
        table.remove(&key);
        problems.add(
            &format!("{at}{key}"),
            format!("unknown field; the fields are {}", known.join(", ")),
        );
    }
}

pub(super) fn read(text: &str, now: Timestamp) -> (Vec<Plan>, Vec<PlanProblem>) {
    let mut problems = Problems {
        list: Vec::new(),
        plan: None,
    };
    let mut document: toml::Table = match text.parse() {
        Ok(table) => table,
        Err(e) => {
            problems.add("file", format!("not valid TOML: {}", e.to_string().trim_end()));
            return (Vec::new(), problems.list);
        }
    };
    unknown_keys(&mut document, &["plan"], "", &mut problems);
    let entries = match document.remove("plan") {
        Some(toml::Value::Array(entries)) => entries,
        Some(_) => {
            problems.add("plan", "must be an array of tables: write each plan as [[plan]]");
            return (Vec::new(), problems.list);
        }
        None => {
            problems.add(
                "plan",
                "the file declares no plan: add a [[plan]] table (see examples/plans.toml)",
            );
            return (Vec::new(), problems.list);
        }
    };
    let mut plans = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (index, entry) in entries.into_iter().enumerate() {
        let toml::Value::Table(mut table) = entry else {
            problems.plan = Some(format!("#{}", index + 1));
            problems.add("plan", "not a table: write each plan as [[plan]]");
            continue;
        };
        let label = match table.get("name").and_then(|n| n.as_str()) {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => format!("#{}", index + 1),
        };
        problems.plan = Some(label.clone());
        if let Some(previous) = names.insert(label.clone(), index + 1) {
            problems.add(
                "name",
                format!(
                    "plans #{previous} and #{} are both named {label:?}: give every plan its own name",
                    index + 1
                ),
            );
        }
        unknown_keys(&mut table, PLAN_FIELDS, "", &mut problems);
        if let Some(toml::Value::Array(copies)) = table.get_mut("copy_regions") {
            for (i, copy) in copies.iter_mut().enumerate() {
                if let toml::Value::Table(copy) = copy {
                    unknown_keys(copy, COPY_FIELDS, &format!("copy_regions[{i}]."), &mut problems);
                }
            }
        }
        if let Some(toml::Value::Table(retention)) = table.get_mut("retention") {
            unknown_keys(retention, RETENTION_FIELDS, "retention.", &mut problems);
        }
        if let Some(toml::Value::Table(restore_test)) = table.get_mut("restore_test") {
            unknown_keys(restore_test, RESTORE_TEST_FIELDS, "restore_test.", &mut problems);
            if let Some(toml::Value::Array(checks)) = restore_test.get_mut("check") {
                for (i, check) in checks.iter_mut().enumerate() {
                    if let toml::Value::Table(check) = check {
                        unknown_keys(check, CHECK_FIELDS, &format!("restore_test.check[{i}]."), &mut problems);
                    }
                }
            }
        }
        match PlanToml::deserialize(toml::Value::Table(table)) {
            Ok(raw) => {
                if let Some(plan) = validate(raw, now, &mut problems) {
                    plans.push(plan);
                }
            }
            Err(e) => problems.add("plan", e.message().to_owned()),
        }
    }
    (plans, problems.list)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 50
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

fn valid_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        && parts.last().is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

/// Validates one plan, section by section (each problem under its field, in
/// the file's order); the plan if nothing was wrong.
fn validate(raw: PlanToml, now: Timestamp, problems: &mut Problems) -> Option<Plan> {
    let before = problems.list.len();
    let name = raw.name.clone();
    check_name(&name, problems);
    let timezone = raw.timezone.clone().unwrap_or_else(|| "UTC".to_owned());
    let zone = time_zone(&timezone, problems);
    let schedule = schedule(&raw.schedule, zone.as_ref(), now, problems);
    let resources = selection(&raw, problems);
    let copy_regions = copy_regions(raw.copy_regions, problems);
    let retention = retention(raw.retention, &timezone, zone.is_none(), problems);
    let rpo = rpo(&raw.rpo, schedule.as_ref(), &name, now, problems);
    let tier = tier(&raw.tier, problems);
    let restore_test = raw
        .restore_test
        .and_then(|r| restore_test(r, &resources, raw.tags.is_empty(), problems));
    if problems.list.len() != before {
        return None;
    }
    Some(Plan {
        name,
        description: raw.description,
        schedule: schedule?,
        schedule_text: raw.schedule.trim().to_owned(),
        timezone,
        zone: zone?,
        tags: raw.tags,
        resources,
        sources: raw.sources,
        copy_regions,
        retention: retention?,
        rpo: rpo?,
        tier: tier?,
        restore_test,
    })
}

/// `name`: it becomes part of snapshot names.
fn check_name(name: &str, problems: &mut Problems) {
    if !valid_name(name) {
        problems.add(
            "name",
            format!("{name:?} is not a plan name: use lowercase letters, digits and single hyphens (at most 50), e.g. orders-hourly; it becomes part of snapshot names"),
        );
    }
}

/// `timezone`: an IANA name.
fn time_zone(timezone: &str, problems: &mut Problems) -> Option<TimeZone> {
    match TimeZone::get(timezone) {
        Ok(zone) => Some(zone),
        Err(_) => {
            problems.add(
                "timezone",
                format!("unknown time zone {timezone:?}: give an IANA name such as Europe/Berlin or America/New_York, or UTC"),
            );
            None
        }
    }
}

/// `schedule`: a valid expression that still runs after `now`.
fn schedule(text: &str, zone: Option<&TimeZone>, now: Timestamp, problems: &mut Problems) -> Option<Schedule> {
    let schedule = match Schedule::parse(text) {
        Ok(schedule) => Some(schedule),
        Err(e) => {
            problems.add("schedule", e.to_string());
            None
        }
    };
    if let (Some(Schedule::Cron(cron)), Some(zone)) = (&schedule, zone) {
        if matches!(cron.next_runs(now, zone, 1), Ok(runs) if runs.is_empty()) {
            problems.add(
                "schedule",
                format!("{} never runs after {now}: check its year field", text.trim()),
            );
        }
    }
    schedule
}

/// `tags`, `resources` and `sources`: each well formed, and at least one
/// selecting something. Returns the resources.
fn selection(raw: &PlanToml, problems: &mut Problems) -> Vec<Resource> {
    for (key, value) in &raw.tags {
        if key.trim().is_empty() {
            problems.add("tags", format!("a tag key is empty (value {value:?}): name the tag"));
        }
    }
    let mut resources = Vec::new();
    for text in &raw.resources {
        match Resource::parse(text) {
            Ok(resource) => resources.push(resource),
            Err(message) => problems.add("resources", message),
        }
    }
    for source in &raw.sources {
        if is_database_url(source) || is_secret_arn(source) {
            continue;
        }
        let bucket = source
            .strip_prefix("s3://")
            .map(|rest| rest.split('/').next().unwrap_or_default());
        if bucket.is_none_or(str::is_empty) {
            problems.add(
                "sources",
                format!("{:?} is neither an S3 location (s3://BUCKET[/PREFIX]), a database URL (postgres://, mysql://, sqlite:///, redis://, duckdb://) nor a Secrets Manager secret ARN holding one (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)", redact(source)),
            );
        }
    }
    if raw.tags.is_empty() && raw.resources.is_empty() && raw.sources.is_empty() {
        problems.add(
            "selection",
            "the plan selects nothing: give tags (e.g. tags = { backup = \"daily\" }), resources (ARNs or identifiers) or sources (s3://... or database URLs)",
        );
    }
    resources
}

/// `copy_regions`: each region once, with a KMS key ARN in that region.
fn copy_regions(copies: Vec<CopyRegionToml>, problems: &mut Problems) -> Vec<CopyRegion> {
    let mut copy_regions = Vec::new();
    let mut seen_regions = BTreeSet::new();
    for copy in copies {
        let region = copy.region;
        if !valid_region(&region) {
            problems.add(
                "copy_regions",
                format!("{region:?} is not an AWS region name such as us-west-2"),
            );
            continue;
        }
        if !seen_regions.insert(region.clone()) {
            problems.add(
                "copy_regions",
                format!("{region} is listed twice: list each copy region once"),
            );
        }
        let Some(kms_key) = copy.kms_key else {
            problems.add(
                "copy_regions",
                format!("copy region {region} has no kms_key: give the ARN of a KMS key in {region} (copies are re-encrypted there; the default aws/rds key is never used)"),
            );
            continue;
        };
        check_copy_key(&kms_key, &region, problems);
        copy_regions.push(CopyRegion { region, kms_key });
    }
    copy_regions
}

/// A copy region's `kms_key`: a KMS key ARN in `region`.
fn check_copy_key(kms_key: &str, region: &str, problems: &mut Problems) {
    let parts: Vec<&str> = kms_key.splitn(6, ':').collect();
    if parts.len() != 6
        || parts[0] != "arn"
        || parts[2] != "kms"
        || !(parts[5].starts_with("key/") || parts[5].starts_with("alias/"))
    {
        problems.add(
            "copy_regions",
            format!("kms_key {kms_key:?} for {region} is not a KMS key ARN: write arn:aws:kms:{region}:ACCOUNT:key/KEY-ID (or :alias/NAME)"),
        );
    } else if parts[3] != region {
        problems.add(
            "copy_regions",
            format!(
                "kms_key {kms_key} is in {} but copies go to {region}: a KMS key works only in its own region, give a key in {region}",
                parts[3]
            ),
        );
    }
}

/// `retention`: present, with at least one rule, valid; its time zone the
/// plan's unless given (`bad_zone`: the plan's is already reported bad).
fn retention(
    raw: Option<RetentionToml>,
    timezone: &str,
    bad_zone: bool,
    problems: &mut Problems,
) -> Option<RetentionPolicy> {
    let Some(r) = raw else {
        problems.add(
            "retention",
            "missing: add retention = { keep_days = N } (or keep_last, daily, weekly, monthly, yearly)",
        );
        return None;
    };
    // A bad inherited time zone is already reported under `timezone`.
    let inherited_bad_zone = r.timezone.is_none() && bad_zone;
    let policy = RetentionPolicy {
        keep_days: r.keep_days,
        keep_last: r.keep_last,
        daily: r.daily,
        weekly: r.weekly,
        monthly: r.monthly,
        yearly: r.yearly,
        timezone: r.timezone.unwrap_or_else(|| timezone.to_owned()),
    };
    if !policy.has_rules() {
        problems.add(
            "retention",
            "sets no rule, so nothing would ever be deleted: set keep_days, keep_last, daily, weekly, monthly or yearly",
        );
    }
    match policy.validate() {
        Ok(_) => Some(policy),
        Err(RetentionError::UnknownTimezone { .. }) if inherited_bad_zone => None,
        Err(e) => {
            problems.add("retention", e.to_string());
            None
        }
    }
}

/// `rpo`: a positive duration the schedule keeps (its longest gap no longer).
fn rpo(
    text: &str,
    schedule: Option<&Schedule>,
    name: &str,
    now: Timestamp,
    problems: &mut Problems,
) -> Option<SignedDuration> {
    let rpo = bounded_duration("rpo", text, "\"1h\", \"26h\", \"30m\"", problems);
    if let (Some(schedule), Some(rpo)) = (schedule, rpo) {
        if let Some(gap) = schedule.longest_gap(now) {
            if gap > rpo {
                problems.add(
                    "rpo",
                    format!(
                        "plan {name} runs every {} but promises an RPO of {}: schedule it at least every {}, or raise rpo",
                        duration_words(gap),
                        duration_words(rpo),
                        duration_words(rpo)
                    ),
                );
            }
        }
    }
    rpo
}

/// `tier`: critical, important or standard.
fn tier(text: &str, problems: &mut Problems) -> Option<Tier> {
    match text {
        "critical" => Some(Tier::Critical),
        "important" => Some(Tier::Important),
        "standard" => Some(Tier::Standard),
        other => {
            problems.add(
                "tier",
                format!("{other:?} is not a tier: write critical, important or standard"),
            );
            None
        }
    }
}

/// A positive duration such as `7d`, `12h`, `90m` (`default` when not
/// given); reported under `field` when it is not one.
fn duration(
    field: &str,
    text: Option<String>,
    default: SignedDuration,
    problems: &mut Problems,
) -> Option<SignedDuration> {
    let Some(text) = text else {
        return Some(default);
    };
    bounded_duration(field, &text, "\"7d\", \"12h\", \"90m\"", problems)
}

/// `text` as a message quotes it: escaped, at most 40 characters.
fn quoted(text: &str) -> String {
    let cut: String = text.chars().take(40).collect();
    format!("{cut:?}")
}

/// A positive duration of at most [`MAX_DURATION`] (100 years), reported
/// under `field` (with `examples`) when it is not one.
fn bounded_duration(field: &str, text: &str, examples: &str, problems: &mut Problems) -> Option<SignedDuration> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => problems.add(field, format!("{text:?} is zero: write e.g. {examples}")),
        Ok(d) => match SignedDuration::try_from(d).ok().filter(|d| *d <= MAX_DURATION) {
            Some(d) => return Some(d),
            None => problems.add(
                field,
                format!(
                    "{} is more than the maximum, {MAX_DAYS} days (100 years): write e.g. {examples}",
                    quoted(text)
                ),
            ),
        },
        Err(_) => problems.add(
            field,
            format!("{} is not a duration: write e.g. {examples}", quoted(text)),
        ),
    }
    None
}

/// Validates `[plan.restore_test]` for a plan that selects `resources`
/// (and tags, unless `no_tags`).
fn restore_test(
    raw: RestoreTestToml,
    resources: &[Resource],
    no_tags: bool,
    problems: &mut Problems,
) -> Option<RestoreTestPlan> {
    let before = problems.list.len();
    if no_tags && resources.is_empty() {
        problems.add(
            "restore_test",
            "the plan takes no RDS snapshots (it selects only sources): restore tests restore a DB instance snapshot, so select DB instances with resources or tags, or remove [plan.restore_test]",
        );
    } else if no_tags && resources.iter().all(|r| matches!(r, Resource::Cluster { .. })) {
        problems.add(
            "restore_test",
            "the plan selects only Aurora clusters, and restore tests restore DB instance snapshots: test a cluster with `lifeboat restore` by hand, or remove [plan.restore_test]",
        );
    }
    let checks = match checks_from(raw.url, raw.check) {
        Ok(checks) => Some(checks),
        Err(message) => {
            problems.add("restore_test", message);
            None
        }
    };
    let every = duration("restore_test.every", raw.every, RESTORE_TEST_EVERY, problems);
    let timeout = duration("restore_test.timeout", raw.timeout, RESTORE_TEST_TIMEOUT, problems);
    let instance_class = raw.instance_class.unwrap_or_else(|| RESTORE_TEST_CLASS.to_owned());
    if !instance_class.starts_with("db.") || instance_class.len() < 4 {
        problems.add(
            "restore_test.instance_class",
            format!("{instance_class:?} is not a DB instance class: write e.g. \"db.t3.micro\""),
        );
    }
    if raw.subnet_group.as_deref().is_some_and(|g| g.trim().is_empty()) {
        problems.add(
            "restore_test.subnet_group",
            "is empty: name a DB subnet group, or leave it out for the default VPC",
        );
    }
    for group in &raw.security_groups {
        if !group.starts_with("sg-") {
            problems.add(
                "restore_test.security_groups",
                format!("{group:?} is not a security group id: write e.g. \"sg-0123456789abcdef0\""),
            );
        }
    }
    if problems.list.len() != before {
        return None;
    }
    Some(RestoreTestPlan {
        checks: checks?,
        every: every?,
        instance_class,
        subnet_group: raw.subnet_group,
        security_groups: raw.security_groups,
        timeout: timeout?,
    })
}

#[cfg(test)]
mod tests;
