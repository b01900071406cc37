//! One module per command group: each turns parsed arguments into library
//! options, makes one library call and hands the result to `render`.

mod audit_log;
mod backup;
mod dr;
mod integrity;
mod keys;
mod plan;
mod recovery;
mod restore;
mod retention;
mod snapshots;
mod verify;

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::env::Env;
use crate::render::Renderer;

/// Runs one command; the exit code says how it went (see `crate::exit`).
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let Cli { global, command } = cli;
    // Commands that need no AWS run before the clients are set up.
    let command = match command {
        Command::Plan(command) => return plan::run(&Renderer::new(global.output), command),
        Command::Integrity(command) => return integrity::run(&Renderer::new(global.output), command).await,
        command => command,
    };
    let env = Env::new(global).await?;
    match command {
        Command::Init { create_table } => keys::init(&env, create_table).await,
        Command::Keys(command) => keys::run(&env, command).await,
        Command::Backup(command) => backup::run(&env, command).await,
        Command::Backups(command) => backup::backups(&env, command).await,
        Command::Restore(command) => restore::run(&env, command).await,
        Command::Verify {
            id,
            deep,
            sample,
            source,
            concurrency,
        } => match sample {
            Some(percent) => verify::sample(&env, percent, concurrency).await,
            None => {
                verify::backup(
                    &env,
                    id.as_deref().unwrap_or("latest"),
                    deep,
                    source.as_deref(),
                    concurrency,
                )
                .await
            }
        },
        Command::Gc {
            dry_run,
            grace,
            assume_dead_after,
            at,
            max_delete_share,
            force,
        } => {
            let options = retention::GcArgs {
                dry_run,
                grace,
                assume_dead_after,
                max_delete_share,
                force,
            };
            retention::gc(&env, &options, at.as_deref()).await
        }
        Command::Index(command) => retention::index(&env, command).await,
        Command::Hold(command) => retention::hold(&env, command).await,
        Command::Retention(command) => retention::run(&env, command).await,
        Command::AuditLog(command) => audit_log::run(&env, command).await,
        Command::Failover { args, yes, restart } => {
            dr::switch(&env, &args, yes, restart, lifeboat::jobs::JobKind::Failover).await
        }
        Command::Failback { args, yes, restart } => {
            dr::switch(&env, &args, yes, restart, lifeboat::jobs::JobKind::Failback).await
        }
        Command::Drill { args } => dr::drill(&env, &args).await,
        Command::Jobs(command) => recovery::jobs(&env, command).await,
        Command::Status(args) => recovery::status(&env, &args).await,
        Command::Snapshots(command) => snapshots::run(&env, command).await,
        Command::Plan(command) => plan::run(&env.out, command),
        Command::Integrity(command) => integrity::run(&env.out, command).await,
    }
}
