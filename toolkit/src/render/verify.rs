//! `lifeboat verify` (one backup) and `verify --sample` (a share of the store).

use lifeboat::verify::sample::SampleReport;
use lifeboat::verify::VerifyReport;

use super::{bytes, json, print_lines, Renderer};

impl Renderer {
    pub fn verify(&self, r: &VerifyReport) {
        if !self.is_text() {
            return json(r);
        }
        print_lines(&verify_lines(r));
    }

    pub fn verify_sample(&self, r: &SampleReport) {
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

#[cfg(test)]
mod tests {
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
}
