//! Restoring into a directory, pack by pack (as restic's restorer does):
//! each needed pack is downloaded once, its blobs are authenticated,
//! decompressed and checked against their chunk ids, and written straight to
//! their places in every file that holds them.
//!
//! Invariants, each per entry (one entry that cannot be restored is listed
//! with its reason; the rest are restored):
//! - Nothing is written outside the target: every path is split into names
//!   (`..`, `.`, empty names, absolute paths and NUL bytes refused) and
//!   walked with `openat` from the target directory, each directory opened
//!   with `O_NOFOLLOW`, so a symbolic link inside the target, planted before
//!   or during the restore, is never followed.
//! - No silent collision: two entries that would land on one file (`a//b`
//!   and `a/b`, the same path twice, a file that is also another entry's
//!   directory) are refused, never one written over the other.
//! - An existing file is not replaced unless `--overwrite` (checked before
//!   the download and again, atomically, by `RENAME_NOREPLACE`).
//! - A file appears under its name only after its SHA-256 matched: it is
//!   written under a short temporary name in its directory (which fits
//!   whatever the final name's length) and renamed.
//! - No setuid or setgid bit: the restore does not restore owners, so those
//!   bits are stripped from the restored mode.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use super::{FailedEntry, RestoreError, RestoreOptions};
use crate::format::{display_path, open_blob, Entry, FormatError};
use crate::ids::{ChunkId, PackId};
use crate::repo::{ChunkLocation, Index, Repository};
use crate::storage::StorageError;

/// The longest name a directory entry may have (Linux's `NAME_MAX`).
const NAME_MAX: usize = 255;

/// The bits of a mode a restore sets: no setuid or setgid, since the
/// restored file belongs to whoever runs the restore.
const RESTORABLE_MODE: u32 = 0o1777;

/// The names along `path` (its bytes), or why a directory cannot hold it.
pub(super) fn path_names(path: &[u8]) -> Result<Vec<&[u8]>, String> {
    if path.is_empty() {
        return Err("its path is empty".into());
    }
    if path.starts_with(b"/") {
        return Err("its path is absolute: it would leave the target directory".into());
    }
    if path.contains(&0) {
        return Err("its path holds a NUL byte, which no file name can".into());
    }
    let names: Vec<&[u8]> = path.split(|b| *b == b'/').collect();
    for name in &names {
        match *name {
            b"" => {
                return Err(
                    "its path has an empty name (as in `a//b` or `a/`): a directory would store it as another path"
                        .into(),
                )
            }
            b"." | b".." => {
                return Err(format!(
                    "its path has a `{}` name: it would alias another path or leave the target directory",
                    String::from_utf8_lossy(name)
                ))
            }
            long if long.len() > NAME_MAX => {
                return Err(format!(
                    "a name in its path is {} bytes long; a directory holds names of at most {NAME_MAX} bytes",
                    long.len()
                ))
            }
            _ => {}
        }
    }
    Ok(names)
}

/// Each entry's path bytes, or why it cannot be restored into a directory:
/// its path is not one a directory holds, another entry has the same path,
/// or other entries lie below it (it would be a file and a directory).
pub(super) fn place_entries(entries: &[Entry]) -> Vec<Result<Vec<u8>, String>> {
    let placed: Vec<Result<Vec<u8>, String>> = entries
        .iter()
        .map(|entry| {
            let bytes = entry.path_bytes().map_err(|e| e.to_string())?;
            path_names(&bytes)?;
            Ok(bytes)
        })
        .collect();
    let mut seen: HashMap<&[u8], usize> = HashMap::new();
    let mut directories: HashSet<&[u8]> = HashSet::new();
    for bytes in placed.iter().flatten() {
        *seen.entry(bytes.as_slice()).or_default() += 1;
        for (i, byte) in bytes.iter().enumerate() {
            if *byte == b'/' {
                directories.insert(&bytes[..i]);
            }
        }
    }
    placed
        .iter()
        .map(|placed| {
            let bytes = placed.as_ref().map_err(Clone::clone)?;
            if seen.get(bytes.as_slice()).copied().unwrap_or(0) > 1 {
                return Err("another entry of the backup has the same path; neither is restored over the other".into());
            }
            if directories.contains(bytes.as_slice()) {
                return Err(
                    "other entries of the backup lie below this path: it cannot be a file and a directory".into(),
                );
            }
            Ok(bytes.clone())
        })
        .collect()
}

/// The directories of the target opened so far, by path below it (`""` the
/// target itself); a directory that could not be opened, with the reason.
struct Directories {
    open: HashMap<Vec<u8>, Result<Arc<OwnedFd>, String>>,
}

impl Directories {
    fn new(target: &Path) -> Result<Self, std::io::Error> {
        std::fs::create_dir_all(target)?;
        let root = rustix::fs::open(
            target,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let open = HashMap::from([(Vec::new(), Ok(Arc::new(root)))]);
        Ok(Self { open })
    }

    /// The directory holding `names`' last name, created (and its parents)
    /// where missing, reached without following a symbolic link.
    fn parent_of(&mut self, names: &[&[u8]]) -> Result<Arc<OwnedFd>, String> {
        let mut current = self
            .open
            .get(&Vec::new())
            .cloned()
            .unwrap_or_else(|| Err("no target".into()))?;
        let mut prefix: Vec<u8> = Vec::new();
        for name in names.iter().take(names.len().saturating_sub(1)) {
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(name);
            let opened = match self.open.get(&prefix) {
                Some(known) => known.clone(),
                None => {
                    let opened = open_child_directory(&current, name, &prefix).map(Arc::new);
                    self.open.insert(prefix.clone(), opened.clone());
                    opened
                }
            };
            current = opened?;
        }
        Ok(current)
    }
}

/// Creates (if missing) and opens directory `name` of `parent`; a symbolic
/// link or a file of that name is an error, never followed.
fn open_child_directory(parent: &OwnedFd, name: &[u8], shown: &[u8]) -> Result<OwnedFd, String> {
    let shown = display_path(shown);
    match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o777)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(format!("creating directory {shown} in the target: {e}")),
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(parent, name, flags, Mode::empty()).map_err(|e| {
        match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW).map(|s| FileType::from_raw_mode(s.st_mode)) {
            Ok(FileType::Symlink) => {
                format!("{shown} in the target is a symbolic link: it is not followed, nothing is written through it")
            }
            Ok(FileType::Directory) | Err(_) => format!("opening directory {shown} in the target: {e}"),
            Ok(_) => format!("{shown} in the target is not a directory"),
        }
    })
}

/// Creates a new, empty temporary file in `dir` with a short random name.
fn create_temporary(dir: &OwnedFd) -> Result<(Vec<u8>, File), Errno> {
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut attempts = 0;
    loop {
        let name = format!(".lifeboat-{:016x}.tmp", rand::random::<u64>()).into_bytes();
        match rustix::fs::openat(dir, name.as_slice(), flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => return Ok((name, File::from(fd))),
            Err(Errno::EXIST) if attempts < 8 => attempts += 1,
            Err(e) => return Err(e),
        }
    }
}

const READ_BUFFER_LEN: usize = 256 << 10;

thread_local! {
    /// Where `FileSlot::finish` reads a restored file back to check it.
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One file being restored: written under `temporary` in `dir`, renamed to
/// `name` once checked.
struct FileSlot {
    entry: Entry,
    dir: Arc<OwnedFd>,
    name: Vec<u8>,
    temporary: Vec<u8>,
    overwrite: bool,
    file: Mutex<Option<File>>,
    remaining: AtomicUsize,
    failure: Mutex<Option<String>>,
}

impl FileSlot {
    fn fail(&self, reason: &str) {
        let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        failure.get_or_insert_with(|| reason.to_owned());
    }

    fn failed(&self) -> bool {
        self.failure.lock().map(|f| f.is_some()).unwrap_or(true)
    }

    /// Checks the whole file and moves it to its final name.
    fn finish(&self) {
        let file = self.file.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(file) = file else { return };
        if self.failed() {
            return;
        }
        if let Err(reason) = self.check_and_rename(&file) {
            self.fail(&reason);
        }
    }

    fn check_and_rename(&self, file: &File) -> Result<(), String> {
        file.sync_all().map_err(|e| format!("writing it: {e}"))?;
        let mut sha = Sha256::new();
        // One buffer per thread for all files: a fresh zeroed buffer per
        // file cost a memset per file.
        READ_BUFFER.with_borrow_mut(|buffer| -> Result<(), String> {
            buffer.resize(READ_BUFFER_LEN, 0);
            let mut offset = 0u64;
            loop {
                let n = file
                    .read_at(buffer, offset)
                    .map_err(|e| format!("reading it back: {e}"))?;
                if n == 0 {
                    return Ok(());
                }
                sha.update(&buffer[..n]);
                offset += n as u64;
            }
        })?;
        let found = hex::encode(sha.finalize());
        if found != self.entry.sha256 {
            return Err(format!(
                "restored content has SHA-256 {found}, the manifest says {}",
                self.entry.sha256
            ));
        }
        if let Some(mode) = self.entry.mode {
            file.set_permissions(std::fs::Permissions::from_mode(mode & RESTORABLE_MODE))
                .map_err(|e| format!("setting its mode: {e}"))?;
        }
        if let Some(mtime) = self.entry.mtime.as_deref().and_then(|t| crate::times::parse(t).ok()) {
            let _ = file.set_modified(std::time::SystemTime::from(mtime));
        }
        self.rename()
    }

    /// Moves the checked temporary file to its name: over an existing file
    /// only with `overwrite`.
    fn rename(&self) -> Result<(), String> {
        let (dir, from, to) = (&*self.dir, self.temporary.as_slice(), self.name.as_slice());
        let flags = if self.overwrite {
            RenameFlags::empty()
        } else {
            RenameFlags::NOREPLACE
        };
        let renamed = match rustix::fs::renameat_with(dir, from, dir, to, flags) {
            // A file system without RENAME_NOREPLACE: a hard link fails as well on an existing name.
            Err(Errno::INVAL) if !self.overwrite => rustix::fs::linkat(dir, from, dir, to, AtFlags::empty())
                .and_then(|()| rustix::fs::unlinkat(dir, from, AtFlags::empty())),
            other => other,
        };
        renamed.map_err(|e| match e {
            Errno::EXIST if !self.overwrite => {
                "it appeared in the target during the restore; not overwritten (--overwrite replaces it)".into()
            }
            Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST => "a directory of that name is in the target".into(),
            other => format!("renaming it into place: {other}"),
        })
    }

    fn remove_temporary(&self) {
        drop(self.file.lock().unwrap_or_else(|p| p.into_inner()).take());
        let _ = rustix::fs::unlinkat(&*self.dir, self.temporary.as_slice(), AtFlags::empty());
    }
}

/// Where one chunk goes: (file slot, offset in the file) for every use.
type Targets = Vec<(usize, u64)>;
/// The chunks to take from one pack.
type PackWork = (PackId, Vec<(ChunkId, ChunkLocation, Targets)>);

pub(super) async fn restore_to_dir(
    repo: Arc<Repository>,
    index: Arc<Index>,
    entries: &[Entry],
    dir: &Path,
    options: &RestoreOptions,
) -> Result<(u64, Vec<FailedEntry>), RestoreError> {
    let Prepared { slots, work, refused } = create_files(&index, entries, dir, options.overwrite)?;
    let slots = Arc::new(slots);
    // Entries with no chunks (empty files), or already failed, finish now.
    for slot in slots.iter() {
        if slot.entry.chunks.is_empty() || slot.failed() {
            slot.finish();
        }
    }
    write_packs(&repo, &index, work, &slots, options).await;
    Ok(tally(&slots, refused))
}

/// The files a restore into a directory writes, and what goes into them.
struct Prepared {
    slots: Vec<FileSlot>,
    work: Vec<PackWork>,
    /// Entries refused before any download, with the reason.
    refused: Vec<FailedEntry>,
}

/// Creates the temporary file of every entry that can be restored under
/// `dir`, and sorts the chunks to write by pack.
fn create_files(index: &Index, entries: &[Entry], dir: &Path, overwrite: bool) -> Result<Prepared, RestoreError> {
    let mut directories = Directories::new(dir).map_err(|e| RestoreError::Target {
        target: dir.display().to_string(),
        message: e.to_string(),
    })?;
    let mut slots = Vec::with_capacity(entries.len());
    let mut by_pack: HashMap<PackId, HashMap<ChunkId, (ChunkLocation, Targets)>> = HashMap::new();
    let mut refused = Vec::new();
    for (entry, placed) in entries.iter().zip(place_entries(entries)) {
        let slot = match placed.and_then(|bytes| new_slot(&mut directories, entry, &bytes, overwrite)) {
            Ok(slot) => slot,
            Err(reason) => {
                refused.push(FailedEntry {
                    path: entry.path.clone(),
                    reason,
                });
                continue;
            }
        };
        let slot_index = slots.len();
        let mut offset = 0u64;
        for chunk in &entry.chunks {
            match index.chunks.get(chunk) {
                Some(location) => {
                    by_pack
                        .entry(location.pack)
                        .or_default()
                        .entry(*chunk)
                        .or_insert_with(|| (*location, Vec::new()))
                        .1
                        .push((slot_index, offset));
                    offset += u64::from(location.raw_length);
                }
                None => {
                    slot.fail(&format!(
                        "chunk {chunk} is in no index of the store (the store is missing data)"
                    ));
                    break;
                }
            }
        }
        slots.push(slot);
    }
    let work: Vec<PackWork> = by_pack
        .into_iter()
        .map(|(pack, chunks)| {
            let chunks = chunks
                .into_iter()
                .map(|(id, (loc, targets))| (id, loc, targets))
                .collect();
            (pack, chunks)
        })
        .collect();
    Ok(Prepared { slots, work, refused })
}

/// The slot of one entry at `path` (its bytes, checked by [`place_entries`]):
/// its directory reached, an existing file refused (unless `overwrite`),
/// its temporary file created at its size.
fn new_slot(directories: &mut Directories, entry: &Entry, path: &[u8], overwrite: bool) -> Result<FileSlot, String> {
    let names = path_names(path)?;
    let dir = directories.parent_of(&names)?;
    let name = names.last().copied().unwrap_or_default().to_vec();
    match rustix::fs::statat(&*dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Directory => {
            return Err("a directory of that name is in the target".into())
        }
        Ok(_) if !overwrite => return Err("it exists in the target; not overwritten (--overwrite replaces it)".into()),
        _ => {}
    }
    let (temporary, file) = create_temporary(&dir).map_err(|e| format!("creating its file in the target: {e}"))?;
    let slot = FileSlot {
        entry: entry.clone(),
        dir,
        name,
        temporary,
        overwrite,
        file: Mutex::new(None),
        remaining: AtomicUsize::new(entry.chunks.len()),
        failure: Mutex::new(None),
    };
    if let Err(e) = file.set_len(entry.size) {
        slot.remove_temporary();
        return Err(format!("creating its file in the target: {e}"));
    }
    *slot.file.lock().unwrap_or_else(|p| p.into_inner()) = Some(file);
    Ok(slot)
}

/// Downloads every pack of `work` (`options.concurrency` at a time) and
/// writes its chunks into their files.
async fn write_packs(
    repo: &Arc<Repository>,
    index: &Index,
    work: Vec<PackWork>,
    slots: &Arc<Vec<FileSlot>>,
    options: &RestoreOptions,
) {
    futures::stream::iter(work)
        .map(|(pack, chunks)| {
            let (repo, slots, progress) = (repo.clone(), slots.clone(), options.progress.clone());
            async move {
                let key = repo.pack_key(&pack);
                let fetched = repo.get_pack_of_size(&pack, index.packs.get(&pack).copied()).await;
                let described = repo.storage.describe(&key);
                let _ = tokio::task::spawn_blocking(move || {
                    write_pack(&repo, &described, fetched, &chunks, &slots, &progress);
                })
                .await;
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect::<Vec<()>>()
        .await;
}

/// How many entries were restored, and which failed (`refused` with them),
/// by path; the temporary files of the failed ones are removed.
fn tally(slots: &[FileSlot], refused: Vec<FailedEntry>) -> (u64, Vec<FailedEntry>) {
    let mut failed = refused;
    let mut restored = 0;
    for slot in slots {
        let failure = slot.failure.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match failure {
            Some(reason) => {
                slot.remove_temporary();
                failed.push(FailedEntry {
                    path: slot.entry.path.clone(),
                    reason,
                });
            }
            None if slot.remaining.load(Ordering::SeqCst) == 0 || slot.entry.chunks.is_empty() => restored += 1,
            None => {
                slot.remove_temporary();
                failed.push(FailedEntry {
                    path: slot.entry.path.clone(),
                    reason: "not all of its chunks were written".into(),
                });
            }
        }
    }
    failed.sort_by(|a, b| a.path.cmp(&b.path));
    (restored, failed)
}

/// Decrypts the needed blobs of one downloaded pack into their files.
fn write_pack(
    repo: &Repository,
    described: &str,
    fetched: Result<Bytes, StorageError>,
    chunks: &[(ChunkId, ChunkLocation, Targets)],
    slots: &[FileSlot],
    progress: &AtomicU64,
) {
    for (id, location, targets) in chunks {
        let plaintext = match &fetched {
            Err(StorageError::NotFound(_)) => Err(format!("pack {described} is missing from the store")),
            Err(other) => Err(format!("pack {described} could not be read: {other}")),
            Ok(pack) => {
                let (start, end) = (
                    location.offset as usize,
                    location.offset as usize + location.length as usize,
                );
                match pack.get(start..end) {
                    None => Err(format!(
                        "pack {described} is truncated: chunk {id} should be at bytes {start}..{end} but the pack has {} bytes",
                        pack.len()
                    )),
                    Some(sealed) => open_blob(&repo.keys, id, sealed, location.raw_length as usize).map_err(|e| match e {
                        FormatError::Crypto(_) => format!("chunk {id} in pack {described} failed authentication: the pack is corrupted"),
                        other => format!("chunk {id} in pack {described}: {other}"),
                    }),
                }
            }
        };
        for &(slot_index, offset) in targets {
            let slot = &slots[slot_index];
            match &plaintext {
                Err(reason) => slot.fail(reason),
                Ok(data) if !slot.failed() => {
                    let written = slot
                        .file
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .as_ref()
                        .map(|f| f.write_all_at(data, offset));
                    match written {
                        Some(Ok(())) => {
                            progress.fetch_add(data.len() as u64, Ordering::Relaxed);
                        }
                        Some(Err(e)) => slot.fail(&format!("writing it: {e}")),
                        None => {}
                    }
                }
                Ok(_) => {}
            }
            if slot.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
                slot.finish();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> Entry {
        Entry {
            path: path.into(),
            raw_path: None,
            size: 0,
            sha256: hex::encode(Sha256::digest(b"")),
            mtime: None,
            mode: None,
            etag: None,
            version_id: None,
            ctime: None,
            inode: None,
            chunks: vec![],
        }
    }

    #[test]
    fn paths_a_directory_cannot_hold_are_refused_with_the_reason() {
        let long = "n".repeat(256);
        let longest = "n".repeat(255);
        for (path, refusal) in [
            ("a/b.txt", None),
            (longest.as_str(), None),
            ("../etc/passwd", Some("`..`")),
            ("/abs", Some("absolute")),
            ("a/../../b", Some("`..`")),
            ("", Some("empty")),
            ("./a", Some("`.`")),
            ("a/./b", Some("`.`")),
            ("a//b", Some("empty name")),
            ("a/", Some("empty name")),
            ("a\0b", Some("NUL")),
            (long.as_str(), Some("256 bytes long")),
        ] {
            let result = path_names(path.as_bytes());
            match refusal {
                None => assert!(result.is_ok(), "{path}: {result:?}"),
                Some(reason) => {
                    let error = result.unwrap_err();
                    assert!(error.contains(reason), "{path}: {error}");
                }
            }
        }
    }

    #[test]
    fn entries_that_would_land_on_one_file_are_all_refused() {
        let entries: Vec<Entry> = ["a//b", "a/b", "c", "c/d", "e", "e", "f"]
            .into_iter()
            .map(entry)
            .collect();
        let placed = place_entries(&entries);
        let outcome: Vec<(&str, Result<(), String>)> = entries
            .iter()
            .zip(placed)
            .map(|(e, p)| (e.path.as_str(), p.map(|_| ())))
            .collect();
        assert!(outcome[0].1.as_ref().unwrap_err().contains("empty name"));
        assert!(outcome[1].1.is_ok(), "a/b itself restores: {outcome:?}");
        assert!(outcome[2].1.as_ref().unwrap_err().contains("below this path"));
        assert!(outcome[3].1.is_ok());
        assert!(outcome[4].1.as_ref().unwrap_err().contains("same path"));
        assert!(outcome[5].1.as_ref().unwrap_err().contains("same path"));
        assert!(outcome[6].1.is_ok());
    }

    #[test]
    fn a_symbolic_link_inside_the_target_is_not_followed() {
        let target = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), target.path().join("link")).unwrap();
        let mut directories = Directories::new(target.path()).unwrap();
        let error = directories.parent_of(&[b"link", b"x"]).unwrap_err();
        assert!(error.contains("symbolic link"), "{error}");
        let error = directories.parent_of(&[b"link", b"deeper", b"x"]).unwrap_err();
        assert!(error.contains("symbolic link"), "{error}");
        assert!(directories.parent_of(&[b"real", b"x"]).is_ok());
        assert!(target.path().join("real").is_dir());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
