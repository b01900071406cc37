//! RDS, through one client for every region: what snapshots, restores,
//! restore tests, failovers and drills ask of it, each error naming the call,
//! what it was about and the region ([`RdsError`]).
//!
//! [`Rds`] is one region's client; [`Rds::in_region`] gives another region's
//! from the same configuration. A database is named by its kind and
//! identifier ([`ResourceKind`]: a DB instance or an Aurora cluster) and read
//! as one [`Database`] whatever its kind, so callers do not write the
//! instance case and the cluster case apart.
//!
//! - `databases.rs`: finding, listing, promoting, replicating and deleting
//!   databases;
//! - `restores.rs`: restores to a point in time and from snapshots, a
//!   restored cluster's first instance, read replicas;
//! - `snapshots.rs`: snapshots of either kind, and the KMS keys they use;
//! - `error.rs`: [`RdsError`];
//! - [`wait`]: the one waiter for a database to become usable.

mod databases;
mod error;
mod restores;
mod snapshots;
pub mod wait;

use std::collections::BTreeMap;
use std::fmt;

use aws_config::{Region, SdkConfig};
use aws_sdk_rds::types::Tag;
use jiff::Timestamp;

pub use databases::{Database, DbResource, Endpoint, Instance, ResourceKind};
pub use error::{RdsCall, RdsError};
pub use restores::{PointInTimeRestore, ReplicaRequest, RestoreRequest, SnapshotRestore};
pub use snapshots::{ListedSnapshot, SnapshotState};

use crate::aws::error_code;
use wait::{Observed, Poll, StatusSource, WaitError};

/// One region's RDS (and KMS, for the keys snapshots are encrypted with).
#[derive(Clone, Debug)]
pub struct Rds {
    config: SdkConfig,
    region: String,
    client: aws_sdk_rds::Client,
}

impl Rds {
    /// The client of `config`'s region (see `aws::load_config`).
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            config: config.clone(),
            region: config.region().map(|r| r.to_string()).unwrap_or_default(),
            client: aws_sdk_rds::Client::new(config),
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The same configuration's client of another region (this one if it is).
    pub fn in_region(&self, region: &str) -> Rds {
        if region == self.region {
            return self.clone();
        }
        let config = aws_sdk_rds::config::Builder::from(&self.config)
            .region(Region::new(region.to_owned()))
            .build();
        Rds {
            config: self.config.clone(),
            region: region.to_owned(),
            client: aws_sdk_rds::Client::from_conf(config),
        }
    }

    fn kms_in(&self, region: &str) -> aws_sdk_kms::Client {
        let config = aws_sdk_kms::config::Builder::from(&self.config)
            .region(Region::new(region.to_owned()))
            .build();
        aws_sdk_kms::Client::from_conf(config)
    }

    /// The error of `action` on `what` in this region.
    pub fn fail<E, R>(&self, action: &str, what: &str, error: &aws_sdk_rds::error::SdkError<E, R>) -> RdsError
    where
        E: aws_sdk_rds::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        let (code, message) = error_code(error);
        RdsError {
            code,
            message,
            call: RdsCall::boxed(&self.region, action, what),
        }
    }
}

/// `Ok(None)` for a "not found" error, the error otherwise.
fn none_if_missing<T>(error: RdsError) -> Result<Option<T>, RdsError> {
    if error.is_not_found() {
        Ok(None)
    } else {
        Err(error)
    }
}

pub(crate) fn timestamp(time: &aws_smithy_types::DateTime) -> Option<Timestamp> {
    Timestamp::new(time.secs(), i32::try_from(time.subsec_nanos()).ok()?).ok()
}

fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
    pairs
        .iter()
        .map(|(key, value)| Tag::builder().key(*key).value(*value).build())
        .collect()
}

fn tag_pairs(tags: &[Tag]) -> Vec<(String, String)> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
        .collect()
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tag_pairs(tags).into_iter().collect()
}

fn owned_tags(pairs: &[(String, String)]) -> Vec<Tag> {
    pairs
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// A read of a status for [`wait::wait_for`]: what RDS answered, a transient
/// error as worth another poll, any other as the end of the wait.
fn poll_outcome(what: String, answer: Result<Option<Observed>, RdsError>) -> Result<Poll, WaitError> {
    match answer {
        Ok(Some(seen)) => Ok(Poll::Seen(seen)),
        Ok(None) => Ok(Poll::NotFound),
        Err(error) if error.is_retryable() => Ok(Poll::Transient(error.to_string())),
        Err(error) => Err(WaitError::Read {
            what,
            message: error.to_string(),
        }),
    }
}

/// Waiting for a DB instance.
impl StatusSource for Rds {
    async fn poll(&self, id: &str) -> Result<Poll, WaitError> {
        let answer = self.instance(id).await.map(|found| {
            found.map(|i| Observed {
                status: i.status,
                replica_of: i.replica_of,
                endpoint: i.endpoint,
                port: i.port,
            })
        });
        poll_outcome(self.describe(id), answer)
    }
}

/// Waiting for an Aurora cluster.
pub struct ClusterStatus<'a>(pub &'a Rds);

impl StatusSource for ClusterStatus<'_> {
    fn describe(&self, id: &str) -> String {
        format!("Aurora cluster {id}")
    }

    async fn poll(&self, id: &str) -> Result<Poll, WaitError> {
        let answer = self.0.describe_cluster(id).await.map(|found| {
            found.map(|c| Observed {
                status: c.status().unwrap_or("unknown").to_owned(),
                replica_of: None,
                endpoint: c.endpoint().map(str::to_owned),
                port: c.port().and_then(|p| u16::try_from(p).ok()),
            })
        });
        poll_outcome(self.describe(id), answer)
    }
}
