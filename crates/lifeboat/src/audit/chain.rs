//! Checking the audit trail's hash chain: every record's hash, every link
//! to the record before, no gap in the sequence numbers, and the head
//! agreeing with the last record. Pure: works on items already read.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::record::{parse_record, string_attr, Head, GENESIS_HASH};

/// What can be wrong with the trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditProblemKind {
    /// A record's contents no longer match its hash.
    Altered,
    /// A record lacks attributes or holds ones that cannot be read.
    Unreadable,
    /// A record is missing: a gap in the sequence numbers.
    Removed,
    /// A record's `prevHash` is not the previous record's hash (one was
    /// removed and the rest renumbered, or records were swapped or replaced).
    BrokenLink,
    /// The head names records after the last one stored: the tail was removed.
    Truncated,
    /// The head is missing, behind the last record, or holds another hash.
    HeadMismatch,
}

impl AuditProblemKind {
    pub fn describe(&self) -> &'static str {
        match self {
            Self::Altered => "altered",
            Self::Unreadable => "unreadable",
            Self::Removed => "removed",
            Self::BrokenLink => "broken link",
            Self::Truncated => "truncated",
            Self::HeadMismatch => "head mismatch",
        }
    }
}

/// The first thing found wrong, naming the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditProblem {
    /// The record that is altered or missing (for a head problem, the head's seq).
    pub seq: u64,
    pub kind: AuditProblemKind,
    pub detail: String,
}

/// The result of [`AuditTrail::verify`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditVerification {
    pub table: String,
    /// True when every record's hash and link checked out and the head agrees.
    pub intact: bool,
    /// Records read.
    pub records: u64,
    /// The head's seq (absent for an empty trail or a removed head).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_seq: Option<u64>,
    /// The last record's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_hash: Option<String>,
    /// The first problem found; `None` when intact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<AuditProblem>,
}

/// The checks of [`super::AuditTrail::verify`], on items already read.
pub(super) fn check_chain(
    table: &str,
    items: &[HashMap<String, AttributeValue>],
    head: Result<Option<Head>, String>,
) -> AuditVerification {
    let mut report = AuditVerification {
        table: table.to_owned(),
        intact: false,
        records: items.len() as u64,
        head_seq: head.as_ref().ok().and_then(|h| h.as_ref().map(|h| h.seq)),
        last_hash: None,
        problem: None,
    };
    match check_records(items) {
        Err(problem) => report.problem = Some(problem),
        Ok((last_seq, last_hash)) => {
            report.problem = check_head(head, last_seq, &last_hash);
            report.last_hash = (last_seq > 0).then_some(last_hash);
        }
    }
    report.intact = report.problem.is_none();
    report
}

fn problem(seq: u64, kind: AuditProblemKind, detail: String) -> AuditProblem {
    AuditProblem { seq, kind, detail }
}

/// Every record in seq order: readable, hashed as stored, linked to the one
/// before, no gap. The last seq and hash, or the first problem.
fn check_records(items: &[HashMap<String, AttributeValue>]) -> Result<(u64, String), AuditProblem> {
    let mut expected_seq = 1u64;
    let mut prev_hash = GENESIS_HASH.to_owned();
    for item in items {
        let sk = string_attr(item, "sk").unwrap_or_default();
        let Ok(sk_seq) = sk.parse::<u64>() else {
            return Err(problem(
                expected_seq,
                AuditProblemKind::Unreadable,
                format!("an audit item has sort key {sk:?}, which is not a sequence number"),
            ));
        };
        if sk_seq > expected_seq {
            let missing = if sk_seq - expected_seq == 1 {
                format!("record {expected_seq} is missing")
            } else {
                format!("records {expected_seq} to {} are missing", sk_seq - 1)
            };
            return Err(problem(
                expected_seq,
                AuditProblemKind::Removed,
                format!("{missing} (the next stored record is {sk_seq})"),
            ));
        }
        if sk_seq < expected_seq {
            // Sort keys are unique and sorted, so only record 0 gets here.
            return Err(problem(
                sk_seq,
                AuditProblemKind::Unreadable,
                format!("record {sk_seq} cannot exist: the trail starts at 1"),
            ));
        }
        let record = match parse_record(item) {
            Ok(record) => record,
            Err(message) => {
                return Err(problem(sk_seq, AuditProblemKind::Unreadable, message));
            }
        };
        if record.seq != sk_seq {
            return Err(problem(
                sk_seq,
                AuditProblemKind::Altered,
                format!("record {sk_seq} says its seq is {}", record.seq),
            ));
        }
        let computed = record.computed_hash();
        if computed != record.hash {
            return Err(problem(
                sk_seq,
                AuditProblemKind::Altered,
                format!(
                    "record {sk_seq} ({} of {}) does not match its hash: its contents were changed after it was written",
                    record.action, record.subject
                ),
            ));
        }
        if record.prev_hash != prev_hash {
            let previous = if sk_seq == 1 {
                "the start of the trail".to_owned()
            } else {
                format!("record {}", sk_seq - 1)
            };
            return Err(problem(
                sk_seq,
                AuditProblemKind::BrokenLink,
                format!("record {sk_seq}'s prevHash does not match {previous}: a record before it was removed, replaced or reordered"),
            ));
        }
        prev_hash = record.hash;
        expected_seq = sk_seq + 1;
    }
    Ok((expected_seq - 1, prev_hash))
}

/// The head against the last record stored (`last_seq` 0: none).
fn check_head(head: Result<Option<Head>, String>, last_seq: u64, prev_hash: &str) -> Option<AuditProblem> {
    match head {
        Err(message) => {
            Some(problem(
                last_seq,
                AuditProblemKind::HeadMismatch,
                format!("the head item cannot be read: {message}"),
            ))
        }
        Ok(None) if last_seq == 0 => None,
        Ok(None) => {
            Some(problem(
                last_seq,
                AuditProblemKind::HeadMismatch,
                format!("the head item is missing although {last_seq} records exist"),
            ))
        }
        Ok(Some(head)) if head.seq > last_seq => {
            let missing = if head.seq - last_seq == 1 {
                format!("record {} is missing", head.seq)
            } else {
                format!("records {} to {} are missing", last_seq + 1, head.seq)
            };
            Some(problem(
                last_seq + 1,
                AuditProblemKind::Truncated,
                format!(
                    "the head says the last record is {} but the last stored is {last_seq}: {missing} (the tail was removed)",
                    head.seq
                ),
            ))
        }
        Ok(Some(head)) if head.seq < last_seq => {
            Some(problem(
                head.seq,
                AuditProblemKind::HeadMismatch,
                format!(
                    "the head says the last record is {} but records up to {last_seq} exist: they were added outside the trail or the head was rolled back",
                    head.seq
                ),
            ))
        }
        Ok(Some(head)) if head.hash != prev_hash => {
            Some(problem(
                head.seq,
                AuditProblemKind::HeadMismatch,
                format!(
                    "the head's hash does not match record {}: the last record was replaced",
                    head.seq
                ),
            ))
        }
        Ok(Some(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::fixture::record;
    use super::super::record::{record_item, AuditRecord};
    use super::*;

    /// A chain of `n` records as stored, and its head.
    fn chain(n: u64) -> (Vec<HashMap<String, AttributeValue>>, Head) {
        let mut prev = GENESIS_HASH.to_owned();
        let mut items = Vec::new();
        for seq in 1..=n {
            let mut r = record();
            r.seq = seq;
            r.prev_hash = prev;
            r.hash = r.computed_hash();
            prev = r.hash.clone();
            items.push(record_item(&r));
        }
        (items, Head { seq: n, hash: prev })
    }

    fn verdict(items: &[HashMap<String, AttributeValue>], head: Option<Head>) -> Option<(u64, AuditProblemKind)> {
        check_chain("t", items, Ok(head)).problem.map(|p| (p.seq, p.kind))
    }

    #[test]
    fn verification_names_the_first_bad_record() {
        let (items, head) = chain(5);
        assert_eq!(verdict(&items, Some(head.clone())), None);
        assert!(check_chain("t", &items, Ok(Some(head.clone()))).intact);
        assert_eq!(verdict(&[], None), None);

        let mut altered = items.clone();
        altered[2].insert("subject".into(), AttributeValue::S("other".into()));
        assert_eq!(
            verdict(&altered, Some(head.clone())),
            Some((3, AuditProblemKind::Altered))
        );

        let mut gap = items.clone();
        gap.remove(1);
        assert_eq!(verdict(&gap, Some(head.clone())), Some((2, AuditProblemKind::Removed)));

        let mut first_gone = items.clone();
        first_gone.remove(0);
        assert_eq!(
            verdict(&first_gone, Some(head.clone())),
            Some((1, AuditProblemKind::Removed))
        );

        // Record 3 removed and the rest renumbered, each re-keyed and rehashed
        // but keeping its old prevHash: the link from 2 breaks.
        let mut relinked: Vec<AuditRecord> = items.iter().map(|i| parse_record(i).unwrap()).collect();
        relinked.remove(2);
        for (i, r) in relinked.iter_mut().enumerate() {
            r.seq = i as u64 + 1;
            r.hash = r.computed_hash();
        }
        let relinked: Vec<_> = relinked.iter().map(record_item).collect();
        assert_eq!(verdict(&relinked, None).map(|v| v.0), Some(3));
        assert_eq!(
            verdict(&relinked, None).map(|v| v.1),
            Some(AuditProblemKind::BrokenLink)
        );

        let mut unreadable = items.clone();
        unreadable[3].remove("hash");
        assert_eq!(
            verdict(&unreadable, Some(head.clone())),
            Some((4, AuditProblemKind::Unreadable))
        );

        let truncated = &items[..3];
        assert_eq!(
            verdict(truncated, Some(head.clone())),
            Some((4, AuditProblemKind::Truncated))
        );
        assert_eq!(verdict(&items, None), Some((5, AuditProblemKind::HeadMismatch)));
        let behind = Head {
            seq: 4,
            hash: head.hash.clone(),
        };
        assert_eq!(verdict(&items, Some(behind)), Some((4, AuditProblemKind::HeadMismatch)));
        let other_hash = Head {
            seq: 5,
            hash: GENESIS_HASH.into(),
        };
        assert_eq!(
            verdict(&items, Some(other_hash)),
            Some((5, AuditProblemKind::HeadMismatch))
        );
    }
}
