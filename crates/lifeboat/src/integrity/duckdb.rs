//! DuckDB: `CHECKPOINT` (folds the write-ahead log into the file, reading
//! what it rewrites), then every table read in full: its row count and a
//! hash of every value of every column, so that every block is read and
//! its checksum verified.

use super::{ident, is_damage, said, Audit, Severity};
use crate::db::error::DbError;

fn restore_action(path: &str) -> String {
    format!("restore {path} from a backup (`lifeboat restore dump ID --to duckdb://{path} --overwrite`)")
}

pub(super) async fn audit(audit: &mut Audit) -> Result<(), DbError> {
    let url = audit.url.clone();
    let path = url.database.clone();
    audit.ran("checkpoint", "CHECKPOINT", 1);
    match url.run_sql("CHECKPOINT", false).await {
        Ok(_) => {}
        Err(error) if is_damage(&error) => {
            audit.found(
                Severity::Critical,
                "checkpoint",
                &path,
                format!("CHECKPOINT failed: {}", said(&error)),
                restore_action(&path),
            );
            return Ok(());
        }
        Err(error) => return Err(error),
    }
    let tables = url.tables().await?;
    audit.ran(
        "full_scan",
        "every table read in full, every column",
        tables.len() as u64,
    );
    for table in tables {
        let (schema, name) = table.split_once('.').unwrap_or(("main", &table));
        let sql = format!(
            "SELECT count(*), count(hash(COLUMNS(*))) FROM {}.{}",
            ident(schema),
            ident(name)
        );
        // Any failure to read a table that exists is a finding, whatever its words.
        if let Err(error) = url.query(&sql).await {
            audit.found(
                Severity::Critical,
                "full_scan",
                &table,
                format!("reading {table} failed: {}", said(&error)),
                restore_action(&path),
            );
        }
    }
    Ok(())
}
