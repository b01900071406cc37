//! The `config` object: plain JSON, the only unencrypted object of a store.
//!
//! Invariant: a config is used only once every numeric parameter is inside
//! the range FORMAT.md ("Config") states (so a tampered chunker size can
//! neither trip fastcdc's assertions nor make a worker allocate gigabytes),
//! and, when it carries a `mac`, once that MAC verifies under the store's
//! data key (so an edited parameter is refused even inside its range).

use std::ops::RangeInclusive;

use base64::Engine;
use fastcdc::v2020::{AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN};
use serde::{Deserialize, Serialize};

use super::FormatError;
use crate::crypto::{Keys, Role};

/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The largest `config` object read; a real one is under 1 KiB.
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024;
/// The largest chunk a store can cut (fastcdc's own upper bound on `max`).
pub const MAX_CHUNK_BYTES: u32 = MAXIMUM_MAX;

/// The allowed ranges of the numeric parameters (FORMAT.md, "Config").
const CHUNK_MIN_RANGE: RangeInclusive<u32> = MINIMUM_MIN..=MINIMUM_MAX;
const CHUNK_AVG_RANGE: RangeInclusive<u32> = AVERAGE_MIN..=AVERAGE_MAX;
const CHUNK_MAX_RANGE: RangeInclusive<u32> = MAXIMUM_MIN..=MAXIMUM_MAX;
const PACK_SIZE_RANGE: RangeInclusive<u64> = (1 << 20)..=(128 << 20);
/// zstd's ordinary levels; the "ultra" levels 20..=22 need hundreds of MiB
/// per worker, and Lifeboat writes level 1.
const ZSTD_LEVEL_RANGE: RangeInclusive<i32> = 1..=19;
/// Longest text fields: a store id, a KMS key ARN, a wrapped key (KMS
/// ciphertexts are at most 6 KiB, 8 KiB in base64), a timestamp.
const MAX_STORE_ID_LEN: usize = 64;
const MAX_KMS_KEY_ID_LEN: usize = 2048;
const MAX_WRAPPED_KEY_LEN: usize = 8192;
const MAX_CREATED_AT_LEN: usize = 64;

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
    /// Base64 of a GCM nonce and tag (28 bytes) authenticating the
    /// parameters under the data key (FORMAT.md, "Config"); absent in stores
    /// created before it existed, added by `lifeboat init`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
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
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(FormatError::invalid(
                what,
                format!("it is {} bytes, more than a config's {MAX_CONFIG_BYTES}", bytes.len()),
            ));
        }
        let config: Self = serde_json::from_slice(bytes).map_err(|e| FormatError::invalid(what, e))?;
        config.validate(what)?;
        Ok(config)
    }

    /// Checks every parameter against its documented range; the error
    /// names the field, its value and what is allowed.
    pub fn validate(&self, what: &str) -> Result<(), FormatError> {
        let out_of_range = |field: &str, value: &dyn std::fmt::Display, allowed: String| {
            FormatError::invalid(
                what,
                format!("{field} is {value}, outside the allowed {allowed}: the config was edited or damaged"),
            )
        };
        let c = self.chunker;
        for (field, value, range) in [
            ("chunker.min", c.min, CHUNK_MIN_RANGE),
            ("chunker.avg", c.avg, CHUNK_AVG_RANGE),
            ("chunker.max", c.max, CHUNK_MAX_RANGE),
        ] {
            if !range.contains(&value) {
                return Err(out_of_range(
                    field,
                    &value,
                    format!("{}..={}", range.start(), range.end()),
                ));
            }
        }
        if !(c.min <= c.avg && c.avg <= c.max) {
            return Err(FormatError::invalid(
                what,
                format!("chunker sizes {c:?} are not min <= avg <= max"),
            ));
        }
        if !PACK_SIZE_RANGE.contains(&self.pack_size) {
            let allowed = format!("{}..={}", PACK_SIZE_RANGE.start(), PACK_SIZE_RANGE.end());
            return Err(out_of_range("packSize", &self.pack_size, allowed));
        }
        if self.compression.algorithm != "zstd" {
            return Err(FormatError::invalid(
                what,
                format!("unknown compression {:?}", self.compression.algorithm),
            ));
        }
        if !ZSTD_LEVEL_RANGE.contains(&self.compression.level) {
            let allowed = format!("{}..={}", ZSTD_LEVEL_RANGE.start(), ZSTD_LEVEL_RANGE.end());
            return Err(out_of_range("compression.level", &self.compression.level, allowed));
        }
        let id_ok = self.store_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if self.store_id.is_empty() || self.store_id.len() > MAX_STORE_ID_LEN || !id_ok {
            return Err(FormatError::invalid(
                what,
                format!("storeId is not 1 to {MAX_STORE_ID_LEN} letters, digits or '-'"),
            ));
        }
        for (field, value, most) in [
            ("kmsKeyId", &self.kms_key_id, MAX_KMS_KEY_ID_LEN),
            ("wrappedKey", &self.wrapped_key, MAX_WRAPPED_KEY_LEN),
            ("createdAt", &self.created_at, MAX_CREATED_AT_LEN),
        ] {
            if value.len() > most {
                return Err(FormatError::invalid(
                    what,
                    format!("{field} is {} bytes long, more than the {most} allowed", value.len()),
                ));
            }
        }
        Ok(())
    }

    /// The bytes the MAC covers (FORMAT.md, "Config"): every parameter but
    /// the key fields, which KMS authenticates itself (the wrapped key is
    /// bound to `storeId` by its encryption context).
    fn authenticated_parameters(&self) -> Vec<u8> {
        let text = |out: &mut Vec<u8>, value: &str| {
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value.as_bytes());
        };
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&self.version.to_le_bytes());
        text(&mut out, &self.store_id);
        text(&mut out, &self.created_at);
        for size in [self.chunker.min, self.chunker.avg, self.chunker.max] {
            out.extend_from_slice(&size.to_le_bytes());
        }
        text(&mut out, &self.compression.algorithm);
        out.extend_from_slice(&self.compression.level.to_le_bytes());
        out.extend_from_slice(&self.pack_size.to_le_bytes());
        out
    }

    /// Sets `mac` to the parameters' MAC under `keys`.
    pub fn authenticate(&mut self, keys: &Keys) -> Result<(), FormatError> {
        let sealed = keys.seal(Role::Config(&self.authenticated_parameters()), b"")?;
        self.mac = Some(base64::engine::general_purpose::STANDARD.encode(sealed));
        Ok(())
    }

    /// Checks `mac` under `keys`: `Ok(true)` when it verifies, `Ok(false)`
    /// when the config has none (a store from before MACs), an error when
    /// it does not verify.
    pub fn check_mac(&self, keys: &Keys, what: &str) -> Result<bool, FormatError> {
        let Some(mac) = &self.mac else {
            return Ok(false);
        };
        let refused = || {
            FormatError::invalid(
                what,
                "its parameters fail authentication under the store's key: the config was edited or \
                 replaced; put back the config the store was created with (its parameters never change)",
            )
        };
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(mac)
            .map_err(|_| refused())?;
        let opened = keys
            .open(Role::Config(&self.authenticated_parameters()), &sealed, what)
            .map_err(|_| refused())?;
        if !opened.is_empty() {
            return Err(refused());
        }
        Ok(true)
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
            mac: None,
        }
    }

    fn with(edit: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
        let mut value = serde_json::to_value(sample()).unwrap();
        edit(&mut value);
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn tampered_parameters_outside_their_range_are_named() {
        let cases: [(&str, serde_json::Value, &str); 8] = [
            (
                "/chunker/min",
                0.into(),
                "chunker.min is 0, outside the allowed 64..=1048576",
            ),
            (
                "/chunker/avg",
                1.into(),
                "chunker.avg is 1, outside the allowed 256..=4194304",
            ),
            (
                "/chunker/max",
                u32::MAX.into(),
                "chunker.max is 4294967295, outside the allowed 1024..=16777216",
            ),
            (
                "/packSize",
                0.into(),
                "packSize is 0, outside the allowed 1048576..=134217728",
            ),
            (
                "/packSize",
                u64::MAX.into(),
                "packSize is 18446744073709551615, outside",
            ),
            (
                "/compression/level",
                22.into(),
                "compression.level is 22, outside the allowed 1..=19",
            ),
            ("/compression/level", (-5).into(), "compression.level is -5, outside"),
            ("/storeId", "../x".into(), "storeId is not 1 to 64 letters"),
        ];
        for (pointer, value, expected) in cases {
            let json = with(|v| *v.pointer_mut(pointer).unwrap() = value.clone());
            let err = StoreConfig::from_json(&json, "s3://b/config").unwrap_err();
            assert!(err.to_string().contains(expected), "{pointer}: {err}");
            assert!(err.to_string().starts_with("s3://b/config is not valid"), "{err}");
        }
        let inverted = with(|v| {
            *v.pointer_mut("/chunker/min").unwrap() = (1 << 20).into();
            *v.pointer_mut("/chunker/avg").unwrap() = (512 << 10).into();
        });
        assert!(StoreConfig::from_json(&inverted, "c")
            .unwrap_err()
            .to_string()
            .contains("not min <= avg <= max"));
    }

    #[test]
    fn an_oversized_config_is_refused_unparsed() {
        let mut json = sample().to_json();
        json.extend(std::iter::repeat_n(b' ', MAX_CONFIG_BYTES as usize));
        let err = StoreConfig::from_json(&json, "c").unwrap_err();
        assert!(err.to_string().contains("more than a config's 65536"), "{err}");
    }

    #[test]
    fn the_mac_binds_every_parameter_to_the_stores_key() {
        let keys = Keys::from_material(&[7; crate::crypto::KEY_MATERIAL_LEN]).unwrap();
        let mut config = sample();
        assert!(!config.check_mac(&keys, "c").unwrap(), "no MAC yet: a legacy store");
        config.authenticate(&keys).unwrap();
        let json = config.to_json();
        let read = StoreConfig::from_json(&json, "c").unwrap();
        assert!(read.check_mac(&keys, "c").unwrap());
        let other = Keys::from_material(&[8; crate::crypto::KEY_MATERIAL_LEN]).unwrap();
        assert!(read.check_mac(&other, "c").is_err());
        let edits: [(&str, serde_json::Value); 6] = [
            ("/chunker/min", 128.into()),
            ("/chunker/avg", (512 << 10).into()),
            ("/chunker/max", (8 << 20).into()),
            ("/packSize", (2 << 20).into()),
            ("/compression/level", 3.into()),
            ("/mac", "AAAA".into()),
        ];
        for (pointer, value) in edits {
            let mut value_json: serde_json::Value = serde_json::from_slice(&json).unwrap();
            *value_json.pointer_mut(pointer).unwrap() = value;
            let edited = StoreConfig::from_json(&serde_json::to_vec(&value_json).unwrap(), "s3://b/config").unwrap();
            let err = edited.check_mac(&keys, "s3://b/config").unwrap_err();
            assert!(err.to_string().contains("fail authentication"), "{pointer}: {err}");
        }
        let mut rewrapped = read.clone();
        rewrapped.kms_key_id = "arn:aws:kms:us-east-1:123456789012:key/other".into();
        rewrapped.wrapped_key = "BBBB".into();
        assert!(rewrapped.check_mac(&keys, "c").unwrap(), "rewrap keeps the MAC valid");
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
