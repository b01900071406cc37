//! Blobs: one chunk, compressed if that helps, sealed under its id.

use super::config::MAX_CHUNK_BYTES;
use super::FormatError;
use crate::crypto::{Keys, Role};
use crate::ids::ChunkId;

const STORED: u8 = 0x00;
const ZSTD: u8 = 0x01;

/// Appends the blob of a chunk to `out` and returns the blob's length.
/// `compressor` is reused between calls (its context is the expensive part).
pub fn seal_blob(
    keys: &Keys,
    id: &ChunkId,
    plaintext: &[u8],
    compressor: &mut zstd::bulk::Compressor<'_>,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<usize, FormatError> {
    // Compress into `scratch` after the flag byte, with room for exactly the
    // plaintext's length: output that would not be smaller fails or is
    // discarded, and the chunk is stored as is.
    scratch.clear();
    scratch.resize(1 + plaintext.len(), 0);
    scratch[0] = ZSTD;
    let compressed = match compressor.compress_to_buffer(plaintext, &mut scratch[1..]) {
        Ok(n) if n < plaintext.len() => {
            scratch.truncate(1 + n);
            true
        }
        _ => false,
    };
    if !compressed {
        scratch.clear();
        scratch.push(STORED);
        scratch.extend_from_slice(plaintext);
    }
    let before = out.len();
    keys.seal_into(Role::Blob(id), scratch, out)?;
    Ok(out.len() - before)
}

/// Opens a blob, decompresses it and checks its content against its id.
/// `raw_length` (from the index or a pack header) is refused above the
/// largest chunk a store can cut before anything is allocated for it.
pub fn open_blob(keys: &Keys, id: &ChunkId, sealed: &[u8], raw_length: usize) -> Result<Vec<u8>, FormatError> {
    if raw_length > MAX_CHUNK_BYTES as usize {
        return Err(FormatError::invalid(
            format!("chunk {id}"),
            format!("its recorded length {raw_length} is above the largest chunk, {MAX_CHUNK_BYTES} bytes"),
        ));
    }
    let payload = keys.open(Role::Blob(id), sealed, &format!("chunk {id}"))?;
    let plaintext = match payload.split_first() {
        Some((&STORED, body)) => body.to_vec(),
        Some((&ZSTD, body)) => {
            zstd::bulk::decompress(body, raw_length).map_err(|e| FormatError::invalid(format!("chunk {id}"), e))?
        }
        Some((flag, _)) => {
            return Err(FormatError::invalid(
                format!("chunk {id}"),
                format!("unknown flag {flag:#04x}"),
            ))
        }
        None => return Err(FormatError::invalid(format!("chunk {id}"), "empty payload")),
    };
    if plaintext.len() != raw_length || keys.chunk_id(&plaintext) != *id {
        return Err(FormatError::ChunkIdMismatch(*id));
    }
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KEY_MATERIAL_LEN;

    fn seal(keys: &Keys, data: &[u8]) -> (ChunkId, Vec<u8>) {
        let id = keys.chunk_id(data);
        let mut compressor = zstd::bulk::Compressor::new(1).unwrap();
        let mut out = Vec::new();
        let n = seal_blob(keys, &id, data, &mut compressor, &mut Vec::new(), &mut out).unwrap();
        assert_eq!(n, out.len());
        (id, out)
    }

    #[test]
    fn compressible_and_random_chunks_round_trip() {
        let keys = Keys::from_material(&[9; KEY_MATERIAL_LEN]).unwrap();
        let text = b"lifeboat ".repeat(10_000);
        let random: Vec<u8> = (0..50_000).map(|_| rand::random::<u8>()).collect();
        for (data, expect_compressed) in [(&text[..], true), (&random[..], false), (&b""[..], false)] {
            let (id, blob) = seal(&keys, data);
            assert_eq!(blob.len() < data.len(), expect_compressed, "len {}", data.len());
            assert_eq!(open_blob(&keys, &id, &blob, data.len()).unwrap(), data);
        }
    }

    #[test]
    fn a_huge_recorded_raw_length_is_refused_before_allocating() {
        let keys = Keys::from_material(&[9; KEY_MATERIAL_LEN]).unwrap();
        let (id, blob) = seal(&keys, &b"lifeboat ".repeat(100));
        let err = open_blob(&keys, &id, &blob, u32::MAX as usize).unwrap_err();
        assert!(err.to_string().contains("above the largest chunk"), "{err}");
    }

    #[test]
    fn a_blob_under_another_id_fails() {
        let keys = Keys::from_material(&[9; KEY_MATERIAL_LEN]).unwrap();
        let (_, blob) = seal(&keys, b"one");
        let other = keys.chunk_id(b"two");
        assert!(matches!(
            open_blob(&keys, &other, &blob, 3),
            Err(FormatError::Crypto(_))
        ));
    }
}
