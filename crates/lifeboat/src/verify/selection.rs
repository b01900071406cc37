//! Which backups a scheduled verification reads: the one asked for, or
//! the newest completed backup of each source asked for (by default every
//! source with a completed backup in the store).

use std::collections::BTreeSet;

use crate::catalog::{BackupRecord, BackupStatus, Catalog, CatalogError};
use crate::repo::Repository;

#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Sources asked for that have no completed backup in the store.
    #[error("no completed backup in {manifests} for source(s) {missing:?}")]
    NothingToVerify { manifests: String, missing: Vec<String> },
}

/// The backups to verify in `repo`: `backup_id` if given, else the newest
/// completed backup of each of `sources` (all of the store's sources without).
pub async fn select_backups(
    repo: &Repository,
    catalog: &Catalog,
    backup_id: Option<String>,
    sources: Option<Vec<String>>,
) -> Result<Vec<String>, SelectionError> {
    if let Some(id) = backup_id {
        return Ok(vec![id]);
    }
    let manifests = repo.storage.describe(&repo.layout.manifest(""));
    let records = catalog.list(None).await?;
    newest_completed(&records, &manifests, sources)
}

/// The newest completed backup of each source wanted among `records`
/// (newest first, as the catalog lists them) whose manifest is under `manifests`.
pub fn newest_completed(
    records: &[BackupRecord],
    manifests: &str,
    sources: Option<Vec<String>>,
) -> Result<Vec<String>, SelectionError> {
    let wanted: Option<BTreeSet<String>> = sources.map(|s| s.into_iter().collect());
    let mut seen = BTreeSet::new();
    let mut targets = Vec::new();
    // Newest first: the first completed backup of a source is its newest.
    for record in records {
        let in_store = record.storage_location.starts_with(manifests);
        let asked = wanted.as_ref().is_none_or(|w| w.contains(&record.source));
        if in_store && asked && record.status == BackupStatus::Completed && seen.insert(record.source.clone()) {
            targets.push(record.id.clone());
        }
    }
    if let Some(wanted) = wanted {
        let missing: Vec<String> = wanted.into_iter().filter(|s| !seen.contains(s)).collect();
        if !missing.is_empty() {
            return Err(SelectionError::NothingToVerify {
                manifests: manifests.to_owned(),
                missing,
            });
        }
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::BackupType;

    fn record(id: &str, source: &str, status: BackupStatus, location: &str) -> BackupRecord {
        BackupRecord {
            id: id.to_owned(),
            backup_type: BackupType::Full,
            status,
            source: source.to_owned(),
            size: 0,
            compressed_size: 0,
            entry_count: 0,
            changed_count: 0,
            created_at: String::new(),
            completed_at: None,
            retention_until: None,
            checksum: None,
            storage_location: format!("{location}{id}"),
            store_id: None,
            parent_backup: None,
            kms_key_id: String::new(),
            error: None,
            engine: None,
            server_version: None,
            database: None,
            gc_ticket: None,
            heartbeat_at: None,
        }
    }

    #[test]
    fn the_newest_completed_backup_of_each_source_in_the_store() {
        let here = "s3://b/store/manifests/";
        let records = [
            record("bk-4", "s3://a/", BackupStatus::Failed, here),
            record("bk-3", "s3://a/", BackupStatus::Completed, here),
            record("bk-2", "s3://c/", BackupStatus::Completed, "s3://b/other/manifests/"),
            record("bk-1", "s3://a/", BackupStatus::Completed, here),
            record("bk-0", "s3://d/", BackupStatus::Completed, here),
        ];
        assert_eq!(newest_completed(&records, here, None).unwrap(), ["bk-3", "bk-0"]);
        assert_eq!(
            newest_completed(&records, here, Some(vec!["s3://d/".into()])).unwrap(),
            ["bk-0"]
        );
        let missing = newest_completed(&records, here, Some(vec!["s3://c/".into()])).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "no completed backup in s3://b/store/manifests/ for source(s) [\"s3://c/\"]"
        );
    }
}
