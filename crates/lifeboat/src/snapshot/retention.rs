//! Retention of a plan's snapshots: [`plan_snapshot_retention`] is pure
//! (the policy of `crate::retention` over each resource's history);
//! [`apply_snapshot_retention`] deletes what it doomed in every region.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::json;

use super::error::SnapshotOpsError;
use super::records::in_progress;
use super::verifications::SnapshotChecks;
use crate::audit::{AuditEvent, AuditTrail};
use crate::format::BackupType;
use crate::plan::Plan;
use crate::rds::Rds;
use crate::retention::{plan_retention, BackupInfo, BackupState, RetentionError, RetentionPolicy};
use crate::snapshot::{CopyStatus, ResourceKind, SnapshotHistory, SnapshotStatus};

/// A snapshot the policy keeps, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeptSnapshot {
    pub snapshot_id: String,
    pub resource: String,
    pub scheduled_time: String,
    pub reasons: Vec<String>,
}

/// A snapshot the policy deletes: where it is, and why it goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DoomedSnapshot {
    pub snapshot_id: String,
    pub resource: String,
    pub resource_kind: ResourceKind,
    pub scheduled_time: String,
    /// The source region first, then each copy region.
    pub regions: Vec<String>,
    pub reason: String,
    #[serde(skip)]
    history: SnapshotHistory,
}

/// What one plan's policy does to its snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanRetention {
    pub plan: String,
    pub policy: RetentionPolicy,
    pub keep: Vec<KeptSnapshot>,
    pub delete: Vec<DoomedSnapshot>,
}

/// What retention would do (or did) to every plan's snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRetentionPlan {
    pub at: Timestamp,
    pub plans: Vec<PlanRetention>,
}

/// Decides which of a plan's snapshots stay at `now`. `held` and `verified`
/// are snapshot identifiers (held; newest verification passed). A snapshot
/// or copy still in progress counts as unfinished and stays.
pub fn plan_snapshot_retention(
    plan: &Plan,
    histories: &[SnapshotHistory],
    held: &BTreeSet<String>,
    verified: &BTreeSet<String>,
    now: Timestamp,
) -> Result<PlanRetention, RetentionError> {
    let mine: Vec<&SnapshotHistory> = histories.iter().filter(|h| h.snapshot.plan == plan.name).collect();
    let infos: Vec<BackupInfo> = mine
        .iter()
        .filter_map(|h| {
            let snapshot = &h.snapshot;
            let created_at = snapshot.scheduled_time.parse().ok()?;
            let status = match snapshot.status {
                _ if in_progress(h) => BackupState::InProgress,
                SnapshotStatus::Completed => BackupState::Completed,
                SnapshotStatus::Failed => BackupState::Failed,
                SnapshotStatus::InProgress => BackupState::InProgress,
            };
            Some(BackupInfo {
                id: snapshot.snapshot_id.clone(),
                created_at,
                status,
                backup_type: BackupType::Full,
                parent: None,
                source: snapshot.resource.clone(),
                held: held.contains(&snapshot.snapshot_id),
                locked_until: None,
                verified: verified.contains(&snapshot.snapshot_id),
            })
        })
        .collect();
    let decided = plan_retention(&infos, &plan.retention, now)?;
    let find = |id: &str| mine.iter().find(|h| h.snapshot.snapshot_id == id);
    let keep = decided
        .keep
        .iter()
        .filter_map(|k| {
            let h = find(&k.id)?;
            Some(KeptSnapshot {
                snapshot_id: k.id.clone(),
                resource: h.snapshot.resource.clone(),
                scheduled_time: h.snapshot.scheduled_time.clone(),
                reasons: k.reasons.iter().map(|r| r.describe()).collect(),
            })
        })
        .collect();
    let delete = decided
        .delete
        .iter()
        .filter_map(|d| {
            let h = find(&d.id)?;
            let mut regions = vec![h.snapshot.region.clone()];
            regions.extend(
                h.copies
                    .iter()
                    .filter(|c| c.status == CopyStatus::Completed || c.status == CopyStatus::Failed)
                    .map(|c| c.region.clone()),
            );
            for copy_region in &plan.copy_regions {
                if !regions.contains(&copy_region.region) {
                    regions.push(copy_region.region.clone());
                }
            }
            Some(DoomedSnapshot {
                snapshot_id: d.id.clone(),
                resource: h.snapshot.resource.clone(),
                resource_kind: h.snapshot.resource_kind,
                scheduled_time: h.snapshot.scheduled_time.clone(),
                regions,
                reason: d.reason.describe(),
                history: (*h).clone(),
            })
        })
        .collect();
    Ok(PlanRetention {
        plan: plan.name.clone(),
        policy: plan.retention.clone(),
        keep,
        delete,
    })
}

/// Reads the plans' snapshots, holds and verifications and decides.
pub async fn plan_snapshot_expiry(
    checks: &SnapshotChecks,
    catalog: &crate::catalog::Catalog,
    plans: &[Plan],
    now: Timestamp,
) -> Result<SnapshotRetentionPlan, SnapshotOpsError> {
    let histories = checks.histories(plans).await?;
    let held: BTreeSet<String> = catalog.list_holds().await?.into_iter().map(|h| h.backup_id).collect();
    let mut verified = BTreeSet::new();
    for history in &histories {
        if history.snapshot.status != SnapshotStatus::Completed {
            continue;
        }
        let latest = checks.verifications(&history.snapshot, 1).await?;
        if latest.first().is_some_and(|v| v.passed()) {
            verified.insert(history.snapshot.snapshot_id.clone());
        }
    }
    let mut decided = Vec::with_capacity(plans.len());
    for plan in plans {
        decided.push(
            plan_snapshot_retention(plan, &histories, &held, &verified, now).map_err(|error| {
                SnapshotOpsError::Retention {
                    plan: plan.name.clone(),
                    error,
                }
            })?,
        );
    }
    Ok(SnapshotRetentionPlan {
        at: now,
        plans: decided,
    })
}

/// One snapshot deleted, or not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotDeletion {
    pub snapshot_id: String,
    pub plan: String,
    /// Regions where RDS deleted it now.
    pub deleted_in: Vec<String>,
    /// Regions where it was gone already.
    pub absent_in: Vec<String>,
    /// Regions where deleting failed, with the error.
    pub failed_in: Vec<(String, String)>,
}

/// What applying a retention plan did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotExpirySummary {
    pub deleted: Vec<SnapshotDeletion>,
    /// Snapshots left alone because their record changed since the plan
    /// was made (another run got there first).
    pub skipped: Vec<String>,
}

impl SnapshotExpirySummary {
    pub fn ok(&self) -> bool {
        self.deleted.iter().all(|d| d.failed_in.is_empty())
    }
}

/// Deletes each doomed snapshot: the record marked deleted first (so no
/// live record names a deleted snapshot), then the snapshot in its region
/// and each copy region, then an audit record (`snapshot.deleted`).
pub async fn apply_snapshot_retention(
    aws: &Rds,
    checks: &SnapshotChecks,
    audit: &AuditTrail,
    plan: &SnapshotRetentionPlan,
) -> Result<SnapshotExpirySummary, SnapshotOpsError> {
    let mut summary = SnapshotExpirySummary::default();
    for retention in &plan.plans {
        for doomed in &retention.delete {
            let now = crate::times::now_text();
            match checks.mark_deleted(&doomed.history, &now).await {
                Ok(()) => {}
                Err(crate::catalog::CatalogError::Conflict { .. }) => {
                    summary.skipped.push(doomed.snapshot_id.clone());
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            let mut deletion = SnapshotDeletion {
                snapshot_id: doomed.snapshot_id.clone(),
                plan: retention.plan.clone(),
                deleted_in: Vec::new(),
                absent_in: Vec::new(),
                failed_in: Vec::new(),
            };
            for region in &doomed.regions {
                match aws
                    .in_region(region)
                    .delete_snapshot(doomed.resource_kind, &doomed.snapshot_id)
                    .await
                {
                    Ok(true) => deletion.deleted_in.push(region.clone()),
                    Ok(false) => deletion.absent_in.push(region.clone()),
                    Err(error) => {
                        tracing::warn!(snapshot = %doomed.snapshot_id, region = %region, error = %error, "deleting a snapshot failed");
                        deletion.failed_in.push((region.clone(), error.to_string()));
                    }
                }
            }
            audit
                .append(AuditEvent::new(
                    "snapshot.deleted",
                    &doomed.snapshot_id,
                    json!({
                        "plan": retention.plan,
                        "resource": doomed.resource,
                        "scheduledTime": doomed.scheduled_time,
                        "reason": doomed.reason,
                        "deletedIn": deletion.deleted_in,
                        "absentIn": deletion.absent_in,
                        "failedIn": deletion.failed_in.iter().map(|(r, e)| json!({"region": r, "error": e})).collect::<Vec<_>>(),
                    }),
                ))
                .await?;
            tracing::info!(snapshot = %doomed.snapshot_id, regions = ?deletion.deleted_in, "snapshot deleted by retention");
            summary.deleted.push(deletion);
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::parse_plans;
    use crate::snapshot::{CopyRecord, SnapshotRecord};

    fn plan(retention: &str) -> Plan {
        let text = format!(
            r#"[[plan]]
name = "db-nightly"
schedule = "cron(0 2 * * ? *)"
resources = ["orders"]
copy_regions = [{{ region = "us-west-2", kms_key = "arn:aws:kms:us-west-2:1:key/dr" }}]
retention = {{ {retention} }}
rpo = "26h"
tier = "critical"
"#
        );
        parse_plans(&text, "2026-11-23T00:00:00Z".parse().unwrap())
            .unwrap()
            .remove(0)
    }

    /// A history entry from `"DAY STATUS COPY"`: the 2026-11-DAY 02:00 snapshot.
    fn entry(spec: &str) -> SnapshotHistory {
        let parts: Vec<&str> = spec.split_whitespace().collect();
        let time = format!("2026-11-{}T02:00:00Z", parts[0]);
        let status = match parts[1] {
            "completed" => SnapshotStatus::Completed,
            "failed" => SnapshotStatus::Failed,
            _ => SnapshotStatus::InProgress,
        };
        let snapshot = SnapshotRecord {
            plan: "db-nightly".into(),
            resource: "arn:aws:rds:eu-central-1:1:db:orders".into(),
            resource_id: "orders".into(),
            resource_kind: ResourceKind::DbInstance,
            region: "eu-central-1".into(),
            scheduled_time: time.clone(),
            snapshot_id: format!("s{}", parts[0]),
            snapshot_arn: None,
            status,
            created_at: time.clone(),
            completed_at: None,
            retention_until: None,
            engine: None,
            error: None,
            failed_at: None,
        };
        let copy_status = match parts.get(2).copied() {
            Some("copying") => Some(CopyStatus::Copying),
            Some("copied") => Some(CopyStatus::Completed),
            _ => None,
        };
        let copies = copy_status
            .map(|status| CopyRecord {
                plan: snapshot.plan.clone(),
                resource: snapshot.resource.clone(),
                resource_kind: ResourceKind::DbInstance,
                scheduled_time: time.clone(),
                source_snapshot_arn: "arn".into(),
                region: "us-west-2".into(),
                kms_key_id: "k".into(),
                snapshot_id: snapshot.snapshot_id.clone(),
                snapshot_arn: None,
                status,
                queued_at: time.clone(),
                started_at: None,
                completed_at: None,
                attempts: 1,
                next_attempt_at: None,
                error: None,
                failed_at: None,
            })
            .into_iter()
            .collect();
        SnapshotHistory { snapshot, copies }
    }

    fn ids(set: &[&str]) -> BTreeSet<String> {
        set.iter().map(|s| s.to_string()).collect()
    }

    fn run(retention: &str, specs: &[&str], held: &[&str], verified: &[&str]) -> (Vec<String>, Vec<String>) {
        let histories: Vec<SnapshotHistory> = specs.iter().map(|s| entry(s)).collect();
        let decided = plan_snapshot_retention(
            &plan(retention),
            &histories,
            &ids(held),
            &ids(verified),
            "2026-11-23T12:00:00Z".parse().unwrap(),
        )
        .unwrap();
        let mut keep: Vec<String> = decided.keep.into_iter().map(|k| k.snapshot_id).collect();
        let mut delete: Vec<String> = decided.delete.into_iter().map(|d| d.snapshot_id).collect();
        keep.sort();
        delete.sort();
        (keep, delete)
    }

    #[test]
    fn keep_last_deletes_the_older_snapshots() {
        let (keep, delete) = run(
            "keep_last = 2",
            &[
                "20 completed copied",
                "21 completed copied",
                "22 completed copied",
                "23 completed copied",
            ],
            &[],
            &[],
        );
        assert_eq!(keep, ["s22", "s23"]);
        assert_eq!(delete, ["s20", "s21"]);
    }

    #[test]
    fn held_in_progress_and_newest_verified_snapshots_stay() {
        let (keep, delete) = run(
            "keep_last = 1",
            &[
                "18 completed copied",
                "19 completed copied",
                "20 completed copied",
                "21 completed copying",
                "22 running",
                "23 completed copied",
            ],
            &["s18"],
            &["s19"],
        );
        assert_eq!(keep, ["s18", "s19", "s21", "s22", "s23"]);
        assert_eq!(delete, ["s20"]);
    }

    #[test]
    fn a_doomed_snapshot_is_deleted_in_every_region() {
        let histories = vec![entry("20 completed copied"), entry("23 completed copied")];
        let decided = plan_snapshot_retention(
            &plan("keep_last = 1"),
            &histories,
            &BTreeSet::new(),
            &BTreeSet::new(),
            "2026-11-23T12:00:00Z".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(decided.delete.len(), 1);
        assert_eq!(decided.delete[0].regions, ["eu-central-1", "us-west-2"]);
        assert_eq!(decided.delete[0].reason, "no rule keeps it");
    }
}
