//! Snapshot tests of the `lifeboat` command line: the `--help` of every
//! subcommand (the tree walked from `Cli::command()`, each help taken from
//! the real binary) and the main error texts that need no AWS.
//!
//! The snapshots live in `toolkit/tests/snapshots/`. A changed output fails
//! the test (`INSTA_UPDATE=no` is the default outside a terminal and in CI;
//! run with `INSTA_UPDATE=no` to be sure). To accept a deliberate change:
//!
//! ```text
//! INSTA_UPDATE=always cargo test -p lifeboat-toolkit --test cli
//! git diff toolkit/tests/snapshots/    # review every changed line
//! ```
//!
//! and commit the updated `.snap` files with the change that caused them.

#[allow(dead_code)]
#[path = "../src/cli.rs"]
mod cli;

use std::path::Path;
use std::process::{Command, Output};

use clap::CommandFactory;

/// The environment variables the binary reads; cleared so a developer's
/// settings show in no snapshot.
const LIFEBOAT_VARS: [&str; 7] = [
    "LIFEBOAT_STORE",
    "LIFEBOAT_TABLE",
    "LIFEBOAT_KMS_KEY",
    "LIFEBOAT_OUTPUT",
    "LIFEBOAT_PLANS",
    "LIFEBOAT_LOG",
    "AWS_REGION",
];

/// The real binary, with no Lifeboat or AWS settings from the environment
/// and no way to reach AWS (no profile, no instance metadata).
fn lifeboat(args: &[&str]) -> Output {
    let home = std::env::temp_dir().join("lifeboat-cli-tests-home");
    std::fs::create_dir_all(&home).expect("test home");
    let mut command = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    for var in LIFEBOAT_VARS {
        command.env_remove(var);
    }
    command
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_CONFIG_FILE")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .env("HOME", &home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("run lifeboat")
}

/// What a run printed and how it exited, as one text to snapshot.
fn transcript(args: &[&str]) -> String {
    let output = lifeboat(args);
    format!(
        "$ lifeboat {}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        output.status.code().map_or("signal".to_owned(), |c| c.to_string()),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every subcommand's path from the root, the root first.
fn command_paths() -> Vec<Vec<String>> {
    fn walk(command: &clap::Command, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(path.clone());
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            path.push(sub.get_name().to_owned());
            walk(sub, path, out);
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(&cli::Cli::command(), &mut Vec::new(), &mut out);
    out
}

#[test]
fn every_subcommand_and_argument_has_a_one_line_help() {
    fn check(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        if command.get_about().is_none() && !path.is_empty() {
            missing.push(format!("subcommand `lifeboat{path}`"));
        }
        for arg in command.get_arguments() {
            let builtin = matches!(arg.get_id().as_str(), "help" | "version");
            if !builtin && arg.get_help().is_none() {
                missing.push(format!("argument {} of `lifeboat{path}`", arg.get_id()));
            }
        }
        for sub in command.get_subcommands() {
            check(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut missing = Vec::new();
    check(&cli::Cli::command(), "", &mut missing);
    assert!(missing.is_empty(), "no help for: {missing:#?}");
}

#[test]
fn the_command_line_is_consistent() {
    cli::Cli::command().debug_assert();
}

#[test]
fn help_of_every_subcommand() {
    let paths = command_paths();
    assert!(paths.len() > 40, "{paths:?}");
    for path in paths {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let output = lifeboat(&args);
        assert!(output.status.success(), "{}", transcript(&args));
        let name = if path.is_empty() {
            "help".to_owned()
        } else {
            format!("help-{}", path.join("-"))
        };
        insta::assert_snapshot!(name, String::from_utf8_lossy(&output.stdout));
    }
}

#[test]
fn help_subcommand_is_the_long_help() {
    assert_eq!(lifeboat(&["help"]).stdout, lifeboat(&["--help"]).stdout);
    assert_eq!(
        lifeboat(&["help", "snapshots", "verify"]).stdout,
        lifeboat(&["snapshots", "verify", "--help"]).stdout
    );
}

/// A file under the test's own scratch directory.
fn scratch(name: &str, text: &str) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-tests");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("scratch file");
    path.display().to_string()
}

/// The errors' texts and exit codes, with the scratch directory's path made stable.
fn error_transcript(args: &[&str]) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-tests");
    transcript(args).replace(&dir.display().to_string(), "[scratch]")
}

#[test]
fn errors_without_aws() {
    let bad_plan = scratch(
        "bad-plans.toml",
        "[[plan]]\nname = \"Bad Name\"\nschedule = \"cron(0 25 * * ? *)\"\ntimezone = \"Mars/Base\"\n\
         sources = [\"s3://b/\"]\nretention = { keep_last = 0 }\nrpo = \"soon\"\ntier = \"gold\"\n",
    );
    let password_plan = scratch(
        "password-plans.toml",
        "[[plan]]\nname = \"dumps\"\nschedule = \"rate(1 day)\"\n\
         sources = [\"postgres://app:hunter2@db.example/orders\"]\nretention = { daily = 7 }\nrpo = \"26h\"\ntier = \"important\"\n\
         [[plan]]\nname = \"typo\"\nschedule = \"rate(1 day)\"\nsources = [\"postgress://app:hunter2@db/x\"]\n\
         retention = { daily = 7 }\nrpo = \"26h\"\ntier = \"important\"\n",
    );
    let missing = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli-tests/missing.toml")
        .display()
        .to_string();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("no-region", vec!["backups", "list"]),
        ("no-store", vec!["--region", "eu-west-1", "backup", "files", "/tmp"]),
        (
            "init-no-kms-key",
            vec!["--region", "eu-west-1", "--store", "/tmp/lb", "init"],
        ),
        (
            "bad-backup-id",
            vec!["--region", "eu-west-1", "--store", "/tmp/lb", "verify", "nope"],
        ),
        (
            "latest-without-source",
            vec!["--region", "eu-west-1", "--store", "/tmp/lb", "verify", "latest"],
        ),
        (
            "hold-bad-id",
            vec!["--region", "eu-west-1", "hold", "add", "bk-1", "--reason", "case 7"],
        ),
        (
            "retention-no-rule",
            vec!["--region", "eu-west-1", "retention", "apply", "--dry-run"],
        ),
        (
            "retention-bad-at",
            vec![
                "--region",
                "eu-west-1",
                "retention",
                "apply",
                "--keep-last",
                "2",
                "--at",
                "yesterday",
            ],
        ),
        (
            "gc-bad-at",
            vec!["--region", "eu-west-1", "--store", "/tmp/lb", "gc", "--at", "yesterday"],
        ),
        (
            "plan-check-bad-at",
            vec!["plan", "check", "../examples/plans.toml", "--at", "yesterday"],
        ),
        (
            "plan-check-bad-plan",
            vec!["plan", "check", &bad_plan, "--at", "2026-11-23T10:00:00Z"],
        ),
        ("plan-check-missing-file", vec!["plan", "check", &missing]),
        ("plan-schedules-bad-plan", vec!["plan", "schedules", &bad_plan]),
        ("verify-sample-zero", vec!["verify", "--sample", "0"]),
        (
            "retention-days-too-many",
            vec![
                "backup",
                "dump",
                "mysql://root@127.0.0.1/x",
                "--retention-days",
                "4294967296",
            ],
        ),
        (
            "retention-keep-weekly-too-many",
            vec![
                "--region",
                "eu-west-1",
                "retention",
                "apply",
                "--keep-weekly",
                "9999999",
            ],
        ),
        (
            "gc-grace-too-long",
            vec![
                "--region",
                "eu-west-1",
                "--store",
                "/tmp/lb",
                "gc",
                "--grace",
                "1000000years",
            ],
        ),
        (
            "store-with-credentials",
            vec![
                "--region",
                "eu-west-1",
                "--store",
                "https://admin:hunter2@example.com/backups",
                "backup",
                "files",
                "/tmp",
            ],
        ),
        (
            "plan-check-passwords",
            vec!["plan", "check", &password_plan, "--at", "2026-11-23T10:00:00Z"],
        ),
        ("unknown-subcommand", vec!["frobnicate"]),
    ];
    for (name, args) in cases {
        let transcript = error_transcript(&args);
        let printed = transcript.split_once('\n').map_or("", |(_command, printed)| printed);
        assert!(!printed.contains("hunter2"), "a password was printed: {transcript}");
        insta::assert_snapshot!(format!("error-{name}"), transcript);
    }
}
