//! Keys and sealed boxes: AES-256-GCM for everything stored, keyed BLAKE3 for
//! chunk ids. FORMAT.md, "Keys" and "Sealed box", is the specification.
//!
//! Key material is wiped when dropped: the id key is held in `Zeroizing`;
//! the data key lives only inside aws-lc's AEAD context, which aws-lc
//! cleanses (`OPENSSL_free` zeroes every allocation) when `LessSafeKey` is
//! dropped. Neither key appears in `Debug` output.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use zeroize::Zeroizing;

use crate::ids::ChunkId;

/// Bytes of key material a store's KMS data key holds: data key, then id key.
pub const KEY_MATERIAL_LEN: usize = 64;
/// Bytes a sealed box adds to its plaintext (nonce and tag).
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("key material must be {KEY_MATERIAL_LEN} bytes, KMS returned {0}")]
    KeyLength(usize),
    #[error("{0} failed authentication: it was altered, truncated, or encrypted under another store's key")]
    Authentication(String),
    #[error("{0} is too short ({1} bytes) to be a sealed box")]
    TooShort(String, usize),
    #[error("the operating system's random number generator failed")]
    Random,
}

/// The roles a sealed box can have; each binds a different AAD (FORMAT.md).
#[derive(Clone, Copy, Debug)]
pub enum Role<'a> {
    Blob(&'a ChunkId),
    PackHeader,
    Index,
    Manifest(&'a str),
    GcCandidates,
    /// The store config's parameters (FORMAT.md, "Config"), sealed with an
    /// empty plaintext: a MAC over them.
    Config(&'a [u8]),
}

impl Role<'_> {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Role::Blob(id) => [b"lifeboat.blob.v1".as_slice(), &id.0].concat(),
            Role::PackHeader => b"lifeboat.pack-header.v1".to_vec(),
            Role::Index => b"lifeboat.index.v1".to_vec(),
            Role::GcCandidates => b"lifeboat.gc-candidates.v1".to_vec(),
            Role::Manifest(backup) => [b"lifeboat.manifest.v1".as_slice(), backup.as_bytes()].concat(),
            Role::Config(parameters) => [b"lifeboat.config.v1".as_slice(), parameters].concat(),
        }
    }
}

/// A store's two keys, unwrapped. Never stored in plaintext.
pub struct Keys {
    data: LessSafeKey,
    id: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    /// Splits KMS key material: bytes 0..32 data key, 32..64 id key.
    pub fn from_material(material: &[u8]) -> Result<Self, CryptoError> {
        if material.len() != KEY_MATERIAL_LEN {
            return Err(CryptoError::KeyLength(material.len()));
        }
        let unbound =
            UnboundKey::new(&AES_256_GCM, &material[..32]).map_err(|_| CryptoError::KeyLength(material.len()))?;
        let mut id = Zeroizing::new([0u8; 32]);
        id.copy_from_slice(&material[32..]);
        Ok(Self {
            data: LessSafeKey::new(unbound),
            id,
        })
    }

    /// The keyed BLAKE3 id of a chunk's plaintext.
    pub fn chunk_id(&self, plaintext: &[u8]) -> ChunkId {
        ChunkId(*blake3::keyed_hash(&self.id, plaintext).as_bytes())
    }

    /// `nonce || ciphertext || tag` of `plaintext` (FORMAT.md, "Sealed box").
    pub fn seal(&self, aad: Role<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        self.seal_into(aad, plaintext, &mut out)?;
        Ok(out)
    }

    /// Appends the sealed box of `plaintext` to `out`.
    pub fn seal_into(&self, aad: Role<'_>, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        out.reserve(plaintext.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = self
            .data
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.bytes()),
                &mut out[start..],
            )
            .map_err(|_| CryptoError::Random)?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens a sealed box; `what` names the object in the error.
    pub fn open(&self, aad: Role<'_>, sealed: &[u8], what: &str) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(CryptoError::TooShort(what.to_owned(), sealed.len()));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[..NONCE_LEN]);
        let mut buffer = sealed[NONCE_LEN..].to_vec();
        let plain_len = self
            .data
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad.bytes()), &mut buffer)
            .map_err(|_| CryptoError::Authentication(what.to_owned()))?
            .len();
        buffer.truncate(plain_len);
        Ok(buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(seed: u8) -> Keys {
        Keys::from_material(&[seed; KEY_MATERIAL_LEN]).unwrap()
    }

    #[test]
    fn seal_then_open_round_trips() {
        let k = keys(1);
        let sealed = k.seal(Role::Index, b"hello").unwrap();
        assert_eq!(sealed.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(k.open(Role::Index, &sealed, "index x").unwrap(), b"hello");
    }

    #[test]
    fn open_rejects_tampering_wrong_role_and_wrong_key() {
        let k = keys(1);
        let sealed = k.seal(Role::Manifest("bk-a"), b"secret entries").unwrap();
        let mut flipped = sealed.clone();
        flipped[15] ^= 1;
        for (aad, bytes, key) in [
            (Role::Manifest("bk-a"), &flipped, &k),
            (Role::Manifest("bk-b"), &sealed, &k),
            (Role::Index, &sealed, &k),
            (Role::Manifest("bk-a"), &sealed, &keys(2)),
        ] {
            let err = key.open(aad, bytes, "manifest bk-a").unwrap_err();
            assert!(
                matches!(err, CryptoError::Authentication(ref w) if w == "manifest bk-a"),
                "{err}"
            );
        }
        assert!(matches!(
            k.open(Role::Index, &sealed[..10], "x"),
            Err(CryptoError::TooShort(..))
        ));
    }

    #[test]
    fn nonces_differ_between_seals() {
        let k = keys(3);
        assert_ne!(
            k.seal(Role::Index, b"same").unwrap(),
            k.seal(Role::Index, b"same").unwrap()
        );
    }

    #[test]
    fn chunk_ids_are_keyed() {
        assert_eq!(keys(1).chunk_id(b"abc"), keys(1).chunk_id(b"abc"));
        assert_ne!(keys(1).chunk_id(b"abc"), keys(2).chunk_id(b"abc"));
        assert_ne!(keys(1).chunk_id(b"abc").0, *blake3::hash(b"abc").as_bytes());
    }

    #[test]
    fn debug_output_shows_no_key_material() {
        let k = Keys::from_material(&[0xab; KEY_MATERIAL_LEN]).unwrap();
        let shown = format!("{k:?} {k:#?}");
        assert_eq!(shown, "Keys(..) Keys(..)");
    }

    #[test]
    fn the_config_role_binds_its_parameters() {
        let k = keys(1);
        let mac = k.seal(Role::Config(b"params"), b"").unwrap();
        assert_eq!(mac.len(), SEAL_OVERHEAD);
        assert!(k.open(Role::Config(b"params"), &mac, "config").unwrap().is_empty());
        assert!(k.open(Role::Config(b"paramz"), &mac, "config").is_err());
    }

    #[test]
    fn material_of_wrong_length_is_refused() {
        assert!(matches!(Keys::from_material(&[0; 32]), Err(CryptoError::KeyLength(32))));
    }
}
