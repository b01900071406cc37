//! `lifeboat restore files` and `restore dump`.

use lifeboat::dump::{DumpFileRestoreSummary, DumpRestoreSummary};
use lifeboat::restore::RestoreSummary;

use super::{bytes, json, Renderer};

impl Renderer {
    pub fn restore(&self, s: &RestoreSummary) {
        if !self.is_text() {
            return json(s);
        }
        println!(
            "Restored {} entries ({}) of backup {} to {} in {:.1} s; every chunk and every file checksum verified.",
            s.entries_restored,
            bytes(s.bytes_restored),
            s.backup_id,
            s.target,
            s.duration_seconds
        );
    }

    pub fn restore_dump(&self, s: &DumpRestoreSummary) {
        if !self.is_text() {
            return json(s);
        }
        println!(
            "Restored backup {} ({} dump, {}) into {}{} in {:.1} s; every chunk and the dump's checksum verified.",
            s.backup_id,
            s.engine.as_str(),
            bytes(s.bytes_restored),
            s.target,
            if s.created_database { " (created)" } else { "" },
            s.duration_seconds
        );
        if s.tables.is_empty() {
            println!("  the database has no tables");
        }
        for t in &s.tables {
            println!("  {:<40} {:>12} rows", t.table, t.rows);
        }
    }

    pub fn restore_dump_file(&self, s: &DumpFileRestoreSummary) {
        if !self.is_text() {
            return json(s);
        }
        println!(
            "Restored backup {} ({} dump, {}) into the file {} in {:.1} s; every chunk and the dump's checksum verified.",
            s.backup_id,
            s.engine.as_str(),
            bytes(s.bytes_restored),
            s.path,
            s.duration_seconds
        );
    }
}
