//! Backup plans: what to back up, when, where to copy it, how long to keep it.
//!
//! Pure: no AWS type, no I/O, no clock. [`check_plans`] reads a plan file's
//! text (TOML, format in README.md, "Backup plans"; a documented sample is
//! `examples/plans.toml`) and returns every plan it could validate plus
//! **every** problem it found, each naming the plan, the field and what to do.
//! [`parse_plans`] is the same for callers that need all plans or nothing.
//!
//! # Schedules
//!
//! EventBridge's forms: `cron(MIN HOUR DOM MONTH DOW YEAR)` (six fields,
//! exactly one of day-of-month and day-of-week is `?`; day-of-week counts
//! 1 = SUN … 7 = SAT) and `rate(N minute[s]|hour[s]|day[s])`, with an IANA
//! `timezone` (default UTC). [`Cron::next_runs`] evaluates numbers, names,
//! `*`, lists, ranges, steps, `L` (day-of-month: the last day; day-of-week:
//! `5L` the last Thursday) and `#` (`2#1`: the first Monday); `W` (nearest
//! weekday) is validated but not evaluated: asking for its run times is an
//! error, never a guess.
//!
//! Daylight saving time: a local time the clocks skip runs at the same
//! distance after the jump (02:30 on a spring-forward night in Berlin runs
//! at 03:30 CEST); a local time that happens twice runs once, the first time.
//! Two local times that land on one instant run once.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};
use serde::{Deserialize, Serialize};

use crate::retention::{RetentionError, RetentionPolicy};
use crate::validate::{checks_from, CheckFile, Checks};

// ---------------------------------------------------------------------------
// Problems
// ---------------------------------------------------------------------------

/// One thing wrong with a plan file: which plan (by name, or `#N` when it has
/// none), which field, and what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanProblem {
    /// The plan's name, `#N` (1-based) when it has none, or `None` for the file as a whole.
    pub plan: Option<String>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for PlanProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.plan {
            Some(plan) => write!(f, "plan {plan}, field {}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

/// Every problem of a plan file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PlanErrors(pub Vec<PlanProblem>);

impl fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the plan file has {} problem(s):", self.0.len())?;
        for problem in &self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

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

// ---------------------------------------------------------------------------
// The file
// ---------------------------------------------------------------------------

/// How much a plan matters (as in the EventChain plan).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Critical,
    Important,
    Standard,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Critical => "critical",
            Tier::Important => "important",
            Tier::Standard => "standard",
        }
    }
}

/// A resource named explicitly: an RDS DB instance or Aurora cluster ARN, or an identifier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Resource {
    DbInstance { arn: String, region: String, id: String },
    Cluster { arn: String, region: String, id: String },
    Identifier { id: String },
}

impl Resource {
    fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("arn:") {
            let parts: Vec<&str> = text.splitn(7, ':').collect();
            let ok = parts.len() == 7 && parts[2] == "rds" && !parts[3].is_empty() && !parts[6].is_empty();
            return match (ok, parts.get(5)) {
                (true, Some(&"db")) => Ok(Resource::DbInstance {
                    arn: text.to_owned(),
                    region: parts[3].to_owned(),
                    id: parts[6].to_owned(),
                }),
                (true, Some(&"cluster")) => Ok(Resource::Cluster {
                    arn: text.to_owned(),
                    region: parts[3].to_owned(),
                    id: parts[6].to_owned(),
                }),
                _ => Err(format!(
                    "{text:?} is not an RDS DB instance or Aurora cluster ARN: write arn:aws:rds:REGION:ACCOUNT:db:NAME or arn:aws:rds:REGION:ACCOUNT:cluster:NAME"
                )),
            };
        }
        let valid = text.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && text.len() <= 63
            && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if valid {
            Ok(Resource::Identifier { id: text.to_owned() })
        } else {
            Err(format!(
                "{text:?} is neither an ARN nor a DB identifier (a letter, then letters, digits and hyphens, at most 63)"
            ))
        }
    }

    pub fn describe(&self) -> &str {
        match self {
            Resource::DbInstance { arn, .. } | Resource::Cluster { arn, .. } => arn,
            Resource::Identifier { id } => id,
        }
    }
}

/// A region the plan copies its snapshots to, and the KMS key to re-encrypt them with there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyRegion {
    pub region: String,
    pub kms_key: String,
}

/// A validated plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub name: String,
    pub description: Option<String>,
    pub schedule: Schedule,
    /// The schedule as written, e.g. `cron(0 2 * * ? *)`.
    pub schedule_text: String,
    pub timezone: String,
    pub zone: TimeZone,
    pub tags: BTreeMap<String, String>,
    pub resources: Vec<Resource>,
    pub sources: Vec<String>,
    pub copy_regions: Vec<CopyRegion>,
    pub retention: RetentionPolicy,
    pub rpo: SignedDuration,
    pub tier: Tier,
    /// `[plan.restore_test]`: restore the newest snapshot of each resource
    /// this often and run SQL checks against it (`crate::snapshot::restore_tests`).
    pub restore_test: Option<RestoreTestPlan>,
}

/// A plan's scheduled restore tests: how often, on what instance, and the
/// SQL assertions (a checks file's `url` and `[[check]]` tables, inline;
/// `crate::validate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreTestPlan {
    pub checks: Checks,
    /// A resource's restore test starts when its last one finished longer ago than this.
    pub every: SignedDuration,
    /// The temporary instance's class.
    pub instance_class: String,
    /// The DB subnet group to restore into (default: the account's default VPC).
    pub subnet_group: Option<String>,
    /// VPC security groups for the temporary instance, so the checks can reach it.
    pub security_groups: Vec<String>,
    /// How long the instance may take to become available before the test fails.
    pub timeout: SignedDuration,
}

/// A restore test's default interval: weekly.
pub const RESTORE_TEST_EVERY: SignedDuration = SignedDuration::from_hours(7 * 24);
/// A restore test's default time limit for the restore.
pub const RESTORE_TEST_TIMEOUT: SignedDuration = SignedDuration::from_hours(2);
/// A restore test's default instance class.
pub const RESTORE_TEST_CLASS: &str = "db.t3.micro";

/// The URL schemes of databases a plan's `sources` may name for logical
/// dumps (`crate::dump`).
pub const DATABASE_SCHEMES: &[&str] = &[
    "postgres",
    "postgresql",
    "mysql",
    "mariadb",
    "sqlite",
    "redis",
    "duckdb",
];

/// Whether a plan source is a database URL (a logical dump) rather than an S3 location.
pub fn is_database_url(source: &str) -> bool {
    source
        .split_once("://")
        .is_some_and(|(scheme, rest)| DATABASE_SCHEMES.contains(&scheme) && !rest.is_empty())
}

/// Whether a source is a Secrets Manager secret's ARN
/// (`arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME`), whose value
/// holds a database's connection (`crate::dump::resolve_database`).
pub fn is_secret_arn(source: &str) -> bool {
    let parts: Vec<&str> = source.splitn(7, ':').collect();
    matches!(
        parts.as_slice(),
        ["arn", partition, "secretsmanager", region, account, "secret", name]
            if !partition.is_empty() && !region.is_empty() && !name.is_empty()
                && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
    )
}

impl Plan {
    /// The sources that are databases to dump, by URL or by the ARN of the
    /// secret holding their connection (the rest are S3 locations).
    pub fn database_sources(&self) -> Vec<&str> {
        self.sources
            .iter()
            .map(String::as_str)
            .filter(|s| is_database_url(s) || is_secret_arn(s))
            .collect()
    }

    /// The next `n` runs after `after`, in the plan's time zone.
    pub fn next_runs(&self, after: Timestamp, n: usize) -> Result<Vec<Zoned>, ScheduleError> {
        self.schedule.next_runs(after, &self.zone, n)
    }

    /// What `lifeboat plan check` shows.
    pub fn summary(&self, now: Timestamp) -> PlanSummary {
        let (next_runs, next_runs_note) = match self.next_runs(now, 3) {
            Ok(runs) if runs.is_empty() => (Vec::new(), Some("no run after now".to_owned())),
            Ok(runs) => (runs.iter().map(|z| z.to_string()).collect(), None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        PlanSummary {
            name: self.name.clone(),
            description: self.description.clone(),
            schedule: self.schedule_text.clone(),
            schedule_words: self.schedule.describe(),
            timezone: self.timezone.clone(),
            next_runs,
            next_runs_note,
            tags: self.tags.clone(),
            resources: self.resources.clone(),
            sources: self.sources.clone(),
            copy_regions: self.copy_regions.clone(),
            retention: self.retention.clone(),
            rpo: duration_words(self.rpo),
            rpo_seconds: self.rpo.as_secs(),
            tier: self.tier,
            restore_test: self.restore_test.as_ref().map(|t| RestoreTestSummary {
                every: duration_words(t.every),
                checks: t.checks.checks.iter().map(|c| c.name.clone()).collect(),
                instance_class: t.instance_class.clone(),
                timeout: duration_words(t.timeout),
            }),
        }
    }
}

/// One plan as `lifeboat plan check` shows it (the CLI's JSON output).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanSummary {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub schedule: String,
    pub schedule_words: String,
    pub timezone: String,
    /// RFC 9557 times in the plan's time zone, e.g. `2026-11-24T02:00:00+01:00[Europe/Berlin]`.
    pub next_runs: Vec<String>,
    /// Why `next_runs` is empty, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_runs_note: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub resources: Vec<Resource>,
    pub sources: Vec<String>,
    pub copy_regions: Vec<CopyRegion>,
    pub retention: RetentionPolicy,
    pub rpo: String,
    pub rpo_seconds: i64,
    pub tier: Tier,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_test: Option<RestoreTestSummary>,
}

/// A plan's restore test as `lifeboat plan check` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreTestSummary {
    pub every: String,
    /// The checks' names.
    pub checks: Vec<String>,
    pub instance_class: String,
    pub timeout: String,
}

/// The outcome of checking a plan file: the plans that are valid, and every problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanCheck {
    pub plans: Vec<PlanSummary>,
    pub problems: Vec<PlanProblem>,
}

impl PlanCheck {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// "24 h", "90 min", "45 s".
pub fn duration_words(d: SignedDuration) -> String {
    let secs = d.as_secs();
    if secs != 0 && secs % 3600 == 0 {
        format!("{} h", secs / 3600)
    } else if secs != 0 && secs % 60 == 0 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

// The file's boundary types: TOML, snake_case, unknown fields refused.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanToml {
    name: String,
    #[serde(default)]
    description: Option<String>,
    schedule: String,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    sources: Vec<String>,
    #[serde(default)]
    copy_regions: Vec<CopyRegionToml>,
    #[serde(default)]
    retention: Option<RetentionToml>,
    rpo: String,
    tier: String,
    #[serde(default)]
    restore_test: Option<RestoreTestToml>,
}

const PLAN_FIELDS: &[&str] = &[
    "name",
    "description",
    "schedule",
    "timezone",
    "tags",
    "resources",
    "sources",
    "copy_regions",
    "retention",
    "rpo",
    "tier",
    "restore_test",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreTestToml {
    url: String,
    #[serde(default)]
    check: Vec<CheckFile>,
    every: Option<String>,
    instance_class: Option<String>,
    subnet_group: Option<String>,
    #[serde(default)]
    security_groups: Vec<String>,
    timeout: Option<String>,
}

const RESTORE_TEST_FIELDS: &[&str] = &[
    "url",
    "check",
    "every",
    "instance_class",
    "subnet_group",
    "security_groups",
    "timeout",
];

const CHECK_FIELDS: &[&str] = &["name", "sql", "equals", "at_least", "at_most"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CopyRegionToml {
    region: String,
    #[serde(default)]
    kms_key: Option<String>,
}

const COPY_FIELDS: &[&str] = &["region", "kms_key"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionToml {
    keep_days: Option<u32>,
    keep_last: Option<u32>,
    daily: Option<u32>,
    weekly: Option<u32>,
    monthly: Option<u32>,
    yearly: Option<u32>,
    /// Default: the plan's time zone.
    timezone: Option<String>,
}

const RETENTION_FIELDS: &[&str] = &[
    "keep_days",
    "keep_last",
    "daily",
    "weekly",
    "monthly",
    "yearly",
    "timezone",
];

/// Reads a plan file; all plans, or every problem.
pub fn parse_plans(text: &str, now: Timestamp) -> Result<Vec<Plan>, PlanErrors> {
    let (plans, problems) = read(text, now);
    if problems.is_empty() {
        Ok(plans)
    } else {
        Err(PlanErrors(problems))
    }
}

/// Reads a plan file: the valid plans' summaries and every problem, as of `now`.
pub fn check_plans(text: &str, now: Timestamp) -> PlanCheck {
    let (plans, problems) = read(text, now);
    PlanCheck {
        plans: plans.iter().map(|p| p.summary(now)).collect(),
        problems,
    }
}

struct Problems {
    list: Vec<PlanProblem>,
    plan: Option<String>,
}

impl Problems {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.list.push(PlanProblem {
            plan: self.plan.clone(),
            field: field.to_owned(),
            message: message.into(),
        });
    }
}

/// Reports and removes keys that `known` does not list.
fn unknown_keys(table: &mut toml::Table, known: &[&str], at: &str, problems: &mut Problems) {
    let unknown: Vec<String> = table.keys().filter(|k| !known.contains(&k.as_str())).cloned().collect();
    for key in unknown {
        table.remove(&key);
        problems.add(
            &format!("{at}{key}"),
            format!("unknown field; the fields are {}", known.join(", ")),
        );
    }
}

fn read(text: &str, now: Timestamp) -> (Vec<Plan>, Vec<PlanProblem>) {
    let mut problems = Problems {
        list: Vec::new(),
        plan: None,
    };
    let mut document: toml::Table = match text.parse() {
        Ok(table) => table,
        Err(e) => {
            problems.add("file", format!("not valid TOML: {}", e.to_string().trim_end()));
            return (Vec::new(), problems.list);
        }
    };
    unknown_keys(&mut document, &["plan"], "", &mut problems);
    let entries = match document.remove("plan") {
        Some(toml::Value::Array(entries)) => entries,
        Some(_) => {
            problems.add("plan", "must be an array of tables: write each plan as [[plan]]");
            return (Vec::new(), problems.list);
        }
        None => {
            problems.add(
                "plan",
                "the file declares no plan: add a [[plan]] table (see examples/plans.toml)",
            );
            return (Vec::new(), problems.list);
        }
    };
    let mut plans = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (index, entry) in entries.into_iter().enumerate() {
        let toml::Value::Table(mut table) = entry else {
            problems.plan = Some(format!("#{}", index + 1));
            problems.add("plan", "not a table: write each plan as [[plan]]");
            continue;
        };
        let label = match table.get("name").and_then(|n| n.as_str()) {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => format!("#{}", index + 1),
        };
        problems.plan = Some(label.clone());
        if let Some(previous) = names.insert(label.clone(), index + 1) {
            problems.add(
                "name",
                format!(
                    "plans #{previous} and #{} are both named {label:?}: give every plan its own name",
                    index + 1
                ),
            );
        }
        unknown_keys(&mut table, PLAN_FIELDS, "", &mut problems);
        if let Some(toml::Value::Array(copies)) = table.get_mut("copy_regions") {
            for (i, copy) in copies.iter_mut().enumerate() {
                if let toml::Value::Table(copy) = copy {
                    unknown_keys(copy, COPY_FIELDS, &format!("copy_regions[{i}]."), &mut problems);
                }
            }
        }
        if let Some(toml::Value::Table(retention)) = table.get_mut("retention") {
            unknown_keys(retention, RETENTION_FIELDS, "retention.", &mut problems);
        }
        if let Some(toml::Value::Table(restore_test)) = table.get_mut("restore_test") {
            unknown_keys(restore_test, RESTORE_TEST_FIELDS, "restore_test.", &mut problems);
            if let Some(toml::Value::Array(checks)) = restore_test.get_mut("check") {
                for (i, check) in checks.iter_mut().enumerate() {
                    if let toml::Value::Table(check) = check {
                        unknown_keys(check, CHECK_FIELDS, &format!("restore_test.check[{i}]."), &mut problems);
                    }
                }
            }
        }
        match PlanToml::deserialize(toml::Value::Table(table)) {
            Ok(raw) => {
                if let Some(plan) = validate(raw, now, &mut problems) {
                    plans.push(plan);
                }
            }
            Err(e) => problems.add("plan", e.message().to_owned()),
        }
    }
    (plans, problems.list)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 50
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

fn valid_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        && parts.last().is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

fn validate(raw: PlanToml, now: Timestamp, problems: &mut Problems) -> Option<Plan> {
    let before = problems.list.len();
    let name = raw.name.clone();
    if !valid_name(&name) {
        problems.add(
            "name",
            format!("{name:?} is not a plan name: use lowercase letters, digits and single hyphens (at most 50), e.g. orders-hourly; it becomes part of snapshot names"),
        );
    }
    let timezone = raw.timezone.clone().unwrap_or_else(|| "UTC".to_owned());
    let zone = match TimeZone::get(&timezone) {
        Ok(zone) => Some(zone),
        Err(_) => {
            problems.add(
                "timezone",
                format!("unknown time zone {timezone:?}: give an IANA name such as Europe/Berlin or America/New_York, or UTC"),
            );
            None
        }
    };
    let schedule = match Schedule::parse(&raw.schedule) {
        Ok(schedule) => Some(schedule),
        Err(e) => {
            problems.add("schedule", e.to_string());
            None
        }
    };
    if let (Some(Schedule::Cron(cron)), Some(zone)) = (&schedule, &zone) {
        if matches!(cron.next_runs(now, zone, 1), Ok(runs) if runs.is_empty()) {
            problems.add(
                "schedule",
                format!("{} never runs after {now}: check its year field", raw.schedule.trim()),
            );
        }
    }
    for (key, value) in &raw.tags {
        if key.trim().is_empty() {
            problems.add("tags", format!("a tag key is empty (value {value:?}): name the tag"));
        }
    }
    let mut resources = Vec::new();
    for text in &raw.resources {
        match Resource::parse(text) {
            Ok(resource) => resources.push(resource),
            Err(message) => problems.add("resources", message),
        }
    }
    for source in &raw.sources {
        if is_database_url(source) || is_secret_arn(source) {
            continue;
        }
        let bucket = source
            .strip_prefix("s3://")
            .map(|rest| rest.split('/').next().unwrap_or_default());
        if bucket.is_none_or(str::is_empty) {
            problems.add(
                "sources",
                format!("{source:?} is neither an S3 location (s3://BUCKET[/PREFIX]), a database URL (postgres://, mysql://, sqlite:///, redis://, duckdb://) nor a Secrets Manager secret ARN holding one (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)"),
            );
        }
    }
    if raw.tags.is_empty() && raw.resources.is_empty() && raw.sources.is_empty() {
        problems.add(
            "selection",
            "the plan selects nothing: give tags (e.g. tags = { backup = \"daily\" }), resources (ARNs or identifiers) or sources (s3://... or database URLs)",
        );
    }
    let mut copy_regions = Vec::new();
    let mut seen_regions = BTreeSet::new();
    for copy in raw.copy_regions {
        let region = copy.region;
        if !valid_region(&region) {
            problems.add(
                "copy_regions",
                format!("{region:?} is not an AWS region name such as us-west-2"),
            );
            continue;
        }
        if !seen_regions.insert(region.clone()) {
            problems.add(
                "copy_regions",
                format!("{region} is listed twice: list each copy region once"),
            );
        }
        let Some(kms_key) = copy.kms_key else {
            problems.add(
                "copy_regions",
                format!("copy region {region} has no kms_key: give the ARN of a KMS key in {region} (copies are re-encrypted there; the default aws/rds key is never used)"),
            );
            continue;
        };
        let parts: Vec<&str> = kms_key.splitn(6, ':').collect();
        if parts.len() != 6
            || parts[0] != "arn"
            || parts[2] != "kms"
            || !(parts[5].starts_with("key/") || parts[5].starts_with("alias/"))
        {
            problems.add(
                "copy_regions",
                format!("kms_key {kms_key:?} for {region} is not a KMS key ARN: write arn:aws:kms:{region}:ACCOUNT:key/KEY-ID (or :alias/NAME)"),
            );
        } else if parts[3] != region {
            problems.add(
                "copy_regions",
                format!(
                    "kms_key {kms_key} is in {} but copies go to {region}: a KMS key works only in its own region, give a key in {region}",
                    parts[3]
                ),
            );
        }
        copy_regions.push(CopyRegion { region, kms_key });
    }
    let retention = match raw.retention {
        None => {
            problems.add(
                "retention",
                "missing: add retention = { keep_days = N } (or keep_last, daily, weekly, monthly, yearly)",
            );
            None
        }
        Some(r) => {
            // A bad inherited time zone is already reported under `timezone`.
            let inherited_bad_zone = r.timezone.is_none() && zone.is_none();
            let policy = RetentionPolicy {
                keep_days: r.keep_days,
                keep_last: r.keep_last,
                daily: r.daily,
                weekly: r.weekly,
                monthly: r.monthly,
                yearly: r.yearly,
                timezone: r.timezone.unwrap_or_else(|| timezone.clone()),
            };
            if !policy.has_rules() {
                problems.add(
                    "retention",
                    "sets no rule, so nothing would ever be deleted: set keep_days, keep_last, daily, weekly, monthly or yearly",
                );
            }
            match policy.validate() {
                Ok(_) => Some(policy),
                Err(RetentionError::UnknownTimezone { .. }) if inherited_bad_zone => None,
                Err(e) => {
                    problems.add("retention", e.to_string());
                    None
                }
            }
        }
    };
    let rpo = match humantime::parse_duration(&raw.rpo) {
        Ok(d) if !d.is_zero() => SignedDuration::try_from(d).ok(),
        _ => None,
    };
    if rpo.is_none() {
        problems.add(
            "rpo",
            format!("{:?} is not a duration: write e.g. \"1h\", \"26h\", \"30m\"", raw.rpo),
        );
    }
    if let (Some(schedule), Some(rpo)) = (&schedule, rpo) {
        if let Some(gap) = schedule.longest_gap(now) {
            if gap > rpo {
                problems.add(
                    "rpo",
                    format!(
                        "plan {name} runs every {} but promises an RPO of {}: schedule it at least every {}, or raise rpo",
                        duration_words(gap),
                        duration_words(rpo),
                        duration_words(rpo)
                    ),
                );
            }
        }
    }
    let tier = match raw.tier.as_str() {
        "critical" => Some(Tier::Critical),
        "important" => Some(Tier::Important),
        "standard" => Some(Tier::Standard),
        other => {
            problems.add(
                "tier",
                format!("{other:?} is not a tier: write critical, important or standard"),
            );
            None
        }
    };
    let restore_test = raw
        .restore_test
        .and_then(|r| restore_test(r, &resources, raw.tags.is_empty(), problems));
    if problems.list.len() != before {
        return None;
    }
    Some(Plan {
        name,
        description: raw.description,
        schedule: schedule?,
        schedule_text: raw.schedule.trim().to_owned(),
        timezone,
        zone: zone?,
        tags: raw.tags,
        resources,
        sources: raw.sources,
        copy_regions,
        retention: retention?,
        rpo: rpo?,
        tier: tier?,
        restore_test,
    })
}

/// A positive duration such as `7d`, `12h`, `90m` (`default` when not
/// given); reported under `field` when it is not one.
fn duration(
    field: &str,
    text: Option<String>,
    default: SignedDuration,
    problems: &mut Problems,
) -> Option<SignedDuration> {
    let Some(text) = text else {
        return Some(default);
    };
    let parsed = match humantime::parse_duration(&text) {
        Ok(d) if !d.is_zero() => SignedDuration::try_from(d).ok(),
        _ => None,
    };
    if parsed.is_none() {
        problems.add(
            field,
            format!("{text:?} is not a duration: write e.g. \"7d\", \"12h\", \"90m\""),
        );
    }
    parsed
}

/// Validates `[plan.restore_test]` for a plan that selects `resources`
/// (and tags, unless `no_tags`).
fn restore_test(
    raw: RestoreTestToml,
    resources: &[Resource],
    no_tags: bool,
    problems: &mut Problems,
) -> Option<RestoreTestPlan> {
    let before = problems.list.len();
    if no_tags && resources.is_empty() {
        problems.add(
            "restore_test",
            "the plan takes no RDS snapshots (it selects only sources): restore tests restore a DB instance snapshot, so select DB instances with resources or tags, or remove [plan.restore_test]",
        );
    } else if no_tags && resources.iter().all(|r| matches!(r, Resource::Cluster { .. })) {
        problems.add(
            "restore_test",
            "the plan selects only Aurora clusters, and restore tests restore DB instance snapshots: test a cluster with `lifeboat restore` by hand, or remove [plan.restore_test]",
        );
    }
    let checks = match checks_from(raw.url, raw.check) {
        Ok(checks) => Some(checks),
        Err(message) => {
            problems.add("restore_test", message);
            None
        }
    };
    let every = duration("restore_test.every", raw.every, RESTORE_TEST_EVERY, problems);
    let timeout = duration("restore_test.timeout", raw.timeout, RESTORE_TEST_TIMEOUT, problems);
    let instance_class = raw.instance_class.unwrap_or_else(|| RESTORE_TEST_CLASS.to_owned());
    if !instance_class.starts_with("db.") || instance_class.len() < 4 {
        problems.add(
            "restore_test.instance_class",
            format!("{instance_class:?} is not a DB instance class: write e.g. \"db.t3.micro\""),
        );
    }
    if raw.subnet_group.as_deref().is_some_and(|g| g.trim().is_empty()) {
        problems.add(
            "restore_test.subnet_group",
            "is empty: name a DB subnet group, or leave it out for the default VPC",
        );
    }
    for group in &raw.security_groups {
        if !group.starts_with("sg-") {
            problems.add(
                "restore_test.security_groups",
                format!("{group:?} is not a security group id: write e.g. \"sg-0123456789abcdef0\""),
            );
        }
    }
    if problems.list.len() != before {
        return None;
    }
    Some(RestoreTestPlan {
        checks: checks?,
        every: every?,
        instance_class,
        subnet_group: raw.subnet_group,
        security_groups: raw.security_groups,
        timeout: timeout?,
    })
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

    const GOOD: &str = r#"
[[plan]]
name = "orders-hourly"
schedule = "cron(0 * * * ? *)"
timezone = "Europe/Berlin"
resources = ["arn:aws:rds:eu-central-1:123456789012:cluster:orders"]
copy_regions = [{ region = "us-west-2", kms_key = "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab" }]
retention = { keep_days = 7, daily = 30 }
rpo = "1h"
tier = "critical"
"#;

    /// Replaces `from` with `to` in the good plan, adds `extra`, and checks that
    /// exactly `expected` problems come out (each as "plan/field: part of message").
    fn problems(edits: &[(&str, &str)], extra: &str, expected: &[(&str, &str, &str)]) {
        let mut text = GOOD.to_owned();
        for (from, to) in edits {
            assert!(text.contains(from), "{from:?} not in the good plan");
            text = text.replace(from, to);
        }
        text.push_str(extra);
        let check = check_plans(&text, ts(NOW));
        let got: Vec<String> = check.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(check.problems.len(), expected.len(), "{got:#?}");
        for ((plan, field, needle), problem) in expected.iter().zip(&check.problems) {
            assert_eq!(problem.plan.as_deref(), Some(*plan), "{problem}");
            assert_eq!(problem.field, *field, "{problem}");
            assert!(problem.message.contains(needle), "{problem} lacks {needle:?}");
        }
    }

    #[test]
    fn the_good_plan_passes() {
        let plans = parse_plans(GOOD, ts(NOW)).unwrap();
        assert_eq!(plans.len(), 1);
        let plan = &plans[0];
        assert_eq!(plan.tier, Tier::Critical);
        assert_eq!(plan.retention.timezone, "Europe/Berlin");
        assert_eq!(plan.rpo, SignedDuration::from_hours(1));
        let summary = plan.summary(ts(NOW));
        assert_eq!(summary.next_runs[0], "2026-11-23T14:00:00+01:00[Europe/Berlin]");
        assert_eq!(summary.schedule_words, "every hour at :00");
    }

    #[test]
    fn validation_messages() {
        problems(
            &[("cron(0 * * * ? *)", "cron(0 25 * * ? *)")],
            "",
            &[("orders-hourly", "schedule", "hours")],
        );
        problems(
            &[("Europe/Berlin", "Europe/Atlantis")],
            "",
            &[("orders-hourly", "timezone", "Europe/Atlantis")],
        );
        problems(
            &[(
                ", kms_key = \"arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab\"",
                "",
            )],
            "",
            &[("orders-hourly", "copy_regions", "us-west-2 has no kms_key")],
        );
        problems(
            &[("arn:aws:kms:us-west-2", "arn:aws:kms:us-east-1")],
            "",
            &[(
                "orders-hourly",
                "copy_regions",
                "is in us-east-1 but copies go to us-west-2",
            )],
        );
        problems(
            &[("key/1234", "KEY1234")],
            "",
            &[("orders-hourly", "copy_regions", "not a KMS key ARN")],
        );
        problems(
            &[("us-west-2\",", "mars-1\",")],
            "",
            &[("orders-hourly", "copy_regions", "not an AWS region")],
        );
        problems(&[], GOOD, &[("orders-hourly", "name", "both named")]);
        problems(
            &[(
                "resources = [\"arn:aws:rds:eu-central-1:123456789012:cluster:orders\"]",
                "",
            )],
            "",
            &[("orders-hourly", "selection", "selects nothing")],
        );
        problems(&[("\"1h\"", "\"1h\"")], "", &[]);
        problems(
            &[("cron(0 * * * ? *)", "cron(0 2 * * ? *)")],
            "",
            &[(
                "orders-hourly",
                "rpo",
                "plan orders-hourly runs every 24 h but promises an RPO of 1 h",
            )],
        );
        problems(
            &[("cron(0 * * * ? *)", "rate(1 day)")],
            "",
            &[("orders-hourly", "rpo", "runs every 24 h but promises an RPO of 1 h")],
        );
        // A daily run in Berlin is 25 h apart on the autumn night; that does not count.
        problems(
            &[("cron(0 * * * ? *)", "cron(0 2 * * ? *)"), ("\"1h\"", "\"24h\"")],
            "",
            &[],
        );
        problems(&[("cron(0 * * * ? *)", "rate(30 minutes)")], "", &[]);
        problems(
            &[("\"1h\"", "\"soon\"")],
            "",
            &[("orders-hourly", "rpo", "not a duration")],
        );
        problems(
            &[("\"critical\"", "\"vital\"")],
            "",
            &[("orders-hourly", "tier", "critical, important or standard")],
        );
        problems(
            &[("orders-hourly", "Orders_Hourly")],
            "",
            &[("Orders_Hourly", "name", "lowercase")],
        );
        problems(
            &[("cluster:orders", "table/orders")],
            "",
            &[("orders-hourly", "resources", "not an RDS")],
        );
        problems(
            &[("keep_days = 7, daily = 30", "daily = 0")],
            "",
            &[("orders-hourly", "retention", "keep-daily")],
        );
        problems(
            &[("keep_days = 7, daily = 30", "")],
            "",
            &[("orders-hourly", "retention", "no rule")],
        );
        problems(
            &[("keep_days = 7", "keep_days = 7, timezone = \"Nowhere/Else\"")],
            "",
            &[("orders-hourly", "retention", "Nowhere/Else")],
        );
        problems(
            &[("cron(0 * * * ? *)", "cron(0 * * * ? 2020)")],
            "",
            &[("orders-hourly", "schedule", "never runs")],
        );
        problems(
            &[(
                "tier = \"critical\"",
                "tier = \"critical\"\ncolour = \"red\"\nowner = \"ops\"",
            )],
            "",
            &[
                ("orders-hourly", "colour", "unknown field"),
                ("orders-hourly", "owner", "unknown field"),
            ],
        );
        problems(
            &[("region = \"us-west-2\"", "region = \"us-west-2\", kms = \"x\"")],
            "",
            &[("orders-hourly", "copy_regions[0].kms", "unknown field")],
        );
        problems(
            &[("rpo = \"1h\"", "rpo = 1")],
            "",
            &[("orders-hourly", "plan", "string")],
        );
        // Several problems in one plan are all reported.
        problems(
            &[
                ("Europe/Berlin", "Nowhere"),
                ("\"critical\"", "\"vital\""),
                ("\"1h\"", "\"x\""),
            ],
            "",
            &[
                ("orders-hourly", "timezone", "Nowhere"),
                ("orders-hourly", "rpo", "not a duration"),
                ("orders-hourly", "tier", "vital"),
            ],
        );
    }

    const RESTORE_TEST: &str = r#"[plan.restore_test]
url = "postgres://app@{host}:{port}/orders"
every = "3d"
security_groups = ["sg-0123"]
[[plan.restore_test.check]]
name = "orders present"
sql = "SELECT count(*) FROM orders"
at_least = 1
"#;

    #[test]
    fn a_restore_test_is_read_with_its_checks_and_defaults() {
        let text = GOOD.replace("cluster:orders", "db:orders") + RESTORE_TEST;
        let plans = parse_plans(&text, ts(NOW)).unwrap();
        let test = plans[0].restore_test.as_ref().expect("a restore test");
        assert_eq!(test.every, SignedDuration::from_hours(72));
        assert_eq!(test.timeout, RESTORE_TEST_TIMEOUT);
        assert_eq!(test.instance_class, RESTORE_TEST_CLASS);
        assert_eq!(test.security_groups, ["sg-0123"]);
        assert_eq!(test.subnet_group, None);
        assert_eq!(test.checks.checks[0].name, "orders present");
        assert_eq!(test.checks.url_for("h", 1), "postgres://app@h:1/orders");
        assert!(parse_plans(GOOD, ts(NOW)).unwrap()[0].restore_test.is_none());
    }

    #[test]
    fn restore_test_problems_name_the_field() {
        let instance = [("cluster:orders", "db:orders")];
        // The good plan selects only a cluster.
        problems(
            &[],
            RESTORE_TEST,
            &[("orders-hourly", "restore_test", "only Aurora clusters")],
        );
        // (in the block, from, to, field, part of the message)
        let cases = [
            (
                "every = \"3d\"",
                "every = \"soon\"",
                "restore_test.every",
                "not a duration",
            ),
            (
                "security_groups = [\"sg-0123\"]",
                "security_groups = [\"default\"]",
                "restore_test.security_groups",
                "not a security group",
            ),
            ("at_least = 1", "", "restore_test", "says nothing about the result"),
            (
                "url = \"postgres://app@{host}:{port}/orders\"",
                "url = \"redis://h:6379/0\"",
                "restore_test",
                "redis",
            ),
            (
                "every = \"3d\"",
                "every = \"3d\"\ncolour = \"red\"",
                "restore_test.colour",
                "unknown field",
            ),
            (
                "at_least = 1",
                "at_least = 1\natleast = 2",
                "restore_test.check[0].atleast",
                "unknown field",
            ),
        ];
        for (from, to, field, needle) in cases {
            problems(
                &instance,
                &RESTORE_TEST.replace(from, to),
                &[("orders-hourly", field, needle)],
            );
        }
        let sources_only = [(
            "resources = [\"arn:aws:rds:eu-central-1:123456789012:cluster:orders\"]",
            "sources = [\"s3://bucket/data\"]",
        )];
        problems(
            &sources_only,
            RESTORE_TEST,
            &[("orders-hourly", "restore_test", "takes no RDS snapshots")],
        );
    }

    #[test]
    fn file_level_problems() {
        let check = check_plans("[[plan]\nname=", ts(NOW));
        assert_eq!(check.problems[0].field, "file");
        let check = check_plans("", ts(NOW));
        assert!(check.problems[0].message.contains("no plan"));
        let check = check_plans("[[plan]]\nschedule = \"rate(1 day)\"\n", ts(NOW));
        assert_eq!(check.problems[0].plan.as_deref(), Some("#1"));
        let errors = parse_plans("", ts(NOW)).unwrap_err();
        assert!(errors.to_string().contains("1 problem(s)"), "{errors}");
    }

    #[test]
    fn secret_arns_are_database_sources() {
        let secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:orders-db-AbCdEf";
        assert!(is_secret_arn(secret));
        for not_one in [
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:",
            "arn:aws:secretsmanager::123456789012:secret:orders",
            "arn:aws:secretsmanager:eu-west-1:1234:secret:orders",
            "arn:aws:ssm:eu-west-1:123456789012:parameter/orders",
            "arn:aws:rds:eu-west-1:123456789012:db:orders",
        ] {
            assert!(!is_secret_arn(not_one), "{not_one}");
        }
        let text = format!(
            "[[plan]]\nname = \"dumps\"\nschedule = \"rate(1 day)\"\nsources = [\"{secret}\", \"s3://bucket/x\"]\nretention = {{ daily = 7 }}\nrpo = \"26h\"\ntier = \"important\"\n"
        );
        let plans = parse_plans(&text, ts(NOW)).expect("a plan with a secret source");
        assert_eq!(plans[0].database_sources(), [secret]);
        let bad = check_plans(
            &text.replace(secret, "arn:aws:secretsmanager:eu-west-1:1:secret:x"),
            ts(NOW),
        );
        assert_eq!(bad.problems[0].field, "sources", "{:?}", bad.problems);
    }
}
