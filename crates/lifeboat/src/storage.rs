//! Object storage: S3, or a local directory, behind one small interface.
//!
//! Everything Lifeboat stores goes through `Storage`, so the repository code
//! is the same for both. Errors name the bucket or key and what to do.

use std::path::{Path, PathBuf};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use crate::aws::error_code;

/// The most a download reserves up front from the announced length (larger
/// objects grow as they arrive).
const MAX_PREALLOCATION: u64 = 64 << 20;

/// The longest object a whole-object read accepts when the caller states no
/// tighter bound (FORMAT.md, "Hostile input"): the largest object Lifeboat
/// writes is a manifest or index, at most `format::MAX_METADATA_BYTES`.
pub const MAX_OBJECT_BYTES: u64 = crate::format::MAX_METADATA_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("bucket {bucket} does not exist (or is in another account): check the name, or create it first")]
    NoBucket { bucket: String },
    #[error("access to {location} was denied ({message}): the role needs s3:GetObject, s3:PutObject and s3:ListBucket on it")]
    AccessDenied { location: String, message: String },
    #[error("bucket {bucket} is not in region {region}: pass --region with the bucket's region ({message})")]
    WrongRegion {
        bucket: String,
        region: String,
        message: String,
    },
    #[error("{location} is {found} bytes, but {expected}: the object was altered, replaced or truncated")]
    Length {
        location: String,
        found: u64,
        expected: String,
    },
    #[error("{location}: {message}")]
    Other { location: String, message: String },
}

/// What length a read accepts: checked against the announced length before
/// anything is allocated, and against the bytes as they arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Exactly this many bytes (a pack whose size the index records, a range).
    Exactly(u64),
    /// At most this many bytes.
    AtMost(u64),
}

impl Expect {
    fn allows(self, length: u64) -> bool {
        match self {
            Expect::Exactly(n) => length == n,
            Expect::AtMost(n) => length <= n,
        }
    }

    /// The most bytes worth reading before the read is refused.
    fn ceiling(self) -> u64 {
        match self {
            Expect::Exactly(n) | Expect::AtMost(n) => n,
        }
    }

    fn describe(self) -> String {
        match self {
            Expect::Exactly(n) => format!("the index records {n}"),
            Expect::AtMost(n) => format!("at most {n} are allowed"),
        }
    }
}

/// Where a store or a source lives: `s3://BUCKET[/PREFIX]` or a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    S3 { bucket: String, prefix: String },
    Dir(PathBuf),
}

/// Most characters of a bad location an error message quotes.
const SHOWN_CHARS: usize = 80;

/// A location that did not parse, as an error quotes it: never its
/// credentials (`db::url::redact`), control characters escaped, at most
/// [`SHOWN_CHARS`] characters. The input may be a secret-bearing URL given
/// in the wrong place, or anything at all.
fn shown(text: &str) -> String {
    let redacted = crate::db::url::redact(text);
    let mut cut: String = redacted.chars().take(SHOWN_CHARS).collect();
    if redacted.chars().count() > SHOWN_CHARS {
        cut.push('…');
    }
    format!("{cut:?}")
}

impl Location {
    /// Parses `s3://bucket/prefix`, `file:///path` or a plain path. Errors
    /// name the part that is wrong and quote the input only as [`shown`].
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!(
                    "{} names no bucket: write s3://BUCKET or s3://BUCKET/PREFIX",
                    shown(text)
                ));
            }
            if !bucket.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
                return Err(format!(
                    "the bucket name of {} holds a character S3 bucket names cannot (they are letters, digits, '.', '-' and '_'): write s3://BUCKET or s3://BUCKET/PREFIX",
                    shown(text)
                ));
            }
            return Ok(Self::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        if text.contains("://") && !text.starts_with("file://") {
            return Err(format!(
                "{} is neither s3://BUCKET/PREFIX nor a local path",
                shown(text)
            ));
        }
        let path = text.strip_prefix("file://").unwrap_or(text);
        if path.is_empty() {
            return Err("an empty location: give s3://BUCKET/PREFIX or a directory".to_owned());
        }
        Ok(Self::Dir(PathBuf::from(path)))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Location::Dir(path) => write!(f, "{}", path.display()),
        }
    }
}

/// An object and its size, from a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// S3's ETag (quoted, as S3 gives it); none for local files.
    pub etag: Option<String>,
    /// Last modification, RFC 3339.
    pub modified: Option<String>,
}

/// A bucket (keys relative to the bucket) or a directory (keys relative to it).
#[derive(Clone, Debug)]
pub enum Storage {
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        region: String,
    },
    Dir {
        root: PathBuf,
    },
}

impl Storage {
    pub fn s3(client: aws_sdk_s3::Client, bucket: &str, region: &str) -> Self {
        Self::S3 {
            client,
            bucket: bucket.to_owned(),
            region: region.to_owned(),
        }
    }

    pub fn dir(root: impl Into<PathBuf>) -> Self {
        Self::Dir { root: root.into() }
    }

    /// `s3://bucket/key` or the file path, for messages.
    pub fn describe(&self, key: &str) -> String {
        match self {
            Storage::S3 { bucket, .. } => format!("s3://{bucket}/{key}"),
            Storage::Dir { root } => root.join(key).display().to_string(),
        }
    }

    pub(crate) fn s3_error<E>(&self, key: &str, error: aws_sdk_s3::error::SdkError<E, HttpResponse>) -> StorageError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let (code, message) = error_code(&error);
        let status = match &error {
            aws_sdk_s3::error::SdkError::ServiceError(e) => Some(e.raw().status().as_u16()),
            _ => None,
        };
        let (bucket, region) = match self {
            Storage::S3 { bucket, region, .. } => (bucket.clone(), region.clone()),
            Storage::Dir { .. } => (String::new(), String::new()),
        };
        match (code.as_deref(), status) {
            (Some("NoSuchBucket"), _) => StorageError::NoBucket { bucket },
            (Some("NoSuchKey") | Some("NotFound"), _) | (_, Some(404)) => StorageError::NotFound(self.describe(key)),
            (Some("AccessDenied"), _) | (_, Some(403)) => StorageError::AccessDenied {
                location: self.describe(key),
                message,
            },
            (
                Some("PermanentRedirect")
                | Some("AuthorizationHeaderMalformed")
                | Some("IllegalLocationConstraintException"),
                _,
            )
            | (_, Some(301)) => StorageError::WrongRegion {
                bucket,
                region,
                message,
            },
            _ => StorageError::Other {
                location: self.describe(key),
                message,
            },
        }
    }

    fn io_error(&self, key: &str, error: std::io::Error) -> StorageError {
        match error.kind() {
            std::io::ErrorKind::NotFound => StorageError::NotFound(self.describe(key)),
            std::io::ErrorKind::PermissionDenied => StorageError::AccessDenied {
                location: self.describe(key),
                message: error.to_string(),
            },
            _ => StorageError::Other {
                location: self.describe(key),
                message: error.to_string(),
            },
        }
    }

    /// Checks the bucket or directory exists and is reachable.
    pub async fn check(&self) -> Result<(), StorageError> {
        match self {
            Storage::S3 { client, bucket, .. } => {
                client
                    .head_bucket()
                    .bucket(bucket)
                    .send()
                    .await
                    .map_err(|e| match self.s3_error("", e) {
                        StorageError::NotFound(_) => StorageError::NoBucket { bucket: bucket.clone() },
                        other => other,
                    })?;
                Ok(())
            }
            Storage::Dir { root } => match tokio::fs::metadata(root).await {
                Ok(meta) if meta.is_dir() => Ok(()),
                Ok(_) => Err(StorageError::Other {
                    location: root.display().to_string(),
                    message: "is not a directory".into(),
                }),
                Err(e) => Err(self.io_error("", e)),
            },
        }
    }

    /// Reads an object whole, up to `MAX_OBJECT_BYTES`.
    pub async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        self.fetch(key, None, Expect::AtMost(MAX_OBJECT_BYTES)).await
    }

    /// Reads an object whole, refusing it, before reading its body, when its
    /// length is not what `expect` says.
    pub async fn get_checked(&self, key: &str, expect: Expect) -> Result<Bytes, StorageError> {
        self.fetch(key, None, expect).await
    }

    /// `length` bytes from `offset` (fewer if the object is shorter; never
    /// more, whatever the server sends).
    pub async fn get_range(&self, key: &str, offset: u64, length: u64) -> Result<Bytes, StorageError> {
        if length == 0 {
            return Ok(Bytes::new());
        }
        self.fetch(key, Some((offset, length)), Expect::AtMost(length)).await
    }

    fn length_error(&self, key: &str, found: u64, expect: Expect) -> StorageError {
        StorageError::Length {
            location: self.describe(key),
            found,
            expected: expect.describe(),
        }
    }

    async fn fetch(&self, key: &str, range: Option<(u64, u64)>, expect: Expect) -> Result<Bytes, StorageError> {
        match self {
            Storage::S3 { client, bucket, .. } => {
                let request = client.get_object().bucket(bucket).key(key);
                let request = match range {
                    Some((offset, length)) => {
                        request.range(format!("bytes={offset}-{}", offset.saturating_add(length - 1)))
                    }
                    None => request,
                };
                let output = request.send().await.map_err(|e| self.s3_error(key, e))?;
                let announced = output.content_length.and_then(|n| u64::try_from(n).ok());
                if let Some(announced) = announced {
                    // A ranged read of a shorter object returns fewer bytes.
                    if (range.is_none() && !expect.allows(announced)) || announced > expect.ceiling() {
                        return Err(self.length_error(key, announced, expect));
                    }
                }
                // Appends each piece as it arrives into one buffer of the
                // announced length: `collect().into_bytes()` would hold every
                // piece and then a contiguous copy, twice the object at peak.
                let reserve = announced.unwrap_or(0).min(MAX_PREALLOCATION).min(expect.ceiling());
                let mut bytes = Vec::with_capacity(reserve as usize);
                let mut body = output.body;
                let interrupted = |e: aws_sdk_s3::primitives::ByteStreamError| StorageError::Other {
                    location: self.describe(key),
                    message: format!("download interrupted: {e}"),
                };
                while let Some(piece) = body.try_next().await.map_err(interrupted)? {
                    let received = (bytes.len() + piece.len()) as u64;
                    if received > expect.ceiling() {
                        return Err(self.length_error(key, received, expect));
                    }
                    bytes.extend_from_slice(&piece);
                }
                if range.is_none() && !expect.allows(bytes.len() as u64) {
                    return Err(self.length_error(key, bytes.len() as u64, expect));
                }
                Ok(Bytes::from(bytes))
            }
            Storage::Dir { root } => {
                let path = root.join(key);
                tokio::task::spawn_blocking(move || read_file(&path, range, expect))
                    .await
                    .map_err(|e| StorageError::Other {
                        location: self.describe(key),
                        message: e.to_string(),
                    })?
                    .map_err(|e| match e {
                        ReadFileError::Io(e) => self.io_error(key, e),
                        ReadFileError::Length(found) => self.length_error(key, found, expect),
                    })
            }
        }
    }

    /// Returns `None` when the object does not exist.
    pub async fn get_optional(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        match self.get(key).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(StorageError::NotFound(_)) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Stores an object whole. A local file is written to a temporary name
    /// and renamed, so a reader never sees half of it.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        match self {
            Storage::S3 { client, bucket, .. } => {
                // No SigV4 payload hash: it was a second SHA-256 over every
                // pack (about 7% of a backup's CPU). The SDK's default CRC
                // checksum still lets S3 reject a damaged body, and TLS
                // protects it in transit.
                client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(ByteStream::from(bytes))
                    .customize()
                    .disable_payload_signing()
                    .send()
                    .await
                    .map_err(|e| self.s3_error(key, e))?;
                Ok(())
            }
            Storage::Dir { root } => {
                let path = root.join(key);
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(|e| self.io_error(key, e))?;
                }
                let temporary = temporary_name(&path);
                tokio::fs::write(&temporary, &bytes)
                    .await
                    .map_err(|e| self.io_error(key, e))?;
                tokio::fs::rename(&temporary, &path)
                    .await
                    .map_err(|e| self.io_error(key, e))
            }
        }
    }

    /// Deletes an object. Deleting one that does not exist is not an error
    /// (S3 behaves so too), so a retried deletion finishes.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self {
            Storage::S3 { client, bucket, .. } => {
                client
                    .delete_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| self.s3_error(key, e))?;
                Ok(())
            }
            Storage::Dir { root } => match tokio::fs::remove_file(root.join(key)).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(self.io_error(key, e)),
            },
        }
    }

    /// Every object under `prefix`, with sizes.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        match self {
            Storage::S3 { client, bucket, .. } => {
                let mut objects = Vec::new();
                let mut pages = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| self.s3_error(prefix, e))?;
                    for object in page.contents() {
                        if let Some(key) = object.key() {
                            objects.push(ObjectInfo {
                                key: key.to_owned(),
                                size: object.size().unwrap_or(0) as u64,
                                etag: object.e_tag().map(str::to_owned),
                                modified: object.last_modified().map(|t| t.to_string()),
                            });
                        }
                    }
                }
                Ok(objects)
            }
            Storage::Dir { root } => {
                let root = root.clone();
                let prefix = prefix.to_owned();
                tokio::task::spawn_blocking(move || list_dir(&root, &prefix))
                    .await
                    .map_err(|e| StorageError::Other {
                        location: "listing".into(),
                        message: e.to_string(),
                    })?
            }
        }
    }
}

enum ReadFileError {
    Io(std::io::Error),
    Length(u64),
}

/// Reads a local file (or `range` of it) within what `expect` allows: the
/// file's length is checked before any byte is read, and the read stops one
/// byte past the ceiling, so a file that grows meanwhile is refused too.
fn read_file(path: &Path, range: Option<(u64, u64)>, expect: Expect) -> Result<Bytes, ReadFileError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).map_err(ReadFileError::Io)?;
    let size = file.metadata().map_err(ReadFileError::Io)?.len();
    let (offset, wanted) = match range {
        Some((offset, length)) => (offset, length.min(size.saturating_sub(offset))),
        None if expect.allows(size) => (0, size),
        None => return Err(ReadFileError::Length(size)),
    };
    file.seek(SeekFrom::Start(offset)).map_err(ReadFileError::Io)?;
    let mut bytes = Vec::with_capacity(wanted.min(MAX_PREALLOCATION) as usize);
    let limit = if range.is_some() {
        wanted
    } else {
        expect.ceiling().saturating_add(1)
    };
    file.take(limit).read_to_end(&mut bytes).map_err(ReadFileError::Io)?;
    if range.is_none() && !expect.allows(bytes.len() as u64) {
        return Err(ReadFileError::Length(bytes.len() as u64));
    }
    Ok(Bytes::from(bytes))
}

fn temporary_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.lifeboat-tmp-{:08x}", rand::random::<u32>()))
}

fn list_dir(root: &Path, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(StorageError::Other {
                    location: dir.display().to_string(),
                    message: e.to_string(),
                })
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else if let Ok(relative) = path.strip_prefix(root) {
                let key = relative.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
                let hidden_temporary = key.rsplit('/').next().is_some_and(|n| n.contains(".lifeboat-tmp-"));
                if key.starts_with(prefix) && !hidden_temporary {
                    out.push(ObjectInfo {
                        key,
                        size: meta.len(),
                        etag: None,
                        modified: meta
                            .modified()
                            .ok()
                            .and_then(|t| jiff::Timestamp::try_from(t).ok())
                            .map(crate::times::format),
                    });
                }
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        let cases = [
            (
                "s3://b",
                Ok(Location::S3 {
                    bucket: "b".into(),
                    prefix: String::new(),
                }),
            ),
            (
                "s3://b/x/y/",
                Ok(Location::S3 {
                    bucket: "b".into(),
                    prefix: "x/y".into(),
                }),
            ),
            ("/tmp/d", Ok(Location::Dir("/tmp/d".into()))),
            ("file:///tmp/d", Ok(Location::Dir("/tmp/d".into()))),
        ];
        for (text, expected) in cases {
            assert_eq!(Location::parse(text), expected, "{text}");
        }
        for bad in ["s3://", "gs://b/p", ""] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Location::parse("s3://b/p").unwrap().to_string(), "s3://b/p");
    }

    #[test]
    fn bad_locations_are_quoted_bounded_escaped_and_without_credentials() {
        let long = format!("gs://{}", "x".repeat(10_000));
        for (text, expected) in [
            (
                "https://admin:hunter2@example.com/bucket",
                "\"https://admin:***@example.com/bucket\" is neither",
            ),
            ("s3://my\u{1b}[2Jbucket/p", "\"s3://my\\u{1b}[2Jbucket/p\""),
            ("s3:///p", "names no bucket"),
            (long.as_str(), "xxx…\" is neither"),
        ] {
            let message = Location::parse(text).unwrap_err();
            assert!(message.contains(expected), "{expected:?} not in {message:?}");
            assert!(
                !message.contains("hunter2") && !message.contains('\u{1b}'),
                "{message:?}"
            );
            assert!(message.len() < 400, "{} characters: {message:.100}", message.len());
        }
    }

    #[tokio::test]
    async fn dir_storage_puts_gets_and_lists() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::dir(dir.path());
        storage.check().await.unwrap();
        storage.put("a/b/c", Bytes::from_static(b"xyz")).await.unwrap();
        storage.put("a/d", Bytes::from_static(b"1")).await.unwrap();
        assert_eq!(storage.get("a/b/c").await.unwrap(), Bytes::from_static(b"xyz"));
        assert!(matches!(storage.get("nope").await, Err(StorageError::NotFound(_))));
        assert_eq!(storage.get_optional("nope").await.unwrap(), None);
        let keys: Vec<_> = storage
            .list("a/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| (o.key, o.size))
            .collect();
        assert_eq!(keys, vec![("a/b/c".to_owned(), 3), ("a/d".to_owned(), 1)]);
        assert!(storage.list("zzz").await.unwrap().is_empty());
        storage.delete("a/d").await.unwrap();
        storage.delete("a/d").await.unwrap();
        assert_eq!(storage.get_optional("a/d").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_huge_or_wrong_length_object_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::dir(dir.path());
        // Sparse: announces 64 GiB, holds nothing. Read whole, it exhausted memory.
        let huge = std::fs::File::create(dir.path().join("huge")).unwrap();
        huge.set_len(64 << 30).unwrap();
        let err = storage.get("huge").await.unwrap_err();
        assert!(
            matches!(err, StorageError::Length { found, .. } if found == 64 << 30),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("huge is 68719476736 bytes, but at most 1073741824 are allowed"),
            "{err}"
        );
        // A range of it reads only the range.
        assert_eq!(
            storage.get_range("huge", 1 << 30, 16).await.unwrap(),
            Bytes::from(vec![0; 16])
        );

        storage.put("p", Bytes::from_static(b"0123456789")).await.unwrap();
        assert_eq!(storage.get_checked("p", Expect::Exactly(10)).await.unwrap().len(), 10);
        for (expect, says) in [
            (Expect::Exactly(11), "p is 10 bytes, but the index records 11"),
            (Expect::Exactly(9), "but the index records 9"),
            (Expect::AtMost(9), "but at most 9 are allowed"),
        ] {
            let err = storage.get_checked("p", expect).await.unwrap_err();
            assert!(err.to_string().contains(says), "{expect:?}: {err}");
        }
        assert_eq!(storage.get_range("p", 2, 3).await.unwrap(), Bytes::from_static(b"234"));
        assert_eq!(storage.get_range("p", 8, 100).await.unwrap(), Bytes::from_static(b"89"));
        assert_eq!(storage.get_range("p", 50, 5).await.unwrap(), Bytes::new());
    }
}
