//! How a function fails an invocation: a [`Failure`] is the `errorType`
//! the runtime reports (`Lifeboat.BadEvent`, ...; alarms and tests read
//! it), its message, and whether the same request may succeed when retried.

use lambda_runtime::Diagnostic;
use lifeboat::alert::AlertError;
use lifeboat::catalog::CatalogError;
use lifeboat::repo::RepoError;
use lifeboat::snapshot::SnapshotError;

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The event is not a request the function takes, or names what does not exist.
    #[error("{0}")]
    BadEvent(String),
    /// An S3 event names an object no plan source contains.
    #[error("{0}")]
    NotCovered(String),
    /// The store could not be opened.
    #[error("{0}")]
    Store(String),
    /// The catalog table could not be read or written.
    #[error("{0}")]
    Catalog(String),
    /// RDS could not be listed.
    #[error("{0}")]
    Rds(String),
    /// SNS did not take an alert.
    #[error("{0}")]
    Publish(String),
    /// A backup failed (recorded in the catalog).
    #[error("{0}")]
    BackupFailed(String),
    /// The event's backup is still running elsewhere (a fresh heartbeat), or
    /// its source's lease stayed taken: nothing was done, retry later.
    #[error("{0}")]
    BackupInProgress(String),
    /// A verification could not run to its end.
    #[error("{0}")]
    VerifyFailed(String),
    /// The request asks to verify sources that have no completed backup.
    #[error("{0}")]
    NothingToVerify(String),
    /// A verification ran and found damage (or a restore test failed).
    #[error("{0}")]
    DamageFound(String),
    /// Retention could not be planned or applied.
    #[error("{0}")]
    Retention(String),
    /// Retention was applied, but some deletions failed.
    #[error("{0}")]
    RetentionPartial(String),
    /// Garbage collection failed.
    #[error("{0}")]
    GarbageCollection(String),
    /// Snapshots or copies failed (recorded in the catalog); the rest proceeded.
    #[error("{0}")]
    SnapshotFailed(String),
}

impl Failure {
    /// The `errorType` reported to the runtime.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::BadEvent(_) => "Lifeboat.BadEvent",
            Self::NotCovered(_) => "Lifeboat.NotCovered",
            Self::Store(_) => "Lifeboat.Store",
            Self::Catalog(_) => "Lifeboat.Catalog",
            Self::Rds(_) => "Lifeboat.Rds",
            Self::Publish(_) => "Lifeboat.Publish",
            Self::BackupFailed(_) => "Lifeboat.BackupFailed",
            Self::BackupInProgress(_) => "Lifeboat.BackupInProgress",
            Self::VerifyFailed(_) => "Lifeboat.VerifyFailed",
            Self::NothingToVerify(_) => "Lifeboat.NothingToVerify",
            Self::DamageFound(_) => "Lifeboat.DamageFound",
            Self::Retention(_) => "Lifeboat.Retention",
            Self::RetentionPartial(_) => "Lifeboat.RetentionPartial",
            Self::GarbageCollection(_) => "Lifeboat.GarbageCollection",
            Self::SnapshotFailed(_) => "Lifeboat.SnapshotFailed",
        }
    }

    /// Whether the same request may succeed later: not for a bad request,
    /// nor for damage, which stays until someone repairs it.
    pub fn retryable(&self) -> bool {
        !matches!(
            self,
            Self::BadEvent(_) | Self::NotCovered(_) | Self::NothingToVerify(_) | Self::DamageFound(_)
        )
    }
}

impl From<Failure> for Diagnostic {
    fn from(failure: Failure) -> Self {
        tracing::error!(error_type = failure.error_type(), retryable = failure.retryable(), error = %failure, "invocation failed");
        Diagnostic {
            error_type: failure.error_type().to_owned(),
            error_message: failure.to_string(),
        }
    }
}

impl From<RepoError> for Failure {
    fn from(error: RepoError) -> Self {
        Self::Store(error.to_string())
    }
}

impl From<CatalogError> for Failure {
    fn from(error: CatalogError) -> Self {
        Self::Catalog(error.to_string())
    }
}

impl From<SnapshotError> for Failure {
    fn from(error: SnapshotError) -> Self {
        match error {
            SnapshotError::Catalog(_) => Self::Catalog(error.to_string()),
            SnapshotError::List { .. } => Self::Rds(error.to_string()),
            SnapshotError::UnknownPlan { .. } => Self::BadEvent(error.to_string()),
        }
    }
}

impl From<AlertError> for Failure {
    fn from(error: AlertError) -> Self {
        match error {
            AlertError::Catalog(_) => Self::Catalog(error.to_string()),
            AlertError::Publish { .. } => Self::Publish(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_sees_the_type_and_message() {
        let diagnostic = Diagnostic::from(Failure::NotCovered("s3://b/k: no plan".into()));
        assert_eq!(diagnostic.error_type, "Lifeboat.NotCovered");
        assert_eq!(diagnostic.error_message, "s3://b/k: no plan");
        assert!(!Failure::BadEvent(String::new()).retryable());
        assert!(Failure::Store(String::new()).retryable());
        assert!(Failure::BackupInProgress(String::new()).retryable());
    }
}
