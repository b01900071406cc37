//! Why a database could not be reached or queried: its client program
//! missing, failing to start or failing (with what it said and a hint), or
//! a Redis server's failure.

/// A database's client program could not be run, or failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{tool} was not found on PATH: install {tools}, or add their directory to PATH")]
    ToolMissing { tool: String, tools: &'static str },
    #[error("could not run {tool}: {message}")]
    ToolStart { tool: String, message: String },
    #[error("{tool} failed for {target} ({status}): {stderr}\n{hint}")]
    ToolFailed {
        tool: String,
        target: String,
        status: String,
        stderr: String,
        hint: String,
    },
    #[error("Redis server {target}: {message}")]
    Redis { target: String, message: String },
}
