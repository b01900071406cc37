//! Point-in-time recovery, the pure part: a database's restorable window,
//! whether a requested time lies in it, and the names restores get.
//!
//! RDS itself refuses a time outside the window, but only after the restore
//! was requested, and an emulator does not refuse at all; Lifeboat computes
//! the window itself so that it can refuse first and say what the window is.
//! The window is, in order of preference: the automated backups'
//! `RestoreWindow` (DescribeDBInstanceAutomatedBackups); an Aurora cluster's
//! `EarliestRestorableTime`/`LatestRestorableTime`; otherwise from the
//! instance's `LatestRestorableTime` (or, when RDS gives none, five minutes
//! before now) back by the backup retention period, never before the
//! database was created. A retention period of 0 means no automated backups,
//! so no point-in-time recovery at all.
//!
//! No AWS type and no clock here: "now" is a parameter. Waiting for the
//! restored database is `crate::rds::wait`.

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// How far behind now RDS's latest restorable time usually is; used when RDS reports none.
pub const LATEST_RESTORABLE_LAG: SignedDuration = SignedDuration::from_mins(5);

/// Longest DB instance / cluster identifier RDS accepts.
pub const MAX_IDENTIFIER_LEN: usize = 63;

/// The time a point-in-time restore goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreTime {
    /// The latest restorable time (RDS's `UseLatestRestorableTime`).
    Latest,
    At(Timestamp),
}

impl RestoreTime {
    /// `latest` or an RFC 3339 time such as `2026-11-23T10:00:00Z`.
    pub fn parse(text: &str) -> Result<Self, WindowError> {
        if text.eq_ignore_ascii_case("latest") {
            return Ok(Self::Latest);
        }
        text.parse::<Timestamp>()
            .map(Self::At)
            .map_err(|e| WindowError::BadTime {
                text: text.to_owned(),
                message: e.to_string(),
            })
    }
}

impl fmt::Display for RestoreTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latest => f.write_str("latest"),
            Self::At(at) => write!(f, "{at}"),
        }
    }
}

/// What RDS says about a database's backups, as far as the window goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowFacts {
    /// What the database is, for messages: `DB instance orders`, `Aurora cluster orders`.
    pub resource: String,
    /// `BackupRetentionPeriod` in days; 0 means no automated backups.
    pub retention_days: i32,
    /// The automated backups' `RestoreWindow` (earliest, latest), when RDS reports one.
    pub automated_backup_window: Option<(Option<Timestamp>, Option<Timestamp>)>,
    /// A cluster's `EarliestRestorableTime`.
    pub earliest_restorable: Option<Timestamp>,
    /// `LatestRestorableTime`.
    pub latest_restorable: Option<Timestamp>,
    /// `InstanceCreateTime` / `ClusterCreateTime`: nothing is restorable from before it.
    pub created_at: Option<Timestamp>,
}

/// Where a window's bounds came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowBasis {
    /// The automated backups' `RestoreWindow`.
    AutomatedBackups,
    /// The cluster's earliest and latest restorable times.
    RestorableTimes,
    /// The latest restorable time (or now − 5 min) and the retention period.
    RetentionPeriod,
}

impl WindowBasis {
    pub fn describe(self) -> &'static str {
        match self {
            Self::AutomatedBackups => "the automated backups' restore window",
            Self::RestorableTimes => "the earliest and latest restorable times",
            Self::RetentionPeriod => "the latest restorable time and the backup retention period",
        }
    }
}

/// The times a database can be restored to, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreWindow {
    pub earliest: Timestamp,
    pub latest: Timestamp,
    pub basis: WindowBasis,
}

impl RestoreWindow {
    pub fn contains(&self, at: Timestamp) -> bool {
        self.earliest <= at && at <= self.latest
    }
}

impl fmt::Display for RestoreWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", round_ms(self.earliest), round_ms(self.latest))
    }
}

/// A time shown to the millisecond, the way the catalog writes times.
fn round_ms(at: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(at.as_millisecond()).unwrap_or(at)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WindowError {
    #[error("--to-time {text:?} is neither `latest` nor an RFC 3339 time such as 2026-11-23T10:00:00Z ({message})")]
    BadTime { text: String, message: String },
    #[error("{resource} keeps no automated backups (backup retention period 0), so it cannot be restored to a point in time: restore one of its snapshots instead (`lifeboat restore snapshot`), and turn automated backups on (retention of at least 1 day) for the future")]
    NoAutomatedBackups { resource: String },
    #[error("{resource} has no restorable time yet (its window would end at {latest}, before it begins at {earliest}): wait for its first automated backup, or restore a snapshot")]
    EmptyWindow {
        resource: String,
        earliest: Timestamp,
        latest: Timestamp,
    },
    #[error("{at} is outside the restorable window of {resource}: it can be restored to any time from {window} (UTC; from {basis}); pick a time in it, or `--to-time latest`", basis = window.basis.describe())]
    OutsideWindow {
        resource: String,
        at: Timestamp,
        window: RestoreWindow,
    },
}

/// The restorable window of a database as of `now`.
pub fn restore_window(facts: &WindowFacts, now: Timestamp) -> Result<RestoreWindow, WindowError> {
    if facts.retention_days <= 0 {
        return Err(WindowError::NoAutomatedBackups {
            resource: facts.resource.clone(),
        });
    }
    let by_retention = || {
        let latest = facts.latest_restorable.unwrap_or_else(|| now - LATEST_RESTORABLE_LAG);
        let earliest = now - SignedDuration::from_hours(24 * i64::from(facts.retention_days));
        (earliest, latest)
    };
    let (earliest, latest, basis) = match (facts.automated_backup_window, facts.earliest_restorable) {
        (Some((Some(earliest), Some(latest))), _) => (earliest, latest, WindowBasis::AutomatedBackups),
        (_, Some(earliest)) => {
            let latest = facts.latest_restorable.unwrap_or_else(|| now - LATEST_RESTORABLE_LAG);
            (earliest, latest, WindowBasis::RestorableTimes)
        }
        _ => {
            let (earliest, latest) = by_retention();
            (earliest, latest, WindowBasis::RetentionPeriod)
        }
    };
    let earliest = match facts.created_at {
        Some(created) if created > earliest => created,
        _ => earliest,
    };
    if latest < earliest {
        return Err(WindowError::EmptyWindow {
            resource: facts.resource.clone(),
            earliest,
            latest,
        });
    }
    Ok(RestoreWindow {
        earliest,
        latest,
        basis,
    })
}

/// Checks `time` against `window`; returns the time the restore goes to.
pub fn check_time(resource: &str, window: &RestoreWindow, time: RestoreTime) -> Result<Timestamp, WindowError> {
    match time {
        RestoreTime::Latest => Ok(window.latest),
        RestoreTime::At(at) if window.contains(at) => Ok(at),
        RestoreTime::At(at) => Err(WindowError::OutsideWindow {
            resource: resource.to_owned(),
            at,
            window: *window,
        }),
    }
}

/// The name a restore gets when none is given: `SOURCE-pitr-YYYYMMDDHHMM`
/// (the restore time, UTC), cut to fit RDS's 63 characters.
pub fn pitr_name(source: &str, at: Timestamp) -> String {
    suffixed(source, &format!("-pitr-{}", at.strftime("%Y%m%d%H%M")))
}

/// The name a snapshot restore gets when none is given:
/// `SNAPSHOT-restored-YYYYMMDDHHMM` (now, UTC), with the snapshot identifier
/// made a valid DB identifier (automated snapshots are named `rds:...`).
pub fn snapshot_restore_name(snapshot: &str, now: Timestamp) -> String {
    suffixed(snapshot, &format!("-restored-{}", now.strftime("%Y%m%d%H%M")))
}

/// The first instance of a restored cluster: `CLUSTER-1`, cut to fit.
pub fn cluster_instance_name(cluster: &str) -> String {
    suffixed(cluster, "-1")
}

/// `base` made a valid identifier (letters, digits, single hyphens, a letter
/// first) and cut so that `base + suffix` fits.
fn suffixed(base: &str, suffix: &str) -> String {
    let mut clean = String::new();
    for c in base.chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '-'
        };
        if c == '-' && (clean.is_empty() || clean.ends_with('-')) {
            continue;
        }
        clean.push(c);
    }
    if !clean.starts_with(|c: char| c.is_ascii_alphabetic()) {
        clean.insert_str(0, "db-");
    }
    clean.truncate(MAX_IDENTIFIER_LEN.saturating_sub(suffix.len()));
    let clean = clean.trim_end_matches('-');
    format!("{clean}{suffix}")
}

/// Whether `name` is a valid DB instance or cluster identifier.
pub fn valid_identifier(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.len() <= MAX_IDENTIFIER_LEN
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("test time")
    }

    const NOW: &str = "2026-11-23T12:00:00Z";

    fn instance(retention_days: i32) -> WindowFacts {
        WindowFacts {
            resource: "DB instance orders".into(),
            retention_days,
            ..WindowFacts::default()
        }
    }

    #[test]
    fn window_from_retention_ends_at_the_latest_restorable_time() {
        let facts = WindowFacts {
            latest_restorable: Some(at("2026-11-23T11:57:00Z")),
            ..instance(7)
        };
        let window = restore_window(&facts, at(NOW)).expect("window");
        assert_eq!(window.earliest, at("2026-11-16T12:00:00Z"));
        assert_eq!(window.latest, at("2026-11-23T11:57:00Z"));
        assert_eq!(window.basis, WindowBasis::RetentionPeriod);
    }

    #[test]
    fn window_without_a_latest_restorable_time_ends_five_minutes_ago() {
        let window = restore_window(&instance(1), at(NOW)).expect("window");
        assert_eq!(window.latest, at("2026-11-23T11:55:00Z"));
        assert_eq!(window.earliest, at("2026-11-22T12:00:00Z"));
    }

    #[test]
    fn window_never_begins_before_the_database_was_created() {
        let facts = WindowFacts {
            created_at: Some(at("2026-11-23T09:00:00Z")),
            latest_restorable: Some(at("2026-11-23T11:59:00Z")),
            ..instance(35)
        };
        let window = restore_window(&facts, at(NOW)).expect("window");
        assert_eq!(window.earliest, at("2026-11-23T09:00:00Z"));
    }

    #[test]
    fn automated_backups_window_wins() {
        let facts = WindowFacts {
            automated_backup_window: Some((Some(at("2026-11-20T03:00:00Z")), Some(at("2026-11-23T11:58:00Z")))),
            latest_restorable: Some(at("2026-11-23T11:59:00Z")),
            ..instance(7)
        };
        let window = restore_window(&facts, at(NOW)).expect("window");
        assert_eq!(
            (window.earliest, window.latest, window.basis),
            (
                at("2026-11-20T03:00:00Z"),
                at("2026-11-23T11:58:00Z"),
                WindowBasis::AutomatedBackups
            )
        );
    }

    #[test]
    fn a_half_reported_automated_backups_window_falls_back() {
        let facts = WindowFacts {
            automated_backup_window: Some((None, Some(at("2026-11-23T11:58:00Z")))),
            ..instance(2)
        };
        let window = restore_window(&facts, at(NOW)).expect("window");
        assert_eq!(window.basis, WindowBasis::RetentionPeriod);
    }

    #[test]
    fn cluster_window_is_its_restorable_times() {
        let facts = WindowFacts {
            resource: "Aurora cluster orders".into(),
            retention_days: 3,
            earliest_restorable: Some(at("2026-11-21T00:00:00Z")),
            latest_restorable: Some(at("2026-11-23T11:59:30Z")),
            ..WindowFacts::default()
        };
        let window = restore_window(&facts, at(NOW)).expect("window");
        assert_eq!(
            (window.earliest, window.latest, window.basis),
            (
                at("2026-11-21T00:00:00Z"),
                at("2026-11-23T11:59:30Z"),
                WindowBasis::RestorableTimes
            )
        );
    }

    #[test]
    fn retention_zero_means_no_pitr_and_says_so() {
        let error = restore_window(&instance(0), at(NOW)).expect_err("no window");
        let text = error.to_string();
        assert!(text.contains("DB instance orders keeps no automated backups"), "{text}");
        assert!(text.contains("lifeboat restore snapshot"), "{text}");
    }

    #[test]
    fn a_database_younger_than_the_lag_has_no_window_yet() {
        let facts = WindowFacts {
            created_at: Some(at("2026-11-23T11:58:00Z")),
            ..instance(1)
        };
        assert!(matches!(
            restore_window(&facts, at(NOW)),
            Err(WindowError::EmptyWindow { .. })
        ));
    }

    #[test]
    fn times_are_checked_against_the_window_inclusively() {
        let window = RestoreWindow {
            earliest: at("2026-11-20T00:00:00Z"),
            latest: at("2026-11-23T11:55:00Z"),
            basis: WindowBasis::RetentionPeriod,
        };
        let check = |time: RestoreTime| check_time("DB instance orders", &window, time);
        assert_eq!(check(RestoreTime::Latest), Ok(window.latest));
        assert_eq!(check(RestoreTime::At(window.earliest)), Ok(window.earliest));
        assert_eq!(check(RestoreTime::At(window.latest)), Ok(window.latest));
        for outside in ["2026-11-19T23:59:59Z", "2026-11-23T11:55:01Z", "2030-01-01T00:00:00Z"] {
            let error = check(RestoreTime::At(at(outside))).expect_err(outside);
            let text = error.to_string();
            assert!(
                text.contains("from 2026-11-20T00:00:00Z to 2026-11-23T11:55:00Z"),
                "{text}"
            );
            assert!(text.contains(outside), "{text}");
        }
    }

    #[test]
    fn restore_times_parse() {
        assert_eq!(RestoreTime::parse("latest"), Ok(RestoreTime::Latest));
        assert_eq!(
            RestoreTime::parse("2026-11-23T10:00:00+01:00"),
            Ok(RestoreTime::At(at("2026-11-23T09:00:00Z")))
        );
        assert!(matches!(
            RestoreTime::parse("yesterday"),
            Err(WindowError::BadTime { .. })
        ));
    }

    #[test]
    fn default_names_are_predictable_and_valid() {
        let t = at("2026-11-23T10:07:59Z");
        for (source, expected) in [
            ("orders", "orders-pitr-202611231007"),
            (
                "a-very-long-database-identifier-that-goes-on-and-on-and-on-x",
                "a-very-long-database-identifier-that-goes-on-pitr-202611231007",
            ),
            ("trailing-cut-here-", "trailing-cut-here-pitr-202611231007"),
        ] {
            let name = pitr_name(source, t);
            assert_eq!(name, expected);
            assert!(valid_identifier(&name), "{name}");
        }
        for (snapshot, expected) in [
            (
                "rds:orders-2026-11-23-03-00",
                "rds-orders-2026-11-23-03-00-restored-202611231007",
            ),
            ("Nightly_Orders", "nightly-orders-restored-202611231007"),
            ("7days", "db-7days-restored-202611231007"),
        ] {
            let name = snapshot_restore_name(snapshot, t);
            assert_eq!(name, expected);
            assert!(valid_identifier(&name), "{name}");
        }
        assert_eq!(
            cluster_instance_name("orders-pitr-202611231007"),
            "orders-pitr-202611231007-1"
        );
        let long = "c".repeat(63);
        assert_eq!(cluster_instance_name(&long), format!("{}-1", "c".repeat(61)));
        assert!(!valid_identifier("ends-"));
        assert!(!valid_identifier("two--hyphens"));
        assert!(!valid_identifier("9lives"));
    }
}
