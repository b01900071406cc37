//! Holds (legal holds) in the catalog, one implementation for backups and
//! snapshots: `pk = hold#ID` (a backup id, or a snapshot's identifier),
//! `sk = hold`. Retention (`crate::expire`, snapshot retention) reads them
//! and never deletes what is held.

use std::future::Future;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::{keys, Catalog, CatalogError, Item};

/// A hold (legal hold) on a backup or a snapshot: retention never deletes
/// what is held. Stored as `pk = hold#ID`, `sk = hold`, with no GSI keys, so
/// it never appears in backup listings. On a snapshot, `backup_id` is the
/// snapshot's identifier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldRecord {
    pub backup_id: String,
    pub reason: String,
    /// Who placed it.
    pub actor: String,
    pub created_at: String,
}

/// The stored hold: the record plus its keys.
#[derive(Serialize, Deserialize)]
pub struct HoldItem {
    pub pk: String,
    pub sk: String,
    #[serde(flatten)]
    pub record: HoldRecord,
}

impl HoldItem {
    pub fn new(record: HoldRecord) -> Self {
        Self {
            pk: keys::hold_pk(&record.backup_id),
            sk: keys::HOLD_SK.into(),
            record,
        }
    }
}

impl Catalog {
    /// Places a hold on a backup that exists. Returns `false` (and changes
    /// nothing) if the backup was already held.
    pub async fn add_hold(&self, hold: &HoldRecord) -> Result<bool, CatalogError> {
        self.add_hold_if(hold, async {
            self.get(&hold.backup_id).await?;
            Ok::<_, CatalogError>(())
        })
        .await
    }

    /// Places a hold once `exists` has confirmed that what it names exists
    /// (a backup, or a snapshot whose identifier is `hold.backup_id`); `exists`'s
    /// error is returned as it is. Returns `false` (and changes nothing) if
    /// it was already held.
    pub async fn add_hold_if<E>(
        &self,
        hold: &HoldRecord,
        exists: impl Future<Output = Result<(), E>>,
    ) -> Result<bool, E>
    where
        E: From<CatalogError>,
    {
        exists.await?;
        let item = self.to_item(&keys::hold_pk(&hold.backup_id), HoldItem::new(hold.clone()))?;
        Ok(self.put_new_item(item).await?)
    }

    /// Lifts the hold on a backup. Returns the hold lifted, `None` if there was none.
    pub async fn remove_hold(&self, id: &str) -> Result<Option<HoldRecord>, CatalogError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(keys::hold_pk(id)))
            .key("sk", AttributeValue::S(keys::HOLD_SK.into()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        output.attributes.map(|item| self.hold_from_item(item)).transpose()
    }

    /// Every hold, oldest first. A scan of the table (holds have no index;
    /// they are few and read only by retention and `lifeboat hold list`).
    pub async fn list_holds(&self) -> Result<Vec<HoldRecord>, CatalogError> {
        let mut holds = Vec::new();
        for item in self.scan_items(keys::HOLD_SK, keys::HOLD_PK_PREFIX).await? {
            holds.push(self.hold_from_item(item)?);
        }
        holds.sort_by(|a, b| (&a.created_at, &a.backup_id).cmp(&(&b.created_at, &b.backup_id)));
        Ok(holds)
    }

    fn hold_from_item(&self, item: Item) -> Result<HoldRecord, CatalogError> {
        self.from_item::<HoldItem>(item).map(|i| i.record)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn hold_items_have_no_gsi_keys_and_round_trip() {
        let hold = HoldRecord {
            backup_id: "bk-20261123T105300Z-0000abcd".into(),
            reason: "litigation 2026-17".into(),
            actor: "alice".into(),
            created_at: "2026-11-23T11:00:00.000Z".into(),
        };
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(HoldItem {
            pk: keys::hold_pk(&hold.backup_id),
            sk: keys::HOLD_SK.into(),
            record: hold.clone(),
        })
        .unwrap();
        assert_eq!(item["pk"].as_s().unwrap(), "hold#bk-20261123T105300Z-0000abcd");
        assert_eq!(item["sk"].as_s().unwrap(), "hold");
        assert_eq!(item["createdAt"].as_s().unwrap(), "2026-11-23T11:00:00.000Z");
        assert!(item.keys().all(|k| !k.starts_with("gsi")), "{item:?}");
        let back: HoldItem = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back.record, hold);
    }
}
