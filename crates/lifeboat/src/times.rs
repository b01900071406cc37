//! Times as Lifeboat stores and prints them: one time crate (`jiff`), one
//! text form.
//!
//! Every time in the catalog, a manifest, an audit record or a report is
//! RFC 3339 in UTC with milliseconds (`2026-12-07T17:55:39.123Z`), so text
//! order is time order. [`format`] writes that form; [`parse`] reads any
//! RFC 3339 time (with an offset) back. The clock is read in one place,
//! [`now`]; the pure core never calls it (it takes a "now" as a parameter).

use jiff::Timestamp;

pub use jiff::{SignedDuration, Timestamp as Time};

/// The most days a day count given by a user, a plan or an event may say
/// (retention, keep-days, a backup's retention days, GC's grace): 100 years.
/// Time arithmetic ends at the year 9999, and a larger count is a mistake
/// (a slipped digit); refused with the value and this maximum, never
/// overflowed or wrapped.
pub const MAX_DAYS: u32 = 36_500;

/// The longest duration a user or a plan may give: [`MAX_DAYS`] days.
pub const MAX_DURATION: SignedDuration = SignedDuration::from_hours(24 * MAX_DAYS as i64);

/// A day count `name` (a flag or field) says, if it is at most [`MAX_DAYS`].
pub fn check_days(name: &str, days: u64) -> Result<u32, String> {
    u32::try_from(days)
        .ok()
        .filter(|d| *d <= MAX_DAYS)
        .ok_or_else(|| format!("{name} is {days} days, more than the maximum {MAX_DAYS} (100 years)"))
}

/// The wall clock, in UTC.
pub fn now() -> Timestamp {
    Timestamp::now()
}

/// Now, as the catalog writes times.
pub fn now_text() -> String {
    format(now())
}

/// `at` as the catalog writes times: RFC 3339, UTC, milliseconds.
pub fn format(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A duration as Lifeboat's messages write it: each unit from days down to
/// nanoseconds that is not zero, largest first, with no spaces (`1d`,
/// `1h30m`, `20m`, `1.5` hours as `1h30m`, `0s`).
pub fn duration_text(duration: SignedDuration) -> String {
    if duration.is_zero() {
        return "0s".to_owned();
    }
    let seconds = duration.as_secs().unsigned_abs();
    let nanos = duration.subsec_nanos().unsigned_abs();
    let mut text = String::new();
    if duration.is_negative() {
        text.push('-');
    }
    for (value, unit) in [
        (seconds / 86_400, "d"),
        (seconds / 3_600 % 24, "h"),
        (seconds / 60 % 60, "m"),
        (seconds % 60, "s"),
        (u64::from(nanos / 1_000_000), "ms"),
        (u64::from(nanos / 1_000 % 1_000), "µs"),
        (u64::from(nanos % 1_000), "ns"),
    ] {
        if value > 0 {
            text.push_str(&format!("{value}{unit}"));
        }
    }
    text
}

/// A time the user or a stored record wrote, RFC 3339 with an offset.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not an RFC 3339 time (like 2026-12-07T17:55:39Z): {message}")]
pub struct TimeError {
    pub text: String,
    pub message: String,
}

/// Reads an RFC 3339 time (`2026-12-07T17:55:39Z`, `…+01:00`, with or
/// without fractional seconds).
pub fn parse(text: &str) -> Result<Timestamp, TimeError> {
    text.parse::<Timestamp>().map_err(|e| TimeError {
        text: text.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_writes_milliseconds_in_utc() {
        for (input, expected) in [
            ("2026-12-07T17:55:39Z", "2026-12-07T17:55:39.000Z"),
            ("2026-12-07T17:55:39.123456Z", "2026-12-07T17:55:39.123Z"),
            ("2026-12-07T18:55:39.5+01:00", "2026-12-07T17:55:39.500Z"),
        ] {
            assert_eq!(format(parse(input).unwrap()), expected, "{input}");
        }
    }

    #[test]
    fn parse_names_what_it_could_not_read() {
        let error = parse("yesterday").unwrap_err();
        assert!(
            error.to_string().contains("\"yesterday\" is not an RFC 3339 time"),
            "{error}"
        );
    }

    #[test]
    fn durations_are_written_unit_by_unit() {
        for (duration, expected) in [
            (SignedDuration::ZERO, "0s"),
            (SignedDuration::from_hours(24), "1d"),
            (SignedDuration::from_hours(1), "1h"),
            (SignedDuration::from_mins(90), "1h30m"),
            (SignedDuration::from_mins(5), "5m"),
            (SignedDuration::from_millis(1500), "1s500ms"),
            (SignedDuration::from_hours(-2), "-2h"),
        ] {
            assert_eq!(duration_text(duration), expected);
        }
    }

    #[test]
    fn day_counts_beyond_the_maximum_are_refused_with_both_numbers() {
        assert_eq!(check_days("--retention-days", 36_500), Ok(36_500));
        for days in [36_501, u64::from(u32::MAX), u64::MAX] {
            let message = check_days("--retention-days", days).unwrap_err();
            assert!(
                message.contains(&days.to_string()) && message.contains("36500"),
                "{message}"
            );
        }
        // The maximum is representable from any time before the year 9899.
        let late = parse("9899-01-01T00:00:00Z").unwrap();
        assert!(late.checked_add(MAX_DURATION).is_ok());
    }

    #[test]
    fn text_order_is_time_order() {
        let earlier = format(parse("2026-01-02T03:04:05.9Z").unwrap());
        let later = format(parse("2026-01-02T03:04:06Z").unwrap());
        assert!(earlier < later);
    }
}
