//! Picking a plan file's plans by name ([`select_plans`]), as the snapshot
//! verify, retention and alert runs do; the file itself is read by
//! `crate::plan::load`.

use super::error::SnapshotOpsError;
use crate::plan::Plan;

/// The plans named (all when `names` is empty), or which name is unknown.
pub fn select_plans(plans: &[Plan], names: &[String]) -> Result<Vec<Plan>, SnapshotOpsError> {
    if names.is_empty() {
        return Ok(plans.to_vec());
    }
    names
        .iter()
        .map(|name| {
            plans
                .iter()
                .find(|p| &p.name == name)
                .cloned()
                .ok_or_else(|| SnapshotOpsError::UnknownPlan {
                    name: name.clone(),
                    known: plans.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_selected_by_name_and_an_unknown_one_is_named() {
        let plans = crate::plan::parse_plans(
            r#"[[plan]]
name = "a"
schedule = "rate(1 day)"
resources = ["orders"]
retention = { keep_days = 7 }
rpo = "26h"
tier = "critical"
"#,
            "2026-11-23T00:00:00Z".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(select_plans(&plans, &[]).unwrap().len(), 1);
        assert_eq!(select_plans(&plans, &["a".into()]).unwrap()[0].name, "a");
        let unknown = select_plans(&plans, &["b".into()]).unwrap_err().to_string();
        assert!(unknown.contains("\"b\"") && unknown.contains("it has: a"), "{unknown}");
    }
}
