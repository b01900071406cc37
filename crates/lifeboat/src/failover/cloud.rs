//! The RDS and Route 53 calls a failover makes, each error naming the
//! region, the resource and what to do.

use aws_sdk_rds::types::Tag;
use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::plan::{DrRecord, ZoneRef};
use super::wait::{Observed, Poll, StatusSource, WaitError};
use super::FailoverError;
use crate::aws::error_code;

/// The tag naming the drill job that created an instance.
pub const DRILL_TAG: &str = "lifeboat:drill";
/// The tag naming the DR plan an instance was created for.
pub const PLAN_TAG: &str = "lifeboat:plan";

/// One region's RDS.
#[derive(Clone, Debug)]
pub struct Rds {
    pub client: aws_sdk_rds::Client,
    pub region: String,
}

/// What Lifeboat needs to know of a DB instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub id: String,
    pub arn: String,
    pub status: String,
    pub replica_of: Option<String>,
    pub endpoint: Option<String>,
    pub port: Option<u16>,
    pub engine: Option<String>,
    pub encrypted: bool,
}

/// A snapshot a restore can start from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub id: String,
    /// When the data was captured: the original snapshot's creation time
    /// (a copy's own creation time is later, and says nothing about data).
    pub taken_at: String,
}

fn timestamp(time: &aws_smithy_types::DateTime) -> Option<Timestamp> {
    Timestamp::new(time.secs(), time.subsec_nanos() as i32).ok()
}

impl Rds {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            client: aws_sdk_rds::Client::new(config),
            region: config.region().map(|r| r.to_string()).unwrap_or_default(),
        }
    }

    fn error<E, R>(&self, action: &str, what: &str, error: aws_sdk_rds::error::SdkError<E, R>) -> FailoverError
    where
        E: aws_sdk_rds::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let (code, message) = error_code(&error);
        FailoverError::Rds {
            region: self.region.clone(),
            action: action.to_owned(),
            what: what.to_owned(),
            message: match code {
                Some(code) => format!("{code}: {message}"),
                None => message,
            },
        }
    }

    /// The instance, or `None` if it does not exist.
    pub async fn instance(&self, id: &str) -> Result<Option<Instance>, FailoverError> {
        let answer = self
            .client
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await;
        let output = match answer {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_db_instance_not_found_fault()) => return Ok(None),
            Err(e) => return Err(self.error("DescribeDBInstances", &format!("DB instance {id}"), e)),
        };
        Ok(output.db_instances().first().map(|i| Instance {
            id: i.db_instance_identifier().unwrap_or(id).to_owned(),
            arn: i.db_instance_arn().unwrap_or_default().to_owned(),
            status: i.db_instance_status().unwrap_or("unknown").to_owned(),
            replica_of: i.read_replica_source_db_instance_identifier().map(str::to_owned),
            endpoint: i.endpoint().and_then(|e| e.address()).map(str::to_owned),
            port: i.endpoint().and_then(|e| e.port()).and_then(|p| u16::try_from(p).ok()),
            engine: i.engine().map(str::to_owned),
            encrypted: i.storage_encrypted().unwrap_or(false),
        }))
    }

    /// Every DB instance identifier of the region.
    pub async fn instance_ids(&self) -> Result<Vec<String>, FailoverError> {
        let mut pages = self.client.describe_db_instances().into_paginator().send();
        let mut ids = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("DescribeDBInstances", "the region's DB instances", e))?;
            ids.extend(
                page.db_instances()
                    .iter()
                    .filter_map(|i| i.db_instance_identifier())
                    .map(str::to_owned),
            );
        }
        Ok(ids)
    }

    /// Drill instances of `plan` still in this region: `(instance, drill job id)`.
    pub async fn drill_instances(&self, plan: &str) -> Result<Vec<(String, String)>, FailoverError> {
        let mut pages = self.client.describe_db_instances().into_paginator().send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("DescribeDBInstances", "the region's DB instances", e))?;
            for instance in page.db_instances() {
                let tag = |key: &str| {
                    instance
                        .tag_list()
                        .iter()
                        .find(|t| t.key() == Some(key))
                        .and_then(|t| t.value())
                };
                let (Some(id), Some(job)) = (instance.db_instance_identifier(), tag(DRILL_TAG)) else {
                    continue;
                };
                if id.starts_with("drill-")
                    && tag(PLAN_TAG) == Some(plan)
                    && instance.db_instance_status() != Some("deleting")
                {
                    found.push((id.to_owned(), job.to_owned()));
                }
            }
        }
        Ok(found)
    }

    pub async fn promote(&self, id: &str) -> Result<(), FailoverError> {
        self.client
            .promote_read_replica()
            .db_instance_identifier(id)
            .send()
            .await
            .map_err(|e| self.error("PromoteReadReplica", &format!("DB instance {id}"), e))?;
        Ok(())
    }

    /// The newest available snapshot of `primary` (manual copies and
    /// automated ones) in this region.
    pub async fn newest_snapshot(&self, primary: &str) -> Result<Option<Snapshot>, FailoverError> {
        let mut pages = self
            .client
            .describe_db_snapshots()
            .db_instance_identifier(primary)
            .into_paginator()
            .send();
        let mut newest: Option<(Timestamp, String)> = None;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("DescribeDBSnapshots", &format!("snapshots of {primary}"), e))?;
            for snapshot in page.db_snapshots() {
                if snapshot.status() != Some("available") {
                    continue;
                }
                let taken = snapshot
                    .original_snapshot_create_time()
                    .or(snapshot.snapshot_create_time())
                    .and_then(timestamp);
                if let (Some(taken), Some(id)) = (taken, snapshot.db_snapshot_identifier()) {
                    if newest.as_ref().is_none_or(|(t, _)| taken > *t) {
                        newest = Some((taken, id.to_owned()));
                    }
                }
            }
        }
        Ok(newest.map(|(taken, id)| Snapshot {
            id,
            taken_at: taken.to_string(),
        }))
    }

    pub async fn restore_snapshot(&self, request: &RestoreRequest<'_>) -> Result<(), FailoverError> {
        let mut call = self
            .client
            .restore_db_instance_from_db_snapshot()
            .db_instance_identifier(request.instance)
            .db_snapshot_identifier(request.snapshot)
            .set_db_instance_class(request.instance_class.map(str::to_owned))
            .set_db_subnet_group_name(request.subnet_group.map(str::to_owned))
            .set_tags(Some(tags(request.tags)));
        for group in request.security_groups {
            call = call.vpc_security_group_ids(group);
        }
        call.send().await.map_err(|e| {
            self.error(
                "RestoreDBInstanceFromDBSnapshot",
                &format!("DB instance {} from snapshot {}", request.instance, request.snapshot),
                e,
            )
        })?;
        Ok(())
    }

    /// Creates `instance` here as a read replica of `source_arn` (another region's instance).
    pub async fn create_replica(&self, request: &ReplicaRequest<'_>) -> Result<(), FailoverError> {
        self.client
            .create_db_instance_read_replica()
            .db_instance_identifier(request.instance)
            .source_db_instance_identifier(request.source_arn)
            .set_db_instance_class(request.instance_class.map(str::to_owned))
            .set_kms_key_id(request.kms_key.map(str::to_owned))
            .set_tags(Some(tags(request.tags)))
            .send()
            .await
            .map_err(|e| {
                self.error(
                    "CreateDBInstanceReadReplica",
                    &format!("DB instance {} replicating {}", request.instance, request.source_arn),
                    e,
                )
            })?;
        Ok(())
    }

    /// Deletes an instance without a final snapshot (drills only).
    pub async fn delete_without_snapshot(&self, id: &str) -> Result<(), FailoverError> {
        let answer = self
            .client
            .delete_db_instance()
            .db_instance_identifier(id)
            .skip_final_snapshot(true)
            .delete_automated_backups(true)
            .send()
            .await;
        match answer {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_db_instance_not_found_fault()) => Ok(()),
            Err(e) => Err(self.error("DeleteDBInstance", &format!("DB instance {id}"), e)),
        }
    }
}

fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
    pairs
        .iter()
        .map(|(key, value)| Tag::builder().key(*key).value(*value).build())
        .collect()
}

pub struct RestoreRequest<'a> {
    pub instance: &'a str,
    pub snapshot: &'a str,
    pub instance_class: Option<&'a str>,
    pub subnet_group: Option<&'a str>,
    pub security_groups: &'a [String],
    pub tags: &'a [(&'a str, &'a str)],
}

pub struct ReplicaRequest<'a> {
    pub instance: &'a str,
    pub source_arn: &'a str,
    pub instance_class: Option<&'a str>,
    pub kms_key: Option<&'a str>,
    pub tags: &'a [(&'a str, &'a str)],
}

impl StatusSource for Rds {
    async fn poll(&self, instance: &str) -> Result<Poll, WaitError> {
        let answer = self
            .client
            .describe_db_instances()
            .db_instance_identifier(instance)
            .send()
            .await;
        match answer {
            Ok(output) => Ok(match output.db_instances().first() {
                Some(i) => Poll::Seen(Observed {
                    status: i.db_instance_status().unwrap_or("unknown").to_owned(),
                    replica_of: i.read_replica_source_db_instance_identifier().map(str::to_owned),
                    endpoint: i.endpoint().and_then(|e| e.address()).map(str::to_owned),
                    port: i.endpoint().and_then(|e| e.port()).and_then(|p| u16::try_from(p).ok()),
                }),
                None => Poll::NotFound,
            }),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_db_instance_not_found_fault()) => Ok(Poll::NotFound),
            Err(e) => {
                let (code, message) = error_code(&e);
                let transient = match code.as_deref() {
                    Some(code) => {
                        code.contains("Throttl") || code == "RequestLimitExceeded" || code.contains("Unavailable")
                    }
                    None => true,
                };
                if transient {
                    Ok(Poll::Transient(message))
                } else {
                    Err(WaitError::Read {
                        instance: instance.to_owned(),
                        message: format!("{}: {message}", code.unwrap_or_default()),
                    })
                }
            }
        }
    }
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
    fn error<E, R>(&self, action: &str, what: &str, error: aws_sdk_route53::error::SdkError<E, R>) -> FailoverError
    where
        E: aws_sdk_route53::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let (code, message) = error_code(&error);
        FailoverError::Route53 {
            action: action.to_owned(),
            what: what.to_owned(),
            message: match code {
                Some(code) => format!("{code}: {message}"),
                None => message,
            },
        }
    }

    /// The hosted zone's id.
    pub async fn zone_id(&self, zone: &ZoneRef) -> Result<String, FailoverError> {
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
                    [] => Err(FailoverError::NoZone { zone: name.clone() }),
                    _ => Err(FailoverError::AmbiguousZone {
                        zone: name.clone(),
                        ids: found.iter().map(|s| (*s).to_owned()).collect(),
                    }),
                }
            }
        }
    }

    /// The record's current value (the first, for records with several).
    pub async fn current(&self, zone_id: &str, record: &DrRecord) -> Result<Option<String>, FailoverError> {
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
    pub async fn switch(&self, record: &DrRecord, target: &str) -> Result<RecordSwitch, FailoverError> {
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
        let build = |e: aws_sdk_route53::error::BuildError| FailoverError::Route53 {
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
