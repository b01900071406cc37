//! What gets backed up: the entries of an S3 prefix or of a directory, and
//! a blocking reader for each (the pipeline runs on blocking threads).
//!
//! A directory's listing never fails on one entry: a subdirectory it may not
//! read, or a file that vanished between the directory read and its `stat`,
//! is a [`SkippedEntry`] of the listing, and the rest is backed up. A name
//! that is not UTF-8 is kept exactly (`raw_path`, FORMAT.md "Manifest").

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use bytes::{Buf, Bytes};
use tokio::runtime::Handle;

use crate::format::{display_path, entry_identity, SkippedEntry};
use crate::storage::{Location, Storage, StorageError};

/// One file or object of a source, as listed.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SourceEntry {
    /// Relative to the source, `/`-separated; for a name that is not UTF-8,
    /// its display form (see `raw_path`).
    pub path: String,
    /// The exact bytes of a directory entry's path, in hex, when they are
    /// not UTF-8.
    pub raw_path: Option<String>,
    pub size: u64,
    pub mtime: Option<String>,
    pub mode: Option<u32>,
    pub etag: Option<String>,
    /// A directory entry's inode change time (RFC 3339, nanoseconds).
    pub ctime: Option<String>,
    pub inode: Option<u64>,
}

impl SourceEntry {
    /// What tells two entries apart (`Entry::identity` of the manifest).
    pub fn identity(&self) -> String {
        entry_identity(&self.path, self.raw_path.as_deref())
    }

    /// The path below the source as the file system names it.
    fn relative_path(&self) -> PathBuf {
        match self.raw_path.as_deref().and_then(|raw| hex::decode(raw).ok()) {
            Some(bytes) => PathBuf::from(std::ffi::OsStr::from_bytes(&bytes)),
            None => PathBuf::from(&self.path),
        }
    }
}

/// A source's entries, sorted by path, and those it could not list.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub entries: Vec<SourceEntry>,
    pub skipped: Vec<SkippedEntry>,
}

/// Metadata known only once an entry is opened (what was actually read).
#[derive(Clone, Debug, Default)]
pub struct OpenedMeta {
    pub etag: Option<String>,
    pub version_id: Option<String>,
}

pub enum Source {
    S3 {
        client: aws_sdk_s3::Client,
        storage: Storage,
        bucket: String,
        prefix: String,
    },
    Dir {
        root: PathBuf,
    },
}

impl Source {
    pub fn new(location: &Location, s3: &aws_sdk_s3::Client, region: &str) -> Self {
        match location {
            Location::S3 { bucket, prefix } => Source::S3 {
                client: s3.clone(),
                storage: Storage::s3(s3.clone(), bucket, region),
                bucket: bucket.clone(),
                prefix: if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                },
            },
            Location::Dir(root) => Source::Dir {
                root: std::path::absolute(root).unwrap_or_else(|_| root.clone()),
            },
        }
    }

    /// Whether this is a directory, whose unreadable entries a backup skips.
    pub fn is_dir(&self) -> bool {
        matches!(self, Source::Dir { .. })
    }

    /// The canonical name recorded in the catalog: `s3://bucket/prefix/` or
    /// the absolute directory path.
    pub fn name(&self) -> String {
        match self {
            Source::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
            Source::Dir { root } => root.display().to_string(),
        }
    }

    /// Every entry, sorted by path, and (for a directory) what could not be listed.
    pub async fn list(&self) -> Result<Listing, StorageError> {
        match self {
            Source::S3 { storage, prefix, .. } => {
                let mut entries = Vec::new();
                for object in storage.list(prefix).await? {
                    let path = &object.key[prefix.len().min(object.key.len())..];
                    if path.is_empty() || object.key.ends_with('/') {
                        continue; // "folder" markers hold no data
                    }
                    entries.push(SourceEntry {
                        path: path.to_owned(),
                        size: object.size,
                        mtime: object.modified,
                        etag: object.etag,
                        ..SourceEntry::default()
                    });
                }
                entries.sort_by(|a, b| a.path.cmp(&b.path));
                Ok(Listing {
                    entries,
                    skipped: Vec::new(),
                })
            }
            Source::Dir { root } => {
                let root = root.clone();
                tokio::task::spawn_blocking(move || list_dir(&root))
                    .await
                    .map_err(|e| StorageError::Other {
                        location: "directory listing".into(),
                        message: e.to_string(),
                    })
            }
        }
    }

    /// One entry as a listing would show it, or `None` when it does not
    /// exist (any more). `path` is relative to the source.
    pub async fn stat(&self, path: &str) -> Result<Option<SourceEntry>, StorageError> {
        match self {
            Source::S3 {
                client,
                storage,
                bucket,
                prefix,
            } => {
                let key = format!("{prefix}{path}");
                match client.head_object().bucket(bucket).key(&key).send().await {
                    Ok(head) => Ok(Some(SourceEntry {
                        path: path.to_owned(),
                        size: head.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                        mtime: head.last_modified().map(|t| t.to_string()),
                        etag: head.e_tag().map(str::to_owned),
                        ..SourceEntry::default()
                    })),
                    Err(e) => match storage.s3_error(&key, e) {
                        StorageError::NotFound(_) => Ok(None),
                        other => Err(other),
                    },
                }
            }
            Source::Dir { root } => {
                let full = root.join(path);
                match tokio::fs::symlink_metadata(&full).await {
                    Ok(meta) if meta.is_file() => {
                        let mut entries = list_dir(&full).entries;
                        Ok(entries.pop().map(|mut entry| {
                            entry.path = path.to_owned();
                            entry
                        }))
                    }
                    Ok(_) => Ok(None),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(StorageError::Other {
                        location: full.display().to_string(),
                        message: e.to_string(),
                    }),
                }
            }
        }
    }

    /// Opens an entry for reading, from a blocking thread. `handle` runs the
    /// S3 calls.
    pub fn open_blocking(
        &self,
        entry: &SourceEntry,
        handle: &Handle,
    ) -> Result<(Box<dyn Read + Send>, OpenedMeta), StorageError> {
        match self {
            Source::S3 {
                client,
                storage,
                bucket,
                prefix,
            } => {
                let key = format!("{prefix}{}", entry.path);
                let output = handle
                    .block_on(client.get_object().bucket(bucket).key(&key).send())
                    .map_err(|e| storage.s3_error(&key, e))?;
                let meta = OpenedMeta {
                    etag: output.e_tag.clone(),
                    version_id: output.version_id.clone(),
                };
                let reader = StreamReader {
                    handle: handle.clone(),
                    body: output.body,
                    current: Bytes::new(),
                };
                Ok((Box::new(reader), meta))
            }
            Source::Dir { root } => {
                let path = root.join(entry.relative_path());
                use std::os::unix::fs::OpenOptionsExt;
                // A file replaced by a symbolic link since the listing is not followed.
                let file = std::fs::File::options()
                    .read(true)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&path);
                let file = file.map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => StorageError::NotFound(path.display().to_string()),
                    _ => StorageError::Other {
                        location: path.display().to_string(),
                        message: e.to_string(),
                    },
                })?;
                Ok((
                    Box::new(std::io::BufReader::with_capacity(1 << 20, file)),
                    OpenedMeta::default(),
                ))
            }
        }
    }
}

/// A blocking `Read` over an S3 body stream: memory stays at one network
/// frame, whatever the object's size.
struct StreamReader {
    handle: Handle,
    body: ByteStream,
    current: Bytes,
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while !self.current.has_remaining() {
            match self.handle.block_on(self.body.next()) {
                Some(Ok(bytes)) => self.current = bytes,
                Some(Err(e)) => return Err(std::io::Error::other(format!("download interrupted: {e}"))),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.remaining());
        self.current.copy_to_slice(&mut buf[..n]);
        Ok(n)
    }
}

/// Every regular file below `root`, sorted by path; a directory that cannot
/// be read or a file gone before its `stat` is skipped, with the reason.
fn list_dir(root: &Path) -> Listing {
    let mut listing = Listing::default();
    let shown = |path: &Path| {
        let relative = path.strip_prefix(root).unwrap_or(path);
        display_path(relative.as_os_str().as_bytes())
    };
    for item in walkdir::WalkDir::new(root).follow_links(false) {
        let item = match item {
            Ok(item) => item,
            Err(error) => {
                let path = error.path().map(shown).unwrap_or_default();
                listing.skipped.push(SkippedEntry {
                    reason: walk_error(&error),
                    path,
                });
                continue;
            }
        };
        if !item.file_type().is_file() {
            continue;
        }
        let meta = match item.metadata() {
            Ok(meta) => meta,
            Err(error) => {
                listing.skipped.push(SkippedEntry {
                    path: shown(item.path()),
                    reason: walk_error(&error),
                });
                continue;
            }
        };
        let Ok(relative) = item.path().strip_prefix(root) else {
            continue;
        };
        listing.entries.push(dir_entry(relative, &meta));
    }
    listing.entries.sort_by(|a, b| a.path.cmp(&b.path));
    listing
}

/// Why a directory entry could not be listed, in a sentence.
fn walk_error(error: &walkdir::Error) -> String {
    match error.io_error().map(std::io::Error::kind) {
        Some(std::io::ErrorKind::NotFound) => "it vanished during the backup".into(),
        Some(std::io::ErrorKind::PermissionDenied) => "permission denied: it cannot be read".into(),
        _ => error.to_string(),
    }
}

/// A listed regular file: its path (exactly, if not UTF-8) and what change
/// detection compares.
fn dir_entry(relative: &Path, meta: &std::fs::Metadata) -> SourceEntry {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let bytes = relative.as_os_str().as_bytes();
    let (path, raw_path) = match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), None),
        Err(_) => (display_path(bytes), Some(hex::encode(bytes))),
    };
    let ctime = jiff::Timestamp::new(meta.ctime(), meta.ctime_nsec() as i32)
        .ok()
        .map(|t| t.to_string());
    let mtime = meta
        .modified()
        .ok()
        .map(|t| jiff::Timestamp::try_from(t).map(|t| t.to_string()).unwrap_or_default());
    SourceEntry {
        path,
        raw_path,
        size: meta.len(),
        mtime,
        mode: Some(meta.permissions().mode() & 0o7777),
        etag: None,
        ctime,
        inode: Some(meta.ino()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn directories_list_files_relative_and_sorted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/c")).unwrap();
        std::fs::write(dir.path().join("b/c/z.txt"), b"zz").unwrap();
        std::fs::write(dir.path().join("a.txt"), b"a").unwrap();
        let source = Source::Dir {
            root: dir.path().to_path_buf(),
        };
        let entries = source.list().await.unwrap().entries;
        let paths: Vec<_> = entries.iter().map(|e| (e.path.as_str(), e.size)).collect();
        assert_eq!(paths, vec![("a.txt", 1), ("b/c/z.txt", 2)]);
        assert!(entries[0].mtime.is_some() && entries[0].mode.is_some());

        // One entry alone, as the listing shows it; a missing one is None.
        let one = source.stat("b/c/z.txt").await.unwrap().unwrap();
        assert_eq!(one, entries[1]);
        assert_eq!(source.stat("b/c/gone.txt").await.unwrap(), None);
        assert_eq!(source.stat("b").await.unwrap(), None, "a directory is not an entry");
    }
}
