//! Lifeboat's domain library.
//!
//! The binaries (`functions/*`, `toolkit/`) are thin adapters over this crate.
//! Modules are named for the domain: see ARCHITECTURE.md for the map.
//!
//! Architecture invariant: the pure core (`format`, `crypto`, `chunker`,
//! `pipeline`, `pitr`, `plan`, `retention` and `db::url`, with `ids` and
//! `times`)
//! imports no AWS SDK type and builds without the `aws` feature; everything
//! else, `plan::load` included, needs it.

pub mod chunker;
pub mod crypto;
pub mod db;
pub mod format;
pub mod ids;
pub mod pipeline;
pub mod pitr;
pub mod plan;
pub mod retention;
pub mod times;

#[cfg(feature = "aws")]
pub mod alert;
#[cfg(feature = "aws")]
pub mod audit;
#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod backup;
#[cfg(feature = "aws")]
pub mod catalog;
#[cfg(feature = "aws")]
pub mod consistency;
#[cfg(feature = "aws")]
pub mod dr;
#[cfg(feature = "aws")]
pub mod dump;
#[cfg(feature = "aws")]
pub mod expire;
#[cfg(feature = "aws")]
pub mod gc;
#[cfg(feature = "aws")]
pub mod integrity;
#[cfg(feature = "aws")]
pub mod jobs;
#[cfg(feature = "aws")]
pub mod keys;
#[cfg(feature = "aws")]
pub mod rds;
#[cfg(feature = "aws")]
pub mod recovery;
#[cfg(feature = "aws")]
pub mod repo;
#[cfg(feature = "aws")]
pub mod restore;
#[cfg(feature = "aws")]
pub mod salvage;
#[cfg(feature = "aws")]
pub mod snapshot;
#[cfg(feature = "aws")]
pub mod source;
#[cfg(feature = "aws")]
pub mod status;
#[cfg(feature = "aws")]
pub mod storage;
#[cfg(feature = "aws")]
pub mod validate;
#[cfg(feature = "aws")]
pub mod verify;
