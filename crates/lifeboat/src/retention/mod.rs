//! Retention: which backups a policy keeps and which it lets go.
//!
//! Pure: no AWS type, no I/O, no clock. The caller passes the backups, the
//! policy and "now"; [`plan_retention`] returns a [`RetentionPlan`] naming,
//! for every backup, why it is kept or why it may be deleted. Applying a plan
//! is someone else's job (`expire.rs` for file backups).
//!
//! # Semantics
//!
//! Backups are grouped by source; every rule applies to each source alone.
//! Only **completed** backups count for the rules:
//!
//! - `keep_last = N`: the N newest completed backups.
//! - `keep_days = N`: every completed backup created after `now - N days`.
//! - `daily = D`: the newest backup of each of the D most recent calendar days
//!   that have a backup (days that have none do not count), in the policy's
//!   time zone. Likewise `weekly` (ISO 8601 weeks, Monday first),
//!   `monthly` and `yearly`. This is restic's `forget --keep-daily` and
//!   friends.
//!
//! A backup is kept if **any** rule keeps it. A completed backup that no rule
//! keeps is deleted. Whatever the rules say, a backup is **never** deleted if:
//!
//! - it is the newest completed backup of its source that passed a
//!   verification (or, if none of the source's backups is verified, the newest
//!   completed one): a source always keeps one backup known to restore;
//! - it is under a hold (legal hold);
//! - its retention (Object Lock, or the record's `retentionUntil`) lies after `now`;
//! - it is pending or in progress (a backup being written is never touched);
//! - it is the parent, grand-parent, … of any kept backup (an incremental or
//!   differential backup cannot be restored without its chain).
//!
//! Failed backups are deleted once older than `keep_days` (or
//! [`FAILED_GRACE_DAYS`] days when `keep_days` is not set), unless protected.
//!
//! If the policy sets no rule at all, everything is kept and the plan says so
//! ([`RetentionPlan::no_rules`]); an empty policy never deletes.

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::format::BackupType;

/// Days a failed backup stays when the policy has no `keep_days`.
pub const FAILED_GRACE_DAYS: u32 = 7;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RetentionError {
    #[error("unknown time zone {name:?} in the retention policy ({message}): give an IANA name such as Europe/Berlin, or UTC")]
    UnknownTimezone { name: String, message: String },
    #[error("retention rule {rule} is 0, which keeps nothing by that rule: give at least 1, or leave the rule out")]
    ZeroCount { rule: &'static str },
    #[error("retention rule {rule} is {value}, more than the maximum {max} (100 years): give at most {max}")]
    TooLarge { rule: &'static str, value: u32, max: u32 },
}

/// How many backups to keep. Every count is optional; `None` means the rule is
/// not used. `timezone` (IANA name) decides where days, weeks, months and
/// years begin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetentionPolicy {
    #[serde(default)]
    pub keep_days: Option<u32>,
    #[serde(default)]
    pub keep_last: Option<u32>,
    #[serde(default)]
    pub daily: Option<u32>,
    #[serde(default)]
    pub weekly: Option<u32>,
    #[serde(default)]
    pub monthly: Option<u32>,
    #[serde(default)]
    pub yearly: Option<u32>,
    #[serde(default = "utc")]
    pub timezone: String,
}

fn utc() -> String {
    "UTC".to_owned()
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            keep_days: None,
            keep_last: None,
            daily: None,
            weekly: None,
            monthly: None,
            yearly: None,
            timezone: utc(),
        }
    }
}

impl RetentionPolicy {
    /// Whether any rule is set (a policy without rules keeps everything).
    pub fn has_rules(&self) -> bool {
        self.rules().iter().any(|(_, count)| count.is_some())
    }

    fn rules(&self) -> [(&'static str, Option<u32>); 6] {
        [
            ("keep-days", self.keep_days),
            ("keep-last", self.keep_last),
            ("keep-daily", self.daily),
            ("keep-weekly", self.weekly),
            ("keep-monthly", self.monthly),
            ("keep-yearly", self.yearly),
        ]
    }

    /// Checks the counts (none 0; none reaching past 100 years, see
    /// [`crate::times::MAX_DAYS`]; `keep-last` counts backups, not time)
    /// and resolves the time zone.
    pub fn validate(&self) -> Result<TimeZone, RetentionError> {
        for (rule, count) in self.rules() {
            if count == Some(0) {
                return Err(RetentionError::ZeroCount { rule });
            }
            let days_each = match rule {
                "keep-weekly" => 7,
                "keep-monthly" => 31,
                "keep-yearly" => 366,
                "keep-last" => continue,
                _ => 1,
            };
            let max = crate::times::MAX_DAYS / days_each;
            if let Some(value) = count.filter(|c| *c > max) {
                return Err(RetentionError::TooLarge { rule, value, max });
            }
        }
        TimeZone::get(&self.timezone).map_err(|e| RetentionError::UnknownTimezone {
            name: self.timezone.clone(),
            message: e.to_string(),
        })
    }
}

/// A backup's state, as far as retention cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupState {
    Pending,
    InProgress,
    Completed,
    Failed,
}

/// What retention needs to know about one backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupInfo {
    pub id: String,
    pub created_at: Timestamp,
    pub status: BackupState,
    pub backup_type: BackupType,
    pub parent: Option<String>,
    pub source: String,
    /// Under a (legal) hold.
    pub held: bool,
    /// Object Lock retention (or the record's promised `retentionUntil`).
    pub locked_until: Option<Timestamp>,
    /// A verification of it passed.
    pub verified: bool,
}

/// Why a backup stays. A kept backup has one reason or more.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "camelCase")]
pub enum KeepReason {
    /// The policy sets no rule: everything is kept.
    NoRules,
    /// One of the `keep_last` newest completed backups.
    Last,
    /// Created within the last `days` days.
    Within { days: u32 },
    /// The newest backup of this day (`YYYY-MM-DD` in the policy's time zone).
    Daily { day: String },
    /// The newest backup of this ISO week (`YYYY-Www`).
    Weekly { week: String },
    /// The newest backup of this month (`YYYY-MM`).
    Monthly { month: String },
    /// The newest backup of this year.
    Yearly { year: String },
    /// The newest completed backup of its source (`verified`: the newest that passed a verification).
    Newest { verified: bool },
    /// Under a hold.
    Held,
    /// Its retention lock lasts until `until`.
    Locked { until: Timestamp },
    /// Pending or in progress: never touched.
    Unfinished,
    /// Failed less than the failed-backup grace period ago.
    RecentFailure { days: u32 },
    /// An ancestor of kept backup `child`, which needs it to restore.
    Parent { child: String },
}

impl KeepReason {
    /// For people: "keep-last", "daily 2026-11-23", "held", …
    pub fn describe(&self) -> String {
        match self {
            Self::NoRules => "no retention rule set".into(),
            Self::Last => "keep-last".into(),
            Self::Within { days } => format!("within {days} days"),
            Self::Daily { day } => format!("daily {day}"),
            Self::Weekly { week } => format!("weekly {week}"),
            Self::Monthly { month } => format!("monthly {month}"),
            Self::Yearly { year } => format!("yearly {year}"),
            Self::Newest { verified: true } => "newest verified backup of its source".into(),
            Self::Newest { verified: false } => "newest completed backup of its source".into(),
            Self::Held => "held".into(),
            Self::Locked { until } => format!("locked until {until}"),
            Self::Unfinished => "not finished".into(),
            Self::RecentFailure { days } => format!("failed less than {days} days ago"),
            Self::Parent { child } => format!("parent of {child}"),
        }
    }
}

/// Why a backup may go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "camelCase")]
pub enum DeleteReason {
    /// Completed, and no rule keeps it.
    NotKept,
    /// Failed more than `days` days ago.
    FailedLongAgo { days: u32 },
}

impl DeleteReason {
    pub fn describe(&self) -> String {
        match self {
            Self::NotKept => "no rule keeps it".into(),
            Self::FailedLongAgo { days } => format!("failed more than {days} days ago"),
        }
    }
}

/// A backup the plan keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Kept {
    pub id: String,
    pub source: String,
    pub created_at: Timestamp,
    pub reasons: Vec<KeepReason>,
}

/// A backup the plan deletes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Doomed {
    pub id: String,
    pub source: String,
    pub created_at: Timestamp,
    pub reason: DeleteReason,
}

/// What a policy does to a set of backups: every backup is in exactly one of
/// `keep` and `delete`, each ordered by source, then newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPlan {
    pub at: Timestamp,
    pub policy: RetentionPolicy,
    /// The policy sets no rule, so everything is kept.
    pub no_rules: bool,
    pub keep: Vec<Kept>,
    pub delete: Vec<Doomed>,
}

/// Decides, for every backup, whether `policy` keeps it at time `now`.
/// See the module documentation for the rules.
pub fn plan_retention(
    backups: &[BackupInfo],
    policy: &RetentionPolicy,
    now: Timestamp,
) -> Result<RetentionPlan, RetentionError> {
    let zone = policy.validate()?;
    let no_rules = !policy.has_rules();
    let by_source = by_source(backups);
    let mut reasons: Reasons = HashMap::new();
    for list in by_source.values() {
        let completed: Vec<&BackupInfo> = list
            .iter()
            .copied()
            .filter(|b| b.status == BackupState::Completed)
            .collect();
        keep_by_rules(&completed, policy, &zone, now, &mut reasons);
        keep_protected(list, &completed, policy, no_rules, now, &mut reasons);
    }
    keep_parents(backups, &by_source, &mut reasons);
    Ok(decide(&by_source, reasons, policy, no_rules, now))
}

/// Why each backup (by id) is kept.
type Reasons<'a> = HashMap<&'a str, Vec<KeepReason>>;

/// Sources in name order; within one, newest first (ties by id, descending).
fn by_source(backups: &[BackupInfo]) -> BTreeMap<&str, Vec<&BackupInfo>> {
    let mut by_source: BTreeMap<&str, Vec<&BackupInfo>> = BTreeMap::new();
    for backup in backups {
        by_source.entry(backup.source.as_str()).or_default().push(backup);
    }
    for list in by_source.values_mut() {
        list.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
    }
    by_source
}

/// The time `days` days before `now`.
fn days_before(now: Timestamp, days: u32) -> Timestamp {
    now - SignedDuration::from_hours(24 * i64::from(days))
}

/// The policy's rules over one source's completed backups, newest first:
/// keep-last, keep-days, then the calendar buckets in `zone`.
fn keep_by_rules<'a>(
    completed: &[&'a BackupInfo],
    policy: &RetentionPolicy,
    zone: &jiff::tz::TimeZone,
    now: Timestamp,
    reasons: &mut Reasons<'a>,
) {
    if let Some(n) = policy.keep_last {
        for backup in completed.iter().take(n as usize) {
            add(reasons, &backup.id, KeepReason::Last);
        }
    }
    if let Some(days) = policy.keep_days {
        let cutoff = days_before(now, days);
        for backup in completed.iter().filter(|b| b.created_at > cutoff) {
            add(reasons, &backup.id, KeepReason::Within { days });
        }
    }
    let buckets: [BucketRule; 4] = [
        (policy.daily, |z| z.date().to_string(), |day| KeepReason::Daily { day }),
        (
            policy.weekly,
            |z| {
                let week = z.date().iso_week_date();
                format!("{:04}-W{:02}", week.year(), week.week())
            },
            |week| KeepReason::Weekly { week },
        ),
        (
            policy.monthly,
            |z| format!("{:04}-{:02}", z.year(), z.month()),
            |month| KeepReason::Monthly { month },
        ),
        (
            policy.yearly,
            |z| format!("{:04}", z.year()),
            |year| KeepReason::Yearly { year },
        ),
    ];
    for (count, bucket_of, reason) in buckets {
        let Some(count) = count else { continue };
        let mut last: Option<String> = None;
        let mut left = count;
        for backup in completed {
            if left == 0 {
                break;
            }
            let bucket = bucket_of(&backup.created_at.to_zoned(zone.clone()));
            if last.as_ref() != Some(&bucket) {
                add(reasons, &backup.id, reason(bucket.clone()));
                last = Some(bucket);
                left -= 1;
            }
        }
    }
}

/// The protections over one source's backups (`list`, newest first): the
/// newest (verified) completed backup, holds, locks, unfinished and recently
/// failed backups, and everything when the policy has no rule.
fn keep_protected<'a>(
    list: &[&'a BackupInfo],
    completed: &[&'a BackupInfo],
    policy: &RetentionPolicy,
    no_rules: bool,
    now: Timestamp,
    reasons: &mut Reasons<'a>,
) {
    let newest_verified = completed.iter().find(|b| b.verified);
    match newest_verified {
        Some(backup) => add(reasons, &backup.id, KeepReason::Newest { verified: true }),
        None => {
            if let Some(backup) = completed.first() {
                add(reasons, &backup.id, KeepReason::Newest { verified: false });
            }
        }
    }
    let failed_cutoff = days_before(now, failed_days(policy));
    for backup in list {
        if backup.held {
            add(reasons, &backup.id, KeepReason::Held);
        }
        if let Some(until) = backup.locked_until.filter(|until| *until > now) {
            add(reasons, &backup.id, KeepReason::Locked { until });
        }
        match backup.status {
            BackupState::Pending | BackupState::InProgress => add(reasons, &backup.id, KeepReason::Unfinished),
            BackupState::Failed if backup.created_at > failed_cutoff => add(
                reasons,
                &backup.id,
                KeepReason::RecentFailure {
                    days: failed_days(policy),
                },
            ),
            _ => {}
        }
        if no_rules {
            add(reasons, &backup.id, KeepReason::NoRules);
        }
    }
}

/// Parent chains of everything kept, transitively. Newest first so that
/// each ancestor names the newest child that needs it.
fn keep_parents<'a>(
    backups: &'a [BackupInfo],
    by_source: &BTreeMap<&'a str, Vec<&'a BackupInfo>>,
    reasons: &mut Reasons<'a>,
) {
    let by_id: HashMap<&str, &BackupInfo> = backups.iter().map(|b| (b.id.as_str(), b)).collect();
    let mut work: Vec<&BackupInfo> = by_source
        .values()
        .flatten()
        .copied()
        .filter(|b| reasons.contains_key(b.id.as_str()))
        .collect();
    work.reverse();
    let mut visited: HashSet<&str> = HashSet::new();
    while let Some(child) = work.pop() {
        if !visited.insert(child.id.as_str()) {
            continue;
        }
        let Some(parent) = child.parent.as_deref().and_then(|p| by_id.get(p)) else {
            continue;
        };
        add(
            reasons,
            &parent.id,
            KeepReason::Parent {
                child: child.id.clone(),
            },
        );
        work.push(parent);
    }
}

/// Every backup kept (with its reasons, sorted) or deleted (with why).
fn decide(
    by_source: &BTreeMap<&str, Vec<&BackupInfo>>,
    mut reasons: Reasons<'_>,
    policy: &RetentionPolicy,
    no_rules: bool,
    now: Timestamp,
) -> RetentionPlan {
    let mut plan = RetentionPlan {
        at: now,
        policy: policy.clone(),
        no_rules,
        keep: Vec::new(),
        delete: Vec::new(),
    };
    let mut seen: HashSet<&str> = HashSet::new();
    for backup in by_source.values().flatten() {
        if !seen.insert(backup.id.as_str()) {
            continue; // the same id twice: decided once
        }
        match reasons.remove(backup.id.as_str()) {
            Some(mut why) => {
                why.sort();
                why.dedup();
                plan.keep.push(Kept {
                    id: backup.id.clone(),
                    source: backup.source.clone(),
                    created_at: backup.created_at,
                    reasons: why,
                });
            }
            None => plan.delete.push(Doomed {
                id: backup.id.clone(),
                source: backup.source.clone(),
                created_at: backup.created_at,
                reason: match backup.status {
                    BackupState::Failed => DeleteReason::FailedLongAgo {
                        days: failed_days(policy),
                    },
                    _ => DeleteReason::NotKept,
                },
            }),
        }
    }
    plan
}

/// A calendar rule: its count, the bucket (day, week, …) of a local time, and the reason it gives.
type BucketRule = (Option<u32>, fn(&jiff::Zoned) -> String, fn(String) -> KeepReason);

fn failed_days(policy: &RetentionPolicy) -> u32 {
    policy.keep_days.unwrap_or(FAILED_GRACE_DAYS)
}

fn add<'a>(reasons: &mut Reasons<'a>, id: &'a str, reason: KeepReason) {
    reasons.entry(id).or_default().push(reason);
}

#[cfg(test)]
mod tests;
