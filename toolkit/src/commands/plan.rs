//! `lifeboat plan check` and `plan schedules`: a plan file read and checked,
//! or turned into its schedules' CloudFormation template. No AWS.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use lifeboat::plan::check_plans;

use crate::cli::PlanCommand;
use crate::env::parse_at;
use crate::exit;
use crate::render::schedules::template;
use crate::render::Renderer;
use lifeboat::plan::load::{load_local, read_local};

pub fn run(out: &Renderer, command: PlanCommand) -> Result<ExitCode> {
    match command {
        PlanCommand::Check { file, at } => check(out, &file, at.as_deref()),
        PlanCommand::Schedules { file } => schedules(out, &file),
    }
}

/// Every plan checked, every problem listed; exit 1 if there is any.
fn check(out: &Renderer, file: &Path, at: Option<&str>) -> Result<ExitCode> {
    let text = read_local(file)?;
    let now = parse_at(at)?;
    let check = check_plans(&text, now);
    out.plan_check(&file.display().to_string(), &check);
    if check.ok() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(exit::FAILURE))
    }
}

/// The schedules' template, for a valid plan file only (its problems otherwise).
fn schedules(out: &Renderer, file: &Path) -> Result<ExitCode> {
    let plans = load_local(file, jiff::Timestamp::now())?;
    out.schedules_template(&template(&plans, &file.display().to_string())?)?;
    Ok(ExitCode::SUCCESS)
}
