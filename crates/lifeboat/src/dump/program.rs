//! The engines dumped and restored by their own programs: PostgreSQL
//! (`pg_dump` / `pg_restore`, see `super::postgres`), MySQL / MariaDB
//! (`mariadb-dump` / `mariadb`) and SQLite (`sqlite3 .dump` / `sqlite3`).
//!
//! A dump is the program's standard output, read by the backup as it is
//! written (`DumpReader`). A restore streams the verified dump into the
//! restore program's standard input (`restore_through_program`); SQLite's
//! goes into a new file beside the target, renamed over it once complete.

use std::io::Read;
use std::process::{Child, ChildStdout, Stdio};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::postgres::{self, PsqlPipe};
use super::{DumpError, EntryChunks, RemoveOnDrop};
use crate::catalog::BackupRecord;
use crate::db::client::tail;
use crate::db::error::DbError;
use crate::db::url::{DatabaseUrl, Engine};
use crate::format::Entry;
use crate::repo::Repository;

/// The programs that dump an engine's database, in order of preference.
pub(super) fn dump_tools(engine: Engine) -> &'static [&'static str] {
    match engine {
        Engine::Postgresql => &["pg_dump"],
        Engine::Mysql => &["mariadb-dump", "mysqldump"],
        Engine::Sqlite => &["sqlite3"],
        Engine::Duckdb => &["duckdb"],
        Engine::Redis => &[],
    }
}

/// The dump program's arguments for `url`'s database.
fn dump_args(url: &DatabaseUrl) -> Vec<String> {
    match url.engine {
        Engine::Postgresql => postgres::dump_args(url),
        // --skip-extended-insert: one INSERT per row. mariadb-dump cuts
        // multi-row INSERTs by byte length, so one row changing size moves
        // every later statement boundary and the rest of the dump no
        // longer deduplicates; with a row per line an edit changes only
        // its own lines. --no-autocommit keeps the restore to one commit
        // per table.
        Engine::Mysql => vec![
            "--single-transaction".into(),
            "--skip-extended-insert".into(),
            "--no-autocommit".into(),
            "--routines".into(),
            "--triggers".into(),
            "--hex-blob".into(),
            "--skip-dump-date".into(),
            "--default-character-set=utf8mb4".into(),
            url.database.clone(),
        ],
        // `.dump` reads inside one transaction: a consistent snapshot.
        Engine::Sqlite => vec!["-readonly".into(), url.database.clone(), ".dump".into()],
        Engine::Redis | Engine::Duckdb => Vec::new(),
    }
}

/// Starts dumping `url`'s database: the dump program's output.
pub(super) fn start_dump(url: &DatabaseUrl) -> Result<DumpReader, DbError> {
    DumpReader::spawn(url, dump_tools(url.engine), &dump_args(url))
}

/// A dump program's standard output. Its end is reported only once the
/// program exited successfully: a program that fails after writing part of
/// its output fails the read, and so the backup. Dropped early, it kills the
/// program.
pub(super) struct DumpReader {
    tool: String,
    url: DatabaseUrl,
    child: Child,
    stdout: ChildStdout,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
    finished: bool,
}

impl DumpReader {
    fn spawn(url: &DatabaseUrl, tools: &[&str], args: &[String]) -> Result<Self, DbError> {
        let mut last_missing = None;
        for tool in tools {
            let mut command = url.command(tool);
            command.args(args);
            let mut child = match command.spawn() {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    last_missing = Some(url.missing(tool));
                    continue;
                }
                Err(e) => {
                    return Err(DbError::ToolStart {
                        tool: (*tool).to_owned(),
                        message: e.to_string(),
                    })
                }
            };
            let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
                let _ = child.kill();
                let _ = child.wait();
                return Err(DbError::ToolStart {
                    tool: (*tool).to_owned(),
                    message: "its output could not be captured".into(),
                });
            };
            // Drained on its own thread, so a chatty program never blocks on a full pipe.
            let stderr = std::thread::spawn(move || {
                let mut buffer = Vec::new();
                let _ = stderr.read_to_end(&mut buffer);
                buffer
            });
            return Ok(Self {
                tool: (*tool).to_owned(),
                url: url.clone(),
                child,
                stdout,
                stderr: Some(stderr),
                finished: false,
            });
        }
        Err(last_missing.unwrap_or_else(|| url.missing(tools[0])))
    }

    fn stderr(&mut self) -> Vec<u8> {
        self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default()
    }
}

impl Read for DumpReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.finished {
            return Ok(0);
        }
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.finished = true;
            let status = self.child.wait()?;
            let stderr = self.stderr();
            if !status.success() {
                return Err(std::io::Error::other(self.url.failed(&self.tool, &status, &stderr)));
            }
            if !stderr.is_empty() {
                tracing::warn!(tool = %self.tool, stderr = %tail(&stderr), "dump program wrote to standard error");
            }
        }
        Ok(n)
    }
}

impl Drop for DumpReader {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Where a SQLite restore is written before it replaces the target.
fn sqlite_temporary(target: &DatabaseUrl) -> String {
    format!("{}.lifeboat-restore", target.database)
}

/// The restore programs for `engine`, in order of preference, and their arguments.
fn restore_args(
    record: &BackupRecord,
    engine: Engine,
    target: &DatabaseUrl,
    overwrite: bool,
    through_psql: bool,
) -> Result<(&'static [&'static str], Vec<String>), DumpError> {
    Ok(match engine {
        Engine::Postgresql => (&["pg_restore"], postgres::restore_args(target, overwrite, through_psql)),
        Engine::Mysql => (&["mariadb", "mysql"], vec![target.database.clone()]),
        // Into a new file beside the target, renamed over it only once complete.
        Engine::Sqlite => (&["sqlite3"], vec!["-bail".into(), sqlite_temporary(target)]),
        Engine::Redis | Engine::Duckdb => return Err(DumpError::RedisNeedsFile { id: record.id.clone() }),
    })
}

/// A running restore program: its input, its standard error being drained,
/// and for a PostgreSQL server older than the pg_restore, the psql that runs
/// the script pg_restore writes.
struct RestoreProgram {
    tool: &'static str,
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stderr: tokio::task::JoinHandle<Vec<u8>>,
    psql: Option<PsqlPipe>,
}

/// How streaming the dump into a restore program ended.
enum Fed {
    /// All of it, its checksum matching.
    Complete,
    /// The program stopped reading: its exit status says why.
    BrokenPipe,
    /// A chunk could not be read, or the whole dump's checksum did not match.
    Failed(String),
}

impl RestoreProgram {
    /// Starts the first of `tools` found on PATH.
    fn spawn(
        target: &DatabaseUrl,
        tools: &[&'static str],
        args: &[String],
        through_psql: bool,
    ) -> Result<Self, DumpError> {
        let mut spawned = None;
        for tool in tools {
            let mut command = tokio::process::Command::from(target.command(tool));
            command
                .args(args)
                .stdin(Stdio::piped())
                .stdout(if through_psql { Stdio::piped() } else { Stdio::null() })
                .kill_on_drop(true);
            match command.spawn() {
                Ok(child) => {
                    spawned = Some((*tool, child));
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(DbError::ToolStart {
                        tool: (*tool).to_owned(),
                        message: e.to_string(),
                    }
                    .into())
                }
            }
        }
        let (tool, mut child) = spawned.ok_or_else(|| target.missing(tools[0]))?;
        let (Some(stdin), Some(mut stderr)) = (child.stdin.take(), child.stderr.take()) else {
            return Err(DbError::ToolStart {
                tool: tool.to_owned(),
                message: "its input could not be connected".into(),
            }
            .into());
        };
        let stderr = tokio::spawn(async move {
            let mut buffer = Vec::new();
            let _ = stderr.read_to_end(&mut buffer).await;
            buffer
        });
        let psql = match child.stdout.take() {
            Some(script) if through_psql => Some(PsqlPipe::start(target, script)?),
            _ => None,
        };
        Ok(Self {
            tool,
            child,
            stdin,
            stderr,
            psql,
        })
    }

    /// Writes the dump's verified chunks into the program's input.
    async fn feed(&mut self, chunks: &mut EntryChunks<'_>) -> Fed {
        while let Some(chunk) = chunks.next().await {
            let data = match chunk {
                Ok(data) => data,
                Err(message) => return Fed::Failed(message),
            };
            if self.stdin.write_all(&data).await.is_err() {
                return Fed::BrokenPipe;
            }
        }
        Fed::Complete
    }

    /// Kills the program (and psql) before they saw the end of their input:
    /// pg_restore's (or psql's) single transaction rolls back.
    async fn abort(mut self) {
        if let Some(psql) = self.psql {
            psql.abort().await;
        }
        let _ = self.child.kill().await;
    }

    /// Closes the program's input and waits for it (and psql); fails with
    /// what it said unless it read the whole dump and ended well.
    async fn finish(
        self,
        target: &DatabaseUrl,
        broken_pipe: bool,
        stop: impl Fn(String) -> DumpError,
    ) -> Result<(), DumpError> {
        let Self {
            tool,
            mut child,
            stdin,
            stderr,
            psql,
        } = self;
        drop(stdin);
        let status = child.wait().await.map_err(|e| DbError::ToolStart {
            tool: tool.to_owned(),
            message: e.to_string(),
        })?;
        let stderr = stderr.await.unwrap_or_default();
        if let Some(psql) = psql {
            if status.success() && !broken_pipe {
                psql.finish(target).await?;
            } else if let Some(error) = psql.stop(target).await {
                // pg_restore failed because psql stopped reading: psql says why.
                return Err(error.into());
            }
        }
        if !status.success() {
            return Err(target.failed(tool, &status, &stderr).into());
        }
        if broken_pipe {
            return Err(stop(format!(
                "{tool} exited successfully without reading the whole dump: {}",
                tail(&stderr)
            )));
        }
        Ok(())
    }
}

/// Restores a PostgreSQL, MySQL or SQLite dump into `target` through the
/// engine's restore program; the bytes restored.
pub(super) async fn restore_through_program(
    repo: &Repository,
    record: &BackupRecord,
    engine: Engine,
    entry: &Entry,
    target: &DatabaseUrl,
    overwrite: bool,
) -> Result<u64, DumpError> {
    // pg_restore 17 and newer set transaction_timeout, which older servers
    // refuse: for them it writes SQL, that line is dropped, psql runs the rest.
    let through_psql = engine == Engine::Postgresql && postgres::needs_psql_pipe(target).await?;
    let (tools, args) = restore_args(record, engine, target, overwrite, through_psql)?;
    let mut temporary = RemoveOnDrop((engine == Engine::Sqlite).then(|| sqlite_temporary(target)));
    if let Some(path) = &temporary.0 {
        let _ = std::fs::remove_file(path);
    }
    let mut program = RestoreProgram::spawn(target, tools, &args, through_psql)?;

    let index = repo.load_index().await?;
    let stop = |message: String| DumpError::Data {
        id: record.id.clone(),
        target: target.to_string(),
        message,
    };
    let mut chunks = EntryChunks::new(repo, &index, entry);
    let fed = match program.feed(&mut chunks).await {
        Fed::Complete => match chunks.check() {
            Ok(_) => Fed::Complete,
            Err(message) => Fed::Failed(message),
        },
        other => other,
    };
    let written = chunks.written();
    let broken_pipe = match fed {
        Fed::Failed(message) => {
            program.abort().await;
            return Err(stop(message));
        }
        Fed::BrokenPipe => true,
        Fed::Complete => false,
    };
    program.finish(target, broken_pipe, &stop).await?;
    if let Some(path) = temporary.0.take() {
        std::fs::rename(&path, &target.database).map_err(|e| {
            let _ = std::fs::remove_file(&path);
            stop(format!("could not rename {path} to {}: {e}", target.database))
        })?;
    }
    Ok(written)
}
