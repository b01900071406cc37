//! Lifeboat's domain library.
//!
//! The binaries (`functions/*`, `toolkit/`) are thin adapters over this
//! crate. Its modules stand in wings, named for the domain (ARCHITECTURE.md
//! is the map): the pure core; the plumbing every wing shares; files (the
//! encrypted store); databases (logical dumps and audits); RDS (snapshots,
//! restores, status); DR (failover, failback, drills).
//!
//! Architecture invariant: the pure core (`format`, `crypto`, `chunker`,
//! `pipeline`, `pitr`, `plan`, `retention` and `db::url`, with `ids` and
//! `times`) imports no AWS SDK type and builds without the `aws` feature
//! (`cargo check -p lifeboat --no-default-features`); everything else,
//! `plan::load` included, needs it.

// The pure core: no AWS, no I/O, no clock.
pub mod chunker;
pub mod crypto;
pub mod format;
pub mod ids;
pub mod pipeline;
pub mod pitr;
pub mod plan;
pub mod retention;
pub mod times;

// Plumbing: AWS clients, object storage, KMS keys, the catalog and its views.
#[cfg(feature = "aws")]
pub mod alert;
#[cfg(feature = "aws")]
pub mod audit;
#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod catalog;
#[cfg(feature = "aws")]
pub mod jobs;
#[cfg(feature = "aws")]
pub mod keys;
#[cfg(feature = "aws")]
pub mod storage;

// The files wing: the encrypted, deduplicated backup store.
#[cfg(feature = "aws")]
pub mod backup;
#[cfg(feature = "aws")]
pub mod expire;
#[cfg(feature = "aws")]
pub mod gc;
#[cfg(feature = "aws")]
pub mod repo;
#[cfg(feature = "aws")]
pub mod restore;
#[cfg(feature = "aws")]
pub mod source;
#[cfg(feature = "aws")]
pub mod verify;

// The databases wing (`db::url` is pure; the rest of `db` needs AWS).
#[cfg(feature = "aws")]
pub mod consistency;
pub mod db;
#[cfg(feature = "aws")]
pub mod dump;
#[cfg(feature = "aws")]
pub mod integrity;
#[cfg(feature = "aws")]
pub mod salvage;
#[cfg(feature = "aws")]
pub mod validate;

// The RDS wing.
#[cfg(feature = "aws")]
pub mod rds;
#[cfg(feature = "aws")]
pub mod recovery;
#[cfg(feature = "aws")]
pub mod snapshot;
#[cfg(feature = "aws")]
pub mod status;

// The DR wing.
#[cfg(feature = "aws")]
pub mod dr;
