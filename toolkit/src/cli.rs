//! The command line. Only this module knows clap.

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
    /// Manage the store's keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand, Debug)]
pub enum BackupCommand {
    /// Back up an S3 prefix (s3://bucket/prefix) or a directory.
    Files {
        source: String,
        #[arg(long = "type", default_value = "full", value_parser = ["full", "incremental", "differential"])]
        backup_type: String,
        /// Entries read at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Days to keep this backup (sets retentionUntil).
        #[arg(long)]
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
        id: String,
        #[arg(long)]
        source: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum RestoreCommand {
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
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Re-wrap the store's keys with the KMS key given by --kms-key; no data is rewritten.
    Rewrap,
}
