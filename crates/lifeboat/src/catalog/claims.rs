//! Claims that stay alive only while their holder does: a running backup or
//! dump refreshes its item's `heartbeatAt` every [`ClaimTiming::heartbeat`]
//! ([`Heartbeat`], a background task), and a claim whose heartbeat is older
//! than [`ClaimTiming::stale_after`] belongs to a holder that is gone (killed
//! by the Lambda timeout, out of memory, `kill -9`): the next delivery takes
//! it over, with a write conditional on the very heartbeat it judged stale,
//! so a holder that is merely slow is never taken over.
//!
//! Source leases (`pk = sourcelease#SOURCE`, `sk = lease`): at most one file
//! backup of a source runs at a time, and it chooses its parent only once it
//! holds the lease. Invariant: every file backup builds on the newest
//! completed backup of its source at the moment it started, so under any
//! burst of S3 events the newest backup holds every object created before
//! it started (FORMAT.md, "Continuous backups"). The lease is a conditional
//! put (absent, expired, or already ours), renewed with the heartbeat and
//! expiring [`ClaimTiming::stale_after`] after the last renewal; releasing
//! it sets its expiry in the past (no delete needed).

use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use jiff::{SignedDuration, Timestamp};

use super::{keys, Catalog, CatalogError};
use crate::times;

const HEARTBEAT_ENV: &str = "LIFEBOAT_HEARTBEAT_SECONDS";
const STALE_AFTER_ENV: &str = "LIFEBOAT_STALE_AFTER_SECONDS";
const LEASE_WAIT_ENV: &str = "LIFEBOAT_LEASE_WAIT_SECONDS";
/// An expiry before any real time: a released lease.
const RELEASED: &str = "1970-01-01T00:00:00.000Z";

/// How often claims are refreshed and when they count as abandoned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimTiming {
    /// How often a running backup refreshes its claim (default 30 s).
    pub heartbeat: Duration,
    /// A claim not refreshed for this long is taken over (default 3 min).
    pub stale_after: SignedDuration,
    /// How long a backup waits for its source's lease before it fails,
    /// retryably (default 10 min).
    pub lease_wait: Duration,
}

impl Default for ClaimTiming {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(30),
            stale_after: SignedDuration::from_mins(3),
            lease_wait: Duration::from_secs(600),
        }
    }
}

impl ClaimTiming {
    /// The defaults, each overridden by its environment variable
    /// (`LIFEBOAT_HEARTBEAT_SECONDS`, `LIFEBOAT_STALE_AFTER_SECONDS`,
    /// `LIFEBOAT_LEASE_WAIT_SECONDS`; fractions allowed). A value that is
    /// not a number in range is ignored with a warning. The stale threshold
    /// is kept at three heartbeats or more, so one slow write never makes a
    /// live claim look abandoned.
    pub fn from_env() -> Self {
        let mut timing = Self::default();
        let read = |name: &str, max: f64| -> Option<f64> {
            let text = std::env::var(name).ok()?;
            match text.trim().parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 && v <= max => Some(v),
                _ => {
                    tracing::warn!(variable = name, value = %text, "not a number of seconds in range: the default is used");
                    None
                }
            }
        };
        if let Some(v) = read(HEARTBEAT_ENV, 3600.0) {
            timing.heartbeat = Duration::from_secs_f64(v);
        }
        if let Some(v) = read(STALE_AFTER_ENV, 86_400.0) {
            timing.stale_after = SignedDuration::from_secs_f64(v);
        }
        if let Some(v) = read(LEASE_WAIT_ENV, 86_400.0) {
            timing.lease_wait = Duration::from_secs_f64(v);
        }
        timing.stale_after = timing
            .stale_after
            .max(SignedDuration::from_secs_f64(timing.heartbeat.as_secs_f64() * 3.0));
        timing
    }
}

/// Whether a claim last refreshed at `heartbeat_at` (RFC 3339) is stale at
/// `now`. An unreadable time counts as stale: a claim nobody can date cannot
/// block its event forever.
pub fn is_stale(heartbeat_at: &str, stale_after: SignedDuration, now: Timestamp) -> bool {
    match times::parse(heartbeat_at) {
        Ok(at) => now.duration_since(at) > stale_after,
        Err(_) => true,
    }
}

/// An item a [`Heartbeat`] refreshes.
#[derive(Clone, Debug)]
pub enum ClaimTarget {
    /// A backup record, while pending or in progress.
    Backup(String),
    /// A plan's dump claim (`dump#…`), while in progress.
    Dump(String),
    /// A source's lease, while this holder holds it.
    Lease { source: String, holder: String },
}

/// Refreshes its claims in the background until dropped.
pub struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    /// Starts refreshing `targets` every `catalog.claim_timing().heartbeat`.
    /// A refresh that finds the claim no longer ours (taken over) is logged
    /// and not retried: the holder's last write is conditional too, so it
    /// fails on its own.
    pub fn start(catalog: &Catalog, targets: Vec<ClaimTarget>) -> Self {
        let catalog = catalog.clone();
        let task = tokio::spawn(async move {
            let mut live = targets;
            loop {
                tokio::time::sleep(catalog.claim_timing().heartbeat).await;
                let mut kept = Vec::with_capacity(live.len());
                for target in live {
                    match catalog.refresh(&target).await {
                        Ok(true) => kept.push(target),
                        Ok(false) => {
                            tracing::warn!(claim = ?target, "claim taken over or finished: no longer refreshed")
                        }
                        Err(error) => {
                            tracing::warn!(claim = ?target, error = %error, "heartbeat not written; retried at the next beat");
                            kept.push(target);
                        }
                    }
                }
                live = kept;
            }
        });
        Self { task }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A source's lease, held by one backup.
#[derive(Debug)]
pub struct SourceLease {
    pub source: String,
    pub holder: String,
}

impl SourceLease {
    /// The heartbeat target that renews this lease.
    pub fn target(&self) -> ClaimTarget {
        ClaimTarget::Lease {
            source: self.source.clone(),
            holder: self.holder.clone(),
        }
    }
}

/// Who holds a lease another backup waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseHolder {
    pub holder: String,
    pub heartbeat_at: String,
}

impl Catalog {
    /// Writes `heartbeatAt = now` on `target` if it is still ours; `false`
    /// when it is not (finished, failed, taken over).
    pub async fn refresh(&self, target: &ClaimTarget) -> Result<bool, CatalogError> {
        let now = times::now();
        let now_text = AttributeValue::S(times::format(now));
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .expression_attribute_names("#hb", "heartbeatAt")
            .expression_attribute_values(":now", now_text);
        let request = match target {
            ClaimTarget::Backup(id) => request
                .key("pk", s(&keys::backup_pk(id)))
                .key("sk", s(keys::BACKUP_SK))
                .update_expression("SET #hb = :now")
                .condition_expression("#status IN (:pending, :running)")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":pending", s("pending"))
                .expression_attribute_values(":running", s("in_progress")),
            ClaimTarget::Dump(pk) => request
                .key("pk", s(pk))
                .key("sk", s(keys::DUMP_SK))
                .update_expression("SET #hb = :now")
                .condition_expression("#status = :running")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":running", s("in_progress")),
            ClaimTarget::Lease { source, holder } => request
                .key("pk", s(&keys::source_lease_pk(source)))
                .key("sk", s(keys::SOURCE_LEASE_SK))
                .update_expression("SET #hb = :now, expiresAt = :expires")
                .condition_expression("holder = :holder")
                .expression_attribute_values(":holder", s(holder))
                .expression_attribute_values(":expires", s(&times::format(now + self.claims.stale_after))),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Takes `source`'s lease for `holder` if it is free (absent, released,
    /// or expired); otherwise says who holds it.
    async fn try_lease(&self, source: &str, holder: &str) -> Result<Result<(), LeaseHolder>, CatalogError> {
        let now = times::now();
        let now_text = times::format(now);
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let pk = keys::source_lease_pk(source);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&pk))
            .item("sk", s(keys::SOURCE_LEASE_SK))
            .item("source", s(source))
            .item("holder", s(holder))
            .item("heartbeatAt", s(&now_text))
            .item("expiresAt", s(&times::format(now + self.claims.stale_after)))
            .condition_expression("attribute_not_exists(pk) OR expiresAt < :now OR holder = :holder")
            .expression_attribute_values(":now", s(&now_text))
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Ok(())),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                let item = self.get_item(&pk, keys::SOURCE_LEASE_SK).await?.unwrap_or_default();
                let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                Ok(Err(LeaseHolder {
                    holder: text("holder"),
                    heartbeat_at: text("heartbeatAt"),
                }))
            }
            Err(e) => Err(self.error(e)),
        }
    }

    /// Waits up to `claim_timing().lease_wait` for `source`'s lease, polling
    /// about once a second; `Err(holder)` if another backup still holds it.
    pub async fn acquire_source_lease(&self, source: &str) -> Result<Result<SourceLease, LeaseHolder>, CatalogError> {
        let holder = format!("{}-{:016x}", times::now_text(), rand::random::<u64>());
        let deadline = tokio::time::Instant::now() + self.claims.lease_wait;
        loop {
            match self.try_lease(source, &holder).await? {
                Ok(()) => {
                    return Ok(Ok(SourceLease {
                        source: source.to_owned(),
                        holder,
                    }))
                }
                Err(other) if tokio::time::Instant::now() >= deadline => return Ok(Err(other)),
                Err(other) => {
                    tracing::debug!(source, holder = %other.holder, "source lease held by another backup: waiting");
                    let pause = Duration::from_millis(500 + rand::random::<u64>() % 500);
                    tokio::time::sleep(pause.min(self.claims.lease_wait)).await;
                }
            }
        }
    }

    /// Gives `lease` up (its expiry set in the past); a lease already taken
    /// over is left alone. A release that fails is logged: the lease
    /// expires by itself.
    pub async fn release_source_lease(&self, lease: SourceLease) {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&keys::source_lease_pk(&lease.source)))
            .key("sk", s(keys::SOURCE_LEASE_SK))
            .update_expression("SET expiresAt = :released")
            .condition_expression("holder = :holder")
            .expression_attribute_values(":released", s(RELEASED))
            .expression_attribute_values(":holder", s(&lease.holder))
            .send()
            .await;
        if let Err(error) = result {
            tracing::warn!(source = %lease.source, error = %self.error(error), "source lease not released: it expires by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_go_stale_only_after_the_threshold() {
        let now = times::now();
        let ago = |s: i64| times::format(now - SignedDuration::from_secs(s));
        let stale_after = SignedDuration::from_mins(3);
        assert!(!is_stale(&ago(10), stale_after, now));
        assert!(!is_stale(&ago(179), stale_after, now));
        assert!(is_stale(&ago(181), stale_after, now));
        assert!(is_stale("not a time", stale_after, now));
    }

    #[test]
    fn released_sorts_before_every_catalog_time() {
        assert!(RELEASED < times::format(Timestamp::UNIX_EPOCH + SignedDuration::from_secs(1)).as_str());
        assert_eq!(RELEASED.len(), times::now_text().len());
    }
}
