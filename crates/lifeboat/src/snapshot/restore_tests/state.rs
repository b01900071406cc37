//! A resource's scheduled restore test as the catalog holds it
//! ([`RestoreTestState`]: `pk = restore-test`, `sk = state#RESOURCE`, a
//! `version` every write is conditional on), read and written through
//! [`SnapshotChecks`].

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use crate::catalog::keys::{self, RESTORE_TEST_PK as STATE_PK, RESTORE_TEST_SK_PREFIX as STATE_SK_PREFIX};
use crate::catalog::CatalogError;
use crate::snapshot::checks::RestoreTestOutcome;
use crate::snapshot::records::SnapshotRecord;
use crate::snapshot::verifications::SnapshotChecks;

/// Where a resource's restore test is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestPhase {
    Idle,
    Restoring,
    Deleting,
}

/// One resource's restore test, as the catalog holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreTestState {
    pub resource: String,
    /// The plan whose test this is (or was, when idle).
    pub plan: String,
    pub phase: TestPhase,
    /// Incremented by every write; each write is conditional on the last.
    pub version: u64,
    /// The snapshot under test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotRecord>,
    /// The temporary instance (restoring, deleting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// When the restore was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_started_at: Option<String>,
    /// The outcome so far (deleting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<RestoreTestOutcome>,
    #[serde(default)]
    pub delete_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_passed: Option<bool>,
}

impl RestoreTestState {
    pub fn active(&self) -> bool {
        self.phase != TestPhase::Idle
    }

    /// The test's region: the snapshot's.
    pub fn region(&self) -> Option<&str> {
        self.snapshot.as_ref().map(|s| s.region.as_str())
    }
}

#[derive(Serialize, Deserialize)]
struct StateItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    state: RestoreTestState,
}

impl SnapshotChecks {
    /// Every resource's restore test state (one query).
    pub async fn restore_test_states(&self) -> Result<Vec<RestoreTestState>, CatalogError> {
        let mut pages = self
            .catalog
            .client()
            .query()
            .table_name(self.catalog.table())
            .key_condition_expression("pk = :pk AND begins_with(sk, :state)")
            .expression_attribute_values(":pk", AttributeValue::S(STATE_PK.into()))
            .expression_attribute_values(":state", AttributeValue::S(STATE_SK_PREFIX.into()))
            .into_paginator()
            .items()
            .send();
        let mut states = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| self.error(e))?;
            let sk = item.get("sk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let parsed: StateItem =
                serde_dynamo::from_item(item).map_err(|e| self.corrupt(format!("{STATE_PK}/{sk}"), e))?;
            states.push(parsed.state);
        }
        Ok(states)
    }

    /// Writes `state` if the stored version is `expected` (`None`: no item
    /// yet); `false` if another run wrote first.
    pub async fn save_restore_test_state(
        &self,
        state: &RestoreTestState,
        expected: Option<u64>,
    ) -> Result<bool, CatalogError> {
        let sk = keys::restore_test_sk(&state.resource);
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(StateItem {
            pk: STATE_PK.into(),
            sk: sk.clone(),
            state: state.clone(),
        })
        .map_err(|e| self.corrupt(format!("{STATE_PK}/{sk}"), e))?;
        let request = self
            .catalog
            .client()
            .put_item()
            .table_name(self.catalog.table())
            .set_item(Some(item));
        let request = match expected {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(version) => request
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(version.to_string())),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(s)) if s.err().is_conditional_check_failed_exception() => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }
}
