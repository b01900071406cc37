//! Salvage of a damaged SQLite file (`lifeboat salvage sqlite`): everything
//! still readable copied into a new file, and what was lost named, per
//! table. Works through the `sqlite3` program (neither this SQLite nor
//! Debian's offers `.recover`), on a copy of the damaged file: the damaged
//! file itself is only ever read.
//!
//! The schema comes from `sqlite_master`. Each table is first copied whole;
//! if that fails, its readable rowids are listed in order until the read
//! fails at a damaged page, and the first rowid readable after it is found by
//! seeking (`rowid >= v` succeeds once `v` is past the damaged page's keys,
//! found by an exponential then binary search): what lies between is lost.
//! The readable stretches are then copied with `LIMIT`, so that no copy
//! steps into a damaged page; a stretch whose rows cannot be read is split
//! until the unreadable rows are isolated. A loss is never silent; when
//! damaged pages lie close together, the search may step over a readable
//! stretch between them, which is then reported lost with them. Rowids are
//! kept. Indexes, triggers and views are created after the data; the new
//! file replaces the target only when complete.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

const TOOL: &str = "sqlite3";
const TOOL_PACKAGE: &str = "the sqlite3 command-line program (Debian package sqlite3)";

#[derive(Debug, thiserror::Error)]
pub enum SalvageError {
    #[error("{path} does not exist or is not a file: give the damaged SQLite file")]
    NoSource { path: String },
    #[error("the salvage target {path} already exists: pass --overwrite to replace it, or give a new file name")]
    TargetExists { path: String },
    #[error("the salvage target {path} is the damaged file itself: give a new file name (the damaged file is never written)")]
    SameFile { path: String },
    #[error("{TOOL} was not found on PATH: install {TOOL_PACKAGE}, or add its directory to PATH")]
    ToolMissing,
    #[error("could not run {TOOL}: {message}")]
    ToolStart { message: String },
    #[error("the schema of {path} (sqlite_master) cannot be read, so nothing can be salvaged: {message}")]
    SchemaUnreadable { path: String, message: String },
    #[error("salvaging into {path}: {message}")]
    Target { path: String, message: String },
}

#[derive(Clone, Debug)]
pub struct SalvageOptions {
    pub source: PathBuf,
    pub target: PathBuf,
    pub overwrite: bool,
}

/// Rowids that could not be read: between two readable ones (either end
/// open at the table's start or end).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LostRange {
    /// The last readable rowid before the loss (none: from the table's start).
    pub after_rowid: Option<i64>,
    /// The first readable rowid after the loss (none: to the table's end).
    pub before_rowid: Option<i64>,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableSalvage {
    pub table: String,
    pub rows_recovered: u64,
    /// Every row was read.
    pub complete: bool,
    pub lost: Vec<LostRange>,
    /// Why the table could not be salvaged at all (or in part).
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SalvageReport {
    pub source: String,
    pub target: String,
    pub tables: Vec<TableSalvage>,
    /// Indexes, triggers, views (or `sqlite_sequence`) that could not be recreated, with why.
    pub objects_lost: Vec<String>,
    pub rows_recovered: u64,
    /// Nothing was lost.
    pub complete: bool,
    pub duration_seconds: f64,
}

/// A file removed when dropped.
struct Temporary(PathBuf);

impl Drop for Temporary {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// What one `sqlite3` run printed, and whether it succeeded.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `sqlite3 [-readonly] FILE SQL`.
async fn sqlite(file: &Path, sql: &str, read_only: bool) -> Result<Run, SalvageError> {
    let mut command = tokio::process::Command::new(TOOL);
    command.args(["-batch", "-bail", "-noheader"]);
    if read_only {
        command.arg("-readonly");
    }
    command.arg(file).arg(sql).stdin(std::process::Stdio::null());
    let output = match command.output().await {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(SalvageError::ToolMissing),
        Err(e) => return Err(SalvageError::ToolStart { message: e.to_string() }),
    };
    Ok(Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

#[derive(Deserialize)]
struct SchemaRow {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    sql: String,
}

/// One table's salvage: the damaged copy, the new file, how to copy a row.
struct TableCopy<'a> {
    copy: &'a Path,
    target: &'a Path,
    table: &'a str,
    /// `INSERT INTO main.t (rowid, c…) SELECT rowid, c… FROM broken.t`.
    insert: String,
}

impl TableCopy<'_> {
    /// Runs `INSERT … WHERE condition` in the new file; the rows copied, or why not.
    async fn copy(&self, condition: &str) -> Result<Result<u64, String>, SalvageError> {
        let sql = format!(
            "ATTACH {} AS broken; {} {condition}; SELECT changes();",
            literal(&self.copy.to_string_lossy()),
            self.insert
        );
        let run = sqlite(self.target, &sql, false).await?;
        if !run.ok {
            return Ok(Err(run.stderr));
        }
        Ok(Ok(run.stdout.trim().parse().unwrap_or(0)))
    }

    /// The first readable rowid at or after `from` (none: no more rows), or
    /// an error if the seek lands in a damaged page.
    async fn probe(&self, from: i64) -> Result<Result<Option<i64>, String>, SalvageError> {
        let sql = format!(
            "SELECT rowid FROM {} WHERE rowid >= {from} ORDER BY rowid LIMIT 1",
            ident(self.table)
        );
        let run = sqlite(self.copy, &sql, true).await?;
        if !run.ok {
            return Ok(Err(run.stderr));
        }
        Ok(Ok(run.stdout.trim().parse().ok()))
    }

    /// The smallest `v > failing` whose probe succeeds, with what it found;
    /// `None` if no probe up to the largest rowid succeeds. With nothing
    /// read yet (`failing` the smallest rowid), the search starts at 0, where
    /// rowids usually begin: galloping from the smallest rowid would leap
    /// past every ordinary rowid at once.
    async fn next_readable(&self, failing: i64) -> Result<Option<(i64, Option<i64>)>, SalvageError> {
        if failing == i64::MIN {
            if let Some(found) = self.search_from(-1).await? {
                return Ok(Some(found));
            }
        }
        self.search_from(failing).await
    }

    /// `next_readable` from `failing`: exponential steps, then a binary search.
    async fn search_from(&self, failing: i64) -> Result<Option<(i64, Option<i64>)>, SalvageError> {
        let (mut bad, mut step) = (i128::from(failing), 1i128);
        let max = i128::from(i64::MAX);
        let (mut good, mut found) = loop {
            let candidate = (bad + step).min(max);
            match self.probe(candidate as i64).await? {
                Ok(found) => break (candidate, found),
                Err(_) if candidate == max => return Ok(None),
                Err(_) => {
                    bad = candidate;
                    step *= 2;
                }
            }
        };
        while good - bad > 1 {
            let middle = bad + (good - bad) / 2;
            match self.probe(middle as i64).await? {
                Ok(at) => (good, found) = (middle, at),
                Err(_) => bad = middle,
            }
        }
        Ok(Some((good as i64, found)))
    }

    /// The readable rowids, in stretches between damaged pages, and the losses between them.
    async fn readable(&self) -> Result<(Vec<Vec<i64>>, Vec<LostRange>), SalvageError> {
        let mut stretches: Vec<Vec<i64>> = Vec::new();
        let mut lost = Vec::new();
        let mut from: Option<i64> = None;
        loop {
            let condition = from.map(|f| format!("WHERE rowid >= {f}")).unwrap_or_default();
            let sql = format!("SELECT rowid FROM {} {condition} ORDER BY rowid", ident(self.table));
            let run = sqlite(self.copy, &sql, true).await?;
            let rowids: Vec<i64> = run.stdout.lines().filter_map(|l| l.trim().parse().ok()).collect();
            let last = rowids
                .last()
                .copied()
                .or(stretches.last().and_then(|s| s.last().copied()));
            stretches.push(rowids);
            if run.ok {
                break;
            }
            let failing = match (last, from) {
                (Some(last), _) => last,
                (None, Some(from)) => from.saturating_sub(1),
                (None, None) => i64::MIN,
            };
            match self.next_readable(failing).await? {
                Some((_, Some(next))) if from.is_none_or(|f| next > f) => {
                    lost.push(LostRange {
                        after_rowid: last,
                        before_rowid: Some(next),
                        reason: run.stderr,
                    });
                    from = Some(next);
                }
                _ => {
                    lost.push(LostRange {
                        after_rowid: last,
                        before_rowid: None,
                        reason: run.stderr,
                    });
                    break;
                }
            }
        }
        stretches.retain(|s| !s.is_empty());
        Ok((stretches, lost))
    }

    /// Copies a stretch of readable rowids: whole, else split in halves
    /// until the rows that cannot be read are single; returns rows copied.
    async fn copy_stretch(&self, rowids: &[i64], lost: &mut Vec<LostRange>) -> Result<u64, SalvageError> {
        let mut pending = vec![rowids];
        let mut copied = 0;
        while let Some(part) = pending.pop() {
            let (Some(first), Some(last)) = (part.first(), part.last()) else {
                continue;
            };
            // LIMIT stops before stepping past the stretch into a damaged page.
            let condition = format!("WHERE rowid >= {first} ORDER BY rowid LIMIT {}", part.len());
            match self.copy(&condition).await? {
                Ok(n) => copied += n,
                Err(reason) if part.len() == 1 => lost.push(LostRange {
                    after_rowid: first.checked_sub(1),
                    before_rowid: last.checked_add(1),
                    reason: format!("rowid {first} cannot be read: {reason}"),
                }),
                Err(_) => {
                    let (left, right) = part.split_at(part.len() / 2);
                    pending.push(right);
                    pending.push(left);
                }
            }
        }
        Ok(copied)
    }
}

/// Salvages the readable contents of `options.source` into a new SQLite
/// file at `options.target`.
pub async fn run_salvage(options: &SalvageOptions) -> Result<SalvageReport, SalvageError> {
    let started = Instant::now();
    let (source, target) = (&options.source, &options.target);
    let shown_target = target.display().to_string();
    let target_error = |message: String| SalvageError::Target {
        path: shown_target.clone(),
        message,
    };
    if !source.is_file() {
        return Err(SalvageError::NoSource {
            path: source.display().to_string(),
        });
    }
    if target.exists() {
        let same = std::fs::canonicalize(source).ok() == std::fs::canonicalize(target).ok();
        if same {
            return Err(SalvageError::SameFile { path: shown_target });
        }
        if !options.overwrite {
            return Err(SalvageError::TargetExists { path: shown_target });
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if !std::env::split_paths(&path).any(|dir| dir.join(TOOL).is_file()) {
        return Err(SalvageError::ToolMissing);
    }

    // Work on a copy (with its journal or log): opening a damaged file can
    // roll a journal back into it, and the damaged file must stay as it is.
    let copy_path = with_suffix(target, ".lifeboat-salvage-source");
    let mut temporaries = vec![Temporary(copy_path.clone())];
    std::fs::copy(source, &copy_path).map_err(|e| target_error(format!("copying {}: {e}", source.display())))?;
    for suffix in ["-wal", "-journal"] {
        let beside = with_suffix(source, suffix);
        if beside.is_file() {
            let to = with_suffix(&copy_path, suffix);
            std::fs::copy(&beside, &to).map_err(|e| target_error(format!("copying {}: {e}", beside.display())))?;
            temporaries.push(Temporary(to));
        }
    }
    temporaries.push(Temporary(with_suffix(&copy_path, "-shm")));
    let new_path = with_suffix(target, ".lifeboat-salvage");
    let _ = std::fs::remove_file(&new_path);
    temporaries.push(Temporary(new_path.clone()));
    temporaries.push(Temporary(with_suffix(&new_path, "-journal")));

    let schema = sqlite(
        &copy_path,
        "SELECT json_group_array(json_object('type', type, 'name', name, 'sql', sql)) \
           FROM (SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid)",
        true,
    )
    .await?;
    let unreadable = |message: String| SalvageError::SchemaUnreadable {
        path: source.display().to_string(),
        message,
    };
    if !schema.ok {
        return Err(unreadable(schema.stderr));
    }
    let objects: Vec<SchemaRow> = serde_json::from_str(schema.stdout.trim()).map_err(|e| unreadable(e.to_string()))?;
    let internal = |name: &str| name.starts_with("sqlite_");

    let mut tables = Vec::new();
    let mut objects_lost = Vec::new();
    for object in objects.iter().filter(|o| o.kind == "table" && !internal(&o.name)) {
        let created = sqlite(&new_path, &object.sql, false).await?;
        if !created.ok {
            tables.push(TableSalvage {
                table: object.name.clone(),
                rows_recovered: 0,
                complete: false,
                lost: Vec::new(),
                error: Some(format!("could not create the table: {}", created.stderr)),
            });
            continue;
        }
        tables.push(salvage_table(&copy_path, &new_path, object).await?);
    }
    if objects.iter().any(|o| o.name == "sqlite_sequence") {
        let sql = format!(
            "ATTACH {} AS broken; DELETE FROM main.sqlite_sequence; \
             INSERT INTO main.sqlite_sequence SELECT * FROM broken.sqlite_sequence;",
            literal(&copy_path.to_string_lossy())
        );
        let run = sqlite(&new_path, &sql, false).await?;
        if !run.ok {
            objects_lost.push(format!("sqlite_sequence (AUTOINCREMENT counters): {}", run.stderr));
        }
    }
    // Indexes, triggers and views after the data: triggers must not fire on the copy.
    for object in objects.iter().filter(|o| o.kind != "table" && !internal(&o.name)) {
        let run = sqlite(&new_path, &object.sql, false).await?;
        if !run.ok {
            objects_lost.push(format!("{} {}: {}", object.kind, object.name, run.stderr));
        }
    }

    // An empty database still gets a file.
    let run = sqlite(&new_path, "PRAGMA user_version", false).await?;
    if !run.ok {
        return Err(target_error(run.stderr));
    }
    std::fs::rename(&new_path, target).map_err(|e| target_error(format!("renaming into place: {e}")))?;
    drop(temporaries);
    let rows_recovered = tables.iter().map(|t| t.rows_recovered).sum();
    let complete = objects_lost.is_empty() && tables.iter().all(|t| t.complete);
    Ok(SalvageReport {
        source: source.display().to_string(),
        target: shown_target,
        tables,
        objects_lost,
        rows_recovered,
        complete,
        duration_seconds: started.elapsed().as_secs_f64(),
    })
}

async fn salvage_table(copy: &Path, target: &Path, object: &SchemaRow) -> Result<TableSalvage, SalvageError> {
    let table = object.name.as_str();
    let columns = sqlite(
        copy,
        &format!("SELECT name FROM pragma_table_info({})", literal(table)),
        true,
    )
    .await?;
    let columns: Vec<String> = columns.stdout.lines().map(ident).collect();
    let without_rowid = object.sql.to_uppercase().contains("WITHOUT ROWID");
    let (into, from) = if without_rowid {
        (columns.join(", "), columns.join(", "))
    } else {
        (
            format!("rowid, {}", columns.join(", ")),
            format!("rowid, {}", columns.join(", ")),
        )
    };
    let copier = TableCopy {
        copy,
        target,
        table,
        insert: format!(
            "INSERT INTO main.{} ({into}) SELECT {from} FROM broken.{}",
            ident(table),
            ident(table)
        ),
    };
    let mut salvage = TableSalvage {
        table: table.to_owned(),
        rows_recovered: 0,
        complete: false,
        lost: Vec::new(),
        error: None,
    };
    let whole = copier.copy("").await?;
    match whole {
        Ok(rows) => {
            salvage.rows_recovered = rows;
            salvage.complete = true;
            return Ok(salvage);
        }
        Err(reason) if without_rowid => {
            salvage.error = Some(format!(
                "a WITHOUT ROWID table cannot be read in part, and reading it whole failed: {reason}"
            ));
            return Ok(salvage);
        }
        Err(reason) => tracing::info!(table, %reason, "the whole table cannot be read; salvaging by rowid"),
    }
    let (stretches, mut lost) = copier.readable().await?;
    for stretch in &stretches {
        salvage.rows_recovered += copier.copy_stretch(stretch, &mut lost).await?;
    }
    salvage.lost = lost;
    Ok(salvage)
}
