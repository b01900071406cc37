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
    /// For a name that is not UTF-8, a display form: each byte that is not
    /// part of valid UTF-8 written `\xHH` (the exact name is `raw_path`).
    pub path: String,
    /// The exact bytes of a directory entry's path, in hex, when they are
    /// not UTF-8 (set only then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_path: Option<String>,
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
    /// A directory entry's inode change time (RFC 3339, nanoseconds) and
    /// inode number, for change detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode: Option<u64>,
    pub chunks: Vec<ChunkId>,
}

impl Entry {
    /// What tells two entries of one source apart: the path, or for a name
    /// that is not UTF-8 its exact bytes (a NUL first, which no path holds).
    pub fn identity(&self) -> String {
        entry_identity(&self.path, self.raw_path.as_deref())
    }

    /// The exact bytes of the entry's path.
    pub fn path_bytes(&self) -> Result<Vec<u8>, FormatError> {
        match &self.raw_path {
            None => Ok(self.path.as_bytes().to_vec()),
            Some(raw) => hex::decode(raw)
                .map_err(|e| FormatError::invalid(format!("rawPath of manifest entry {:?}", self.path), e)),
        }
    }
}

/// [`Entry::identity`] of a path and its raw bytes.
pub fn entry_identity(path: &str, raw_path: Option<&str>) -> String {
    match raw_path {
        None => path.to_owned(),
        Some(raw) => format!("\0{raw}"),
    }
}

/// A path's display form: UTF-8 as it is, every other byte as `\xHH`.
pub fn display_path(bytes: &[u8]) -> String {
    let mut shown = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        shown.push_str(chunk.valid());
        for byte in chunk.invalid() {
            shown.push_str(&format!("\\x{byte:02x}"));
        }
    }
    shown
}

/// An entry of the source that a backup could not read, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedEntry {
    pub path: String,
    pub reason: String,
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
    /// Entries of the source the backup could not read (a directory it may
    /// not list, a file that vanished or could not be opened).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedEntry>,
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
            skipped: vec![],
            entries: vec![Entry {
                path: "a.txt".into(),
                size: 3,
                sha256: "00".repeat(32),
                raw_path: None,
                mtime: None,
                mode: Some(0o644),
                etag: None,
                version_id: None,
                ctime: None,
                inode: None,
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
            raw_path: None,
            size,
            sha256: String::new(),
            mtime: None,
            mode: None,
            etag: None,
            version_id: None,
            ctime: None,
            inode: None,
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
            skipped: vec![],
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
