//! Tests of `super`: the retention rules, examples and properties.

use super::*;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// A completed full backup of source `s` named `id`, created at `created`.
fn b(id: &str, created: &str) -> BackupInfo {
    BackupInfo {
        id: id.into(),
        created_at: at(created),
        status: BackupState::Completed,
        backup_type: BackupType::Full,
        parent: None,
        source: "s".into(),
        held: false,
        locked_until: None,
        verified: false,
    }
}

fn with(mut backup: BackupInfo, change: impl FnOnce(&mut BackupInfo)) -> BackupInfo {
    change(&mut backup);
    backup
}

fn policy(change: impl FnOnce(&mut RetentionPolicy)) -> RetentionPolicy {
    let mut policy = RetentionPolicy::default();
    change(&mut policy);
    policy
}

/// Runs a plan; returns (kept ids, deleted ids), each sorted.
fn run(backups: &[BackupInfo], policy: &RetentionPolicy, now: &str) -> (Vec<String>, Vec<String>) {
    let plan = plan_retention(backups, policy, at(now)).unwrap();
    let mut keep: Vec<_> = plan.keep.iter().map(|k| k.id.clone()).collect();
    let mut delete: Vec<_> = plan.delete.iter().map(|d| d.id.clone()).collect();
    keep.sort();
    delete.sort();
    (keep, delete)
}

fn check(name: &str, backups: &[BackupInfo], policy: RetentionPolicy, now: &str, kept: &[&str]) {
    let (keep, delete) = run(backups, &policy, now);
    assert_eq!(keep, kept, "{name}: kept (deleted: {delete:?})");
    assert_eq!(keep.len() + delete.len(), backups.len(), "{name}");
}

const NOW: &str = "2026-11-25T12:00:00Z";

#[test]
fn hand_written_cases() {
    let four = [
        b("a", "2026-11-20T10:00:00Z"),
        b("b", "2026-11-21T10:00:00Z"),
        b("c", "2026-11-22T10:00:00Z"),
        b("d", "2026-11-23T10:00:00Z"),
    ];
    check(
        "keep-last 2",
        &four,
        policy(|p| p.keep_last = Some(2)),
        NOW,
        &["c", "d"],
    );
    check(
        "keep-last 9",
        &four,
        policy(|p| p.keep_last = Some(9)),
        NOW,
        &["a", "b", "c", "d"],
    );
    check(
        "keep-days 4",
        &four,
        policy(|p| p.keep_days = Some(4)),
        NOW,
        &["c", "d"],
    );
    check("no rules keeps all", &four, policy(|_| {}), NOW, &["a", "b", "c", "d"]);
    check(
        "held and locked",
        &[
            with(b("a", "2026-11-20T10:00:00Z"), |b| b.held = true),
            with(b("b", "2026-11-21T10:00:00Z"), |b| {
                b.locked_until = Some(at("2027-01-01T00:00:00Z"))
            }),
            with(b("c", "2026-11-22T10:00:00Z"), |b| {
                b.locked_until = Some(at("2026-11-24T00:00:00Z"))
            }),
            b("d", "2026-11-23T10:00:00Z"),
        ],
        policy(|p| p.keep_last = Some(1)),
        NOW,
        &["a", "b", "d"],
    );
    check(
        "newest verified survives",
        &[
            b("a", "2026-11-20T10:00:00Z"),
            with(b("b", "2026-11-21T10:00:00Z"), |b| b.verified = true),
            b("c", "2026-11-22T10:00:00Z"),
            b("d", "2026-11-23T10:00:00Z"),
        ],
        policy(|p| p.keep_last = Some(1)),
        NOW,
        &["b", "d"],
    );
    check(
        "parent chain of a kept incremental",
        &[
            b("z", "2026-11-19T10:00:00Z"),
            b("a", "2026-11-20T10:00:00Z"),
            with(b("b", "2026-11-21T10:00:00Z"), |b| {
                b.backup_type = BackupType::Incremental;
                b.parent = Some("a".into())
            }),
            with(b("c", "2026-11-22T10:00:00Z"), |b| {
                b.backup_type = BackupType::Incremental;
                b.parent = Some("b".into())
            }),
        ],
        policy(|p| p.keep_last = Some(1)),
        NOW,
        &["a", "b", "c"],
    );
    check(
        "failed, pending and in progress",
        &[
            with(b("old-failed", "2026-11-10T10:00:00Z"), |b| {
                b.status = BackupState::Failed
            }),
            with(b("new-failed", "2026-11-24T10:00:00Z"), |b| {
                b.status = BackupState::Failed
            }),
            with(b("old-pending", "2026-01-01T10:00:00Z"), |b| {
                b.status = BackupState::Pending
            }),
            with(b("old-running", "2026-01-01T10:00:00Z"), |b| {
                b.status = BackupState::InProgress
            }),
            b("d", "2026-11-23T10:00:00Z"),
        ],
        policy(|p| p.keep_last = Some(1)),
        NOW,
        &["d", "new-failed", "old-pending", "old-running"],
    );
    check(
        "failed within keep-days stays",
        &[
            with(b("f", "2026-11-10T10:00:00Z"), |b| b.status = BackupState::Failed),
            b("d", "2026-11-23T10:00:00Z"),
        ],
        policy(|p| p.keep_days = Some(30)),
        NOW,
        &["d", "f"],
    );
    check(
        "no rules keeps failed too",
        &[with(b("f", "2025-11-10T10:00:00Z"), |b| b.status = BackupState::Failed)],
        policy(|_| {}),
        NOW,
        &["f"],
    );
    // Daily: the newest of each of the last 2 days that have backups.
    let days = [
        b("d1-early", "2026-11-20T08:00:00Z"),
        b("d1-late", "2026-11-20T18:00:00Z"),
        b("d3-early", "2026-11-22T08:00:00Z"),
        b("d3-late", "2026-11-22T18:00:00Z"),
        b("d0", "2026-11-19T18:00:00Z"),
    ];
    check(
        "daily 2 skips empty days",
        &days,
        policy(|p| p.daily = Some(2)),
        NOW,
        &["d1-late", "d3-late"],
    );
    check(
        "daily 5 with fewer days",
        &days,
        policy(|p| p.daily = Some(5)),
        NOW,
        &["d0", "d1-late", "d3-late"],
    );
    // Weekly: Sunday 2026-11-22 and Monday 2026-11-23 are in different ISO weeks.
    let weeks = [
        b("sat", "2026-11-21T10:00:00Z"),
        b("sun", "2026-11-22T10:00:00Z"),
        b("mon", "2026-11-23T10:00:00Z"),
    ];
    check("weekly 2", &weeks, policy(|p| p.weekly = Some(2)), NOW, &["mon", "sun"]);
    let months = [
        b("oct-a", "2026-10-01T10:00:00Z"),
        b("oct-b", "2026-10-30T10:00:00Z"),
        b("nov", "2026-11-02T10:00:00Z"),
        b("y25", "2025-06-02T10:00:00Z"),
    ];
    check(
        "monthly 2",
        &months,
        policy(|p| p.monthly = Some(2)),
        NOW,
        &["nov", "oct-b"],
    );
    check(
        "yearly 3",
        &months,
        policy(|p| p.yearly = Some(3)),
        NOW,
        &["nov", "y25"],
    );
    check(
        "rules combine",
        &months,
        policy(|p| {
            p.keep_last = Some(1);
            p.yearly = Some(2)
        }),
        NOW,
        &["nov", "y25"],
    );
}

#[test]
fn days_begin_in_the_policys_time_zone() {
    // Winter: Berlin is UTC+1, so 23:30 UTC on the 14th is 00:30 on the 15th there.
    let winter = [
        b("noon", "2026-01-14T12:00:00Z"),
        b("late", "2026-01-14T23:30:00Z"),
        b("after-midnight", "2026-01-15T00:30:00Z"),
    ];
    let daily = |tz: &str| {
        policy(|p| {
            p.daily = Some(2);
            p.timezone = tz.into()
        })
    };
    check("winter UTC", &winter, daily("UTC"), NOW, &["after-midnight", "late"]);
    check(
        "winter Berlin",
        &winter,
        daily("Europe/Berlin"),
        NOW,
        &["after-midnight", "noon"],
    );
    // Summer: UTC+2, so 22:30 UTC is already the next day in Berlin.
    let summer = [
        b("noon", "2026-07-14T12:00:00Z"),
        b("late", "2026-07-14T22:30:00Z"),
        b("after-midnight", "2026-07-14T23:30:00Z"),
    ];
    check("summer UTC", &summer, daily("UTC"), NOW, &["after-midnight"]);
    check(
        "summer Berlin",
        &summer,
        daily("Europe/Berlin"),
        NOW,
        &["after-midnight", "noon"],
    );
    // New York is behind UTC: 02:00 UTC on the 15th is still the 14th there.
    let west = [b("a", "2026-01-14T20:00:00Z"), b("b", "2026-01-15T02:00:00Z")];
    check("New York", &west, daily("America/New_York"), NOW, &["b"]);
    check("UTC splits them", &west, daily("UTC"), NOW, &["a", "b"]);
    let plan = plan_retention(&winter, &daily("Europe/Berlin"), at(NOW)).unwrap();
    assert_eq!(
        plan.keep[0].reasons[0],
        KeepReason::Daily {
            day: "2026-01-15".into()
        }
    );
}

#[test]
fn bad_policies_are_refused_by_name() {
    let bad_zone = policy(|p| {
        p.keep_last = Some(1);
        p.timezone = "Mars/Olympus_Mons".into()
    });
    let error = plan_retention(&[], &bad_zone, at(NOW)).unwrap_err();
    assert!(matches!(&error, RetentionError::UnknownTimezone { name, .. } if name == "Mars/Olympus_Mons"));
    assert!(error.to_string().contains("Mars/Olympus_Mons"), "{error}");
    let zero = policy(|p| p.daily = Some(0));
    assert_eq!(
        zero.validate().unwrap_err(),
        RetentionError::ZeroCount { rule: "keep-daily" }
    );
    assert!(!RetentionPolicy::default().has_rules());
    let plan = plan_retention(&[b("a", NOW)], &RetentionPolicy::default(), at(NOW)).unwrap();
    assert!(plan.no_rules);
}

#[test]
fn huge_keep_days_is_refused_with_the_maximum_instead_of_overflowing() {
    for (set, rule, value, max) in [
        (policy(|p| p.keep_days = Some(u32::MAX)), "keep-days", u32::MAX, 36_500),
        (policy(|p| p.daily = Some(36_501)), "keep-daily", 36_501, 36_500),
        (policy(|p| p.weekly = Some(5_215)), "keep-weekly", 5_215, 5_214),
        (policy(|p| p.monthly = Some(10_000)), "keep-monthly", 10_000, 1_177),
        (policy(|p| p.yearly = Some(1_000)), "keep-yearly", 1_000, 99),
    ] {
        let error = plan_retention(&[b("a", NOW)], &set, at(NOW)).unwrap_err();
        assert_eq!(error, RetentionError::TooLarge { rule, value, max });
        assert!(
            error
                .to_string()
                .contains(&format!("{value}, more than the maximum {max}")),
            "{error}"
        );
    }
    let most = policy(|p| {
        p.keep_days = Some(36_500);
        p.keep_last = Some(u32::MAX);
    });
    let plan = plan_retention(&[b("a", NOW)], &most, at(NOW)).unwrap();
    assert!(plan.delete.is_empty());
}

#[test]
fn policies_read_from_json() {
    let policy: RetentionPolicy = serde_json::from_str(r#"{"keepLast": 3, "daily": 7}"#).unwrap();
    assert_eq!(policy.keep_last, Some(3));
    assert_eq!(policy.daily, Some(7));
    assert_eq!(policy.timezone, "UTC");
}

mod properties {
    use proptest::prelude::*;

    use super::super::*;

    const SOURCES: [&str; 2] = ["s3://a/", "/data/b"];
    const ZONES: [&str; 5] = [
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Asia/Kolkata",
        "Pacific/Chatham",
    ];
    const TWO_YEARS: i64 = 2 * 366 * 24 * 3600;

    fn base() -> Timestamp {
        Timestamp::from_second(1_735_689_600).expect("2025-01-01") // 2025-01-01T00:00:00Z
    }

    /// One backup before sorting: (offset seconds, status, type, parent pick, source, held, lock, verified).
    type Raw = (i64, u8, u8, Option<prop::sample::Index>, usize, bool, u8, bool);

    fn raw() -> impl Strategy<Value = Raw> {
        (
            0..TWO_YEARS,
            0u8..10,
            0u8..3,
            prop::option::of(any::<prop::sample::Index>()),
            0..SOURCES.len(),
            prop::bool::weighted(0.1),
            0u8..6,
            any::<bool>(),
        )
    }

    fn history(protections: bool) -> impl Strategy<Value = Vec<BackupInfo>> {
        prop::collection::vec(raw(), 0..40).prop_map(move |mut raws| {
            raws.sort_by_key(|r| r.0);
            let mut out: Vec<BackupInfo> = Vec::new();
            for (i, (offset, status, kind, parent, source, held, lock, verified)) in raws.into_iter().enumerate() {
                let created_at = base() + SignedDuration::from_secs(offset);
                let status = match status {
                    0 => BackupState::Pending,
                    1 => BackupState::InProgress,
                    2 | 3 => BackupState::Failed,
                    _ => BackupState::Completed,
                };
                let backup_type = [BackupType::Full, BackupType::Incremental, BackupType::Differential][kind as usize];
                let parent = match (&backup_type, parent) {
                    (BackupType::Full, _) | (_, None) => None,
                    (_, Some(_)) if i == 0 => None,
                    (_, Some(pick)) => Some(out[pick.index(i)].id.clone()),
                };
                let locked_until = match lock {
                    0 if protections => Some(created_at + SignedDuration::from_hours(24 * 400)),
                    1 if protections => Some(created_at + SignedDuration::from_hours(24)),
                    _ => None,
                };
                out.push(BackupInfo {
                    id: format!("bk-{i:03}"),
                    created_at,
                    status,
                    backup_type,
                    parent,
                    source: SOURCES[source].into(),
                    held: protections && held,
                    locked_until,
                    verified: protections && verified,
                });
            }
            out
        })
    }

    fn count() -> impl Strategy<Value = Option<u32>> {
        prop::option::of(1u32..12)
    }

    fn policy() -> impl Strategy<Value = RetentionPolicy> {
        (count(), count(), count(), count(), count(), count(), 0..ZONES.len()).prop_map(
            |(keep_days, keep_last, daily, weekly, monthly, yearly, zone)| RetentionPolicy {
                keep_days: keep_days.map(|d| d * 30),
                keep_last,
                daily,
                weekly,
                monthly,
                yearly,
                timezone: ZONES[zone].into(),
            },
        )
    }

    fn now() -> impl Strategy<Value = Timestamp> {
        (0..TWO_YEARS + 90 * 24 * 3600).prop_map(|s| base() + SignedDuration::from_secs(s))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn plans_partition_protect_and_keep_chains(backups in history(true), policy in policy(), now in now()) {
            let plan = plan_retention(&backups, &policy, now).unwrap();
            let kept: HashSet<&str> = plan.keep.iter().map(|k| k.id.as_str()).collect();
            let deleted: HashSet<&str> = plan.delete.iter().map(|d| d.id.as_str()).collect();
            // (b) a partition of all backups.
            prop_assert!(kept.is_disjoint(&deleted));
            prop_assert_eq!(kept.len() + deleted.len(), backups.len());
            prop_assert!(backups.iter().all(|b| kept.contains(b.id.as_str()) || deleted.contains(b.id.as_str())));
            prop_assert_eq!(kept.len(), plan.keep.len());
            // (a) nothing protected is deleted.
            for b in &backups {
                let protected = b.held
                    || b.locked_until.is_some_and(|t| t > now)
                    || matches!(b.status, BackupState::Pending | BackupState::InProgress)
                    || !policy.has_rules();
                prop_assert!(!(protected && deleted.contains(b.id.as_str())), "{} is protected: {:?}", b.id, b);
            }
            for source in SOURCES {
                let mut completed: Vec<&BackupInfo> = backups.iter()
                    .filter(|b| b.source == source && b.status == BackupState::Completed)
                    .collect();
                completed.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
                let anchor = completed.iter().find(|b| b.verified).or(completed.first());
                if let Some(anchor) = anchor {
                    prop_assert!(kept.contains(anchor.id.as_str()), "newest usable {} deleted", anchor.id);
                }
            }
            // (c) every kept backup's parent chain is kept.
            let by_id: HashMap<&str, &BackupInfo> = backups.iter().map(|b| (b.id.as_str(), b)).collect();
            for id in &kept {
                let mut current = by_id[id];
                while let Some(parent) = current.parent.as_deref() {
                    prop_assert!(kept.contains(parent), "{} kept, its ancestor {} not", id, parent);
                    current = by_id[parent];
                }
            }
            // Completed backups go only for "no rule keeps it", failed ones only when old.
            for d in &plan.delete {
                let b = by_id[d.id.as_str()];
                match b.status {
                    BackupState::Completed => prop_assert_eq!(&d.reason, &DeleteReason::NotKept),
                    BackupState::Failed => {
                        let failed_long_ago = matches!(d.reason, DeleteReason::FailedLongAgo { .. });
                        prop_assert!(failed_long_ago, "{:?}", d)
                    }
                    _ => prop_assert!(false, "unfinished {} deleted", d.id),
                }
            }
            // (e) deterministic, whatever the input order.
            let mut reversed = backups.clone();
            reversed.reverse();
            prop_assert_eq!(&plan_retention(&backups, &policy, now).unwrap(), &plan);
            prop_assert_eq!(&plan_retention(&reversed, &policy, now).unwrap(), &plan);
        }

        #[test]
        fn keep_last_alone_keeps_exactly_n(backups in history(false), n in 1u32..15, now in now()) {
            let policy = RetentionPolicy { keep_last: Some(n), ..RetentionPolicy::default() };
            let plan = plan_retention(&backups, &policy, now).unwrap();
            for source in SOURCES {
                let completed = backups.iter()
                    .filter(|b| b.source == source && b.status == BackupState::Completed)
                    .count();
                let by_rule = plan.keep.iter()
                    .filter(|k| k.source == source && k.reasons.contains(&KeepReason::Last))
                    .count();
                // (d)
                prop_assert_eq!(by_rule, completed.min(n as usize));
                prop_assert!(plan.keep.iter()
                    .filter(|k| k.reasons.contains(&KeepReason::Last))
                    .all(|k| backups.iter().any(|b| b.id == k.id && b.status == BackupState::Completed)));
            }
        }
    }
}
