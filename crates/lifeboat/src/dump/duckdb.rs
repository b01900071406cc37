//! DuckDB dumps through the `duckdb` command-line program (PyPI
//! `duckdb-cli`): `EXPORT DATABASE` writes the schema, the load script and a
//! Parquet file per table (uncompressed, so that unchanged rows give
//! unchanged bytes and deduplicate; exact types, NULL and '' kept apart)
//! into a temporary directory, which is streamed into the store as one tar.
//! The export is one read transaction: a consistent snapshot.
//!
//! The restore unpacks the verified archive beside the target and runs
//! `IMPORT DATABASE` into a new file there, renamed over the target only
//! once complete: the target is never half written.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use super::tar::{ArchiveReader, Extractor};
use super::{
    stream_spec, DumpBackupOptions, DumpError, DumpRestoreOptions, DumpRestoreSummary, EntryChunks, RemoveOnDrop,
};
use crate::backup::{run_stream_backup, BackupSummary, StreamError};
use crate::catalog::{BackupRecord, Catalog};
use crate::db::error::DbError;
use crate::db::url::{DatabaseUrl, Engine};
use crate::format::Entry;
use crate::repo::Repository;

const TOOL: &str = "duckdb";

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A directory removed with its contents when dropped.
struct TemporaryDir(PathBuf);

impl TemporaryDir {
    /// A new, empty directory `path` (whatever was there first is removed).
    fn create(path: PathBuf) -> std::io::Result<Self> {
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path)?;
        Ok(Self(path))
    }
}

impl Drop for TemporaryDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `duckdb FILE -c SQL` in `dir`, failing with what it said.
fn run_duckdb(url: &DatabaseUrl, file: &str, sql: &str, read_only: bool, dir: &Path) -> Result<(), DbError> {
    let mut command = Command::new(TOOL);
    command.args(["-no-init", "-batch", "-bail"]);
    if read_only {
        command.arg("-readonly");
    }
    command
        .args([file, "-c", sql])
        .current_dir(dir)
        .stdin(std::process::Stdio::null());
    let output = match command.output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(url.missing(TOOL)),
        Err(e) => {
            return Err(DbError::ToolStart {
                tool: TOOL.to_owned(),
                message: e.to_string(),
            })
        }
    };
    if !output.status.success() {
        let mut said = output.stderr;
        said.extend_from_slice(&output.stdout);
        return Err(url.failed(TOOL, &output.status, &said));
    }
    Ok(())
}

/// The export directory's archive, the directory removed once it is dropped.
struct ExportReader {
    archive: ArchiveReader,
    _dir: TemporaryDir,
}

impl std::io::Read for ExportReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.archive.read(buf)
    }
}

/// Exports the database into a new temporary directory and opens its archive.
fn export(url: &DatabaseUrl) -> Result<ExportReader, StreamError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = TemporaryDir::create(
        std::env::temp_dir().join(format!("lifeboat-duckdb-export-{}-{nanos}", std::process::id())),
    )
    .map_err(|e| format!("could not create a temporary directory for the DuckDB export: {e}"))?;
    // A relative directory, so that the load script (part of the dump)
    // names the same paths in every export.
    run_duckdb(
        url,
        &url.database,
        "EXPORT DATABASE 'export' (FORMAT parquet, COMPRESSION uncompressed)",
        true,
        &dir.0,
    )?;
    let archive = ArchiveReader::new(&dir.0.join("export"))
        .map_err(|e| format!("could not read the DuckDB export of {url}: {e}"))?;
    Ok(ExportReader { archive, _dir: dir })
}

/// Dumps a DuckDB file: its export, as one archive, into the store.
pub(super) async fn run_duckdb_backup(
    repo: Arc<Repository>,
    catalog: &Catalog,
    options: &DumpBackupOptions,
) -> Result<BackupSummary, DumpError> {
    let url = options.url.clone();
    // The version query checks that the file is a readable DuckDB database.
    let version = match url.require_tool(&[TOOL]) {
        Ok(()) => url.server_version().await,
        Err(missing) => Err(missing),
    };
    let spec = stream_spec(&url, options.retention_days, version.as_ref().ok());
    let open = move || -> Result<ExportReader, StreamError> {
        version?;
        export(&url)
    };
    Ok(run_stream_backup(repo, catalog, &spec, open).await?)
}

/// Restores a DuckDB dump into a new file at the target (an existing file
/// is replaced only with `overwrite`).
pub(super) async fn restore_duckdb(
    repo: Arc<Repository>,
    record: &BackupRecord,
    entry: &Entry,
    options: &DumpRestoreOptions,
    started: Instant,
) -> Result<DumpRestoreSummary, DumpError> {
    let target = &options.target;
    let path = PathBuf::from(&target.database);
    let existed = path.exists();
    if existed && !options.overwrite {
        return Err(DumpError::FileExists {
            path: target.database.clone(),
        });
    }
    target.require_tool(&[TOOL])?;
    let fail = |message: String| DumpError::Data {
        id: record.id.clone(),
        target: target.to_string(),
        message,
    };
    let temporary_db = format!("{}.lifeboat-restore", target.database);
    let dir = TemporaryDir::create(PathBuf::from(format!("{}.lifeboat-restore.d", target.database)))
        .map_err(|e| fail(format!("could not create a directory beside the target: {e}")))?;
    let _temporary = RemoveOnDrop(Some(temporary_db.clone()));
    let _temporary_wal = RemoveOnDrop(Some(format!("{temporary_db}.wal")));
    let _ = std::fs::remove_file(&temporary_db);

    let index = repo.load_index().await?;
    let mut extractor = Extractor::new(&dir.0);
    let mut chunks = EntryChunks::new(&repo, &index, entry);
    while let Some(chunk) = chunks.next().await {
        let data = chunk.map_err(&fail)?;
        extractor
            .write_all(&data)
            .map_err(|e| fail(format!("unpacking the export: {e}")))?;
    }
    chunks.check().map_err(&fail)?;
    let written = chunks.written();
    extractor
        .finish()
        .map_err(|e| fail(format!("unpacking the export: {e}")))?;

    let import = format!("IMPORT DATABASE {}", literal(&dir.0.to_string_lossy()));
    let working_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let (url, temporary, sql, dir_path) = (target.clone(), temporary_db.clone(), import, working_dir.to_path_buf());
    tokio::task::spawn_blocking(move || run_duckdb(&url, &temporary, &sql, false, &dir_path))
        .await
        .map_err(|e| fail(e.to_string()))??;
    if options.overwrite {
        // A write-ahead log left beside the old file would be replayed into the new one.
        let _ = std::fs::remove_file(format!("{}.wal", target.database));
    }
    std::fs::rename(&temporary_db, &path)
        .map_err(|e| fail(format!("could not rename {temporary_db} to {}: {e}", target.database)))?;
    drop(dir);
    let tables = target.table_counts().await?;
    Ok(DumpRestoreSummary {
        backup_id: record.id.clone(),
        engine: Engine::Duckdb,
        target: target.to_string(),
        created_database: !existed,
        bytes_restored: written,
        tables,
        duration_seconds: started.elapsed().as_secs_f64(),
    })
}
