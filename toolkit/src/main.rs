//! `lifeboat`: the operator's toolkit. Parses the command line, makes one
//! library call per subcommand, renders the result. See README.md for the
//! commands and `ARCHITECTURE.md` for where the work happens.

mod cli;
mod commands;
mod dr;
mod integrity;
mod recovery;
mod render;
mod schedules;
mod snapshots;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

/// Exit codes (documented in README.md, "Exit codes").
pub mod exit {
    pub const FAILURE: u8 = 1;
    pub const PARTIAL: u8 = 3;
    pub const NOT_INITIALISED: u8 = 4;
    pub const KEY_PROBLEM: u8 = 5;
    pub const DAMAGE: u8 = 6;
    pub const TAMPERED: u8 = 7;
    /// `lifeboat status`: a protected database is past its RPO or misses a DR copy.
    pub const BREACHED: u8 = 8;
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
            ExitCode::from(commands::exit_code(&error))
        }
    }
}
