//! Fencing the old primary at a failover: the `DB/fence` step stops the
//! instances of the primary region that could still take writes (the
//! plan's primary, and the instance an earlier failback made), before DNS
//! is switched to the DR database.
//!
//! Invariant: a failover's report says, per database, either that each such
//! instance was stopped (or was stopped, or does not exist), or plainly that
//! it was NOT fenced, why, and what the operator must do. A primary region
//! that does not answer never stops the failover: that is the outage it is
//! for.

use std::time::Duration;

use super::plan::DrDatabase;
use super::report::Fence;
use super::steps::step;
use super::{DrError, FENCED_TAG};
use crate::jobs::Job;
use crate::rds::{Rds, RdsError};

/// `DB/fence`: stops `db`'s old primary (and failback instance) in
/// `primary`'s region, giving up after `timeout`.
pub(super) async fn fence_primary(
    job: &mut Job,
    primary: &Rds,
    db: &DrDatabase,
    timeout: Duration,
) -> Result<(), DrError> {
    let job_id = job.id().to_owned();
    let region = primary.region().to_owned();
    step(job, &format!("{}/fence", db.name), || async {
        let mut fences = Vec::new();
        for (instance, required) in [(&db.primary_instance, true), (&db.failback_instance, false)] {
            let attempt = tokio::time::timeout(timeout, stop(primary, instance, &job_id)).await;
            let fence = match attempt {
                Ok(Ok(Fence::Absent { .. })) if !required => continue,
                Ok(Ok(fence)) => fence,
                Ok(Err(error)) => not_fenced(instance, &region, error.to_string()),
                Err(_) => not_fenced(
                    instance,
                    &region,
                    format!("the primary region did not answer within {}", humantime(timeout)),
                ),
            };
            if let Fence::NotFenced { .. } = &fence {
                tracing::warn!(database = %db.name, fence = %fence.words(), "old primary not fenced");
            }
            fences.push(fence);
        }
        Ok(fences)
    })
    .await
    .map(|_: Vec<Fence>| ())
}

/// Stops `instance` (tagged `lifeboat:fenced` = `job_id` first) unless it is stopped or absent.
async fn stop(rds: &Rds, instance: &str, job_id: &str) -> Result<Fence, RdsError> {
    let (instance, region) = (instance.to_owned(), rds.region().to_owned());
    let Some(found) = rds.instance(&instance).await? else {
        return Ok(Fence::Absent { instance, region });
    };
    if matches!(found.status.as_str(), "stopped" | "stopping") {
        return Ok(Fence::AlreadyStopped { instance, region });
    }
    rds.add_tags(&found.arn, &[(FENCED_TAG, job_id)]).await?;
    rds.stop_instance(&instance).await?;
    Ok(Fence::Stopped { instance, region })
}

fn not_fenced(instance: &str, region: &str, reason: String) -> Fence {
    Fence::NotFenced {
        instance: instance.to_owned(),
        region: region.to_owned(),
        reason,
        todo: format!(
            "Until it is stopped, clients that still reach it can write data the DR database never sees: \
             stop it as soon as {region} answers (aws rds stop-db-instance --region {region} \
             --db-instance-identifier {instance}), or cut its clients off (its security groups)"
        ),
    }
}

fn humantime(duration: Duration) -> String {
    crate::times::duration_text(jiff::SignedDuration::try_from(duration).unwrap_or(jiff::SignedDuration::MAX))
}
