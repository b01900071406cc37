//! The runtime loop of a function: logs set up, the [`Context`] loaded once,
//! then every event handed to the function's [`Handler`].

use std::future::Future;

use lambda_runtime::{service_fn, LambdaEvent};
use serde::Serialize;

use crate::{init_tracing, Context, Failure};

/// What a function does with one event, given the context loaded at start.
pub trait Handler {
    /// The function's response (returned to the caller as JSON).
    type Response: Serialize;

    fn handle(
        &self,
        context: &Context,
        event: LambdaEvent<serde_json::Value>,
    ) -> impl Future<Output = Result<Self::Response, Failure>>;
}

/// Sets up logs ([`init_tracing`]), loads the [`Context`], builds the
/// handler from it with `make`, and serves events until the runtime stops.
pub async fn run<H: Handler>(make: impl FnOnce(&Context) -> H) -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let context = Context::load().await?;
    let handler = make(&context);
    let (context, handler) = (&context, &handler);
    lambda_runtime::run(service_fn(move |event| handler.handle(context, event))).await
}
