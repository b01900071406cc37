//! What can go wrong looking after snapshots (verification, restore tests,
//! retention): [`SnapshotOpsError`], each naming the region or the plan.

use crate::audit::AuditError;
use crate::catalog::CatalogError;
use crate::rds::RdsError;
use crate::validate::ValidateError;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotOpsError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("{action} in {region} failed ({error}): check that the role may do it there and that the region is right")]
    Rds {
        action: String,
        region: String,
        error: RdsError,
    },
    #[error("no plan named {name:?} in the plan file (it has: {known})")]
    UnknownPlan { name: String, known: String },
    #[error("no snapshot {id:?} in the catalog: see `lifeboat snapshots list`")]
    UnknownSnapshot { id: String },
    #[error("restore test: {0}")]
    Checks(#[from] ValidateError),
    #[error("plan {plan}: its retention policy: {error}")]
    Retention {
        plan: String,
        error: crate::retention::RetentionError,
    },
}
