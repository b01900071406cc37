//! The catalog: one DynamoDB table (ARCHITECTURE.md, "The catalog table")
//! and [`Catalog`], the one handle on it: client, table name, region, the
//! item helpers every view of the table shares, and [`CatalogError`] with
//! the one mapping of DynamoDB errors to what the user should do.
//!
//! What the table holds is in the submodules: [`keys`] (every key format),
//! [`backups`] (backup records and idempotency claims), [`claims`]
//! (heartbeats, stale claims, source leases), [`holds`] (holds on
//! backups and snapshots), [`verifications`] (backup verifications and
//! sample verification's cursor). The other views of the table (recovery
//! jobs, the audit trail, alert state, snapshot records) are built from a
//! `Catalog` by their own modules.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub mod backups;
pub mod claims;
pub mod holds;
pub mod keys;
pub mod leases;
pub mod verifications;

pub use backups::{BackupRecord, BackupStatus, Begin, Completion};
pub use claims::{ClaimTarget, ClaimTiming, Heartbeat, LeaseHolder, SourceLease};
pub use holds::HoldRecord;
pub use verifications::{SampleCursor, VerificationRecord, VerificationStatus, VerificationType};

pub const DEFAULT_TABLE: &str = "lifeboat-catalog";

/// One stored item: attribute name to value.
pub type Item = HashMap<String, AttributeValue>;

/// The `pk` of a stored item, empty if it has none (for error messages).
pub fn item_pk(item: &Item) -> String {
    item.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

/// Now, as the catalog writes times. Kept for callers not yet on
/// [`crate::times::now_text`].
pub use crate::times::now_text as now_rfc3339;

/// What a DynamoDB error means for the catalog table (every view of the
/// table maps its errors through here).
pub(crate) fn dynamo_error<E, R>(table: &str, region: &str, error: SdkError<E, R>) -> CatalogError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let (code, message) = match &error {
        SdkError::ServiceError(service) => {
            let err = service.err();
            (
                err.code().map(str::to_owned),
                err.message().map(str::to_owned).unwrap_or_else(|| err.to_string()),
            )
        }
        other => (None, aws_sdk_dynamodb::error::DisplayErrorContext(other).to_string()),
    };
    match code.as_deref() {
        Some("ResourceNotFoundException") => CatalogError::NoTable {
            table: table.to_owned(),
            region: region.to_owned(),
        },
        Some("AccessDeniedException") => CatalogError::AccessDenied {
            table: table.to_owned(),
            message,
        },
        _ => CatalogError::Dynamo {
            table: table.to_owned(),
            message,
        },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog table {table} does not exist in region {region}: run `lifeboat init --create-table`, deploy the Lifeboat stack, or pass --table / set LIFEBOAT_TABLE")]
    NoTable { table: String, region: String },
    #[error("access to catalog table {table} was denied ({message}): the role needs dynamodb:GetItem, PutItem, UpdateItem and Query on it")]
    AccessDenied { table: String, message: String },
    #[error("backup {id} is not {expected} (someone else changed it first): nothing was overwritten")]
    Conflict { id: String, expected: String },
    #[error("no backup {id} in catalog table {table}: list backups with `lifeboat backups list`")]
    UnknownBackup { id: String, table: String },
    #[error("catalog table {table}: {message}")]
    Dynamo { table: String, message: String },
    #[error("catalog table {table} holds an item Lifeboat cannot read ({pk}): {message}")]
    Corrupt { table: String, pk: String, message: String },
}

#[derive(Clone, Debug)]
pub struct Catalog {
    client: aws_sdk_dynamodb::Client,
    table: String,
    region: String,
    claims: ClaimTiming,
}

impl Catalog {
    /// The handle on `table`, with claim timing from the environment
    /// ([`ClaimTiming::from_env`]).
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str, region: &str) -> Self {
        Self {
            client,
            table: table.to_owned(),
            region: region.to_owned(),
            claims: ClaimTiming::from_env(),
        }
    }

    /// The same handle with other claim timing (tests use short ones).
    pub fn with_claim_timing(mut self, claims: ClaimTiming) -> Self {
        self.claims = claims;
        self
    }

    /// How often claims are refreshed and when they count as abandoned.
    pub fn claim_timing(&self) -> ClaimTiming {
        self.claims
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The region the table is in.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The DynamoDB client, for the views of this table that build their
    /// own requests (`Jobs`, `AuditTrail`, `AlertState`, snapshot records).
    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    /// What a DynamoDB error means for this table.
    pub fn error<E, R>(&self, error: SdkError<E, R>) -> CatalogError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        dynamo_error(&self.table, &self.region, error)
    }

    /// An item this table holds that Lifeboat cannot read or write (`pk` names it).
    pub fn corrupt(&self, pk: impl Into<String>, message: impl std::fmt::Display) -> CatalogError {
        CatalogError::Corrupt {
            table: self.table.clone(),
            pk: pk.into(),
            message: message.to_string(),
        }
    }

    /// A request that could not be built (a transaction's part).
    pub fn build_error(&self, message: impl std::fmt::Display) -> CatalogError {
        CatalogError::Dynamo {
            table: self.table.clone(),
            message: message.to_string(),
        }
    }

    /// `value`'s attributes as the item stored under `pk` (named on failure).
    pub fn to_item<T: Serialize>(&self, pk: &str, value: T) -> Result<Item, CatalogError> {
        serde_dynamo::to_item(value).map_err(|e| self.corrupt(pk, e))
    }

    /// A stored item read back as `T`; its `pk` named on failure.
    pub fn from_item<T: DeserializeOwned>(&self, item: Item) -> Result<T, CatalogError> {
        let pk = item_pk(&item);
        serde_dynamo::from_item(item).map_err(|e| self.corrupt(pk, e))
    }

    /// The item under `pk`/`sk`, read consistently; `None` if there is none.
    pub async fn get_item(&self, pk: &str, sk: &str) -> Result<Option<Item>, CatalogError> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error(e))?
            .item)
    }

    /// Writes `item` unconditionally.
    pub async fn put_item(&self, item: Item) -> Result<(), CatalogError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Writes `item` unless one with its `pk` exists: `false` (and nothing
    /// written) if one did.
    pub async fn put_new_item(&self, item: Item) -> Result<bool, CatalogError> {
        self.put_item_if(
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)"),
        )
        .await
    }

    /// Sends `put`, a put with a condition: `false` (and nothing written)
    /// if the condition did not hold.
    pub async fn put_item_if(&self, put: PutItemFluentBuilder) -> Result<bool, CatalogError> {
        match put.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(s)) if s.err().is_conditional_check_failed_exception() => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    /// The items under `pk` whose `sk` starts with `sk_prefix`, newest
    /// (highest `sk`) first; at most `limit` when given.
    pub async fn query_sk_prefix(
        &self,
        pk: &str,
        sk_prefix: &str,
        limit: Option<i32>,
    ) -> Result<Vec<Item>, CatalogError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .expression_attribute_values(":prefix", AttributeValue::S(sk_prefix.to_owned()))
            .scan_index_forward(false)
            .set_limit(limit)
            .into_paginator()
            .items()
            .send();
        self.collect_items(async || pages.next().await, limit).await
    }

    /// Every item whose `sk` is `sk` and whose `pk` starts with `pk_prefix`,
    /// read consistently. A scan: for the few items that have no index
    /// (holds, alert state).
    pub async fn scan_items(&self, sk: &str, pk_prefix: &str) -> Result<Vec<Item>, CatalogError> {
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :sk AND begins_with(pk, :prefix)")
            .expression_attribute_values(":sk", AttributeValue::S(sk.to_owned()))
            .expression_attribute_values(":prefix", AttributeValue::S(pk_prefix.to_owned()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        self.collect_items(async || pages.next().await, None).await
    }

    /// Every item `next` yields (the `next` of a query's or a scan's item
    /// paginator), in order; at most `limit` when given.
    pub async fn collect_items<E, R>(
        &self,
        mut next: impl AsyncFnMut() -> Option<Result<Item, SdkError<E, R>>>,
        limit: Option<i32>,
    ) -> Result<Vec<Item>, CatalogError>
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let mut items = Vec::new();
        while let Some(item) = next().await {
            items.push(item.map_err(|e| self.error(e))?);
            if limit.is_some_and(|n| items.len() >= n.max(0) as usize) {
                break;
            }
        }
        Ok(items)
    }

    /// Creates the table with its indexes; `false` if it already existed.
    pub async fn create_table(&self) -> Result<bool, CatalogError> {
        let key = |name: &str, kind: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let gsi = |name: &str, hash: &str, range: &str| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(hash, KeyType::Hash).expect("static key schema"))
                .key_schema(key(range, KeyType::Range).expect("static key schema"))
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
        };
        let request = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash).expect("static key schema"))
            .key_schema(key("sk", KeyType::Range).expect("static key schema"))
            .set_attribute_definitions(Some(
                ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"]
                    .into_iter()
                    .map(|n| attr(n).expect("static attribute"))
                    .collect(),
            ))
            .global_secondary_indexes(gsi(keys::BY_SOURCE, "gsi1pk", "gsi1sk").expect("static index"))
            .global_secondary_indexes(gsi(keys::BY_TIME, "gsi2pk", "gsi2sk").expect("static index"));
        match request.send().await {
            Ok(_) => {}
            Err(e) => {
                let exists = matches!(&e, SdkError::ServiceError(s) if s.err().is_resource_in_use_exception());
                if exists {
                    return Ok(false);
                }
                return Err(self.error(e));
            }
        }
        for _ in 0..120 {
            let described = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| self.error(e))?;
            let active = described
                .table()
                .and_then(|t| t.table_status())
                .is_some_and(|s| *s == aws_sdk_dynamodb::types::TableStatus::Active);
            if active {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        Ok(true)
    }
}
