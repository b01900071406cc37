//! Restore tests: a snapshot restored to a temporary DB instance, checked
//! with a checks file's SQL assertions, timed, and deleted again.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::checks::RestoreTestOutcome;
use crate::rds::wait::{phase, Phase};
use crate::rds::{Rds, RestoreRequest};
use crate::snapshot::{RdsError, ResourceKind, SnapshotHistory};
use crate::validate::{self, Checks};

/// An instance's status and endpoint (host, port), as RDS describes it.
pub type InstanceState = (String, Option<(String, u16)>);

/// The tag a restore test's temporary instance carries (with the snapshot).
pub const TAG_RESTORE_TEST: &str = "lifeboat:restore-test";

/// How a restore test runs.
#[derive(Clone, Debug)]
pub struct RestoreTestOptions {
    pub checks: Checks,
    /// The temporary instance's class.
    pub instance_class: String,
    /// How long the instance may take to become available.
    pub timeout: Duration,
    /// Time between status polls.
    pub poll_interval: Duration,
}

impl RestoreTestOptions {
    pub fn new(checks: Checks) -> Self {
        Self {
            checks,
            instance_class: "db.t3.micro".to_owned(),
            timeout: Duration::from_secs(60 * 60),
            poll_interval: Duration::from_secs(30),
        }
    }
}

/// The temporary instance's identifier: `lifeboat-rt-RESOURCE-YYYYMMDDHHMM`
/// (the snapshot's scheduled minute), at most 63 characters, no double or
/// trailing hyphen.
pub fn restore_test_instance(resource_id: &str, scheduled_time: &str) -> String {
    let stamp: String = scheduled_time.chars().filter(char::is_ascii_digit).take(12).collect();
    let budget = 63 - "lifeboat-rt--".len() - stamp.len();
    let mut resource: String = resource_id
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(budget)
        .collect();
    while resource.ends_with('-') {
        resource.pop();
    }
    format!("lifeboat-rt-{resource}-{stamp}").replace("--", "-")
}

/// Restores `history`'s snapshot, waits for it, runs the checks, and
/// deletes the instance whatever happened. Never fails: what went wrong is
/// in the outcome.
pub async fn run_restore_test(
    aws: &Rds,
    history: &SnapshotHistory,
    options: &RestoreTestOptions,
) -> RestoreTestOutcome {
    let snapshot = &history.snapshot;
    let instance = restore_test_instance(&snapshot.resource_id, &snapshot.scheduled_time);
    let mut outcome = RestoreTestOutcome {
        instance: instance.clone(),
        passed: false,
        restore_seconds: None,
        validation: None,
        error: None,
        cleaned_up: false,
    };
    if snapshot.resource_kind == ResourceKind::Cluster {
        outcome.error = Some(format!(
            "restore tests restore DB instance snapshots; {} is an Aurora cluster snapshot",
            snapshot.snapshot_id
        ));
        outcome.cleaned_up = true;
        return outcome;
    }
    let started = Instant::now();
    let tags = [(TAG_RESTORE_TEST, snapshot.snapshot_id.as_str())];
    let request = RestoreRequest {
        instance: &instance,
        snapshot: &snapshot.snapshot_id,
        instance_class: Some(&options.instance_class),
        publicly_accessible: Some(false),
        tags: &tags,
        ..RestoreRequest::default()
    };
    let restored = match aws.restore_snapshot(&request).await {
        Ok(()) => wait_available(aws, &instance, options).await,
        Err(error) => Err(format!(
            "restoring {} to {instance} failed: {error}",
            snapshot.snapshot_id
        )),
    };
    match restored {
        Ok(endpoint) => {
            outcome.restore_seconds = Some(started.elapsed().as_secs_f64());
            let url = match &endpoint {
                Some((host, port)) => options.checks.url_for(host, *port),
                None => options.checks.url.clone(),
            };
            match validate::run(&url, &options.checks).await {
                Ok(report) => {
                    outcome.passed = report.passed();
                    outcome.error = report.failure_message();
                    outcome.validation = Some(report);
                }
                Err(error) => outcome.error = Some(error.to_string()),
            }
        }
        Err(error) => outcome.error = Some(error),
    }
    match aws.delete_instance(&instance).await {
        Ok(_) => outcome.cleaned_up = true,
        Err(error) => {
            tracing::error!(instance = %instance, error = %error, "deleting the restore test's instance failed");
            let note = format!("deleting the temporary instance {instance} failed ({error}): delete it by hand");
            outcome.passed = false;
            outcome.error = Some(match outcome.error.take() {
                Some(first) => format!("{first}; {note}"),
                None => note,
            });
        }
    }
    tracing::info!(instance = %instance, passed = outcome.passed, seconds = ?outcome.restore_seconds, "restore test done");
    outcome
}

/// Where a restore test reads its temporary instance's state: RDS in
/// production ([`Rds`]), scripted status sequences in tests.
pub trait InstanceStatus {
    /// The instance's status and endpoint; `None` if it does not exist (yet).
    fn status(&self, instance: &str) -> impl Future<Output = Result<Option<InstanceState>, RdsError>> + Send;
}

impl InstanceStatus for Rds {
    async fn status(&self, instance: &str) -> Result<Option<InstanceState>, RdsError> {
        Ok(self
            .instance(instance)
            .await?
            .map(|i| (i.status, i.endpoint.zip(i.port))))
    }
}

/// Polls the instance until RDS reports it available; its endpoint then.
/// A throttled or failed describe is tried again on the next poll; a
/// terminal status or the timeout ends the wait with what was seen last.
pub async fn wait_available<S: InstanceStatus>(
    source: &S,
    instance: &str,
    options: &RestoreTestOptions,
) -> Result<Option<(String, u16)>, String> {
    let started = Instant::now();
    loop {
        let (status, endpoint) = match source.status(instance).await {
            Ok(state) => state.unwrap_or_default(),
            Err(error) if error.is_retryable() && started.elapsed() < options.timeout => {
                tracing::warn!(instance, error = %error, "describing the restore test's instance failed; trying again");
                tokio::time::sleep(options.poll_interval).await;
                continue;
            }
            Err(error) => return Err(format!("describing {instance} failed: {error}")),
        };
        match phase(&status) {
            Phase::Ready => return Ok(endpoint),
            Phase::Failed => return Err(format!("{instance} ended {status:?} instead of available")),
            Phase::Waiting if started.elapsed() >= options.timeout => {
                return Err(format!(
                    "{instance} was still {status:?} after {} s",
                    options.timeout.as_secs()
                ))
            }
            Phase::Waiting => tokio::time::sleep(options.poll_interval).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Answers each poll with the next scripted step: a status, `throttled`
    /// or `absent`; the last step repeats.
    struct Script(Mutex<Vec<&'static str>>);

    impl InstanceStatus for Script {
        async fn status(&self, _instance: &str) -> Result<Option<InstanceState>, RdsError> {
            let mut steps = self.0.lock().unwrap();
            let step = if steps.len() > 1 { steps.remove(0) } else { steps[0] };
            match step {
                "throttled" => Err(RdsError::new(Some("Throttling"), "Rate exceeded")),
                "denied" => Err(RdsError::new(Some("AccessDenied"), "not allowed")),
                "absent" => Ok(None),
                status => Ok(Some((status.to_owned(), Some(("rt.example".to_owned(), 5432))))),
            }
        }
    }

    async fn wait(steps: &[&'static str]) -> Result<Option<(String, u16)>, String> {
        let mut options = RestoreTestOptions::new(crate::validate::Checks {
            url: "postgres://x@{host}:{port}/db".into(),
            checks: Vec::new(),
        });
        options.timeout = Duration::from_secs(600);
        options.poll_interval = Duration::from_secs(30);
        wait_available(&Script(Mutex::new(steps.to_vec())), "lifeboat-rt-x", &options).await
    }

    #[tokio::test(start_paused = true)]
    async fn waits_through_absent_creating_and_throttling_until_available() {
        let endpoint = wait(&["absent", "creating", "throttled", "backing-up", "available"]).await;
        assert_eq!(endpoint, Ok(Some(("rt.example".to_owned(), 5432))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_terminal_status_or_a_refusal_ends_the_wait_naming_it() {
        let failed = wait(&["creating", "incompatible-restore"]).await.unwrap_err();
        assert!(failed.contains("incompatible-restore"), "{failed}");
        let denied = wait(&["denied"]).await.unwrap_err();
        assert!(denied.contains("AccessDenied"), "{denied}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_times_out_with_the_last_status() {
        let late = wait(&["creating"]).await.unwrap_err();
        assert!(late.contains("\"creating\" after 600 s"), "{late}");
    }

    #[test]
    fn temporary_instance_names_are_valid_rds_identifiers() {
        assert_eq!(
            restore_test_instance("Orders", "2026-11-23T02:00:00Z"),
            "lifeboat-rt-orders-202611230200"
        );
        let long = restore_test_instance(&"a-".repeat(40), "2026-11-23T02:00:00Z");
        assert!(long.len() <= 63, "{long}");
        assert!(!long.contains("--") && !long.ends_with('-'), "{long}");
        assert!(long.starts_with("lifeboat-rt-a-a"), "{long}");
    }
}
