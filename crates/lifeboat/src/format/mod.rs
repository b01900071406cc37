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
pub use config::{ChunkerParams, Compression, StoreConfig, FORMAT_VERSION};
pub use gc::CandidateList;
pub use index::{BlobLocation, IndexFile, IndexPack};
pub use manifest::{display_path, entry_identity, BackupType, Entry, Manifest, SkippedEntry};
pub use pack::{read_pack_header, PackBuilder, PackHeaderEntry, SealedPack};

use crate::crypto::CryptoError;
use crate::ids::{IndexId, PackId};

/// A pack is closed once its blobs reach this many bytes.
pub const PACK_TARGET_SIZE: usize = 16 * 1024 * 1024;

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
    let json = zstd::stream::decode_all(bytes).map_err(|e| FormatError::invalid(what, e))?;
    serde_json::from_slice(&json).map_err(|e| FormatError::invalid(what, e))
}

#[cfg(test)]
mod tests {
    use super::*;

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
