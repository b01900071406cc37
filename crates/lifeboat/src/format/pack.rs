//! Packs: blobs back to back, then a sealed header listing them.

use sha2::{Digest, Sha256};

use super::{seal_blob, BlobLocation, FormatError, PACK_TARGET_SIZE};
use crate::crypto::{Keys, Role, SEAL_OVERHEAD};
use crate::ids::{ChunkId, PackId};

const HEADER_ENTRY_LEN: usize = 32 + 4 + 4;

/// One line of a pack header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackHeaderEntry {
    pub id: ChunkId,
    pub length: u32,
    pub raw_length: u32,
}

/// A pack being filled. Not shared between threads: each worker fills its own.
#[derive(Default)]
pub struct PackBuilder {
    data: Vec<u8>,
    entries: Vec<PackHeaderEntry>,
}

/// A finished pack: its bytes, its content address, where its blobs are.
#[derive(Debug)]
pub struct SealedPack {
    pub id: PackId,
    pub bytes: Vec<u8>,
    pub blobs: Vec<BlobLocation>,
}

impl PackBuilder {
    pub fn new() -> Self {
        Self {
            data: Vec::with_capacity(PACK_TARGET_SIZE + (1 << 20)),
            entries: Vec::new(),
        }
    }

    /// Compresses, seals and appends one chunk.
    pub fn add_chunk(
        &mut self,
        keys: &Keys,
        id: &ChunkId,
        plaintext: &[u8],
        compressor: &mut zstd::bulk::Compressor<'_>,
        scratch: &mut Vec<u8>,
    ) -> Result<(), FormatError> {
        let length = seal_blob(keys, id, plaintext, compressor, scratch, &mut self.data)?;
        self.entries.push(PackHeaderEntry {
            id: *id,
            length: length as u32,
            raw_length: plaintext.len() as u32,
        });
        Ok(())
    }

    /// Appends a blob sealed elsewhere (by another worker's builder).
    pub fn push_sealed(&mut self, entry: PackHeaderEntry, blob: &[u8]) {
        self.data.extend_from_slice(blob);
        self.entries.push(entry);
    }

    /// The blobs so far, with their header entries.
    pub fn blobs(&self) -> impl Iterator<Item = (PackHeaderEntry, &[u8])> {
        let mut offset = 0usize;
        self.entries.iter().map(move |entry| {
            let blob = &self.data[offset..offset + entry.length as usize];
            offset += entry.length as usize;
            (*entry, blob)
        })
    }

    /// Bytes of blobs so far.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the pack has reached its target size and should be closed.
    pub fn is_full(&self) -> bool {
        self.data.len() >= PACK_TARGET_SIZE
    }

    /// Closes the pack: appends the sealed header and its length, names it.
    pub fn finish(mut self, keys: &Keys) -> Result<SealedPack, FormatError> {
        let mut header = Vec::with_capacity(self.entries.len() * HEADER_ENTRY_LEN);
        let mut blobs = Vec::with_capacity(self.entries.len());
        let mut offset = 0u32;
        for entry in &self.entries {
            header.extend_from_slice(&entry.id.0);
            header.extend_from_slice(&entry.length.to_le_bytes());
            header.extend_from_slice(&entry.raw_length.to_le_bytes());
            blobs.push(BlobLocation {
                id: entry.id,
                offset,
                length: entry.length,
                raw_length: entry.raw_length,
            });
            offset += entry.length;
        }
        let before = self.data.len();
        keys.seal_into(Role::PackHeader, &header, &mut self.data)?;
        let header_len = (self.data.len() - before) as u32;
        self.data.extend_from_slice(&header_len.to_le_bytes());
        let id = PackId(Sha256::digest(&self.data).into());
        Ok(SealedPack {
            id,
            bytes: self.data,
            blobs,
        })
    }
}

/// Reads the blob list from a whole pack's bytes (used to rebuild an index
/// and by deep verification). `what` names the pack in errors.
pub fn read_pack_header(keys: &Keys, pack: &[u8], what: &str) -> Result<Vec<BlobLocation>, FormatError> {
    let Some(len_at) = pack.len().checked_sub(4) else {
        return Err(FormatError::invalid(what, "shorter than its header length field"));
    };
    let header_len = u32::from_le_bytes([pack[len_at], pack[len_at + 1], pack[len_at + 2], pack[len_at + 3]]) as usize;
    if header_len < SEAL_OVERHEAD || header_len > len_at {
        return Err(FormatError::invalid(
            what,
            format!("header length {header_len} does not fit a {} byte pack", pack.len()),
        ));
    }
    let header_at = len_at - header_len;
    let header = keys.open(Role::PackHeader, &pack[header_at..len_at], &format!("header of {what}"))?;
    if header.len() % HEADER_ENTRY_LEN != 0 {
        return Err(FormatError::invalid(what, "header is not a whole number of entries"));
    }
    let mut blobs = Vec::with_capacity(header.len() / HEADER_ENTRY_LEN);
    let mut offset = 0usize;
    for entry in header.chunks_exact(HEADER_ENTRY_LEN) {
        let mut id = [0u8; 32];
        id.copy_from_slice(&entry[..32]);
        let length = u32::from_le_bytes([entry[32], entry[33], entry[34], entry[35]]);
        let raw_length = u32::from_le_bytes([entry[36], entry[37], entry[38], entry[39]]);
        blobs.push(BlobLocation {
            id: ChunkId(id),
            offset: offset as u32,
            length,
            raw_length,
        });
        offset += length as usize;
    }
    if offset != header_at {
        return Err(FormatError::invalid(
            what,
            format!("blobs end at {offset} but the header starts at {header_at}"),
        ));
    }
    Ok(blobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KEY_MATERIAL_LEN;
    use crate::format::open_blob;

    fn build(keys: &Keys, chunks: &[&[u8]]) -> SealedPack {
        let mut pack = PackBuilder::new();
        let mut compressor = zstd::bulk::Compressor::new(1).unwrap();
        for chunk in chunks {
            pack.add_chunk(keys, &keys.chunk_id(chunk), chunk, &mut compressor, &mut Vec::new())
                .unwrap();
        }
        pack.finish(keys).unwrap()
    }

    #[test]
    fn header_lists_every_blob_where_it_is() {
        let keys = Keys::from_material(&[4; KEY_MATERIAL_LEN]).unwrap();
        let chunks: [&[u8]; 3] = [b"alpha", &[0u8; 10_000], b"gamma"];
        let pack = build(&keys, &chunks);
        assert_eq!(pack.id, PackId(Sha256::digest(&pack.bytes).into()));
        let blobs = read_pack_header(&keys, &pack.bytes, "pack").unwrap();
        assert_eq!(blobs, pack.blobs);
        for (blob, chunk) in blobs.iter().zip(chunks) {
            let sealed = &pack.bytes[blob.offset as usize..(blob.offset + blob.length) as usize];
            assert_eq!(
                open_blob(&keys, &blob.id, sealed, blob.raw_length as usize).unwrap(),
                chunk
            );
        }
    }

    #[test]
    fn blobs_move_between_builders_unchanged() {
        let keys = Keys::from_material(&[4; KEY_MATERIAL_LEN]).unwrap();
        let mut compressor = zstd::bulk::Compressor::new(1).unwrap();
        let mut first = PackBuilder::new();
        for chunk in [b"one".as_slice(), b"two"] {
            first
                .add_chunk(&keys, &keys.chunk_id(chunk), chunk, &mut compressor, &mut Vec::new())
                .unwrap();
        }
        let mut merged = PackBuilder::new();
        for (entry, blob) in first.blobs() {
            merged.push_sealed(entry, blob);
        }
        let pack = merged.finish(&keys).unwrap();
        let blobs = read_pack_header(&keys, &pack.bytes, "merged").unwrap();
        assert_eq!(blobs.len(), 2);
        let sealed = &pack.bytes[blobs[1].offset as usize..(blobs[1].offset + blobs[1].length) as usize];
        assert_eq!(open_blob(&keys, &blobs[1].id, sealed, 3).unwrap(), b"two");
    }

    #[test]
    fn truncated_or_altered_packs_are_rejected() {
        let keys = Keys::from_material(&[4; KEY_MATERIAL_LEN]).unwrap();
        let pack = build(&keys, &[b"alpha", b"beta"]);
        for bad in [&pack.bytes[..pack.bytes.len() - 1], &pack.bytes[..3], &pack.bytes[1..]] {
            assert!(read_pack_header(&keys, bad, "pack p").is_err());
        }
        let mut flipped = pack.bytes.clone();
        let last = flipped.len() - 10;
        flipped[last] ^= 0x40;
        assert!(read_pack_header(&keys, &flipped, "pack p").is_err());
    }
}
