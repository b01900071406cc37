//! A tiny Lambda function for the harness's own tests: answers with the event
//! it was given, or fails when the event has `"fail": true`.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    if payload.get("fail").and_then(Value::as_bool) == Some(true) {
        return Err("the event asked me to fail".into());
    }
    Ok(json!({
        "echo": payload,
        "request_id": context.request_id,
        "function_arn": context.invoked_function_arn,
        "endpoint": std::env::var("AWS_ENDPOINT_URL").ok(),
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    eprintln!("echo-function: starting");
    lambda_runtime::run(service_fn(handle)).await
}
