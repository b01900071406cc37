//! Plan schedules: EventBridge's `cron(...)` and `rate(...)` expressions,
//! parsed, described in words and evaluated to run times in an IANA time zone.
//!
//! EventBridge's forms: `cron(MIN HOUR DOM MONTH DOW YEAR)` (six fields,
//! exactly one of day-of-month and day-of-week is `?`; day-of-week counts
//! 1 = SUN … 7 = SAT) and `rate(N minute[s]|hour[s]|day[s])`. [`Cron::next_runs`]
//! evaluates numbers, names, `*`, lists, ranges, steps, `L` (day-of-month: the
//! last day; day-of-week: `5L` the last Thursday) and `#` (`2#1`: the first
//! Monday); `W` (nearest weekday) is validated but not evaluated: asking for its
//! run times is an error, never a guess.
//!
//! Daylight saving time: a local time the clocks skip runs at the same
//! distance after the jump (02:30 on a spring-forward night in Berlin runs
//! at 03:30 CEST); a local time that happens twice runs once, the first time.
//! Two local times that land on one instant run once.

use std::collections::BTreeSet;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};

/// What is wrong with a schedule expression.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("{0:?} is neither cron(MIN HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK YEAR) nor rate(N minutes|hours|days)")]
    Form(String),
    #[error("cron({0}) has {1} fields; EventBridge needs 6: minutes hours day-of-month month day-of-week year, e.g. cron(0 2 * * ? *)")]
    FieldCount(String, usize),
    #[error("cron field {field} {value:?}: {message}")]
    Field {
        field: &'static str,
        value: String,
        message: String,
    },
    #[error("cron({0}): exactly one of day-of-month and day-of-week must be `?` (e.g. cron(0 2 * * ? *) daily, cron(0 2 ? * MON *) on Mondays)")]
    Question(String),
    #[error("{0}: give a whole number of at least 1 and a unit, e.g. rate(1 day), rate(6 hours), rate(30 minutes)")]
    Rate(String),
    #[error("{pattern} is valid for EventBridge but Lifeboat does not compute its run times; use numbers, lists, ranges, steps, L or # instead")]
    NotEvaluated { pattern: String },
    #[error("a rate schedule has no fixed times: it runs every {0} from when its rule is created")]
    NoFixedTimes(String),
}

// ---------------------------------------------------------------------------
// Cron
// ---------------------------------------------------------------------------

/// A field of an EventBridge cron expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Minutes,
    Hours,
    DayOfMonth,
    Month,
    DayOfWeek,
    Year,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Field {
    fn name(self) -> &'static str {
        match self {
            Self::Minutes => "minutes",
            Self::Hours => "hours",
            Self::DayOfMonth => "day-of-month",
            Self::Month => "month",
            Self::DayOfWeek => "day-of-week",
            Self::Year => "year",
        }
    }

    fn range(self) -> (u16, u16) {
        match self {
            Self::Minutes => (0, 59),
            Self::Hours => (0, 23),
            Self::DayOfMonth => (1, 31),
            Self::Month => (1, 12),
            Self::DayOfWeek => (1, 7),
            Self::Year => (1970, 2199),
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            Self::Month => &MONTHS,
            Self::DayOfWeek => &WEEKDAYS,
            _ => &[],
        }
    }

    fn allowed(self) -> String {
        let (min, max) = self.range();
        match self {
            Self::Month => format!("{min}-{max} or JAN-DEC"),
            Self::DayOfWeek => format!("{min}-{max} (1 = SUN) or SUN-SAT"),
            _ => format!("{min}-{max}"),
        }
    }

    fn error(self, value: &str, message: impl Into<String>) -> ScheduleError {
        ScheduleError::Field {
            field: self.name(),
            value: value.to_owned(),
            message: message.into(),
        }
    }

    fn value(self, text: &str) -> Result<u16, ScheduleError> {
        let upper = text.to_ascii_uppercase();
        if let Some(i) = self.names().iter().position(|n| *n == upper) {
            return Ok(i as u16 + 1);
        }
        let (min, max) = self.range();
        match text.parse::<u16>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            Ok(n) => Err(self.error(text, format!("{n} is out of range: allowed are {}", self.allowed()))),
            Err(_) => Err(self.error(
                text,
                format!(
                    "not a value: allowed are {}, `*`, lists, ranges and steps",
                    self.allowed()
                ),
            )),
        }
    }

    /// A comma-separated list of `*`, `N`, `A-B`, with optional `/STEP`.
    fn values(self, text: &str, item: &str, into: &mut BTreeSet<u16>) -> Result<(), ScheduleError> {
        let (min, max) = self.range();
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step =
                    step.parse::<u16>().ok().filter(|s| *s >= 1).ok_or_else(|| {
                        self.error(text, format!("step {step:?} is not a whole number of at least 1"))
                    })?;
                (range, Some(step))
            }
            None => (item, None),
        };
        let (first, last) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (self.value(a)?, self.value(b)?);
            if a > b {
                return Err(self.error(
                    text,
                    format!("range {range} runs backwards: write the smaller value first"),
                ));
            }
            (a, b)
        } else {
            let a = self.value(range)?;
            (a, if step.is_some() { max } else { a })
        };
        into.extend((first..=last).step_by(usize::from(step.unwrap_or(1))));
        Ok(())
    }
}

/// Day-of-month or day-of-week.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct Days {
    /// `?`: the other day field decides.
    question: bool,
    /// Every value (`*`).
    every: bool,
    values: BTreeSet<u16>,
    /// Day-of-month `L`: the last day of the month.
    last: bool,
    /// Day-of-month `NW` / `LW` (0 for `LW`): validated, not evaluated.
    nearest_weekday: Vec<u16>,
    /// Day-of-week `NL`: the last such weekday of the month.
    last_weekday: Vec<u16>,
    /// Day-of-week `N#K`: the K-th such weekday of the month.
    nth: Vec<(u16, u16)>,
}

impl Days {
    fn parse(field: Field, text: &str) -> Result<Self, ScheduleError> {
        let mut days = Days::default();
        if text == "?" {
            days.question = true;
            return Ok(days);
        }
        days.every = text == "*";
        for item in text.split(',') {
            let upper = item.to_ascii_uppercase();
            match field {
                Field::DayOfMonth if upper == "L" => days.last = true,
                Field::DayOfMonth if upper == "LW" => days.nearest_weekday.push(0),
                Field::DayOfMonth if upper.len() > 1 && upper.ends_with('W') => {
                    days.nearest_weekday.push(field.value(&upper[..upper.len() - 1])?)
                }
                Field::DayOfWeek if upper == "L" => {
                    days.values.insert(7);
                }
                Field::DayOfWeek if upper.len() > 1 && upper.ends_with('L') => {
                    days.last_weekday.push(field.value(&upper[..upper.len() - 1])?)
                }
                Field::DayOfWeek if upper.contains('#') => {
                    let (day, k) = upper.split_once('#').unwrap_or_default();
                    let day = field.value(day)?;
                    let k = k
                        .parse::<u16>()
                        .ok()
                        .filter(|k| (1..=5).contains(k))
                        .ok_or_else(|| field.error(text, format!("in {item}, the week after # must be 1-5")))?;
                    days.nth.push((day, k));
                }
                _ if item == "?" => {
                    return Err(field.error(text, "`?` stands alone: it cannot be part of a list"));
                }
                _ => field.values(text, item, &mut days.values)?,
            }
        }
        Ok(days)
    }

    fn matches(&self, field: Field, date: Date) -> bool {
        if self.every {
            return true;
        }
        match field {
            Field::DayOfMonth => {
                let day = date.day() as u16;
                self.values.contains(&day) || (self.last && date.day() == date.days_in_month())
            }
            _ => {
                let weekday = date.weekday().to_sunday_one_offset() as u16;
                let week = (date.day() as u16 - 1) / 7 + 1;
                let last_of_its_kind = date.day() + 7 > date.days_in_month();
                self.values.contains(&weekday)
                    || (last_of_its_kind && self.last_weekday.contains(&weekday))
                    || self.nth.contains(&(weekday, week))
            }
        }
    }
}

/// A parsed, validated EventBridge cron expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    /// The six fields as written (without `cron(` and `)`).
    text: String,
    fields: Vec<String>,
    minutes: BTreeSet<u16>,
    hours: BTreeSet<u16>,
    day_of_month: Days,
    months: BTreeSet<u16>,
    day_of_week: Days,
    years: BTreeSet<u16>,
}

impl Cron {
    /// Parses the inside of `cron(...)`.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let fields: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
        if fields.len() != 6 {
            return Err(ScheduleError::FieldCount(text.to_owned(), fields.len()));
        }
        let list = |field: Field, text: &str| -> Result<BTreeSet<u16>, ScheduleError> {
            if text == "?" {
                return Err(field.error(text, "`?` is only for day-of-month or day-of-week"));
            }
            let mut set = BTreeSet::new();
            for item in text.split(',') {
                field.values(text, item, &mut set)?;
            }
            Ok(set)
        };
        let cron = Cron {
            text: fields.join(" "),
            minutes: list(Field::Minutes, &fields[0])?,
            hours: list(Field::Hours, &fields[1])?,
            day_of_month: Days::parse(Field::DayOfMonth, &fields[2])?,
            months: list(Field::Month, &fields[3])?,
            day_of_week: Days::parse(Field::DayOfWeek, &fields[4])?,
            years: list(Field::Year, &fields[5])?,
            fields,
        };
        if cron.day_of_month.question == cron.day_of_week.question {
            return Err(ScheduleError::Question(cron.text));
        }
        Ok(cron)
    }

    fn days(&self) -> (Field, &Days) {
        if self.day_of_month.question {
            (Field::DayOfWeek, &self.day_of_week)
        } else {
            (Field::DayOfMonth, &self.day_of_month)
        }
    }

    /// The next `n` run times strictly after `after`, in `zone`. Fewer when
    /// the year field ends first.
    pub fn next_runs(&self, after: Timestamp, zone: &TimeZone, n: usize) -> Result<Vec<Zoned>, ScheduleError> {
        if !self.day_of_month.nearest_weekday.is_empty() {
            return Err(ScheduleError::NotEvaluated {
                pattern: format!("day-of-month {} (W, nearest weekday)", self.fields[2]),
            });
        }
        let (day_field, days) = self.days();
        let mut out: Vec<Zoned> = Vec::new();
        let Some(&last_year) = self.years.last() else {
            return Ok(out);
        };
        let mut date = after.to_zoned(zone.clone()).date();
        // A local time on the day before can land after `after` only with odd zones; start a day early.
        date = date.yesterday().unwrap_or(date);
        while out.len() < n {
            let year = date.year() as u16;
            if year > last_year {
                break;
            }
            if !self.years.contains(&year) {
                match self.years.range(year + 1..).next() {
                    Some(&next) => match Date::new(next as i16, 1, 1) {
                        Ok(d) => date = d,
                        Err(_) => break,
                    },
                    None => break,
                }
                continue;
            }
            if !self.months.contains(&(date.month() as u16)) {
                match date.last_of_month().tomorrow() {
                    Ok(d) => date = d,
                    Err(_) => break,
                }
                continue;
            }
            if days.matches(day_field, date) {
                let mut today: Vec<Zoned> = Vec::new();
                for &hour in &self.hours {
                    for &minute in &self.minutes {
                        let local = date.at(hour as i8, minute as i8, 0, 0);
                        if let Ok(zoned) = local.to_zoned(zone.clone()) {
                            today.push(zoned);
                        }
                    }
                }
                today.sort_by_key(Zoned::timestamp);
                for zoned in today {
                    let later = out.last().is_none_or(|last| zoned.timestamp() > last.timestamp());
                    if zoned.timestamp() > after && later && out.len() < n {
                        out.push(zoned);
                    }
                }
            }
            match date.tomorrow() {
                Ok(d) => date = d,
                Err(_) => break,
            }
        }
        Ok(out)
    }

    /// In words, e.g. "every day at 02:00", "every hour at :15", "at 02:00 on MON-FRI".
    pub fn describe(&self) -> String {
        let every_minute = self.fields[0] == "*";
        let every_hour = self.fields[1] == "*";
        let time = if every_minute && every_hour {
            "every minute".to_owned()
        } else if every_hour && self.minutes.len() == 1 {
            format!("every hour at :{:02}", first(&self.minutes))
        } else if every_hour {
            format!("every hour at minutes {}", self.fields[0])
        } else if self.minutes.len() == 1 && self.hours.len() <= 6 {
            let minute = first(&self.minutes);
            let times: Vec<String> = self.hours.iter().map(|h| format!("{h:02}:{minute:02}")).collect();
            format!("at {}", times.join(", "))
        } else {
            format!("at minutes {} of hours {}", self.fields[0], self.fields[1])
        };
        let days = if self.day_of_month.question {
            match self.fields[4].as_str() {
                "*" => "every day".to_owned(),
                text => format!("on day-of-week {text}"),
            }
        } else {
            match self.fields[2].as_str() {
                "*" => "every day".to_owned(),
                "L" => "on the last day of the month".to_owned(),
                text => format!("on day {text} of the month"),
            }
        };
        let mut words = if time.starts_with("every") && days == "every day" {
            time
        } else if days == "every day" {
            format!("every day {time}")
        } else {
            format!("{time}, {days}")
        };
        if self.fields[3] != "*" {
            words.push_str(&format!(", in month {}", self.fields[3]));
        }
        if self.fields[5] != "*" {
            words.push_str(&format!(", in year {}", self.fields[5]));
        }
        words
    }
}

fn first(set: &BTreeSet<u16>) -> u16 {
    set.iter().next().copied().unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Schedules
// ---------------------------------------------------------------------------

/// `rate(N unit)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rate {
    pub every: SignedDuration,
    text: String,
}

/// A plan's schedule: EventBridge's `cron(...)` or `rate(...)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    Cron(Box<Cron>),
    Rate(Rate),
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let text = text.trim();
        if let Some(inner) = text.strip_prefix("cron(").and_then(|t| t.strip_suffix(')')) {
            return Cron::parse(inner).map(|cron| Schedule::Cron(Box::new(cron)));
        }
        let Some(inner) = text.strip_prefix("rate(").and_then(|t| t.strip_suffix(')')) else {
            return Err(ScheduleError::Form(text.to_owned()));
        };
        let bad = || ScheduleError::Rate(text.to_owned());
        let (value, unit) = inner.trim().split_once(' ').ok_or_else(bad)?;
        let value: i64 = value.parse().ok().filter(|v| *v >= 1).ok_or_else(bad)?;
        let (unit_seconds, singular) = match unit.trim() {
            "minute" | "minutes" => (60, "minute"),
            "hour" | "hours" => (3600, "hour"),
            "day" | "days" => (86_400, "day"),
            _ => return Err(bad()),
        };
        // EventBridge wants `1 day` but `2 days`.
        if (value == 1) != (unit.trim() == singular) {
            return Err(ScheduleError::Rate(format!(
                "{text}: EventBridge wants the singular for 1 and the plural otherwise ({value} {singular}{})",
                if value == 1 { "" } else { "s" }
            )));
        }
        Ok(Schedule::Rate(Rate {
            every: SignedDuration::from_secs(value * unit_seconds),
            text: inner.trim().to_owned(),
        }))
    }

    /// In words: "every day at 02:00", "every 6 hours".
    pub fn describe(&self) -> String {
        match self {
            Schedule::Cron(cron) => cron.describe(),
            Schedule::Rate(rate) => match rate.text.strip_prefix("1 ") {
                Some(unit) => format!("every {unit}"),
                None => format!("every {}", rate.text),
            },
        }
    }

    /// The next `n` runs after `after` in `zone`. A rate has no fixed times
    /// (they count from when its rule was created): an error says so.
    pub fn next_runs(&self, after: Timestamp, zone: &TimeZone, n: usize) -> Result<Vec<Zoned>, ScheduleError> {
        match self {
            Schedule::Cron(cron) => cron.next_runs(after, zone, n),
            Schedule::Rate(rate) => Err(ScheduleError::NoFixedTimes(rate.text.clone())),
        }
    }

    /// The longest time between two runs: exact for a rate; for a cron the
    /// longest gap among its next 5000 runs after `from` (evaluated in UTC,
    /// so that a daylight-saving night's 25-hour day does not count). `None`
    /// when that cannot be computed (fewer than two runs, or an unevaluated pattern).
    pub fn longest_gap(&self, from: Timestamp) -> Option<SignedDuration> {
        match self {
            Schedule::Rate(rate) => Some(rate.every),
            Schedule::Cron(cron) => {
                let runs = cron.next_runs(from, &TimeZone::UTC, 5000).ok()?;
                runs.windows(2)
                    .map(|w| w[1].timestamp().duration_since(w[0].timestamp()))
                    .max()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-11-23T12:00:00Z";

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// Runs `schedule` in `zone` after `after`, comparing with `expected` (RFC 9557 local times with offsets).
    fn runs(schedule: &str, zone: &str, after: &str, expected: &[&str]) {
        let parsed = Schedule::parse(schedule).unwrap_or_else(|e| panic!("{schedule}: {e}"));
        let zone = TimeZone::get(zone).unwrap();
        let got: Vec<String> = parsed
            .next_runs(ts(after), &zone, expected.len().max(1))
            .unwrap_or_else(|e| panic!("{schedule}: {e}"))
            .iter()
            .map(|z| z.strftime("%Y-%m-%dT%H:%M%:z").to_string())
            .collect();
        assert_eq!(got, expected, "{schedule} in {zone:?} after {after}");
    }

    #[test]
    fn cron_next_runs() {
        runs(
            "cron(0 2 * * ? *)",
            "UTC",
            NOW,
            &["2026-11-24T02:00+00:00", "2026-11-25T02:00+00:00"],
        );
        runs("cron(0 2 * * ? *)", "Europe/Berlin", NOW, &["2026-11-24T02:00+01:00"]);
        runs(
            "cron(15 * * * ? *)",
            "UTC",
            NOW,
            &["2026-11-23T12:15+00:00", "2026-11-23T13:15+00:00"],
        );
        runs("cron(0 12 * * ? *)", "UTC", NOW, &["2026-11-24T12:00+00:00"]); // strictly after
        runs(
            "cron(*/20 9 * * ? *)",
            "UTC",
            NOW,
            &[
                "2026-11-24T09:00+00:00",
                "2026-11-24T09:20+00:00",
                "2026-11-24T09:40+00:00",
            ],
        );
        runs(
            "cron(0 8-10/2 * * ? *)",
            "UTC",
            NOW,
            &["2026-11-24T08:00+00:00", "2026-11-24T10:00+00:00"],
        );
        runs(
            "cron(30 6,18 * * ? *)",
            "UTC",
            NOW,
            &["2026-11-23T18:30+00:00", "2026-11-24T06:30+00:00"],
        );
        runs(
            "cron(0 3 ? * MON-FRI *)",
            "UTC",
            "2026-11-27T12:00:00Z",
            &["2026-11-30T03:00+00:00"],
        ); // Fri → Mon
        runs("cron(0 3 ? * 1 *)", "UTC", NOW, &["2026-11-29T03:00+00:00"]); // 1 = Sunday
        runs(
            "cron(0 0 1 JAN,JUL ? *)",
            "UTC",
            NOW,
            &["2027-01-01T00:00+00:00", "2027-07-01T00:00+00:00"],
        );
        runs(
            "cron(0 0 L * ? *)",
            "UTC",
            NOW,
            &[
                "2026-11-30T00:00+00:00",
                "2026-12-31T00:00+00:00",
                "2027-01-31T00:00+00:00",
                "2027-02-28T00:00+00:00",
            ],
        );
        runs(
            "cron(0 0 31 * ? *)",
            "UTC",
            NOW,
            &[
                "2026-12-31T00:00+00:00",
                "2027-01-31T00:00+00:00",
                "2027-03-31T00:00+00:00",
            ],
        );
        runs(
            "cron(0 9 ? * 2#1 *)",
            "UTC",
            NOW,
            &["2026-12-07T09:00+00:00", "2027-01-04T09:00+00:00"],
        ); // first Monday
        runs(
            "cron(0 9 ? * 5L *)",
            "UTC",
            NOW,
            &["2026-11-26T09:00+00:00", "2026-12-31T09:00+00:00"],
        ); // last Thursday
        runs(
            "cron(0 0 1 1 ? 2028-2029)",
            "UTC",
            NOW,
            &["2028-01-01T00:00+00:00", "2029-01-01T00:00+00:00"],
        );
        runs(
            "cron(0 2 * * ? *)",
            "America/New_York",
            NOW,
            &["2026-11-24T02:00-05:00"],
        );
    }

    #[test]
    fn cron_across_daylight_saving_in_berlin() {
        // Spring forward: 2027-03-28, 02:00 CET → 03:00 CEST; 02:30 does not exist and runs at 03:30.
        runs(
            "cron(30 2 * * ? *)",
            "Europe/Berlin",
            "2027-03-27T12:00:00Z",
            &["2027-03-28T03:30+02:00", "2027-03-29T02:30+02:00"],
        );
        // Hourly: 02:00 does not exist; it lands on 03:00, which runs once.
        runs(
            "cron(0 * * * ? *)",
            "Europe/Berlin",
            "2027-03-27T23:30:00Z",
            &[
                "2027-03-28T01:00+01:00",
                "2027-03-28T03:00+02:00",
                "2027-03-28T04:00+02:00",
            ],
        );
        // Fall back: 2026-10-25, 03:00 CEST → 02:00 CET; 02:30 happens twice and runs once, the first time.
        runs(
            "cron(30 2 * * ? *)",
            "Europe/Berlin",
            "2026-10-24T12:00:00Z",
            &["2026-10-25T02:30+02:00", "2026-10-26T02:30+01:00"],
        );
        runs(
            "cron(0 * * * ? *)",
            "Europe/Berlin",
            "2026-10-24T23:30:00Z",
            &["2026-10-25T02:00+02:00", "2026-10-25T03:00+01:00"],
        );
        // A daily run keeps its local time across the change (23 hours apart in UTC).
        runs(
            "cron(0 6 * * ? *)",
            "Europe/Berlin",
            "2027-03-27T12:00:00Z",
            &["2027-03-28T06:00+02:00"],
        );
    }

    /// `schedule` fails to parse with a message containing every `needle`.
    fn bad_schedule(schedule: &str, needles: &[&str]) {
        let error = Schedule::parse(schedule).expect_err(schedule).to_string();
        for needle in needles {
            assert!(error.contains(needle), "{schedule}: {error:?} lacks {needle:?}");
        }
    }

    #[test]
    fn bad_schedules_name_the_field() {
        bad_schedule("cron(0 2 * * *)", &["5 fields", "6"]);
        bad_schedule("cron(60 2 * * ? *)", &["minutes", "60 is out of range", "0-59"]);
        bad_schedule("cron(0 24 * * ? *)", &["hours", "0-23"]);
        bad_schedule("cron(0 2 32 * ? *)", &["day-of-month", "1-31"]);
        bad_schedule("cron(0 2 * 13 ? *)", &["month", "JAN-DEC"]);
        bad_schedule("cron(0 2 ? * 8 *)", &["day-of-week", "SUN-SAT"]);
        bad_schedule("cron(0 2 ? * FUNDAY *)", &["day-of-week", "FUNDAY"]);
        bad_schedule("cron(0 2 * * ? 1969)", &["year", "1970-2199"]);
        bad_schedule("cron(0 2 * * * *)", &["exactly one", "?"]);
        bad_schedule("cron(0 2 ? * ? *)", &["exactly one"]);
        bad_schedule("cron(0 ? * * ? *)", &["hours", "only for day"]);
        bad_schedule("cron(0 5-2 * * ? *)", &["hours", "backwards"]);
        bad_schedule("cron(*/0 2 * * ? *)", &["minutes", "step"]);
        bad_schedule("cron(0 2 ? * 2#6 *)", &["day-of-week", "1-5"]);
        bad_schedule("0 2 * * ? *", &["neither cron"]);
        bad_schedule("rate(0 days)", &["at least 1"]);
        bad_schedule("rate(1 days)", &["singular"]);
        bad_schedule("rate(2 day)", &["2 days"]);
        bad_schedule("rate(1 fortnight)", &["rate(1 fortnight)"]);
    }

    #[test]
    fn unevaluated_patterns_say_so() {
        let w = Schedule::parse("cron(0 2 15W * ? *)").unwrap();
        let error = w.next_runs(ts(NOW), &TimeZone::UTC, 3).unwrap_err();
        assert!(matches!(error, ScheduleError::NotEvaluated { .. }), "{error}");
        assert!(error.to_string().contains("15W"), "{error}");
        let rate = Schedule::parse("rate(6 hours)").unwrap();
        assert!(matches!(
            rate.next_runs(ts(NOW), &TimeZone::UTC, 1),
            Err(ScheduleError::NoFixedTimes(_))
        ));
        assert_eq!(rate.longest_gap(ts(NOW)), Some(SignedDuration::from_hours(6)));
    }

    #[test]
    fn schedules_in_words_and_gaps() {
        let cases = [
            ("cron(0 2 * * ? *)", "every day at 02:00", 24),
            ("cron(0 * * * ? *)", "every hour at :00", 1),
            ("cron(0 3 ? * MON-FRI *)", "at 03:00, on day-of-week MON-FRI", 72),
            ("cron(0 0 L * ? *)", "at 00:00, on the last day of the month", 31 * 24),
            ("rate(1 day)", "every day", 24),
            ("rate(6 hours)", "every 6 hours", 6),
        ];
        for (schedule, words, hours) in cases {
            let parsed = Schedule::parse(schedule).unwrap();
            assert_eq!(parsed.describe(), words, "{schedule}");
            assert_eq!(
                parsed.longest_gap(ts(NOW)),
                Some(SignedDuration::from_hours(hours)),
                "{schedule}"
            );
        }
    }
}
