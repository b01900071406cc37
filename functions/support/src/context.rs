//! What a function builds once at start from its [`Settings`] and shares
//! with every invocation: the AWS configuration and clients, the catalog
//! and the plan file's plans.

use aws_config::SdkConfig;
use lifeboat::aws::{load_config, Clients};
use lifeboat::catalog::Catalog;
use lifeboat::plan::load::load_plans;
use lifeboat::plan::Plan;
use lifeboat::repo::Repository;
use lifeboat::snapshot::select_plans;
use lifeboat::storage::Location;

use crate::{Failure, Settings};

pub struct Context {
    pub settings: Settings,
    pub config: SdkConfig,
    pub clients: Clients,
    pub catalog: Catalog,
    /// The plan file's plans, when the environment names a plan file.
    pub plans: Option<Vec<Plan>>,
}

impl Context {
    /// Reads the settings, loads the AWS configuration and the plan file
    /// (every problem of it, in words, in the log and the init error).
    pub async fn load() -> Result<Self, lambda_runtime::Error> {
        let settings = Settings::from_env()?;
        let config = load_config(None).await?;
        let clients = Clients::new(&config);
        let plans = match &settings.plans {
            Some(source) => {
                let plans = load_plans(source, &clients.s3, jiff::Timestamp::now())
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "the plan file cannot be used; the function does not start");
                        e.to_string()
                    })?;
                tracing::info!(plans = ?plans.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), "plans loaded");
                Some(plans)
            }
            None => None,
        };
        let catalog = Catalog::new(clients.dynamodb.clone(), &settings.table, &clients.region);
        Ok(Self {
            settings,
            config,
            clients,
            catalog,
            plans,
        })
    }

    /// The plans a request names (all of them without names); `asked` is
    /// the request's field that needs them.
    pub fn select_plans(&self, names: &[String], asked: &str) -> Result<Vec<Plan>, Failure> {
        let plans = self.plans.as_deref().ok_or_else(|| {
            Failure::BadEvent(format!(
                "{asked} asked for, but the function has no plan file: set LIFEBOAT_PLANS or LIFEBOAT_PLANS_TOML"
            ))
        })?;
        select_plans(plans, names).map_err(|e| Failure::BadEvent(e.to_string()))
    }

    /// The store the `sender` (the event, the request) names, else `LIFEBOAT_STORE`.
    pub fn store(&self, named: Option<String>, sender: &str) -> Result<Location, Failure> {
        let store = named
            .or_else(|| self.settings.store.clone())
            .ok_or_else(|| Failure::BadEvent(format!("the {sender} names no store and LIFEBOAT_STORE is not set")))?;
        Location::parse(&store).map_err(|e| Failure::BadEvent(format!("store: {e}")))
    }

    /// Opens the store at `location`, expecting `kms_key` if given.
    pub async fn open(&self, location: &Location, kms_key: Option<&str>) -> Result<Repository, Failure> {
        Ok(Repository::open_at(location, &self.clients, kms_key).await?)
    }
}
