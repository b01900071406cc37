//! The end-to-end test harness: one local AWS emulator per test process, SDK
//! clients pointed at it, unique resource names, the workspace's binaries, and
//! a local AWS Lambda Runtime API to run function binaries against.
//!
//! The emulator is `moto_server` 5.2.5 (installed by `scripts/setup`), run
//! through `scripts/moto-server` (which makes its DynamoDB atomic), started
//! on a free loopback port the first time [`endpoint`] is called, and killed
//! when the test process ends, however it ends. Set `LIFEBOAT_TEST_ENDPOINT`
//! to use an emulator that is already running instead (for example one from
//! `eval "$(scripts/emulator start)"`).
//!
//! For the infrastructure tests: [`cfn`] reads the templates of `infra/` and
//! resolves their intrinsic functions; [`iam`] evaluates their policies.

pub mod cfn;
pub mod iam;

use std::future::IntoFuture;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::Credentials;
use serde_json::Value;

/// The moto version the tests are written against (see shared/EMULATOR.md).
pub const MOTO_VERSION: &str = "5.2.5";

/// The region every test resource lives in unless a test says otherwise.
pub const REGION: &str = "us-east-1";

/// The account moto reports for the test credentials.
pub const ACCOUNT_ID: &str = "123456789012";

/// How long the emulator may take to answer after it is started.
const EMULATOR_START_TIMEOUT: Duration = Duration::from_secs(30);

/// The default limit on one local function invocation.
pub const INVOKE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

// ---------------------------------------------------------------------------
// The emulator
// ---------------------------------------------------------------------------

/// The write end of the pipe into the emulator's watchdog shell. Never
/// written and never closed: the kernel closes it when this process exits, the
/// shell's `cat` then returns and the shell kills moto.
static EMULATOR_LIFELINE: Mutex<Option<ChildStdin>> = Mutex::new(None);

/// The emulator endpoint for this test process, e.g. `http://127.0.0.1:40123`.
///
/// `LIFEBOAT_TEST_ENDPOINT` if set; otherwise one `moto_server` started for
/// the whole process on first use. Panics (with what to do) if moto is
/// missing, is not version [`MOTO_VERSION`], or does not come up in time.
pub fn endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| match std::env::var("LIFEBOAT_TEST_ENDPOINT") {
        Ok(url) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_string(),
        _ => start_emulator(),
    })
}

fn start_emulator() -> String {
    check_moto_installed();

    let port = free_port();
    let log = emulator_log_path(port);
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        prune_old_logs(dir);
    }
    // The shell starts moto, says its pid, then waits for its stdin to close
    // (which happens when this process exits, even on SIGKILL) and kills it.
    // scripts/moto-server is moto_server with DynamoDB made atomic (its
    // cancelled transactions otherwise roll back concurrent writes).
    let server = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/moto-server");
    let script = format!(
        "python3 {server} -H 127.0.0.1 -p {port} >{log} 2>&1 & pid=$!; echo $pid; cat >/dev/null; kill $pid; wait $pid",
        server = shell_quote(&server.to_string_lossy()),
        log = shell_quote(&log.to_string_lossy()),
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot run `sh` to start moto_server");
    let stdin = child.stdin.take().expect("piped stdin");
    *EMULATOR_LIFELINE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(stdin);

    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut pid_line = String::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        pid_line.push(byte[0] as char);
    }
    let moto_pid: Option<u32> = pid_line.trim().parse().ok();
    // The watchdog shell lives as long as we do; it is never waited for.
    std::mem::forget(child);

    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if http_ok(port, "/moto-api/") {
            eprintln!(
                "lifeboat-e2e: moto_server {MOTO_VERSION} at {url} (log {})",
                log.display()
            );
            return url;
        }
        if let Some(pid) = moto_pid {
            if !process_alive(pid) {
                panic!(
                    "moto_server exited during start-up (log {}):\n{}\nRun `scripts/setup` to install moto[server]=={MOTO_VERSION}.",
                    log.display(),
                    tail_file(&log, 30)
                );
            }
        }
        if started.elapsed() > EMULATOR_START_TIMEOUT {
            panic!(
                "moto_server did not answer at {url}/moto-api/ within {:?} (log {}):\n{}",
                EMULATOR_START_TIMEOUT,
                log.display(),
                tail_file(&log, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Panics with a pointer to `scripts/setup` unless `moto_server` is on PATH
/// and the Python beside it has moto [`MOTO_VERSION`].
fn check_moto_installed() {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join("moto_server").is_file()))
        .unwrap_or(false);
    if !on_path {
        panic!(
            "moto_server is not on PATH. Run `scripts/setup` to install moto[server]=={MOTO_VERSION}, \
             or set LIFEBOAT_TEST_ENDPOINT to a running emulator."
        );
    }
    let version = Command::new("python3")
        .args(["-c", "import moto; print(moto.__version__)"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    match version {
        Some(v) if v == MOTO_VERSION => {}
        Some(v) => panic!(
            "moto {v} is installed, the tests need {MOTO_VERSION} (older versions break the Rust SDK's \
             multipart upload). Run `scripts/setup`."
        ),
        None => panic!("cannot import moto with python3. Run `scripts/setup` to install moto[server]=={MOTO_VERSION}."),
    }
}

/// Where this process's emulator writes its log: `target/tmp/lifeboat-e2e/`
/// beside the test binary when that can be found, else the system temp dir.
fn emulator_log_path(port: u16) -> PathBuf {
    let name = format!("moto-{}-{port}.log", std::process::id());
    let target = std::env::current_exe().ok().and_then(|exe| {
        let dir = exe.parent()?;
        let profile = if dir.file_name()? == "deps" { dir.parent()? } else { dir };
        Some(profile.parent()?.to_path_buf())
    });
    match target {
        Some(target) if target.join("CACHEDIR.TAG").is_file() => target.join("tmp").join("lifeboat-e2e").join(name),
        _ => std::env::temp_dir().join(name),
    }
}

/// Removes emulator logs of earlier runs that are more than a day old.
fn prune_old_logs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("moto-") && name.ends_with(".log")) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(24 * 60 * 60));
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|addr| addr.port())
        .expect("cannot bind a free port on 127.0.0.1")
}

/// Whether `GET path` on 127.0.0.1:port answers 200.
fn http_ok(port: u16, path: &str) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// Whether the process exists and is not a zombie.
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // "pid (comm) S ...": the state follows the last ')'.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X'))
        }
        Err(_) => false,
    }
}

/// The last `lines` lines of a file (lossy UTF-8), or a note that it can't be read.
fn tail_file(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

// ---------------------------------------------------------------------------
// SDK configuration
// ---------------------------------------------------------------------------

/// The environment a child process needs to talk to the emulator with test
/// credentials.
pub fn aws_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint().to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_REGION", REGION.to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
    ]
}

/// Static test credentials (what moto accepts).
pub fn test_credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "test")
}

/// An SDK config for the emulator: its endpoint, [`REGION`], test credentials.
pub async fn sdk_config() -> aws_config::SdkConfig {
    sdk_config_in(REGION).await
}

/// Like [`sdk_config`], in another region (e.g. a DR region).
pub async fn sdk_config_in(region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(Region::new(region.to_string()))
        .credentials_provider(test_credentials())
        .load()
        .await
}

/// An S3 client for the emulator, path-style.
pub async fn s3_client() -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(&sdk_config().await)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A KMS client for the emulator.
pub async fn kms_client() -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::new(&sdk_config().await)
}

/// A DynamoDB client for the emulator.
pub async fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&sdk_config().await)
}

/// A fresh lower-case name safe for S3 buckets and DynamoDB tables:
/// `prefix-<16 hex digits>`, at most 63 characters. Characters of `prefix`
/// that such names do not allow become `-`.
pub fn unique(prefix: &str) -> String {
    let suffix = format!("{:016x}", rand::random::<u64>());
    let mut clean: String = prefix
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    clean.truncate(63 - suffix.len() - 1);
    let clean = clean.trim_matches('-');
    if clean.is_empty() {
        // Bucket names must start with a letter or digit; hex does.
        suffix
    } else {
        format!("{clean}-{suffix}")
    }
}

// ---------------------------------------------------------------------------
// Workspace binaries
// ---------------------------------------------------------------------------

/// The path of a binary of this workspace built by cargo, e.g.
/// `workspace_bin("file-backup")`. Panics with a hint if it has not been built.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("cannot find the current executable");
    let dir = exe.parent().expect("the current executable has a directory");
    // Test binaries live in target/<profile>/deps, the others in target/<profile>.
    let profile_dir = if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        panic!(
            "binary `{name}` not found at {}. Build the workspace's binaries first: \
             `cargo build --workspace --bins` (scripts/test does this); `cargo test` alone \
             builds only the binaries of the package under test.",
            path.display()
        );
    }
    path
}

// ---------------------------------------------------------------------------
// A local AWS Lambda Runtime API
// ---------------------------------------------------------------------------

/// Runs a Lambda function binary once against a local Runtime API, with
/// [`aws_env`] (the emulator) and then `extra_env` in its environment.
///
/// `Ok(Ok(response))` when the function answered, `Ok(Err(error))` when it
/// reported an error (`{"errorType", "errorMessage"}`) for the invocation or
/// during init, and `Err` when it could not be run, exited without answering,
/// or ran past 10 minutes (the error carries the end of its output).
pub async fn invoke_function(
    binary: &Path,
    event: &Value,
    extra_env: &[(&str, String)],
) -> anyhow::Result<Result<Value, Value>> {
    let mut invoke = LocalInvoke::new(binary);
    for (key, value) in aws_env() {
        invoke = invoke.env(key, value);
    }
    for (key, value) in extra_env {
        invoke = invoke.env(key, value.clone());
    }
    invoke.run(event).await
}

/// One local invocation of a function binary, with options. The binary
/// inherits this process's environment plus the Lambda variables and whatever
/// [`LocalInvoke::env`] adds; unlike [`invoke_function`] it does not point the
/// function at the test emulator by itself.
#[derive(Debug, Clone)]
pub struct LocalInvoke {
    binary: PathBuf,
    env: Vec<(String, String)>,
    timeout: Duration,
    output_to_stderr: bool,
    log_file: Option<PathBuf>,
}

impl LocalInvoke {
    pub fn new(binary: &Path) -> Self {
        LocalInvoke {
            binary: binary.to_path_buf(),
            env: Vec::new(),
            timeout: INVOKE_TIMEOUT,
            output_to_stderr: false,
            log_file: None,
        }
    }

    /// Sets one variable in the function's environment (later calls win).
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// The limit on the whole invocation, start-up included (default 10 minutes).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends the function's stdout and stderr to this process's stderr as it
    /// runs, instead of capturing them for error messages.
    pub fn output_to_stderr(mut self, yes: bool) -> Self {
        self.output_to_stderr = yes;
        self
    }

    /// Writes the function's stdout and stderr (its log stream: JSON logs,
    /// metric lines) to `path`, which stays after the run for the test to read.
    pub fn log_file(mut self, path: &Path) -> Self {
        self.log_file = Some(path.to_path_buf());
        self
    }

    /// Runs the binary and hands it `event` as its one invocation.
    pub async fn run(&self, event: &Value) -> anyhow::Result<Result<Value, Value>> {
        run_local_invoke(self, event).await
    }
}

/// What the function told the Runtime API.
#[derive(Debug)]
enum Outcome {
    Response(axum::body::Bytes),
    InvocationError(axum::body::Bytes),
    InitError(axum::body::Bytes),
}

struct RuntimeState {
    event: axum::body::Bytes,
    request_id: String,
    function_arn: String,
    trace_id: String,
    function_name: String,
    delivered: std::sync::atomic::AtomicBool,
    outcome: Mutex<Option<tokio::sync::oneshot::Sender<Outcome>>>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    unknown_requests: Mutex<Vec<String>>,
}

impl RuntimeState {
    fn report(&self, outcome: Outcome) {
        let sender = self
            .outcome
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(sender) = sender {
            let _ = sender.send(outcome);
        }
    }

    /// Resolves when the invocation is over; long polls park here.
    async fn shut_down(&self) {
        let mut shutdown = self.shutdown.clone();
        let _ = shutdown.wait_for(|&done| done).await;
    }
}

fn runtime_router(state: Arc<RuntimeState>) -> axum::Router {
    use axum::extract::{Path as UrlPath, State};
    use axum::http::{HeaderMap, HeaderValue, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};

    type St = State<Arc<RuntimeState>>;

    async fn next(State(state): St) -> Response {
        if state.delivered.swap(true, std::sync::atomic::Ordering::SeqCst) {
            // One invocation only: the next poll waits until we kill the process.
            state.shut_down().await;
            return StatusCode::GONE.into_response();
        }
        let deadline_ms = jiff::Timestamp::now().as_millisecond() + 15 * 60 * 1000;
        let mut headers = HeaderMap::new();
        let mut set = |name: &'static str, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        };
        set("content-type", "application/json");
        set("lambda-runtime-aws-request-id", &state.request_id);
        set("lambda-runtime-deadline-ms", &deadline_ms.to_string());
        set("lambda-runtime-invoked-function-arn", &state.function_arn);
        set("lambda-runtime-trace-id", &state.trace_id);
        (StatusCode::OK, headers, state.event.clone()).into_response()
    }

    async fn response(State(state): St, UrlPath(_id): UrlPath<String>, body: axum::body::Bytes) -> StatusCode {
        state.report(Outcome::Response(body));
        StatusCode::ACCEPTED
    }

    async fn invocation_error(State(state): St, UrlPath(_id): UrlPath<String>, body: axum::body::Bytes) -> StatusCode {
        state.report(Outcome::InvocationError(body));
        StatusCode::ACCEPTED
    }

    async fn init_error(State(state): St, body: axum::body::Bytes) -> StatusCode {
        state.report(Outcome::InitError(body));
        StatusCode::ACCEPTED
    }

    // Extensions API, for functions built with lambda_runtime's
    // `graceful-shutdown` feature: registration succeeds, no event ever comes.
    async fn extension_register(State(state): St) -> Response {
        let body = serde_json::json!({
            "functionName": state.function_name,
            "functionVersion": "$LATEST",
            "handler": "bootstrap",
        });
        (
            StatusCode::OK,
            [
                ("lambda-extension-identifier", "local-extension-id"),
                ("content-type", "application/json"),
            ],
            body.to_string(),
        )
            .into_response()
    }

    async fn extension_next(State(state): St) -> StatusCode {
        state.shut_down().await;
        StatusCode::GONE
    }

    async fn unknown(State(state): St, request: axum::extract::Request) -> StatusCode {
        let line = format!("{} {}", request.method(), request.uri());
        state
            .unknown_requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(line);
        StatusCode::NOT_FOUND
    }

    axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(invocation_error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .route("/2020-01-01/extension/register", post(extension_register))
        .route("/2020-01-01/extension/event/next", get(extension_next))
        .fallback(unknown)
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
        .with_state(state)
}

async fn run_local_invoke(options: &LocalInvoke, event: &Value) -> anyhow::Result<Result<Value, Value>> {
    use anyhow::Context as _;

    let binary = &options.binary;
    if !binary.is_file() {
        anyhow::bail!("function binary {} does not exist", binary.display());
    }
    let function_name = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "function".to_string());
    let request_id = format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        rand::random::<u32>(),
        rand::random::<u16>(),
        rand::random::<u16>() & 0xfff,
        rand::random::<u16>() & 0xfff,
        rand::random::<u64>() & 0xffff_ffff_ffff,
    );
    let now_secs = jiff::Timestamp::now().as_second();
    let trace_id = format!(
        "Root=1-{now_secs:08x}-{:024x};Parent={:016x};Sampled=0",
        rand::random::<u128>() >> 32,
        rand::random::<u64>()
    );

    let (outcome_tx, outcome_rx) = tokio::sync::oneshot::channel();
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let state = Arc::new(RuntimeState {
        event: axum::body::Bytes::from(serde_json::to_vec(event)?),
        request_id: request_id.clone(),
        function_arn: format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"),
        trace_id,
        function_name: function_name.clone(),
        delivered: std::sync::atomic::AtomicBool::new(false),
        outcome: Mutex::new(Some(outcome_tx)),
        shutdown: shutdown_rx.clone(),
        unknown_requests: Mutex::new(Vec::new()),
    });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the local Runtime API")?;
    let api_addr = listener.local_addr()?;
    let server = {
        let mut shutdown = shutdown_rx;
        tokio::spawn(
            axum::serve(listener, runtime_router(state.clone()))
                .with_graceful_shutdown(async move {
                    let _ = shutdown.wait_for(|&done| done).await;
                })
                .into_future(),
        )
    };

    let log_dir = tempfile::tempdir().context("creating a temp dir for the function's output")?;
    let log_path = options
        .log_file
        .clone()
        .unwrap_or_else(|| log_dir.path().join("function.log"));
    let mut command = tokio::process::Command::new(binary);
    command
        .env("AWS_LAMBDA_RUNTIME_API", api_addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", &function_name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function_name}"))
        .env(
            "AWS_LAMBDA_LOG_STREAM_NAME",
            format!("local/[$LATEST]{}", request_id.replace('-', "")),
        )
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
        .env("_X_AMZN_TRACE_ID", &state.trace_id)
        .envs(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if options.output_to_stderr {
        command
            .stdout(Stdio::from(std::io::stderr()))
            .stderr(Stdio::from(std::io::stderr()));
    } else {
        let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        command.stdout(Stdio::from(log.try_clone()?)).stderr(Stdio::from(log));
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting function binary {}", binary.display()))?;

    let output_note = |lines: usize| -> String {
        if options.output_to_stderr {
            "(its output is above)".to_string()
        } else {
            format!("its last output:\n{}", indent(&tail_file(&log_path, lines), "  | "))
        }
    };
    let unknown_note = || -> String {
        let unknown = state
            .unknown_requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if unknown.is_empty() {
            String::new()
        } else {
            format!(
                "\nrequests the local Runtime API does not serve: {}",
                unknown.join(", ")
            )
        }
    };

    enum Ending {
        Told(Outcome),
        Exited(std::io::Result<std::process::ExitStatus>),
        TimedOut,
    }
    let ending = tokio::select! {
        outcome = outcome_rx => match outcome {
            Ok(outcome) => Ending::Told(outcome),
            // The sender lives in `state`, which we hold: cannot happen.
            Err(_) => Ending::TimedOut,
        },
        status = child.wait() => Ending::Exited(status),
        _ = tokio::time::sleep(options.timeout) => Ending::TimedOut,
    };

    // The function is done (or given up on): stop it and the Runtime API.
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let _ = shutdown_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(_) => {}
        Err(_) => eprintln!("lifeboat-e2e: the local Runtime API did not stop in time"),
    }

    let parse = |what: &str, body: &axum::body::Bytes| -> anyhow::Result<Value> {
        serde_json::from_slice(body).with_context(|| {
            format!(
                "{function_name} sent a {what} that is not JSON: {:?}\n{}",
                String::from_utf8_lossy(&body[..body.len().min(2000)]),
                output_note(40)
            )
        })
    };
    match ending {
        Ending::Told(Outcome::Response(body)) => Ok(Ok(parse("response", &body)?)),
        Ending::Told(Outcome::InvocationError(body)) | Ending::Told(Outcome::InitError(body)) => {
            let value = serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
            Ok(Err(value))
        }
        Ending::Exited(status) => {
            let status = match status {
                Ok(status) => status.to_string(),
                Err(e) => format!("unknown status ({e})"),
            };
            anyhow::bail!(
                "function {} exited ({status}) before answering the invocation; {}{}",
                binary.display(),
                output_note(60),
                unknown_note()
            )
        }
        Ending::TimedOut => anyhow::bail!(
            "function {} did not answer within {:?}; {}{}",
            binary.display(),
            options.timeout,
            output_note(60),
            unknown_note()
        ),
    }
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|line| format!("{prefix}{line}"))
        .collect::<Vec<_>>()
        .join("\n")
}
