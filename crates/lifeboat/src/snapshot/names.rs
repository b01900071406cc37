//! The pure parts of the snapshot run (no AWS, no clock): the names and
//! tags of the snapshots Lifeboat takes, scheduled times, selection by tags,
//! RDS's statuses read, and the copy queue (backoff, which copies may start).

use jiff::{SignedDuration, Timestamp};

use super::records::CopyRecord;
use crate::plan::Plan;
use crate::rds::DbResource;
use crate::retention::RetentionPolicy;
use crate::times;

/// RDS allows this many cross-region snapshot copies in flight per
/// destination region (per account).
pub const MAX_COPIES_IN_FLIGHT: usize = 5;
/// The value of the `lifeboat:created-by` tag.
pub const CREATED_BY: &str = "lifeboat-snapshot";
pub const TAG_PLAN: &str = "lifeboat:plan";
pub const TAG_CREATED_BY: &str = "lifeboat:created-by";
pub const TAG_SCHEDULED_TIME: &str = "lifeboat:scheduled-time";
pub const TAG_RESOURCE: &str = "lifeboat:resource";
pub const TAG_RETENTION_UNTIL: &str = "lifeboat:retention-until";
/// The first wait after a throttled copy request; doubled per attempt.
pub const BACKOFF_FIRST: SignedDuration = SignedDuration::from_mins(5);
/// The longest wait between copy requests.
pub const BACKOFF_MAX: SignedDuration = SignedDuration::from_hours(6);
/// A copy RDS accepted but does not show in its region after this long failed.
pub const COPY_VANISHED_AFTER: SignedDuration = SignedDuration::from_hours(1);

/// A scheduled event's time, to the minute (EventBridge's schedules have
/// minute resolution; seconds are delivery delay).
pub fn scheduled_minute(time: Timestamp) -> Timestamp {
    let seconds = time.as_second().div_euclid(60) * 60;
    Timestamp::from_second(seconds).unwrap_or(time)
}

/// A time as the records write it: RFC 3339, UTC, seconds.
pub fn time_text(time: Timestamp) -> String {
    time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The snapshot's identifier, in its region and in every copy region:
/// `lifeboat-PLAN-RESOURCE-YYYYMMDD-HHMM` (UTC), lower case. Plan names and
/// RDS identifiers have no double or trailing hyphens, so neither has this.
pub fn snapshot_name(plan: &str, resource_id: &str, scheduled: Timestamp) -> String {
    format!(
        "lifeboat-{plan}-{}-{}",
        resource_id.to_ascii_lowercase(),
        scheduled.strftime("%Y%m%d-%H%M")
    )
}

/// The longest a plan's retention rules could keep a snapshot taken at
/// `scheduled`: the furthest of `keep_days`, `daily` days, `weekly` weeks,
/// `monthly` months (31 days) and `yearly` years (366 days). `None` when
/// only `keep_last` limits it (no time limit).
pub fn retention_until(policy: &RetentionPolicy, scheduled: Timestamp) -> Option<Timestamp> {
    let days = [
        policy.keep_days.map(i64::from),
        policy.daily.map(i64::from),
        policy.weekly.map(|w| i64::from(w) * 7),
        policy.monthly.map(|m| i64::from(m) * 31),
        policy.yearly.map(|y| i64::from(y) * 366),
    ]
    .into_iter()
    .flatten()
    .max()?;
    scheduled.checked_add(SignedDuration::from_hours(days * 24)).ok()
}

/// The tags a plan's snapshot (and its copies) carry.
pub fn snapshot_tags(plan: &Plan, resource: &str, scheduled: Timestamp) -> Vec<(String, String)> {
    let mut tags = vec![
        (TAG_PLAN.to_owned(), plan.name.clone()),
        (TAG_CREATED_BY.to_owned(), CREATED_BY.to_owned()),
        (TAG_SCHEDULED_TIME.to_owned(), time_text(scheduled)),
        (TAG_RESOURCE.to_owned(), resource.to_owned()),
    ];
    if let Some(until) = retention_until(&plan.retention, scheduled) {
        tags.push((TAG_RETENTION_UNTIL.to_owned(), time_text(until)));
    }
    tags
}

/// The resources among `listed` that a plan's tags select: every plan tag
/// present with its value. Instances in an Aurora cluster are left to the
/// cluster's snapshot. A plan without tags selects nothing by tags.
pub fn select_by_tags(plan: &Plan, listed: &[DbResource]) -> Vec<DbResource> {
    if plan.tags.is_empty() {
        return Vec::new();
    }
    listed
        .iter()
        .filter(|r| r.cluster.is_none())
        .filter(|r| plan.tags.iter().all(|(k, v)| r.tags.get(k) == Some(v)))
        .cloned()
        .collect()
}

/// Where RDS stands with a snapshot or copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Usable.
    Available,
    /// Still being made or copied.
    Working,
    /// Ended without a usable snapshot.
    Failed,
}

/// RDS's snapshot statuses, read.
pub fn phase(status: &str) -> Phase {
    match status {
        "available" => Phase::Available,
        "creating" | "pending" | "copying" | "backing-up" | "modifying" | "" => Phase::Working,
        _ => Phase::Failed,
    }
}

/// How long to wait before asking again after the `attempts`-th throttled
/// copy request: 5 minutes, doubling, at most 6 hours.
pub fn backoff(attempts: u32) -> SignedDuration {
    let doublings = attempts.saturating_sub(1).min(16);
    let delay = BACKOFF_FIRST.as_secs().saturating_mul(1i64 << doublings);
    SignedDuration::from_secs(delay.min(BACKOFF_MAX.as_secs()))
}

/// Which queued copies of one destination region may start now, given how
/// many are in flight: those not backing off, oldest scheduled time first,
/// up to the free slots. Returns (start, keep waiting).
pub fn due_copies(queued: Vec<CopyRecord>, in_flight: usize, now: Timestamp) -> (Vec<CopyRecord>, Vec<CopyRecord>) {
    let now_text = times::format(now);
    let (mut due, mut waiting): (Vec<_>, Vec<_>) = queued
        .into_iter()
        .partition(|c| c.next_attempt_at.as_deref().is_none_or(|at| at <= now_text.as_str()));
    due.sort_by(|a, b| {
        (&a.scheduled_time, &a.resource, &a.queued_at).cmp(&(&b.scheduled_time, &b.resource, &b.queued_at))
    });
    let slots = MAX_COPIES_IN_FLIGHT.saturating_sub(in_flight).min(due.len());
    waiting.extend(due.split_off(slots));
    (due, waiting)
}
