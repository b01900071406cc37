//! Alerts: what is wrong with the backups, told once per condition through SNS.
//!
//! Two halves:
//! - [`evaluate()`] is pure (no AWS, no clock): from backup records,
//!   verifications, [`AlertRules`] and a "now" it decides which
//!   [`Condition`]s hold: `backup_failed` (a failed backup in the lookback
//!   window, not yet followed by a completed one), `backup_overdue` (the RPO:
//!   no completed backup of a source younger than its `max_age`),
//!   `backup_stuck` (a pending or running backup, a dump's too, whose
//!   heartbeat is older than `stuck_after`: its run was killed),
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

//!
//! Submodules: [`rules`] (the rules from the event), [`mod@evaluate`] (the pure
//! conditions), [`state`] (the catalog items), [`publish`] (SNS).

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::catalog::{BackupRecord, BackupStatus, Catalog, CatalogError, VerificationRecord};
use crate::times::{self, Time};

pub mod evaluate;
pub mod publish;
pub mod rules;
pub mod state;

pub use evaluate::{
    describe_duration, digest_message, evaluate, rpo_ages, subject_line, Condition, ConditionKind, LastGood, RpoAge,
    Severity, SUBJECT_MAX_CHARS, VERIFIED_BACKUPS_READ,
};
pub use publish::AlertTopic;
pub use rules::{AlertRules, SourceRule, DEFAULT_TIER};
pub use state::{AlertRecord, AlertState, AlertStatus};

use rules::normalize;

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("publishing to SNS topic {topic} failed ({message}): check that the topic exists in this region and that the function's role may sns:Publish to it; the alert stays unsent and the next run sends it")]
    Publish { topic: String, message: String },
}

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
    now: Time,
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
    now: Time,
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
    let at = times::format(now);
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

#[cfg(test)]
mod tests;
