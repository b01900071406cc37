//! Redis dumps over the replication protocol: `PSYNC ? -1` (without
//! `capa eof`, so always the length-prefixed form) on a connection from
//! `crate::db::redis`, the RDB payload read to exactly its announced length
//! and the live stream after it dropped. The RDB holds every database of
//! the server, whatever the URL's `/DB`; it is restored into a file
//! (`super::restore_dump_to_file`) that a stopped server is then started on.

use std::io::Read;
use std::sync::Arc;

use super::{stream_spec, DumpBackupOptions, DumpError};
use crate::backup::{run_stream_backup, BackupSummary};
use crate::catalog::Catalog;
use crate::db::error::DbError;
use crate::db::redis::RedisConnection;
use crate::repo::Repository;

/// Seconds without a byte (not even a keep-alive newline) before a
/// replication transfer is given up.
const REDIS_SYNC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

impl RedisConnection {
    /// Asks for a full resynchronisation and returns the RDB payload as a
    /// reader of exactly its announced length, its `REDIS` magic checked.
    fn full_sync(mut self) -> Result<RdbReader, DbError> {
        // No `REPLCONF capa eof`: the server then always sends a
        // length-prefixed RDB (written to its disk first), never the
        // diskless EOF-marker form.
        self.send(&[b"PSYNC", b"?", b"-1"])?;
        self.stream
            .get_ref()
            .set_read_timeout(Some(REDIS_SYNC_TIMEOUT))
            .map_err(|e| self.io_error(e))?;
        let mut fullresync = false;
        let length: u64 = loop {
            let line = self.line()?;
            if line.is_empty() {
                continue; // Keep-alive while the server prepares the snapshot.
            }
            if let Some(error) = line.strip_prefix('-') {
                return Err(self.redis_error_for(error));
            }
            if line.starts_with("+FULLRESYNC") {
                fullresync = true;
                continue;
            }
            if let Some(length) = line.strip_prefix('$') {
                if length.starts_with("EOF:") {
                    return Err(self
                        .url
                        .redis_error("the server sent a diskless (EOF-marked) RDB, which is not supported"));
                }
                if !fullresync {
                    return Err(self.url.redis_error("an RDB payload without +FULLRESYNC"));
                }
                break length
                    .parse()
                    .map_err(|_| self.url.redis_error(&format!("a bad RDB length {line:?}")))?;
            }
            return Err(self.url.redis_error(&format!("unexpected answer {line:?} to PSYNC")));
        };
        let mut magic = [0u8; 5];
        if length < magic.len() as u64 {
            return Err(self.url.redis_error(&format!("an RDB of only {length} bytes")));
        }
        self.stream.read_exact(&mut magic).map_err(|e| self.io_error(e))?;
        if &magic != b"REDIS" {
            return Err(self
                .url
                .redis_error("the replication payload does not start with REDIS: not an RDB file"));
        }
        Ok(RdbReader {
            magic,
            magic_sent: 0,
            remaining: length - magic.len() as u64,
            total: length,
            connection: self,
        })
    }
}

/// An RDB payload read off a replication connection: ends after exactly the
/// announced length; a connection closed earlier fails the read. Dropping it
/// closes the connection, so the server forgets the would-be replica.
struct RdbReader {
    magic: [u8; 5],
    magic_sent: usize,
    remaining: u64,
    total: u64,
    connection: RedisConnection,
}

impl Read for RdbReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.magic_sent < self.magic.len() {
            let n = buf.len().min(self.magic.len() - self.magic_sent);
            buf[..n].copy_from_slice(&self.magic[self.magic_sent..self.magic_sent + n]);
            self.magic_sent += n;
            return Ok(n);
        }
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.connection.stream.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::other(self.connection.url.redis_error(&format!(
                "the connection closed after {} of the RDB's {} bytes",
                self.total - self.remaining,
                self.total
            ))));
        }
        self.remaining -= n as u64;
        if self.remaining == 0 {
            let _ = self.connection.stream.get_ref().shutdown(std::net::Shutdown::Both);
        }
        Ok(n)
    }
}

/// Dumps a Redis server's RDB snapshot over the replication protocol.
pub(super) async fn run_redis_backup(
    repo: Arc<Repository>,
    catalog: &Catalog,
    options: &DumpBackupOptions,
) -> Result<BackupSummary, DumpError> {
    let url = options.url.clone();
    let version = url.server_version().await;
    let spec = stream_spec(&url, options.retention_days, version.as_ref().ok());
    let open = move || -> Result<RdbReader, crate::backup::StreamError> {
        version?;
        Ok(RedisConnection::open(&url)?.full_sync()?)
    };
    Ok(run_stream_backup(repo, catalog, &spec, open).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::url::DatabaseUrl;

    /// A fake Redis server on a local port that answers PSYNC with `reply`
    /// (and AUTH, INFO with canned answers), then keeps the connection open.
    fn fake_master(reply: Vec<u8>) -> DatabaseUrl {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 64];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(&reply);
            std::thread::sleep(std::time::Duration::from_millis(500));
        });
        DatabaseUrl::parse(&format!("redis://127.0.0.1:{port}")).unwrap()
    }

    #[test]
    fn a_full_sync_yields_exactly_the_rdb_after_keep_alives() {
        let rdb = b"REDIS0011 some rdb bytes \r\n\xff12345678".to_vec();
        let mut reply = b"\n\n+FULLRESYNC 0123 0\r\n\n\n".to_vec();
        reply.extend(format!("${}\r\n", rdb.len()).as_bytes());
        reply.extend(&rdb);
        // The live replication stream follows: never part of the dump.
        reply.extend(b"*1\r\n$4\r\nPING\r\n");
        let url = fake_master(reply);
        let mut reader = RedisConnection::open(&url).unwrap().full_sync().unwrap();
        let mut read = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            read.extend_from_slice(&buf[..n]);
        }
        assert_eq!(read, rdb);
    }

    #[test]
    fn a_short_or_foreign_payload_fails() {
        let mut reply = b"+FULLRESYNC 0123 0\r\n$100\r\nREDIS0011".to_vec();
        let url = fake_master(reply.clone());
        let mut reader = RedisConnection::open(&url).unwrap().full_sync().unwrap();
        let error = std::io::copy(&mut reader, &mut std::io::sink()).unwrap_err();
        assert!(
            error.to_string().contains("closed after 9 of the RDB's 100 bytes"),
            "{error}"
        );

        reply = b"+FULLRESYNC 0123 0\r\n$10\r\nPK\x03\x04zipzip".to_vec();
        let url = fake_master(reply);
        let error = RedisConnection::open(&url).unwrap().full_sync().err().unwrap();
        assert!(error.to_string().contains("not an RDB file"), "{error}");

        let url = fake_master(b"-NOAUTH Authentication required.\r\n".to_vec());
        let error = RedisConnection::open(&url).unwrap().full_sync().err().unwrap();
        assert!(error.to_string().contains("requires a password"), "{error}");

        let url = fake_master(b"SSH-2.0-OpenSSH_9.2\r\n".to_vec());
        let error = RedisConnection::open(&url).unwrap().full_sync().err().unwrap();
        assert!(error.to_string().contains("is this a Redis server?"), "{error}");
    }
}
