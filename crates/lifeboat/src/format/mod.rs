//! The stored backup format, byte for byte as FORMAT.md specifies it.
//!
//! Architecture invariant: nothing here does I/O or knows AWS; callers hand
//! in bytes and get bytes back, so every rule is unit-testable.

mod binding;
mod blob;
mod config;
mod gc;
mod index;
mod manifest;
mod pack;

pub use binding::CatalogBinding;
pub use blob::{open_blob, seal_blob};
pub use config::{ChunkerParams, Compression, StoreConfig, FORMAT_VERSION, MAX_CONFIG_BYTES};
pub use gc::CandidateList;
pub use index::{BlobLocation, IndexFile, IndexPack};
pub use manifest::{display_path, entry_identity, BackupType, Entry, Manifest, SkippedEntry};
pub use pack::{read_pack_header, PackBuilder, PackHeaderEntry, SealedPack};

use crate::crypto::CryptoError;
use crate::ids::{IndexId, PackId};

/// A pack is closed once its blobs reach this many bytes.
pub const PACK_TARGET_SIZE: usize = 16 * 1024 * 1024;

/// The largest manifest, index or candidate list read, stored (sealed) or
/// decompressed (FORMAT.md, "Hostile input"): 1 GiB, about five million
/// manifest entries or index blobs. A larger object is refused before it is
/// read, and a decompression is stopped once it passes this bound.
pub const MAX_METADATA_BYTES: u64 = 1 << 30;

/// The largest pack read: a pack closes once its blobs pass the largest
/// configurable pack size (128 MiB), so it holds at most that plus one blob
/// of the largest chunk, and a header of at most 40 bytes per blob.
pub const MAX_PACK_BYTES: u64 = 512 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("{what} is not valid: {detail}")]
    Invalid { what: String, detail: String },
    #[error("{what} has format version {found}, this Lifeboat reads version {FORMAT_VERSION}: upgrade Lifeboat")]
    Version { what: String, found: u32 },
    #[error("chunk {0} decrypted but its content does not hash to its id: the store is corrupted")]
    ChunkIdMismatch(crate::ids::ChunkId),
}

impl FormatError {
    pub(crate) fn invalid(what: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Self::Invalid {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}

/// Object keys of a store, relative to the bucket (FORMAT.md, "Object key layout").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    /// `prefix` is the store's prefix without leading or trailing `/` (may be empty).
    pub fn new(prefix: &str) -> Self {
        let trimmed = prefix.trim_matches('/');
        let prefix = if trimmed.is_empty() {
            String::new()
        } else {
            format!("{trimmed}/")
        };
        Self { prefix }
    }

    pub fn config(&self) -> String {
        format!("{}config", self.prefix)
    }

    /// The store's catalog binding, next to `config`.
    pub fn catalog_binding(&self) -> String {
        format!("{}catalog", self.prefix)
    }

    pub fn pack(&self, id: &PackId) -> String {
        let hex = id.to_hex();
        format!("{}data/{}/{hex}", self.prefix, &hex[..2])
    }

    /// The prefix every pack key starts with (for one listing of all packs).
    pub fn data_dir(&self) -> String {
        format!("{}data/", self.prefix)
    }

    pub fn index_dir(&self) -> String {
        format!("{}index/", self.prefix)
    }

    pub fn index(&self, id: &IndexId) -> String {
        format!("{}index/{id}", self.prefix)
    }

    pub fn manifest(&self, backup: &str) -> String {
        format!("{}manifests/{backup}", self.prefix)
    }

    pub fn gc_dir(&self) -> String {
        format!("{}gc/", self.prefix)
    }

    /// A garbage collection's candidate list, named by its SHA-256.
    pub fn gc(&self, id: &IndexId) -> String {
        format!("{}gc/{id}", self.prefix)
    }
}

fn compress_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain data structures to a Vec cannot fail.
    let json = serde_json::to_vec(value).unwrap_or_default();
    zstd::bulk::compress(&json, 3).unwrap_or(json)
}

fn decompress_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, FormatError> {
    let json = decompress_bounded(bytes, MAX_METADATA_BYTES, what)?;
    serde_json::from_slice(&json).map_err(|e| FormatError::invalid(what, e))
}

/// The largest zstd window a metadata object may ask the decoder to hold
/// (8 MiB; Lifeboat compresses them at level 3, a 2 MiB window at most).
const METADATA_WINDOW_LOG_MAX: u32 = 23;

/// Decompresses a zstd stream, refusing output longer than `limit` bytes
/// (a small compressed object can announce or expand to any size) and a
/// window larger than `METADATA_WINDOW_LOG_MAX`.
fn decompress_bounded(bytes: &[u8], limit: u64, what: &str) -> Result<Vec<u8>, FormatError> {
    use std::io::Read;
    let mut decoder = zstd::stream::read::Decoder::new(bytes).map_err(|e| FormatError::invalid(what, e))?;
    decoder
        .window_log_max(METADATA_WINDOW_LOG_MAX)
        .map_err(|e| FormatError::invalid(what, e))?;
    let mut out = Vec::new();
    decoder
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| FormatError::invalid(what, e))?;
    if out.len() as u64 > limit {
        return Err(FormatError::invalid(
            what,
            format!("it decompresses to more than {limit} bytes, the most Lifeboat reads"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decompression_bomb_is_refused_at_the_bound() {
        let big = zstd::bulk::compress(&vec![b'x'; 1 << 20], 3).unwrap();
        assert!(big.len() < 1024);
        let err = decompress_bounded(&big, 1000, "index x").unwrap_err();
        assert!(
            err.to_string()
                .contains("index x is not valid: it decompresses to more than 1000 bytes"),
            "{err}"
        );
        assert_eq!(decompress_bounded(&big, 1 << 20, "index x").unwrap().len(), 1 << 20);
    }

    #[test]
    fn layout_places_objects_under_the_prefix() {
        let id = PackId([0xab; 32]);
        assert_eq!(Layout::new("").config(), "config");
        assert_eq!(Layout::new("/team/db/").config(), "team/db/config");
        assert_eq!(Layout::new("p").pack(&id), format!("p/data/ab/{}", id.to_hex()));
        assert_eq!(Layout::new("p").manifest("bk-1"), "p/manifests/bk-1");
        assert_eq!(Layout::new("").index_dir(), "index/");
        assert!(Layout::new("p").pack(&id).starts_with(&Layout::new("p").data_dir()));
    }
}
