//! An RDS (or KMS) error as Lifeboat reports it: the AWS code and message,
//! and the call it came from ([`RdsCall`]: action, what on, region), with
//! its class (retryable, not found, already exists).

use std::fmt;

/// An RDS (or KMS) error: the AWS error code (when AWS answered) and
/// message, and, for a call this module made, which call on what, where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RdsError {
    pub code: Option<String>,
    pub message: String,
    pub call: Option<Box<RdsCall>>,
}

/// The call an [`RdsError`] came from: e.g. `PromoteReadReplica` on
/// `DB instance orders-dr` in `eu-west-1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RdsCall {
    pub region: String,
    pub action: String,
    pub what: String,
}

impl RdsCall {
    pub(super) fn boxed(region: &str, action: &str, what: &str) -> Option<Box<Self>> {
        Some(Box::new(Self {
            region: region.to_owned(),
            action: action.to_owned(),
            what: what.to_owned(),
        }))
    }
}

/// Error codes that mean "try again later": throttling and quotas on
/// concurrent work. Errors with no code (timeouts, connection failures) too.
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SnapshotQuotaExceeded",
    "SnapshotQuotaExceededFault",
    "ServiceUnavailable",
    "InternalFailure",
];

const NOT_FOUND_CODES: &[&str] = &[
    "DBInstanceNotFound",
    "DBInstanceNotFoundFault",
    "DBClusterNotFound",
    "DBClusterNotFoundFault",
    "DBSnapshotNotFound",
    "DBSnapshotNotFoundFault",
    "DBClusterSnapshotNotFoundFault",
    "DBInstanceAutomatedBackupNotFound",
    "DBInstanceAutomatedBackupNotFoundFault",
];

const ALREADY_EXISTS_CODES: &[&str] = &[
    "DBSnapshotAlreadyExists",
    "DBSnapshotAlreadyExistsFault",
    "DBClusterSnapshotAlreadyExistsFault",
];

impl RdsError {
    pub fn new(code: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            code: code.map(str::to_owned),
            message: message.into(),
            call: None,
        }
    }

    fn is(&self, codes: &[&str]) -> bool {
        self.code.as_deref().is_some_and(|c| codes.contains(&c))
    }

    /// Throttled, over a concurrency quota, or unreachable: retry later.
    pub fn is_retryable(&self) -> bool {
        self.code.is_none() || self.is(RETRYABLE_CODES)
    }

    pub fn is_not_found(&self) -> bool {
        self.is(NOT_FOUND_CODES)
    }

    pub fn is_already_exists(&self) -> bool {
        self.is(ALREADY_EXISTS_CODES)
    }
}

impl fmt::Display for RdsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(call) = &self.call {
            write!(f, "RDS in {}, {} on {}: ", call.region, call.action, call.what)?;
        }
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for RdsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_classify_by_code_and_name_the_call() {
        assert!(RdsError::new(Some("Throttling"), "x").is_retryable());
        assert!(RdsError::new(None, "timeout").is_retryable());
        assert!(!RdsError::new(Some("KMSKeyNotAccessibleFault"), "x").is_retryable());
        assert!(RdsError::new(Some("DBInstanceNotFound"), "x").is_not_found());
        assert!(RdsError::new(Some("DBClusterSnapshotAlreadyExistsFault"), "x").is_already_exists());
        assert_eq!(RdsError::new(Some("Code"), "text").to_string(), "Code: text");
        let call = RdsError {
            call: RdsCall::boxed("eu-west-1", "PromoteReadReplica", "DB instance db1"),
            ..RdsError::new(Some("InvalidDBInstanceState"), "not a replica")
        };
        assert_eq!(
            call.to_string(),
            "RDS in eu-west-1, PromoteReadReplica on DB instance db1: InvalidDBInstanceState: not a replica"
        );
    }
}
