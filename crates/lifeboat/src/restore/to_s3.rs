//! Restoring to S3: each object is rebuilt chunk by chunk (ranged reads of
//! its blobs) into a multipart upload that is completed only when the
//! object's SHA-256 matches; otherwise the upload is aborted and no object
//! appears.
//!
//! Per entry: a name S3 cannot hold (not UTF-8, a key over 1,024 bytes), a
//! path two entries share, or an object already at the key (unless
//! `--overwrite`) is refused with its reason, and the rest restored. Parts
//! grow with the object ([`part_size`]) so that any object S3 can hold fits
//! in its 10,000 parts; memory is at most `concurrency` parts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::{fetch_chunk, FailedEntry, RestoreOptions};
use crate::format::Entry;
use crate::repo::{Index, Repository};

const MIB: u64 = 1 << 20;
/// The smallest part used (S3's minimum is 5 MiB).
const MIN_PART_SIZE: u64 = 8 * MIB;
/// S3's limits: parts of one upload, bytes of one part, bytes of an object.
const MAX_PARTS: u64 = 10_000;
const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;
const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * MIB;
/// S3's longest key, in bytes.
const MAX_KEY_LEN: usize = 1024;

/// The part size of a multipart upload of `size` bytes: 8 MiB, or more (a
/// whole number of MiB) so that the object fits in 10,000 parts.
pub(super) fn part_size(size: u64) -> Result<u64, String> {
    if size > MAX_OBJECT_SIZE {
        return Err(format!(
            "it is {size} bytes; an S3 object holds at most {MAX_OBJECT_SIZE} bytes (5 TiB)"
        ));
    }
    let part = size
        .div_ceil(MAX_PARTS)
        .div_ceil(MIB)
        .saturating_mul(MIB)
        .max(MIN_PART_SIZE);
    if part > MAX_PART_SIZE {
        return Err(format!(
            "it needs parts of {part} bytes; S3 allows at most {MAX_PART_SIZE}"
        ));
    }
    Ok(part)
}

/// The key of each entry under `prefix`, or why S3 cannot hold it there.
fn place_objects(entries: &[Entry], prefix: &str) -> Vec<Result<String, String>> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for entry in entries {
        *seen.entry(entry.path.as_str()).or_default() += 1;
    }
    entries
        .iter()
        .map(|entry| {
            if entry.raw_path.is_some() {
                return Err("its name is not UTF-8, and an S3 key must be: restore it to a directory".into());
            }
            if seen.get(entry.path.as_str()).copied().unwrap_or(0) > 1 {
                return Err("another entry of the backup has the same path; neither is restored over the other".into());
            }
            let key = format!("{prefix}{}", entry.path);
            if key.len() > MAX_KEY_LEN {
                return Err(format!(
                    "its key would be {} bytes; S3 keys hold at most {MAX_KEY_LEN}",
                    key.len()
                ));
            }
            Ok(key)
        })
        .collect()
}

pub(super) async fn restore_to_s3(
    repo: Arc<Repository>,
    index: Arc<Index>,
    entries: &[Entry],
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    options: &RestoreOptions,
) -> (u64, Vec<FailedEntry>) {
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    let placed = place_objects(entries, &prefix);
    let results: Vec<(String, Result<(), String>)> = futures::stream::iter(entries.iter().cloned().zip(placed))
        .map(|(entry, key)| {
            let (repo, index, s3, progress) = (repo.clone(), index.clone(), s3.clone(), options.progress.clone());
            let overwrite = options.overwrite;
            async move {
                let result = match key {
                    Err(reason) => Err(reason),
                    Ok(key) => {
                        let object = Object {
                            s3: &s3,
                            bucket,
                            key: &key,
                        };
                        match object.refuse_existing(overwrite).await {
                            Err(reason) => Err(reason),
                            Ok(()) => object.restore(&repo, &index, &entry, &progress).await,
                        }
                    }
                };
                (entry.path, result)
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    let mut failed = Vec::new();
    let mut restored = 0;
    for (path, result) in results {
        match result {
            Ok(()) => restored += 1,
            Err(reason) => failed.push(FailedEntry { path, reason }),
        }
    }
    failed.sort_by(|a, b| a.path.cmp(&b.path));
    (restored, failed)
}

/// The object one entry is restored to.
struct Object<'a> {
    s3: &'a aws_sdk_s3::Client,
    bucket: &'a str,
    key: &'a str,
}

impl Object<'_> {
    fn error(&self, e: impl std::error::Error) -> String {
        format!(
            "writing s3://{}/{}: {}",
            self.bucket,
            self.key,
            aws_sdk_s3::error::DisplayErrorContext(e)
        )
    }

    /// Without `overwrite`, an object already at the key is an error.
    async fn refuse_existing(&self, overwrite: bool) -> Result<(), String> {
        if overwrite {
            return Ok(());
        }
        match self.s3.head_object().bucket(self.bucket).key(self.key).send().await {
            Ok(_) => Err("an object exists at its key in the target; not overwritten (--overwrite replaces it)".into()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(()),
            Err(e) => Err(format!(
                "looking for s3://{}/{}: {}",
                self.bucket,
                self.key,
                aws_sdk_s3::error::DisplayErrorContext(e)
            )),
        }
    }

    /// Uploads `part` as the next part of the multipart upload `upload_id`,
    /// and adds it to `parts`.
    async fn upload_part(&self, upload_id: &str, parts: &mut Vec<CompletedPart>, part: Vec<u8>) -> Result<(), String> {
        if parts.len() as u64 >= MAX_PARTS {
            return Err(format!(
                "s3://{}/{}: its chunks hold more data than its manifest's size",
                self.bucket, self.key
            ));
        }
        let number = parts.len() as i32 + 1;
        let output = self
            .s3
            .upload_part()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(part))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(output.e_tag)
                .build(),
        );
        Ok(())
    }

    async fn restore(
        &self,
        repo: &Repository,
        index: &Index,
        entry: &Entry,
        progress: &AtomicU64,
    ) -> Result<(), String> {
        let part_size = part_size(entry.size)?;
        let capacity = part_size.min(entry.size.saturating_add(1));
        let mut buffer: Vec<u8> = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        let mut upload: Option<(String, Vec<CompletedPart>)> = None;
        let result = async {
            let mut sha = Sha256::new();
            for id in &entry.chunks {
                let data = fetch_chunk(repo, index, id).await?;
                sha.update(&data);
                progress.fetch_add(data.len() as u64, Ordering::Relaxed);
                buffer.extend_from_slice(&data);
                if buffer.len() as u64 >= part_size {
                    if upload.is_none() {
                        let created = self
                            .s3
                            .create_multipart_upload()
                            .bucket(self.bucket)
                            .key(self.key)
                            .send()
                            .await
                            .map_err(|e| self.error(e))?;
                        upload = Some((created.upload_id().unwrap_or_default().to_owned(), Vec::new()));
                    }
                    if let Some((upload_id, parts)) = upload.as_mut() {
                        self.upload_part(upload_id, parts, std::mem::take(&mut buffer)).await?;
                    }
                }
            }
            let found = hex::encode(sha.finalize());
            if found != entry.sha256 {
                return Err(format!(
                    "restored content has SHA-256 {found}, the manifest says {}",
                    entry.sha256
                ));
            }
            self.complete(upload.as_mut(), std::mem::take(&mut buffer)).await
        }
        .await;
        if result.is_err() {
            if let Some((upload_id, _)) = upload {
                let _ = self
                    .s3
                    .abort_multipart_upload()
                    .bucket(self.bucket)
                    .key(self.key)
                    .upload_id(upload_id)
                    .send()
                    .await;
            }
        }
        result
    }

    /// Writes the checked object: in one PUT if it fit in one part, else
    /// the last part and the upload's completion.
    async fn complete(&self, upload: Option<&mut (String, Vec<CompletedPart>)>, rest: Vec<u8>) -> Result<(), String> {
        let Some((upload_id, parts)) = upload else {
            self.s3
                .put_object()
                .bucket(self.bucket)
                .key(self.key)
                .body(ByteStream::from(rest))
                .send()
                .await
                .map_err(|e| self.error(e))?;
            return Ok(());
        };
        if !rest.is_empty() {
            self.upload_part(upload_id, parts, rest).await?;
        }
        self.s3
            .complete_multipart_upload()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(upload_id.as_str())
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts.clone()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_with_the_object_so_it_fits_in_ten_thousand() {
        const GIB: u64 = 1024 * MIB;
        for (size, expected) in [
            (0, MIN_PART_SIZE),
            (1, MIN_PART_SIZE),
            (78 * GIB, MIN_PART_SIZE),
            (80 * GIB, 9 * MIB),
            (10_000 * MIN_PART_SIZE, MIN_PART_SIZE),
            (10_000 * MIN_PART_SIZE + 1, 9 * MIB),
            (100 * GIB, 11 * MIB),
            (MAX_OBJECT_SIZE, 525 * MIB),
        ] {
            let part = part_size(size).unwrap();
            assert_eq!(part, expected, "size {size}");
            assert!(size.div_ceil(part) <= MAX_PARTS, "size {size}: {part}");
            assert!(part <= MAX_PART_SIZE && part.is_multiple_of(MIB));
        }
        let error = part_size(MAX_OBJECT_SIZE + 1).unwrap_err();
        assert!(error.contains("at most") && error.contains("5 TiB"), "{error}");
    }

    #[test]
    fn keys_s3_cannot_hold_or_two_entries_share_are_refused() {
        let entry = |path: &str, raw: Option<&str>| Entry {
            path: path.into(),
            raw_path: raw.map(str::to_owned),
            size: 0,
            sha256: String::new(),
            mtime: None,
            mode: None,
            etag: None,
            version_id: None,
            ctime: None,
            inode: None,
            chunks: vec![],
        };
        let long = "k".repeat(1021);
        let entries = [
            entry("a//b", None),
            entry("a/b", None),
            entry("x\\xff", Some("78ff")),
            entry(&long, None),
            entry("d", None),
            entry("d", None),
        ];
        let placed = place_objects(&entries, "pre/");
        assert_eq!(placed[0].as_deref(), Ok("pre/a//b"));
        assert_eq!(placed[1].as_deref(), Ok("pre/a/b"));
        assert!(placed[2].as_ref().unwrap_err().contains("not UTF-8"));
        assert!(placed[3].as_ref().unwrap_err().contains("1025 bytes"));
        assert!(placed[4].as_ref().unwrap_err().contains("same path"));
        assert!(placed[5].as_ref().unwrap_err().contains("same path"));
    }
}
