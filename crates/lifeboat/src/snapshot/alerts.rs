//! The alert conditions about snapshots, for `crate::alert::run_alerts_with`.
//! [`evaluate_snapshots`] is pure: plans, snapshot histories, the newest
//! verification of each snapshot and a "now" in; conditions out:
//!
//! - `snapshot_failed` (key `snapshot_failed#SNAPSHOTID`): a snapshot failed
//!   within the lookback, and no later snapshot of the resource completed;
//! - `snapshot_copy_failed` (`snapshot_copy_failed#SNAPSHOTID@REGION`): a
//!   copy of the resource's newest completed snapshot failed;
//! - `snapshot_copy_missing` (`snapshot_copy_missing#RESOURCE`): the newest
//!   completed snapshot has no completed copy in a copy region (none
//!   recorded past [`COPY_GRACE`], or its newest verification found the copy
//!   gone);
//! - `snapshot_overdue` (`snapshot_overdue#RESOURCE`): no completed
//!   snapshot within the plan's RPO; the plan's tier sets the severity;
//! - `snapshot_verification_failed` (`…#RESOURCE`): the newest verification
//!   of the newest completed snapshot failed;
//! - `snapshot_verification_stale` (`…#RESOURCE`): no passed verification
//!   within the limit (counted from the oldest completed snapshot when none
//!   ever passed).

use std::collections::{BTreeMap, BTreeSet};

use super::checks::ProblemKind;
use super::verifications::{snapshot_pk, SnapshotChecks, SnapshotVerification};
use crate::alert::evaluate::Staleness;
use crate::alert::{describe_duration, Condition, ConditionKind, LastGood, Severity, VERIFIED_BACKUPS_READ};
use crate::catalog::CatalogError;
use crate::plan::Plan;
use crate::snapshot::{CopyStatus, SnapshotHistory, SnapshotStatus};
use crate::times::{self, SignedDuration, Time};

/// A copy not recorded this long after its snapshot completed is missing.
pub const COPY_GRACE: SignedDuration = SignedDuration::from_hours(1);

/// What the snapshot conditions check beyond the plans.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotAlertRules {
    /// Failed snapshots this recent alert.
    pub failed_lookback: SignedDuration,
    /// A resource's snapshots must have passed a verification this recently.
    pub verification_max_age: Option<SignedDuration>,
}

fn parse_time(text: &str) -> Option<Time> {
    times::parse(text).ok()
}

/// A snapshot with the time it is dated by (its scheduled time).
type Dated<'a> = (&'a SnapshotHistory, Time);

/// The conditions that hold at `now`. `latest` maps a snapshot's `pk` to
/// its verifications, newest first. Snapshots dated after `now` are ignored.
pub fn evaluate_snapshots(
    plans: &[Plan],
    histories: &[SnapshotHistory],
    latest: &BTreeMap<String, Vec<SnapshotVerification>>,
    rules: &SnapshotAlertRules,
    now: Time,
) -> Vec<Condition> {
    let mut by_resource: BTreeMap<(&str, &str), Vec<Dated>> = BTreeMap::new();
    for history in histories {
        let Some(at) = parse_time(&history.snapshot.scheduled_time).filter(|t| *t <= now) else {
            continue;
        };
        by_resource
            .entry((history.snapshot.plan.as_str(), history.snapshot.resource.as_str()))
            .or_default()
            .push((history, at));
    }
    let mut conditions = Vec::new();
    for ((plan_name, resource), list) in by_resource {
        let Some(plan) = plans.iter().find(|p| p.name == plan_name) else {
            continue;
        };
        let snapshots = Resource::new(plan, resource, list, now);
        conditions.extend(snapshots.failed(rules.failed_lookback));
        conditions.extend(snapshots.overdue());
        let Some((newest, newest_at)) = snapshots.completed.first().copied() else {
            continue;
        };
        let verifications = latest
            .get(&snapshot_pk(&newest.snapshot))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let newest_verification = verifications.first();
        conditions.extend(snapshots.copies(newest, newest_at, newest_verification));
        conditions.extend(snapshots.verification_failed(newest, newest_verification));
        if let Some(max_age) = rules.verification_max_age {
            conditions.extend(snapshots.verification_stale(latest, max_age));
        }
    }
    conditions.sort_by_key(Condition::key);
    conditions
}

/// One resource of one plan, as of `now`: what each condition reads.
struct Resource<'a> {
    plan: &'a Plan,
    resource: &'a str,
    now: Time,
    /// Its snapshots dated at or before `now`, newest first.
    list: Vec<Dated<'a>>,
    /// The completed ones, newest first.
    completed: Vec<Dated<'a>>,
    last_good: Option<LastGood>,
}

impl<'a> Resource<'a> {
    fn new(plan: &'a Plan, resource: &'a str, mut list: Vec<Dated<'a>>, now: Time) -> Self {
        list.sort_by_key(|entry| std::cmp::Reverse(entry.1));
        let completed: Vec<Dated<'a>> = list
            .iter()
            .filter(|(h, _)| h.snapshot.status == SnapshotStatus::Completed)
            .copied()
            .collect();
        let last_good = completed.first().map(|(h, _)| LastGood {
            id: h.snapshot.snapshot_id.clone(),
            created_at: h.snapshot.scheduled_time.clone(),
            completed_at: h.snapshot.completed_at.clone(),
        });
        Self {
            plan,
            resource,
            now,
            list,
            completed,
            last_good,
        }
    }

    /// A condition about the resource, its message left empty.
    fn base(&self, kind: ConditionKind) -> Condition {
        let tier = self.plan.tier.as_str().to_owned();
        Condition {
            kind,
            resource: self.resource.to_owned(),
            backup_id: None,
            plan: Some(self.plan.name.clone()),
            severity: Severity::from_tier(&tier),
            tier,
            since: None,
            last_good: self.last_good.clone(),
            summary: String::new(),
            error: None,
            suggested_action: String::new(),
        }
    }

    /// `snapshot_failed`: each failed snapshot within `lookback` that no
    /// later completed snapshot superseded.
    fn failed(&self, lookback: SignedDuration) -> Vec<Condition> {
        let newest = self.completed.first();
        let mut conditions = Vec::new();
        for (history, at) in &self.list {
            let snapshot = &history.snapshot;
            let superseded = newest.is_some_and(|(_, done)| done > at);
            if snapshot.status != SnapshotStatus::Failed || self.now.duration_since(*at) > lookback || superseded {
                continue;
            }
            conditions.push(Condition {
                backup_id: Some(snapshot.snapshot_id.clone()),
                since: snapshot.failed_at.as_deref().and_then(parse_time).or(Some(*at)),
                summary: format!("snapshot {} failed", snapshot.snapshot_id),
                error: snapshot.error.clone(),
                suggested_action: format!(
                    "Read the error, fix its cause (the instance's state, quotas, permissions), then run the plan {} again; this clears when a later snapshot of the resource completes.",
                    self.plan.name
                ),
                ..self.base(ConditionKind::SnapshotFailed)
            });
        }
        conditions
    }

    /// `snapshot_overdue`: no completed snapshot within the plan's RPO.
    fn overdue(&self) -> Option<Condition> {
        // Whole seconds, as plans state RPOs.
        let max_age = SignedDuration::from_secs(self.plan.rpo.as_secs());
        let rpo = describe_duration(max_age);
        let overdue_action = format!(
            "Check the snapshot function's schedule and logs for plan {}, then take a snapshot now; this clears when one completes.",
            self.plan.name
        );
        match self.completed.first() {
            None => Some(Condition {
                summary: format!("no completed snapshot on record (RPO {rpo})"),
                suggested_action: overdue_action,
                ..self.base(ConditionKind::SnapshotOverdue)
            }),
            Some((_, at)) if self.now.duration_since(*at) > max_age => Some(Condition {
                since: Some(*at + max_age),
                summary: format!(
                    "no completed snapshot for {} (RPO {rpo})",
                    describe_duration(self.now.duration_since(*at))
                ),
                suggested_action: overdue_action,
                ..self.base(ConditionKind::SnapshotOverdue)
            }),
            Some(_) => None,
        }
    }

    /// `snapshot_copy_failed` for each copy region whose copy of the newest
    /// completed snapshot failed; `snapshot_copy_missing` naming the regions
    /// with no copy recorded past [`COPY_GRACE`] or one its newest
    /// verification found gone.
    fn copies(
        &self,
        newest: &SnapshotHistory,
        newest_at: Time,
        newest_verification: Option<&SnapshotVerification>,
    ) -> Vec<Condition> {
        let mut conditions = Vec::new();
        let mut missing = Vec::new();
        for copy_region in &self.plan.copy_regions {
            let region = copy_region.region.as_str();
            let copy = newest.copy_in(region);
            if let Some(copy) = copy.filter(|c| c.status == CopyStatus::Failed) {
                conditions.push(Condition {
                    backup_id: Some(format!("{}@{region}", copy.snapshot_id)),
                    since: copy.failed_at.as_deref().and_then(parse_time),
                    summary: format!("copy of snapshot {} to {region} failed", copy.snapshot_id),
                    error: copy.error.clone(),
                    suggested_action: format!(
                        "Read the error, check the key {} in {region} (enabled, usable by RDS) and the copy quota; the next snapshot is copied again, or copy this one by hand.",
                        copy_region.kms_key
                    ),
                    ..self.base(ConditionKind::SnapshotCopyFailed)
                });
                continue;
            }
            let completed_at = newest
                .snapshot
                .completed_at
                .as_deref()
                .and_then(parse_time)
                .unwrap_or(newest_at);
            let unrecorded = copy.is_none() && self.now.duration_since(completed_at) > COPY_GRACE;
            let gone = copy.is_some_and(|c| c.status == CopyStatus::Completed)
                && newest_verification.is_some_and(|v| {
                    v.problems
                        .iter()
                        .any(|p| p.region == region && p.kind == ProblemKind::Missing)
                });
            if unrecorded || gone {
                missing.push(region);
            }
        }
        if !missing.is_empty() {
            conditions.push(Condition {
                backup_id: None,
                since: newest_verification.and_then(|v| parse_time(&v.completed_at)),
                summary: format!(
                    "no copy of snapshot {} in {}",
                    newest.snapshot.snapshot_id,
                    missing.join(", ")
                ),
                suggested_action: "Check the snapshot function's copies (its logs, the copy records) and the DR region; this clears when the newest snapshot has its copy in every copy region.".to_owned(),
                ..self.base(ConditionKind::SnapshotCopyMissing)
            });
        }
        conditions
    }

    /// `snapshot_verification_failed`: the newest verification of the
    /// newest completed snapshot did not pass.
    fn verification_failed(
        &self,
        newest: &SnapshotHistory,
        newest_verification: Option<&SnapshotVerification>,
    ) -> Option<Condition> {
        let verification = newest_verification.filter(|v| !v.passed())?;
        Some(Condition {
            since: parse_time(&verification.completed_at),
            summary: format!("verification of snapshot {} failed", newest.snapshot.snapshot_id),
            error: verification.error.clone(),
            suggested_action: "Read the problems (`lifeboat snapshots verify`), fix them (copy again, check the keys), and keep the snapshot for inspection.".to_owned(),
            ..self.base(ConditionKind::SnapshotVerificationFailed)
        })
    }

    /// `snapshot_verification_stale`: no passed verification of any
    /// completed snapshot within `max_age` (counted from the oldest
    /// completed snapshot when none ever passed).
    fn verification_stale(
        &self,
        latest: &BTreeMap<String, Vec<SnapshotVerification>>,
        max_age: SignedDuration,
    ) -> Option<Condition> {
        let completed_ids: BTreeSet<String> = self.completed.iter().map(|(h, _)| snapshot_pk(&h.snapshot)).collect();
        let passed = latest
            .iter()
            .filter(|(pk, _)| completed_ids.contains(*pk))
            .flat_map(|(_, list)| list.iter())
            .filter(|v| v.passed())
            .filter_map(|v| parse_time(&v.completed_at))
            .filter(|t| *t <= self.now)
            .max();
        let oldest = self.completed.last().map(|(_, t)| *t);
        let (since, summary) = Staleness {
            now: self.now,
            passed,
            oldest,
            max_age,
        }
        .describe("snapshot verification", "snapshot")?;
        Some(Condition {
            since: Some(since),
            summary,
            suggested_action:
                "Check the verify function's snapshot schedule and logs, then verify now (`lifeboat snapshots verify`)."
                    .to_owned(),
            ..self.base(ConditionKind::SnapshotVerificationStale)
        })
    }
}

/// Reads the plans' snapshot histories and the verifications of each
/// resource's newest completed snapshots ([`VERIFIED_BACKUPS_READ`] of
/// them), and evaluates.
pub async fn snapshot_conditions(
    checks: &SnapshotChecks,
    plans: &[Plan],
    rules: &SnapshotAlertRules,
    now: Time,
) -> Result<Vec<Condition>, CatalogError> {
    let histories = checks.histories(plans).await?;
    let mut read: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut latest = BTreeMap::new();
    // Newest first per resource (`SnapshotCatalog::history`).
    for history in &histories {
        if history.snapshot.status != SnapshotStatus::Completed {
            continue;
        }
        let count = read
            .entry((history.snapshot.plan.as_str(), history.snapshot.resource.as_str()))
            .or_default();
        if *count >= VERIFIED_BACKUPS_READ {
            continue;
        }
        *count += 1;
        let verifications = checks.verifications(&history.snapshot, VERIFIED_BACKUPS_READ).await?;
        if !verifications.is_empty() {
            latest.insert(snapshot_pk(&history.snapshot), verifications);
        }
    }
    Ok(evaluate_snapshots(plans, &histories, &latest, rules, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::parse_plans;
    use crate::snapshot::{CopyRecord, ResourceKind, SnapshotRecord};

    const NOW: &str = "2026-11-23T12:00:00Z";
    const RESOURCE: &str = "arn:aws:rds:eu-central-1:1:db:orders";

    fn plans() -> Vec<Plan> {
        parse_plans(
            r#"[[plan]]
name = "db-nightly"
schedule = "cron(0 2 * * ? *)"
resources = ["orders"]
copy_regions = [{ region = "us-west-2", kms_key = "arn:aws:kms:us-west-2:1:key/dr" }]
retention = { keep_days = 7 }
rpo = "26h"
tier = "critical"
"#,
            "2026-11-23T00:00:00Z".parse().unwrap(),
        )
        .unwrap()
    }

    fn hours_ago(hours: i64) -> String {
        let now = parse_time(NOW).unwrap();
        times::format(now - SignedDuration::from_hours(hours))
    }

    /// `"HOURS_AGO STATUS COPY"`, COPY one of `copied`, `copy-failed`, `none`.
    fn entry(spec: &str) -> SnapshotHistory {
        let parts: Vec<&str> = spec.split_whitespace().collect();
        let hours: i64 = parts[0].parse().unwrap();
        let time = hours_ago(hours);
        let status = match parts[1] {
            "completed" => SnapshotStatus::Completed,
            "failed" => SnapshotStatus::Failed,
            _ => SnapshotStatus::InProgress,
        };
        let id = format!("snap-{hours}");
        let snapshot = SnapshotRecord {
            plan: "db-nightly".into(),
            resource: RESOURCE.into(),
            resource_id: "orders".into(),
            resource_kind: ResourceKind::DbInstance,
            region: "eu-central-1".into(),
            scheduled_time: time.clone(),
            snapshot_id: id.clone(),
            snapshot_arn: None,
            status,
            created_at: time.clone(),
            completed_at: Some(time.clone()),
            retention_until: None,
            engine: None,
            error: (status == SnapshotStatus::Failed).then(|| "InvalidDBInstanceState: stopped".to_owned()),
            failed_at: None,
        };
        let copy = match parts.get(2).copied() {
            Some("copied") => Some(CopyStatus::Completed),
            Some("copy-failed") => Some(CopyStatus::Failed),
            _ => None,
        };
        let copies = copy
            .map(|status| CopyRecord {
                plan: "db-nightly".into(),
                resource: RESOURCE.into(),
                resource_kind: ResourceKind::DbInstance,
                scheduled_time: time.clone(),
                source_snapshot_arn: "arn".into(),
                region: "us-west-2".into(),
                kms_key_id: "k".into(),
                snapshot_id: id.clone(),
                snapshot_arn: None,
                status,
                queued_at: time.clone(),
                started_at: None,
                completed_at: None,
                attempts: 1,
                next_attempt_at: None,
                error: (status == CopyStatus::Failed).then(|| "KMSKeyNotAccessibleFault: key disabled".to_owned()),
                failed_at: None,
            })
            .into_iter()
            .collect();
        SnapshotHistory { snapshot, copies }
    }

    fn verification(history: &SnapshotHistory, hours: i64, problems: &[(&str, ProblemKind)]) -> SnapshotVerification {
        SnapshotVerification::new(
            &history.snapshot,
            vec!["eu-central-1".into(), "us-west-2".into()],
            problems
                .iter()
                .map(|(region, kind)| crate::snapshot::checks::SnapshotProblem {
                    region: (*region).into(),
                    kind: *kind,
                    detail: "x".into(),
                })
                .collect(),
            hours_ago(hours),
            hours_ago(hours),
        )
    }

    /// A verification of history entry `.0`, `.1` hours ago, with these problems.
    type Verified<'a> = (usize, i64, &'a [(&'a str, ProblemKind)]);

    fn keys(specs: &[&str], verified: &[Verified], max_age: Option<i64>) -> Vec<String> {
        let histories: Vec<SnapshotHistory> = specs.iter().map(|s| entry(s)).collect();
        let mut latest: BTreeMap<String, Vec<SnapshotVerification>> = BTreeMap::new();
        for (index, hours, problems) in verified {
            let h = &histories[*index];
            latest
                .entry(snapshot_pk(&h.snapshot))
                .or_default()
                .push(verification(h, *hours, problems));
        }
        let rules = SnapshotAlertRules {
            failed_lookback: SignedDuration::from_hours(24),
            verification_max_age: max_age.map(SignedDuration::from_hours),
        };
        evaluate_snapshots(&plans(), &histories, &latest, &rules, parse_time(NOW).unwrap())
            .iter()
            .map(Condition::key)
            .collect()
    }

    fn key(kind: &str, what: &str) -> String {
        format!("{kind}#{what}")
    }

    #[test]
    fn a_healthy_resource_raises_nothing() {
        assert_eq!(
            keys(&["5 completed copied"], &[(0, 4, &[])], Some(48)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_failed_snapshot_alerts_until_a_later_one_completes() {
        assert_eq!(
            keys(&["2 failed", "20 completed copied"], &[], None),
            [key("snapshot_failed", "snap-2")]
        );
        assert_eq!(
            keys(&["2 completed copied", "5 failed"], &[], None),
            Vec::<String>::new()
        );
        // Older than the lookback: the RPO condition covers it instead.
        assert_eq!(
            keys(&["30 failed", "40 completed copied"], &[], None),
            [key("snapshot_overdue", RESOURCE)]
        );
    }

    #[test]
    fn overdue_follows_the_plans_rpo() {
        assert_eq!(keys(&["25 completed copied"], &[], None), Vec::<String>::new());
        assert_eq!(
            keys(&["27 completed copied"], &[], None),
            [key("snapshot_overdue", RESOURCE)]
        );
        assert_eq!(keys(&["1 running"], &[], None), [key("snapshot_overdue", RESOURCE)]);
    }

    #[test]
    fn copies_failed_or_missing_in_the_dr_region_alert() {
        assert_eq!(
            keys(&["3 completed copy-failed"], &[], None),
            [key("snapshot_copy_failed", "snap-3@us-west-2")]
        );
        // Not recorded within the grace period.
        assert_eq!(
            keys(&["3 completed none"], &[], None),
            [key("snapshot_copy_missing", RESOURCE)]
        );
        // Recorded, but the verification found it gone.
        assert_eq!(
            keys(
                &["3 completed copied"],
                &[(0, 1, &[("us-west-2", ProblemKind::Missing)])],
                None
            ),
            [
                key("snapshot_copy_missing", RESOURCE),
                key("snapshot_verification_failed", RESOURCE)
            ]
        );
    }

    #[test]
    fn verification_failed_and_stale() {
        assert_eq!(
            keys(
                &["3 completed copied"],
                &[(0, 1, &[("us-west-2", ProblemKind::WrongKey)])],
                None
            ),
            [key("snapshot_verification_failed", RESOURCE)]
        );
        // Passed 50 hours ago against a 48-hour limit.
        assert_eq!(
            keys(
                &["3 completed copied", "52 completed copied"],
                &[(1, 50, &[])],
                Some(48)
            ),
            [key("snapshot_verification_stale", RESOURCE)]
        );
        // Never verified: counted from the oldest completed snapshot.
        assert_eq!(
            keys(&["3 completed copied", "20 completed copied"], &[], Some(48)),
            Vec::<String>::new()
        );
        assert_eq!(
            keys(&["3 completed copied", "60 completed copied"], &[], Some(48)),
            [key("snapshot_verification_stale", RESOURCE)]
        );
    }

    #[test]
    fn severity_comes_from_the_plans_tier() {
        let histories = vec![entry("2 failed"), entry("20 completed copied")];
        let rules = SnapshotAlertRules {
            failed_lookback: SignedDuration::from_hours(24),
            verification_max_age: None,
        };
        let found = evaluate_snapshots(&plans(), &histories, &BTreeMap::new(), &rules, parse_time(NOW).unwrap());
        assert_eq!(found[0].severity, Severity::Critical);
        assert_eq!(found[0].error.as_deref(), Some("InvalidDBInstanceState: stopped"));
    }
}
