//! Index objects: which pack holds which chunk.

use serde::{Deserialize, Serialize};

use super::{compress_json, decompress_json, FormatError, FORMAT_VERSION};
use crate::crypto::{Keys, Role};
use crate::ids::{ChunkId, PackId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobLocation {
    pub id: ChunkId,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    pub id: PackId,
    pub size: u64,
    pub blobs: Vec<BlobLocation>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    pub version: u32,
    pub packs: Vec<IndexPack>,
}

impl IndexFile {
    pub fn new(packs: Vec<IndexPack>) -> Self {
        Self {
            version: FORMAT_VERSION,
            packs,
        }
    }

    pub fn seal(&self, keys: &Keys) -> Result<Vec<u8>, FormatError> {
        Ok(keys.seal(Role::Index, &compress_json(self))?)
    }

    pub fn open(keys: &Keys, sealed: &[u8], what: &str) -> Result<Self, FormatError> {
        let index: Self = decompress_json(&keys.open(Role::Index, sealed, what)?, what)?;
        if index.version != FORMAT_VERSION {
            return Err(FormatError::Version {
                what: what.to_owned(),
                found: index.version,
            });
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KEY_MATERIAL_LEN;

    #[test]
    fn index_round_trips_sealed() {
        let keys = Keys::from_material(&[5; KEY_MATERIAL_LEN]).unwrap();
        let index = IndexFile::new(vec![IndexPack {
            id: PackId([1; 32]),
            size: 99,
            blobs: vec![BlobLocation {
                id: ChunkId([2; 32]),
                offset: 0,
                length: 40,
                raw_length: 11,
            }],
        }]);
        let sealed = index.seal(&keys).unwrap();
        assert_eq!(IndexFile::open(&keys, &sealed, "index i").unwrap(), index);
        let other = Keys::from_material(&[6; KEY_MATERIAL_LEN]).unwrap();
        assert!(IndexFile::open(&other, &sealed, "index i").is_err());
    }
}
