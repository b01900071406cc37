//! A run's outcome: the `snapshot run done` log line, the dashboard's
//! metrics, and the invocation's failure when a snapshot or copy failed.

use lifeboat::snapshot::SnapshotSummary;
use lifeboat_lambda::{Failure, Metrics};

/// Logs and counts `summary`; fails with `Lifeboat.SnapshotFailed` if any
/// resource or copy failed (recorded in the catalog; the rest proceeded).
pub fn report(summary: SnapshotSummary) -> Result<SnapshotSummary, Failure> {
    tracing::info!(
        plans = ?summary.plans,
        scheduled_time = ?summary.scheduled_time,
        selected = summary.selected.len(),
        created = summary.created.len(),
        already_taken = summary.already_taken.len(),
        creating = summary.creating.len(),
        completed = summary.completed.len(),
        copies_started = summary.copies_started.len(),
        copies_in_flight = summary.copies_in_flight.len(),
        copies_queued = summary.copies_queued.len(),
        copies_completed = summary.copies_completed.len(),
        failures = summary.failures.len(),
        "snapshot run done"
    );
    // The dashboard's totals: a snapshot that became available is a
    // backup completed; each failure (snapshot or copy) one failed.
    if !summary.completed.is_empty() || !summary.dumps.is_empty() || !summary.failures.is_empty() {
        Metrics::new()
            .put(
                "BackupsCompleted",
                (summary.completed.len() + summary.dumps.len()) as f64,
                "Count",
            )
            .put("BackupsFailed", summary.failures.len() as f64, "Count")
            .emit();
    }
    if summary.ok() {
        return Ok(summary);
    }
    let failures: Vec<String> = summary
        .failures
        .iter()
        .map(|f| {
            let place: Vec<&str> = f.region.iter().chain(&f.snapshot_id).map(String::as_str).collect();
            if place.is_empty() {
                format!("{}: {}", f.resource, f.error)
            } else {
                format!("{} ({}): {}", f.resource, place.join(", "), f.error)
            }
        })
        .collect();
    Err(Failure::SnapshotFailed(format!(
        "{} failure(s), recorded in the catalog; the rest proceeded: {}",
        failures.len(),
        failures.join("; ")
    )))
}
