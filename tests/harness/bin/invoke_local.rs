//! `invoke-local FUNCTION_BINARY EVENT_JSON_FILE`
//!
//! Runs a Lambda function binary once under a local Lambda Runtime API with
//! the event in EVENT_JSON_FILE (`-` for stdin), like `cargo lambda invoke`.
//! The function inherits this process's environment (AWS_ENDPOINT_URL and
//! credentials included: nothing is forced). Its own output goes to stderr;
//! the response is printed to stdout as pretty JSON. On a function error the
//! error JSON is printed to stdout and the exit status is 1; when the function
//! cannot be run or dies without answering, the exit status is 2.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use lifeboat_e2e::LocalInvoke;

const USAGE: &str = "usage: invoke-local FUNCTION_BINARY EVENT_JSON_FILE (- for stdin)";

fn read_event(path: &str) -> anyhow::Result<serde_json::Value> {
    let text = if path == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the event from stdin")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?
    };
    serde_json::from_str(&text).with_context(|| format!("{path} is not JSON"))
}

async fn run(binary: PathBuf, event_path: &str) -> anyhow::Result<ExitCode> {
    let event = read_event(event_path)?;
    let outcome = LocalInvoke::new(&binary).output_to_stderr(true).run(&event).await?;
    let (value, code) = match outcome {
        Ok(response) => (response, ExitCode::SUCCESS),
        Err(error) => (error, ExitCode::from(1)),
    };
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(code)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let [binary, event] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match run(PathBuf::from(binary), event).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("invoke-local: {e:#}");
            ExitCode::from(2)
        }
    }
}
