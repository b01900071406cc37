//! Waiting for an RDS DB instance or Aurora cluster to become usable: the one
//! waiter behind restores, restore tests, failovers and drills.
//!
//! The decision (keep polling, done, give up) is separated from how a status
//! is read ([`StatusSource`]), so unit tests script status sequences the
//! emulator cannot produce (on moto everything is `available` at once).

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What one poll saw.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observed {
    /// `DBInstanceStatus` (a cluster's `Status`), e.g. `creating`, `available`.
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

/// Reads a database's state. Implemented over RDS ([`super::Rds`] for
/// instances, [`super::ClusterStatus`] for clusters), and by scripts in tests.
pub trait StatusSource {
    /// What is waited for, in messages: `DB instance ID`, `Aurora cluster ID`.
    fn describe(&self, id: &str) -> String {
        format!("DB instance {id}")
    }
    fn poll(&self, id: &str) -> impl Future<Output = Result<Poll, WaitError>> + Send;
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

impl Goal {
    fn describe(self) -> &'static str {
        match self {
            Goal::Available => "available",
            Goal::Promoted { .. } => "promoted",
        }
    }
}

/// How often and how long to poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitPolicy {
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive "not found" answers tolerated right after a create call
    /// (RDS is eventually consistent).
    pub not_found_polls: u32,
}

impl Default for WaitPolicy {
    /// Every 15 s for up to 2 h (a large restore takes that long).
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(2 * 3600),
            not_found_polls: 3,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WaitError {
    #[error("{what} became {status:?} after {}: it will not become available by itself; see its events (`aws rds describe-events --source-identifier ID`), delete it, and start again", humantime::format_duration(*waited))]
    Failed {
        what: String,
        status: String,
        waited: Duration,
    },
    #[error("{what} does not exist (any more): it was deleted, or the identifier is wrong")]
    Gone { what: String },
    #[error("{what} was still {status:?} after {} instead of {goal}: it may yet be; look again later (rerunning resumes the job)", humantime::format_duration(*waited))]
    TimedOut {
        what: String,
        goal: &'static str,
        status: String,
        waited: Duration,
    },
    #[error("cannot read the status of {what}: {message}")]
    Read { what: String, message: String },
}

/// How a status reads for someone waiting for `available`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Usable.
    Ready,
    /// Being created, modified, backed up, …: keep waiting.
    Waiting,
    /// Will not become usable without an operator.
    Failed,
}

/// Statuses from which a database does not recover without an operator.
const TERMINAL: &[&str] = &[
    "failed",
    "incompatible-restore",
    "incompatible-parameters",
    "incompatible-network",
    "incompatible-option-group",
    "incompatible-credentials",
    "inaccessible-encryption-credentials",
    "inaccessible-encryption-credentials-recoverable",
    "restore-error",
    "storage-full",
    "deleting",
    "deleted",
    "stopped",
    "stopping",
];

/// Reads one DB instance or cluster status.
pub fn phase(status: &str) -> Phase {
    if status == "available" {
        Phase::Ready
    } else if TERMINAL.contains(&status) {
        Phase::Failed
    } else {
        Phase::Waiting
    }
}

/// What [`wait_for`] reports each time the status changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusChange {
    pub status: String,
    /// Time spent waiting so far.
    pub waited: Duration,
}

/// Polls `id` until it reaches `goal`, telling `on_change` each new status;
/// fails at once on a status RDS does not come back from, and after
/// `policy.timeout`. Returns what the last poll saw.
pub async fn wait_for<S: StatusSource>(
    source: &S,
    id: &str,
    goal: Goal,
    policy: WaitPolicy,
    mut on_change: impl FnMut(&StatusChange),
) -> Result<Observed, WaitError> {
    let what = source.describe(id);
    let started = tokio::time::Instant::now();
    let mut not_found = 0;
    let mut settled = 0;
    let mut last: Option<String> = None;
    loop {
        let waited = started.elapsed();
        let status = match source.poll(id).await? {
            Poll::Seen(seen) => {
                not_found = 0;
                if last.as_deref() != Some(seen.status.as_str()) {
                    on_change(&StatusChange {
                        status: seen.status.clone(),
                        waited,
                    });
                }
                match phase(&seen.status) {
                    Phase::Failed => {
                        return Err(WaitError::Failed {
                            what,
                            status: seen.status,
                            waited,
                        })
                    }
                    Phase::Ready => match goal {
                        Goal::Available => return Ok(seen),
                        Goal::Promoted { .. } if seen.replica_of.is_none() => return Ok(seen),
                        Goal::Promoted { settle_polls } => {
                            settled += 1;
                            if settled >= settle_polls {
                                tracing::warn!(
                                    what,
                                    source = seen.replica_of.as_deref().unwrap_or_default(),
                                    "the promoted instance is available but still lists its replication source"
                                );
                                return Ok(seen);
                            }
                        }
                    },
                    Phase::Waiting => settled = 0,
                }
                seen.status
            }
            Poll::NotFound => {
                not_found += 1;
                if not_found > policy.not_found_polls {
                    return Err(WaitError::Gone { what });
                }
                "not found".to_owned()
            }
            Poll::Transient(message) => {
                tracing::debug!(what, %message, "transient error while waiting; polling again");
                format!("unknown ({message})")
            }
        };
        if waited >= policy.timeout {
            return Err(WaitError::TimedOut {
                what,
                goal: goal.describe(),
                status,
                waited,
            });
        }
        last = Some(status);
        let pause = policy
            .interval
            .min(policy.timeout.saturating_sub(waited))
            .max(Duration::from_millis(1));
        tokio::time::sleep(pause).await;
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
        async fn poll(&self, id: &str) -> Result<Poll, WaitError> {
            let step = {
                let mut steps = self.0.lock().map_err(|_| WaitError::Read {
                    what: id.into(),
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
                    endpoint: Some(format!("{id}.example")),
                    port: Some(5432),
                })
            };
            Ok(match step {
                "missing" => Poll::NotFound,
                "throttled" => Poll::Transient("Throttling: Rate exceeded".into()),
                "denied" => {
                    return Err(WaitError::Read {
                        what: id.into(),
                        message: "AccessDenied".into(),
                    })
                }
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

    async fn run(steps: &[&'static str], goal: Goal) -> (Result<Observed, WaitError>, Vec<String>, usize) {
        let script = Script::new(steps);
        let mut seen = Vec::new();
        let result = wait_for(&script, "db1", goal, policy(20), |change| {
            seen.push(format!("{}@{}", change.status, change.waited.as_secs()))
        })
        .await;
        (result, seen, script.left())
    }

    #[tokio::test(start_paused = true)]
    async fn waits_through_creating_and_throttling_until_available_reporting_each_change() {
        let (result, seen, _) = run(
            &[
                "missing",
                "creating",
                "creating",
                "throttled",
                "backing-up",
                "available",
            ],
            Goal::Available,
        )
        .await;
        let observed = result.expect("available");
        assert_eq!(observed.endpoint.as_deref(), Some("db1.example"));
        assert_eq!(seen, ["creating@10", "backing-up@40", "available@50"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_terminal_status_fails_at_once_naming_it() {
        for status in [
            "failed",
            "incompatible-restore",
            "storage-full",
            "deleting",
            "restore-error",
        ] {
            let (result, _, _) = run(&["creating", status, "available"], Goal::Available).await;
            match result {
                Err(WaitError::Failed { status: s, waited, .. }) => {
                    assert_eq!(s, status);
                    assert_eq!(waited, Duration::from_secs(10));
                }
                other => panic!("{status}: {other:?}"),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_database_that_stays_missing_is_gone() {
        let (result, _, _) = run(&["missing", "missing", "missing", "available"], Goal::Available).await;
        assert!(matches!(result, Err(WaitError::Gone { .. })), "{result:?}");
        let (result, _, _) = run(&["missing", "missing", "available"], Goal::Available).await;
        assert!(result.is_ok(), "two misses are eventual consistency: {result:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreadable_status_stops_the_wait() {
        let (result, _, _) = run(&["creating", "denied"], Goal::Available).await;
        assert!(
            matches!(&result, Err(WaitError::Read { message, .. }) if message == "AccessDenied"),
            "{result:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_promotion_waits_for_the_modification_to_end() {
        let (result, _, left) = run(
            &["replica-available", "replica-modifying", "modifying", "available"],
            Goal::Promoted { settle_polls: 3 },
        )
        .await;
        let observed = result.expect("promoted");
        assert_eq!(observed.replica_of, None);
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
        let observed = wait_for(&script, "db1", Goal::Promoted { settle_polls: 3 }, policy(20), |_| {})
            .await
            .expect("settled");
        assert!(observed.replica_of.is_some());
        assert_eq!(
            script.left(),
            1,
            "a modifying poll resets the count: five polls, not three"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_times_out_with_the_last_status() {
        let script = Script::new(&["creating"]);
        let error = wait_for(&script, "db1", Goal::Available, policy(3), |_| {})
            .await
            .expect_err("times out");
        match &error {
            WaitError::TimedOut { status, waited, .. } => {
                assert_eq!(status, "creating");
                assert!(*waited >= Duration::from_secs(30), "{waited:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(error.to_string().contains("still \"creating\" after 30s"), "{error}");
    }

    #[test]
    fn statuses_read_as_phases() {
        for (status, expected) in [
            ("available", Phase::Ready),
            ("creating", Phase::Waiting),
            ("backing-up", Phase::Waiting),
            ("", Phase::Waiting),
            ("failed", Phase::Failed),
            ("incompatible-restore", Phase::Failed),
            ("storage-full", Phase::Failed),
        ] {
            assert_eq!(phase(status), expected, "{status}");
        }
    }
}
