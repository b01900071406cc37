//! What the commands share: the AWS clients and the catalog (set up once),
//! opening the store, resolving `latest`, the one `--at` parser, reading a
//! plan file, and appending to the audit trail.

use std::sync::Arc;

use anyhow::{anyhow, Result};
use lifeboat::audit::AuditEvent;
use lifeboat::aws::{load_config, Clients};
use lifeboat::catalog::Catalog;
use lifeboat::db::url::DatabaseUrl;
use lifeboat::ids::BackupId;
use lifeboat::keys::Kms;
use lifeboat::repo::{storage_for, Repository};
use lifeboat::storage::{Location, Storage};

use crate::cli::Global;
use crate::render::Renderer;

/// What every command that talks to AWS shares: the global options, the
/// clients, the catalog, the output style.
pub struct Env {
    pub global: Global,
    pub clients: Clients,
    pub catalog: Catalog,
    pub out: Renderer,
}

impl Env {
    /// Loads the AWS configuration once (region from --region or the standard chain).
    pub async fn new(global: Global) -> Result<Self> {
        let config = load_config(global.region.as_deref()).await?;
        let clients = Clients::new(&config);
        let catalog = Catalog::new(clients.dynamodb.clone(), &global.table, &clients.region);
        let out = Renderer::new(global.output);
        Ok(Self {
            global,
            clients,
            catalog,
            out,
        })
    }

    /// The store named by --store (or LIFEBOAT_STORE).
    pub fn store(&self) -> Result<Location> {
        let text = self
            .global
            .store
            .as_deref()
            .ok_or_else(|| anyhow!("no store given: pass --store s3://BUCKET[/PREFIX] or set LIFEBOAT_STORE"))?;
        Location::parse(text).map_err(|e| anyhow!("--store: {e}"))
    }

    /// The store's storage and key prefix, not yet opened.
    pub fn storage(&self) -> Result<(Storage, String)> {
        let location = self.store()?;
        Ok(storage_for(&location, &self.clients.s3, &self.clients.region))
    }

    pub fn kms(&self) -> Kms {
        Kms::new(self.clients.kms.clone(), &self.clients.region)
    }

    /// The store, opened with its keys unwrapped (by --kms-key, if given).
    pub async fn open_repo(&self) -> Result<Arc<Repository>> {
        let (storage, prefix) = self.storage()?;
        let repo = Repository::open(storage, &prefix, &self.kms(), self.global.kms_key.as_deref()).await?;
        Ok(Arc::new(repo))
    }

    /// A backup id, or the newest completed backup of `source` for `latest`.
    pub async fn resolve_backup(&self, id: &str, source: Option<&str>) -> Result<String> {
        if id != "latest" {
            return BackupId::parse(id).map(|b| b.to_string()).ok_or_else(|| {
                anyhow!(
                    "{id:?} is not a backup id (bk-YYYYMMDDTHHMMSSZ-XXXXXXXX) or `latest`: see `lifeboat backups list`"
                )
            });
        }
        let source = source.ok_or_else(|| anyhow!("`latest` needs --source to say which source's latest backup"))?;
        let name = canonical_source(source)?;
        let record = self.catalog.latest_completed(&name, |_| true).await?.ok_or_else(|| {
            anyhow!(
                "source {name} has no completed backup in catalog table {}",
                self.catalog.table()
            )
        })?;
        Ok(record.id)
    }

    /// Appends to the audit trail after something was done. What was done
    /// stands: a trail that cannot be written is a warning, not a failure.
    pub async fn audit(&self, event: AuditEvent) {
        let (action, subject) = (event.action.clone(), event.subject.clone());
        if let Err(error) = self.catalog.audit_trail().append(event).await {
            tracing::warn!(%action, %subject, %error, "done, but not recorded in the audit trail");
        }
    }
}

/// The name the catalog records for a source (see `lifeboat::source::Source::name`).
pub fn canonical_source(text: &str) -> Result<String> {
    if let Ok(url) = DatabaseUrl::parse(text) {
        return Ok(url.to_string());
    }
    match Location::parse(text).map_err(|e| anyhow!("source: {e}"))? {
        Location::S3 { bucket, prefix } if prefix.is_empty() => Ok(format!("s3://{bucket}/")),
        Location::S3 { bucket, prefix } => Ok(format!("s3://{bucket}/{prefix}/")),
        Location::Dir(path) => Ok(std::path::absolute(&path).unwrap_or(path).display().to_string()),
    }
}

/// A strict backup id (no `latest`).
pub fn backup_id(id: &str) -> Result<String> {
    BackupId::parse(id)
        .map(|b| b.to_string())
        .ok_or_else(|| anyhow!("{id:?} is not a backup id (bk-YYYYMMDDTHHMMSSZ-XXXXXXXX): see `lifeboat backups list`"))
}

/// `--at`: an RFC 3339 time, or now when not given. The one parser of every command's `--at`.
pub fn parse_at(at: Option<&str>) -> Result<jiff::Timestamp> {
    match at {
        Some(text) => text
            .parse::<jiff::Timestamp>()
            .map_err(|e| anyhow!("--at {text:?} is not an RFC 3339 time such as 2026-11-23T10:00:00Z ({e})")),
        None => Ok(jiff::Timestamp::now()),
    }
}
