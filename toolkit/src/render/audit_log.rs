//! `lifeboat audit-log verify|show`: the audit trail's verdict and records.

use lifeboat::audit::{AuditRecord, AuditVerification};

use super::{json, print_lines, Renderer};

impl Renderer {
    pub fn audit_records(&self, records: &[AuditRecord]) {
        if !self.is_text() {
            return json(&records);
        }
        print_lines(&audit_record_lines(records));
    }

    pub fn audit_verification(&self, r: &AuditVerification) {
        if !self.is_text() {
            return json(r);
        }
        println!("{}", audit_verification_line(r));
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

#[cfg(test)]
mod tests {
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
}
