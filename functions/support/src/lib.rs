//! What every Lifeboat Lambda shares, so each function's `main.rs` is only
//! its dependencies and one library call per request:
//!
//! - [`run`]: the runtime loop serving a function's [`Handler`];
//! - JSON logs through `tracing` (CloudWatch Logs Insights reads the fields);
//! - [`Settings`] read from the environment once, at start, and the
//!   [`Context`] built from them (clients, catalog, plans);
//! - the request inside an event ([`parse_request`]);
//! - [`Failure`]: the errors reported to the runtime, each with the type
//!   that says what went wrong and whether a retry may succeed;
//! - [`Metrics`] as CloudWatch Embedded Metric Format log lines.

mod context;
mod failure;
mod metrics;
mod request;
mod serve;
mod settings;

pub use context::Context;
pub use failure::Failure;
pub use metrics::{Metrics, METRIC_NAMESPACE};
pub use request::{event_time, field_error, parse_request, Request};
pub use serve::{run, Handler};
pub use settings::{setting, Settings};

/// Sets up JSON logs, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_current_span(false)
        .without_time()
        .with_target(false)
        .init();
}
