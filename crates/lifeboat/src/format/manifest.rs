//! Manifests: every entry of one backup, and its chunks.

use serde::{Deserialize, Serialize};

use super::{compress_json, decompress_json, FormatError, FORMAT_VERSION};
use crate::crypto::{Keys, Role};
use crate::ids::ChunkId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupType {
    /// Reads every entry.
    Full,
    /// Reads only what changed since the newest completed backup of the source.
    Incremental,
    /// Reads only what changed since the newest completed full backup.
    Differential,
}

impl BackupType {
    pub fn as_str(&self) -> &'static str {
        match self {
            BackupType::Full => "full",
            BackupType::Incremental => "incremental",
            BackupType::Differential => "differential",
        }
    }
}

impl std::str::FromStr for BackupType {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "full" => Ok(Self::Full),
            "incremental" => Ok(Self::Incremental),
            "differential" => Ok(Self::Differential),
            other => Err(format!(
                "unknown backup type {other:?}: use full, incremental or differential"
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub path: String,
    pub size: u64,
    /// Hex SHA-256 of the whole plaintext.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    pub chunks: Vec<ChunkId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub version: u32,
    pub backup_id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub backup_type: BackupType,
    pub parent_backup: Option<String>,
    pub created_at: String,
    pub entries: Vec<Entry>,
}

impl Manifest {
    pub fn seal(&self, keys: &Keys) -> Result<Vec<u8>, FormatError> {
        Ok(keys.seal(Role::Manifest(&self.backup_id), &compress_json(self))?)
    }

    /// Opens the manifest of `backup_id`; a manifest of another backup fails.
    pub fn open(keys: &Keys, backup_id: &str, sealed: &[u8]) -> Result<Self, FormatError> {
        let what = format!("manifest of {backup_id}");
        let manifest: Self = decompress_json(&keys.open(Role::Manifest(backup_id), sealed, &what)?, &what)?;
        if manifest.version != FORMAT_VERSION {
            return Err(FormatError::Version {
                what,
                found: manifest.version,
            });
        }
        Ok(manifest)
    }

    /// Total plaintext bytes of all entries (saturating: sizes come from a
    /// stored object, and a sum past `u64::MAX` must not panic).
    pub fn size(&self) -> u64 {
        self.entries.iter().fold(0u64, |sum, e| sum.saturating_add(e.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KEY_MATERIAL_LEN;

    #[test]
    fn manifest_is_bound_to_its_backup_id() {
        let keys = Keys::from_material(&[8; KEY_MATERIAL_LEN]).unwrap();
        let manifest = Manifest {
            version: FORMAT_VERSION,
            backup_id: "bk-a".into(),
            source: "s3://b/p/".into(),
            backup_type: BackupType::Full,
            parent_backup: None,
            created_at: "2026-11-23T10:53:00Z".into(),
            entries: vec![Entry {
                path: "a.txt".into(),
                size: 3,
                sha256: "00".repeat(32),
                mtime: None,
                mode: Some(0o644),
                etag: None,
                version_id: None,
                chunks: vec![ChunkId([3; 32])],
            }],
        };
        let sealed = manifest.seal(&keys).unwrap();
        assert_eq!(Manifest::open(&keys, "bk-a", &sealed).unwrap(), manifest);
        let err = Manifest::open(&keys, "bk-b", &sealed).unwrap_err();
        assert!(
            err.to_string().contains("manifest of bk-b failed authentication"),
            "{err}"
        );
    }

    #[test]
    fn manifest_size_saturates_instead_of_overflowing() {
        let entry = |size| Entry {
            path: "x".into(),
            size,
            sha256: String::new(),
            mtime: None,
            mode: None,
            etag: None,
            version_id: None,
            chunks: vec![],
        };
        let manifest = Manifest {
            version: FORMAT_VERSION,
            backup_id: "bk".into(),
            source: "s".into(),
            backup_type: BackupType::Full,
            parent_backup: None,
            created_at: String::new(),
            entries: vec![entry(u64::MAX), entry(2)],
        };
        assert_eq!(manifest.size(), u64::MAX);
    }

    #[test]
    fn backup_types_parse() {
        assert_eq!("differential".parse::<BackupType>(), Ok(BackupType::Differential));
        assert!("weekly"
            .parse::<BackupType>()
            .unwrap_err()
            .contains("use full, incremental or differential"));
    }
}
