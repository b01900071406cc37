//! The Route 53 calls a failover or failback makes, each error naming the zone, the
//! record and what to do. (RDS is `crate::rds`.)

use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
use serde::{Deserialize, Serialize};

use super::plan::{DrRecord, ZoneRef};
use crate::aws::error_code;

/// A Route 53 call that failed, or a hosted zone the plan names that does
/// not resolve to exactly one zone.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("Route 53, {action} on {what}: {message}")]
    Route53 {
        action: String,
        what: String,
        message: String,
    },
    #[error("no Route 53 hosted zone is named {zone}: create it (or fix the plan's zone), then run again")]
    NoZone { zone: String },
    #[error("several Route 53 hosted zones are named {zone} ({}): name the one to change with zone_id", ids.join(", "))]
    AmbiguousZone { zone: String, ids: Vec<String> },
}

/// Route 53 (a global service).
#[derive(Clone, Debug)]
pub struct Dns {
    pub client: aws_sdk_route53::Client,
}

/// A record's value before and after a switch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordSwitch {
    pub zone_id: String,
    pub name: String,
    pub record_type: String,
    pub from: Option<String>,
    pub to: String,
    /// The Route 53 change id, or `None` when the record already pointed at the target.
    pub change_id: Option<String>,
}

/// DNS names compare without case and trailing dot.
pub fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.').eq_ignore_ascii_case(b.trim_end_matches('.'))
}

impl Dns {
    fn error<E, R>(&self, action: &str, what: &str, error: aws_sdk_route53::error::SdkError<E, R>) -> DnsError
    where
        E: aws_sdk_route53::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let (code, message) = error_code(&error);
        DnsError::Route53 {
            action: action.to_owned(),
            what: what.to_owned(),
            message: match code {
                Some(code) => format!("{code}: {message}"),
                None => message,
            },
        }
    }

    /// The hosted zone's id.
    pub async fn zone_id(&self, zone: &ZoneRef) -> Result<String, DnsError> {
        match zone {
            ZoneRef::Id(id) => Ok(id.clone()),
            ZoneRef::Name(name) => {
                let answer = self
                    .client
                    .list_hosted_zones_by_name()
                    .dns_name(name)
                    .send()
                    .await
                    .map_err(|e| self.error("ListHostedZonesByName", &format!("hosted zone {name}"), e))?;
                let found: Vec<&str> = answer
                    .hosted_zones()
                    .iter()
                    .filter(|z| same_name(z.name(), name))
                    .map(|z| z.id().trim_start_matches("/hostedzone/"))
                    .collect();
                match found.as_slice() {
                    [id] => Ok((*id).to_owned()),
                    [] => Err(DnsError::NoZone { zone: name.clone() }),
                    _ => Err(DnsError::AmbiguousZone {
                        zone: name.clone(),
                        ids: found.iter().map(|s| (*s).to_owned()).collect(),
                    }),
                }
            }
        }
    }

    /// The record's current value (the first, for records with several).
    pub async fn current(&self, zone_id: &str, record: &DrRecord) -> Result<Option<String>, DnsError> {
        let answer = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(zone_id)
            .start_record_name(&record.name)
            .start_record_type(RrType::from(record.record_type.as_str()))
            .max_items(1)
            .send()
            .await
            .map_err(|e| {
                self.error(
                    "ListResourceRecordSets",
                    &format!("{} in hosted zone {zone_id}", record.name),
                    e,
                )
            })?;
        Ok(answer
            .resource_record_sets()
            .iter()
            .find(|r| same_name(r.name(), &record.name) && r.r#type().as_str() == record.record_type)
            .and_then(|r| r.resource_records().first())
            .map(|v| v.value().trim_end_matches('.').to_owned()))
    }

    /// Points the record at `target` (UPSERT), unless it already points there.
    pub async fn switch(&self, record: &DrRecord, target: &str) -> Result<RecordSwitch, DnsError> {
        let zone_id = self.zone_id(&record.zone).await?;
        let from = self.current(&zone_id, record).await?;
        let mut switch = RecordSwitch {
            zone_id: zone_id.clone(),
            name: record.name.clone(),
            record_type: record.record_type.clone(),
            from: from.clone(),
            to: target.to_owned(),
            change_id: None,
        };
        if from.as_deref().is_some_and(|from| same_name(from, target)) {
            return Ok(switch);
        }
        let what = format!("{} {} in hosted zone {zone_id}", record.record_type, record.name);
        let build = |e: aws_sdk_route53::error::BuildError| DnsError::Route53 {
            action: "ChangeResourceRecordSets".into(),
            what: what.clone(),
            message: e.to_string(),
        };
        let set = ResourceRecordSet::builder()
            .name(&record.name)
            .r#type(RrType::from(record.record_type.as_str()))
            .ttl(record.ttl)
            .resource_records(ResourceRecord::builder().value(target).build().map_err(build)?)
            .build()
            .map_err(build)?;
        let change = Change::builder()
            .action(ChangeAction::Upsert)
            .resource_record_set(set)
            .build()
            .map_err(build)?;
        let batch = ChangeBatch::builder()
            .comment("lifeboat: DR switch")
            .changes(change)
            .build()
            .map_err(build)?;
        let answer = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(&zone_id)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| self.error("ChangeResourceRecordSets", &what, e))?;
        switch.change_id = answer.change_info().map(|c| c.id().to_owned());
        Ok(switch)
    }
}
