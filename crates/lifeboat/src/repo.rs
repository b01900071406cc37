//! A backup store opened for use: storage, layout, config and unwrapped keys.
//! Reads and writes the objects FORMAT.md specifies.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use crate::crypto::Keys;
use crate::format::{
    ChunkerParams, Compression, FormatError, IndexFile, IndexPack, Layout, Manifest, SealedPack, StoreConfig,
    FORMAT_VERSION, PACK_TARGET_SIZE,
};
use crate::ids::{ChunkId, IndexId, PackId};
use crate::keys::{KeyError, Kms};
use crate::storage::{Storage, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("there is no Lifeboat store at {location} (no config object): run `lifeboat init --store {location} --kms-key KEY` first")]
    NotInitialised { location: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(
        "{what} does not match its checksum (expected {expected}, found {found}): the object was altered or replaced"
    )]
    Checksum {
        what: String,
        expected: String,
        found: String,
    },
}

/// Where a chunk is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLocation {
    pub pack: PackId,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
}

/// The union of a store's index objects.
#[derive(Default, Debug)]
pub struct Index {
    pub chunks: HashMap<ChunkId, ChunkLocation>,
    pub packs: HashMap<PackId, u64>,
    pub index_objects: usize,
}

impl Index {
    fn add(&mut self, file: IndexFile) {
        for pack in file.packs {
            self.packs.insert(pack.id, pack.size);
            for blob in pack.blobs {
                let location = ChunkLocation {
                    pack: pack.id,
                    offset: blob.offset,
                    length: blob.length,
                    raw_length: blob.raw_length,
                };
                self.chunks.entry(blob.id).or_insert(location);
            }
        }
    }
}

pub enum InitOutcome {
    Created(Repository),
    AlreadyInitialised(Repository),
}

pub struct Repository {
    pub storage: Storage,
    pub layout: Layout,
    pub config: StoreConfig,
    pub keys: Arc<Keys>,
    location: String,
}

impl Repository {
    /// Creates the store's config and keys, or opens the existing store
    /// (so running it twice is harmless).
    pub async fn init(storage: Storage, prefix: &str, kms: &Kms, kms_key: &str) -> Result<InitOutcome, RepoError> {
        let layout = Layout::new(prefix);
        storage.check().await?;
        if storage.get_optional(&layout.config()).await?.is_some() {
            let repo = Self::open(storage, prefix, kms, Some(kms_key)).await?;
            return Ok(InitOutcome::AlreadyInitialised(repo));
        }
        let key = kms.describe(kms_key).await?;
        let store_id = hex::encode(rand::random::<[u8; 16]>());
        let (wrapped_key, keys) = kms.generate(&key.arn, &store_id).await?;
        let config = StoreConfig {
            version: FORMAT_VERSION,
            store_id,
            created_at: crate::catalog::now_rfc3339(),
            kms_key_id: key.arn,
            wrapped_key,
            chunker: ChunkerParams::default(),
            compression: Compression::default(),
            pack_size: PACK_TARGET_SIZE as u64,
        };
        storage.put(&layout.config(), Bytes::from(config.to_json())).await?;
        let location = storage.describe(prefix.trim_matches('/'));
        Ok(InitOutcome::Created(Self {
            storage,
            layout,
            config,
            keys: Arc::new(keys),
            location,
        }))
    }

    /// Opens a store. `expected_key`, when given, must be the key the store
    /// uses (by id, alias or ARN).
    pub async fn open(
        storage: Storage,
        prefix: &str,
        kms: &Kms,
        expected_key: Option<&str>,
    ) -> Result<Self, RepoError> {
        let layout = Layout::new(prefix);
        let location = storage.describe(prefix.trim_matches('/'));
        let config_key = layout.config();
        let bytes = match storage.get(&config_key).await {
            Ok(bytes) => bytes,
            Err(StorageError::NotFound(_)) => return Err(RepoError::NotInitialised { location }),
            Err(other) => return Err(other.into()),
        };
        let what = storage.describe(&config_key);
        let config = StoreConfig::from_json(&bytes, &what)?;
        let store_key = kms.describe(&config.kms_key_id).await?;
        if let Some(given) = expected_key {
            let given_key = kms.describe(given).await?;
            if given_key.arn != store_key.arn {
                return Err(KeyError::WrongKey {
                    store_key: store_key.arn,
                    given: given.to_owned(),
                }
                .into());
            }
        }
        let keys = kms
            .unwrap(&config.kms_key_id, &config.store_id, &config.wrapped_key, &what)
            .await?;
        Ok(Self {
            storage,
            layout,
            config,
            keys: Arc::new(keys),
            location,
        })
    }

    /// `s3://bucket/prefix` (or the directory) of this store.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Moves the store's wrapped key to another KMS key; no data is rewritten.
    /// Returns the new key's ARN.
    pub async fn rewrap(&mut self, kms: &Kms, new_key: &str) -> Result<String, RepoError> {
        let target = kms.describe(new_key).await?;
        let what = self.storage.describe(&self.layout.config());
        let wrapped = kms
            .rewrap(
                &self.config.kms_key_id,
                &target.arn,
                &self.config.store_id,
                &self.config.wrapped_key,
                &what,
            )
            .await?;
        // Prove the new wrapping opens to the same keys before replacing the config.
        let reopened = kms.unwrap(&target.arn, &self.config.store_id, &wrapped, &what).await?;
        let probe = b"lifeboat rewrap probe";
        if reopened.chunk_id(probe) != self.keys.chunk_id(probe) {
            return Err(RepoError::Checksum {
                what: "re-wrapped key material".into(),
                expected: "the store's keys".into(),
                found: "different keys".into(),
            });
        }
        let mut config = self.config.clone();
        config.kms_key_id = target.arn.clone();
        config.wrapped_key = wrapped;
        self.storage
            .put(&self.layout.config(), Bytes::from(config.to_json()))
            .await?;
        self.config = config;
        Ok(target.arn)
    }

    /// Reads every index object.
    pub async fn load_index(&self) -> Result<Index, RepoError> {
        let objects = self.storage.list(&self.layout.index_dir()).await?;
        let files: Vec<IndexFile> = futures::stream::iter(objects)
            .map(|object| async move {
                let bytes = self.storage.get(&object.key).await?;
                let what = self.storage.describe(&object.key);
                let name = object.key.rsplit('/').next().unwrap_or_default();
                let found = hex::encode(Sha256::digest(&bytes));
                if found != name {
                    return Err(RepoError::Checksum {
                        what,
                        expected: name.to_owned(),
                        found,
                    });
                }
                Ok::<_, RepoError>(IndexFile::open(&self.keys, &bytes, &what)?)
            })
            .buffer_unordered(16)
            .try_collect()
            .await?;
        let mut index = Index {
            index_objects: files.len(),
            ..Index::default()
        };
        for file in files {
            index.add(file);
        }
        Ok(index)
    }

    pub async fn put_pack(&self, pack: SealedPack) -> Result<IndexPack, RepoError> {
        let size = pack.bytes.len() as u64;
        self.storage
            .put(&self.layout.pack(&pack.id), Bytes::from(pack.bytes))
            .await?;
        Ok(IndexPack {
            id: pack.id,
            size,
            blobs: pack.blobs,
        })
    }

    pub async fn put_index(&self, packs: Vec<IndexPack>) -> Result<IndexId, RepoError> {
        let sealed = IndexFile::new(packs).seal(&self.keys)?;
        let id = IndexId(Sha256::digest(&sealed).into());
        self.storage.put(&self.layout.index(&id), Bytes::from(sealed)).await?;
        Ok(id)
    }

    /// Stores a manifest; returns the hex SHA-256 of the stored object.
    pub async fn put_manifest(&self, manifest: &Manifest) -> Result<String, RepoError> {
        let sealed = manifest.seal(&self.keys)?;
        let checksum = hex::encode(Sha256::digest(&sealed));
        self.storage
            .put(&self.layout.manifest(&manifest.backup_id), Bytes::from(sealed))
            .await?;
        Ok(checksum)
    }

    /// Reads a manifest, checking it against the catalog's checksum if given.
    pub async fn get_manifest(&self, backup_id: &str, checksum: Option<&str>) -> Result<Manifest, RepoError> {
        let key = self.layout.manifest(backup_id);
        let bytes = self.storage.get(&key).await?;
        if let Some(expected) = checksum {
            let found = hex::encode(Sha256::digest(&bytes));
            if found != expected {
                return Err(RepoError::Checksum {
                    what: self.storage.describe(&key),
                    expected: expected.to_owned(),
                    found,
                });
            }
        }
        Ok(Manifest::open(&self.keys, backup_id, &bytes)?)
    }

    pub fn pack_key(&self, id: &PackId) -> String {
        self.layout.pack(id)
    }
}

/// The storage and prefix a store location points at.
pub fn storage_for(location: &crate::storage::Location, s3: &aws_sdk_s3::Client, region: &str) -> (Storage, String) {
    match location {
        crate::storage::Location::S3 { bucket, prefix } => (Storage::s3(s3.clone(), bucket, region), prefix.clone()),
        crate::storage::Location::Dir(path) => (Storage::dir(path), String::new()),
    }
}
