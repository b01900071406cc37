//! What gets backed up: the entries of an S3 prefix or of a directory, and
//! a blocking reader for each (the pipeline runs on blocking threads).

use std::io::Read;
use std::path::PathBuf;

use aws_sdk_s3::primitives::ByteStream;
use bytes::{Buf, Bytes};
use tokio::runtime::Handle;

use crate::storage::{Location, Storage, StorageError};

/// One file or object of a source, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceEntry {
    /// Relative to the source, `/`-separated.
    pub path: String,
    pub size: u64,
    pub mtime: Option<String>,
    pub mode: Option<u32>,
    pub etag: Option<String>,
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

    /// The canonical name recorded in the catalog: `s3://bucket/prefix/` or
    /// the absolute directory path.
    pub fn name(&self) -> String {
        match self {
            Source::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
            Source::Dir { root } => root.display().to_string(),
        }
    }

    /// Every entry, sorted by path.
    pub async fn list(&self) -> Result<Vec<SourceEntry>, StorageError> {
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
                        mode: None,
                        etag: object.etag,
                    });
                }
                entries.sort_by(|a, b| a.path.cmp(&b.path));
                Ok(entries)
            }
            Source::Dir { root } => {
                let root = root.clone();
                tokio::task::spawn_blocking(move || list_dir(&root))
                    .await
                    .map_err(|e| StorageError::Other {
                        location: "directory listing".into(),
                        message: e.to_string(),
                    })?
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
                        mode: None,
                        etag: head.e_tag().map(str::to_owned),
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
                        let mut entries = list_dir(&full)?;
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
                let path = root.join(&entry.path);
                let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
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

fn list_dir(root: &std::path::Path) -> Result<Vec<SourceEntry>, StorageError> {
    let mut entries = Vec::new();
    for item in walkdir::WalkDir::new(root).follow_links(false) {
        let item = item.map_err(|e| StorageError::Other {
            location: e
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| root.display().to_string()),
            message: e.to_string(),
        })?;
        if !item.file_type().is_file() {
            continue;
        }
        let meta = item.metadata().map_err(|e| StorageError::Other {
            location: item.path().display().to_string(),
            message: e.to_string(),
        })?;
        let Ok(relative) = item.path().strip_prefix(root) else {
            continue;
        };
        let path = relative.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
        let mtime = meta
            .modified()
            .ok()
            .map(|t| jiff::Timestamp::try_from(t).map(|t| t.to_string()).unwrap_or_default());
        #[cfg(unix)]
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            Some(meta.permissions().mode() & 0o7777)
        };
        #[cfg(not(unix))]
        let mode = None;
        entries.push(SourceEntry {
            path,
            size: meta.len(),
            mtime,
            mode,
            etag: None,
        });
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
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
        let entries = source.list().await.unwrap();
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
