//! `lifeboat init`, `backup files|dump`, `backups list|show` and `keys rewrap`.

use lifeboat::backup::BackupSummary;
use lifeboat::catalog::{BackupRecord, VerificationRecord};
use lifeboat::repo::InitOutcome;

use super::{bytes, json, Renderer};

impl Renderer {
    pub fn init(&self, outcome: &InitOutcome, table: &str, table_created: Option<bool>) {
        let (repo, created) = match outcome {
            InitOutcome::Created(repo) => (repo, true),
            InitOutcome::AlreadyInitialised(repo) => (repo, false),
        };
        if !self.is_text() {
            json(&serde_json::json!({
                "store": repo.location(),
                "storeId": repo.config.store_id,
                "kmsKeyId": repo.config.kms_key_id,
                "created": created,
                "table": table,
                "tableCreated": table_created,
            }));
            return;
        }
        match table_created {
            Some(true) => println!("Created catalog table {table}."),
            Some(false) => println!("Catalog table {table} already exists; left as it is."),
            None => {}
        }
        if created {
            println!(
                "Initialised store {} (id {}), keys wrapped by {}.",
                repo.location(),
                repo.config.store_id,
                repo.config.kms_key_id
            );
        } else {
            println!(
                "Store {} is already initialised (id {}, keys wrapped by {}); nothing changed.",
                repo.location(),
                repo.config.store_id,
                repo.config.kms_key_id
            );
        }
    }

    pub fn backup(&self, s: &BackupSummary) {
        if !self.is_text() {
            return json(s);
        }
        if s.duplicate {
            println!(
                "Backup {} ({}) already exists for this event; no new backup made.",
                s.backup_id,
                s.status.as_str()
            );
            return;
        }
        let skipped = match s.skipped.len() {
            0 => String::new(),
            n => format!(" with {n} skipped entries"),
        };
        println!(
            "Backup {} completed{skipped}: {} of {}",
            s.backup_id,
            s.backup_type.as_str(),
            s.source
        );
        if let Some(parent) = &s.parent_backup {
            println!("  parent           {parent}");
        }
        println!(
            "  entries          {} scanned, {} new or changed",
            s.entries_scanned, s.entries_changed
        );
        println!(
            "  data             {} in the backup, {} read",
            bytes(s.bytes_scanned),
            bytes(s.bytes_read)
        );
        println!(
            "  stored           {} new ({} new data before compression)",
            bytes(s.bytes_stored),
            bytes(s.bytes_new)
        );
        if s.reduction_ratio > 0.0 {
            println!(
                "  reduction        {:.2}x (deduplication and compression)",
                s.reduction_ratio
            );
        }
        println!("  took             {:.1} s", s.duration_seconds);
        for (i, entry) in s.skipped.iter().enumerate() {
            let label = if i == 0 { "skipped" } else { "" };
            println!("  {label:<16} {}: {}", entry.path, entry.reason);
        }
    }

    pub fn backups(&self, records: &[BackupRecord]) {
        if !self.is_text() {
            return json(&records);
        }
        if records.is_empty() {
            println!("No backups.");
            return;
        }
        println!(
            "{:<28}  {:<12}  {:<11}  {:>10}  {:>10}  {:<24}  SOURCE",
            "ID", "TYPE", "STATUS", "SIZE", "STORED", "CREATED"
        );
        for r in records {
            println!(
                "{:<28}  {:<12}  {:<11}  {:>10}  {:>10}  {:<24}  {}",
                r.id,
                r.backup_type.as_str(),
                r.status.as_str(),
                bytes(r.size),
                bytes(r.compressed_size),
                r.created_at,
                r.source
            );
        }
    }

    pub fn backup_record(&self, r: &BackupRecord) {
        if !self.is_text() {
            return json(r);
        }
        let rows: [(&str, String); 13] = [
            ("id", r.id.clone()),
            ("type", r.backup_type.as_str().to_owned()),
            ("status", r.status.as_str().to_owned()),
            ("source", r.source.clone()),
            (
                "size",
                format!(
                    "{} ({} entries, {} read)",
                    bytes(r.size),
                    r.entry_count,
                    r.changed_count
                ),
            ),
            ("stored", bytes(r.compressed_size)),
            ("created", r.created_at.clone()),
            ("completed", r.completed_at.clone().unwrap_or_else(|| "-".into())),
            (
                "retention until",
                r.retention_until.clone().unwrap_or_else(|| "-".into()),
            ),
            ("parent", r.parent_backup.clone().unwrap_or_else(|| "-".into())),
            ("manifest", r.storage_location.clone()),
            ("checksum", r.checksum.clone().unwrap_or_else(|| "-".into())),
            ("kms key", r.kms_key_id.clone()),
        ];
        for (name, value) in rows {
            println!("{name:<16} {value}");
        }
        for (name, value) in [
            ("engine", &r.engine),
            ("server version", &r.server_version),
            ("database", &r.database),
        ] {
            if let Some(value) = value {
                println!("{name:<16} {value}");
            }
        }
        if let Some(error) = &r.error {
            println!("{:<16} {error}", "error");
        }
    }

    /// The last row of `backups show` (text only: the JSON is the record).
    pub fn last_verification(&self, v: Option<&VerificationRecord>) {
        let text = match v {
            None => "never (run `lifeboat verify`)".to_owned(),
            Some(v) => format!(
                "{} {}, {}",
                v.verification_type.as_str(),
                v.status.as_str(),
                v.completed_at
            ),
        };
        println!("{:<16} {text}", "last verified");
    }

    pub fn rewrap(&self, store: &str, old: &str, new: &str) {
        if !self.is_text() {
            return json(&serde_json::json!({"store": store, "previousKmsKeyId": old, "kmsKeyId": new}));
        }
        println!("Store {store}: keys re-wrapped from {old} to {new}; no data was rewritten.");
    }
}
