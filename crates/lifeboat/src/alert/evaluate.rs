//! Deciding what is wrong, pure (no AWS, no clock): from backup records,
//! verifications, [`AlertRules`] and a "now", the [`Condition`]s that hold
//! (`backup_failed`, `backup_overdue`, `backup_stuck`, `verification_failed`,
//! `verification_stale`), each with a stable key, its message and what to
//! do; each ruled source's age against its RPO; the daily digest.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::rules::{normalize, AlertRules, SourceRule, DEFAULT_TIER};
use crate::catalog::{BackupRecord, BackupStatus, VerificationRecord, VerificationStatus};
use crate::times::{self, SignedDuration, Time};

/// SNS refuses longer subjects.
pub const SUBJECT_MAX_CHARS: usize = 100;
/// Verifications are read for this many of each source's newest completed backups.
pub const VERIFIED_BACKUPS_READ: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionKind {
    BackupFailed,
    BackupOverdue,
    /// A pending or running backup (or dump) whose heartbeat stopped.
    BackupStuck,
    VerificationFailed,
    VerificationStale,
    /// The snapshot conditions (`crate::snapshot::alerts`).
    SnapshotFailed,
    SnapshotCopyFailed,
    SnapshotCopyMissing,
    SnapshotOverdue,
    SnapshotVerificationFailed,
    SnapshotVerificationStale,
}

impl ConditionKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::BackupFailed => "backup_failed",
            Self::BackupOverdue => "backup_overdue",
            Self::BackupStuck => "backup_stuck",
            Self::VerificationFailed => "verification_failed",
            Self::VerificationStale => "verification_stale",
            Self::SnapshotFailed => "snapshot_failed",
            Self::SnapshotCopyFailed => "snapshot_copy_failed",
            Self::SnapshotCopyMissing => "snapshot_copy_missing",
            Self::SnapshotOverdue => "snapshot_overdue",
            Self::SnapshotVerificationFailed => "snapshot_verification_failed",
            Self::SnapshotVerificationStale => "snapshot_verification_stale",
        }
    }

    /// A condition about RDS snapshots rather than file backups.
    pub fn is_snapshot(&self) -> bool {
        self.as_str().starts_with("snapshot_")
    }
}

/// How urgent, from the source's tier. SNS subscribers filter on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    High,
    Critical,
}

impl Severity {
    /// `critical` → critical; `high` or `important` → high; any other tier → warning.
    pub fn from_tier(tier: &str) -> Self {
        match tier {
            "critical" => Self::Critical,
            "high" | "important" => Self::High,
            _ => Self::Warning,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// The newest completed backup of a source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastGood {
    pub id: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
}

/// Something wrong, as long as it lasts.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub kind: ConditionKind,
    /// The source it is about.
    pub resource: String,
    /// The backup it is about (the failed one, the one whose verification
    /// failed); `None` for conditions about a source as a whole.
    pub backup_id: Option<String>,
    pub plan: Option<String>,
    pub tier: String,
    pub severity: Severity,
    /// When the condition began; `None` when nothing on record dates it
    /// (a source that never had a completed backup).
    pub since: Option<Time>,
    pub last_good: Option<LastGood>,
    /// What is wrong, in words: `no completed backup for 30 h (RPO 26 h)`.
    pub summary: String,
    /// The error recorded with it, if any.
    pub error: Option<String>,
    pub suggested_action: String,
}

impl Condition {
    /// Stable while the condition lasts: `backup_overdue#SOURCE`,
    /// `backup_failed#BACKUPID`, `backup_stuck#BACKUPID`,
    /// `verification_failed#SOURCE`, ….
    pub fn key(&self) -> String {
        match (&self.kind, &self.backup_id) {
            (
                ConditionKind::BackupFailed
                | ConditionKind::BackupStuck
                | ConditionKind::SnapshotFailed
                | ConditionKind::SnapshotCopyFailed,
                Some(id),
            ) => {
                format!("{}#{id}", self.kind.as_str())
            }
            _ => format!("{}#{}", self.kind.as_str(), self.resource),
        }
    }

    /// `[Lifeboat critical] s3://b/app/: no completed backup for 30 h (RPO 26 h)`, at most 100 characters.
    pub fn subject(&self) -> String {
        subject_line(&format!("[Lifeboat {}] {}: {}", self.tier, self.resource, self.summary))
    }

    /// The message's JSON body.
    pub fn body(&self) -> Value {
        json!({
            "condition": self.kind.as_str(),
            "status": "open",
            "key": self.key(),
            "resource": self.resource,
            "backupId": self.backup_id,
            "plan": self.plan,
            "tier": self.tier,
            "severity": self.severity.as_str(),
            "summary": self.summary,
            "since": self.since.map(times::format),
            "lastGoodBackup": self.last_good,
            "error": self.error,
            "suggestedAction": self.suggested_action,
        })
    }
}

/// An SNS subject: printable ASCII only (anything else becomes `?`), at
/// most [`SUBJECT_MAX_CHARS`], cut with `...`.
pub fn subject_line(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c == ' ' || c.is_ascii_graphic() { c } else { '?' })
        .collect();
    if clean.len() <= SUBJECT_MAX_CHARS {
        clean
    } else {
        format!("{}...", &clean[..SUBJECT_MAX_CHARS - 3])
    }
}

/// A duration as people read it: `30 h`, `45 min`, `2 d 3 h` past 48 h.
pub fn describe_duration(duration: SignedDuration) -> String {
    let minutes = duration.as_mins().max(0);
    if minutes < 60 {
        format!("{minutes} min")
    } else if minutes < 48 * 60 {
        format!("{} h", minutes / 60)
    } else {
        let hours = minutes / 60;
        match hours % 24 {
            0 => format!("{} d", hours / 24),
            rest => format!("{} d {rest} h", hours / 24),
        }
    }
}

pub(super) fn parse_time(text: &str) -> Option<Time> {
    times::parse(text).ok()
}

/// The conditions that hold at `now`, ordered by key. Records and
/// verifications dated after `now` are ignored (so a pinned `now` in the
/// past sees the catalog as it was); so are records no one can date.
pub fn evaluate(
    records: &[BackupRecord],
    verifications: &[VerificationRecord],
    rules: &AlertRules,
    now: Time,
) -> Vec<Condition> {
    let history = History::new(records, verifications, now);
    let mut conditions = history.failed_backups(rules);
    conditions.extend(history.stuck_backups(rules));
    for rule in &rules.sources {
        conditions.extend(history.overdue(rule));
        conditions.extend(history.verification_conditions(rule, rules.verification_max_age));
    }
    conditions.sort_by_key(Condition::key);
    conditions
}

/// A backup record or a verification with the time it is dated by.
type Dated<'a, T> = (&'a T, Time);

/// What [`evaluate`] reads, dated and grouped, as of `now`.
struct History<'a> {
    now: Time,
    /// Every record dated at or before `now`.
    dated: Vec<Dated<'a, BackupRecord>>,
    /// Completed backups of each (normalized) source, newest first.
    completed: HashMap<&'a str, Vec<Dated<'a, BackupRecord>>>,
    verifications: &'a [VerificationRecord],
}

impl<'a> History<'a> {
    fn new(records: &'a [BackupRecord], verifications: &'a [VerificationRecord], now: Time) -> Self {
        let dated: Vec<Dated<'a, BackupRecord>> = records
            .iter()
            .filter_map(|r| parse_time(&r.created_at).map(|t| (r, t)))
            .filter(|(_, t)| *t <= now)
            .collect();
        let mut completed: HashMap<&str, Vec<Dated<'a, BackupRecord>>> = HashMap::new();
        for (record, at) in &dated {
            if record.status == BackupStatus::Completed {
                completed
                    .entry(normalize(&record.source))
                    .or_default()
                    .push((record, *at));
            }
        }
        for list in completed.values_mut() {
            list.sort_by(|a, b| (b.1, &b.0.id).cmp(&(a.1, &a.0.id)));
        }
        Self {
            now,
            dated,
            completed,
            verifications,
        }
    }

    /// A source's completed backups, newest first.
    fn completed(&self, source: &str) -> &[Dated<'a, BackupRecord>] {
        self.completed.get(normalize(source)).map_or(&[], Vec::as_slice)
    }

    fn last_good(&self, source: &str) -> Option<LastGood> {
        self.completed(source).first().map(|(r, _)| LastGood {
            id: r.id.clone(),
            created_at: r.created_at.clone(),
            completed_at: r.completed_at.clone(),
        })
    }

    /// Verifications (of backup `id`, or all) dated at or before `now`, newest first.
    fn dated_verifications(&self, id: Option<&str>) -> Vec<Dated<'a, VerificationRecord>> {
        let mut list: Vec<Dated<'a, VerificationRecord>> = self
            .verifications
            .iter()
            .filter(|v| id.is_none_or(|id| v.backup_id == id))
            .filter_map(|v| parse_time(&v.completed_at).map(|t| (v, t)))
            .filter(|(_, t)| *t <= self.now)
            .collect();
        list.sort_by_key(|entry| std::cmp::Reverse(entry.1));
        list
    }

    /// `backup_failed`: each failed backup in the lookback window that no
    /// later completed backup of its source superseded.
    fn failed_backups(&self, rules: &AlertRules) -> Vec<Condition> {
        let mut conditions = Vec::new();
        for (record, at) in &self.dated {
            if record.status != BackupStatus::Failed || self.now.duration_since(*at) > rules.failed_lookback {
                continue;
            }
            let superseded = self.completed(&record.source).iter().any(|(_, done)| done > at);
            if superseded {
                continue;
            }
            let rule = rules
                .sources
                .iter()
                .find(|r| normalize(&r.source) == normalize(&record.source));
            let tier = rule.map_or(DEFAULT_TIER, |r| r.tier.as_str()).to_owned();
            conditions.push(Condition {
                kind: ConditionKind::BackupFailed,
                resource: record.source.clone(),
                backup_id: Some(record.id.clone()),
                plan: rule.and_then(|r| r.plan.clone()),
                severity: Severity::from_tier(&tier),
                tier,
                since: record.completed_at.as_deref().and_then(parse_time).or(Some(*at)),
                last_good: self.last_good(&record.source),
                summary: format!("backup {} failed", record.id),
                error: record.error.clone(),
                suggested_action: format!(
                    "Read the error (`lifeboat backups show {}`), fix its cause (source access, store, KMS key), then run the backup again; this clears when a later backup of the source completes.",
                    record.id
                ),
            });
        }
        conditions
    }

    /// `backup_stuck`: each pending or running backup (a dump's too) whose
    /// heartbeat is older than `rules.stuck_after`: its holder is gone, and
    /// nothing but a redelivery of its event takes it over. Clears when the
    /// record finishes (completed, or failed by a takeover).
    fn stuck_backups(&self, rules: &AlertRules) -> Vec<Condition> {
        let mut conditions = Vec::new();
        for (record, at) in &self.dated {
            if !matches!(record.status, BackupStatus::Pending | BackupStatus::InProgress) {
                continue;
            }
            let alive = parse_time(record.last_alive()).unwrap_or(*at);
            let silent = self.now.duration_since(alive);
            if silent <= rules.stuck_after {
                continue;
            }
            let rule = rules
                .sources
                .iter()
                .find(|r| normalize(&r.source) == normalize(&record.source));
            let tier = rule.map_or(DEFAULT_TIER, |r| r.tier.as_str()).to_owned();
            conditions.push(Condition {
                kind: ConditionKind::BackupStuck,
                resource: record.source.clone(),
                backup_id: Some(record.id.clone()),
                plan: rule.and_then(|r| r.plan.clone()),
                severity: Severity::from_tier(&tier),
                tier,
                since: Some(alive + rules.stuck_after),
                last_good: self.last_good(&record.source),
                summary: format!(
                    "backup {} {} with no heartbeat for {}",
                    record.id,
                    record.status.as_str(),
                    describe_duration(silent)
                ),
                error: None,
                suggested_action: format!(
                    "Its run was killed (timeout, memory) or hangs: check the function's logs around {}. A redelivery of its event takes it over; otherwise run the backup again (`lifeboat backup files {}`). This clears when the record completes or fails.",
                    record.last_alive(),
                    record.source
                ),
            });
        }
        conditions
    }

    /// A condition about `rule`'s source, its message left empty.
    fn base(&self, rule: &SourceRule, kind: ConditionKind) -> Condition {
        Condition {
            kind,
            resource: rule.source.clone(),
            backup_id: None,
            plan: rule.plan.clone(),
            tier: rule.tier.clone(),
            severity: Severity::from_tier(&rule.tier),
            since: None,
            last_good: self.last_good(&rule.source),
            summary: String::new(),
            error: None,
            suggested_action: String::new(),
        }
    }

    /// `backup_overdue`: no completed backup younger than the RPO.
    fn overdue(&self, rule: &SourceRule) -> Option<Condition> {
        let rpo = describe_duration(rule.max_age);
        let overdue_action = "Check the backup schedule and the latest runs (`lifeboat backups list --source SOURCE`, the function's logs), then take a backup now (`lifeboat backup files SOURCE`).".replace("SOURCE", &rule.source);
        match self.completed(&rule.source).first() {
            None => Some(Condition {
                summary: format!("no completed backup on record (RPO {rpo})"),
                suggested_action: overdue_action,
                ..self.base(rule, ConditionKind::BackupOverdue)
            }),
            Some((_, at)) if self.now.duration_since(*at) > rule.max_age => Some(Condition {
                since: Some(*at + rule.max_age),
                summary: format!(
                    "no completed backup for {} (RPO {rpo})",
                    describe_duration(self.now.duration_since(*at))
                ),
                suggested_action: overdue_action,
                ..self.base(rule, ConditionKind::BackupOverdue)
            }),
            Some(_) => None,
        }
    }

    /// `verification_failed` (the newest completed backup's newest
    /// verification failed) and `verification_stale` (no passed
    /// verification within `max_age`, when checked).
    fn verification_conditions(&self, rule: &SourceRule, max_age: Option<SignedDuration>) -> Vec<Condition> {
        let mut conditions = Vec::new();
        let Some((newest, _)) = self.completed(&rule.source).first() else {
            return conditions;
        };
        if let Some((latest, at)) = self.dated_verifications(Some(&newest.id)).first() {
            if latest.status == VerificationStatus::Failed {
                conditions.push(Condition {
                    backup_id: Some(newest.id.clone()),
                    since: Some(*at),
                    summary: format!("verification of backup {} failed", newest.id),
                    error: latest.error.clone(),
                    suggested_action: format!(
                        "See what is damaged (`lifeboat verify {} --deep`), take a new backup of the source now, and keep the damaged one for inspection.",
                        newest.id
                    ),
                    ..self.base(rule, ConditionKind::VerificationFailed)
                });
            }
        }
        if let Some(max_age) = max_age {
            conditions.extend(self.stale(rule, newest, max_age));
        }
        conditions
    }

    /// `verification_stale`, counted from the newest passed verification of
    /// any of the source's completed backups, or, never verified, from the
    /// oldest completed backup (so a new source gets its grace period).
    fn stale(&self, rule: &SourceRule, newest: &BackupRecord, max_age: SignedDuration) -> Option<Condition> {
        let completed = self.completed(&rule.source);
        let ids: BTreeSet<&str> = completed.iter().map(|(r, _)| r.id.as_str()).collect();
        let passed = self
            .dated_verifications(None)
            .into_iter()
            .find(|(v, _)| v.status == VerificationStatus::Passed && ids.contains(v.backup_id.as_str()))
            .map(|(_, t)| t);
        let oldest = completed
            .last()
            .map(|(r, t)| r.completed_at.as_deref().and_then(parse_time).unwrap_or(*t));
        let (since, summary) = Staleness {
            now: self.now,
            passed,
            oldest,
            max_age,
        }
        .describe("verification", "backup")?;
        Some(Condition {
            since: Some(since),
            summary,
            suggested_action: format!(
                "Check the verify function's schedule and logs, then verify the newest backup now (`lifeboat verify {}`).",
                newest.id
            ),
            ..self.base(rule, ConditionKind::VerificationStale)
        })
    }
}

/// A `…verification_stale` condition's clock: verifications are stale when
/// the newest `passed` one (or, when none ever passed, the `oldest`
/// completed backup or snapshot, so a new one gets its grace period) is
/// more than `max_age` before `now`.
pub(crate) struct Staleness {
    pub now: Time,
    pub passed: Option<Time>,
    pub oldest: Option<Time>,
    pub max_age: SignedDuration,
}

impl Staleness {
    /// `None` while fresh (or with nothing to verify); else since when it is
    /// stale and the condition's summary, e.g. `no passed snapshot
    /// verification for 3 d (limit 2 d)` for `verification` = "snapshot
    /// verification", `subject` = "snapshot".
    pub fn describe(&self, verification: &str, subject: &str) -> Option<(Time, String)> {
        let reference = self.passed.or(self.oldest)?;
        if self.now.duration_since(reference) <= self.max_age {
            return None;
        }
        let limit = describe_duration(self.max_age);
        let summary = match self.passed {
            Some(_) => format!(
                "no passed {verification} for {} (limit {limit})",
                describe_duration(self.now.duration_since(reference))
            ),
            None => format!("no {subject} ever passed a verification (limit {limit})"),
        };
        Some((reference + self.max_age, summary))
    }
}

/// How old a source's newest completed backup is, against its RPO.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RpoAge {
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// Seconds since the newest completed backup was taken; `None` if there is none.
    pub age_seconds: Option<i64>,
    pub rpo_seconds: i64,
}

/// Each ruled source's newest completed backup's age at `now`.
pub fn rpo_ages(records: &[BackupRecord], rules: &AlertRules, now: Time) -> Vec<RpoAge> {
    rules
        .sources
        .iter()
        .map(|rule| {
            let newest = records
                .iter()
                .filter(|r| r.status == BackupStatus::Completed && normalize(&r.source) == normalize(&rule.source))
                .filter_map(|r| parse_time(&r.created_at))
                .filter(|t| *t <= now)
                .max();
            RpoAge {
                source: rule.source.clone(),
                plan: rule.plan.clone(),
                age_seconds: newest.map(|t| now.duration_since(t).as_secs()),
                rpo_seconds: rule.max_age.as_secs(),
            }
        })
        .collect()
}

/// The daily digest: every condition that holds, most severe first.
pub fn digest_message(conditions: &[Condition], at: &str) -> (String, Value, String) {
    let mut sorted: Vec<&Condition> = conditions.iter().collect();
    sorted.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.key().cmp(&b.key())));
    let subject = match sorted.len() {
        0 => "[Lifeboat digest] all clear: no open conditions".to_owned(),
        1 => "[Lifeboat digest] 1 open condition".to_owned(),
        n => format!("[Lifeboat digest] {n} open conditions"),
    };
    let severity = sorted.first().map_or("info", |c| c.severity.as_str()).to_owned();
    let body = json!({
        "condition": "digest",
        "at": at,
        "openCount": sorted.len(),
        "open": sorted.iter().map(|c| c.body()).collect::<Vec<_>>(),
    });
    (subject, body, severity)
}
