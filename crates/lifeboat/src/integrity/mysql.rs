//! MySQL / MariaDB: `CHECK TABLE` on every table, and orphans of every
//! foreign key (rows written while `FOREIGN_KEY_CHECKS` was off).

use super::{count_and_examples, Audit, Severity, EXAMPLES, FIELD};
use crate::db::error::DbError;

/// `name` quoted as a MySQL identifier.
fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

pub(super) async fn audit(audit: &mut Audit) -> Result<(), DbError> {
    check_tables(audit).await?;
    foreign_keys(audit).await
}

async fn check_tables(audit: &mut Audit) -> Result<(), DbError> {
    let url = audit.url.clone();
    let tables = url.tables().await?;
    audit.ran("check_table", "CHECK TABLE on every table", tables.len() as u64);
    if tables.is_empty() {
        return Ok(());
    }
    let list = tables.iter().map(|t| ident(t)).collect::<Vec<_>>().join(", ");
    // Rows: Table, Op, Msg_type, Msg_text.
    for row in url.query(&format!("CHECK TABLE {list}")).await? {
        let fields: Vec<&str> = row.splitn(4, '\t').collect();
        let [table, _, kind, text] = fields[..] else {
            continue;
        };
        let severity = match kind {
            "error" => Severity::Critical,
            "status" if text != "OK" && !text.contains("already up to date") => Severity::Critical,
            "warning" => Severity::Warning,
            _ => continue,
        };
        audit.found(
            severity,
            "check_table",
            table,
            format!("CHECK TABLE says {kind}: {text}"),
            format!(
                "run REPAIR TABLE or ALTER TABLE … FORCE on {table} (InnoDB: rebuild it, or restore it from a backup)"
            ),
        );
    }
    Ok(())
}

async fn foreign_keys(audit: &mut Audit) -> Result<(), DbError> {
    let url = audit.url.clone();
    let constraints = url
        .query(
            "SELECT CONCAT_WS(CHAR(31), k.CONSTRAINT_NAME, k.TABLE_NAME, k.REFERENCED_TABLE_SCHEMA, \
                    k.REFERENCED_TABLE_NAME, \
                    GROUP_CONCAT(k.COLUMN_NAME ORDER BY k.ORDINAL_POSITION SEPARATOR ','), \
                    GROUP_CONCAT(k.REFERENCED_COLUMN_NAME ORDER BY k.ORDINAL_POSITION SEPARATOR ',')) \
               FROM information_schema.KEY_COLUMN_USAGE k \
               JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
                 ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
                AND r.TABLE_NAME = k.TABLE_NAME \
              WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME IS NOT NULL \
              GROUP BY k.CONSTRAINT_NAME, k.TABLE_NAME, k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME \
              ORDER BY 1",
        )
        .await?;
    audit.ran(
        "foreign_keys",
        "rows without their referenced row, for every foreign key",
        constraints.len() as u64,
    );
    for row in constraints {
        let fields: Vec<&str> = row.split(FIELD).collect();
        let [name, child, parent_schema, parent, child_columns, parent_columns] = fields[..] else {
            continue;
        };
        let child_columns: Vec<&str> = child_columns.split(',').collect();
        let parent_columns: Vec<&str> = parent_columns.split(',').collect();
        let not_null = child_columns
            .iter()
            .map(|c| format!("c.{} IS NOT NULL", ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let matches = child_columns
            .iter()
            .zip(&parent_columns)
            .map(|(c, p)| format!("p.{} = c.{}", ident(p), ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let key = child_columns
            .iter()
            .map(|c| format!("c.{}", ident(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let orphans = format!(
            "SELECT COUNT(*) OVER (), CONCAT_WS(',', {key}) FROM {} c \
              WHERE {not_null} AND NOT EXISTS (SELECT 1 FROM {}.{} p WHERE {matches}) LIMIT {EXAMPLES}",
            ident(child),
            ident(parent_schema),
            ident(parent)
        );
        let (count, examples) = count_and_examples(&url.query(&orphans).await?, '\t');
        if count > 0 {
            audit.found(
                Severity::Critical,
                "foreign_keys",
                &format!("{child}.{name}"),
                format!(
                    "{count} row(s) of {child} have ({}) with no matching ({}) in {parent}; e.g. {}",
                    child_columns.join(", "),
                    parent_columns.join(", "),
                    examples.join("; ")
                ),
                format!(
                    "restore the missing {parent} rows or fix or delete the orphans in {child} (they were written with FOREIGN_KEY_CHECKS=0)"
                ),
            );
        }
    }
    Ok(())
}
