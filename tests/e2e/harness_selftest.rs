//! The harness's own tests: the emulator answers, S3 works through it, and
//! the local Lambda Runtime API runs a function binary both ways.

use std::path::PathBuf;

use serde_json::json;

fn echo_function() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_echo-function"));
    assert_eq!(lifeboat_e2e::workspace_bin("echo-function"), path);
    path
}

#[test]
fn endpoint_answers() {
    let endpoint = lifeboat_e2e::endpoint();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    // The same emulator for the whole process.
    assert_eq!(lifeboat_e2e::endpoint(), endpoint);
    let env = lifeboat_e2e::aws_env();
    assert!(env.contains(&("AWS_ENDPOINT_URL", endpoint.to_string())));
}

#[test]
fn unique_names_are_bucket_safe() {
    let a = lifeboat_e2e::unique("Harness_SelfTest");
    let b = lifeboat_e2e::unique("Harness_SelfTest");
    assert_ne!(a, b);
    assert!(a.starts_with("harness-selftest-"), "{a}");
    let long = lifeboat_e2e::unique(&"x".repeat(100));
    assert!(long.len() <= 63, "{long}");
    for name in [&a, &long, &lifeboat_e2e::unique("")] {
        assert!(name.len() >= 3 && name.len() <= 63, "{name}");
        assert!(name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        assert!(!name.starts_with('-') && !name.ends_with('-'), "{name}");
    }
}

#[tokio::test]
async fn s3_round_trip() {
    let s3 = lifeboat_e2e::s3_client().await;
    let bucket = lifeboat_e2e::unique("selftest");
    s3.create_bucket().bucket(&bucket).send().await.expect("create_bucket");
    s3.put_object()
        .bucket(&bucket)
        .key("dir/hello.txt")
        .body(b"hello, lifeboat".to_vec().into())
        .send()
        .await
        .expect("put_object");
    let got = s3
        .get_object()
        .bucket(&bucket)
        .key("dir/hello.txt")
        .send()
        .await
        .expect("get_object");
    let body = got.body.collect().await.expect("read body").into_bytes();
    assert_eq!(&body[..], b"hello, lifeboat");
}

#[tokio::test]
async fn invoke_function_returns_the_response() {
    let event = json!({"hello": "world", "n": [1, 2, 3]});
    let outcome = lifeboat_e2e::invoke_function(&echo_function(), &event, &[("LIFEBOAT_SELFTEST", "1".to_string())])
        .await
        .expect("invoke echo-function");
    let response = outcome.expect("echo-function answered with an error");
    assert_eq!(response["echo"], event);
    assert_eq!(
        response["function_arn"],
        "arn:aws:lambda:us-east-1:123456789012:function:echo-function"
    );
    assert_eq!(response["endpoint"], lifeboat_e2e::endpoint());
    assert!(response["request_id"].as_str().is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn invoke_function_returns_the_error() {
    let outcome = lifeboat_e2e::invoke_function(&echo_function(), &json!({"fail": true}), &[])
        .await
        .expect("invoke echo-function");
    let error = outcome.expect_err("echo-function should have failed");
    assert_eq!(error["errorMessage"], "the event asked me to fail", "{error}");
    assert!(error["errorType"].is_string(), "{error}");
}

#[tokio::test]
async fn invoke_function_reports_a_crash() {
    // Not a Lambda function at all: exits at once without asking for work.
    let err = lifeboat_e2e::LocalInvoke::new(std::path::Path::new("/bin/sh"))
        .env("IGNORED", "x")
        .run(&json!({}))
        .await
        .expect_err("sh is not a function");
    let message = format!("{err:#}");
    assert!(message.contains("exited"), "{message}");
}

#[test]
fn invoke_local_prints_the_response_and_fails_on_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ok_event = dir.path().join("ok.json");
    std::fs::write(&ok_event, r#"{"hello": "cli"}"#).expect("write event");
    let fail_event = dir.path().join("fail.json");
    std::fs::write(&fail_event, r#"{"fail": true}"#).expect("write event");
    let invoke_local = PathBuf::from(env!("CARGO_BIN_EXE_invoke-local"));

    let out = std::process::Command::new(&invoke_local)
        .arg(echo_function())
        .arg(&ok_event)
        .envs(lifeboat_e2e::aws_env())
        .output()
        .expect("run invoke-local");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let response: serde_json::Value = serde_json::from_slice(&out.stdout).expect("invoke-local prints JSON");
    assert_eq!(response["echo"], json!({"hello": "cli"}));
    assert_eq!(response["endpoint"], lifeboat_e2e::endpoint());

    let out = std::process::Command::new(&invoke_local)
        .arg(echo_function())
        .arg(&fail_event)
        .output()
        .expect("run invoke-local");
    assert_eq!(out.status.code(), Some(1));
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).expect("invoke-local prints the error JSON");
    assert_eq!(error["errorMessage"], "the event asked me to fail");
}
