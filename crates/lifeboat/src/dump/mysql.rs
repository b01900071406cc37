//! MySQL / MariaDB restores, all or nothing.
//!
//! A `mariadb-dump` replays as one statement after another, each table
//! committed on its own: streamed straight into a database that already
//! holds tables, a dump that fails halfway (a damaged statement, a server
//! error, a killed client) would leave the target half replaced. So:
//!
//! - Into a database the restore created, the dump loads in place; if it
//!   fails, the database is dropped again.
//! - Into an existing database, the dump loads into a new staging database
//!   beside it (`TARGET__lbrestore_XXXXXXXX`, the target's character set and
//!   collation). Only once the whole dump loaded (the client ended well and
//!   the dump's SHA-256 matched the manifest's) are the tables swapped in
//!   with **one** `RENAME TABLE` statement, which MariaDB and MySQL apply
//!   all or not at all: each target table the dump replaces is renamed
//!   aside (`lbold_XXXXXXXX_N`, in the target, where its triggers and
//!   foreign keys may follow it), each staged table into the target. The
//!   old tables and the staging database are dropped afterwards.
//!
//! Invariant: until that one `RENAME TABLE`, the existing target is not
//! changed; on any failure before it the staging database is dropped and
//! the target holds exactly what it held. Views, triggers, stored routines
//! and events cannot move between databases (`RENAME TABLE` refuses them),
//! so a dump holding any is refused for an existing target, naming them,
//! before anything changes; into a new database it restores whole. A
//! restore killed outright leaves its staging database (dropped by hand,
//! the target unchanged).

use super::{program, DumpError};
use crate::catalog::BackupRecord;
use crate::db::error::DbError;
use crate::db::url::{DatabaseUrl, Engine};
use crate::format::Entry;
use crate::repo::Repository;

/// Restores a MySQL dump into `target` (which exists; `created` when this
/// restore created it): all or nothing. The bytes restored.
pub(super) async fn restore_mysql(
    repo: &Repository,
    record: &BackupRecord,
    entry: &Entry,
    target: &DatabaseUrl,
    created: bool,
) -> Result<u64, DumpError> {
    if created {
        let loaded = program::restore_through_program(repo, record, Engine::Mysql, entry, target, false).await;
        if loaded.is_err() {
            if let Err(e) = drop_database(target, &target.database).await {
                tracing::warn!(target = %target, error = %e, "could not drop the database the failed restore created");
            }
        }
        return loaded;
    }
    let suffix = format!("{:08x}", rand::random::<u32>());
    let staging = target.with_database(&staging_name(&target.database, &suffix));
    create_like(target, &staging.database).await?;
    let staged = load_and_swap(repo, record, entry, target, &staging, &suffix).await;
    let dropped = drop_database(target, &staging.database).await;
    match (staged, dropped) {
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(DumpError::Data {
            id: record.id.clone(),
            target: target.to_string(),
            message: format!(
                "the dump was restored, but its emptied staging database {} could not be dropped (drop it yourself): {e}",
                staging.database
            ),
        }),
        (Ok(written), Ok(())) => Ok(written),
    }
}

/// The staging database's name: the target's (cut so that the whole fits
/// MariaDB's 64 characters) and a random suffix.
fn staging_name(database: &str, suffix: &str) -> String {
    let kept: String = database.chars().take(40).collect();
    format!("{kept}__lbrestore_{suffix}")
}

/// Loads the dump into `staging`, checks that everything in it can move,
/// then swaps its tables into `target` in one statement and drops the
/// replaced ones.
async fn load_and_swap(
    repo: &Repository,
    record: &BackupRecord,
    entry: &Entry,
    target: &DatabaseUrl,
    staging: &DatabaseUrl,
    suffix: &str,
) -> Result<u64, DumpError> {
    let written = program::restore_through_program(repo, record, Engine::Mysql, entry, staging, false)
        .await
        .map_err(|e| DumpError::Staged {
            id: record.id.clone(),
            target: target.to_string(),
            staging: staging.database.clone(),
            message: e.to_string(),
        })?;
    let unmovable = unmovable_objects(staging).await?;
    if !unmovable.is_empty() {
        return Err(DumpError::CannotSwap {
            id: record.id.clone(),
            target: target.to_string(),
            objects: unmovable.join(", "),
        });
    }
    let staged = objects(staging, "TABLE_TYPE <> 'VIEW'").await?;
    let existing: std::collections::BTreeMap<String, String> = objects(target, "TRUE").await?.into_iter().collect();
    let mut renames = Vec::new();
    let mut replaced = Vec::new();
    for (n, (table, _)) in staged.iter().enumerate() {
        if let Some(kind) = existing.get(table) {
            let old = format!("lbold_{suffix}_{n}");
            renames.push(format!("{} TO {}", qualified(target, table), qualified(target, &old)));
            replaced.push((old, kind.clone()));
        }
        renames.push(format!("{} TO {}", qualified(staging, table), qualified(target, table)));
    }
    if !renames.is_empty() {
        target.query(&format!("RENAME TABLE {}", renames.join(", "))).await?;
    }
    drop_replaced(record, target, &replaced).await?;
    Ok(written)
}

/// Drops the tables (and views) the swap renamed aside.
async fn drop_replaced(
    record: &BackupRecord,
    target: &DatabaseUrl,
    replaced: &[(String, String)],
) -> Result<(), DumpError> {
    let (views, tables): (Vec<_>, Vec<_>) = replaced.iter().partition(|(_, kind)| kind == "VIEW");
    let list = |items: &[&(String, String)]| items.iter().map(|(name, _)| quote(name)).collect::<Vec<_>>().join(", ");
    let mut statements = Vec::new();
    if !tables.is_empty() {
        statements.push(format!(
            "SET SESSION foreign_key_checks = 0; DROP TABLE IF EXISTS {}",
            list(&tables)
        ));
    }
    if !views.is_empty() {
        statements.push(format!("DROP VIEW IF EXISTS {}", list(&views)));
    }
    for statement in statements {
        target.query(&statement).await.map_err(|e| DumpError::Data {
            id: record.id.clone(),
            target: target.to_string(),
            message: format!(
                "the dump was restored, but the tables it replaced ({}) could not be dropped (drop them yourself): {e}",
                list(&replaced.iter().collect::<Vec<_>>())
            ),
        })?;
    }
    Ok(())
}

/// Creates `database` on `like`'s server with `like`'s character set and collation.
async fn create_like(like: &DatabaseUrl, database: &str) -> Result<(), DbError> {
    let rows = like
        .with_database("information_schema")
        .query(&format!(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME = '{}'",
            like.database
        ))
        .await?;
    let defaults = rows
        .first()
        .and_then(|row| row.split_once('\t'))
        .filter(|(charset, collation)| [charset, collation].iter().all(|s| is_plain_name(s)))
        .map(|(charset, collation)| format!(" CHARACTER SET {charset} COLLATE {collation}"))
        .unwrap_or_default();
    like.with_database("information_schema")
        .query(&format!("CREATE DATABASE {}{defaults}", quote(database)))
        .await?;
    Ok(())
}

/// Drops `database` on `server`'s server, if it exists.
async fn drop_database(server: &DatabaseUrl, database: &str) -> Result<(), DbError> {
    server
        .with_database("information_schema")
        .query(&format!("DROP DATABASE IF EXISTS {}", quote(database)))
        .await?;
    Ok(())
}

/// The views, triggers, routines and events in `staging`, each named by kind.
async fn unmovable_objects(staging: &DatabaseUrl) -> Result<Vec<String>, DbError> {
    let schema = &staging.database;
    let sql = format!(
        "SELECT 'view', HEX(TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{schema}' AND TABLE_TYPE = 'VIEW' \
         UNION ALL SELECT 'trigger', HEX(TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{schema}' \
         UNION ALL SELECT LOWER(ROUTINE_TYPE), HEX(ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{schema}' \
         UNION ALL SELECT 'event', HEX(EVENT_NAME) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{schema}'"
    );
    let rows = staging.with_database("information_schema").query(&sql).await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let (kind, name) = row.split_once('\t')?;
            Some(format!("{kind} {}", unhex(name)?))
        })
        .collect())
}

/// `database`'s tables (and views, sequences) matching `filter`, with their
/// `TABLE_TYPE`, in name order. Names travel as hex, so that no character
/// in them is lost to the client's escaping.
async fn objects(database: &DatabaseUrl, filter: &str) -> Result<Vec<(String, String)>, DbError> {
    let rows = database
        .with_database("information_schema")
        .query(&format!(
            "SELECT HEX(TABLE_NAME), TABLE_TYPE FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = '{}' AND {filter} ORDER BY TABLE_NAME",
            database.database
        ))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let (name, kind) = row.split_once('\t')?;
            Some((unhex(name)?, kind.to_owned()))
        })
        .collect())
}

fn unhex(text: &str) -> Option<String> {
    String::from_utf8(hex::decode(text.trim()).ok()?).ok()
}

/// A character set or collation name, safe to write into SQL unquoted.
fn is_plain_name(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An identifier in backticks.
fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `database`.`table`.
fn qualified(database: &DatabaseUrl, table: &str) -> String {
    format!("{}.{}", quote(&database.database), quote(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names_fit_mariadb_and_name_their_target() {
        let long = "d".repeat(64);
        for (database, expected) in [
            ("shop", "shop__lbrestore_0badcafe".to_owned()),
            (long.as_str(), format!("{}__lbrestore_0badcafe", "d".repeat(40))),
        ] {
            let name = staging_name(database, "0badcafe");
            assert_eq!(name, expected);
            assert!(name.len() <= 64, "{name}");
        }
    }

    #[test]
    fn identifiers_are_quoted_and_names_read_back_from_hex() {
        assert_eq!(quote("we`ird"), "`we``ird`");
        assert_eq!(unhex("6F726465727309"), Some("orders\t".to_owned()));
        assert_eq!(unhex("zz"), None);
        assert!(is_plain_name("utf8mb4_general_ci"));
        assert!(!is_plain_name("utf8; DROP"));
    }
}
