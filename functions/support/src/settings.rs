//! A function's settings, from its environment, read once at start: a bad
//! setting fails the init, naming the variable. Every Lifeboat function
//! reads the same names; each uses those it needs.

use lifeboat::catalog::DEFAULT_TABLE;
use lifeboat::plan::load::plan_source;
use lifeboat::plan::load::PlanSource;
use lifeboat::storage::Location;

/// A setting from the environment; empty counts as unset.
pub fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The settings every function reads at start.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `LIFEBOAT_TABLE`: the catalog table (default `lifeboat-catalog`).
    pub table: String,
    /// `LIFEBOAT_STORE`: the store of requests that name none (checked at start).
    pub store: Option<String>,
    /// `LIFEBOAT_KMS_KEY`: the key the store is expected to use.
    pub kms_key: Option<String>,
    /// The plan file: `LIFEBOAT_PLANS` (`s3://BUCKET/KEY` or a path in the
    /// package) or `LIFEBOAT_PLANS_TOML` (its text); `None` if neither is set.
    pub plans: Option<PlanSource>,
    /// `LIFEBOAT_CONCURRENCY`: workers of a backup that asks for no number (default 4).
    pub concurrency: usize,
    /// `LIFEBOAT_DRY_RUN=true`: change nothing, whatever the request says (default false).
    pub dry_run: bool,
}

impl Settings {
    pub fn from_env() -> Result<Self, String> {
        let concurrency = match setting("LIFEBOAT_CONCURRENCY") {
            None => 4,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("LIFEBOAT_CONCURRENCY={text:?} is not a positive whole number"))?,
        };
        let store = setting("LIFEBOAT_STORE");
        if let Some(store) = &store {
            Location::parse(store).map_err(|e| format!("LIFEBOAT_STORE: {e}"))?;
        }
        let dry_run = match setting("LIFEBOAT_DRY_RUN").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => return Err(format!("LIFEBOAT_DRY_RUN={other:?}: use true or false")),
        };
        Ok(Self {
            table: setting("LIFEBOAT_TABLE").unwrap_or_else(|| DEFAULT_TABLE.to_owned()),
            store,
            kms_key: setting("LIFEBOAT_KMS_KEY"),
            plans: plan_source(setting("LIFEBOAT_PLANS_TOML"), setting("LIFEBOAT_PLANS"))?,
            concurrency,
            dry_run,
        })
    }

    /// A setting only one function reads, required by it; the error names it.
    pub fn required(name: &str) -> Result<String, String> {
        setting(name)
            .ok_or_else(|| format!("the function's environment has no {name}: set it in the stack (see infra/)"))
    }
}
