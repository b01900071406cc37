//! Alert state in the catalog table: one item per condition
//! (`pk = alert#KEY`, `sk = alert`, no GSI keys, so never in backup
//! listings) with `status` (`open` | `resolved`), `openedAt`, `lastSentAt`,
//! `resolvedAt`, `resolvedSentAt` and the message sent. Opening is a
//! conditional put (absent, or resolved before), resolving a conditional
//! update (still open), so two runs at once never both open or both resolve
//! one condition.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::evaluate::{subject_line, Condition, ConditionKind, Severity};
use super::AlertError;
use crate::catalog::{keys, Catalog};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Open,
    Resolved,
}

/// One condition's state, as stored (`pk = alert#KEY`, `sk = alert`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertRecord {
    pub key: String,
    pub condition: ConditionKind,
    pub resource: String,
    pub severity: Severity,
    pub tier: String,
    pub status: AlertStatus,
    pub opened_at: String,
    /// When the opening message was published; absent until SNS took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sent_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// When the "resolved" message was published; absent until SNS took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_sent_at: Option<String>,
    pub summary: String,
    pub subject: String,
    /// The JSON body sent when it opened.
    pub message: String,
}

impl AlertRecord {
    pub(super) fn opened(condition: &Condition, at: &str) -> Self {
        let body = condition.body();
        Self {
            key: condition.key(),
            condition: condition.kind,
            resource: condition.resource.clone(),
            severity: condition.severity,
            tier: condition.tier.clone(),
            status: AlertStatus::Open,
            opened_at: at.to_owned(),
            last_sent_at: None,
            resolved_at: None,
            resolved_sent_at: None,
            summary: condition.summary.clone(),
            subject: condition.subject(),
            message: serde_json::to_string_pretty(&body).unwrap_or_else(|_| body.to_string()),
        }
    }

    /// The "resolved" message: subject and body.
    pub(super) fn resolved_message(&self, resolved_at: &str) -> (String, Value) {
        let mut body = serde_json::from_str::<Value>(&self.message).unwrap_or_else(|_| json!({}));
        if let Some(map) = body.as_object_mut() {
            map.insert("status".into(), json!("resolved"));
            map.insert("openedAt".into(), json!(self.opened_at));
            map.insert("resolvedAt".into(), json!(resolved_at));
            map.remove("suggestedAction");
        }
        let subject = subject_line(&format!("[Lifeboat resolved] {}: {}", self.resource, self.summary));
        (subject, body)
    }
}

/// The stored item: the record plus its keys.
#[derive(Serialize, Deserialize)]
pub(super) struct AlertItem {
    pub(super) pk: String,
    pub(super) sk: String,
    #[serde(flatten)]
    pub(super) record: AlertRecord,
}

/// The alert items of a catalog table (see the module's documentation).
#[derive(Clone, Debug)]
pub struct AlertState {
    catalog: Catalog,
}

impl Catalog {
    /// The alert state kept in this catalog's table.
    pub fn alert_state(&self) -> AlertState {
        AlertState::new(self)
    }
}

impl AlertState {
    pub fn new(catalog: &Catalog) -> Self {
        Self {
            catalog: catalog.clone(),
        }
    }

    fn error<E, R>(&self, error: SdkError<E, R>) -> AlertError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        AlertError::Catalog(self.catalog.error(error))
    }

    fn corrupt(&self, pk: String, message: impl ToString) -> AlertError {
        AlertError::Catalog(self.catalog.corrupt(pk, message.to_string()))
    }

    /// Every alert item, open and resolved, by key. A scan (alert items have
    /// no index; there are few).
    pub async fn list(&self) -> Result<BTreeMap<String, AlertRecord>, AlertError> {
        let mut alerts = BTreeMap::new();
        for item in self.catalog.scan_items(keys::ALERT_SK, keys::ALERT_PK_PREFIX).await? {
            let pk = crate::catalog::item_pk(&item);
            let record = serde_dynamo::from_item::<_, AlertItem>(item)
                .map_err(|e| self.corrupt(pk, e))?
                .record;
            alerts.insert(record.key.clone(), record);
        }
        Ok(alerts)
    }

    /// Opens an alert unless it is open already (someone else opened it): `false` then.
    pub async fn open(&self, record: &AlertRecord) -> Result<bool, AlertError> {
        let pk = keys::alert_pk(&record.key);
        let item = serde_dynamo::to_item(AlertItem {
            pk: pk.clone(),
            sk: keys::ALERT_SK.into(),
            record: record.clone(),
        })
        .map_err(|e| self.corrupt(pk, e))?;
        let put = self
            .catalog
            .client()
            .put_item()
            .table_name(self.catalog.table())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #status = :resolved")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":resolved", AttributeValue::S("resolved".into()));
        Ok(self.catalog.put_item_if(put).await?)
    }

    /// Sets `attribute = at` on an alert whose status is `status`; `false` if it is not.
    async fn set_if(
        &self,
        key: &str,
        status: AlertStatus,
        attribute: &str,
        at: &str,
        new_status: Option<AlertStatus>,
    ) -> Result<bool, AlertError> {
        let status_text = |s: AlertStatus| if s == AlertStatus::Open { "open" } else { "resolved" };
        let mut request = self
            .catalog
            .client()
            .update_item()
            .table_name(self.catalog.table())
            .key("pk", AttributeValue::S(keys::alert_pk(key)))
            .key("sk", AttributeValue::S(keys::ALERT_SK.into()))
            .condition_expression("#status = :from")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#at", attribute)
            .expression_attribute_values(":from", AttributeValue::S(status_text(status).into()))
            .expression_attribute_values(":at", AttributeValue::S(at.to_owned()));
        request = match new_status {
            Some(to) => request
                .update_expression("SET #at = :at, #status = :to")
                .expression_attribute_values(":to", AttributeValue::S(status_text(to).into())),
            None => request.update_expression("SET #at = :at"),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(s)) if s.err().is_conditional_check_failed_exception() => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Records that an open alert's message was published.
    pub async fn mark_sent(&self, key: &str, at: &str) -> Result<bool, AlertError> {
        self.set_if(key, AlertStatus::Open, "lastSentAt", at, None).await
    }

    /// Resolves an open alert; `false` if it was not open (someone else resolved it).
    pub async fn resolve(&self, key: &str, at: &str) -> Result<bool, AlertError> {
        self.set_if(key, AlertStatus::Open, "resolvedAt", at, Some(AlertStatus::Resolved))
            .await
    }

    /// Records that a resolved alert's "resolved" message was published.
    pub async fn mark_resolved_sent(&self, key: &str, at: &str) -> Result<bool, AlertError> {
        self.set_if(key, AlertStatus::Resolved, "resolvedSentAt", at, None)
            .await
    }
}
