//! The `catalog` object: which catalog table (and region) records a store's
//! backups. Plain JSON next to `config` (FORMAT.md, "Catalog binding").
//! Written once, by `lifeboat init` or by the first backup or garbage
//! collection of a store that has none; never rewritten.

use serde::{Deserialize, Serialize};

use super::{FormatError, FORMAT_VERSION};

/// The longest `catalog` object read: a table name is at most 255 bytes.
pub const MAX_BINDING_LEN: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogBinding {
    pub version: u32,
    /// The `storeId` of the store's `config`: a `catalog` object copied
    /// from another store is not this store's binding.
    pub store_id: String,
    /// The DynamoDB table that records the store's backups.
    pub table: String,
    /// The table's region.
    pub region: String,
    /// When the binding was written (RFC 3339).
    pub created_at: String,
}

impl CatalogBinding {
    pub fn new(store_id: &str, table: &str, region: &str, created_at: String) -> Self {
        Self {
            version: FORMAT_VERSION,
            store_id: store_id.to_owned(),
            table: table.to_owned(),
            region: region.to_owned(),
            created_at,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parses a `catalog` object; `what` names it in errors.
    pub fn from_json(bytes: &[u8], what: &str) -> Result<Self, FormatError> {
        if bytes.len() > MAX_BINDING_LEN {
            return Err(FormatError::invalid(
                what,
                format!(
                    "{} bytes, more than the {MAX_BINDING_LEN} a catalog binding takes",
                    bytes.len()
                ),
            ));
        }
        let binding: Self = serde_json::from_slice(bytes).map_err(|e| FormatError::invalid(what, e))?;
        if binding.version != FORMAT_VERSION {
            return Err(FormatError::Version {
                what: what.to_owned(),
                found: binding.version,
            });
        }
        Ok(binding)
    }

    /// Whether this binding names `table` in `region`.
    pub fn names(&self, table: &str, region: &str) -> bool {
        self.table == table && self.region == region
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_round_trip_in_camel_case() {
        let binding = CatalogBinding::new("ab", "lifeboat-catalog", "eu-west-1", "2026-12-07T21:00:00Z".into());
        let json = binding.to_json();
        assert!(String::from_utf8_lossy(&json).contains("\"storeId\""));
        assert_eq!(CatalogBinding::from_json(&json, "catalog").unwrap(), binding);
        assert!(binding.names("lifeboat-catalog", "eu-west-1"));
        assert!(!binding.names("lifeboat-catalog", "us-east-1"));
        assert!(!binding.names("other", "eu-west-1"));
    }

    #[test]
    fn oversized_unknown_version_and_garbage_bindings_are_refused() {
        assert!(CatalogBinding::from_json(&vec![b' '; MAX_BINDING_LEN + 1], "c").is_err());
        let mut binding = CatalogBinding::new("ab", "t", "r", "x".into());
        binding.version = 7;
        let err = CatalogBinding::from_json(&binding.to_json(), "s3://b/catalog").unwrap_err();
        assert!(err.to_string().contains("version 7"), "{err}");
        assert!(CatalogBinding::from_json(b"<html>", "c").is_err());
    }
}
