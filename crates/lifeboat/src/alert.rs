//! Alerts: what is wrong with the backups, told once per condition through SNS.
//!
//! Two halves:
//! - [`evaluate`] is pure (no AWS, no clock): from backup records,
//!   verifications, [`AlertRules`] and a "now" it decides which
//!   [`Condition`]s hold: `backup_failed` (a failed backup in the lookback
//!   window, not yet followed by a completed one), `backup_overdue` (the RPO:
//!   no completed backup of a source younger than its `max_age`),
//!   `verification_failed` (the newest verification of the newest completed
//!   backup failed) and `verification_stale` (no passed verification within
//!   `verification_max_age`).
//! - [`run_alerts`] keeps each condition's state in the catalog table and
//!   publishes to SNS: a condition is sent when it opens and not again while
//!   it lasts; when it clears, one "resolved" message follows.
//!
//! State items: `pk = alert#KEY`, `sk = alert` (no GSI keys, so never in
//! backup listings), with `status` (`open` | `resolved`), `openedAt`,
//! `lastSentAt`, `resolvedAt`, `resolvedSentAt` and the message sent. Opening
//! is a conditional put (absent, or resolved before), resolving a conditional
//! update (still open), so two runs at once never both open or both resolve
//! one condition. A message is marked sent only after SNS took it: a publish
//! that fails is retried by the next run rather than lost.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sns::types::MessageAttributeValue;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use crate::catalog::{
    format_time, BackupRecord, BackupStatus, Catalog, CatalogError, VerificationRecord, VerificationStatus,
};

/// SNS refuses longer subjects.
pub const SUBJECT_MAX_CHARS: usize = 100;
/// Verifications are read for this many of each source's newest completed backups.
pub const VERIFIED_BACKUPS_READ: usize = 10;
/// The tier of a source no rule names (its failed backups still alert).
pub const DEFAULT_TIER: &str = "standard";
const DEFAULT_FAILED_LOOKBACK_HOURS: f64 = 24.0;
const ALERT_SK: &str = "alert";
const ALERT_PK_PREFIX: &str = "alert#";

// ---------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------

/// What the alert function checks. Deserialized from the event:
/// `{"sources": [{"source": "s3://b/app/", "maxAgeHours": 26, "tier": "critical", "plan": "app-nightly"}],
///   "verificationMaxAgeHours": 192, "failedLookbackHours": 24}`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "RulesJson")]
pub struct AlertRules {
    pub sources: Vec<SourceRule>,
    /// A source's backups must have passed a verification this recently; `None`: not checked.
    pub verification_max_age: Option<Duration>,
    /// Failed backups this recent alert (default 24 h).
    pub failed_lookback: Duration,
}

/// One source's rule.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceRule {
    /// As backups record it (`s3://bucket/prefix/`, a directory); a trailing `/` does not matter.
    pub source: String,
    /// The plan's name, for messages.
    pub plan: Option<String>,
    /// The RPO: the newest completed backup must be younger than this.
    pub max_age: Duration,
    /// `critical`, `high`, `standard`, …: names the severity and starts the subject.
    pub tier: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RulesJson {
    #[serde(default)]
    sources: Vec<SourceRuleJson>,
    #[serde(default)]
    verification_max_age_hours: Option<f64>,
    #[serde(default)]
    failed_lookback_hours: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SourceRuleJson {
    source: String,
    #[serde(default)]
    plan: Option<String>,
    max_age_hours: f64,
    #[serde(default)]
    tier: Option<String>,
}

fn hours(value: f64, field: &str) -> Result<Duration, String> {
    if !value.is_finite() || value <= 0.0 || value > 24.0 * 366.0 * 100.0 {
        return Err(format!("{field} must be a positive number of hours, not {value}"));
    }
    Ok(Duration::seconds_f64(value * 3600.0))
}

impl TryFrom<RulesJson> for AlertRules {
    type Error = String;

    fn try_from(json: RulesJson) -> Result<Self, String> {
        let mut seen = BTreeSet::new();
        let mut sources = Vec::with_capacity(json.sources.len());
        for rule in json.sources {
            let source = rule.source.trim().to_owned();
            if source.is_empty() {
                return Err("a source rule has an empty \"source\"".to_owned());
            }
            if !seen.insert(normalize(&source).to_owned()) {
                return Err(format!("source {source} has two rules: keep one"));
            }
            sources.push(SourceRule {
                max_age: hours(rule.max_age_hours, &format!("maxAgeHours of {source}"))?,
                tier: rule
                    .tier
                    .map(|t| t.trim().to_ascii_lowercase())
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| DEFAULT_TIER.to_owned()),
                plan: rule.plan,
                source,
            });
        }
        Ok(Self {
            sources,
            verification_max_age: json
                .verification_max_age_hours
                .map(|h| hours(h, "verificationMaxAgeHours"))
                .transpose()?,
            failed_lookback: hours(
                json.failed_lookback_hours.unwrap_or(DEFAULT_FAILED_LOOKBACK_HOURS),
                "failedLookbackHours",
            )?,
        })
    }
}

/// A source as compared: without its trailing `/`.
fn normalize(source: &str) -> &str {
    source.trim_end_matches('/')
}

// ---------------------------------------------------------------------------
// Conditions
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionKind {
    BackupFailed,
    BackupOverdue,
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
    pub since: Option<OffsetDateTime>,
    pub last_good: Option<LastGood>,
    /// What is wrong, in words: `no completed backup for 30 h (RPO 26 h)`.
    pub summary: String,
    /// The error recorded with it, if any.
    pub error: Option<String>,
    pub suggested_action: String,
}

impl Condition {
    /// Stable while the condition lasts: `backup_overdue#SOURCE`,
    /// `backup_failed#BACKUPID`, `verification_failed#SOURCE`, ….
    pub fn key(&self) -> String {
        match (&self.kind, &self.backup_id) {
            (
                ConditionKind::BackupFailed | ConditionKind::SnapshotFailed | ConditionKind::SnapshotCopyFailed,
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
            "since": self.since.map(format_time),
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
pub fn describe_duration(duration: Duration) -> String {
    let minutes = duration.whole_minutes().max(0);
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

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// The conditions that hold at `now`, ordered by key. Records and
/// verifications dated after `now` are ignored (so a pinned `now` in the
/// past sees the catalog as it was); so are records no one can date.
pub fn evaluate(
    records: &[BackupRecord],
    verifications: &[VerificationRecord],
    rules: &AlertRules,
    now: OffsetDateTime,
) -> Vec<Condition> {
    let dated: Vec<(&BackupRecord, OffsetDateTime)> = records
        .iter()
        .filter_map(|r| parse_time(&r.created_at).map(|t| (r, t)))
        .filter(|(_, t)| *t <= now)
        .collect();
    let rule_for = |source: &str| rules.sources.iter().find(|r| normalize(&r.source) == normalize(source));
    // Completed backups of each source, newest first.
    let mut completed: HashMap<&str, Vec<(&BackupRecord, OffsetDateTime)>> = HashMap::new();
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
    let last_good = |source: &str| {
        completed
            .get(normalize(source))
            .and_then(|l| l.first())
            .map(|(r, _)| LastGood {
                id: r.id.clone(),
                created_at: r.created_at.clone(),
                completed_at: r.completed_at.clone(),
            })
    };

    let mut conditions = Vec::new();
    for (record, at) in &dated {
        if record.status != BackupStatus::Failed || now - *at > rules.failed_lookback {
            continue;
        }
        let superseded = completed
            .get(normalize(&record.source))
            .is_some_and(|l| l.iter().any(|(_, done)| done > at));
        if superseded {
            continue;
        }
        let rule = rule_for(&record.source);
        let tier = rule.map_or(DEFAULT_TIER, |r| r.tier.as_str()).to_owned();
        conditions.push(Condition {
            kind: ConditionKind::BackupFailed,
            resource: record.source.clone(),
            backup_id: Some(record.id.clone()),
            plan: rule.and_then(|r| r.plan.clone()),
            severity: Severity::from_tier(&tier),
            tier,
            since: record.completed_at.as_deref().and_then(parse_time).or(Some(*at)),
            last_good: last_good(&record.source),
            summary: format!("backup {} failed", record.id),
            error: record.error.clone(),
            suggested_action: format!(
                "Read the error (`lifeboat backups show {}`), fix its cause (source access, store, KMS key), then run the backup again; this clears when a later backup of the source completes.",
                record.id
            ),
        });
    }

    for rule in &rules.sources {
        let newest = completed.get(normalize(&rule.source)).and_then(|l| l.first());
        let base = |kind: ConditionKind| Condition {
            kind,
            resource: rule.source.clone(),
            backup_id: None,
            plan: rule.plan.clone(),
            tier: rule.tier.clone(),
            severity: Severity::from_tier(&rule.tier),
            since: None,
            last_good: last_good(&rule.source),
            summary: String::new(),
            error: None,
            suggested_action: String::new(),
        };
        let rpo = describe_duration(rule.max_age);
        let overdue_action = "Check the backup schedule and the latest runs (`lifeboat backups list --source SOURCE`, the function's logs), then take a backup now (`lifeboat backup files SOURCE`).".replace("SOURCE", &rule.source);
        match newest {
            None => conditions.push(Condition {
                summary: format!("no completed backup on record (RPO {rpo})"),
                suggested_action: overdue_action,
                ..base(ConditionKind::BackupOverdue)
            }),
            Some((_, at)) if now - *at > rule.max_age => conditions.push(Condition {
                since: Some(*at + rule.max_age),
                summary: format!("no completed backup for {} (RPO {rpo})", describe_duration(now - *at)),
                suggested_action: overdue_action,
                ..base(ConditionKind::BackupOverdue)
            }),
            Some(_) => {}
        }
        let Some((newest, _)) = newest else { continue };

        let dated_verifications = |id: Option<&str>| {
            let mut list: Vec<(&VerificationRecord, OffsetDateTime)> = verifications
                .iter()
                .filter(|v| id.is_none_or(|id| v.backup_id == id))
                .filter_map(|v| parse_time(&v.completed_at).map(|t| (v, t)))
                .filter(|(_, t)| *t <= now)
                .collect();
            list.sort_by_key(|entry| std::cmp::Reverse(entry.1));
            list
        };
        if let Some((latest, at)) = dated_verifications(Some(&newest.id)).first() {
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
                    ..base(ConditionKind::VerificationFailed)
                });
            }
        }

        if let Some(max_age) = rules.verification_max_age {
            let ids: BTreeSet<&str> = completed
                .get(normalize(&rule.source))
                .map(|l| l.iter().map(|(r, _)| r.id.as_str()).collect())
                .unwrap_or_default();
            let passed = dated_verifications(None)
                .into_iter()
                .find(|(v, _)| v.status == VerificationStatus::Passed && ids.contains(v.backup_id.as_str()))
                .map(|(_, t)| t);
            // Never verified: counted from the oldest completed backup, so a new source gets its grace period.
            let oldest = completed
                .get(normalize(&rule.source))
                .and_then(|l| l.last())
                .map(|(r, t)| r.completed_at.as_deref().and_then(parse_time).unwrap_or(*t));
            if let Some(reference) = passed.or(oldest) {
                if now - reference > max_age {
                    let limit = describe_duration(max_age);
                    conditions.push(Condition {
                        since: Some(reference + max_age),
                        summary: match passed {
                            Some(_) => format!(
                                "no passed verification for {} (limit {limit})",
                                describe_duration(now - reference)
                            ),
                            None => format!("no backup ever passed a verification (limit {limit})"),
                        },
                        suggested_action: format!(
                            "Check the verify function's schedule and logs, then verify the newest backup now (`lifeboat verify {}`).",
                            newest.id
                        ),
                        ..base(ConditionKind::VerificationStale)
                    });
                }
            }
        }
    }
    conditions.sort_by_key(Condition::key);
    conditions
}

// ---------------------------------------------------------------------------
// State in the catalog table
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Open,
    Resolved,
}

/// One condition's state, as stored (`pk = alert#KEY`, `sk = alert`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertRecord {
    pub key: String,
    pub condition: ConditionKind,
    pub resource: String,
    pub severity: Severity,
    pub tier: String,
    pub status: AlertStatus,
    pub opened_at: String,
    /// When the opening message was published; absent until SNS took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sent_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// When the "resolved" message was published; absent until SNS took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_sent_at: Option<String>,
    pub summary: String,
    pub subject: String,
    /// The JSON body sent when it opened.
    pub message: String,
}

impl AlertRecord {
    fn opened(condition: &Condition, at: &str) -> Self {
        let body = condition.body();
        Self {
            key: condition.key(),
            condition: condition.kind,
            resource: condition.resource.clone(),
            severity: condition.severity,
            tier: condition.tier.clone(),
            status: AlertStatus::Open,
            opened_at: at.to_owned(),
            last_sent_at: None,
            resolved_at: None,
            resolved_sent_at: None,
            summary: condition.summary.clone(),
            subject: condition.subject(),
            message: serde_json::to_string_pretty(&body).unwrap_or_else(|_| body.to_string()),
        }
    }

    /// The "resolved" message: subject and body.
    fn resolved_message(&self, resolved_at: &str) -> (String, Value) {
        let mut body = serde_json::from_str::<Value>(&self.message).unwrap_or_else(|_| json!({}));
        if let Some(map) = body.as_object_mut() {
            map.insert("status".into(), json!("resolved"));
            map.insert("openedAt".into(), json!(self.opened_at));
            map.insert("resolvedAt".into(), json!(resolved_at));
            map.remove("suggestedAction");
        }
        let subject = subject_line(&format!("[Lifeboat resolved] {}: {}", self.resource, self.summary));
        (subject, body)
    }
}

#[derive(Serialize, Deserialize)]
struct AlertItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    record: AlertRecord,
}

fn alert_pk(key: &str) -> String {
    format!("{ALERT_PK_PREFIX}{key}")
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("publishing to SNS topic {topic} failed ({message}): check that the topic exists in this region and that the function's role may sns:Publish to it; the alert stays unsent and the next run sends it")]
    Publish { topic: String, message: String },
}

/// The alert items of a catalog table (see the module's documentation).
#[derive(Clone, Debug)]
pub struct AlertState {
    client: aws_sdk_dynamodb::Client,
    table: String,
    region: String,
}

impl AlertState {
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str, region: &str) -> Self {
        Self {
            client,
            table: table.to_owned(),
            region: region.to_owned(),
        }
    }

    fn error<E, R>(&self, error: SdkError<E, R>) -> AlertError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        AlertError::Catalog(crate::catalog::dynamo_error(&self.table, &self.region, error))
    }

    fn corrupt(&self, pk: String, message: impl ToString) -> AlertError {
        AlertError::Catalog(CatalogError::Corrupt {
            table: self.table.clone(),
            pk,
            message: message.to_string(),
        })
    }

    /// Every alert item, open and resolved, by key. A scan (alert items have
    /// no index; there are few).
    pub async fn list(&self) -> Result<BTreeMap<String, AlertRecord>, AlertError> {
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :sk AND begins_with(pk, :prefix)")
            .expression_attribute_values(":sk", AttributeValue::S(ALERT_SK.into()))
            .expression_attribute_values(":prefix", AttributeValue::S(ALERT_PK_PREFIX.into()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut alerts = BTreeMap::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| self.error(e))?;
            let pk = item.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let record = serde_dynamo::from_item::<_, AlertItem>(item)
                .map_err(|e| self.corrupt(pk, e))?
                .record;
            alerts.insert(record.key.clone(), record);
        }
        Ok(alerts)
    }

    /// Opens an alert unless it is open already (someone else opened it): `false` then.
    pub async fn open(&self, record: &AlertRecord) -> Result<bool, AlertError> {
        let pk = alert_pk(&record.key);
        let item = serde_dynamo::to_item(AlertItem {
            pk: pk.clone(),
            sk: ALERT_SK.into(),
            record: record.clone(),
        })
        .map_err(|e| self.corrupt(pk, e))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #status = :resolved")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":resolved", AttributeValue::S("resolved".into()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(s)) if s.err().is_conditional_check_failed_exception() => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Sets `attribute = at` on an alert whose status is `status`; `false` if it is not.
    async fn set_if(
        &self,
        key: &str,
        status: AlertStatus,
        attribute: &str,
        at: &str,
        new_status: Option<AlertStatus>,
    ) -> Result<bool, AlertError> {
        let status_text = |s: AlertStatus| if s == AlertStatus::Open { "open" } else { "resolved" };
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(alert_pk(key)))
            .key("sk", AttributeValue::S(ALERT_SK.into()))
            .condition_expression("#status = :from")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#at", attribute)
            .expression_attribute_values(":from", AttributeValue::S(status_text(status).into()))
            .expression_attribute_values(":at", AttributeValue::S(at.to_owned()));
        request = match new_status {
            Some(to) => request
                .update_expression("SET #at = :at, #status = :to")
                .expression_attribute_values(":to", AttributeValue::S(status_text(to).into())),
            None => request.update_expression("SET #at = :at"),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(s)) if s.err().is_conditional_check_failed_exception() => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Records that an open alert's message was published.
    pub async fn mark_sent(&self, key: &str, at: &str) -> Result<bool, AlertError> {
        self.set_if(key, AlertStatus::Open, "lastSentAt", at, None).await
    }

    /// Resolves an open alert; `false` if it was not open (someone else resolved it).
    pub async fn resolve(&self, key: &str, at: &str) -> Result<bool, AlertError> {
        self.set_if(key, AlertStatus::Open, "resolvedAt", at, Some(AlertStatus::Resolved))
            .await
    }

    /// Records that a resolved alert's "resolved" message was published.
    pub async fn mark_resolved_sent(&self, key: &str, at: &str) -> Result<bool, AlertError> {
        self.set_if(key, AlertStatus::Resolved, "resolvedSentAt", at, None)
            .await
    }
}

// ---------------------------------------------------------------------------
// A run
// ---------------------------------------------------------------------------

/// What one run did. Keys are [`Condition::key`]s.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertSummary {
    /// The time the conditions were evaluated at.
    pub at: String,
    /// Conditions that began (or were first sent) in this run.
    pub opened: Vec<String>,
    /// Conditions open before this run and still holding: not sent again.
    pub still_open: Vec<String>,
    /// Conditions that cleared in this run: a "resolved" message each.
    pub resolved: Vec<String>,
    /// Messages published, the digest included.
    pub sent: u32,
    pub digest_sent: bool,
    /// Each ruled source's age against its RPO (the dashboard's RPO age metric).
    pub rpo_ages: Vec<RpoAge>,
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
pub fn rpo_ages(records: &[BackupRecord], rules: &AlertRules, now: OffsetDateTime) -> Vec<RpoAge> {
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
                age_seconds: newest.map(|t| (now - t).whole_seconds()),
                rpo_seconds: rule.max_age.whole_seconds(),
            }
        })
        .collect()
}

/// Where alerts go.
#[derive(Clone, Debug)]
pub struct AlertTopic {
    pub client: aws_sdk_sns::Client,
    pub topic_arn: String,
}

impl AlertTopic {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: &str) -> Self {
        Self {
            client,
            topic_arn: topic_arn.to_owned(),
        }
    }

    /// Publishes one message: `Subject` (cut to 100 characters), the body
    /// as pretty JSON, and the message attributes `condition` and `severity`
    /// for subscription filter policies.
    pub async fn publish(
        &self,
        subject: &str,
        body: &Value,
        condition: &str,
        severity: &str,
    ) -> Result<(), AlertError> {
        let failed = |message: String| AlertError::Publish {
            topic: self.topic_arn.clone(),
            message,
        };
        let attribute = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| failed(e.to_string()))
        };
        let text = serde_json::to_string_pretty(body).unwrap_or_else(|_| body.to_string());
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject_line(subject))
            .message(text)
            .message_attributes("condition", attribute(condition)?)
            .message_attributes("severity", attribute(severity)?)
            .send()
            .await
            .map_err(|e| failed(aws_sdk_sns::error::DisplayErrorContext(&e).to_string()))?;
        Ok(())
    }
}

/// The records [`evaluate`] needs for the rules: the newest completed
/// backups' verifications ([`VERIFIED_BACKUPS_READ`] backups per source,
/// only the newest one unless verification age is checked).
async fn read_verifications(
    catalog: &Catalog,
    records: &[BackupRecord],
    rules: &AlertRules,
) -> Result<Vec<VerificationRecord>, CatalogError> {
    let per_source = if rules.verification_max_age.is_some() {
        VERIFIED_BACKUPS_READ
    } else {
        1
    };
    let mut verifications = Vec::new();
    for rule in &rules.sources {
        // `records` is newest first (Catalog::list).
        let ids = records
            .iter()
            .filter(|r| r.status == BackupStatus::Completed && normalize(&r.source) == normalize(&rule.source))
            .take(per_source)
            .map(|r| r.id.clone());
        for id in ids {
            verifications.extend(catalog.verifications(&id, Some(VERIFIED_BACKUPS_READ as i32)).await?);
        }
    }
    Ok(verifications)
}

/// One alert run at `now`: evaluates the rules against the catalog, opens
/// and sends each new condition, resolves (and sends) each one that
/// cleared, and with `digest` publishes one summary of everything open.
pub async fn run_alerts(
    catalog: &Catalog,
    topic: &AlertTopic,
    rules: &AlertRules,
    now: OffsetDateTime,
    digest: bool,
) -> Result<AlertSummary, AlertError> {
    run_alerts_with(catalog, topic, rules, None, now, digest).await
}

/// [`run_alerts`], with the snapshot conditions evaluated by the caller
/// (`crate::snapshot::alerts`): `None` when snapshots were not
/// evaluated, so their open alerts are neither resolved nor sent again.
pub async fn run_alerts_with(
    catalog: &Catalog,
    topic: &AlertTopic,
    rules: &AlertRules,
    snapshot_conditions: Option<Vec<Condition>>,
    now: OffsetDateTime,
    digest: bool,
) -> Result<AlertSummary, AlertError> {
    let records = catalog.list(None).await?;
    let verifications = read_verifications(catalog, &records, rules).await?;
    let snapshots_evaluated = snapshot_conditions.is_some();
    let mut conditions = evaluate(&records, &verifications, rules, now);
    conditions.extend(snapshot_conditions.unwrap_or_default());
    conditions.sort_by_key(Condition::key);
    let state = catalog.alert_state();
    let known = state.list().await?;
    let at = format_time(now);
    let mut summary = AlertSummary {
        at: at.clone(),
        rpo_ages: rpo_ages(&records, rules, now),
        ..AlertSummary::default()
    };

    let mut current = BTreeSet::new();
    for condition in &conditions {
        let key = condition.key();
        current.insert(key.clone());
        let record = match known.get(&key) {
            Some(open) if open.status == AlertStatus::Open => {
                if open.last_sent_at.is_some() {
                    summary.still_open.push(key);
                    continue;
                }
                // Opened by a run whose publish failed: send it now.
                open.clone()
            }
            _ => {
                let record = AlertRecord::opened(condition, &at);
                if !state.open(&record).await? {
                    // Another run opened it meanwhile; that run sends it.
                    summary.still_open.push(key);
                    continue;
                }
                record
            }
        };
        let body = serde_json::from_str::<Value>(&record.message).unwrap_or_else(|_| condition.body());
        topic
            .publish(
                &record.subject,
                &body,
                record.condition.as_str(),
                record.severity.as_str(),
            )
            .await?;
        state.mark_sent(&key, &at).await?;
        tracing::info!(key = %key, severity = record.severity.as_str(), "alert opened and sent");
        summary.sent += 1;
        summary.opened.push(key);
    }

    for (key, record) in &known {
        if current.contains(key) || (record.condition.is_snapshot() && !snapshots_evaluated) {
            continue;
        }
        let resolved_at = match record.status {
            AlertStatus::Open => {
                if !state.resolve(key, &at).await? {
                    continue;
                }
                at.clone()
            }
            // Resolved by a run whose publish failed: send it now.
            AlertStatus::Resolved if record.resolved_sent_at.is_none() => {
                record.resolved_at.clone().unwrap_or_else(|| at.clone())
            }
            AlertStatus::Resolved => continue,
        };
        let (subject, body) = record.resolved_message(&resolved_at);
        topic
            .publish(&subject, &body, record.condition.as_str(), record.severity.as_str())
            .await?;
        state.mark_resolved_sent(key, &at).await?;
        tracing::info!(key = %key, "alert resolved and sent");
        summary.sent += 1;
        summary.resolved.push(key.clone());
    }

    if digest {
        let (subject, body, severity) = digest_message(&conditions, &at);
        topic.publish(&subject, &body, "digest", &severity).await?;
        summary.sent += 1;
        summary.digest_sent = true;
    }
    Ok(summary)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::VerificationType;
    use crate::format::BackupType;

    const NOW: &str = "2026-11-23T12:00:00Z";

    fn at(hours_ago: f64) -> String {
        let now = parse_time(NOW).unwrap();
        format_time(now - Duration::seconds_f64(hours_ago * 3600.0))
    }

    /// A record from a one-line spec: `"ID SOURCE STATUS HOURS_AGO"`.
    fn record(spec: &str) -> BackupRecord {
        let parts: Vec<&str> = spec.split_whitespace().collect();
        let status = match parts[2] {
            "completed" => BackupStatus::Completed,
            "failed" => BackupStatus::Failed,
            "deleted" => BackupStatus::Deleted,
            "running" => BackupStatus::InProgress,
            other => panic!("status {other}"),
        };
        let created = at(parts[3].parse().unwrap());
        BackupRecord {
            id: parts[0].into(),
            backup_type: BackupType::Full,
            status,
            source: parts[1].into(),
            size: 1,
            compressed_size: 1,
            entry_count: 1,
            changed_count: 1,
            created_at: created.clone(),
            completed_at: Some(created),
            retention_until: None,
            checksum: None,
            storage_location: "s3://store/manifests/x".into(),
            parent_backup: None,
            kms_key_id: "k".into(),
            error: (status == BackupStatus::Failed).then(|| "NoSuchBucket".into()),
            engine: None,
            server_version: None,
            database: None,
        }
    }

    /// A verification from `"BACKUPID passed|failed HOURS_AGO"`.
    fn verification(spec: &str) -> VerificationRecord {
        let parts: Vec<&str> = spec.split_whitespace().collect();
        VerificationRecord {
            backup_id: parts[0].into(),
            verification_type: VerificationType::Quick,
            status: if parts[1] == "passed" {
                VerificationStatus::Passed
            } else {
                VerificationStatus::Failed
            },
            started_at: at(parts[2].parse().unwrap()),
            completed_at: at(parts[2].parse().unwrap()),
            checksum_valid: true,
            restore_test_passed: None,
            error: None,
        }
    }

    fn rules() -> AlertRules {
        serde_json::from_value(json!({
            "sources": [
                {"source": "s3://b/a", "maxAgeHours": 26, "tier": "critical"},
                {"source": "s3://b/c/", "maxAgeHours": 2, "tier": "standard", "plan": "c-hourly"}
            ],
            "verificationMaxAgeHours": 192,
            "failedLookbackHours": 24
        }))
        .unwrap()
    }

    /// The keys of the conditions that hold for these records and verifications.
    fn keys(records: &[String], verifications: &[String]) -> Vec<String> {
        let records: Vec<BackupRecord> = records.iter().map(|s| record(s)).collect();
        let verifications: Vec<VerificationRecord> = verifications.iter().map(|s| verification(s)).collect();
        evaluate(&records, &verifications, &rules(), parse_time(NOW).unwrap())
            .iter()
            .map(Condition::key)
            .collect()
    }

    /// One case, `"NAME: RECORDS | VERIFICATIONS | EXPECTED KEYS"`, each list
    /// comma-separated. `A` and `C` stand for a healthy source (backed up 3 h
    /// and 1 h ago), `VA` and `VC` for their passed verifications.
    fn check(case: &str) {
        let (name, rest) = case.split_once(": ").unwrap();
        let expand = |item: &str| match item {
            "A" => "a1 s3://b/a/ completed 3".to_owned(),
            "C" => "c1 s3://b/c/ completed 1".to_owned(),
            "VA" => "a1 passed 2".to_owned(),
            "VC" => "c1 passed 0.5".to_owned(),
            other => other.to_owned(),
        };
        let lists: Vec<Vec<String>> = rest
            .split('|')
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(expand)
                    .collect()
            })
            .collect();
        assert_eq!(keys(&lists[0], &lists[1]), lists[2], "case {name:?}");
    }

    #[test]
    fn conditions_hold_exactly_when_they_should() {
        for case in [
            "healthy: A, C | VA, VC |",
            "nothing on record: | | backup_overdue#s3://b/a, backup_overdue#s3://b/c/",
            "a is 30 h old: a1 s3://b/a/ completed 30, C | a1 passed 29, VC | backup_overdue#s3://b/a",
            "a is 25 h old: a1 s3://b/a/ completed 25, C | a1 passed 24, VC |",
            "deleted backups do not count: a1 s3://b/a/ deleted 3, C | VC | backup_overdue#s3://b/a",
            "unfinished ones neither: a2 s3://b/a/ running 1, a1 s3://b/a/ completed 27, C | VA, VC | backup_overdue#s3://b/a",
            "records after now are not seen: a1 s3://b/a/ completed 30, a2 s3://b/a/ completed -1, C | a1 passed 29, VC | backup_overdue#s3://b/a",
            "failed, recent: A, C, a2 s3://b/a/ failed 1 | VA, VC | backup_failed#a2",
            "failed, then completed: a2 s3://b/a/ failed 5, A, C | VA, VC |",
            "failed, before the lookback: A, C, a2 s3://b/a/ failed 25 | VA, VC |",
            "failed, of a source no rule names: A, C, x1 s3://other/ failed 2 | VA, VC | backup_failed#x1",
            "two failures, two conditions: A, C, x1 s3://o/ failed 2, x2 s3://o/ failed 1 | VA, VC | backup_failed#x1, backup_failed#x2",
            "newest verification failed: A, C | VA, a1 failed 1, VC | verification_failed#s3://b/a",
            "failed, then passed: A, C | a1 failed 2, a1 passed 1, VC |",
            "an older backup's failed verification: A, a0 s3://b/a/ completed 20, C | a0 failed 10, VA, VC |",
            "last pass 200 h ago: A, a0 s3://b/a/ completed 300, C | a0 passed 200, VC | verification_stale#s3://b/a",
            "last pass 100 h ago: A, a0 s3://b/a/ completed 300, C | a0 passed 100, VC |",
            "never verified, backups new: A, C | |",
            "never verified for 300 h: A, a0 s3://b/a/ completed 300, C | VC | verification_stale#s3://b/a",
        ] {
            check(case);
        }
    }

    #[test]
    fn messages_say_what_where_since_when_and_what_to_do() {
        let records = [record("a1 s3://b/a/ completed 30"), record("x1 s3://other/ failed 2")];
        let conditions = evaluate(&records, &[], &rules(), parse_time(NOW).unwrap());
        let overdue = conditions
            .iter()
            .find(|c| c.kind == ConditionKind::BackupOverdue && c.resource == "s3://b/a")
            .unwrap();
        assert_eq!(
            overdue.subject(),
            "[Lifeboat critical] s3://b/a: no completed backup for 30 h (RPO 26 h)"
        );
        assert_eq!(overdue.severity, Severity::Critical);
        let body = overdue.body();
        assert_eq!(body["condition"], "backup_overdue");
        assert_eq!(body["since"], at(4.0).as_str());
        assert_eq!(body["lastGoodBackup"]["id"], "a1");
        assert_eq!(body["tier"], "critical");
        assert!(body["suggestedAction"]
            .as_str()
            .unwrap()
            .contains("lifeboat backup files s3://b/a"));

        let failed = conditions
            .iter()
            .find(|c| c.kind == ConditionKind::BackupFailed)
            .unwrap();
        assert_eq!(failed.subject(), "[Lifeboat standard] s3://other/: backup x1 failed");
        assert_eq!(failed.severity, Severity::Warning);
        assert_eq!(failed.body()["error"], "NoSuchBucket");
        assert_eq!(failed.body()["lastGoodBackup"], Value::Null);

        let never = conditions.iter().find(|c| c.resource == "s3://b/c/").unwrap();
        assert_eq!(never.summary, "no completed backup on record (RPO 2 h)");
        assert_eq!(never.body()["plan"], "c-hourly");
        assert_eq!(never.since, None);
    }

    #[test]
    fn subjects_fit_sns() {
        let long = format!("[Lifeboat critical] s3://{}/: x", "b".repeat(200));
        let subject = subject_line(&long);
        assert_eq!(subject.len(), SUBJECT_MAX_CHARS);
        assert!(subject.ends_with("..."));
        assert_eq!(subject_line("s3://b/é\nx"), "s3://b/??x");
    }

    #[test]
    fn durations_read_plainly() {
        for (minutes, text) in [
            (45, "45 min"),
            (60, "1 h"),
            (30 * 60 + 5, "30 h"),
            (192 * 60, "8 d"),
            (50 * 60, "2 d 2 h"),
        ] {
            assert_eq!(describe_duration(Duration::minutes(minutes)), text);
        }
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        let cases = [
            (
                json!({"sources": [{"source": "s3://a", "maxAgeHours": 0}]}),
                "maxAgeHours of s3://a must be a positive",
            ),
            (
                json!({"sources": [{"source": "s3://a", "maxAgeHours": 1}, {"source": "s3://a/", "maxAgeHours": 2}]}),
                "two rules",
            ),
            (json!({"sources": [{"source": " ", "maxAgeHours": 1}]}), "empty"),
            (
                json!({"sources": [{"source": "s3://a"}]}),
                "missing field `maxAgeHours`",
            ),
            (json!({"sources": [], "failedLookbackHours": -1}), "failedLookbackHours"),
            (json!({"source": []}), "unknown field `source`"),
        ];
        for (value, expected) in cases {
            let err = serde_json::from_value::<AlertRules>(value.clone())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{value}: {err}");
        }
        let rules: AlertRules =
            serde_json::from_value(json!({"sources": [{"source": "s3://a", "maxAgeHours": 1.5}]})).unwrap();
        assert_eq!(rules.sources[0].max_age, Duration::minutes(90));
        assert_eq!(rules.sources[0].tier, DEFAULT_TIER);
        assert_eq!(rules.failed_lookback, Duration::hours(24));
        assert_eq!(rules.verification_max_age, None);
    }

    #[test]
    fn resolved_messages_keep_the_facts_and_say_resolved() {
        let condition = &evaluate(
            &[record("a1 s3://b/a/ completed 30")],
            &[],
            &rules(),
            parse_time(NOW).unwrap(),
        )[0];
        let record = AlertRecord::opened(condition, NOW);
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(AlertItem {
            pk: alert_pk(&record.key),
            sk: ALERT_SK.into(),
            record: record.clone(),
        })
        .unwrap();
        assert_eq!(item["pk"].as_s().unwrap(), "alert#backup_overdue#s3://b/a");
        assert_eq!(item["status"].as_s().unwrap(), "open");
        assert!(item.keys().all(|k| !k.starts_with("gsi")), "{item:?}");
        let (subject, body) = record.resolved_message("2026-11-23T13:00:00.000Z");
        assert_eq!(
            subject,
            "[Lifeboat resolved] s3://b/a: no completed backup for 30 h (RPO 26 h)"
        );
        assert_eq!(body["status"], "resolved");
        assert_eq!(body["condition"], "backup_overdue");
        assert_eq!(body["resolvedAt"], "2026-11-23T13:00:00.000Z");
        let (subject, digest, severity) = digest_message(std::slice::from_ref(condition), NOW);
        assert_eq!(subject, "[Lifeboat digest] 1 open condition");
        assert_eq!(digest["open"][0]["key"], "backup_overdue#s3://b/a");
        assert_eq!(severity, "critical");
    }
}
