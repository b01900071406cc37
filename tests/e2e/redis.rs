//! Redis dumps through the real `lifeboat` binary: a throw-away
//! `redis-server` dumped over the replication protocol, restored into an RDB
//! file, a second throw-away server started on that file and compared key by
//! key (type, value, TTL); and bad input (wrong or missing password, a closed
//! port, a port that does not speak Redis) failing clearly and recorded.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{describe, Store};

/// A free TCP port on 127.0.0.1 (bound, then released).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// A throw-away `redis-server`, killed when dropped.
struct Server {
    port: u16,
    password: Option<String>,
    child: Child,
}

impl Server {
    fn start(dir: &Path, dbfilename: &str, password: Option<&str>) -> Self {
        let port = free_port();
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--repl-diskless-sync", "no", "--repl-diskless-sync-delay", "0"])
            .args(["--dir", &dir.display().to_string(), "--dbfilename", dbfilename])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = password {
            command.args(["--requirepass", password]);
        }
        let child = command.spawn().expect("start redis-server");
        let server = Self {
            port,
            password: password.map(str::to_owned),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = server.try_connect() {
                if matches!(c.call(&["PING"]), Resp::Simple(s) if s == "PONG") {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "redis-server on port {port} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn try_connect(&self) -> std::io::Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut client = Client(BufReader::new(stream));
        if let Some(password) = &self.password {
            client.call(&["AUTH", password]);
        }
        Ok(client)
    }

    fn client(&self) -> Client {
        self.try_connect().expect("connect to redis-server")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Resp>),
}

/// A tiny RESP2 client.
struct Client(BufReader<TcpStream>);

impl Client {
    fn call(&mut self, args: &[&str]) -> Resp {
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        self.0.get_mut().write_all(request.as_bytes()).expect("send");
        self.read()
    }

    fn read(&mut self) -> Resp {
        let mut line = String::new();
        self.0.read_line(&mut line).expect("read reply");
        let line = line.trim_end_matches(['\r', '\n']);
        let (kind, rest) = line.split_at(1);
        match kind {
            "+" => Resp::Simple(rest.to_owned()),
            "-" => Resp::Error(rest.to_owned()),
            ":" => Resp::Int(rest.parse().expect("integer")),
            "$" => {
                let len: i64 = rest.parse().expect("length");
                if len < 0 {
                    return Resp::Bulk(None);
                }
                let mut data = vec![0; len as usize + 2];
                self.0.read_exact(&mut data).expect("bulk");
                data.truncate(len as usize);
                Resp::Bulk(Some(data))
            }
            "*" => {
                let len: i64 = rest.parse().expect("length");
                Resp::Array((0..len.max(0)).map(|_| self.read()).collect())
            }
            _ => panic!("not RESP: {line:?}"),
        }
    }

    fn ok(&mut self, args: &[&str]) {
        let reply = self.call(args);
        assert!(!matches!(reply, Resp::Error(_)), "{args:?}: {reply:?}");
    }
}

/// Fills databases 0 and 3 with strings, hashes, lists, sets and sorted
/// sets, some with TTLs, some binary-ish.
fn fill(server: &Server) -> usize {
    let mut c = server.client();
    let mut keys = 0;
    for db in ["0", "3"] {
        c.ok(&["SELECT", db]);
        for i in 0..80 {
            c.ok(&[
                "SET",
                &format!("string:{i}"),
                &format!("value {i} é \u{1}\t{}", "x".repeat(i * 7)),
            ]);
            let fields: Vec<String> = (0..(i % 9 + 1))
                .flat_map(|f| [format!("field{f}"), format!("{}", i * 100 + f)])
                .collect();
            let mut args = vec!["HSET".to_owned(), format!("hash:{i}")];
            args.extend(fields);
            c.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
            let mut args = vec!["RPUSH".to_owned(), format!("list:{i}")];
            args.extend((0..(i % 13 + 1)).map(|n| format!("item {n}")));
            c.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
            let mut args = vec!["SADD".to_owned(), format!("set:{i}")];
            args.extend((0..(i % 11 + 1)).map(|n| format!("member{}", n * 3)));
            c.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
            c.ok(&["ZADD", &format!("zset:{i}"), "1.5", "a", &i.to_string(), "b"]);
            keys += 5;
            if i % 4 == 0 {
                c.ok(&["EXPIRE", &format!("string:{i}"), "3600"]);
                c.ok(&["PEXPIRE", &format!("hash:{i}"), &format!("{}", 7_200_000 + i)]);
            }
        }
        // A large value spanning several chunks' worth of bytes.
        c.ok(&["SET", "big", &"0123456789abcdef".repeat(64 * 1024)]);
        c.ok(&["INCRBY", "counter", "42"]);
        keys += 2;
    }
    keys
}

/// Every key of databases 0–15: (db, key) → (type, sorted value, has TTL, PTTL).
fn contents(server: &Server) -> BTreeMap<(u8, Vec<u8>), (String, Resp, i64)> {
    let mut c = server.client();
    let mut all = BTreeMap::new();
    for db in 0..16u8 {
        c.ok(&["SELECT", &db.to_string()]);
        let Resp::Array(keys) = c.call(&["KEYS", "*"]) else {
            panic!("KEYS")
        };
        for key in keys {
            let Resp::Bulk(Some(key)) = key else { panic!("key") };
            let name = String::from_utf8(key.clone()).expect("utf-8 key");
            let Resp::Simple(kind) = c.call(&["TYPE", &name]) else {
                panic!("TYPE")
            };
            let mut value = match kind.as_str() {
                "string" => c.call(&["GET", &name]),
                "hash" => c.call(&["HGETALL", &name]),
                "list" => c.call(&["LRANGE", &name, "0", "-1"]),
                "set" => c.call(&["SMEMBERS", &name]),
                "zset" => c.call(&["ZRANGE", &name, "0", "-1", "WITHSCORES"]),
                other => panic!("unexpected type {other}"),
            };
            if let (Resp::Array(items), "hash" | "set") = (&mut value, kind.as_str()) {
                if kind == "hash" {
                    let mut pairs: Vec<Vec<Resp>> = items.chunks(2).map(<[Resp]>::to_vec).collect();
                    pairs.sort();
                    *items = pairs.concat();
                } else {
                    items.sort();
                }
            }
            let Resp::Int(pttl) = c.call(&["PTTL", &name]) else {
                panic!("PTTL")
            };
            all.insert((db, key), (kind, value, pttl));
        }
    }
    all
}

fn backup(store: &Store, url: &str) -> Value {
    let summary = store.json(&["backup", "dump", url]);
    assert_eq!(summary["status"], "completed", "{summary}");
    summary
}

#[test]
fn redis_dump_round_trips_into_an_rdb_file_a_new_server_loads() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime.block_on(Store::new());
    let dir = tempfile::tempdir().expect("tempdir");
    let source_dir = dir.path().join("source");
    std::fs::create_dir(&source_dir).expect("mkdir");
    let source = Server::start(&source_dir, "source.rdb", Some("s3cret"));
    let keys = fill(&source);
    let expected = contents(&source);
    assert_eq!(expected.len(), keys, "keys filled");

    let url = format!("redis://:s3cret@127.0.0.1:{}/0", source.port);
    let summary = backup(&store, &url);
    let id = summary["backupId"].as_str().expect("backup id").to_owned();
    let record = store.json(&["backups", "show", &id]);
    assert_eq!(record["engine"], "redis", "{record}");
    assert_eq!(
        record["source"],
        format!("redis://127.0.0.1:{}/0", source.port),
        "{record}"
    );
    assert!(!record.to_string().contains("s3cret"), "the password leaked: {record}");
    assert!(
        record["serverVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with('7') || v.contains('.')),
        "{record}"
    );
    assert_eq!(record["entryCount"], 1, "{record}");

    // Into a file; a second server loads it.
    let restored_dir = dir.path().join("restored");
    std::fs::create_dir(&restored_dir).expect("mkdir");
    let rdb = restored_dir.join("dump.rdb");
    let rdb_text = rdb.display().to_string();
    let restored = store.json(&["restore", "dump", &id, "--to", &rdb_text]);
    assert_eq!(restored["engine"], "redis", "{restored}");
    let bytes = std::fs::read(&rdb).expect("restored RDB");
    assert!(bytes.starts_with(b"REDIS"), "not an RDB file");
    assert_eq!(restored["bytesRestored"], bytes.len() as u64, "{restored}");
    {
        let copy = Server::start(&restored_dir, "dump.rdb", None);
        let actual = contents(&copy);
        assert_eq!(actual.len(), expected.len(), "key count differs");
        for ((db, key), (kind, value, pttl)) in &expected {
            let name = String::from_utf8_lossy(key);
            let (akind, avalue, apttl) = actual
                .get(&(*db, key.clone()))
                .unwrap_or_else(|| panic!("db {db} key {name} missing after restore"));
            assert_eq!(akind, kind, "db {db} key {name}: type");
            assert_eq!(avalue, value, "db {db} key {name}: value");
            if *pttl < 0 {
                assert_eq!(*apttl, *pttl, "db {db} key {name}: TTL appeared");
            } else {
                // Absolute expiry times are kept: the TTL only ran down meanwhile.
                assert!(
                    *apttl > 0 && *apttl <= *pttl && pttl - apttl < 120_000,
                    "db {db} key {name}: TTL {pttl} ms became {apttl} ms"
                );
            }
        }
    }

    // An existing file is refused without --overwrite, kept as it was.
    let refused = store.run(&["restore", "dump", &id, "--to", &rdb_text]);
    assert!(!refused.status.success(), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--overwrite"),
        "{}",
        describe(&refused)
    );
    assert_eq!(
        std::fs::read(&rdb).expect("RDB"),
        bytes,
        "a refused restore changed the file"
    );
    store.ok(&["restore", "dump", &id, "--to", &rdb_text, "--overwrite"]);
    assert_eq!(std::fs::read(&rdb).expect("RDB"), bytes);
    let leftovers: Vec<_> = std::fs::read_dir(&restored_dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("lifeboat"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // A Redis backup into a database URL: refused with the way to do it.
    let wrong = store.run(&["restore", "dump", &id, "--to", &url]);
    assert!(!wrong.status.success(), "{}", describe(&wrong));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("--to PATH/dump.rdb"),
        "{}",
        describe(&wrong)
    );
}

/// A backup that must fail with `expected` in its message, recorded as failed.
fn failing(store: &Store, url: &str, expected: &str) {
    let output = store.run(&["backup", "dump", url]);
    assert!(!output.status.success(), "{}", describe(&output));
    let message = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(message.contains(expected), "{expected:?} not in: {message}");
    assert!(!message.contains("hunter2"), "the password leaked: {message}");
    let port = url.rsplit(':').next().expect("port");
    let records = store.json(&["backups", "list"]);
    let record = records
        .as_array()
        .and_then(|r| {
            r.iter().find(|r| {
                r["source"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(&format!("redis://127.0.0.1:{port}")))
            })
        })
        .unwrap_or_else(|| panic!("no record for {url} in {records}"));
    assert_eq!(record["status"], "failed", "{record}");
    assert!(!record.to_string().contains("hunter2"), "the password leaked: {record}");
    assert!(
        record["error"].as_str().is_some_and(|e| e.contains(expected)),
        "{record}"
    );
}

#[test]
fn redis_bad_input_fails_clearly_and_is_recorded() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime.block_on(Store::new());
    let dir = tempfile::tempdir().expect("tempdir");

    {
        let server = Server::start(dir.path(), "dump.rdb", Some("right-password"));
        server.client().ok(&["SET", "k", "v"]);
        failing(
            &store,
            &format!("redis://:hunter2@127.0.0.1:{}", server.port),
            "authentication failed",
        );
        // No password for a server that requires one.
        let output = store.run(&["backup", "dump", &format!("redis://127.0.0.1:{}/0", server.port)]);
        assert!(!output.status.success(), "{}", describe(&output));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("requires a password"),
            "{}",
            describe(&output)
        );
    }

    // Nothing listening.
    failing(
        &store,
        &format!("redis://127.0.0.1:{}", free_port()),
        "could not connect",
    );

    // Something that does not speak Redis.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let talker = std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    failing(&store, &format!("redis://127.0.0.1:{port}"), "is this a Redis server?");
    talker.join().expect("talker");

    // A bad URL: no record needed, but a clear message.
    let output = store.run(&["backup", "dump", "redis://127.0.0.1:6379/zero"]);
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("a Redis database is a number"),
        "{}",
        describe(&output)
    );
}
