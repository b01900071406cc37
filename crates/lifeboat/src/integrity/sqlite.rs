//! SQLite: `PRAGMA integrity_check` (every page, index and constraint) and
//! `PRAGMA foreign_key_check` (whether or not foreign keys are enforced).

use std::collections::BTreeMap;

use super::{is_damage, said, Audit, Severity, EXAMPLES};
use crate::db::error::DbError;

fn salvage_action(path: &str) -> String {
    format!(
        "restore {path} from a backup (`lifeboat restore dump`), or recover what is readable with `lifeboat salvage sqlite {path} --to NEW.db`"
    )
}

pub(super) async fn audit(audit: &mut Audit) -> Result<(), DbError> {
    let url = audit.url.clone();
    let path = url.database.clone();
    audit.ran("integrity_check", "PRAGMA integrity_check", 1);
    match url.query("PRAGMA integrity_check").await {
        Ok(rows) if rows.len() == 1 && rows[0] == "ok" => {}
        Ok(rows) => {
            for row in rows {
                audit.found(Severity::Critical, "integrity_check", &path, row, salvage_action(&path));
            }
        }
        Err(error) if is_damage(&error) => {
            audit.found(
                Severity::Critical,
                "integrity_check",
                &path,
                format!("the file cannot be checked: {}", said(&error)),
                salvage_action(&path),
            );
            return Ok(());
        }
        Err(error) => return Err(error),
    }

    audit.ran("foreign_keys", "PRAGMA foreign_key_check", 1);
    let rows = match url.query("PRAGMA foreign_key_check").await {
        Ok(rows) => rows,
        Err(error) if is_damage(&error) => {
            audit.found(
                Severity::Critical,
                "foreign_keys",
                &path,
                format!("foreign keys cannot be checked: {}", said(&error)),
                salvage_action(&path),
            );
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    // Rows: table, rowid, parent, foreign key index.
    let mut orphans: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    for row in rows {
        let fields: Vec<&str> = row.split('|').collect();
        let [table, rowid, parent, fk] = fields[..] else {
            continue;
        };
        orphans
            .entry((table.to_owned(), parent.to_owned(), fk.to_owned()))
            .or_default()
            .push(rowid.to_owned());
    }
    for ((table, parent, fk), rowids) in orphans {
        audit.found(
            Severity::Critical,
            "foreign_keys",
            &format!("{table} (foreign key {fk})"),
            format!(
                "{} row(s) of {table} reference rows missing from {parent}; e.g. rowid {}",
                rowids.len(),
                rowids.iter().take(EXAMPLES).cloned().collect::<Vec<_>>().join(", ")
            ),
            format!("restore the missing {parent} rows or fix or delete the orphans in {table}; keep PRAGMA foreign_keys = ON in the application"),
        );
    }
    Ok(())
}
