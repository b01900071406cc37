//! PostgreSQL's side of dumps: `pg_dump --format=custom --compress=0` (one
//! consistent snapshot by nature), restored with `pg_restore
//! --single-transaction`, so a failed restore leaves nothing behind.
//!
//! pg_restore 17 and newer set `transaction_timeout`, which servers before
//! PostgreSQL 17 refuse: into such a server pg_restore writes SQL instead,
//! that one line is dropped and psql runs the rest in one transaction
//! (`PsqlPipe`).

use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::db::error::DbError;
use crate::db::url::DatabaseUrl;

/// pg_dump's arguments for `url`'s database.
pub(super) fn dump_args(url: &DatabaseUrl) -> Vec<String> {
    // --compress=0: pg_dump compresses the custom format by default,
    // and a compressed stream changes throughout after a small edit,
    // which defeats deduplication; the store compresses chunks itself.
    vec![
        "--format=custom".into(),
        "--compress=0".into(),
        format!("--dbname={}", url.database),
    ]
}

/// pg_restore's arguments: into `target` in one transaction, or as a script
/// on its standard output for psql (`through_psql`); `overwrite` drops the
/// dumped objects first.
pub(super) fn restore_args(target: &DatabaseUrl, overwrite: bool, through_psql: bool) -> Vec<String> {
    let mut args: Vec<String> = if through_psql {
        vec!["--exit-on-error".into(), "--file=-".into()]
    } else {
        vec![
            "--exit-on-error".into(),
            "--single-transaction".into(),
            format!("--dbname={}", target.database),
        ]
    };
    if overwrite {
        args.extend(["--clean".into(), "--if-exists".into()]);
    }
    args
}

/// The line pg_restore 17 and newer write that servers before 17 refuse.
const TRANSACTION_TIMEOUT_LINE: &str = "SET transaction_timeout = 0;";

/// Whether `target`'s server is older than PostgreSQL 17 while the
/// pg_restore on PATH is 17 or newer (so it cannot restore directly).
pub(super) async fn needs_psql_pipe(target: &DatabaseUrl) -> Result<bool, DbError> {
    let major = |text: &str| -> Option<u32> {
        let digits: String = text.trim().chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    let tool = match tokio::process::Command::new("pg_restore")
        .arg("--version")
        .output()
        .await
    {
        Ok(output) => String::from_utf8_lossy(&output.stdout).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(target.missing("pg_restore")),
        Err(e) => {
            return Err(DbError::ToolStart {
                tool: "pg_restore".into(),
                message: e.to_string(),
            })
        }
    };
    // "pg_restore (PostgreSQL) 17.12 (Debian 17.12-1)"
    let tool_major = tool.split(") ").nth(1).and_then(major);
    let server_major = target
        .query("SHOW server_version_num")
        .await?
        .first()
        .and_then(|v| major(v))
        .map(|num| num / 10_000);
    Ok(matches!((tool_major, server_major), (Some(tool), Some(server)) if tool >= 17 && server < 17))
}

/// psql running what `pg_restore --file=-` writes, without
/// [`TRANSACTION_TIMEOUT_LINE`], in one transaction that stops at the first
/// error. Its input stays open until [`PsqlPipe::finish`]: psql commits only
/// once pg_restore has ended well and the dump's checksum matched;
/// [`PsqlPipe::abort`] kills it first otherwise, so nothing half-restored stays.
pub(super) struct PsqlPipe {
    child: tokio::process::Child,
    forward: tokio::task::JoinHandle<std::io::Result<tokio::process::ChildStdin>>,
    stderr: tokio::task::JoinHandle<Vec<u8>>,
}

impl PsqlPipe {
    pub(super) fn start(target: &DatabaseUrl, script: tokio::process::ChildStdout) -> Result<Self, DbError> {
        let mut command = tokio::process::Command::from(target.command("psql"));
        command
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"])
            .arg(format!("--dbname={}", target.database))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(target.missing("psql")),
            Err(e) => {
                return Err(DbError::ToolStart {
                    tool: "psql".into(),
                    message: e.to_string(),
                })
            }
        };
        let (Some(mut input), Some(mut stderr)) = (child.stdin.take(), child.stderr.take()) else {
            return Err(DbError::ToolStart {
                tool: "psql".into(),
                message: "its input could not be connected".into(),
            });
        };
        let forward = tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(script);
            let mut line = Vec::new();
            loop {
                line.clear();
                if lines.read_until(b'\n', &mut line).await? == 0 {
                    return Ok(input);
                }
                if line.trim_ascii_end() != TRANSACTION_TIMEOUT_LINE.as_bytes() {
                    input.write_all(&line).await?;
                }
            }
        });
        let stderr = tokio::spawn(async move {
            let mut buffer = Vec::new();
            let _ = stderr.read_to_end(&mut buffer).await;
            buffer
        });
        Ok(Self { child, forward, stderr })
    }

    /// Once pg_restore has ended well: closes psql's input (it commits) and
    /// waits for it; its failure, if it failed.
    pub(super) async fn finish(mut self, target: &DatabaseUrl) -> Result<(), DbError> {
        let forwarded = match self.forward.await {
            Ok(Ok(input)) => {
                drop(input);
                None
            }
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(message) = forwarded {
            // psql stopped reading (its error is in its output) or the copy
            // broke: it must not commit what it has.
            let _ = self.child.start_kill();
            let status = self.child.wait().await.map_err(|e| DbError::ToolStart {
                tool: "psql".into(),
                message: e.to_string(),
            })?;
            let mut stderr = self.stderr.await.unwrap_or_default();
            stderr.extend_from_slice(format!("\n(forwarding the script: {message})").as_bytes());
            return Err(target.failed("psql", &status, &stderr));
        }
        let status = self.child.wait().await.map_err(|e| DbError::ToolStart {
            tool: "psql".into(),
            message: e.to_string(),
        })?;
        let stderr = self.stderr.await.unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            Err(target.failed("psql", &status, &stderr))
        }
    }

    /// Kills psql before it sees the end of its input: its transaction rolls back.
    pub(super) async fn abort(mut self) {
        self.forward.abort();
        let _ = self.child.kill().await;
    }

    /// After pg_restore failed: psql's own failure if it had already ended
    /// with one, else kills it (its transaction rolls back).
    pub(super) async fn stop(mut self, target: &DatabaseUrl) -> Option<DbError> {
        if let Ok(Some(status)) = self.child.try_wait() {
            if !status.success() {
                let stderr = self.stderr.await.unwrap_or_default();
                return Some(target.failed("psql", &status, &stderr));
            }
        }
        self.abort().await;
        None
    }
}
