//! The disaster-recovery plan file (TOML; README.md, "Disaster-recovery
//! plans"; a documented sample is `examples/dr.toml`).
//!
//! Pure: no AWS, no I/O but reading the checks files a plan names. Unknown
//! fields are refused and every error names the database and the field, so
//! a typo cannot silently switch the wrong record or skip a check.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::validate::{self, Checks};

/// What is wrong with a DR plan file.
#[derive(Debug, thiserror::Error)]
pub enum DrPlanError {
    #[error("cannot read DR plan {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("DR plan {path} is not valid: {message}")]
    Syntax { path: String, message: String },
    #[error("DR plan {path}, {field}: {message}")]
    Field {
        path: String,
        field: String,
        message: String,
    },
    #[error("DR plan {path}, {field}: {error}")]
    Checks {
        path: String,
        field: String,
        error: Box<validate::ValidateError>,
    },
}

/// How a database comes back in the DR region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Promote a cross-region read replica that already runs in the DR region.
    Replica,
    /// Restore the newest snapshot copied to the DR region.
    Snapshot,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replica => "replica",
            Self::Snapshot => "snapshot",
        }
    }
}

/// A validated DR plan.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrPlan {
    pub name: String,
    pub primary_region: String,
    pub dr_region: String,
    pub databases: Vec<DrDatabase>,
}

/// One database of a plan.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrDatabase {
    /// The plan's name for it: step names are `NAME/STEP`.
    pub name: String,
    /// The primary's DB instance identifier in the primary region.
    pub primary_instance: String,
    pub strategy: Strategy,
    /// The instance that becomes the writer in the DR region: the read
    /// replica (replica strategy) or the instance a snapshot is restored as.
    pub dr_instance: String,
    /// The new primary a failback creates in the primary region.
    pub failback_instance: String,
    /// Instance class for restores (snapshot strategy, drills); default: the snapshot's.
    pub instance_class: Option<String>,
    pub subnet_group: Option<String>,
    pub security_groups: Vec<String>,
    /// KMS key in the primary region for the failback replica (needed when the DR instance is encrypted).
    pub primary_kms_key: Option<String>,
    pub checks: Option<Checks>,
    pub records: Vec<DrRecord>,
}

/// Where a Route 53 hosted zone is found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ZoneRef {
    Name(String),
    Id(String),
}

impl std::fmt::Display for ZoneRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Name(name) => write!(f, "hosted zone {name}"),
            Self::Id(id) => write!(f, "hosted zone {id}"),
        }
    }
}

/// A DNS record switched to the DR database (and back by failback).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrRecord {
    pub zone: ZoneRef,
    /// Fully qualified, without the trailing dot.
    pub name: String,
    pub record_type: String,
    pub ttl: i64,
    /// The failover target; default: the DR instance's endpoint address.
    pub target: Option<String>,
    /// The failback target; default: the failback instance's endpoint address.
    pub failback_target: Option<String>,
}

// The file's boundary types: snake_case, unknown fields refused.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanToml {
    name: String,
    primary_region: String,
    dr_region: String,
    #[serde(default)]
    database: Vec<DatabaseToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseToml {
    name: String,
    primary_instance: String,
    strategy: Strategy,
    #[serde(default)]
    replica_instance: Option<String>,
    #[serde(default)]
    restore_instance: Option<String>,
    #[serde(default)]
    failback_instance: Option<String>,
    #[serde(default)]
    instance_class: Option<String>,
    #[serde(default)]
    subnet_group: Option<String>,
    #[serde(default)]
    security_groups: Vec<String>,
    #[serde(default)]
    primary_kms_key: Option<String>,
    #[serde(default)]
    checks: Option<String>,
    #[serde(default)]
    validation: Option<toml::Table>,
    #[serde(default)]
    record: Vec<RecordToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordToml {
    #[serde(default)]
    zone: Option<String>,
    #[serde(default)]
    zone_id: Option<String>,
    name: String,
    #[serde(default, rename = "type")]
    record_type: Option<String>,
    #[serde(default)]
    ttl: Option<i64>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    failback_target: Option<String>,
}

/// Reads and validates a DR plan file; a relative `checks` path is read
/// relative to the plan file's directory.
pub fn load(path: &Path) -> Result<DrPlan, DrPlanError> {
    let text = std::fs::read_to_string(path).map_err(|error| DrPlanError::Read {
        path: path.to_owned(),
        error,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, &path.display().to_string(), base)
}

/// Where in a plan file a field is, to name it in errors: `prefix` is
/// empty for the plan's own fields, `database #1 (orders), ` for a
/// database's, `database #1 (orders), record #2, ` for a record's.
struct Place<'a> {
    path: &'a str,
    prefix: String,
}

impl Place<'_> {
    fn field(&self, name: &str, message: String) -> DrPlanError {
        DrPlanError::Field {
            path: self.path.to_owned(),
            field: format!("{}{name}", self.prefix),
            message,
        }
    }

    fn checks(&self, name: &str, error: validate::ValidateError) -> DrPlanError {
        DrPlanError::Checks {
            path: self.path.to_owned(),
            field: format!("{}{name}", self.prefix),
            error: Box::new(error),
        }
    }

    fn inner(&self, prefix: String) -> Place<'_> {
        Place {
            path: self.path,
            prefix: format!("{}{prefix}, ", self.prefix),
        }
    }
}

/// Validates a DR plan's text; `path` names it in errors, `base` is where
/// relative checks files are looked up.
pub fn parse(text: &str, path: &str, base: &Path) -> Result<DrPlan, DrPlanError> {
    let raw: PlanToml = toml::from_str(text).map_err(|e| DrPlanError::Syntax {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    let place = Place {
        path,
        prefix: String::new(),
    };
    check_name(&raw.name).map_err(|m| place.field("name", m))?;
    for (key, region) in [("primary_region", &raw.primary_region), ("dr_region", &raw.dr_region)] {
        check_region(region).map_err(|m| place.field(key, m))?;
    }
    if raw.primary_region == raw.dr_region {
        return Err(place.field(
            "dr_region",
            format!(
                "is the primary region {}: a DR region must be another region",
                raw.primary_region
            ),
        ));
    }
    if raw.database.is_empty() {
        return Err(place.field(
            "database",
            "the plan has no [[database]]: list each database to fail over".into(),
        ));
    }
    let mut names = BTreeSet::new();
    let mut databases = Vec::new();
    for (i, db) in raw.database.into_iter().enumerate() {
        let place = place.inner(format!("database #{} ({})", i + 1, db.name));
        check_name(&db.name).map_err(|m| place.field("name", m))?;
        if !names.insert(db.name.clone()) {
            return Err(place.field("name", "another database of the plan has this name".into()));
        }
        databases.push(database(db, &place, base)?);
    }
    Ok(DrPlan {
        name: raw.name,
        primary_region: raw.primary_region,
        dr_region: raw.dr_region,
        databases,
    })
}

/// One `[[database]]`, its name already checked.
fn database(db: DatabaseToml, place: &Place<'_>, base: &Path) -> Result<DrDatabase, DrPlanError> {
    check_instance_id(&db.primary_instance).map_err(|m| place.field("primary_instance", m))?;
    let dr_instance = dr_instance(&db, place)?;
    let failback_instance = db
        .failback_instance
        .clone()
        .unwrap_or_else(|| format!("{}-failback", db.primary_instance));
    check_instance_id(&failback_instance).map_err(|m| place.field("failback_instance", m))?;
    if failback_instance == db.primary_instance {
        return Err(place.field(
            "failback_instance",
            "is the primary instance's identifier: failback creates a new instance beside the old primary".into(),
        ));
    }
    let checks = checks(db.checks, db.validation, place, base)?;
    let mut records = Vec::new();
    for (j, record_toml) in db.record.into_iter().enumerate() {
        records.push(record(record_toml, &place.inner(format!("record #{}", j + 1)))?);
    }
    Ok(DrDatabase {
        name: db.name,
        primary_instance: db.primary_instance,
        strategy: db.strategy,
        dr_instance,
        failback_instance,
        instance_class: db.instance_class,
        subnet_group: db.subnet_group,
        security_groups: db.security_groups,
        primary_kms_key: db.primary_kms_key,
        checks,
        records,
    })
}

/// The instance that becomes the writer in the DR region: the replica
/// (strategy `replica`) or the instance a snapshot is restored as.
fn dr_instance(db: &DatabaseToml, place: &Place<'_>) -> Result<String, DrPlanError> {
    let (dr_instance, dr_key) = match db.strategy {
        Strategy::Replica => {
            if db.restore_instance.is_some() {
                return Err(place.field(
                    "restore_instance",
                    "is for strategy \"snapshot\"; a replica strategy names its replica_instance".into(),
                ));
            }
            let replica = db.replica_instance.clone().ok_or_else(|| {
                place.field(
                    "replica_instance",
                    "missing: strategy \"replica\" needs the read replica's identifier in the DR region".into(),
                )
            })?;
            (replica, "replica_instance")
        }
        Strategy::Snapshot => {
            if db.replica_instance.is_some() {
                return Err(place.field(
                    "replica_instance",
                    "is for strategy \"replica\"; a snapshot strategy names its restore_instance (optional)".into(),
                ));
            }
            let restored = db
                .restore_instance
                .clone()
                .unwrap_or_else(|| db.primary_instance.clone());
            (restored, "restore_instance")
        }
    };
    check_instance_id(&dr_instance).map_err(|m| place.field(dr_key, m))?;
    Ok(dr_instance)
}

/// A database's checks: from a checks file (relative to `base`) or inline.
fn checks(
    file: Option<String>,
    inline: Option<toml::Table>,
    place: &Place<'_>,
    base: &Path,
) -> Result<Option<Checks>, DrPlanError> {
    match (file, inline) {
        (Some(_), Some(_)) => Err(place.field(
            "checks",
            "give either a checks file or an inline [database.validation], not both".into(),
        )),
        (Some(file), None) => {
            let file = base.join(file);
            Ok(Some(
                validate::load(&file).map_err(|error| place.checks("checks", error))?,
            ))
        }
        (None, Some(table)) => {
            let text = toml::to_string(&table).map_err(|e| place.field("validation", e.to_string()))?;
            Ok(Some(
                validate::parse(&text).map_err(|error| place.checks("validation", error))?,
            ))
        }
        (None, None) => Ok(None),
    }
}

/// One `[[database.record]]`.
fn record(record: RecordToml, place: &Place<'_>) -> Result<DrRecord, DrPlanError> {
    let zone = match (record.zone, record.zone_id) {
        (Some(name), None) => ZoneRef::Name(name.trim_end_matches('.').to_ascii_lowercase()),
        (None, Some(id)) => ZoneRef::Id(id.trim_start_matches("/hostedzone/").to_owned()),
        _ => {
            return Err(place.field(
                "zone",
                "give exactly one of zone (the hosted zone's name) and zone_id".into(),
            ))
        }
    };
    let name = record.name.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(place.field("name", format!("{:?} is not a DNS name", record.name)));
    }
    if let ZoneRef::Name(zone) = &zone {
        if name != *zone && !name.ends_with(&format!(".{zone}")) {
            return Err(place.field("name", format!("{name} is not in the zone {zone}")));
        }
    }
    let record_type = record
        .record_type
        .unwrap_or_else(|| "CNAME".into())
        .to_ascii_uppercase();
    if !["CNAME", "A", "AAAA"].contains(&record_type.as_str()) {
        return Err(place.field(
            "type",
            format!("{record_type} is not supported: use CNAME (the default), A or AAAA"),
        ));
    }
    if record_type != "CNAME" && record.target.is_none() {
        return Err(place.field(
            "target",
            format!("a {record_type} record needs an explicit target: an RDS endpoint is a DNS name (CNAME)"),
        ));
    }
    let ttl = record.ttl.unwrap_or(60);
    if !(0..=172_800).contains(&ttl) {
        return Err(place.field("ttl", format!("{ttl} is out of range 0-172800 seconds")));
    }
    Ok(DrRecord {
        zone,
        name,
        record_type,
        ttl,
        target: record.target,
        failback_target: record.failback_target,
    })
}

/// Plan and database names: lowercase letters, digits, single hyphens.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a name: 1-40 lowercase letters, digits and single hyphens, starting with a letter"
        ))
    }
}

fn check_region(region: &str) -> Result<(), String> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        && parts.last().is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(format!("{region:?} is not an AWS region such as eu-central-1"))
    }
}

/// RDS DB instance identifiers: 1-63 letters, digits and hyphens, starting
/// with a letter, no two hyphens in a row, not ending with one.
pub fn check_instance_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && !id.ends_with('-')
        && !id.contains("--")
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{id:?} is not an RDS DB instance identifier: 1-63 letters, digits and hyphens, starting with a letter, no `--`, not ending with `-`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "prod"
primary_region = "eu-central-1"
dr_region = "us-west-2"

[[database]]
name = "orders"
primary_instance = "orders-db"
strategy = "replica"
replica_instance = "orders-db-dr"
[[database.record]]
zone = "example.internal."
name = "Orders.example.internal"

[[database]]
name = "billing"
primary_instance = "billing-db"
strategy = "snapshot"
instance_class = "db.t3.micro"
[database.validation]
url = "postgres://app@{host}:{port}/billing"
[[database.validation.check]]
name = "invoices"
sql = "SELECT count(*) FROM invoices"
at_least = 1
[[database.record]]
zone_id = "/hostedzone/Z123"
name = "billing.example.internal"
type = "cname"
ttl = 30
target = "billing.dr.example.internal"
"#;

    fn parse_text(text: &str) -> Result<DrPlan, DrPlanError> {
        parse(text, "dr.toml", Path::new("."))
    }

    #[test]
    fn a_good_plan_is_read_with_its_defaults() {
        let plan = parse_text(GOOD).expect("valid");
        assert_eq!(plan.name, "prod");
        let orders = &plan.databases[0];
        assert_eq!(orders.strategy, Strategy::Replica);
        assert_eq!(orders.dr_instance, "orders-db-dr");
        assert_eq!(orders.failback_instance, "orders-db-failback");
        assert!(orders.checks.is_none());
        let record = &orders.records[0];
        assert_eq!(record.zone, ZoneRef::Name("example.internal".into()));
        assert_eq!(record.name, "orders.example.internal");
        assert_eq!((record.record_type.as_str(), record.ttl), ("CNAME", 60));
        let billing = &plan.databases[1];
        assert_eq!(
            billing.dr_instance, "billing-db",
            "a restore is named like the primary by default"
        );
        assert_eq!(billing.checks.as_ref().map(|c| c.checks.len()), Some(1));
        assert_eq!(billing.records[0].zone, ZoneRef::Id("Z123".into()));
        assert_eq!(billing.records[0].ttl, 30);
    }

    fn error_of(from: &str, to: &str) -> String {
        assert!(GOOD.contains(from), "the sample has {from:?}");
        match parse_text(&GOOD.replacen(from, to, 1)) {
            Ok(_) => panic!("{from:?} → {to:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_mistake_names_its_field() {
        let cases = [
            ("name = \"prod\"", "name = \"prod\"\ncolour = \"red\"", "colour"),
            (
                "strategy = \"replica\"",
                "strategy = \"replica\"\nreplica_instace = \"x\"",
                "replica_instace",
            ),
            ("ttl = 30", "ttl = 30\ntarget_zone = \"x\"", "target_zone"),
            ("strategy = \"replica\"", "strategy = \"promote\"", "promote"),
            ("dr_region = \"us-west-2\"", "dr_region = \"eu-central-1\"", "dr_region"),
            ("dr_region = \"us-west-2\"", "dr_region = \"uswest\"", "dr_region"),
            ("replica_instance = \"orders-db-dr\"", "", "replica_instance"),
            ("name = \"orders\"", "name = \"billing\"", "database #2 (billing), name"),
            (
                "primary_instance = \"orders-db\"",
                "primary_instance = \"orders--db\"",
                "primary_instance",
            ),
            (
                "zone = \"example.internal.\"",
                "zone = \"example.internal.\"\nzone_id = \"Z1\"",
                "record #1, zone",
            ),
            (
                "name = \"Orders.example.internal\"",
                "name = \"orders.example.com\"",
                "record #1, name",
            ),
            ("type = \"cname\"", "type = \"MX\"", "record #1, type"),
            (
                "type = \"cname\"\nttl = 30\ntarget = \"billing.dr.example.internal\"",
                "type = \"A\"",
                "record #1, target",
            ),
            ("ttl = 30", "ttl = -1", "record #1, ttl"),
            ("at_least = 1", "at_least = 1\nabove = 3", "validation"),
            ("name = \"orders\"", "name = \"Orders\"", "name"),
        ];
        for (from, to, expected) in cases {
            let error = error_of(from, to);
            assert!(
                error.contains(expected),
                "{from:?} → {to:?}: {error:?} does not name {expected:?}"
            );
        }
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/dr.toml");
        let plan = load(&path).expect("examples/dr.toml is valid");
        assert_eq!(plan.databases.len(), 2);
        assert_eq!(plan.databases[0].failback_instance, "orders-db-fb");
        assert_eq!(plan.databases[1].strategy, Strategy::Snapshot);
        assert!(plan
            .databases
            .iter()
            .all(|d| d.checks.is_some() && !d.records.is_empty()));
    }

    #[test]
    fn a_plan_without_databases_is_refused() {
        let error = parse_text("name = \"p\"\nprimary_region = \"eu-central-1\"\ndr_region = \"us-west-2\"\n")
            .expect_err("no databases")
            .to_string();
        assert!(error.contains("database"), "{error}");
    }

    #[test]
    fn a_checks_file_is_read_relative_to_the_plan() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("orders.toml"),
            "url = \"postgres://postgres@127.0.0.1:5432/orders\"\n[[check]]\nname = \"one\"\nsql = \"SELECT 1\"\nequals = 1\n",
        )
        .expect("write checks");
        let text = GOOD.replacen(
            "strategy = \"replica\"",
            "strategy = \"replica\"\nchecks = \"orders.toml\"",
            1,
        );
        std::fs::write(dir.path().join("dr.toml"), text).expect("write plan");
        let plan = load(&dir.path().join("dr.toml")).expect("valid");
        let checks = plan.databases[0].checks.as_ref().expect("checks");
        assert_eq!(checks.url, "postgres://postgres@127.0.0.1:5432/orders");
        let missing = GOOD.replacen(
            "strategy = \"replica\"",
            "strategy = \"replica\"\nchecks = \"nope.toml\"",
            1,
        );
        let error = parse(&missing, "dr.toml", dir.path())
            .expect_err("missing checks file")
            .to_string();
        assert!(error.contains("checks"), "{error}");
    }
}
