//! The `config` object: plain JSON, the only unencrypted object of a store.

use serde::{Deserialize, Serialize};

use super::FormatError;

/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreConfig {
    pub version: u32,
    pub store_id: String,
    pub created_at: String,
    pub kms_key_id: String,
    /// Base64 of the KMS `CiphertextBlob` of the 64 bytes of key material.
    pub wrapped_key: String,
    pub chunker: ChunkerParams,
    pub compression: Compression,
    pub pack_size: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        Self {
            min: 256 * 1024,
            avg: 1024 * 1024,
            max: 4 * 1024 * 1024,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compression {
    pub algorithm: String,
    pub level: i32,
}

impl Default for Compression {
    fn default() -> Self {
        Self {
            algorithm: "zstd".to_owned(),
            level: 1,
        }
    }
}

impl StoreConfig {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parses and checks a `config` object; `what` names it in errors.
    pub fn from_json(bytes: &[u8], what: &str) -> Result<Self, FormatError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let version: VersionOnly = serde_json::from_slice(bytes).map_err(|e| FormatError::invalid(what, e))?;
        if version.version != FORMAT_VERSION {
            return Err(FormatError::Version {
                what: what.to_owned(),
                found: version.version,
            });
        }
        let config: Self = serde_json::from_slice(bytes).map_err(|e| FormatError::invalid(what, e))?;
        if config.compression.algorithm != "zstd" {
            return Err(FormatError::invalid(
                what,
                format!("unknown compression {:?}", config.compression.algorithm),
            ));
        }
        let c = config.chunker;
        if !(c.min <= c.avg && c.avg <= c.max && c.min >= 64) {
            return Err(FormatError::invalid(
                what,
                format!("chunker sizes {c:?} are not min <= avg <= max"),
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoreConfig {
        StoreConfig {
            version: FORMAT_VERSION,
            store_id: "00".repeat(16),
            created_at: "2026-11-23T10:53:00Z".into(),
            kms_key_id: "arn:aws:kms:us-east-1:123456789012:key/k".into(),
            wrapped_key: "AAAA".into(),
            chunker: ChunkerParams::default(),
            compression: Compression::default(),
            pack_size: 16 << 20,
        }
    }

    #[test]
    fn config_round_trips_and_uses_camel_case() {
        let json = sample().to_json();
        assert!(String::from_utf8_lossy(&json).contains("\"kmsKeyId\""));
        assert_eq!(StoreConfig::from_json(&json, "config").unwrap(), sample());
    }

    #[test]
    fn unknown_version_is_named() {
        let mut config = sample();
        config.version = 9;
        let err = StoreConfig::from_json(&config.to_json(), "s3://b/config").unwrap_err();
        assert!(err.to_string().contains("s3://b/config has format version 9"), "{err}");
    }

    #[test]
    fn garbage_is_invalid() {
        assert!(matches!(
            StoreConfig::from_json(b"<html>", "c"),
            Err(FormatError::Invalid { .. })
        ));
    }
}
