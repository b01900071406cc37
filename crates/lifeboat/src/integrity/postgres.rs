//! PostgreSQL: amcheck on btree indexes, foreign-key orphans, sequences
//! behind their column, invalid indexes, data-checksum failures.

use super::{count_and_examples, literal, said, Audit, Severity, EXAMPLES, FIELD};
use crate::db::error::DbError;

/// Joins a key's column names (the ASCII record separator).
const COLUMN: char = '\u{1e}';

/// Every user btree index that amcheck can check (valid, ready, with
/// storage: not a partitioned table's parent index, not temporary).
const USER_BTREES: &str = "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
     JOIN pg_am am ON am.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE am.amname = 'btree' AND c.relkind = 'i' AND i.indisvalid AND i.indisready AND c.relpersistence <> 't' \
     AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'";

pub(super) async fn audit(audit: &mut Audit) -> Result<(), DbError> {
    btree_indexes(audit).await?;
    foreign_keys(audit).await?;
    sequences(audit).await?;
    catalog(audit).await?;
    Ok(())
}

async fn btree_indexes(audit: &mut Audit) -> Result<(), DbError> {
    let url = audit.url.clone();
    if let Err(error) = url.query("CREATE EXTENSION IF NOT EXISTS amcheck").await {
        audit.found(
            Severity::Warning,
            "amcheck",
            &url.database,
            format!(
                "the amcheck extension could not be created, so no index was checked: {}",
                said(&error)
            ),
            format!(
                "have a superuser run CREATE EXTENSION amcheck in database {} (it ships with PostgreSQL's contrib), then audit again",
                url.database
            ),
        );
        return Ok(());
    }
    let indexes = url
        .query(&format!("SELECT c.oid::regclass::text {USER_BTREES} ORDER BY 1"))
        .await?;
    audit.ran(
        "amcheck",
        "amcheck bt_index_check on every btree index",
        indexes.len() as u64,
    );
    // All at once; only if that fails, one by one to name each damaged index.
    let all = format!("SELECT count(bt_index_check(c.oid)) {USER_BTREES}");
    if indexes.is_empty() || url.query(&all).await.is_ok() {
        return Ok(());
    }
    for index in &indexes {
        let sql = format!("SELECT bt_index_check({}::regclass)", literal(index));
        if let Err(error) = url.query(&sql).await {
            audit.found(
                Severity::Critical,
                "amcheck",
                index,
                format!("bt_index_check failed: {}", said(&error)),
                format!("REINDEX INDEX {index}; if the table itself is damaged, restore it from a backup"),
            );
        }
    }
    Ok(())
}

async fn foreign_keys(audit: &mut Audit) -> Result<(), DbError> {
    let url = audit.url.clone();
    let columns = |keys: &str, table: &str| {
        format!(
            "(SELECT string_agg(quote_ident(a.attname), chr(30) ORDER BY k.ord) \
               FROM unnest(c.{keys}) WITH ORDINALITY k(attnum, ord) \
               JOIN pg_attribute a ON a.attrelid = c.{table} AND a.attnum = k.attnum)"
        )
    };
    let sql = format!(
        "SELECT concat_ws(chr(31), c.conname, c.conrelid::regclass::text, c.confrelid::regclass::text, \
                c.convalidated::text, {}, {}) \
           FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
          WHERE c.contype = 'f' AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
        columns("conkey", "conrelid"),
        columns("confkey", "confrelid"),
    );
    let constraints = url.query(&sql).await?;
    audit.ran(
        "foreign_keys",
        "rows without their referenced row, for every foreign key (NOT VALID ones too)",
        constraints.len() as u64,
    );
    for row in constraints {
        let fields: Vec<&str> = row.split(FIELD).collect();
        let [name, child, parent, validated, child_columns, parent_columns] = fields[..] else {
            continue;
        };
        let child_columns: Vec<&str> = child_columns.split(COLUMN).collect();
        let parent_columns: Vec<&str> = parent_columns.split(COLUMN).collect();
        let not_null = child_columns
            .iter()
            .map(|c| format!("c.{c} IS NOT NULL"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let matches = child_columns
            .iter()
            .zip(&parent_columns)
            .map(|(c, p)| format!("p.{p} = c.{c}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let key = child_columns
            .iter()
            .map(|c| format!("c.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let orphans = format!(
            "SELECT count(*) OVER (), concat_ws(',', {key}) FROM {child} c \
              WHERE {not_null} AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {matches}) LIMIT {EXAMPLES}"
        );
        let (count, examples) = count_and_examples(&url.query(&orphans).await?, '|');
        let object = format!("{child}.{name}");
        let not_valid = validated == "false";
        if count > 0 {
            audit.found(
                Severity::Critical,
                "foreign_keys",
                &object,
                format!(
                    "{count} row(s) of {child} have ({}) with no matching ({}) in {parent}{}; e.g. {}",
                    child_columns.join(", "),
                    parent_columns.join(", "),
                    if not_valid { " (the constraint is NOT VALID)" } else { "" },
                    examples.join("; ")
                ),
                format!(
                    "restore the missing {parent} rows or fix or delete the orphans, then ALTER TABLE {child} VALIDATE CONSTRAINT {name}"
                ),
            );
        } else if not_valid {
            audit.found(
                Severity::Info,
                "foreign_keys",
                &object,
                "the constraint is NOT VALID, but every row satisfies it".to_owned(),
                format!("ALTER TABLE {child} VALIDATE CONSTRAINT {name}"),
            );
        }
    }
    Ok(())
}

async fn sequences(audit: &mut Audit) -> Result<(), DbError> {
    let url = audit.url.clone();
    let owned = url
        .query(
            "SELECT concat_ws(chr(31), s.seqrelid::regclass::text, d.refobjid::regclass::text, \
                    quote_ident(a.attname), coalesce(pg_sequence_last_value(s.seqrelid)::text, ''), \
                    s.seqstart::text, s.seqincrement::text) \
               FROM pg_sequence s \
               JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid \
                AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') \
               JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
              WHERE s.seqincrement > 0 ORDER BY 1",
        )
        .await?;
    audit.ran(
        "sequences",
        "sequences that would hand out a value their column already holds",
        owned.len() as u64,
    );
    for row in owned {
        let fields: Vec<&str> = row.split(FIELD).collect();
        let [sequence, table, column, last, start, increment] = fields[..] else {
            continue;
        };
        let (Ok(start), Ok(increment)) = (start.parse::<i128>(), increment.parse::<i128>()) else {
            continue;
        };
        let next = match last.parse::<i128>() {
            Ok(last) => last + increment,
            Err(_) => start,
        };
        let max = url.query(&format!("SELECT max({column})::text FROM {table}")).await?;
        let Some(max) = max.first().and_then(|m| m.trim().parse::<i128>().ok()) else {
            continue;
        };
        if max >= next {
            audit.found(
                Severity::Warning,
                "sequences",
                sequence,
                format!(
                    "{sequence} would next hand out {next}, but {table}.{column} already holds values up to {max}: inserts that use the default will fail with duplicate keys"
                ),
                format!("SELECT setval({}, (SELECT max({column}) FROM {table}))", literal(sequence)),
            );
        }
    }
    Ok(())
}

async fn catalog(audit: &mut Audit) -> Result<(), DbError> {
    let url = audit.url.clone();
    let invalid = url
        .query("SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid ORDER BY 1")
        .await?;
    audit.ran("catalog", "invalid indexes and data-checksum failures", 1);
    for index in invalid {
        audit.found(
            Severity::Warning,
            "catalog",
            &index,
            format!("index {index} is invalid (indisvalid = false), e.g. from a failed CREATE INDEX CONCURRENTLY: queries do not use it, but writes still maintain it"),
            format!("REINDEX INDEX CONCURRENTLY {index}, or DROP INDEX {index} and create it again"),
        );
    }
    let failures = url
        .query("SELECT coalesce(checksum_failures, 0) FROM pg_stat_database WHERE datname = current_database()")
        .await?;
    let failures: u64 = failures.first().and_then(|f| f.trim().parse().ok()).unwrap_or(0);
    if failures > 0 {
        audit.found(
            Severity::Critical,
            "catalog",
            &url.database,
            format!("PostgreSQL has counted {failures} data-page checksum failure(s) in this database"),
            "find the damaged relations in the server log, restore them from a backup, and check the storage"
                .to_owned(),
        );
    }
    Ok(())
}
