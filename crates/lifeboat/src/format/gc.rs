//! Garbage collection's candidate lists: what a mark phase found
//! unreferenced, which a later sweep deletes if it is still unreferenced.

use serde::{Deserialize, Serialize};

use super::{compress_json, decompress_json, FormatError, FORMAT_VERSION};
use crate::crypto::{Keys, Role};
use crate::ids::{ChunkId, PackId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateList {
    pub version: u32,
    /// When the mark phase wrote it (RFC 3339, the collector's clock): the
    /// grace period counts from here. For backups without a GC ticket
    /// (older records), those created before this plus the clock margin
    /// must finish before the sweep.
    pub created_at: String,
    /// Chunks no completed backup referenced; backups that start after this
    /// list exists do not deduplicate against them.
    pub chunks: Vec<ChunkId>,
    /// Packs holding those chunks, to delete or rewrite at the sweep.
    pub packs: Vec<PackId>,
    /// The store's GC sequence read after the list was stored: backups
    /// whose ticket is at most this may have loaded the index before the
    /// list existed, and the sweep waits for them. Absent on a list not yet
    /// ordered (the sweep orders it first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

impl CandidateList {
    pub fn new(created_at: String, chunks: Vec<ChunkId>, packs: Vec<PackId>) -> Self {
        Self {
            version: FORMAT_VERSION,
            created_at,
            chunks,
            packs,
            sequence: None,
        }
    }

    pub fn seal(&self, keys: &Keys) -> Result<Vec<u8>, FormatError> {
        Ok(keys.seal(Role::GcCandidates, &compress_json(self))?)
    }

    pub fn open(keys: &Keys, sealed: &[u8], what: &str) -> Result<Self, FormatError> {
        let list: Self = decompress_json(&keys.open(Role::GcCandidates, sealed, what)?, what)?;
        if list.version != FORMAT_VERSION {
            return Err(FormatError::Version {
                what: what.to_owned(),
                found: list.version,
            });
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KEY_MATERIAL_LEN;

    #[test]
    fn candidate_lists_round_trip_and_are_bound_to_their_role() {
        let keys = Keys::from_material(&[2; KEY_MATERIAL_LEN]).unwrap();
        let list = CandidateList::new(
            "2026-11-23T10:00:00.000Z".into(),
            vec![ChunkId([1; 32])],
            vec![PackId([2; 32])],
        );
        let sealed = list.seal(&keys).unwrap();
        assert_eq!(CandidateList::open(&keys, &sealed, "gc/x").unwrap(), list);
        let ordered = CandidateList {
            sequence: Some(7),
            ..list.clone()
        };
        let reopened = CandidateList::open(&keys, &ordered.seal(&keys).unwrap(), "gc/x").unwrap();
        assert_eq!(reopened.sequence, Some(7));
        assert!(crate::format::IndexFile::open(&keys, &sealed, "gc/x").is_err());
    }
}
