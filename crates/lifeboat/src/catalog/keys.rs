//! Every key of the catalog table: the `pk`/`sk` of each kind of item and
//! the keys of its two global secondary indexes (`bySource`: `gsi1pk`/
//! `gsi1sk`, `byTime`: `gsi2pk`/`gsi2sk`), as ARCHITECTURE.md's table
//! "The catalog table" lists them. Nothing else writes a key's text.

/// The index of a source's items in time order (`gsi1pk`, `gsi1sk`).
pub const BY_SOURCE: &str = "bySource";
/// The index of all items of a kind in time order (`gsi2pk`, `gsi2sk`).
pub const BY_TIME: &str = "byTime";

// Backup records: `pk = backup#ID`, `sk = backup`; `bySource`:
// `source#SOURCE` / `CREATEDAT#ID`; `byTime`: `backup` / `CREATEDAT#ID`.

pub const BACKUP_SK: &str = "backup";
/// `gsi2pk` of every backup record.
pub const BACKUP_GSI2PK: &str = "backup";

pub fn backup_pk(id: &str) -> String {
    format!("backup#{id}")
}

/// `gsi1pk` of a source's backup records.
pub fn source_gsi1pk(source: &str) -> String {
    format!("source#{source}")
}

/// `gsi1sk` and `gsi2sk` of a backup record: creation time, then id.
pub fn backup_order(created_at: &str, id: &str) -> String {
    format!("{created_at}#{id}")
}

// Idempotency claims: `pk = event#KEY`, `sk = event`.

pub const EVENT_SK: &str = "event";

pub fn event_pk(key: &str) -> String {
    format!("event#{key}")
}

// Source leases: `pk = sourcelease#SOURCE`, `sk = lease`.

pub const SOURCE_LEASE_SK: &str = "lease";

pub fn source_lease_pk(source: &str) -> String {
    format!("sourcelease#{source}")
}

// Holds: `pk = hold#ID` (a backup id or a snapshot's identifier), `sk = hold`.

pub const HOLD_SK: &str = "hold";
pub const HOLD_PK_PREFIX: &str = "hold#";

pub fn hold_pk(id: &str) -> String {
    format!("{HOLD_PK_PREFIX}{id}")
}

// Verifications of a backup or a snapshot: its `pk`, `sk = verify#STARTEDAT`.

pub const VERIFY_SK_PREFIX: &str = "verify#";

pub fn verify_sk(started_at: &str) -> String {
    format!("{VERIFY_SK_PREFIX}{started_at}")
}

// Sample verification's cursor: `pk = verifysample#STORE`, `sk = cursor`.

pub const SAMPLE_CURSOR_SK: &str = "cursor";

pub fn sample_cursor_pk(store: &str) -> String {
    format!("verifysample#{store}")
}

// The audit trail: `pk = audit`, `sk` = the record's sequence number (20
// digits) or `head`.

pub const AUDIT_PK: &str = "audit";
pub const AUDIT_HEAD_SK: &str = "head";

pub fn audit_record_sk(seq: u64) -> String {
    format!("{seq:020}")
}

// Recovery jobs: `pk = job#ID`, `sk = job`; `byTime`: `job` / `STARTEDAT#ID`;
// the open job pointer `pk = jobopen#KIND#SUBJECT`, `sk = jobopen`.

pub const JOB_SK: &str = "job";
/// `gsi2pk` of every job record.
pub const JOB_GSI2PK: &str = "job";
pub const JOB_OPEN_SK: &str = "jobopen";

pub fn job_pk(id: &str) -> String {
    format!("job#{id}")
}

/// `gsi2sk` of a job record: start time, then id.
pub fn job_order(started_at: &str, id: &str) -> String {
    format!("{started_at}#{id}")
}

pub fn job_open_pk(kind: &str, subject: &str) -> String {
    format!("jobopen#{kind}#{subject}")
}

// The lease of the run acting on a subject (a DR plan): `pk = joblease#SUBJECT`, `sk = joblease`.

pub const JOB_LEASE_SK: &str = "joblease";

pub fn job_lease_pk(subject: &str) -> String {
    format!("joblease#{subject}")
}

// Alert state: `pk = alert#KEY`, `sk = alert`.

pub const ALERT_SK: &str = "alert";
pub const ALERT_PK_PREFIX: &str = "alert#";

pub fn alert_pk(key: &str) -> String {
    format!("{ALERT_PK_PREFIX}{key}")
}

// RDS snapshots: `pk = snapshot#PLAN#RESOURCE#TIME`, `sk = snapshot`;
// `bySource`: `snapshot#RESOURCE` / `TIME#PLAN`; `byTime` while unfinished:
// `snapshot-open#PLAN` / `TIME#RESOURCE`. Their copies: the snapshot's `pk`,
// `sk = copy#REGION`, `byTime` while unfinished: `snapshot-open#PLAN` /
// `TIME#RESOURCE#REGION`. A deleted snapshot:
// `pk = snapshot-deleted#PLAN#RESOURCE#TIME`, `sk = snapshot`.

pub const SNAPSHOT_SK: &str = "snapshot";
pub const SNAPSHOT_PK_PREFIX: &str = "snapshot#";
pub const COPY_SK_PREFIX: &str = "copy#";

pub fn snapshot_pk(plan: &str, resource: &str, scheduled_time: &str) -> String {
    format!("snapshot#{plan}#{resource}#{scheduled_time}")
}

/// `gsi1pk` of a resource's snapshot records.
pub fn snapshot_gsi1pk(resource: &str) -> String {
    format!("{SNAPSHOT_PK_PREFIX}{resource}")
}

/// `gsi1sk` of a snapshot record.
pub fn snapshot_gsi1sk(scheduled_time: &str, plan: &str) -> String {
    format!("{scheduled_time}#{plan}")
}

/// `gsi2pk` of a plan's unfinished snapshots and copies.
pub fn snapshot_open_pk(plan: &str) -> String {
    format!("snapshot-open#{plan}")
}

/// `gsi2sk` of an unfinished snapshot.
pub fn snapshot_open_sk(scheduled_time: &str, resource: &str) -> String {
    format!("{scheduled_time}#{resource}")
}

/// `gsi2sk` of an unfinished copy.
pub fn copy_open_sk(scheduled_time: &str, resource: &str, region: &str) -> String {
    format!("{scheduled_time}#{resource}#{region}")
}

pub fn copy_sk(region: &str) -> String {
    format!("{COPY_SK_PREFIX}{region}")
}

pub fn snapshot_deleted_pk(plan: &str, resource: &str, scheduled_time: &str) -> String {
    format!("snapshot-deleted#{plan}#{resource}#{scheduled_time}")
}

// A plan's dump claims: `pk = dump#PLAN#SOURCE#TIME`, `sk = dump`.

pub const DUMP_SK: &str = "dump";

pub fn dump_pk(plan: &str, source: &str, scheduled_time: &str) -> String {
    format!("dump#{plan}#{source}#{scheduled_time}")
}

// Restore test state: `pk = restore-test`, `sk = state#RESOURCE`.

pub const RESTORE_TEST_PK: &str = "restore-test";
pub const RESTORE_TEST_SK_PREFIX: &str = "state#";

pub fn restore_test_sk(resource: &str) -> String {
    format!("{RESTORE_TEST_SK_PREFIX}{resource}")
}

// Garbage collection beside backups and restores (`catalog::leases`): the
// GC lease `pk = gclease#STORE`, `sk = lease`; the GC sequence
// `pk = gcseq#STORE`, `sk = seq`; restore registrations `pk = gcuse#STORE`,
// `sk = restore#OWNER`.

pub const GC_LEASE_SK: &str = "lease";
pub const GC_SEQUENCE_SK: &str = "seq";
pub const RESTORE_USE_SK_PREFIX: &str = "restore#";

pub fn gc_lease_pk(store: &str) -> String {
    format!("gclease#{store}")
}

pub fn gc_sequence_pk(store: &str) -> String {
    format!("gcseq#{store}")
}

pub fn gc_use_pk(store: &str) -> String {
    format!("gcuse#{store}")
}

pub fn restore_use_sk(owner: &str) -> String {
    format!("{RESTORE_USE_SK_PREFIX}{owner}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_documented_text() {
        assert_eq!(backup_pk("bk-1"), "backup#bk-1");
        assert_eq!(source_gsi1pk("s3://b/a"), "source#s3://b/a");
        assert_eq!(hold_pk("bk-1"), "hold#bk-1");
        assert_eq!(event_pk("e"), "event#e");
        assert_eq!(verify_sk("2026-01-01T00:00:00.000Z"), "verify#2026-01-01T00:00:00.000Z");
        assert_eq!(audit_record_sk(7), "00000000000000000007");
        assert_eq!(job_open_pk("restore", "db"), "jobopen#restore#db");
        assert_eq!(job_lease_pk("prod"), "joblease#prod");
        assert_eq!(alert_pk("backup_failed#s"), "alert#backup_failed#s");
        assert_eq!(snapshot_pk("p", "arn", "t"), "snapshot#p#arn#t");
        assert_eq!(snapshot_deleted_pk("p", "arn", "t"), "snapshot-deleted#p#arn#t");
        assert_eq!(dump_pk("p", "s", "t"), "dump#p#s#t");
        assert_eq!(restore_test_sk("arn"), "state#arn");
        assert_eq!(sample_cursor_pk("s3://b"), "verifysample#s3://b");
        assert_eq!(gc_lease_pk("st"), "gclease#st");
        assert_eq!(gc_sequence_pk("st"), "gcseq#st");
        assert_eq!(gc_use_pk("st"), "gcuse#st");
        assert_eq!(restore_use_sk("o"), "restore#o");
    }

    /// An item of the catalog table: its name, then the keys its `pk`, `sk`
    /// and index cells must show.
    type DocumentedItem = (&'static str, Vec<String>, Vec<String>, Vec<String>);

    /// ARCHITECTURE.md's "The catalog table", row by row: the item, then the
    /// backticked spans of its `pk`, `sk` and index cells.
    fn documented_rows() -> Vec<(String, [Vec<String>; 3])> {
        let doc = include_str!("../../../../ARCHITECTURE.md");
        let table = doc
            .split("## The catalog table")
            .nth(1)
            .expect("ARCHITECTURE.md has a section \"The catalog table\"");
        let spans = |cell: &str| -> Vec<String> { cell.split('`').skip(1).step_by(2).map(str::to_owned).collect() };
        table
            .lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .skip(2) // the header and its rule
            .map(|line| {
                // Cells split at `|`, but not at an escaped `\|` inside one.
                let line = line.replace("\\|", "\u{1}");
                let cells: Vec<String> = line.split('|').map(|c| c.trim().replace('\u{1}', "|")).collect();
                let cell = |n: usize| cells.get(n).map(String::as_str).unwrap_or_default();
                (cell(1).to_owned(), [spans(cell(2)), spans(cell(3)), spans(cell(4))])
            })
            .collect()
    }

    #[test]
    fn architecture_md_lists_every_key_as_this_module_writes_it() {
        let gsi = |name: &str, value: String| format!("{name} = {value}");
        let snapshot = || snapshot_pk("PLAN", "RESOURCE", "TIME");
        let expected: Vec<DocumentedItem> = vec![
            (
                "backup record",
                vec![backup_pk("ID")],
                vec![BACKUP_SK.into()],
                vec![
                    gsi("gsi1pk", source_gsi1pk("SOURCE")),
                    gsi("gsi1sk", backup_order("CREATEDAT", "ID")),
                    gsi("gsi2pk", BACKUP_GSI2PK.into()),
                    gsi("gsi2sk", backup_order("CREATEDAT", "ID")),
                ],
            ),
            (
                "idempotency claim",
                vec![event_pk("KEY")],
                vec![EVENT_SK.into()],
                vec![],
            ),
            (
                "source lease",
                vec![source_lease_pk("SOURCE")],
                vec![SOURCE_LEASE_SK.into()],
                vec![],
            ),
            ("hold (legal hold)", vec![hold_pk("ID")], vec![HOLD_SK.into()], vec![]),
            (
                "audit record / head",
                vec![AUDIT_PK.into()],
                vec!["SEQ".into(), AUDIT_HEAD_SK.into()],
                vec![],
            ),
            (
                "verification",
                vec![backup_pk("ID")],
                vec![verify_sk("STARTEDAT")],
                vec![],
            ),
            (
                "recovery job",
                vec![job_pk("ID")],
                vec![JOB_SK.into()],
                vec![
                    gsi("gsi2pk", JOB_GSI2PK.into()),
                    gsi("gsi2sk", job_order("STARTEDAT", "ID")),
                ],
            ),
            (
                "open job pointer",
                vec![job_open_pk("KIND", "SUBJECT")],
                vec![JOB_OPEN_SK.into()],
                vec![],
            ),
            (
                "job lease",
                vec![job_lease_pk("SUBJECT")],
                vec![JOB_LEASE_SK.into()],
                vec![],
            ),
            (
                "sample cursor",
                vec![sample_cursor_pk("STORE")],
                vec![SAMPLE_CURSOR_SK.into()],
                vec![],
            ),
            (
                "RDS snapshot",
                vec![snapshot()],
                vec![SNAPSHOT_SK.into()],
                vec![
                    gsi("gsi1pk", snapshot_gsi1pk("RESOURCE")),
                    gsi("gsi1sk", snapshot_gsi1sk("TIME", "PLAN")),
                    gsi("gsi2pk", snapshot_open_pk("PLAN")),
                    gsi("gsi2sk", snapshot_open_sk("TIME", "RESOURCE")),
                ],
            ),
            (
                "snapshot copy",
                vec![snapshot()],
                vec![copy_sk("REGION")],
                vec![
                    gsi("gsi2pk", snapshot_open_pk("PLAN")),
                    gsi("gsi2sk", copy_open_sk("TIME", "RESOURCE", "REGION")),
                ],
            ),
            (
                "plan dump claim",
                vec![dump_pk("PLAN", "SOURCE", "TIME")],
                vec![DUMP_SK.into()],
                vec![],
            ),
            (
                "snapshot verification",
                vec![snapshot()],
                vec![verify_sk("STARTEDAT")],
                vec![],
            ),
            (
                "restore test state",
                vec![RESTORE_TEST_PK.into()],
                vec![restore_test_sk("RESOURCE")],
                vec![],
            ),
            (
                "deleted snapshot",
                vec![snapshot_deleted_pk("PLAN", "RESOURCE", "TIME")],
                vec![SNAPSHOT_SK.into()],
                vec![],
            ),
            ("alert state", vec![alert_pk("KEY")], vec![ALERT_SK.into()], vec![]),
            ("GC lease", vec![gc_lease_pk("STORE")], vec![GC_LEASE_SK.into()], vec![]),
            (
                "GC sequence",
                vec![gc_sequence_pk("STORE")],
                vec![GC_SEQUENCE_SK.into()],
                vec![],
            ),
            (
                "restore registration",
                vec![gc_use_pk("STORE")],
                vec![restore_use_sk("OWNER")],
                vec![],
            ),
        ];
        assert_eq!(audit_record_sk(1).len(), 20, "the doc says SEQ has 20 digits");

        let rows = documented_rows();
        let documented: Vec<&str> = rows.iter().map(|(item, _)| item.as_str()).collect();
        let written: Vec<&str> = expected.iter().map(|(item, ..)| *item).collect();
        assert_eq!(
            documented, written,
            "ARCHITECTURE.md's catalog table lists other items than this module writes"
        );
        for ((item, [pk, sk, indexes]), (_, want_pk, want_sk, want_indexes)) in rows.iter().zip(&expected) {
            for (cell, spans, wanted) in [
                ("pk", pk, want_pk),
                ("sk", sk, want_sk),
                ("index", indexes, want_indexes),
            ] {
                for key in wanted {
                    assert!(
                        spans.contains(key),
                        "ARCHITECTURE.md, catalog table, {item}: the {cell} cell should show `{key}` (it shows {spans:?})"
                    );
                }
            }
        }
    }
}
