//! `lifeboat gc`, `hold add|remove|list` and `retention apply`: garbage
//! collection, holds, retention plans and their results.

use lifeboat::catalog::HoldRecord;
use lifeboat::expire::ExpirySummary;
use lifeboat::gc::{GcReport, RebuildReport};
use lifeboat::retention::{RetentionPlan, RetentionPolicy};

use super::{bytes, json, print_lines, Renderer};

impl Renderer {
    pub fn gc(&self, r: &GcReport) {
        if !self.is_text() {
            return json(r);
        }
        let would = if r.dry_run { "would be " } else { "" };
        for s in &r.swept {
            println!(
                "Swept {}: {} packs {would}deleted, {} {would}rewritten into {} new, {} chunks {would}removed, {} rescued (referenced again), {} {would}freed.",
                s.list,
                s.packs_deleted,
                s.packs_rewritten,
                s.packs_written,
                s.chunks_removed,
                s.chunks_rescued,
                bytes(s.bytes_freed)
            );
        }
        for w in &r.waiting {
            println!("Not swept yet: {}: {}.", w.list, w.reason);
        }
        for id in &r.abandoned_backups {
            println!("Backup {id} was unfinished for too long: {would}marked failed.");
        }
        for id in &r.orphan_manifests {
            println!("Manifest of backup {id} (its record is absent, failed or deleted): {would}deleted.");
        }
        match &r.marked {
            Some(m) => println!(
                "Marked {} of garbage: {} chunks in {} packs to delete and {} to rewrite, {} packs no index lists{}.",
                bytes(m.garbage_bytes),
                m.chunks,
                m.packs_to_delete,
                m.packs_to_rewrite,
                m.unindexed_packs,
                m.list
                    .as_ref()
                    .map(|l| format!("; candidate list {l}, swept by a run after the grace period"))
                    .unwrap_or_default()
            ),
            None => println!("No new garbage to mark."),
        }
    }

    pub fn index_rebuild(&self, r: &RebuildReport) {
        if !self.is_text() {
            return json(r);
        }
        print_lines(&index_rebuild_lines(r));
    }

    pub fn hold_added(&self, hold: &HoldRecord, added: bool) {
        if !self.is_text() {
            return json(&serde_json::json!({"hold": hold, "added": added}));
        }
        if added {
            println!(
                "Backup {} is held ({}); retention will not delete it until `lifeboat hold remove {}`.",
                hold.backup_id, hold.reason, hold.backup_id
            );
        } else {
            println!(
                "Backup {} was already held; the existing hold is unchanged.",
                hold.backup_id
            );
        }
    }

    pub fn hold_removed(&self, id: &str, removed: Option<&HoldRecord>) {
        if !self.is_text() {
            return json(&serde_json::json!({"backupId": id, "removed": removed}));
        }
        match removed {
            Some(hold) => println!(
                "Hold on backup {id} removed (held since {} by {}: {}).",
                hold.created_at, hold.actor, hold.reason
            ),
            None => println!("Backup {id} was not held; nothing changed."),
        }
    }

    pub fn holds(&self, holds: &[HoldRecord]) {
        if !self.is_text() {
            return json(&holds);
        }
        if holds.is_empty() {
            println!("No holds.");
            return;
        }
        println!("{:<28}  {:<24}  {:<24}  REASON", "BACKUP", "SINCE", "BY");
        for h in holds {
            println!(
                "{:<28}  {:<24}  {:<24}  {}",
                h.backup_id, h.created_at, h.actor, h.reason
            );
        }
    }

    /// A dry run's plan.
    pub fn retention_plan(&self, plan: &RetentionPlan) {
        if !self.is_text() {
            return json(&serde_json::json!({"dryRun": true, "plan": plan}));
        }
        print_lines(&retention_plan_lines(plan));
        println!("Dry run: nothing was changed.");
    }

    pub fn expiry(&self, s: &ExpirySummary) {
        if !self.is_text() {
            return json(s);
        }
        print_lines(&expiry_lines(s));
    }
}

/// `lifeboat index rebuild`'s result for people.
fn index_rebuild_lines(r: &RebuildReport) -> Vec<String> {
    let would = if r.dry_run { "would be " } else { "" };
    let mut lines = vec![format!(
        "{} of the store's {} packs were in no index; {} {would}indexed again from their headers ({} chunks){}.",
        r.unindexed_packs,
        r.packs,
        r.packs_recovered,
        r.chunks_recovered,
        r.index.as_ref().map(|i| format!(", in {i}")).unwrap_or_default()
    )];
    for damaged in &r.damaged_packs {
        lines.push(format!("Pack {} could not be read: {}", damaged.pack, damaged.error));
    }
    if r.damaged_backups.is_empty() {
        lines.push(format!(
            "Every chunk of the store's {} completed backups is {}indexed.",
            r.backups_checked,
            if r.dry_run { "then " } else { "" }
        ));
    } else {
        lines.push(format!(
            "{} of {} completed backups still reference chunks in no pack's header: they are damaged and cannot be fully restored:",
            r.damaged_backups.len(),
            r.backups_checked
        ));
        for b in &r.damaged_backups {
            lines.push(format!("  {}  {} chunks missing", b.backup_id, b.chunks));
        }
    }
    if r.dry_run {
        lines.push("Dry run: nothing was written.".into());
    }
    lines
}

fn policy_text(policy: &RetentionPolicy) -> String {
    let rules: Vec<String> = [
        ("keep-last", policy.keep_last),
        ("keep-daily", policy.daily),
        ("keep-weekly", policy.weekly),
        ("keep-monthly", policy.monthly),
        ("keep-yearly", policy.yearly),
        ("keep-days", policy.keep_days),
    ]
    .into_iter()
    .filter_map(|(name, count)| count.map(|n| format!("{name} {n}")))
    .collect();
    if rules.is_empty() {
        format!("no rules, time zone {}", policy.timezone)
    } else {
        format!("{}, time zone {}", rules.join(", "), policy.timezone)
    }
}

/// A retention plan for people: one line per backup, deletions first.
fn retention_plan_lines(plan: &RetentionPlan) -> Vec<String> {
    let mut lines = vec![format!(
        "Retention at {} ({}): {} to delete, {} to keep.",
        plan.at,
        policy_text(&plan.policy),
        plan.delete.len(),
        plan.keep.len()
    )];
    if plan.no_rules {
        lines.push("The policy sets no rule, so every backup is kept.".into());
    }
    for d in &plan.delete {
        lines.push(format!(
            "  delete  {:<28}  {}  {}: {}",
            d.id,
            d.created_at,
            d.source,
            d.reason.describe()
        ));
    }
    for k in &plan.keep {
        let why: Vec<String> = k.reasons.iter().map(|r| r.describe()).collect();
        lines.push(format!(
            "  keep    {:<28}  {}  {}: {}",
            k.id,
            k.created_at,
            k.source,
            why.join("; ")
        ));
    }
    lines
}

fn expiry_lines(s: &ExpirySummary) -> Vec<String> {
    let mut lines = vec![format!(
        "Retention at {}: {} backups deleted, {} kept, {} skipped, {} failed.",
        s.at,
        s.deleted.len(),
        s.kept.len(),
        s.skipped.len(),
        s.failed.len()
    )];
    for d in &s.deleted {
        lines.push(format!(
            "  deleted  {:<28}  {}: {}",
            d.id,
            d.source,
            d.reason.describe()
        ));
    }
    for n in &s.skipped {
        lines.push(format!("  skipped  {:<28}  {}", n.id, n.reason));
    }
    for n in &s.failed {
        lines.push(format!("  failed   {:<28}  {}", n.id, n.reason));
    }
    if !s.deleted.is_empty() {
        lines.push(
            "Their records are marked deleted and their manifests removed; chunk data stays until `lifeboat gc`."
                .into(),
        );
    }
    lines
}

#[cfg(test)]
mod tests {
    #[test]
    fn retention_plans_say_what_goes_and_why_the_rest_stays() {
        use lifeboat::retention::{plan_retention, BackupInfo, BackupState, RetentionPolicy};
        let backup = |id: &str, at: &str, held: bool| BackupInfo {
            id: id.into(),
            created_at: at.parse().unwrap(),
            status: BackupState::Completed,
            backup_type: lifeboat::format::BackupType::Full,
            parent: None,
            source: "s3://b/app/".into(),
            held,
            locked_until: None,
            verified: false,
        };
        let policy = RetentionPolicy {
            keep_last: Some(1),
            timezone: "Europe/Berlin".into(),
            ..RetentionPolicy::default()
        };
        let plan = plan_retention(
            &[
                backup("bk-a", "2026-11-20T10:00:00Z", true),
                backup("bk-b", "2026-11-21T10:00:00Z", false),
                backup("bk-c", "2026-11-22T10:00:00Z", false),
            ],
            &policy,
            "2026-11-23T00:00:00Z".parse().unwrap(),
        )
        .unwrap();
        let lines = super::retention_plan_lines(&plan);
        assert_eq!(
            lines[0],
            "Retention at 2026-11-23T00:00:00Z (keep-last 1, time zone Europe/Berlin): 1 to delete, 2 to keep."
        );
        assert!(lines[1].starts_with("  delete  bk-b "), "{lines:?}");
        assert!(lines[1].ends_with("s3://b/app/: no rule keeps it"), "{lines:?}");
        assert!(
            lines[2].ends_with("keep-last; newest completed backup of its source"),
            "{lines:?}"
        );
        assert!(lines[3].ends_with(": held"), "{lines:?}");
    }
}
