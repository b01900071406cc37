//! What lets garbage collection run beside backups and restores
//! (FORMAT.md, "Garbage collection"), as catalog items keyed by the store's
//! id (its `config` `storeId`):
//!
//! - the **GC lease** `gclease#STORE` / `lease`: one collection per store
//!   at a time. A conditional put takes it when it is absent or expired; a
//!   heartbeat renews it (conditional on the owner) while the run lasts; the
//!   run deletes it at the end. Expiry is the holder's wall clock plus the
//!   lease's length; a holder that stops renewing is taken over after it.
//! - the **GC sequence** `gcseq#STORE` / `seq`: a counter. A backup takes a
//!   ticket (an atomic `ADD`) and records it in its backup record before it
//!   loads the index; a candidate list records the counter read after the
//!   list was stored. That order, not a clock, tells the sweep which
//!   backups may have loaded the index before the list existed.
//! - **restore registrations** `gcuse#STORE` / `restore#ID`: a reader's
//!   lease on the store's packs (a restore, a verification: see
//!   [`registered`]); a sweep waits while one is live.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::{keys, Catalog, CatalogError};
use crate::times;

/// How long a lease lasts without renewal.
pub const LEASE_TTL: SignedDuration = SignedDuration::from_mins(10);

const LEASE_TTL_ENV: &str = "LIFEBOAT_GC_LEASE_SECONDS";

/// How long the GC lease and restore registrations last without renewal:
/// [`LEASE_TTL`], or `LIFEBOAT_GC_LEASE_SECONDS` (4 to 86,400; fractions
/// allowed) where a test needs a killed run's lease to expire soon. A value
/// out of range is ignored with a warning.
pub fn lease_ttl() -> SignedDuration {
    let Ok(text) = std::env::var(LEASE_TTL_ENV) else {
        return LEASE_TTL;
    };
    match text.trim().parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && (4.0..=86_400.0).contains(&seconds) => {
            SignedDuration::from_secs_f64(seconds)
        }
        _ => {
            tracing::warn!(variable = LEASE_TTL_ENV, value = %text, "not a number of seconds from 4 to 86400: the default is used");
            LEASE_TTL
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("{what} is held by {owner} until {expires_at}: another run is using it; wait until it ends (or, if that run died, until the lease expires) and run again")]
    Held {
        what: String,
        owner: String,
        expires_at: String,
    },
    #[error("{what} was taken over by another run ({owner}) while this one held it: this run stopped before deleting anything more; run it again")]
    Lost { what: String, owner: String },
}

/// A lease as stored: who holds it and until when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseRecord {
    pub owner: String,
    pub acquired_at: String,
    /// The expiry, RFC 3339 (for people) ...
    pub expires_at: String,
    /// ... and in milliseconds since the epoch (for the conditions).
    pub expires_at_ms: i64,
    /// For a restore registration: the backup read (absent when the
    /// reader reads the whole store, as sample verification does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct LeaseItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    record: LeaseRecord,
}

/// A unique owner id for one run: who (`actor`) and a random part, so two
/// runs by the same operator never share a lease.
pub fn run_owner(actor: &str) -> String {
    format!("{actor}#{:016x}", rand::random::<u64>())
}

/// Runs `reader` (a restore or a verification of store `store`; of backup
/// `backup_id`, or of the whole store) registered in the catalog as
/// `owner`, so garbage collection does not sweep the store's packs under it
/// (FORMAT.md, "Garbage collection"): registered before it starts, renewed
/// by the heartbeat while it runs, removed when it ends (a registration
/// that cannot be removed expires). An error only if it cannot register; the
/// reader's own result is returned as it is.
pub async fn registered<F: Future>(
    catalog: &Catalog,
    store: &str,
    backup_id: Option<&str>,
    owner: &str,
    reader: F,
) -> Result<F::Output, LeaseError> {
    let registration = catalog
        .register_reader(store, backup_id, owner, times::now(), lease_ttl())
        .await?
        .with_heartbeat();
    let output = reader.await;
    if let Err(error) = registration.release().await {
        tracing::warn!(%error, owner, "the registration stays until it expires");
    }
    Ok(output)
}

/// A lease held by this run. Dropping it stops its heartbeat without
/// releasing it (it then expires); [`Lease::release`] deletes it.
pub struct Lease {
    catalog: Catalog,
    pk: String,
    sk: String,
    what: String,
    owner: String,
    ttl: SignedDuration,
    lost: Arc<AtomicBool>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }
}

fn expiry(now: Timestamp, ttl: SignedDuration) -> (String, i64) {
    let at = now.saturating_add(ttl).unwrap_or(now);
    (times::format(at), at.as_millisecond())
}

impl Lease {
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Renews the lease every quarter of its length until dropped; a
    /// renewal that finds another owner marks the lease lost.
    pub fn with_heartbeat(mut self) -> Self {
        let (catalog, pk, sk, owner, ttl, lost) = (
            self.catalog.clone(),
            self.pk.clone(),
            self.sk.clone(),
            self.owner.clone(),
            self.ttl,
            self.lost.clone(),
        );
        let every = std::time::Duration::try_from(ttl / 4).unwrap_or(std::time::Duration::from_secs(60));
        self.heartbeat = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match renew(&catalog, &pk, &sk, &owner, ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        lost.store(true, Ordering::Relaxed);
                        return;
                    }
                    Err(error) => tracing::warn!(%error, lease = pk, "could not renew a lease; trying again"),
                }
            }
        }));
        self
    }

    /// Renews the lease now: an error if another run took it over (or the
    /// heartbeat found so), so the caller stops before acting on it.
    pub async fn confirm(&self) -> Result<(), LeaseError> {
        if !self.lost.load(Ordering::Relaxed) && renew(&self.catalog, &self.pk, &self.sk, &self.owner, self.ttl).await?
        {
            return Ok(());
        }
        self.lost.store(true, Ordering::Relaxed);
        let owner = self
            .catalog
            .read_lease(&self.pk, &self.sk)
            .await?
            .map(|l| l.owner)
            .unwrap_or_else(|| "nobody: the lease was deleted".into());
        Err(LeaseError::Lost {
            what: self.what.clone(),
            owner,
        })
    }

    /// Deletes the lease if this run still holds it.
    pub async fn release(mut self) -> Result<(), CatalogError> {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        let deleted = self
            .catalog
            .client
            .delete_item()
            .table_name(&self.catalog.table)
            .key("pk", AttributeValue::S(self.pk.clone()))
            .key("sk", AttributeValue::S(self.sk.clone()))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", AttributeValue::S(self.owner.clone()))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(s)) if s.err().is_conditional_check_failed_exception() => Ok(()),
            Err(e) => Err(self.catalog.error(e)),
        }
    }
}

/// Extends the lease `pk`/`sk` by `ttl` from now if `owner` holds it:
/// `false` if someone else does (or nobody).
async fn renew(catalog: &Catalog, pk: &str, sk: &str, owner: &str, ttl: SignedDuration) -> Result<bool, CatalogError> {
    let (text, ms) = expiry(times::now(), ttl);
    let renewed = catalog
        .client
        .update_item()
        .table_name(&catalog.table)
        .key("pk", AttributeValue::S(pk.to_owned()))
        .key("sk", AttributeValue::S(sk.to_owned()))
        .update_expression("SET expiresAt = :text, expiresAtMs = :ms")
        .condition_expression("#owner = :owner")
        .expression_attribute_names("#owner", "owner")
        .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
        .expression_attribute_values(":text", AttributeValue::S(text))
        .expression_attribute_values(":ms", AttributeValue::N(ms.to_string()))
        .send()
        .await;
    match renewed {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(s)) if s.err().is_conditional_check_failed_exception() => Ok(false),
        Err(e) => Err(catalog.error(e)),
    }
}

impl Catalog {
    /// Takes the lease `pk`/`sk` for `owner` if it is absent or expired at
    /// `now`; else [`LeaseError::Held`] names the holder and its expiry.
    async fn acquire_lease(
        &self,
        (pk, sk, what): (String, String, String),
        owner: &str,
        backup_id: Option<&str>,
        now: Timestamp,
        ttl: SignedDuration,
    ) -> Result<Lease, LeaseError> {
        let (expires_at, expires_at_ms) = expiry(now, ttl);
        let record = LeaseRecord {
            owner: owner.to_owned(),
            acquired_at: times::format(now),
            expires_at,
            expires_at_ms,
            backup_id: backup_id.map(str::to_owned),
        };
        let item = self.to_item(
            &pk,
            LeaseItem {
                pk: pk.clone(),
                sk: sk.clone(),
                record,
            },
        )?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR expiresAtMs < :now")
            .expression_attribute_values(":now", AttributeValue::N(now.as_millisecond().to_string()));
        if !self.put_item_if(put).await? {
            let holder = self.read_lease(&pk, &sk).await?;
            return Err(LeaseError::Held {
                what,
                owner: holder
                    .as_ref()
                    .map(|h| h.owner.clone())
                    .unwrap_or_else(|| "another run".into()),
                expires_at: holder.map(|h| h.expires_at).unwrap_or_else(|| "an unknown time".into()),
            });
        }
        Ok(Lease {
            catalog: self.clone(),
            pk,
            sk,
            what,
            owner: owner.to_owned(),
            ttl,
            lost: Arc::new(AtomicBool::new(false)),
            heartbeat: None,
        })
    }

    async fn read_lease(&self, pk: &str, sk: &str) -> Result<Option<LeaseRecord>, CatalogError> {
        match self.get_item(pk, sk).await? {
            Some(item) => Ok(Some(self.from_item::<LeaseItem>(item)?.record)),
            None => Ok(None),
        }
    }

    /// The garbage-collection lease of store `store`, taken at `now` for
    /// `ttl` (no heartbeat: see [`Lease::with_heartbeat`]).
    pub async fn acquire_gc_lease(
        &self,
        store: &str,
        owner: &str,
        now: Timestamp,
        ttl: SignedDuration,
    ) -> Result<Lease, LeaseError> {
        let what = format!("the garbage-collection lease of store {store}");
        self.acquire_lease(
            (keys::gc_lease_pk(store), keys::GC_LEASE_SK.into(), what),
            owner,
            None,
            now,
            ttl,
        )
        .await
    }

    /// Registers a restore of `backup_id` from store `store` so sweeps wait
    /// for it; renewed by the lease's heartbeat, ended by its release.
    pub async fn register_restore(
        &self,
        store: &str,
        backup_id: &str,
        owner: &str,
        now: Timestamp,
        ttl: SignedDuration,
    ) -> Result<Lease, LeaseError> {
        self.register_reader(store, Some(backup_id), owner, now, ttl).await
    }

    /// Registers a reader of store `store` (a restore or a verification; of
    /// `backup_id`, or of the whole store) so sweeps wait for it, as
    /// [`Catalog::register_restore`] does.
    pub async fn register_reader(
        &self,
        store: &str,
        backup_id: Option<&str>,
        owner: &str,
        now: Timestamp,
        ttl: SignedDuration,
    ) -> Result<Lease, LeaseError> {
        let what = match backup_id {
            Some(id) => format!("the registration of a reader of {id}"),
            None => format!("the registration of a reader of store {store}"),
        };
        let sk = keys::restore_use_sk(owner);
        self.acquire_lease((keys::gc_use_pk(store), sk, what), owner, backup_id, now, ttl)
            .await
    }

    /// The restores of store `store` registered and not expired at `now`.
    pub async fn live_restores(&self, store: &str, now: Timestamp) -> Result<Vec<LeaseRecord>, CatalogError> {
        let mut live = Vec::new();
        for item in self
            .query_sk_prefix(&keys::gc_use_pk(store), keys::RESTORE_USE_SK_PREFIX, None)
            .await?
        {
            let record = self.from_item::<LeaseItem>(item)?.record;
            if record.expires_at_ms >= now.as_millisecond() {
                live.push(record);
            }
        }
        Ok(live)
    }

    /// Takes the next ticket of store `store`'s GC sequence (1, 2, ...).
    pub async fn take_gc_ticket(&self, store: &str) -> Result<u64, CatalogError> {
        let pk = keys::gc_sequence_pk(store);
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.clone()))
            .key("sk", AttributeValue::S(keys::GC_SEQUENCE_SK.into()))
            .update_expression("ADD seq :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        output
            .attributes
            .as_ref()
            .and_then(|a| a.get("seq"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| self.corrupt(pk, "the GC sequence's `seq` is not a number"))
    }

    /// The last ticket taken from store `store`'s GC sequence (0 if none),
    /// read consistently.
    pub async fn gc_sequence(&self, store: &str) -> Result<u64, CatalogError> {
        let pk = keys::gc_sequence_pk(store);
        match self.get_item(&pk, keys::GC_SEQUENCE_SK).await? {
            None => Ok(0),
            Some(item) => item
                .get("seq")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| self.corrupt(pk, "the GC sequence's `seq` is not a number")),
        }
    }

    /// Records a backup's GC ticket in its record (`gcTicket`), only while
    /// it is unfinished.
    pub async fn record_gc_ticket(&self, id: &str, ticket: u64) -> Result<(), CatalogError> {
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(keys::backup_pk(id)))
            .key("sk", AttributeValue::S(keys::BACKUP_SK.into()))
            .update_expression("SET gcTicket = :ticket")
            .condition_expression("#status IN (:pending, :running)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":ticket", AttributeValue::N(ticket.to_string()))
            .expression_attribute_values(":pending", AttributeValue::S("pending".into()))
            .expression_attribute_values(":running", AttributeValue::S("in_progress".into()))
            .send()
            .await;
        match updated {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(s)) if s.err().is_conditional_check_failed_exception() => {
                Err(CatalogError::Conflict {
                    id: id.to_owned(),
                    expected: "pending or in_progress".into(),
                })
            }
            Err(e) => Err(self.error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_items_have_no_gsi_keys_and_round_trip() {
        let record = LeaseRecord {
            owner: "cli:ops@laptop#00000000000000ab".into(),
            acquired_at: "2026-12-07T21:00:00.000Z".into(),
            expires_at: "2026-12-07T21:10:00.000Z".into(),
            expires_at_ms: 1_796_677_800_000,
            backup_id: None,
        };
        let item: super::super::Item = serde_dynamo::to_item(LeaseItem {
            pk: keys::gc_lease_pk("store-1"),
            sk: keys::GC_LEASE_SK.into(),
            record: record.clone(),
        })
        .unwrap();
        assert!(item.keys().all(|k| !k.starts_with("gsi")), "{item:?}");
        assert_eq!(item["expiresAtMs"].as_n().unwrap(), "1796677800000");
        let back: LeaseItem = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back.record, record);
    }

    #[test]
    fn run_owners_differ_between_runs_of_one_actor() {
        let (a, b) = (run_owner("cli:ops@laptop"), run_owner("cli:ops@laptop"));
        assert!(a.starts_with("cli:ops@laptop#"), "{a}");
        assert_ne!(a, b);
    }
}
