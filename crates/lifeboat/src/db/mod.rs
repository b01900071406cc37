//! The databases Lifeboat dumps, audits and checks, and how it reaches them.
//!
//! - `url`: database URLs (`DatabaseUrl`, `Engine`), their password kept
//!   out of every message, and the Secrets Manager ARN predicate. Pure:
//!   built without the `aws` feature.
//! - `client`: SQL run through the engine's own client program.
//! - `error`: `DbError`, why a database could not be reached or queried.
//! - `redis`: a Redis protocol (RESP) connection.
//! - `secret`: a connection kept in a Secrets Manager secret.

pub mod url;

#[cfg(feature = "aws")]
pub mod client;
#[cfg(feature = "aws")]
pub mod error;
#[cfg(feature = "aws")]
pub(crate) mod redis;
#[cfg(feature = "aws")]
pub mod secret;
