//! `lifeboat plan check` (each valid plan of the file, then every problem)
//! and `plan schedules` (the template `schedules` builds).

use lifeboat::plan::PlanCheck;

use super::{json, Renderer};

impl Renderer {
    /// `lifeboat plan check`: each valid plan, then every problem.
    pub fn plan_check(&self, file: &str, check: &PlanCheck) {
        if !self.is_text() {
            return json(&serde_json::json!({
                "file": file,
                "ok": check.ok(),
                "plans": check.plans,
                "problems": check.problems,
            }));
        }
        for plan in &check.plans {
            println!("Plan {} ({})", plan.name, plan.tier.as_str());
            if let Some(description) = &plan.description {
                println!("  description      {description}");
            }
            println!(
                "  schedule         {} ({}, {})",
                plan.schedule_words, plan.schedule, plan.timezone
            );
            for (i, run) in plan.next_runs.iter().enumerate() {
                let label = if i == 0 { "next runs" } else { "" };
                let shown = run
                    .parse::<jiff::Zoned>()
                    .map_or_else(|_| run.clone(), |z| z.strftime("%a %Y-%m-%d %H:%M %Z").to_string());
                println!("  {label:<16} {shown}");
            }
            if let Some(note) = &plan.next_runs_note {
                println!("  next runs        not computed: {note}");
            }
            if !plan.tags.is_empty() {
                let tags: Vec<String> = plan.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("  selects tags     {}", tags.join(", "));
            }
            for resource in &plan.resources {
                println!("  selects          {}", resource.describe());
            }
            for source in &plan.sources {
                println!("  backs up files   {source}");
            }
            if plan.copy_regions.is_empty() {
                println!("  copies           none");
            }
            for copy in &plan.copy_regions {
                println!("  copies to        {} with {}", copy.region, copy.kms_key);
            }
            let r = &plan.retention;
            let rules: Vec<String> = [
                ("keep_days", r.keep_days),
                ("keep_last", r.keep_last),
                ("daily", r.daily),
                ("weekly", r.weekly),
                ("monthly", r.monthly),
                ("yearly", r.yearly),
            ]
            .iter()
            .filter_map(|(rule, count)| count.map(|n| format!("{rule} {n}")))
            .collect();
            println!("  retention        {} ({})", rules.join(", "), r.timezone);
            println!("  rpo              {}", plan.rpo);
            if let Some(test) = &plan.restore_test {
                println!(
                    "  restore test     every {} on {} (timeout {}): {}",
                    test.every,
                    test.instance_class,
                    test.timeout,
                    test.checks.join(", ")
                );
            }
            println!();
        }
        if check.ok() {
            println!("{file}: {} plan(s), no problem.", check.plans.len());
        } else {
            println!("{file}: {} problem(s):", check.problems.len());
            for problem in &check.problems {
                println!("  {problem}");
            }
        }
    }

    /// `lifeboat plan schedules`: the CloudFormation template, as JSON whatever --output says.
    pub fn schedules_template(&self, template: &serde_json::Value) -> anyhow::Result<()> {
        println!("{}", serde_json::to_string_pretty(template)?);
        Ok(())
    }
}
