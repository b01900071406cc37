//! Identifiers: newtypes so a chunk id is never mistaken for a pack id.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! hash_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// Lower-case hex, as used in object keys and JSON.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses 64 hex digits.
            pub fn from_hex(text: &str) -> Option<Self> {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(text, &mut bytes).ok()?;
                Some(Self(bytes))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &self.to_hex()[..12])
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::from_hex(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "expected 64 hex digits for a {}, got {text:?}",
                        stringify!($name)
                    ))
                })
            }
        }
    };
}

hash_id!(
    /// Keyed BLAKE3 hash of a chunk's plaintext.
    ChunkId
);
hash_id!(
    /// SHA-256 of a pack object's bytes.
    PackId
);
hash_id!(
    /// SHA-256 of an index object's bytes.
    IndexId
);

/// A backup's id: `bk-YYYYMMDDTHHMMSSZ-XXXXXXXX`, sortable by creation time.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BackupId(pub String);

impl BackupId {
    /// A new id for a backup created at `at`, with 32 random bits.
    pub fn new(at: jiff::Timestamp) -> Self {
        let stamp = at.strftime("%Y%m%dT%H%M%SZ").to_string();
        Self(format!("bk-{stamp}-{:08x}", rand::random::<u32>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `text` has the shape of a backup id (used to tell an id from
    /// `latest` and to reject typos early).
    pub fn parse(text: &str) -> Option<Self> {
        let ok = text.len() == 28
            && text.starts_with("bk-")
            && text.as_bytes()[19] == b'-'
            && text[20..].bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| Self(text.to_owned()))
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_id_round_trips_through_parse() {
        let id = BackupId::new("2026-11-23T10:53:00Z".parse().unwrap());
        assert!(id.as_str().starts_with("bk-20261123T105300Z-"), "{id}");
        assert_eq!(BackupId::parse(id.as_str()), Some(id));
        assert_eq!(BackupId::parse("latest"), None);
        assert_eq!(BackupId::parse("bk-20261123T105300Z-zzzzzzzz"), None);
    }

    #[test]
    fn hash_ids_parse_hex_only() {
        let id = ChunkId([7; 32]);
        assert_eq!(ChunkId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(ChunkId::from_hex("07"), None);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<ChunkId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<ChunkId>("\"nothex\"").is_err());
    }
}
