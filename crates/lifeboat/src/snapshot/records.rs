//! The snapshot run's records in the catalog table, and the queries other
//! parts of Lifeboat read them with.
//!
//! Keys (ARCHITECTURE.md, "The catalog table"); `RESOURCE` is the resource's
//! ARN (or the identifier the plan names, when RDS knows no such resource),
//! `TIME` the scheduled time (RFC 3339, UTC, to the minute):
//!
//! | item | `pk` | `sk` | GSI keys |
//! |---|---|---|---|
//! | snapshot | `snapshot#PLAN#RESOURCE#TIME` | `snapshot` | `bySource`: `gsi1pk = snapshot#RESOURCE`, `gsi1sk = TIME#PLAN`; `byTime` while unfinished: `gsi2pk = snapshot-open#PLAN`, `gsi2sk = TIME#RESOURCE` |
//! | copy | the snapshot's `pk` | `copy#REGION` | `byTime` while unfinished: `gsi2pk = snapshot-open#PLAN`, `gsi2sk = TIME#RESOURCE#REGION` |
//! | dump claim | `dump#PLAN#SOURCE#TIME` (`SOURCE` the URL without password) | `dump` | none; `status`, `backupId` of the dump's backup record, `error` |
//!
//! The `byTime` keys are removed when an item finishes (completed or
//! failed), so the run finds a plan's open work with one query however long
//! its history. Every change is a conditional put on the status the writer
//! read, so two runs at once never both start one copy.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use crate::catalog::claims::is_stale;
use crate::catalog::{keys, Catalog, CatalogError};
use crate::rds::ResourceKind;
use keys::{COPY_SK_PREFIX, DUMP_SK, SNAPSHOT_SK};

const BY_SOURCE: &str = "bySource";
const BY_TIME: &str = "byTime";

/// A snapshot's status: `in_progress` (RDS is creating it) → `completed`
/// (available) | `failed` (with the AWS error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotStatus {
    InProgress,
    Completed,
    Failed,
}

impl SnapshotStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

/// A copy's status: `queued` (waiting for a free slot in its region, or
/// backing off after throttling) → `copying` → `completed` | `failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyStatus {
    Queued,
    Copying,
    Completed,
    Failed,
}

impl CopyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Copying => "copying",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    pub fn is_open(self) -> bool {
        matches!(self, Self::Queued | Self::Copying)
    }
}

/// One snapshot of one resource for one scheduled run of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRecord {
    pub plan: String,
    /// The resource's ARN; the identifier as the plan wrote it if RDS has none.
    pub resource: String,
    pub resource_id: String,
    pub resource_kind: ResourceKind,
    /// Where the resource and this snapshot are.
    pub region: String,
    /// The scheduled run, RFC 3339 UTC to the minute.
    pub scheduled_time: String,
    /// The snapshot's identifier (`lifeboat-PLAN-RESOURCE-YYYYMMDD-HHMM`).
    pub snapshot_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_arn: Option<String>,
    pub status: SnapshotStatus,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// The latest time the plan's retention rules could keep this snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The AWS error (`Code: message`), or what went wrong, when `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<String>,
}

/// One copy of a snapshot into another region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyRecord {
    pub plan: String,
    pub resource: String,
    pub resource_kind: ResourceKind,
    pub scheduled_time: String,
    /// The source snapshot (primary region).
    pub source_snapshot_arn: String,
    /// The destination region, and the key the copy is encrypted with there.
    pub region: String,
    pub kms_key_id: String,
    /// The copy's identifier in `region` (the source's identifier).
    pub snapshot_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_arn: Option<String>,
    pub status: CopyStatus,
    pub queued_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// Copy requests made (throttled ones included).
    #[serde(default)]
    pub attempts: u32,
    /// Backing off after throttling: not started again before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<String>,
}

/// A snapshot with its copies: what `SnapshotCatalog::history` lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotHistory {
    pub snapshot: SnapshotRecord,
    /// By region.
    pub copies: Vec<CopyRecord>,
}

impl SnapshotHistory {
    /// The copy in `region`, if the plan copies there.
    pub fn copy_in(&self, region: &str) -> Option<&CopyRecord> {
        self.copies.iter().find(|c| c.region == region)
    }
}

/// A plan's unfinished items.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenWork {
    pub snapshots: Vec<SnapshotRecord>,
    pub copies: Vec<CopyRecord>,
}

/// A scheduled run's logical dump of one database (a plan's database
/// source): a claim, so a redelivered event dumps once; the dump itself is
/// a backup record (`crate::dump`), named by `backup_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DumpClaim {
    pub plan: String,
    /// The database URL without its password.
    pub source: String,
    pub scheduled_time: String,
    pub status: SnapshotStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: String,
    /// Refreshed while the dump runs (`catalog::claims`); a claim in
    /// progress whose heartbeat is stale is taken over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_at: Option<String>,
    /// A random token of the delivery holding the claim: only it may finish
    /// the claim, so a holder taken over can never overwrite its successor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
}

impl DumpClaim {
    /// The claim's key (`dump#PLAN#SOURCE#TIME`), which its heartbeat refreshes.
    pub fn pk(&self) -> String {
        dump_pk(self)
    }
}

#[derive(Serialize, Deserialize)]
struct DumpItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    claim: DumpClaim,
}

fn dump_pk(claim: &DumpClaim) -> String {
    keys::dump_pk(&claim.plan, &claim.source, &claim.scheduled_time)
}

#[derive(Serialize, Deserialize)]
struct SnapshotItem {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<String>,
    #[serde(flatten)]
    record: SnapshotRecord,
}

impl SnapshotItem {
    fn new(record: SnapshotRecord) -> Self {
        let open = record.status == SnapshotStatus::InProgress;
        Self {
            pk: keys::snapshot_pk(&record.plan, &record.resource, &record.scheduled_time),
            sk: SNAPSHOT_SK.into(),
            gsi1pk: keys::snapshot_gsi1pk(&record.resource),
            gsi1sk: keys::snapshot_gsi1sk(&record.scheduled_time, &record.plan),
            gsi2pk: open.then(|| keys::snapshot_open_pk(&record.plan)),
            gsi2sk: open.then(|| keys::snapshot_open_sk(&record.scheduled_time, &record.resource)),
            record,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct CopyItem {
    pk: String,
    sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<String>,
    #[serde(flatten)]
    record: CopyRecord,
}

impl CopyItem {
    fn new(record: CopyRecord) -> Self {
        let open = record.status.is_open();
        Self {
            pk: keys::snapshot_pk(&record.plan, &record.resource, &record.scheduled_time),
            sk: keys::copy_sk(&record.region),
            gsi2pk: open.then(|| keys::snapshot_open_pk(&record.plan)),
            gsi2sk: open.then(|| keys::copy_open_sk(&record.scheduled_time, &record.resource, &record.region)),
            record,
        }
    }
}

/// What a claim found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The record is new (or replaced a failed one): this run makes the snapshot.
    Claimed,
    /// Another delivery of the same scheduled run got there first.
    Exists(Box<SnapshotRecord>),
}

/// The snapshot items of a catalog table (get one with `Catalog::snapshots`).
#[derive(Clone, Debug)]
pub struct SnapshotCatalog {
    catalog: Catalog,
}

impl Catalog {
    /// The snapshot and copy records kept in this catalog's table.
    pub fn snapshots(&self) -> SnapshotCatalog {
        SnapshotCatalog { catalog: self.clone() }
    }
}

impl SnapshotCatalog {
    fn error<E, R>(&self, error: SdkError<E, R>) -> CatalogError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        self.catalog.error(error)
    }

    fn corrupt(&self, pk: String, message: impl ToString) -> CatalogError {
        self.catalog.corrupt(pk, message.to_string())
    }

    fn conflict(&self, pk: String, expected: &str) -> CatalogError {
        CatalogError::Conflict {
            id: pk,
            expected: expected.to_owned(),
        }
    }

    fn snapshot_item(&self, record: &SnapshotRecord) -> Result<HashMap<String, AttributeValue>, CatalogError> {
        let item = SnapshotItem::new(record.clone());
        let pk = item.pk.clone();
        serde_dynamo::to_item(item).map_err(|e| self.corrupt(pk, e))
    }

    fn copy_item(&self, record: &CopyRecord) -> Result<HashMap<String, AttributeValue>, CatalogError> {
        let item = CopyItem::new(record.clone());
        let pk = item.pk.clone();
        serde_dynamo::to_item(item).map_err(|e| self.corrupt(pk, e))
    }

    /// Puts `item` if the stored one's status is `expected` (`None`: if
    /// there is none). `false` if the condition failed.
    async fn put_if(
        &self,
        item: HashMap<String, AttributeValue>,
        expected: Option<&str>,
        or_absent: bool,
    ) -> Result<bool, CatalogError> {
        let mut request = self
            .catalog
            .client()
            .put_item()
            .table_name(self.catalog.table())
            .set_item(Some(item));
        request = match (expected, or_absent) {
            (None, _) => request.condition_expression("attribute_not_exists(pk)"),
            (Some(status), false) => request
                .condition_expression("#status = :expected")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":expected", AttributeValue::S(status.to_owned())),
            (Some(status), true) => request
                .condition_expression("attribute_not_exists(pk) OR #status = :expected")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":expected", AttributeValue::S(status.to_owned())),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(s)) if s.err().is_conditional_check_failed_exception() => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Claims a scheduled run's snapshot of a resource: writes `record` if
    /// there is none for (plan, resource, scheduled time), or replaces a
    /// failed one (a retry); otherwise returns the one that exists.
    pub async fn claim(&self, record: &SnapshotRecord) -> Result<Claim, CatalogError> {
        let item = self.snapshot_item(record)?;
        if self.put_if(item, Some(SnapshotStatus::Failed.as_str()), true).await? {
            return Ok(Claim::Claimed);
        }
        match self.get(&record.plan, &record.resource, &record.scheduled_time).await? {
            Some(existing) => Ok(Claim::Exists(Box::new(existing.snapshot))),
            None => Err(self.conflict(
                keys::snapshot_pk(&record.plan, &record.resource, &record.scheduled_time),
                "claimable",
            )),
        }
    }

    /// Stores `record` over the one whose status was `from`; `false` if
    /// another run changed it first (that run owns the change).
    pub async fn update_snapshot(&self, record: &SnapshotRecord, from: SnapshotStatus) -> Result<bool, CatalogError> {
        self.put_if(self.snapshot_item(record)?, Some(from.as_str()), false)
            .await
    }

    /// Records a failure where no claim could be made first (a resource the
    /// plan names that RDS does not know): written unless it completed.
    pub async fn record_failure(&self, record: &SnapshotRecord) -> Result<bool, CatalogError> {
        let item = self.snapshot_item(record)?;
        if self
            .put_if(item.clone(), Some(SnapshotStatus::Failed.as_str()), true)
            .await?
        {
            return Ok(true);
        }
        self.put_if(item, Some(SnapshotStatus::InProgress.as_str()), false)
            .await
    }

    /// Records a new copy (queued, or failed before it could be queued)
    /// unless the snapshot's copy to that region is recorded already; `false` then.
    pub async fn queue_copy(&self, record: &CopyRecord) -> Result<bool, CatalogError> {
        self.put_if(self.copy_item(record)?, None, false).await
    }

    /// Stores `record` over the copy whose status was `from`; `false` if
    /// another run changed it first (that run owns the change).
    pub async fn update_copy(&self, record: &CopyRecord, from: CopyStatus) -> Result<bool, CatalogError> {
        self.put_if(self.copy_item(record)?, Some(from.as_str()), false).await
    }

    fn dump_item(&self, claim: &DumpClaim) -> Result<HashMap<String, AttributeValue>, CatalogError> {
        let pk = dump_pk(claim);
        serde_dynamo::to_item(DumpItem {
            pk: pk.clone(),
            sk: DUMP_SK.into(),
            claim: claim.clone(),
        })
        .map_err(|e| self.corrupt(pk, e))
    }

    /// Claims a scheduled run's dump of a database (`claim` in progress): a
    /// new claim, one that failed before, or one in progress whose heartbeat
    /// is stale (its holder is gone) is taken (`None`); otherwise the claim
    /// that exists is returned.
    pub async fn claim_dump(&self, claim: &DumpClaim) -> Result<Option<DumpClaim>, CatalogError> {
        let item = self.dump_item(claim)?;
        if self
            .put_if(item.clone(), Some(SnapshotStatus::Failed.as_str()), true)
            .await?
        {
            return Ok(None);
        }
        let existing = self.read_dump(claim).await?;
        let seen = existing.heartbeat_at.as_deref().unwrap_or(&existing.created_at);
        let stale_after = self.catalog.claim_timing().stale_after;
        if existing.status != SnapshotStatus::InProgress || !is_stale(seen, stale_after, crate::times::now()) {
            return Ok(Some(existing));
        }
        let condition = if existing.heartbeat_at.is_some() {
            "#status = :running AND heartbeatAt = :seen"
        } else {
            "#status = :running AND attribute_not_exists(heartbeatAt)"
        };
        let mut request = self
            .catalog
            .client()
            .put_item()
            .table_name(self.catalog.table())
            .set_item(Some(item))
            .condition_expression(condition)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(
                ":running",
                AttributeValue::S(SnapshotStatus::InProgress.as_str().into()),
            );
        if existing.heartbeat_at.is_some() {
            request = request.expression_attribute_values(":seen", AttributeValue::S(seen.to_owned()));
        }
        match request.send().await {
            Ok(_) => {
                tracing::warn!(claim = %dump_pk(claim), heartbeat_at = seen, "dump claim without a heartbeat taken over");
                Ok(None)
            }
            Err(SdkError::ServiceError(s)) if s.err().is_conditional_check_failed_exception() => {
                Ok(Some(self.read_dump(claim).await?))
            }
            Err(e) => Err(self.error(e)),
        }
    }

    /// The dump claim stored under `claim`'s key.
    async fn read_dump(&self, claim: &DumpClaim) -> Result<DumpClaim, CatalogError> {
        let pk = dump_pk(claim);
        let output = self
            .catalog
            .client()
            .get_item()
            .table_name(self.catalog.table())
            .key("pk", AttributeValue::S(pk.clone()))
            .key("sk", AttributeValue::S(DUMP_SK.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        match output.item {
            Some(item) => Ok(serde_dynamo::from_item::<_, DumpItem>(item)
                .map_err(|e| self.corrupt(pk, e))?
                .claim),
            None => Err(self.conflict(pk, "claimable")),
        }
    }

    /// Records how a claimed dump ended (`claim` completed or failed), if
    /// the claim is still in progress and held by `claim.holder`.
    pub async fn finish_dump(&self, claim: &DumpClaim) -> Result<(), CatalogError> {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let mut request = self
            .catalog
            .client()
            .put_item()
            .table_name(self.catalog.table())
            .set_item(Some(self.dump_item(claim)?))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", s(SnapshotStatus::InProgress.as_str()));
        request = match &claim.holder {
            Some(holder) => request
                .condition_expression("#status = :running AND holder = :holder")
                .expression_attribute_values(":holder", s(holder)),
            None => request.condition_expression("#status = :running"),
        };
        match request.send().await {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Err(self.conflict(
                dump_pk(claim),
                "in progress and held by this run (another delivery took it over)",
            )),
            Err(e) => Err(self.error(e)),
        }
    }

    /// A plan's unfinished snapshots and copies (the sparse `byTime` keys).
    pub async fn open_work(&self, plan: &str) -> Result<OpenWork, CatalogError> {
        let mut pages = self
            .catalog
            .client()
            .query()
            .table_name(self.catalog.table())
            .index_name(BY_TIME)
            .key_condition_expression("gsi2pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(keys::snapshot_open_pk(plan)))
            .into_paginator()
            .items()
            .send();
        let mut work = OpenWork::default();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| self.error(e))?;
            let pk = item.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let sk = item.get("sk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            if sk == SNAPSHOT_SK {
                let record = serde_dynamo::from_item::<_, SnapshotItem>(item)
                    .map_err(|e| self.corrupt(pk, e))?
                    .record;
                work.snapshots.push(record);
            } else if sk.starts_with(COPY_SK_PREFIX) {
                let record = serde_dynamo::from_item::<_, CopyItem>(item)
                    .map_err(|e| self.corrupt(pk, e))?
                    .record;
                work.copies.push(record);
            }
        }
        Ok(work)
    }

    /// Reads one snapshot item and its copies (strongly consistent).
    async fn read_pk(&self, pk: String) -> Result<Option<SnapshotHistory>, CatalogError> {
        let mut pages = self
            .catalog
            .client()
            .query()
            .table_name(self.catalog.table())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut snapshot = None;
        let mut copies = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| self.error(e))?;
            let sk = item.get("sk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            if sk == SNAPSHOT_SK {
                snapshot = Some(
                    serde_dynamo::from_item::<_, SnapshotItem>(item)
                        .map_err(|e| self.corrupt(pk.clone(), e))?
                        .record,
                );
            } else if sk.starts_with(COPY_SK_PREFIX) {
                copies.push(
                    serde_dynamo::from_item::<_, CopyItem>(item)
                        .map_err(|e| self.corrupt(pk.clone(), e))?
                        .record,
                );
            }
        }
        copies.sort_by(|a, b| a.region.cmp(&b.region));
        Ok(snapshot.map(|snapshot| SnapshotHistory { snapshot, copies }))
    }

    /// One scheduled run's snapshot of a resource, with its copies.
    pub async fn get(
        &self,
        plan: &str,
        resource: &str,
        scheduled_time: &str,
    ) -> Result<Option<SnapshotHistory>, CatalogError> {
        self.read_pk(keys::snapshot_pk(plan, resource, scheduled_time)).await
    }

    /// A resource's snapshots (every plan's), newest scheduled time first,
    /// each with its copies. `resource` is the ARN.
    pub async fn history(&self, resource: &str) -> Result<Vec<SnapshotHistory>, CatalogError> {
        let mut pages = self
            .catalog
            .client()
            .query()
            .table_name(self.catalog.table())
            .index_name(BY_SOURCE)
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(keys::snapshot_gsi1pk(resource)))
            .scan_index_forward(false)
            .into_paginator()
            .items()
            .send();
        let mut pks = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| self.error(e))?;
            if let Some(pk) = item.get("pk").and_then(|v| v.as_s().ok()) {
                pks.push(pk.clone());
            }
        }
        let mut history = Vec::new();
        for pk in pks {
            if let Some(entry) = self.read_pk(pk).await? {
                history.push(entry);
            }
        }
        Ok(history)
    }

    /// A resource's newest completed snapshot with its copies (each copy's
    /// status per region), if it has one.
    pub async fn latest_completed(&self, resource: &str) -> Result<Option<SnapshotHistory>, CatalogError> {
        Ok(self
            .history(resource)
            .await?
            .into_iter()
            .find(|h| h.snapshot.status == SnapshotStatus::Completed))
    }

    /// Every snapshot record of the table (a scan: for listings of all
    /// resources, such as `lifeboat status`), newest scheduled time first.
    pub async fn list(&self) -> Result<Vec<SnapshotRecord>, CatalogError> {
        let mut pages = self
            .catalog
            .client()
            .scan()
            .table_name(self.catalog.table())
            .filter_expression("sk = :sk AND begins_with(pk, :prefix)")
            .expression_attribute_values(":sk", AttributeValue::S(SNAPSHOT_SK.into()))
            .expression_attribute_values(":prefix", AttributeValue::S("snapshot#".into()))
            .into_paginator()
            .items()
            .send();
        let mut records = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| self.error(e))?;
            let pk = item.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            records.push(
                serde_dynamo::from_item::<_, SnapshotItem>(item)
                    .map_err(|e| self.corrupt(pk, e))?
                    .record,
            );
        }
        records.sort_by(|a, b| {
            b.scheduled_time
                .cmp(&a.scheduled_time)
                .then(a.resource.cmp(&b.resource))
        });
        Ok(records)
    }
}
/// The newest completed snapshot of each (plan, resource), by plan and resource.
pub fn newest_completed(histories: &[SnapshotHistory]) -> Vec<&SnapshotHistory> {
    let mut newest: std::collections::BTreeMap<(&str, &str), &SnapshotHistory> = std::collections::BTreeMap::new();
    for history in histories {
        if history.snapshot.status != SnapshotStatus::Completed {
            continue;
        }
        let key = (history.snapshot.plan.as_str(), history.snapshot.resource.as_str());
        let better = newest
            .get(&key)
            .is_none_or(|h| h.snapshot.scheduled_time < history.snapshot.scheduled_time);
        if better {
            newest.insert(key, history);
        }
    }
    newest.into_values().collect()
}

/// Whether a snapshot, or any of its copies, is still being made.
pub fn in_progress(history: &SnapshotHistory) -> bool {
    history.snapshot.status == SnapshotStatus::InProgress || history.copies.iter().any(|c| c.status.is_open())
}
