//! The plain files of one directory as an uncompressed POSIX ustar archive,
//! and back: how a DuckDB export (a directory) travels as a dump's one
//! stream. Deterministic (names sorted, mtime 0, owner 0) so that two
//! exports of the same data are the same bytes and deduplicate; `tar -x`
//! unpacks it too.
//!
//! Only regular files with plain names (no `/`, no `..`) of up to 100 bytes
//! are written or extracted: an archive that names anything else is refused.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const BLOCK: usize = 512;

/// The 512-byte ustar header of a regular file.
fn header(name: &str, size: u64) -> std::io::Result<[u8; BLOCK]> {
    if name.len() > 100 || !plain_name(name) {
        return Err(std::io::Error::other(format!(
            "{name:?} cannot be archived: only plain file names of up to 100 bytes are"
        )));
    }
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Ok(h)
}

fn plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

fn padding(size: u64) -> usize {
    (BLOCK - (size % BLOCK as u64) as usize) % BLOCK
}

/// Reads as the archive of `dir`'s regular files (sorted by name); each
/// file is opened only when the archive reaches it.
pub struct ArchiveReader {
    files: std::vec::IntoIter<(String, PathBuf, u64)>,
    current: Box<dyn Read + Send>,
    finished: bool,
}

impl ArchiveReader {
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !kind.is_file() {
                return Err(std::io::Error::other(format!(
                    "{} is not a regular file: only regular files are archived",
                    entry.path().display()
                )));
            }
            files.push((name, entry.path(), entry.metadata()?.len()));
        }
        files.sort();
        Ok(Self {
            files: files.into_iter(),
            current: Box::new(std::io::empty()),
            finished: false,
        })
    }

    /// The next file's header, content and padding, or the closing blocks.
    fn advance(&mut self) -> std::io::Result<()> {
        match self.files.next() {
            Some((name, path, size)) => {
                let header = header(&name, size)?;
                let file = std::fs::File::open(&path)?;
                // Exactly the size in the header, even if the file changed since.
                let content = file.take(size);
                self.current = Box::new(
                    std::io::Cursor::new(header.to_vec())
                        .chain(SizeChecked {
                            inner: content,
                            expected: size,
                            read: 0,
                            name,
                        })
                        .chain(std::io::Cursor::new(vec![0u8; padding(size)])),
                );
            }
            None => {
                self.current = Box::new(std::io::Cursor::new(vec![0u8; 2 * BLOCK]));
                self.finished = true;
            }
        }
        Ok(())
    }
}

/// A file's content that must be exactly as long as its header said.
struct SizeChecked<R> {
    inner: R,
    expected: u64,
    read: u64,
    name: String,
}

impl<R: Read> Read for SizeChecked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if n == 0 && !buf.is_empty() && self.read != self.expected {
            return Err(std::io::Error::other(format!(
                "{} shrank from {} to {} bytes while it was archived",
                self.name, self.expected, self.read
            )));
        }
        Ok(n)
    }
}

impl Read for ArchiveReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            if self.finished {
                return Ok(0);
            }
            self.advance()?;
        }
    }
}

enum State {
    Header,
    Content {
        file: std::fs::File,
        remaining: u64,
        padding: usize,
    },
    Padding(usize),
    End,
}

/// Extracts an archive written into it, file by file, into a directory.
pub struct Extractor {
    dir: PathBuf,
    state: State,
    header: Vec<u8>,
    files: usize,
}

impl Extractor {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            state: State::Header,
            header: Vec::with_capacity(BLOCK),
            files: 0,
        }
    }

    /// Fails unless the archive's end was reached; returns the files extracted.
    pub fn finish(self) -> std::io::Result<usize> {
        match self.state {
            State::End => Ok(self.files),
            _ => Err(std::io::Error::other("the archive ends early")),
        }
    }

    fn start_file(&mut self) -> std::io::Result<()> {
        let h = &self.header;
        let bad = |what: &str| std::io::Error::other(format!("a bad archive header: {what}"));
        if h.iter().all(|b| *b == 0) {
            self.state = State::End;
            return Ok(());
        }
        let stored = octal(&h[148..156]).ok_or_else(|| bad("checksum"))?;
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, b)| if (148..156).contains(&i) { 32 } else { u64::from(*b) })
            .sum();
        if stored != sum {
            return Err(bad("checksum mismatch"));
        }
        if h[156] != b'0' && h[156] != 0 {
            return Err(bad("not a regular file"));
        }
        let end = h[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let name = std::str::from_utf8(&h[..end]).map_err(|_| bad("a name that is not UTF-8"))?;
        if !plain_name(name) || h[345] != 0 {
            return Err(bad(&format!("the name {name:?} is not a plain file name")));
        }
        let size = octal(&h[124..136]).ok_or_else(|| bad("size"))?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.dir.join(name))?;
        self.files += 1;
        self.state = if size == 0 {
            State::Header
        } else {
            State::Content {
                file,
                remaining: size,
                padding: padding(size),
            }
        };
        Ok(())
    }
}

fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    u64::from_str_radix(text, 8).ok()
}

impl Write for Extractor {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match &mut self.state {
            State::Header => {
                let n = buf.len().min(BLOCK - self.header.len());
                self.header.extend_from_slice(&buf[..n]);
                if self.header.len() == BLOCK {
                    self.start_file()?;
                    self.header.clear();
                }
                Ok(n)
            }
            State::Content {
                file,
                remaining,
                padding,
            } => {
                let n = buf.len().min((*remaining).min(usize::MAX as u64) as usize);
                file.write_all(&buf[..n])?;
                *remaining -= n as u64;
                if *remaining == 0 {
                    file.sync_all()?;
                    self.state = if *padding == 0 {
                        State::Header
                    } else {
                        State::Padding(*padding)
                    };
                }
                Ok(n)
            }
            State::Padding(left) => {
                let n = buf.len().min(*left);
                *left -= n;
                if *left == 0 {
                    self.state = State::Header;
                }
                Ok(n)
            }
            // The closing blocks and anything after them.
            State::End => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(dir: &Path) -> Vec<u8> {
        let mut bytes = Vec::new();
        ArchiveReader::new(dir).unwrap().read_to_end(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn a_directory_round_trips_and_archives_identically_twice() {
        let source = tempfile::tempdir().unwrap();
        let files: [(&str, Vec<u8>); 4] = [
            ("schema.sql", b"CREATE TABLE t(id INTEGER);".to_vec()),
            ("empty.parquet", Vec::new()),
            ("block.bin", vec![7u8; 512]),
            ("big.parquet", (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect()),
        ];
        for (name, content) in &files {
            std::fs::write(source.path().join(name), content).unwrap();
        }
        let bytes = archive(source.path());
        assert_eq!(bytes.len() % BLOCK, 0);
        assert_eq!(bytes, archive(source.path()), "not deterministic");

        let target = tempfile::tempdir().unwrap();
        let mut extractor = Extractor::new(target.path());
        // Odd-sized writes cross every boundary.
        for piece in bytes.chunks(333) {
            extractor.write_all(piece).unwrap();
        }
        assert_eq!(extractor.finish().unwrap(), files.len());
        for (name, content) in &files {
            assert_eq!(&std::fs::read(target.path().join(name)).unwrap(), content, "{name}");
        }
    }

    #[test]
    fn a_cut_or_tampered_archive_is_refused() {
        let source = tempfile::tempdir().unwrap();
        std::fs::write(source.path().join("a.sql"), b"SELECT 1;").unwrap();
        let bytes = archive(source.path());

        let target = tempfile::tempdir().unwrap();
        let mut extractor = Extractor::new(target.path());
        extractor.write_all(&bytes[..BLOCK + 3]).unwrap();
        assert!(extractor.finish().unwrap_err().to_string().contains("ends early"));

        let mut tampered = bytes.clone();
        tampered[0] = b'b';
        let target = tempfile::tempdir().unwrap();
        let error = Extractor::new(target.path()).write_all(&tampered).unwrap_err();
        assert!(error.to_string().contains("checksum"), "{error}");

        let mut escaping = bytes;
        escaping[..5].copy_from_slice(b"../x\0");
        let sum: u32 = escaping[..BLOCK]
            .iter()
            .enumerate()
            .map(|(i, b)| if (148..156).contains(&i) { 32 } else { u32::from(*b) })
            .sum();
        escaping[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let target = tempfile::tempdir().unwrap();
        let error = Extractor::new(target.path()).write_all(&escaping).unwrap_err();
        assert!(error.to_string().contains("not a plain file name"), "{error}");
    }
}
