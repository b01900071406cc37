//! Verifications in the catalog: one item per verification of a backup
//! (`pk = backup#ID`, `sk = verify#STARTEDAT`, no GSI keys, so it never
//! appears in backup listings), and the cursor of sample verification's
//! walk through a store (`pk = verifysample#STORE`, `sk = cursor`).

use serde::{Deserialize, Serialize};

use super::{keys, Catalog, CatalogError};

/// The kind of a verification (API: `backup_verifications.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerificationType {
    /// The manifest, the index and a listing of the packs: no data read.
    Quick,
    /// Also every pack and every entry read back and checked.
    Deep,
    /// A share of the store's packs read whole (`verify::sample`); recorded
    /// on the backups whose data it found damaged.
    Sample,
}

impl VerificationType {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Quick => "quick",
            Self::Deep => "deep",
            Self::Sample => "sample",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerificationStatus {
    Passed,
    Failed,
}

impl VerificationStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
        }
    }
}

/// One verification of a backup, as the API's `backup_verifications` has it.
/// Stored as `pk = backup#ID`, `sk = verify#STARTEDAT`, with no GSI keys, so
/// it never appears in backup listings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationRecord {
    pub backup_id: String,
    #[serde(rename = "type")]
    pub verification_type: VerificationType,
    pub status: VerificationStatus,
    pub started_at: String,
    pub completed_at: String,
    pub checksum_valid: bool,
    /// Whether a test restore succeeded; `null` for file backups (a deep
    /// verification reads every entry back instead).
    pub restore_test_passed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The stored verification item: the record plus its keys (no GSI keys).
#[derive(Serialize, Deserialize)]
struct VerificationItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    record: VerificationRecord,
}

/// Where the store walk of sample verification (`crate::verify::sample`) stopped.
/// Stored as `pk = verifysample#STORE`, `sk = cursor`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SampleCursor {
    /// The key of the last pack checked; the next run starts after it.
    pub after: String,
    /// Complete walks of the store so far.
    pub passes: u64,
    pub updated_at: String,
}

impl Catalog {
    /// Stores one verification of a backup (`pk = backup#ID`, `sk = verify#STARTEDAT`).
    pub async fn record_verification(&self, record: &VerificationRecord) -> Result<(), CatalogError> {
        let pk = keys::backup_pk(&record.backup_id);
        let item = self.to_item(
            &pk,
            VerificationItem {
                pk: pk.clone(),
                sk: keys::verify_sk(&record.started_at),
                record: record.clone(),
            },
        )?;
        self.put_item(item).await
    }

    /// A backup's verifications, newest first; at most `limit` when given.
    pub async fn verifications(&self, id: &str, limit: Option<i32>) -> Result<Vec<VerificationRecord>, CatalogError> {
        let pk = keys::backup_pk(id);
        self.query_sk_prefix(&pk, keys::VERIFY_SK_PREFIX, limit)
            .await?
            .into_iter()
            .map(|item| {
                serde_dynamo::from_item::<_, VerificationItem>(item)
                    .map(|i| i.record)
                    .map_err(|e| self.corrupt(pk.as_str(), e))
            })
            .collect()
    }

    pub async fn sample_cursor(&self, store: &str) -> Result<Option<SampleCursor>, CatalogError> {
        let pk = keys::sample_cursor_pk(store);
        let item = self.get_item(&pk, keys::SAMPLE_CURSOR_SK).await?;
        item.map(|item| serde_dynamo::from_item(item).map_err(|e| self.corrupt(pk.as_str(), e)))
            .transpose()
    }

    pub async fn set_sample_cursor(&self, store: &str, cursor: &SampleCursor) -> Result<(), CatalogError> {
        let pk = keys::sample_cursor_pk(store);
        let mut item = self.to_item(&pk, cursor)?;
        item.insert("pk".into(), aws_sdk_dynamodb::types::AttributeValue::S(pk));
        item.insert(
            "sk".into(),
            aws_sdk_dynamodb::types::AttributeValue::S(keys::SAMPLE_CURSOR_SK.into()),
        );
        self.put_item(item).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;

    #[test]
    fn verification_items_have_no_gsi_keys_and_round_trip() {
        let record = VerificationRecord {
            backup_id: "bk-20261123T105300Z-0000abcd".into(),
            verification_type: VerificationType::Deep,
            status: VerificationStatus::Failed,
            started_at: "2026-11-23T11:00:00.000Z".into(),
            completed_at: "2026-11-23T11:00:05.000Z".into(),
            checksum_valid: true,
            restore_test_passed: None,
            error: Some("1 problem".into()),
        };
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(VerificationItem {
            pk: keys::backup_pk(&record.backup_id),
            sk: keys::verify_sk(&record.started_at),
            record: record.clone(),
        })
        .unwrap();
        assert_eq!(item["sk"].as_s().unwrap(), "verify#2026-11-23T11:00:00.000Z");
        assert_eq!(item["type"].as_s().unwrap(), "deep");
        assert_eq!(item["status"].as_s().unwrap(), "failed");
        assert!(matches!(item["restoreTestPassed"], AttributeValue::Null(true)));
        assert!(item.keys().all(|k| !k.starts_with("gsi")), "{item:?}");
        let back: VerificationItem = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back.record, record);
    }
}
