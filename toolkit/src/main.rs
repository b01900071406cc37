//! `lifeboat`: the operator's toolkit. Parses the command line (`cli`),
//! runs one command (`commands`, one library call each, with what they share
//! in `env`), renders the result (`render`); an error is printed as
//! `lifeboat: <message>` and its causes, and mapped to a documented exit
//! code. See README.md for the commands and ARCHITECTURE.md for where the
//! work happens.

mod cli;
mod commands;
mod env;
mod render;

use std::process::ExitCode;

use clap::Parser;
use lifeboat::backup::BackupError;
use lifeboat::dump::DumpError;
use lifeboat::keys::KeyError;
use lifeboat::repo::RepoError;
use lifeboat::restore::RestoreError;

use crate::cli::Cli;

/// Exit codes (documented in README.md, "Exit codes"). 0 is success; clap
/// exits 2 on a usage error.
pub mod exit {
    use std::process::ExitCode;

    pub const FAILURE: u8 = 1;
    pub const PARTIAL: u8 = 3;
    pub const NOT_INITIALISED: u8 = 4;
    pub const KEY_PROBLEM: u8 = 5;
    pub const DAMAGE: u8 = 6;
    pub const TAMPERED: u8 = 7;
    /// `lifeboat status`: a protected database is past its RPO or misses a DR copy.
    pub const BREACHED: u8 = 8;

    /// Success if `ok`, else `code`.
    pub fn unless(ok: bool, code: u8) -> ExitCode {
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(code)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = if cli.global.verbose {
        "lifeboat=debug,info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("LIFEBOAT_LOG").unwrap_or_else(|_| filter.into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("lifeboat: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("lifeboat: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(exit_code(&error))
        }
    }
}

/// Maps an error to the documented exit code: an incomplete restore is
/// partial (3), a store not initialised 4, a key problem 5, the rest 1.
fn exit_code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(RestoreError::Incomplete { .. }) = cause.downcast_ref::<RestoreError>() {
            return exit::PARTIAL;
        }
        match repo_error(cause) {
            Some(RepoError::NotInitialised { .. }) => return exit::NOT_INITIALISED,
            Some(RepoError::Key(_)) => return exit::KEY_PROBLEM,
            _ => {}
        }
        if cause.downcast_ref::<KeyError>().is_some() {
            return exit::KEY_PROBLEM;
        }
    }
    exit::FAILURE
}

/// The store's error behind a backup's, a restore's or a dump's.
fn repo_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a RepoError> {
    cause
        .downcast_ref::<RepoError>()
        .or_else(|| match cause.downcast_ref::<BackupError>() {
            Some(BackupError::Repo(r)) => Some(r),
            _ => None,
        })
        .or_else(|| match cause.downcast_ref::<RestoreError>() {
            Some(RestoreError::Repo(r)) => Some(r),
            _ => None,
        })
        .or_else(|| match cause.downcast_ref::<DumpError>() {
            Some(DumpError::Repo(r) | DumpError::Backup(BackupError::Repo(r))) => Some(r),
            _ => None,
        })
}
