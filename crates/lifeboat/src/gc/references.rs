//! What garbage collection must keep: the backups of this store (by store
//! identity, never by a location string) and every chunk their manifests
//! reference, checked against the index before anything is decided.

use std::collections::HashSet;

use serde::Serialize;

use super::GcError;
use crate::catalog::{BackupRecord, BackupStatus, Catalog};
use crate::ids::ChunkId;
use crate::repo::{Attribution, Index, RepoError, Repository};
use crate::storage::StorageError;

/// A backup of this store that references chunks no index object lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MissingChunks {
    pub backup_id: String,
    /// Distinct chunks of the backup that are in no index.
    pub chunks: u64,
}

/// "bk-a (3 chunks), bk-b (1 chunk)", for messages.
pub fn missing_text(missing: &[MissingChunks]) -> String {
    missing
        .iter()
        .map(|m| {
            format!(
                "{} ({} chunk{})",
                m.backup_id,
                m.chunks,
                if m.chunks == 1 { "" } else { "s" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The chunks this store's completed backups reference, and, by backup,
/// those the index read with them does not list.
#[derive(Debug, Default)]
pub struct References {
    pub chunks: HashSet<ChunkId>,
    unindexed: Vec<(String, HashSet<ChunkId>)>,
}

impl References {
    /// The backups with referenced chunks that `index` does not list.
    pub fn missing_from(&self, index: &Index) -> Vec<MissingChunks> {
        self.unindexed
            .iter()
            .filter_map(|(id, chunks)| {
                let missing = chunks.iter().filter(|c| !index.chunks.contains_key(c)).count() as u64;
                (missing > 0).then(|| MissingChunks {
                    backup_id: id.clone(),
                    chunks: missing,
                })
            })
            .collect()
    }

    /// Whether the index read with the manifests lacked any referenced chunk.
    pub fn any_unindexed(&self) -> bool {
        !self.unindexed.is_empty()
    }
}

/// The records of the backups this store holds. A record carries its
/// store's id; a record older than store ids is attributed by its canonical
/// location, and one that cannot be attributed with certainty counts as
/// this store's whenever that is the safe side: unfinished (it blocks
/// sweeps) or completed with a manifest in this store (its chunks are kept).
/// A completed one whose manifest this store does not have holds nothing
/// here to keep.
pub async fn store_backups(repo: &Repository, catalog: &Catalog) -> Result<Vec<BackupRecord>, GcError> {
    let mut ours = Vec::new();
    for record in catalog.list(None).await? {
        let keep = match repo.attribute(&record).await {
            Attribution::Ours => true,
            Attribution::Other => false,
            Attribution::Uncertain => match record.status {
                BackupStatus::Pending | BackupStatus::InProgress => true,
                BackupStatus::Completed => repo.has_manifest(&record.id).await?,
                BackupStatus::Failed | BackupStatus::Deleted => false,
            },
        };
        if keep {
            ours.push(record);
        }
    }
    Ok(ours)
}

/// Every chunk a completed backup among `records` references, with the
/// chunks `index` does not list. Any manifest that cannot be read stops
/// garbage collection: deciding on partial knowledge could delete live data.
/// One exception, which loses nothing: a manifest that is gone because
/// retention expired its backup after the records were read (retention
/// marks the record `deleted` before it deletes the manifest, so a
/// consistent read of the record then says so).
pub async fn referenced_chunks(
    repo: &Repository,
    catalog: &Catalog,
    records: &[BackupRecord],
    index: &Index,
) -> Result<References, GcError> {
    let mut references = References::default();
    for record in records.iter().filter(|r| r.status == BackupStatus::Completed) {
        let manifest = match repo.get_manifest(&record.id, record.checksum.as_deref()).await {
            Ok(manifest) => manifest,
            Err(RepoError::Storage(StorageError::NotFound(_))) if expired_meanwhile(catalog, &record.id).await? => {
                continue
            }
            Err(error) => {
                return Err(GcError::UnreadableManifest {
                    id: record.id.clone(),
                    error,
                })
            }
        };
        let mut missing = HashSet::new();
        for chunk in manifest.entries.into_iter().flat_map(|e| e.chunks) {
            if !index.chunks.contains_key(&chunk) {
                missing.insert(chunk);
            }
            references.chunks.insert(chunk);
        }
        if !missing.is_empty() {
            references.unindexed.push((record.id.clone(), missing));
        }
    }
    Ok(references)
}

/// Whether a backup read as completed is no longer (retention expired it
/// meanwhile): its manifest may be gone without loss.
async fn expired_meanwhile(catalog: &Catalog, id: &str) -> Result<bool, GcError> {
    Ok(catalog.get(id).await?.status != BackupStatus::Completed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PackId;
    use crate::repo::ChunkLocation;

    fn index_of(chunks: &[u8]) -> Index {
        let mut index = Index::default();
        for c in chunks {
            index.chunks.insert(
                ChunkId([*c; 32]),
                ChunkLocation {
                    pack: PackId([0; 32]),
                    offset: 0,
                    length: 1,
                    raw_length: 1,
                },
            );
        }
        index
    }

    #[test]
    fn chunks_missing_from_the_index_are_counted_by_backup_until_an_index_lists_them() {
        let chunks = |ids: &[u8]| ids.iter().map(|c| ChunkId([*c; 32])).collect::<HashSet<_>>();
        let references = References {
            chunks: chunks(&[1, 2, 3, 4]),
            unindexed: vec![("bk-a".into(), chunks(&[2, 3])), ("bk-b".into(), chunks(&[4]))],
        };
        assert!(references.any_unindexed());
        let lost = references.missing_from(&index_of(&[1]));
        assert_eq!(
            missing_text(&lost),
            "bk-a (2 chunks), bk-b (1 chunk)",
            "each backup named with its count"
        );
        // A fresh index lists bk-b's chunk (a backup completed meanwhile).
        let fresh = references.missing_from(&index_of(&[1, 4]));
        assert_eq!(
            fresh,
            vec![MissingChunks {
                backup_id: "bk-a".into(),
                chunks: 2
            }]
        );
        assert!(references.missing_from(&index_of(&[1, 2, 3, 4])).is_empty());
    }
}
