//! `lifeboat snapshots verify|retention|hold|unhold`: verifications and
//! restore tests, retention plans and what applying them did, holds.

use lifeboat::catalog::HoldRecord;
use lifeboat::snapshot::restore_tests::RestoreTestsReport;
use lifeboat::snapshot::retention::{SnapshotExpirySummary, SnapshotRetentionPlan};
use lifeboat::snapshot::verify::SnapshotVerifyReport;

use super::{json, Renderer};

impl Renderer {
    pub fn snapshot_held(&self, hold: &HoldRecord, added: bool) {
        let id = &hold.backup_id;
        if self.is_json() {
            json(&serde_json::json!({"hold": hold, "added": added}));
        } else if added {
            println!("Held snapshot {id} ({}).", hold.reason);
        } else {
            println!("Snapshot {id} was already held; nothing changed.");
        }
    }

    pub fn snapshot_unheld(&self, id: &str, removed: Option<&HoldRecord>) {
        if self.is_json() {
            json(&serde_json::json!({"id": id, "removed": removed}));
        } else if removed.is_some() {
            println!("Lifted the hold on snapshot {id}.");
        } else {
            println!("Snapshot {id} had no hold; nothing changed.");
        }
    }

    pub fn snapshot_verify(&self, report: &SnapshotVerifyReport) {
        if self.is_json() {
            json(report);
            return;
        }
        if report.verifications.is_empty() {
            println!("No completed snapshot of these plans in the catalog.");
            return;
        }
        for v in &report.verifications {
            let verdict = if v.passed() { "passed" } else { "FAILED" };
            println!("{} ({}, {}): {verdict}", v.snapshot_id, v.plan, v.regions.join(", "));
            for problem in &v.problems {
                println!("  {} in {}: {}", problem.kind.as_str(), problem.region, problem.detail);
            }
            if let Some(test) = &v.restore_test {
                let seconds = test
                    .restore_seconds
                    .map(|s| format!(", restored in {s:.1} s"))
                    .unwrap_or_default();
                let cleaned = if test.cleaned_up { "deleted" } else { "NOT deleted" };
                println!(
                    "  restore test on {}: {}{seconds}; temporary instance {cleaned}",
                    test.instance,
                    if test.passed { "passed" } else { "failed" }
                );
            }
        }
    }

    pub fn restore_tests(&self, report: &RestoreTestsReport) {
        if self.is_json() {
            json(report);
            return;
        }
        for id in &report.orphans_deleted {
            println!("Deleted {id}: a restore test instance no test owned.");
        }
        if report.started.is_empty() && report.finished.is_empty() && report.cleanup_failed.is_empty() {
            println!("No restore test is due (each resource's last is younger than its plan's `every`).");
        }
        if !report.finished.is_empty() {
            self.snapshot_verify(&SnapshotVerifyReport {
                verifications: report.finished.clone(),
            });
        }
        for note in &report.cleanup_failed {
            println!("NOT deleted: {note} (the next run tries again)");
        }
        for note in &report.skipped {
            println!("Skipped {note}");
        }
    }

    pub fn snapshot_retention_plan(&self, plan: &SnapshotRetentionPlan) {
        if self.is_json() {
            json(plan);
            return;
        }
        for p in &plan.plans {
            println!("Plan {}: keep {}, delete {}", p.plan, p.keep.len(), p.delete.len());
            for d in &p.delete {
                println!("  delete {} in {} ({})", d.snapshot_id, d.regions.join(", "), d.reason);
            }
            for k in &p.keep {
                println!("  keep   {} ({})", k.snapshot_id, k.reasons.join(", "));
            }
        }
    }

    pub fn snapshot_expiry(&self, plan: &SnapshotRetentionPlan, summary: &SnapshotExpirySummary) {
        if self.is_json() {
            json(&serde_json::json!({"plan": plan, "expiry": summary}));
            return;
        }
        for d in &summary.deleted {
            println!("Deleted {} in {}", d.snapshot_id, d.deleted_in.join(", "));
            if !d.absent_in.is_empty() {
                println!("  already gone in {}", d.absent_in.join(", "));
            }
            for (region, error) in &d.failed_in {
                println!("  FAILED in {region}: {error}");
            }
        }
        for id in &summary.skipped {
            println!("Skipped {id}: its record changed since the plan was made");
        }
        if summary.deleted.is_empty() && summary.skipped.is_empty() {
            println!("Nothing to delete.");
        }
    }
}
