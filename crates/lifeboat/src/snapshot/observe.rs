//! What RDS shows of one recorded snapshot: its state in its region and in
//! each of the plan's copy regions, and the ARN each copy region's key
//! resolves to, as an [`Observed`] for `super::checks`.

use super::checks::Observed;
use super::error::SnapshotOpsError;
use crate::plan::Plan;
use crate::rds::Rds;
use crate::snapshot::SnapshotHistory;

/// Reads the snapshot in its region and each copy region, and resolves the
/// plan's copy keys.
pub async fn observe(aws: &Rds, history: &SnapshotHistory, plan: &Plan) -> Result<Observed, SnapshotOpsError> {
    let snapshot = &history.snapshot;
    let rds_failed = |region: &str, error| SnapshotOpsError::Rds {
        action: format!("describing snapshot {}", snapshot.snapshot_id),
        region: region.to_owned(),
        error,
    };
    let mut observed = Observed::default();
    let state = aws
        .in_region(&snapshot.region)
        .snapshot(snapshot.resource_kind, &snapshot.snapshot_id)
        .await
        .map_err(|e| rds_failed(&snapshot.region, e))?;
    observed.states.insert(snapshot.region.clone(), state);
    for copy_region in &plan.copy_regions {
        let region = copy_region.region.as_str();
        let id = history
            .copy_in(region)
            .map_or(snapshot.snapshot_id.as_str(), |c| c.snapshot_id.as_str());
        let state = aws
            .in_region(region)
            .snapshot(snapshot.resource_kind, id)
            .await
            .map_err(|e| rds_failed(region, e))?;
        observed.states.insert(region.to_owned(), state);
        // A key KMS cannot describe is compared as written (and then fails
        // the check if RDS names it otherwise).
        let key = match aws.key(region, &copy_region.kms_key).await {
            Ok((arn, _, _)) => arn,
            Err(error) => {
                tracing::warn!(region, key = %copy_region.kms_key, error = %error, "describing the plan's copy key failed");
                copy_region.kms_key.clone()
            }
        };
        observed.expected_keys.insert(region.to_owned(), key);
    }
    Ok(observed)
}
