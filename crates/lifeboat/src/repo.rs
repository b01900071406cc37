//! A backup store opened for use: storage, layout, config and unwrapped keys.
//! Reads and writes the objects FORMAT.md specifies.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use crate::catalog::BackupRecord;
use crate::crypto::Keys;
use crate::format::{
    BlobLocation, CandidateList, CatalogBinding, ChunkerParams, Compression, FormatError, IndexFile, IndexPack, Layout,
    Manifest, SealedPack, StoreConfig, FORMAT_VERSION, MAX_CONFIG_BYTES, MAX_PACK_BYTES, PACK_TARGET_SIZE,
};
use crate::ids::{ChunkId, IndexId, PackId};
use crate::keys::{KeyError, Kms};
use crate::storage::{Expect, Location, Storage, StorageError};

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
    #[error("store {store} is bound to catalog table {bound_table} in {bound_region} (its backups are recorded there), but this run uses table {given_table} in {given_region}: pass --table {bound_table} --region {bound_region} (or LIFEBOAT_TABLE); a store's backups are recorded in one table, or garbage collection cannot see them all")]
    WrongCatalog {
        store: String,
        bound_table: String,
        bound_region: String,
        given_table: String,
        given_region: String,
    },
    #[error("{what} belongs to store {found}, not to this store ({expected}): the object was copied from another store; delete it and run again to bind this store to the table in use")]
    ForeignBinding {
        what: String,
        expected: String,
        found: String,
    },
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

/// The union of a store's index objects, and what garbage collection has
/// marked as candidates for deletion.
#[derive(Default, Debug)]
pub struct Index {
    pub chunks: HashMap<ChunkId, ChunkLocation>,
    pub packs: HashMap<PackId, u64>,
    pub index_objects: usize,
    /// Keys of the index objects read.
    pub index_keys: Vec<String>,
    /// Chunks and packs listed by pending garbage-collection candidate lists.
    pub candidate_chunks: HashSet<ChunkId>,
    pub candidate_packs: HashSet<PackId>,
    /// The candidate lists themselves, with their keys.
    pub candidate_lists: Vec<(String, CandidateList)>,
    /// Every blob of every indexed pack, as the index objects list them.
    pub pack_contents: HashMap<PackId, Vec<BlobLocation>>,
}

impl Index {
    pub(crate) fn add(&mut self, file: IndexFile) {
        for pack in file.packs {
            self.packs.insert(pack.id, pack.size);
            self.pack_contents.insert(pack.id, pack.blobs.clone());
            for blob in pack.blobs {
                let location = ChunkLocation {
                    pack: pack.id,
                    offset: blob.offset,
                    length: blob.length,
                    raw_length: blob.raw_length,
                };
                match self.chunks.entry(blob.id) {
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(location);
                    }
                    // A chunk stored twice (re-stored because its first pack is
                    // a garbage-collection candidate): prefer the pack that stays.
                    std::collections::hash_map::Entry::Occupied(mut slot) => {
                        if self.candidate_packs.contains(&slot.get().pack) && !self.candidate_packs.contains(&pack.id) {
                            slot.insert(location);
                        }
                    }
                }
            }
        }
    }

    /// The chunks a new backup may deduplicate against: all but candidates,
    /// and but those stored only in a candidate pack (a pack a list names as
    /// a whole, e.g. one no index listed when it was marked: its chunks are
    /// not on the list one by one, and the sweep may delete them).
    pub fn dedup_chunks(&self) -> impl Iterator<Item = ChunkId> + '_ {
        self.chunks.keys().filter(|id| self.may_reuse(id)).copied()
    }

    /// Whether a new backup may reference `id` without storing it: it is
    /// indexed, not a candidate, and not stored only in a candidate pack.
    pub fn may_reuse(&self, id: &ChunkId) -> bool {
        !self.candidate_chunks.contains(id)
            && self
                .chunks
                .get(id)
                .is_some_and(|location| !self.candidate_packs.contains(&location.pack))
    }
}

/// Whether a backup record belongs to a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attribution {
    /// Recorded with this store's id, or (a record older than store ids) at
    /// a location that is certainly this store.
    Ours,
    /// Recorded with another store's id, or at a location that is certainly
    /// another store.
    Other,
    /// A record older than store ids whose location cannot be attributed
    /// with certainty (a relative directory, a directory this host cannot
    /// read, a location of another kind).
    Uncertain,
}

/// Whether a binding was found or written by [`Repository::bind_catalog`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    Found,
    Written,
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
            let mut repo = Self::open(storage, prefix, kms, Some(kms_key)).await?;
            repo.add_config_mac().await?;
            return Ok(InitOutcome::AlreadyInitialised(repo));
        }
        let key = kms.describe(kms_key).await?;
        let store_id = hex::encode(rand::random::<[u8; 16]>());
        let (wrapped_key, keys) = kms.generate(&key.arn, &store_id).await?;
        let mut config = StoreConfig {
            version: FORMAT_VERSION,
            store_id,
            created_at: crate::times::now_text(),
            kms_key_id: key.arn,
            wrapped_key,
            chunker: ChunkerParams::default(),
            compression: Compression::default(),
            pack_size: PACK_TARGET_SIZE as u64,
            mac: None,
        };
        config.validate("the new config")?;
        config.authenticate(&keys)?;
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
        let bytes = match storage.get_checked(&config_key, Expect::AtMost(MAX_CONFIG_BYTES)).await {
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
        if !config.check_mac(&keys, &what)? {
            tracing::warn!(
                config = %what,
                "the store's config has no parameter MAC (it predates them): run `lifeboat init` on the store to add one"
            );
        }
        Ok(Self {
            storage,
            layout,
            config,
            keys: Arc::new(keys),
            location,
        })
    }

    /// Opens the store at `location` with the shared clients (the usual way
    /// in: the toolkit and every function call this).
    pub async fn open_at(
        location: &crate::storage::Location,
        clients: &crate::aws::Clients,
        expected_key: Option<&str>,
    ) -> Result<Self, RepoError> {
        let (storage, prefix) = storage_for(location, &clients.s3, &clients.region);
        let kms = Kms::new(clients.kms.clone(), &clients.region);
        Self::open(storage, &prefix, &kms, expected_key).await
    }

    /// Adds the parameter MAC to a config written before MACs existed
    /// (FORMAT.md, "Config": the upgrade path). The parameters are the ones
    /// just range-checked and in use; nothing else changes.
    async fn add_config_mac(&mut self) -> Result<(), RepoError> {
        if self.config.mac.is_some() {
            return Ok(());
        }
        let mut config = self.config.clone();
        config.authenticate(&self.keys)?;
        self.storage
            .put(&self.layout.config(), Bytes::from(config.to_json()))
            .await?;
        self.config = config;
        Ok(())
    }

    /// `s3://bucket/prefix` (or the directory) of this store.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Which store a backup record belongs to: by its `storeId`, or, for a
    /// record written before store ids, by its manifest's location made
    /// canonical (S3: the bucket and the prefix without outer `/`; a
    /// directory: the `storeId` of the `config` found there). Never by
    /// comparing location strings: one directory has many spellings.
    pub async fn attribute(&self, record: &BackupRecord) -> Attribution {
        if let Some(id) = &record.store_id {
            return if *id == self.config.store_id {
                Attribution::Ours
            } else {
                Attribution::Other
            };
        }
        let Some(root) = record
            .storage_location
            .strip_suffix(&format!("manifests/{}", record.id))
        else {
            return Attribution::Uncertain;
        };
        match (&self.storage, Location::parse(root)) {
            (Storage::S3 { .. }, Ok(theirs @ Location::S3 { .. })) => {
                if Location::parse(&self.location).is_ok_and(|ours| ours == theirs) {
                    Attribution::Ours
                } else {
                    Attribution::Other
                }
            }
            (Storage::Dir { .. }, Ok(Location::Dir(path))) if path.is_absolute() => {
                self.attribute_directory(&path).await
            }
            _ => Attribution::Uncertain,
        }
    }

    /// A directory store is identified by the `config` it holds: the same
    /// `storeId` is this store, another is another store; a directory this
    /// host cannot read is uncertain (it may be this store mounted elsewhere).
    async fn attribute_directory(&self, root: &Path) -> Attribution {
        let config = root.join(self.layout.config());
        let readable = tokio::fs::metadata(&config)
            .await
            .is_ok_and(|m| m.is_file() && m.len() <= MAX_CONFIG_BYTES);
        if !readable {
            return Attribution::Uncertain;
        }
        let Ok(bytes) = tokio::fs::read(&config).await else {
            return Attribution::Uncertain;
        };
        match StoreConfig::from_json(&bytes, &config.display().to_string()) {
            Ok(found) if found.store_id == self.config.store_id => Attribution::Ours,
            Ok(_) => Attribution::Other,
            Err(_) => Attribution::Uncertain,
        }
    }

    /// Whether this store has a manifest object for backup `id`.
    pub async fn has_manifest(&self, id: &str) -> Result<bool, RepoError> {
        Ok(self.storage.get_optional(&self.layout.manifest(id)).await?.is_some())
    }

    /// Checks that this store's backups are recorded in catalog `table` of
    /// `region`; a store without a binding (initialised before bindings
    /// existed) is bound to it now.
    pub async fn bind_catalog(&self, table: &str, region: &str) -> Result<Binding, RepoError> {
        if self.check_catalog(table, region).await? {
            return Ok(Binding::Found);
        }
        let binding = CatalogBinding::new(&self.config.store_id, table, region, crate::times::now_text());
        self.storage
            .put(&self.layout.catalog_binding(), Bytes::from(binding.to_json()))
            .await?;
        tracing::info!(store = %self.location, table, region, "store bound to its catalog table");
        Ok(Binding::Written)
    }

    /// [`Repository::bind_catalog`] without writing: Ok(false) when the
    /// store has no binding yet.
    pub async fn check_catalog(&self, table: &str, region: &str) -> Result<bool, RepoError> {
        let key = self.layout.catalog_binding();
        let what = self.storage.describe(&key);
        let Some(bytes) = self.storage.get_optional(&key).await? else {
            return Ok(false);
        };
        let binding = CatalogBinding::from_json(&bytes, &what)?;
        if binding.store_id != self.config.store_id {
            return Err(RepoError::ForeignBinding {
                what,
                expected: self.config.store_id.clone(),
                found: binding.store_id,
            });
        }
        if !binding.names(table, region) {
            return Err(RepoError::WrongCatalog {
                store: self.location.clone(),
                bound_table: binding.table,
                bound_region: binding.region,
                given_table: table.to_owned(),
                given_region: region.to_owned(),
            });
        }
        Ok(true)
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

    /// Reads every index object and every garbage-collection candidate list.
    /// An index object that vanishes between listing and reading was
    /// consolidated by a garbage collection that wrote its replacement first.
    pub async fn load_index(&self) -> Result<Index, RepoError> {
        let mut index = Index {
            candidate_lists: self.load_gc_candidates().await?,
            ..Index::default()
        };
        for (_, list) in &index.candidate_lists {
            index.candidate_chunks.extend(list.chunks.iter().copied());
            index.candidate_packs.extend(list.packs.iter().copied());
        }
        let objects = self.storage.list(&self.layout.index_dir()).await?;
        let files: Vec<Option<(String, IndexFile)>> = futures::stream::iter(objects)
            .map(|object| async move {
                let bytes = match self.storage.get(&object.key).await {
                    Ok(bytes) => bytes,
                    Err(StorageError::NotFound(_)) => return Ok(None),
                    Err(other) => return Err(other.into()),
                };
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
                Ok::<_, RepoError>(Some((object.key.clone(), IndexFile::open(&self.keys, &bytes, &what)?)))
            })
            .buffer_unordered(16)
            .try_collect()
            .await?;
        for (key, file) in files.into_iter().flatten() {
            index.index_objects += 1;
            index.index_keys.push(key);
            index.add(file);
        }
        Ok(index)
    }

    /// Every pending garbage-collection candidate list, with its key.
    pub async fn load_gc_candidates(&self) -> Result<Vec<(String, CandidateList)>, RepoError> {
        let objects = self.storage.list(&self.layout.gc_dir()).await?;
        let mut lists = Vec::with_capacity(objects.len());
        for object in objects {
            let Some(bytes) = self.storage.get_optional(&object.key).await? else {
                continue;
            };
            let what = self.storage.describe(&object.key);
            lists.push((object.key, CandidateList::open(&self.keys, &bytes, &what)?));
        }
        Ok(lists)
    }

    /// Stores a candidate list; returns its key.
    pub async fn put_gc_candidates(&self, list: &CandidateList) -> Result<String, RepoError> {
        let sealed = list.seal(&self.keys)?;
        let key = self.layout.gc(&IndexId(Sha256::digest(&sealed).into()));
        self.storage.put(&key, Bytes::from(sealed)).await?;
        Ok(key)
    }

    /// Reads a whole pack, at most `MAX_PACK_BYTES` of it (a longer object
    /// is refused before its body is read).
    pub async fn get_pack(&self, id: &PackId) -> Result<Bytes, RepoError> {
        Ok(self.get_pack_of_size(id, None).await?)
    }

    /// Reads a whole pack whose size the index records: an object of any
    /// other length is refused, before its body is read, as altered or
    /// replaced. `None` (a pack no index lists) bounds it by `MAX_PACK_BYTES`.
    pub async fn get_pack_of_size(&self, id: &PackId, size: Option<u64>) -> Result<Bytes, StorageError> {
        let key = self.layout.pack(id);
        let expect = match size {
            Some(size) if size <= MAX_PACK_BYTES => Expect::Exactly(size),
            Some(size) => {
                return Err(StorageError::Length {
                    location: self.storage.describe(&key),
                    found: size,
                    expected: format!("the index records it so, above the largest pack ({MAX_PACK_BYTES})"),
                })
            }
            None => Expect::AtMost(MAX_PACK_BYTES),
        };
        self.storage.get_checked(&key, expect).await
    }

    /// A pack's index entry, from its own header: the whole pack is read,
    /// its SHA-256 checked against its name and its header authenticated.
    pub async fn index_pack_from_header(&self, id: &PackId) -> Result<IndexPack, RepoError> {
        let key = self.pack_key(id);
        let bytes = self.get_pack_of_size(id, None).await?;
        let what = self.storage.describe(&key);
        let found = hex::encode(Sha256::digest(&bytes));
        if found != id.to_hex() {
            return Err(RepoError::Checksum {
                what,
                expected: id.to_hex(),
                found,
            });
        }
        let blobs = crate::format::read_pack_header(&self.keys, &bytes, &what)?;
        Ok(IndexPack {
            id: *id,
            size: bytes.len() as u64,
            blobs,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_never_deduplicate_against_candidates_or_chunks_of_candidate_packs() {
        let location = |pack: u8| ChunkLocation {
            pack: PackId([pack; 32]),
            offset: 0,
            length: 1,
            raw_length: 1,
        };
        let mut index = Index::default();
        index.chunks.insert(ChunkId([1; 32]), location(1));
        index.chunks.insert(ChunkId([2; 32]), location(1));
        index.chunks.insert(ChunkId([3; 32]), location(2));
        index.chunks.insert(ChunkId([4; 32]), location(3));
        // Chunk 2 is listed one by one; pack 2 is listed as a whole.
        index.candidate_chunks.insert(ChunkId([2; 32]));
        index.candidate_packs.insert(PackId([2; 32]));
        let mut usable: Vec<ChunkId> = index.dedup_chunks().collect();
        usable.sort();
        assert_eq!(usable, vec![ChunkId([1; 32]), ChunkId([4; 32])]);
    }

    #[tokio::test]
    async fn a_pack_whose_length_differs_from_the_index_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::from_material(&[1; crate::crypto::KEY_MATERIAL_LEN]).unwrap();
        let repo = Repository {
            storage: Storage::dir(dir.path()),
            layout: Layout::new(""),
            config: StoreConfig {
                version: FORMAT_VERSION,
                store_id: "00".repeat(16),
                created_at: "2026-11-23T10:53:00Z".into(),
                kms_key_id: "k".into(),
                wrapped_key: "AAAA".into(),
                chunker: ChunkerParams::default(),
                compression: Compression::default(),
                pack_size: PACK_TARGET_SIZE as u64,
                mac: None,
            },
            keys: Arc::new(keys),
            location: dir.path().display().to_string(),
        };
        let (small, huge) = (PackId([1; 32]), PackId([2; 32]));
        repo.storage
            .put(&repo.pack_key(&small), Bytes::from(vec![7; 100]))
            .await
            .unwrap();
        let path = dir.path().join(repo.pack_key(&huge));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::File::create(&path)
            .unwrap()
            .set_len(MAX_PACK_BYTES + 1)
            .unwrap();

        assert_eq!(repo.get_pack_of_size(&small, Some(100)).await.unwrap().len(), 100);
        for (pack, size, says) in [
            (small, Some(99), "is 100 bytes, but the index records 99"),
            (small, Some(MAX_PACK_BYTES + 1), "above the largest pack"),
            (huge, Some(100), "is 536870913 bytes, but the index records 100"),
            (huge, None, "is 536870913 bytes, but at most 536870912 are allowed"),
        ] {
            let err = repo.get_pack_of_size(&pack, size).await.unwrap_err().to_string();
            assert!(err.contains(says), "{size:?}: {err}");
            assert!(err.contains(&pack.to_hex()), "names the pack: {err}");
        }
    }
}
