//! Waiting for an RDS instance to become usable.
//!
//! The decision (keep polling, done, give up) is separated from how a status
//! is read, so unit tests script status sequences the emulator cannot
//! produce (on moto everything is `available` at once).

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What one poll saw of an instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observed {
    /// `DBInstanceStatus`, e.g. `creating`, `modifying`, `available`.
    pub status: String,
    /// Still replicating from a source (`ReadReplicaSourceDBInstanceIdentifier`).
    pub replica_of: Option<String>,
    pub endpoint: Option<String>,
    pub port: Option<u16>,
}

/// One poll's outcome.
#[derive(Debug)]
pub enum Poll {
    Seen(Observed),
    NotFound,
    /// Throttling, a timeout, a 5xx: worth another poll.
    Transient(String),
}

/// Reads an instance's state. Implemented over RDS, and by scripts in tests.
pub trait StatusSource {
    fn poll(&self, instance: &str) -> impl Future<Output = Result<Poll, WaitError>> + Send;
}

/// What the caller waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    /// `available`.
    Available,
    /// `available` and no longer a read replica (after PromoteReadReplica).
    /// AWS may report `available` for a moment before the promotion starts
    /// modifying the instance; an instance still listing its source is taken
    /// as promoted only after `settle_polls` such polls in a row (the
    /// emulator keeps the link forever).
    Promoted { settle_polls: u32 },
}

/// How often and how long to poll.
#[derive(Clone, Copy, Debug)]
pub struct WaitPolicy {
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive "not found" answers tolerated right after a create call
    /// (RDS is eventually consistent).
    pub not_found_polls: u32,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(2 * 3600),
            not_found_polls: 4,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("DB instance {instance} is {status}: it will not become available by itself; see its events in the RDS console (aws rds describe-events --source-identifier {instance} --source-type db-instance)")]
    Failed { instance: String, status: String },
    #[error("DB instance {instance} does not exist (any more): it was deleted, or the identifier is wrong")]
    Gone { instance: String },
    #[error("DB instance {instance} was not {goal} after {waited:?} (last status {status}); rerun to keep waiting, the step resumes")]
    Timeout {
        instance: String,
        goal: &'static str,
        waited: Duration,
        status: String,
    },
    #[error("cannot read DB instance {instance}: {message}")]
    Read { instance: String, message: String },
}

/// Statuses from which an instance does not recover without an operator.
const TERMINAL: &[&str] = &[
    "failed",
    "incompatible-restore",
    "incompatible-parameters",
    "incompatible-network",
    "incompatible-option-group",
    "inaccessible-encryption-credentials",
    "inaccessible-encryption-credentials-recoverable",
    "storage-full",
    "deleting",
    "deleted",
    "stopped",
    "stopping",
];

/// Polls `instance` until it reaches `goal`; returns what the last poll saw.
pub async fn wait_for<S: StatusSource>(
    source: &S,
    instance: &str,
    goal: Goal,
    policy: WaitPolicy,
) -> Result<Observed, WaitError> {
    let started = tokio::time::Instant::now();
    let mut not_found = 0;
    let mut settled = 0;
    let mut last;
    loop {
        match source.poll(instance).await? {
            Poll::Seen(seen) => {
                not_found = 0;
                if TERMINAL.contains(&seen.status.as_str()) {
                    return Err(WaitError::Failed {
                        instance: instance.to_owned(),
                        status: seen.status,
                    });
                }
                if seen.status == "available" {
                    match goal {
                        Goal::Available => return Ok(seen),
                        Goal::Promoted { .. } if seen.replica_of.is_none() => return Ok(seen),
                        Goal::Promoted { settle_polls } => {
                            settled += 1;
                            if settled >= settle_polls {
                                tracing::warn!(
                                    instance,
                                    source = seen.replica_of.as_deref().unwrap_or_default(),
                                    "the promoted instance is available but still lists its replication source"
                                );
                                return Ok(seen);
                            }
                        }
                    }
                } else {
                    settled = 0;
                }
                last = seen.status;
            }
            Poll::NotFound => {
                not_found += 1;
                if not_found > policy.not_found_polls {
                    return Err(WaitError::Gone {
                        instance: instance.to_owned(),
                    });
                }
                last = "not found".into();
            }
            Poll::Transient(message) => {
                tracing::debug!(instance, %message, "transient error while waiting; polling again");
                last = format!("unknown ({message})");
            }
        }
        let waited = started.elapsed();
        if waited >= policy.timeout {
            return Err(WaitError::Timeout {
                instance: instance.to_owned(),
                goal: match goal {
                    Goal::Available => "available",
                    Goal::Promoted { .. } => "promoted",
                },
                waited,
                status: last,
            });
        }
        tokio::time::sleep(policy.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Answers polls from a script, one step per poll; the last step repeats.
    struct Script(Mutex<Vec<&'static str>>);

    impl Script {
        fn new(steps: &[&'static str]) -> Self {
            let mut steps = steps.to_vec();
            steps.reverse();
            Self(Mutex::new(steps))
        }
        fn left(&self) -> usize {
            self.0.lock().map(|s| s.len()).unwrap_or_default()
        }
    }

    impl StatusSource for Script {
        async fn poll(&self, instance: &str) -> Result<Poll, WaitError> {
            let step = {
                let mut steps = self.0.lock().map_err(|_| WaitError::Read {
                    instance: instance.into(),
                    message: "poisoned".into(),
                })?;
                if steps.len() > 1 {
                    steps.pop()
                } else {
                    steps.last().copied()
                }
            }
            .unwrap_or("missing");
            let seen = |status: &str, replica: bool| {
                Poll::Seen(Observed {
                    status: status.into(),
                    replica_of: replica.then(|| "arn:aws:rds:eu-central-1:123456789012:db:primary".into()),
                    endpoint: Some(format!("{instance}.example")),
                    port: Some(5432),
                })
            };
            Ok(match step {
                "missing" => Poll::NotFound,
                "throttled" => Poll::Transient("Throttling: Rate exceeded".into()),
                "replica-available" => seen("available", true),
                "replica-modifying" => seen("modifying", true),
                status => seen(status, false),
            })
        }
    }

    fn policy(polls: u32) -> WaitPolicy {
        WaitPolicy {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(10 * u64::from(polls)),
            not_found_polls: 2,
        }
    }

    async fn run(steps: &[&'static str], goal: Goal) -> (Result<Observed, WaitError>, usize) {
        let script = Script::new(steps);
        let result = wait_for(&script, "db1", goal, policy(20)).await;
        (result, script.left())
    }

    #[tokio::test(start_paused = true)]
    async fn waits_through_creating_and_throttling_until_available() {
        let (result, _) = run(
            &["missing", "creating", "throttled", "backing-up", "available"],
            Goal::Available,
        )
        .await;
        let seen = result.expect("available");
        assert_eq!(seen.endpoint.as_deref(), Some("db1.example"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_terminal_status_fails_at_once_naming_it() {
        for status in ["failed", "incompatible-restore", "storage-full", "deleting"] {
            let (result, _) = run(&["creating", status, "available"], Goal::Available).await;
            match result {
                Err(WaitError::Failed { status: s, .. }) => assert_eq!(s, status),
                other => panic!("{status}: {other:?}"),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_instance_that_stays_missing_is_gone() {
        let (result, _) = run(&["missing", "missing", "missing", "available"], Goal::Available).await;
        assert!(matches!(result, Err(WaitError::Gone { .. })), "{result:?}");
        let (result, _) = run(&["missing", "missing", "available"], Goal::Available).await;
        assert!(result.is_ok(), "two misses are eventual consistency: {result:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_promotion_waits_for_the_modification_to_end() {
        let (result, left) = run(
            &["replica-available", "replica-modifying", "modifying", "available"],
            Goal::Promoted { settle_polls: 3 },
        )
        .await;
        let seen = result.expect("promoted");
        assert_eq!(seen.replica_of, None);
        assert_eq!(left, 1, "polled until the final status");
    }

    #[tokio::test(start_paused = true)]
    async fn a_promotion_that_keeps_its_link_settles_after_n_available_polls() {
        let script = Script::new(&[
            "replica-available",
            "replica-modifying",
            "replica-available",
            "replica-available",
            "replica-available",
            "available",
        ]);
        let seen = wait_for(&script, "db1", Goal::Promoted { settle_polls: 3 }, policy(20))
            .await
            .expect("settled");
        assert!(seen.replica_of.is_some());
        assert_eq!(
            script.left(),
            1,
            "a modifying poll resets the count: five polls, not three"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_times_out_with_the_last_status() {
        let script = Script::new(&["creating"]);
        let error = wait_for(&script, "db1", Goal::Available, policy(3))
            .await
            .expect_err("times out");
        match error {
            WaitError::Timeout { status, waited, .. } => {
                assert_eq!(status, "creating");
                assert!(waited >= Duration::from_secs(30), "{waited:?}");
            }
            other => panic!("{other:?}"),
        }
    }
}
