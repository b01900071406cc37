//! The command line: every clap type of `lifeboat` (subcommands, their
//! arguments and the global options), nothing else. The only module that
//! knows clap; `commands` turns these values into library calls.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "lifeboat",
    version,
    about = "Back up, verify and restore data on AWS",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug)]
pub struct Global {
    /// The backup store: s3://BUCKET[/PREFIX] (or a local directory).
    #[arg(long, env = "LIFEBOAT_STORE", global = true)]
    pub store: Option<String>,
    /// The catalog's DynamoDB table.
    #[arg(long, env = "LIFEBOAT_TABLE", default_value = "lifeboat-catalog", global = true)]
    pub table: String,
    /// KMS key (id, alias or ARN) that wraps the store's keys.
    #[arg(long, env = "LIFEBOAT_KMS_KEY", global = true)]
    pub kms_key: Option<String>,
    /// AWS region (default: AWS_REGION or the profile's region).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Output format.
    #[arg(long, env = "LIFEBOAT_OUTPUT", value_enum, default_value_t = Output::Text, global = true)]
    pub output: Output,
    /// Log what happens, to standard error.
    #[arg(long, short, global = true)]
    pub verbose: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the store's key object (and, with --create-table, the catalog table).
    Init {
        /// Also create the DynamoDB catalog table if it does not exist.
        #[arg(long)]
        create_table: bool,
    },
    /// Take a backup now.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// List and inspect backups.
    #[command(subcommand)]
    Backups(BackupsCommand),
    /// Restore from a backup.
    #[command(subcommand)]
    Restore(RestoreCommand),
    /// Hold backups so that retention never deletes them (legal hold).
    #[command(subcommand)]
    Hold(HoldCommand),
    /// Apply a retention policy: keep what it keeps, delete the other backups' records and manifests.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Check that a backup is complete and intact in the store; exit 6 if it is not.
    Verify {
        /// Backup id, or `latest` (with --source).
        #[arg(required_unless_present = "sample")]
        id: Option<String>,
        /// Also download every pack and read every entry back, checking every checksum.
        #[arg(long)]
        deep: bool,
        /// Check the store instead of one backup: read PERCENT of its packs whole,
        /// continuing where the last sample stopped, so repeated runs cover all of it.
        #[arg(long, value_name = "PERCENT", conflicts_with_all = ["id", "deep", "source"], value_parser = percent)]
        sample: Option<f64>,
        /// The source whose latest backup `latest` means.
        #[arg(long)]
        source: Option<String>,
        /// Packs (and, with --deep, entries) read at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Remove chunk data no completed backup references (two-phase, safe while backups run).
    Gc {
        /// Print what would be marked and swept; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Sweep candidate lists only once they are this old (e.g. 1h, 30m, 0s).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        grace: Duration,
        /// Treat unfinished backups older than this as dead (they are marked failed).
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        assume_dead_after: Duration,
        /// Evaluate as of this time (RFC 3339) instead of now.
        #[arg(long)]
        at: Option<String>,
        /// Refuse a sweep that would delete more than this share of the store's packs or bytes.
        #[arg(long, value_name = "PERCENT", default_value = "50", value_parser = percent)]
        max_delete_share: f64,
        /// Sweep even when that is more than --max-delete-share of the store.
        #[arg(long)]
        force: bool,
    },
    /// The store's index of chunks: rebuild it from the packs.
    #[command(subcommand)]
    Index(IndexCommand),
    /// Manage the store's keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The tamper-evident audit trail of what was done to the backups.
    #[command(subcommand)]
    AuditLog(AuditLogCommand),
    /// Backup plans (README, "Backup plans"): check a plan file, or print its schedules' template.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Fail a DR plan's databases over to the DR region: promote or restore, validate, switch DNS
    /// (README, "Disaster recovery"). Resumes an interrupted failover; asks before acting.
    Failover {
        #[command(flatten)]
        args: DrArgs,
        /// Act without asking (needed when standard input is not a terminal).
        #[arg(long)]
        yes: bool,
        /// Abandon the plan's unfinished job (kept as failed) instead of resuming it; start from a fresh preflight.
        #[arg(long)]
        restart: bool,
    },
    /// Bring a DR plan's databases back to the primary region once it is healthy, and DNS with them.
    Failback {
        #[command(flatten)]
        args: DrArgs,
        /// Act without asking (needed when standard input is not a terminal).
        #[arg(long)]
        yes: bool,
        /// Abandon the plan's unfinished job (kept as failed) instead of resuming it; start from a fresh preflight.
        #[arg(long)]
        restart: bool,
    },
    /// Rehearse a failover in the DR region under drill names, validate, measure, delete it all; DNS untouched.
    Drill {
        #[command(flatten)]
        args: DrArgs,
    },
    /// Recovery jobs: restores, failovers, failbacks and drills, with their steps.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Every database the plans protect: last snapshot, DR copies, age against the RPO, next run;
    /// exit 8 if any is breached.
    Status(StatusArgs),
    /// RDS snapshots of the plans: verify (and restore-test), retention, holds.
    #[command(subcommand)]
    Snapshots(SnapshotsCommand),
    /// Database integrity: audit, salvage, consistency (no AWS needed).
    #[command(flatten)]
    Integrity(IntegrityCommand),
}

/// What `failover`, `failback` and `drill` share.
#[derive(Args, Debug)]
pub struct DrArgs {
    /// The DR plan (TOML), e.g. examples/dr.toml.
    #[arg(long)]
    pub plan: PathBuf,
    /// Print what would be done and the RPO it would cost; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where to write the report (JOBID.json and JOBID.md).
    #[arg(long, default_value = ".")]
    pub report_dir: PathBuf,
    /// How often to poll RDS while waiting for an instance.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// How long to wait for one instance before the step fails (a rerun resumes the wait).
    #[arg(long, default_value = "2h", value_parser = humantime::parse_duration)]
    pub wait_timeout: Duration,
}

#[derive(Subcommand, Debug)]
pub enum PlanCommand {
    /// Check a plan file and summarise its plans; exit 1 if anything is wrong (every problem is listed). Needs no AWS.
    Check {
        /// The plan file (TOML), e.g. examples/plans.toml.
        file: PathBuf,
        /// Compute the next runs after this time (RFC 3339) instead of now.
        #[arg(long)]
        at: Option<String>,
    },
    /// Print the CloudFormation template (JSON) of the plans' schedules: one EventBridge Scheduler
    /// schedule per plan and function, in the plan's time zone (scripts/deploy --plans deploys it). Needs no AWS.
    Schedules {
        /// The plan file (TOML), e.g. examples/plans.toml.
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum BackupCommand {
    /// Back up an S3 prefix (s3://bucket/prefix) or a directory.
    Files {
        /// What to back up: s3://BUCKET/PREFIX or a directory.
        source: String,
        /// full (read everything), incremental (what changed since the newest backup) or differential (since the newest full).
        #[arg(long = "type", default_value = "full", value_parser = ["full", "incremental", "differential"])]
        backup_type: String,
        /// Entries read at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Days to keep this backup (sets retentionUntil; at most 36500).
        #[arg(long, value_parser = days)]
        retention_days: Option<u32>,
    },
    /// Dump a database (postgres://USER[:PASSWORD]@HOST[:PORT]/DB, mysql://…, sqlite:///PATH, duckdb:///PATH,
    /// redis://[:PASSWORD@]HOST[:PORT][/DB] for the server's whole RDB snapshot) into the store.
    Dump {
        /// The database's URL (the password may also come from PGPASSWORD or MYSQL_PWD), or the ARN of a
        /// Secrets Manager secret holding the URL or RDS-style JSON {engine, host, port, username, password, dbname}.
        url: String,
        /// Days to keep this backup (sets retentionUntil; at most 36500).
        #[arg(long, value_parser = days)]
        retention_days: Option<u32>,
    },
}

#[derive(Subcommand, Debug)]
pub enum BackupsCommand {
    /// Backups, newest first.
    List {
        /// Only backups of this source.
        #[arg(long)]
        source: Option<String>,
    },
    /// One backup's record; ID may be `latest` (with --source).
    Show {
        /// Backup id, or `latest` (with --source).
        id: String,
        /// The source whose latest backup `latest` means.
        #[arg(long)]
        source: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum RestoreCommand {
    /// Restore an RDS DB instance or Aurora cluster to a point in time, as a new database.
    Db(RestoreDbArgs),
    /// Restore an RDS DB snapshot or DB cluster snapshot into a new database.
    Snapshot(RestoreSnapshotArgs),
    /// Restore a file backup to a directory or to s3://bucket/prefix.
    Files {
        /// Backup id, or `latest` (with --source).
        id: String,
        /// Where to restore: a directory or s3://bucket/prefix.
        #[arg(long)]
        to: String,
        /// Only entries whose path matches this glob (e.g. 'reports/**/*.csv').
        #[arg(long)]
        include: Option<String>,
        /// The source whose latest backup `latest` means.
        #[arg(long)]
        source: Option<String>,
        /// Packs (or objects) downloaded at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Replace files (or objects) that exist in the target; without it, each one is reported
        /// and left as it is, and the restore exits 3.
        #[arg(long)]
        overwrite: bool,
    },
    /// Restore a database dump into a database (created if it does not exist).
    Dump {
        /// Backup id, or `latest` (with --source).
        id: String,
        /// The target database's URL, of the dump's engine; or a file path (no `://`) to write the
        /// verified dump itself to, the way to restore Redis: `--to /var/lib/redis/dump.rdb` of a
        /// stopped server.
        #[arg(long)]
        to: String,
        /// Restore into a database that already has tables, replacing the dumped objects (SQLite, a file path: the file).
        #[arg(long)]
        overwrite: bool,
        /// The source (the dumped database's URL) whose latest backup `latest` means.
        #[arg(long)]
        source: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum IndexCommand {
    /// Index every pack no index lists, from the pack's own header; then check every completed
    /// backup of the store against the index; exit 6 if a backup still misses chunks.
    Rebuild {
        /// Print what would be indexed and what would still be missing; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Packs read at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Re-wrap the store's keys with the KMS key given by --kms-key; no data is rewritten.
    Rewrap,
}

#[derive(Subcommand, Debug)]
pub enum AuditLogCommand {
    /// Check every record's hash and link and the trail's head; exit 7 if it was tampered with.
    Verify,
    /// The trail's records, oldest first.
    Show {
        /// Only records appended at or after this RFC 3339 time (e.g. 2026-11-23T10:00:00Z).
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum HoldCommand {
    /// Hold a backup: retention will not delete it until the hold is removed.
    Add {
        /// Backup id.
        id: String,
        /// Why (a case number, a ticket): kept with the hold.
        #[arg(long)]
        reason: String,
    },
    /// Remove a backup's hold.
    Remove {
        /// Backup id.
        id: String,
    },
    /// Every hold, oldest first.
    List,
}

#[derive(Subcommand, Debug)]
pub enum RetentionCommand {
    /// Plan a retention policy and apply it (with --dry-run, only print the plan).
    Apply(RetentionArgs),
}

/// A retention policy and where to apply it. A backup is kept if any rule keeps it;
/// held, locked, unfinished, newest-verified backups and parents of kept ones always stay.
#[derive(Args, Debug)]
pub struct RetentionArgs {
    /// Only backups of this source (default: every source, each on its own).
    #[arg(long)]
    pub source: Option<String>,
    /// Keep the N newest completed backups.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest backup of each of the last D days that have backups.
    #[arg(long, value_name = "D")]
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last W ISO weeks that have backups.
    #[arg(long, value_name = "W")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last M months that have backups.
    #[arg(long, value_name = "M")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest backup of each of the last Y years that have backups.
    #[arg(long, value_name = "Y")]
    pub keep_yearly: Option<u32>,
    /// Keep every backup made in the last N days (failed ones too; default grace for failed: 7 days).
    #[arg(long, value_name = "N", value_parser = days)]
    pub keep_days: Option<u32>,
    /// Where days, weeks, months and years begin: an IANA time zone.
    #[arg(long, default_value = "UTC")]
    pub timezone: String,
    /// Plan as of this time (RFC 3339) instead of now.
    #[arg(long)]
    pub at: Option<String>,
    /// Print the plan (what would be deleted, why each kept backup stays); change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// How `--wait` waits, and the checks run once the restored database is available.
#[derive(Args, Debug)]
pub struct WaitArgs {
    /// Wait until the restored database is available, showing its status as it changes.
    #[arg(long)]
    pub wait: bool,
    /// How often to look while waiting.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// How long to wait before giving up (a rerun resumes the wait).
    #[arg(long, default_value = "2h", value_parser = humantime::parse_duration)]
    pub wait_timeout: Duration,
    /// Run this checks file's SQL assertions against the restored database (implies --wait).
    #[arg(long, value_name = "FILE")]
    pub validate: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RestoreDbArgs {
    /// The DB instance or Aurora cluster (identifier or ARN) to restore.
    pub id: String,
    /// The time to restore to: RFC 3339 (e.g. 2026-11-23T10:00:00Z) or `latest`.
    #[arg(long, value_name = "RFC3339|latest")]
    pub to_time: String,
    /// The new database's name (default: ID-pitr-YYYYMMDDHHMM, the restore time in UTC).
    #[arg(long = "as", value_name = "NAME")]
    pub name: Option<String>,
    /// For an Aurora cluster: the class of the restored cluster's instance (default: the source's).
    #[arg(long)]
    pub instance_class: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Args, Debug)]
pub struct RestoreSnapshotArgs {
    /// The DB snapshot or DB cluster snapshot: identifier or ARN (an ARN names its region).
    pub snapshot: String,
    /// The new database's name (default: SNAPSHOT-restored-YYYYMMDDHHMM, now in UTC).
    #[arg(long = "as", value_name = "NAME")]
    pub name: Option<String>,
    /// For a cluster snapshot: the class of the restored cluster's instance (default: the source cluster's).
    #[arg(long)]
    pub instance_class: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// Recovery jobs (restores, failovers, failbacks, drills), newest first.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One recovery job with its steps.
    Show {
        /// The job id (job-YYYYMMDDTHHMMSSZ-XXXXXXXX).
        id: String,
    },
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The backup plan file (TOML) naming what is protected, e.g. examples/plans.toml.
    #[arg(long, env = "LIFEBOAT_PLANS", value_name = "FILE")]
    pub plans: PathBuf,
    /// Evaluate as of this time (RFC 3339) instead of now.
    #[arg(long, hide = true)]
    pub at: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum SnapshotsCommand {
    /// Verify each resource's newest completed snapshot: available, encrypted, copied to every
    /// copy region with its key, within the RPO; optionally restore-test it. Exit 6 if any failed.
    Verify(SnapshotVerifyArgs),
    /// Apply each plan's retention to its snapshots, in every region they were copied to
    /// (with --dry-run, only print what would go and why).
    Retention(SnapshotRetentionArgs),
    /// Hold a snapshot (by its identifier): retention will not delete it until `unhold`.
    Hold {
        /// The snapshot's identifier (lifeboat-PLAN-RESOURCE-YYYYMMDD-HHMM).
        id: String,
        /// Why (a case number, a ticket): kept with the hold.
        #[arg(long)]
        reason: String,
    },
    /// Lift a snapshot's hold.
    Unhold {
        /// The snapshot's identifier.
        id: String,
    },
}

/// The plan file and which of its plans.
#[derive(Args, Debug)]
pub struct SnapshotPlanArgs {
    /// The plan file (README, "Backup plans").
    #[arg(long, value_name = "FILE")]
    pub plans: PathBuf,
    /// Only this plan (repeatable; default: every plan in the file).
    #[arg(long = "plan", value_name = "NAME")]
    pub names: Vec<String>,
    /// Evaluate as of this time (RFC 3339) instead of now.
    #[arg(long)]
    pub at: Option<String>,
}

#[derive(Args, Debug)]
pub struct SnapshotVerifyArgs {
    #[command(flatten)]
    pub plans: SnapshotPlanArgs,
    /// Also restore each newest snapshot to a temporary instance (lifeboat-rt-…) and run this
    /// checks file's SQL assertions against it; the instance is deleted afterwards.
    #[arg(long, value_name = "CHECKS")]
    pub restore_test: Option<PathBuf>,
    /// The temporary instance's class.
    #[arg(long, default_value = "db.t3.micro")]
    pub instance_class: String,
    /// Instead, run the scheduled restore tests of the plans that ask for them
    /// ([plan.restore_test]) to completion, as the verify function does every 15 minutes: start
    /// each resource's test that is due (its last older than the plan's `every`), wait for it,
    /// run the plan's checks, record the verification with its RTO sample, delete the instance;
    /// resume tests in progress; delete orphaned lifeboat-rt-… instances.
    #[arg(long, conflicts_with = "restore_test")]
    pub restore_tests: bool,
}

#[derive(Args, Debug)]
pub struct SnapshotRetentionArgs {
    #[command(flatten)]
    pub plans: SnapshotPlanArgs,
    /// Print what would be deleted (and why each kept snapshot stays); delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Subcommand, Debug)]
pub enum IntegrityCommand {
    /// Audit a live database's integrity (PostgreSQL, MySQL/MariaDB, SQLite, DuckDB); exit 6 on a critical finding.
    Audit {
        /// The database's URL (postgres://…, mysql://…, sqlite:///PATH, duckdb:///PATH), or the path of a SQLite or
        /// DuckDB file.
        target: String,
        /// The report's format (default: as --output says); markdown for a ticket or a runbook.
        #[arg(long, value_enum)]
        format: Option<ReportFormat>,
    },
    /// Recover what is readable from a damaged database file into a new one.
    #[command(subcommand)]
    Salvage(SalvageCommand),
    /// Check cross-database rules (README, "Database integrity"); exit 6 on any mismatch.
    Consistency {
        /// The rules file (TOML).
        rules: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum SalvageCommand {
    /// Copy every readable row of a damaged SQLite file into a new file and name what was lost; exit 3 if anything
    /// was. The damaged file is only read.
    Sqlite {
        /// The damaged SQLite file.
        broken: PathBuf,
        /// The new file to write.
        #[arg(long)]
        to: PathBuf,
        /// Replace --to if it exists.
        #[arg(long)]
        overwrite: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Markdown,
}

/// A share in percent: more than 0, at most 100.
/// A number of days from 1 to 36500 (100 years; `lifeboat::times::MAX_DAYS`).
fn days(text: &str) -> Result<u32, String> {
    const MAX: u32 = 36_500;
    let digits = text.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        let cut: String = text.chars().take(40).collect();
        return Err(format!("{cut:?} is not a whole number of days"));
    }
    match digits.parse::<u32>() {
        Ok(days) if (1..=MAX).contains(&days) => Ok(days),
        Ok(0) => Err("0 days: give at least 1".to_owned()),
        _ => Err(format!("{digits:.40} days is more than the maximum {MAX} (100 years)")),
    }
}

fn percent(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{text:?} is not a number of percent"))?;
    if value > 0.0 && value <= 100.0 {
        Ok(value)
    } else {
        Err(format!("{text}: give a share above 0 and at most 100 (percent)"))
    }
}
