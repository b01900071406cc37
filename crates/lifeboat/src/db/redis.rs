//! A client of the Redis protocol (RESP): a blocking connection with
//! timeouts that authenticates, sends commands and reads reply lines, and
//! asks the server's version. The replication protocol that dumps a server's
//! RDB is built on it in `crate::dump::redis`.

use std::io::Read;

use super::error::DbError;
use super::url::DatabaseUrl;

/// Seconds to wait for a Redis server to connect or answer a command.
const REDIS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest reply line read from a Redis server.
const REDIS_LINE_LIMIT: usize = 64 * 1024;
/// The longest bulk reply read into memory (`INFO server` is about 1 KiB;
/// an RDB payload is streamed, never held, so this does not bound it).
pub(crate) const REDIS_BULK_LIMIT: usize = 1024 * 1024;

/// A connection to a Redis server speaking RESP, blocking, with timeouts.
pub(crate) struct RedisConnection {
    pub(crate) url: DatabaseUrl,
    pub(crate) stream: std::io::BufReader<std::net::TcpStream>,
}

impl RedisConnection {
    /// Connects and authenticates (AUTH [USER] PASSWORD when the URL has a password).
    pub(crate) fn open(url: &DatabaseUrl) -> Result<Self, DbError> {
        use std::net::ToSocketAddrs;
        let unreachable = |e: &dyn std::fmt::Display| {
            url.redis_error(&format!(
                "could not connect: {e}; check that the Redis server is running and reachable at {}:{}",
                url.host, url.port
            ))
        };
        let addresses: Vec<_> = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|e| unreachable(&e))?
            .collect();
        let mut last = None;
        let mut stream = None;
        for address in addresses {
            match std::net::TcpStream::connect_timeout(&address, REDIS_TIMEOUT) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = match (stream, last) {
            (Some(s), _) => s,
            (None, Some(e)) => return Err(unreachable(&e)),
            (None, None) => return Err(unreachable(&"the host name has no address")),
        };
        stream
            .set_read_timeout(Some(REDIS_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(REDIS_TIMEOUT)))
            .map_err(|e| unreachable(&e))?;
        let mut connection = Self {
            url: url.clone(),
            stream: std::io::BufReader::new(stream),
        };
        if let Some(password) = url.password() {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &url.user {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            connection.send(&args)?;
            let line = connection.line()?;
            if let Some(error) = line.strip_prefix('-') {
                return Err(url.redis_error(&format!(
                    "authentication failed ({error}): check the password in the URL (redis://:PASSWORD@HOST:PORT)"
                )));
            }
        }
        Ok(connection)
    }

    pub(crate) fn io_error(&self, e: std::io::Error) -> DbError {
        let message = match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                "no answer in time: is this a Redis server?".to_owned()
            }
            std::io::ErrorKind::UnexpectedEof => "the server closed the connection: is this a Redis server?".to_owned(),
            _ => e.to_string(),
        };
        self.url.redis_error(&message)
    }

    pub(crate) fn send(&mut self, args: &[&[u8]]) -> Result<(), DbError> {
        use std::io::Write;
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg);
            request.extend_from_slice(b"\r\n");
        }
        let result = self.stream.get_mut().write_all(&request);
        result.map_err(|e| self.io_error(e))
    }

    /// One reply line without its CR LF; a first byte that is no RESP type fails.
    pub(crate) fn line(&mut self) -> Result<String, DbError> {
        use std::io::BufRead;
        let mut line = Vec::new();
        let read = (&mut self.stream)
            .take(REDIS_LINE_LIMIT as u64)
            .read_until(b'\n', &mut line);
        match read {
            Ok(0) => return Err(self.io_error(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => {}
            Err(e) => return Err(self.io_error(e)),
        }
        if !line.ends_with(b"\n") {
            return Err(self.url.redis_error("an over-long reply line: is this a Redis server?"));
        }
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        if let Some(first) = line.first() {
            if !b"+-:$*_,#%~>=(!|".contains(first) {
                return Err(self.url.redis_error(&format!(
                    "its answer {:?} is not the Redis protocol: is this a Redis server?",
                    String::from_utf8_lossy(&line[..line.len().min(40)])
                )));
            }
        }
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// The server's `redis_version` from INFO server.
    pub(crate) fn version(mut self) -> Result<String, DbError> {
        self.send(&[b"INFO", b"server"])?;
        let body = self.bulk("INFO")?;
        let body = String::from_utf8_lossy(&body);
        body.lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .map(|v| v.trim().to_owned())
            .ok_or_else(|| self.url.redis_error("INFO server names no redis_version"))
    }

    /// One bulk reply (`$LENGTH` CR LF, then the bytes and CR LF) of at most
    /// `REDIS_BULK_LIMIT` bytes: a longer announced length is refused before
    /// anything is allocated for it. `command` names the request in errors.
    pub(crate) fn bulk(&mut self, command: &str) -> Result<Vec<u8>, DbError> {
        let header = self.line()?;
        if let Some(error) = header.strip_prefix('-') {
            return Err(self.redis_error_for(error));
        }
        let length = parse_bulk_length(&header).map_err(|problem| {
            self.url.redis_error(&format!(
                "unexpected {command} answer {:?}: {problem}",
                header.chars().take(40).collect::<String>()
            ))
        })?;
        let mut body = vec![0; length + 2];
        self.stream.read_exact(&mut body).map_err(|e| self.io_error(e))?;
        if !body.ends_with(b"\r\n") {
            return Err(self
                .url
                .redis_error(&format!("the {command} answer does not end where its length says")));
        }
        body.truncate(length);
        Ok(body)
    }

    pub(crate) fn redis_error_for(&self, error: &str) -> DbError {
        if error.starts_with("NOAUTH") {
            self.url.redis_error(&format!(
                "{error}: the server requires a password; give it in the URL (redis://:PASSWORD@HOST:PORT)"
            ))
        } else {
            self.url.redis_error(error)
        }
    }
}

/// The length of a bulk reply header `$LENGTH`, refused above
/// `REDIS_BULK_LIMIT` (and when negative, a null reply, or not a number).
pub(crate) fn parse_bulk_length(header: &str) -> Result<usize, String> {
    let digits = header.strip_prefix('$').ok_or_else(|| "not a bulk reply".to_owned())?;
    let length: u64 = digits.parse().map_err(|_| format!("{digits:?} is not a bulk length"))?;
    if length > REDIS_BULK_LIMIT as u64 {
        return Err(format!(
            "a bulk reply of {length} bytes, more than the {REDIS_BULK_LIMIT} Lifeboat reads"
        ));
    }
    Ok(length as usize)
}

impl DatabaseUrl {
    /// A Redis server's failure, naming the server.
    pub(crate) fn redis_error(&self, message: &str) -> DbError {
        DbError::Redis {
            target: self.to_string(),
            message: message.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, Write};

    use super::*;

    /// A one-connection server on 127.0.0.1 that answers the first command
    /// (whatever it is) with `answer`, then keeps the connection open.
    fn hostile_server(answer: &'static [u8]) -> (DatabaseUrl, std::thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (socket, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(socket.try_clone().unwrap());
            let mut line = String::new();
            // `*2`, `$4`, `INFO`, `$6`, `server`: five lines.
            for _ in 0..5 {
                line.clear();
                reader.read_line(&mut line).unwrap();
            }
            (&socket).write_all(answer).unwrap();
            let _ = reader.read_line(&mut line);
        });
        (
            DatabaseUrl::parse(&format!("redis://127.0.0.1:{port}")).unwrap(),
            server,
        )
    }

    fn version_from(answer: &'static [u8]) -> Result<String, DbError> {
        let (url, server) = hostile_server(answer);
        let result = RedisConnection::open(&url).and_then(RedisConnection::version);
        server.join().unwrap();
        result
    }

    #[test]
    fn a_hostile_info_length_is_refused_before_allocating() {
        for (answer, expected) in [
            (
                &b"$999999999999\r\n"[..],
                "a bulk reply of 999999999999 bytes, more than the 1048576",
            ),
            // usize::MAX: `length + 2` overflowed here before lengths were bounded.
            (
                b"$18446744073709551615\r\n",
                "a bulk reply of 18446744073709551615 bytes",
            ),
            (b"$99999999999999999999999\r\n", "is not a bulk length"),
            (b"$-1\r\n", "is not a bulk length"),
            (b":12\r\n", "not a bulk reply"),
        ] {
            let err = version_from(answer).unwrap_err().to_string();
            assert!(err.contains(expected), "{answer:?}: {err}");
            assert!(err.contains("unexpected INFO answer"), "{err}");
        }
    }

    #[test]
    fn an_info_header_with_a_character_across_byte_40_is_named_without_a_panic() {
        // Found by the fuzzer: the header was cut for the message at byte 40,
        // inside the two bytes of `é`.
        let err = version_from(b"$11111111111111111111111111111111111111\xc3\xa9\r\n").unwrap_err();
        assert!(err.to_string().contains("is not a bulk length"), "{err}");
    }

    #[test]
    fn an_info_reply_shorter_or_longer_than_its_length_is_refused() {
        let err = version_from(b"$5\r\nredis_version:7.0.0\r\n").unwrap_err().to_string();
        assert!(err.contains("does not end where its length says"), "{err}");
        let version = version_from(b"$22\r\nredis_version:7.0.15\r\n\r\n").unwrap();
        assert_eq!(version, "7.0.15");
    }

    #[test]
    fn bulk_lengths_parse_within_the_bound() {
        assert_eq!(parse_bulk_length("$0"), Ok(0));
        assert_eq!(parse_bulk_length("$1048576"), Ok(REDIS_BULK_LIMIT));
        assert!(parse_bulk_length("$1048577").is_err());
    }
}
