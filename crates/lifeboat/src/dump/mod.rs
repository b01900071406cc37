//! Logical backups of databases: a dump program's standard output streamed
//! straight into the pipeline (no temporary file), stored as a one-entry
//! backup; restored by streaming the verified entry into the engine's
//! restore program. This module is the driver and the public API
//! (`run_dump_backup`, `restore_dump`, `restore_dump_to_file`); each
//! engine's programs and protocol live in its own module:
//!
//! - PostgreSQL (`postgres.rs`): `pg_dump --format=custom --compress=0`
//!   (one consistent snapshot by nature); restored with `pg_restore
//!   --single-transaction`, so a failed restore leaves nothing behind.
//! - SQLite (`program.rs`): `sqlite3 -readonly FILE .dump` (one read
//!   transaction); restored into a new file beside the target, renamed over
//!   it when done.
//! - MySQL / MariaDB (`program.rs`): `mariadb-dump --single-transaction
//!   --skip-extended-insert` (a consistent snapshot of InnoDB tables, a row
//!   per line so that dumps deduplicate) without `--databases`, so it
//!   restores into any target database; restored with the `mariadb` client
//!   all or nothing (`mysql.rs`): into a staging database first, then
//!   swapped into the target with one `RENAME TABLE`.
//! - DuckDB (`duckdb.rs`): `EXPORT DATABASE (FORMAT parquet, COMPRESSION
//!   uncompressed)` (one read transaction) by the `duckdb` program into a
//!   temporary directory, stored as one uncompressed tar (`tar.rs`; the
//!   store compresses and deduplicates); restored by `IMPORT DATABASE` into
//!   a new file beside the target, renamed over it when done.
//! - Redis (`redis.rs`): no program; the server's RDB snapshot taken over
//!   the replication protocol, restored into a file (`restore_dump_to_file`)
//!   that a stopped server is then started on.
//!
//! Passwords travel in the environment (`PGPASSWORD`, `MYSQL_PWD`), never
//! in a program's arguments, and never into the catalog: a dump's source name
//! is its URL without the password. A connection may also be kept in a
//! Secrets Manager secret, named by its ARN (`crate::db::secret`).

use std::sync::Arc;
use std::time::Instant;

use futures::stream::BoxStream;
use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::backup::{run_stream_backup, BackupError, BackupSummary, StreamSpec};
use crate::catalog::{BackupRecord, BackupStatus, Catalog, CatalogError};
use crate::db::client::TableCount;
use crate::db::error::DbError;
use crate::db::secret::SecretError;
use crate::db::url::{DatabaseUrl, Engine, UrlError};
use crate::format::{BackupType, Entry};
use crate::repo::{Index, RepoError, Repository};
use crate::restore::fetch_chunk;

mod duckdb;
mod mysql;
mod postgres;
mod program;
mod redis;
mod tar;

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("restore target {target} already holds {tables} table(s): pass --overwrite to replace the dumped objects, or restore into an empty or new database")]
    TargetNotEmpty { target: String, tables: u64 },
    #[error("backup {id} is a {backup_engine} dump; it cannot be restored into {target}: give a {backup_engine} URL")]
    WrongEngine {
        id: String,
        backup_engine: String,
        target: String,
    },
    #[error(
        "backup {id} is not a database dump (its source is {source_name}): restore it with `lifeboat restore files`"
    )]
    NotADump { id: String, source_name: String },
    #[error(
        "backup {id} is {status}, not completed: only completed backups can be restored (see `lifeboat backups list`)"
    )]
    NotCompleted { id: String, status: String },
    #[error("restore of backup {id} into {target} stopped before the dump's end: {message}")]
    Data {
        id: String,
        target: String,
        message: String,
    },
    #[error("restore of backup {id} into {target} failed while the dump loaded into the staging database {staging}, which was dropped; {target} was not changed: {message}")]
    Staged {
        id: String,
        target: String,
        staging: String,
        message: String,
    },
    #[error("backup {id} holds objects that cannot be swapped into the existing database {target} ({objects}); {target} was not changed: restore into a new database name (the restore creates it and loads everything in place), or drop the existing database first")]
    CannotSwap {
        id: String,
        target: String,
        objects: String,
    },
    #[error("restore target {path} already exists: pass --overwrite to replace it, or give a new file name")]
    FileExists { path: String },
    #[error("backup {id} is a Redis RDB snapshot: restore it into a file (--to PATH/dump.rdb) and start the stopped server on that file")]
    RedisNeedsFile { id: String },
    #[error("restore of backup {id} into {path} failed: {message}")]
    File { id: String, path: String, message: String },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Backup(#[from] BackupError),
}

/// A file removed when dropped, unless taken out first.
struct RemoveOnDrop(Option<String>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A database dump to take.
#[derive(Clone, Debug)]
pub struct DumpBackupOptions {
    pub url: DatabaseUrl,
    pub retention_days: Option<u32>,
}

/// Dumps the database and stores the dump as a one-entry backup. Any failure,
/// from a refused connection to a dump program that exits non-zero halfway,
/// is recorded as a failed backup and returned.
pub async fn run_dump_backup(
    repo: Arc<Repository>,
    catalog: &Catalog,
    options: &DumpBackupOptions,
) -> Result<BackupSummary, DumpError> {
    let url = options.url.clone();
    if url.engine == Engine::Redis {
        return redis::run_redis_backup(repo, catalog, options).await;
    }
    if url.engine == Engine::Duckdb {
        return duckdb::run_duckdb_backup(repo, catalog, options).await;
    }
    // The version query checks the connection first; its failure fails the
    // backup record (so it is recorded) rather than preceding it.
    let version = match url.require_tool(program::dump_tools(url.engine)) {
        Ok(()) => url.server_version().await,
        Err(missing) => Err(missing),
    };
    let spec = stream_spec(&url, options.retention_days, version.as_ref().ok());
    let open = move || -> Result<program::DumpReader, crate::backup::StreamError> {
        version?;
        Ok(program::start_dump(&url)?)
    };
    Ok(run_stream_backup(repo, catalog, &spec, open).await?)
}

/// A restore of a dump into a database.
#[derive(Clone, Debug)]
pub struct DumpRestoreOptions {
    pub backup_id: String,
    pub target: DatabaseUrl,
    /// Restore into a database that already has tables, replacing the dumped objects.
    pub overwrite: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DumpRestoreSummary {
    pub backup_id: String,
    pub engine: Engine,
    pub target: String,
    /// The target database did not exist and was created.
    pub created_database: bool,
    pub bytes_restored: u64,
    /// The target's tables after the restore, with their row counts.
    pub tables: Vec<TableCount>,
    pub duration_seconds: f64,
}

/// How a dump of `url` is recorded: one full-backup entry named for the
/// engine, the URL without its password as the source.
fn stream_spec(url: &DatabaseUrl, retention_days: Option<u32>, server_version: Option<&String>) -> StreamSpec {
    StreamSpec {
        source_name: url.to_string(),
        entry_path: url.engine.entry_path(&url.database),
        backup_type: BackupType::Full,
        retention_days,
        engine: Some(url.engine.as_str().to_owned()),
        server_version: server_version.cloned(),
        database: Some(url.database.clone()),
    }
}

/// A completed dump backup: its record, its engine and its one entry.
async fn dump_backup(
    repo: &Repository,
    catalog: &Catalog,
    backup_id: &str,
) -> Result<(BackupRecord, Engine, Entry), DumpError> {
    let record = catalog.get(backup_id).await?;
    if record.status != BackupStatus::Completed {
        return Err(DumpError::NotCompleted {
            id: record.id,
            status: record.status.as_str().to_owned(),
        });
    }
    let not_a_dump = || DumpError::NotADump {
        id: record.id.clone(),
        source_name: record.source.clone(),
    };
    let engine = record
        .engine
        .as_deref()
        .and_then(Engine::parse)
        .ok_or_else(not_a_dump)?;
    let manifest = repo.get_manifest(&record.id, record.checksum.as_deref()).await?;
    let entry = match manifest.entries.as_slice() {
        [entry] if entry.path.starts_with(&format!("{}/", engine.as_str())) => entry.clone(),
        _ => return Err(not_a_dump()),
    };
    Ok((record, engine, entry))
}

/// A dump's one entry as its chunks, fetched four at a time and each
/// verified, in order; `check` then compares the whole entry's SHA-256
/// with the manifest's.
struct EntryChunks<'a> {
    entry: &'a Entry,
    chunks: BoxStream<'a, Result<Vec<u8>, String>>,
    sha: Sha256,
    written: u64,
}

impl<'a> EntryChunks<'a> {
    fn new(repo: &'a Repository, index: &'a Index, entry: &'a Entry) -> Self {
        let chunks = futures::stream::iter(entry.chunks.iter())
            .map(move |id| fetch_chunk(repo, index, id))
            .buffered(4)
            .boxed();
        Self {
            entry,
            chunks,
            sha: Sha256::new(),
            written: 0,
        }
    }

    /// The next chunk's data, or why it could not be read.
    async fn next(&mut self) -> Option<Result<Vec<u8>, String>> {
        let chunk = self.chunks.next().await?;
        if let Ok(data) = &chunk {
            self.sha.update(data);
            self.written += data.len() as u64;
        }
        Some(chunk)
    }

    /// The bytes read so far.
    fn written(&self) -> u64 {
        self.written
    }

    /// Once every chunk was read: the entry's SHA-256 (hex), or how it
    /// differs from the manifest's.
    fn check(&mut self) -> Result<String, String> {
        let found = hex::encode(std::mem::take(&mut self.sha).finalize());
        if found == self.entry.sha256 {
            Ok(found)
        } else {
            Err(format!(
                "{} has SHA-256 {found}, the manifest says {}",
                self.entry.path, self.entry.sha256
            ))
        }
    }
}

/// Restores a dump backup into `options.target`: every chunk verified as it
/// is fetched, the whole dump's SHA-256 checked before the restore program
/// sees its end. A target that holds tables is refused unless `overwrite`.
pub async fn restore_dump(
    repo: Arc<Repository>,
    catalog: &Catalog,
    options: &DumpRestoreOptions,
) -> Result<DumpRestoreSummary, DumpError> {
    let started = Instant::now();
    let (record, engine, entry) = dump_backup(&repo, catalog, &options.backup_id).await?;
    let target = &options.target;
    check_target(&record, engine, target)?;
    if engine == Engine::Duckdb {
        return duckdb::restore_duckdb(repo, &record, &entry, options, started).await;
    }
    let created_database = prepare_target(target, options.overwrite).await?;
    let written = if engine == Engine::Mysql {
        mysql::restore_mysql(&repo, &record, &entry, target, created_database).await?
    } else {
        program::restore_through_program(&repo, &record, engine, &entry, target, options.overwrite).await?
    };
    let tables = target.table_counts().await?;
    Ok(DumpRestoreSummary {
        backup_id: record.id.clone(),
        engine,
        target: target.to_string(),
        created_database,
        bytes_restored: written,
        tables,
        duration_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Refuses a Redis dump (it is restored to a file) and a target of another engine.
fn check_target(record: &BackupRecord, engine: Engine, target: &DatabaseUrl) -> Result<(), DumpError> {
    if engine == Engine::Redis {
        return Err(DumpError::RedisNeedsFile { id: record.id.clone() });
    }
    if target.engine != engine {
        return Err(DumpError::WrongEngine {
            id: record.id.clone(),
            backup_engine: engine.as_str().to_owned(),
            target: target.to_string(),
        });
    }
    Ok(())
}

/// Creates the target database if it does not exist (whether it did not),
/// and refuses one that holds tables unless `overwrite`.
async fn prepare_target(target: &DatabaseUrl, overwrite: bool) -> Result<bool, DumpError> {
    let created_database = !target.database_exists().await?;
    if created_database {
        target.create_database().await?;
    } else {
        let tables = target.tables().await?.len() as u64;
        if tables > 0 && !overwrite {
            return Err(DumpError::TargetNotEmpty {
                target: target.to_string(),
                tables,
            });
        }
    }
    Ok(created_database)
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DumpFileRestoreSummary {
    pub backup_id: String,
    pub engine: Engine,
    pub path: String,
    pub bytes_restored: u64,
    pub sha256: String,
    pub duration_seconds: f64,
}

/// Writes a dump backup's one entry, verified, to the file `path` (for a
/// Redis backup: an RDB file to start a stopped server on). Written under a
/// temporary name beside it and renamed into place once complete and
/// verified; an existing file is refused unless `overwrite`.
pub async fn restore_dump_to_file(
    repo: Arc<Repository>,
    catalog: &Catalog,
    backup_id: &str,
    path: &std::path::Path,
    overwrite: bool,
) -> Result<DumpFileRestoreSummary, DumpError> {
    use std::io::Write;
    let started = Instant::now();
    let (record, engine, entry) = dump_backup(&repo, catalog, backup_id).await?;
    let shown = path.display().to_string();
    let fail = |message: String| DumpError::File {
        id: record.id.clone(),
        path: shown.clone(),
        message,
    };
    if !overwrite && path.exists() {
        return Err(DumpError::FileExists { path: shown.clone() });
    }
    let mut temporary_name = path.as_os_str().to_owned();
    temporary_name.push(".lifeboat-restore");
    let temporary_path = std::path::PathBuf::from(temporary_name);
    let _ = std::fs::remove_file(&temporary_path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary_path)
        .map_err(|e| fail(format!("could not create {}: {e}", temporary_path.display())))?;
    let mut temporary = RemoveOnDrop(Some(temporary_path.to_string_lossy().into_owned()));

    let index = repo.load_index().await?;
    let mut chunks = EntryChunks::new(&repo, &index, &entry);
    while let Some(chunk) = chunks.next().await {
        let data = chunk.map_err(&fail)?;
        file.write_all(&data).map_err(|e| fail(format!("writing: {e}")))?;
    }
    let found = chunks.check().map_err(&fail)?;
    let written = chunks.written();
    file.sync_all().map_err(|e| fail(format!("flushing: {e}")))?;
    drop(file);
    if !overwrite && path.exists() {
        return Err(DumpError::FileExists { path: shown.clone() });
    }
    std::fs::rename(&temporary_path, path).map_err(|e| fail(format!("renaming into place: {e}")))?;
    temporary.0 = None;
    Ok(DumpFileRestoreSummary {
        backup_id: record.id.clone(),
        engine,
        path: shown,
        bytes_restored: written,
        sha256: found,
        duration_seconds: started.elapsed().as_secs_f64(),
    })
}
