//! All output of the toolkit: text for people, JSON for programs.

use lifeboat::audit::{AuditRecord, AuditVerification};
use lifeboat::backup::BackupSummary;
use lifeboat::catalog::{BackupRecord, HoldRecord};
use lifeboat::dump::DumpRestoreSummary;
use lifeboat::expire::ExpirySummary;
use lifeboat::gc::GcReport;
use lifeboat::plan::PlanCheck;
use lifeboat::repo::InitOutcome;
use lifeboat::restore::RestoreSummary;
use lifeboat::retention::{RetentionPlan, RetentionPolicy};
use lifeboat::verify::VerifyReport;
use serde::Serialize;

use crate::cli::Output;

pub struct Renderer {
    output: Output,
}

fn json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("lifeboat: cannot render JSON: {e}"),
    }
}

/// 1536 → "1.5 KiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl Renderer {
    pub fn new(output: Output) -> Self {
        Self { output }
    }

    pub fn is_text(&self) -> bool {
        self.output == Output::Text
    }

    /// `lifeboat plan check`: each valid plan, then every problem.
    pub fn plan_check(&self, file: &str, check: &PlanCheck) {
        if !self.is_text() {
            return json(&serde_json::json!({
                "file": file,
                "ok": check.ok(),
                "plans": check.plans,
                "problems": check.problems,
            }));
        }
        for plan in &check.plans {
            println!("Plan {} ({})", plan.name, plan.tier.as_str());
            if let Some(description) = &plan.description {
                println!("  description      {description}");
            }
            println!(
                "  schedule         {} ({}, {})",
                plan.schedule_words, plan.schedule, plan.timezone
            );
            for (i, run) in plan.next_runs.iter().enumerate() {
                let label = if i == 0 { "next runs" } else { "" };
                let shown = run
                    .parse::<jiff::Zoned>()
                    .map_or_else(|_| run.clone(), |z| z.strftime("%a %Y-%m-%d %H:%M %Z").to_string());
                println!("  {label:<16} {shown}");
            }
            if let Some(note) = &plan.next_runs_note {
                println!("  next runs        not computed: {note}");
            }
            if !plan.tags.is_empty() {
                let tags: Vec<String> = plan.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("  selects tags     {}", tags.join(", "));
            }
            for resource in &plan.resources {
                println!("  selects          {}", resource.describe());
            }
            for source in &plan.sources {
                println!("  backs up files   {source}");
            }
            if plan.copy_regions.is_empty() {
                println!("  copies           none");
            }
            for copy in &plan.copy_regions {
                println!("  copies to        {} with {}", copy.region, copy.kms_key);
            }
            let r = &plan.retention;
            let rules: Vec<String> = [
                ("keep_days", r.keep_days),
                ("keep_last", r.keep_last),
                ("daily", r.daily),
                ("weekly", r.weekly),
                ("monthly", r.monthly),
                ("yearly", r.yearly),
            ]
            .iter()
            .filter_map(|(rule, count)| count.map(|n| format!("{rule} {n}")))
            .collect();
            println!("  retention        {} ({})", rules.join(", "), r.timezone);
            println!("  rpo              {}", plan.rpo);
            if let Some(test) = &plan.restore_test {
                println!(
                    "  restore test     every {} on {} (timeout {}): {}",
                    test.every,
                    test.instance_class,
                    test.timeout,
                    test.checks.join(", ")
                );
            }
            println!();
        }
        if check.ok() {
            println!("{file}: {} plan(s), no problem.", check.plans.len());
        } else {
            println!("{file}: {} problem(s):", check.problems.len());
            for problem in &check.problems {
                println!("  {problem}");
            }
        }
    }

    pub fn init(&self, outcome: &InitOutcome, table: &str, table_created: Option<bool>) {
        let (repo, created) = match outcome {
            InitOutcome::Created(repo) => (repo, true),
            InitOutcome::AlreadyInitialised(repo) => (repo, false),
        };
        if !self.is_text() {
            json(&serde_json::json!({
                "store": repo.location(),
                "storeId": repo.config.store_id,
                "kmsKeyId": repo.config.kms_key_id,
                "created": created,
                "table": table,
                "tableCreated": table_created,
            }));
            return;
        }
        match table_created {
            Some(true) => println!("Created catalog table {table}."),
            Some(false) => println!("Catalog table {table} already exists; left as it is."),
            None => {}
        }
        if created {
            println!(
                "Initialised store {} (id {}), keys wrapped by {}.",
                repo.location(),
                repo.config.store_id,
                repo.config.kms_key_id
            );
        } else {
            println!(
                "Store {} is already initialised (id {}, keys wrapped by {}); nothing changed.",
                repo.location(),
                repo.config.store_id,
                repo.config.kms_key_id
            );
        }
    }

    pub fn backup(&self, s: &BackupSummary) {
        if !self.is_text() {
            return json(s);
        }
        if s.duplicate {
            println!(
                "Backup {} ({}) already exists for this event; no new backup made.",
                s.backup_id,
                s.status.as_str()
            );
            return;
        }
        println!(
            "Backup {} completed: {} of {}",
            s.backup_id,
            s.backup_type.as_str(),
            s.source
        );
        if let Some(parent) = &s.parent_backup {
            println!("  parent           {parent}");
        }
        println!(
            "  entries          {} scanned, {} new or changed",
            s.entries_scanned, s.entries_changed
        );
        println!(
            "  data             {} in the backup, {} read",
            bytes(s.bytes_scanned),
            bytes(s.bytes_read)
        );
        println!(
            "  stored           {} new ({} new data before compression)",
            bytes(s.bytes_stored),
            bytes(s.bytes_new)
        );
        if s.reduction_ratio > 0.0 {
            println!(
                "  reduction        {:.2}x (deduplication and compression)",
                s.reduction_ratio
            );
        }
        println!("  took             {:.1} s", s.duration_seconds);
    }

    pub fn backups(&self, records: &[BackupRecord]) {
        if !self.is_text() {
            return json(&records);
        }
        if records.is_empty() {
            println!("No backups.");
            return;
        }
        println!(
            "{:<28}  {:<12}  {:<11}  {:>10}  {:>10}  {:<24}  SOURCE",
            "ID", "TYPE", "STATUS", "SIZE", "STORED", "CREATED"
        );
        for r in records {
            println!(
                "{:<28}  {:<12}  {:<11}  {:>10}  {:>10}  {:<24}  {}",
                r.id,
                r.backup_type.as_str(),
                r.status.as_str(),
                bytes(r.size),
                bytes(r.compressed_size),
                r.created_at,
                r.source
            );
        }
    }

    pub fn backup_record(&self, r: &BackupRecord) {
        if !self.is_text() {
            return json(r);
        }
        let rows: [(&str, String); 13] = [
            ("id", r.id.clone()),
            ("type", r.backup_type.as_str().to_owned()),
            ("status", r.status.as_str().to_owned()),
            ("source", r.source.clone()),
            (
                "size",
                format!(
                    "{} ({} entries, {} read)",
                    bytes(r.size),
                    r.entry_count,
                    r.changed_count
                ),
            ),
            ("stored", bytes(r.compressed_size)),
            ("created", r.created_at.clone()),
            ("completed", r.completed_at.clone().unwrap_or_else(|| "-".into())),
            (
                "retention until",
                r.retention_until.clone().unwrap_or_else(|| "-".into()),
            ),
            ("parent", r.parent_backup.clone().unwrap_or_else(|| "-".into())),
            ("manifest", r.storage_location.clone()),
            ("checksum", r.checksum.clone().unwrap_or_else(|| "-".into())),
            ("kms key", r.kms_key_id.clone()),
        ];
        for (name, value) in rows {
            println!("{name:<16} {value}");
        }
        for (name, value) in [
            ("engine", &r.engine),
            ("server version", &r.server_version),
            ("database", &r.database),
        ] {
            if let Some(value) = value {
                println!("{name:<16} {value}");
            }
        }
        if let Some(error) = &r.error {
            println!("{:<16} {error}", "error");
        }
    }

    pub fn restore(&self, s: &RestoreSummary) {
        if !self.is_text() {
            return json(s);
        }
        println!(
            "Restored {} entries ({}) of backup {} to {} in {:.1} s; every chunk and every file checksum verified.",
            s.entries_restored,
            bytes(s.bytes_restored),
            s.backup_id,
            s.target,
            s.duration_seconds
        );
    }

    pub fn restore_dump(&self, s: &DumpRestoreSummary) {
        if !self.is_text() {
            return json(s);
        }
        println!(
            "Restored backup {} ({} dump, {}) into {}{} in {:.1} s; every chunk and the dump's checksum verified.",
            s.backup_id,
            s.engine.as_str(),
            bytes(s.bytes_restored),
            s.target,
            if s.created_database { " (created)" } else { "" },
            s.duration_seconds
        );
        if s.tables.is_empty() {
            println!("  the database has no tables");
        }
        for t in &s.tables {
            println!("  {:<40} {:>12} rows", t.table, t.rows);
        }
    }

    pub fn restore_dump_file(&self, s: &lifeboat::dump::DumpFileRestoreSummary) {
        if !self.is_text() {
            return json(s);
        }
        println!(
            "Restored backup {} ({} dump, {}) into the file {} in {:.1} s; every chunk and the dump's checksum verified.",
            s.backup_id,
            s.engine.as_str(),
            bytes(s.bytes_restored),
            s.path,
            s.duration_seconds
        );
    }

    /// The last row of `backups show` (text only: the JSON is the record).
    pub fn last_verification(&self, v: Option<&lifeboat::catalog::VerificationRecord>) {
        let text = match v {
            None => "never (run `lifeboat verify`)".to_owned(),
            Some(v) => format!(
                "{} {}, {}",
                v.verification_type.as_str(),
                v.status.as_str(),
                v.completed_at
            ),
        };
        println!("{:<16} {text}", "last verified");
    }

    pub fn verify(&self, r: &VerifyReport) {
        if !self.is_text() {
            return json(r);
        }
        for line in verify_lines(r) {
            println!("{line}");
        }
    }

    pub fn verify_sample(&self, r: &lifeboat::verify::sample::SampleReport) {
        if !self.is_text() {
            return json(r);
        }
        for p in &r.problems {
            println!("{}: {}: {}", p.object, p.kind.describe(), p.detail);
            if !p.entries.is_empty() {
                let shown: Vec<&str> = p.entries.iter().take(10).map(String::as_str).collect();
                let more = p.entries.len().saturating_sub(10);
                let more = if more > 0 {
                    format!(" … and {more} more")
                } else {
                    String::new()
                };
                println!("  affects {} entries: {}{more}", p.entries.len(), shown.join(", "));
            }
        }
        let range = match (&r.first_pack, &r.last_pack) {
            (Some(first), Some(last)) => format!(", {} … {}", short_pack(first), short_pack(last)),
            _ => String::new(),
        };
        let walk = if r.walk_completed {
            format!("; this run completed walk {} of the store", r.passes)
        } else {
            format!("; {} complete walks so far", r.passes)
        };
        let checked = format!(
            "read {} of {} packs whole ({}, {} chunks{range}){walk}",
            r.packs_checked,
            r.packs_in_store,
            bytes(r.bytes_checked),
            r.chunks_checked
        );
        match r.problems.len() {
            0 => println!("Store {} sample OK: {checked}.", r.store),
            n => println!(
                "Store {}: {n} problem(s) found, affecting backups {}: {checked}.",
                r.store,
                r.affected_backups.join(", ")
            ),
        }
    }

    pub fn audit_records(&self, records: &[AuditRecord]) {
        if !self.is_text() {
            return json(&records);
        }
        for line in audit_record_lines(records) {
            println!("{line}");
        }
    }

    pub fn audit_verification(&self, r: &AuditVerification) {
        if !self.is_text() {
            return json(r);
        }
        println!("{}", audit_verification_line(r));
    }

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

    pub fn rewrap(&self, store: &str, old: &str, new: &str) {
        if !self.is_text() {
            return json(&serde_json::json!({"store": store, "previousKmsKeyId": old, "kmsKeyId": new}));
        }
        println!("Store {store}: keys re-wrapped from {old} to {new}; no data was rewritten.");
    }
}

/// The audit trail as a table, oldest first; details as compact JSON.
fn audit_record_lines(records: &[AuditRecord]) -> Vec<String> {
    if records.is_empty() {
        return vec!["No audit records.".into()];
    }
    let mut lines = vec![format!(
        "{:>6}  {:<24}  {:<18}  {:<30}  {:<24}  DETAILS",
        "SEQ", "AT", "ACTION", "SUBJECT", "ACTOR"
    )];
    for r in records {
        lines.push(format!(
            "{:>6}  {:<24}  {:<18}  {:<30}  {:<24}  {}",
            r.seq,
            r.at,
            r.action,
            r.subject,
            r.actor,
            lifeboat::audit::canonical_json(&r.details)
        ));
    }
    lines
}

/// An audit verification for people: the verdict, naming the first bad record.
fn audit_verification_line(r: &AuditVerification) -> String {
    match &r.problem {
        None if r.records == 0 => format!("Audit trail in catalog table {} is empty; nothing to verify.", r.table),
        None => format!(
            "Audit trail in catalog table {} intact: {} records, each hash and link checked, head at record {}.",
            r.table,
            r.records,
            r.head_seq.unwrap_or(r.records)
        ),
        Some(p) => format!(
            "Audit trail in catalog table {} TAMPERED: record {} {}: {}",
            r.table,
            p.seq,
            p.kind.describe(),
            p.detail
        ),
    }
}

/// A pack's key shortened to its name's first 12 digits.
fn short_pack(key: &str) -> &str {
    let name = key.rsplit('/').next().unwrap_or(key);
    name.get(..12).unwrap_or(name)
}

/// A verification report for people: one line per problem (and the entries
/// it affects), then the verdict.
fn verify_lines(r: &VerifyReport) -> Vec<String> {
    const SHOWN: usize = 10;
    let mut lines = Vec::new();
    for p in &r.problems {
        lines.push(format!("{}: {}: {}", p.object, p.kind.describe(), p.detail));
        if !p.entries.is_empty() {
            let mut affected = p.entries.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
            if p.entries.len() > SHOWN {
                affected.push_str(&format!(" … and {} more", p.entries.len() - SHOWN));
            }
            lines.push(format!("  affects {} entries: {affected}", p.entries.len()));
        }
    }
    let c = &r.checked;
    let checked = format!(
        "{} entries ({}), {} chunks in {} packs ({}), {} index objects",
        c.entries,
        bytes(c.bytes),
        c.chunks,
        c.packs,
        bytes(c.pack_bytes),
        c.index_objects
    );
    let mode = r.mode.as_str();
    match r.problems.len() {
        0 => lines.push(format!("Backup {} verified OK ({mode}): {checked}.", r.backup_id)),
        1 => lines.push(format!(
            "Backup {}: 1 problem found ({mode}); checked {checked}.",
            r.backup_id
        )),
        n => lines.push(format!(
            "Backup {}: {n} problems found ({mode}); checked {checked}.",
            r.backup_id
        )),
    }
    lines
}

/// Holds, retention plans and their results.
impl Renderer {
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
        for line in retention_plan_lines(plan) {
            println!("{line}");
        }
        println!("Dry run: nothing was changed.");
    }

    pub fn expiry(&self, s: &ExpirySummary) {
        if !self.is_text() {
            return json(s);
        }
        for line in expiry_lines(s) {
            println!("{line}");
        }
    }
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

    #[test]
    fn verify_reports_name_problems_and_entries_then_the_verdict() {
        use lifeboat::verify::{Problem, ProblemKind, VerifyCounts, VerifyMode, VerifyReport};
        let mut report = VerifyReport {
            backup_id: "bk-1".into(),
            mode: VerifyMode::Deep,
            ok: true,
            checksum_valid: true,
            started_at: String::new(),
            completed_at: String::new(),
            checked: VerifyCounts {
                entries: 2,
                chunks: 3,
                packs: 1,
                bytes: 2048,
                pack_bytes: 1024,
                index_objects: 1,
            },
            problems: Vec::new(),
        };
        assert_eq!(
            super::verify_lines(&report),
            vec![
                "Backup bk-1 verified OK (deep): 2 entries (2.0 KiB), 3 chunks in 1 packs (1.0 KiB), 1 index objects."
            ]
        );
        report.ok = false;
        report.problems.push(Problem {
            object: "s3://b/data/ab/ab12".into(),
            kind: ProblemKind::WrongSize,
            detail: "the pack has 3 bytes".into(),
            entries: (0..12).map(|i| format!("f{i}")).collect(),
        });
        let lines = super::verify_lines(&report);
        assert_eq!(lines[0], "s3://b/data/ab/ab12: wrong size: the pack has 3 bytes");
        assert_eq!(
            lines[1],
            "  affects 12 entries: f0, f1, f2, f3, f4, f5, f6, f7, f8, f9 … and 2 more"
        );
        assert!(lines[2].starts_with("Backup bk-1: 1 problem found (deep); checked 2 entries"));
    }

    #[test]
    fn audit_verdicts_name_the_first_bad_record() {
        use lifeboat::audit::{AuditProblem, AuditProblemKind, AuditVerification};
        let mut report = AuditVerification {
            table: "cat".into(),
            intact: true,
            records: 3,
            head_seq: Some(3),
            last_hash: None,
            problem: None,
        };
        assert_eq!(
            super::audit_verification_line(&report),
            "Audit trail in catalog table cat intact: 3 records, each hash and link checked, head at record 3."
        );
        report.intact = false;
        report.problem = Some(AuditProblem {
            seq: 2,
            kind: AuditProblemKind::Altered,
            detail: "changed".into(),
        });
        assert_eq!(
            super::audit_verification_line(&report),
            "Audit trail in catalog table cat TAMPERED: record 2 altered: changed"
        );
    }

    #[test]
    fn audit_records_are_a_table_with_compact_details() {
        let record = lifeboat::audit::AuditRecord {
            seq: 1,
            at: "2026-11-23T10:00:00.000Z".into(),
            action: "restore.completed".into(),
            subject: "bk-1".into(),
            actor: "cli:ops@host".into(),
            details: serde_json::json!({"target": "/tmp/x", "entries": 2}),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let lines = super::audit_record_lines(&[record]);
        assert!(lines[0].starts_with("   SEQ  AT"), "{lines:?}");
        assert!(
            lines[1].starts_with("     1  2026-11-23T10:00:00.000Z  restore.completed"),
            "{lines:?}"
        );
        assert!(lines[1].ends_with(r#"{"entries":2,"target":"/tmp/x"}"#), "{lines:?}");
        assert_eq!(super::audit_record_lines(&[]), vec!["No audit records."]);
    }

    #[test]
    fn bytes_are_human() {
        for (n, text) in [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (64 << 20, "64.0 MiB")] {
            assert_eq!(super::bytes(n), text);
        }
    }
}
