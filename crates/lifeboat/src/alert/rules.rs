//! The alert rules: which sources are watched, each with its RPO (`maxAgeHours`)
//! and tier, how recent a passed verification must be, and how far back a
//! failed backup alerts. Read from the alert event's JSON; every problem is
//! refused with its reason.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::times::SignedDuration;

/// The tier of a source no rule names (its failed backups still alert).
pub const DEFAULT_TIER: &str = "standard";
const DEFAULT_FAILED_LOOKBACK_HOURS: f64 = 24.0;
/// Longer than the claims' stale threshold (3 min by default), so a backup
/// a redelivery is about to take over does not alert first.
const DEFAULT_STUCK_AFTER_MINUTES: f64 = 10.0;

/// What the alert function checks. Deserialized from the event:
/// `{"sources": [{"source": "s3://b/app/", "maxAgeHours": 26, "tier": "critical", "plan": "app-nightly"}],
///   "verificationMaxAgeHours": 192, "failedLookbackHours": 24, "stuckAfterMinutes": 10}`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "RulesJson")]
pub struct AlertRules {
    pub sources: Vec<SourceRule>,
    /// A source's backups must have passed a verification this recently; `None`: not checked.
    pub verification_max_age: Option<SignedDuration>,
    /// Failed backups this recent alert (default 24 h).
    pub failed_lookback: SignedDuration,
    /// An unfinished backup with no heartbeat for this long alerts as
    /// `backup_stuck` (default 10 min).
    pub stuck_after: SignedDuration,
}

/// One source's rule.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceRule {
    /// As backups record it (`s3://bucket/prefix/`, a directory); a trailing `/` does not matter.
    pub source: String,
    /// The plan's name, for messages.
    pub plan: Option<String>,
    /// The RPO: the newest completed backup must be younger than this.
    pub max_age: SignedDuration,
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
    #[serde(default)]
    stuck_after_minutes: Option<f64>,
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

fn hours(value: f64, field: &str) -> Result<SignedDuration, String> {
    if !value.is_finite() || value <= 0.0 || value > 24.0 * 366.0 * 100.0 {
        return Err(format!("{field} must be a positive number of hours, not {value}"));
    }
    Ok(SignedDuration::from_secs_f64(value * 3600.0))
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
            stuck_after: hours(
                json.stuck_after_minutes.unwrap_or(DEFAULT_STUCK_AFTER_MINUTES) / 60.0,
                "stuckAfterMinutes (in hours)",
            )?,
        })
    }
}

/// A source as compared: without its trailing `/`.
pub(super) fn normalize(source: &str) -> &str {
    source.trim_end_matches('/')
}
