//! The generated data set: an in-memory tree shaped like LIMITS.md's peers
//! tree (about 3,000 files; 40% random bytes, 40% text-like, 20% copies of
//! earlier files), deterministic for a given size and seed.

use std::ops::Range;

/// What a file's content is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Random,
    Text,
    Duplicate,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Random, Kind::Text, Kind::Duplicate];

    /// Share of the data set's bytes this kind aims for.
    fn target_share(self) -> f64 {
        match self {
            Kind::Random => 0.4,
            Kind::Text => 0.4,
            Kind::Duplicate => 0.2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Random => "random",
            Kind::Text => "text",
            Kind::Duplicate => "duplicate",
        }
    }
}

/// One generated file: where its bytes are in `DataSet::bytes`.
#[derive(Clone, Debug)]
pub struct File {
    pub range: Range<usize>,
    pub kind: Kind,
}

/// All files' bytes back to back.
pub struct DataSet {
    pub bytes: Vec<u8>,
    pub files: Vec<File>,
}

/// How many files the tree aims for, whatever its size.
const TARGET_FILES: usize = 3000;

impl DataSet {
    /// Generates `total` bytes of files.
    pub fn generate(total: usize, seed: u64) -> Self {
        let mut rng = WyRand(seed);
        let vocabulary = Vocabulary::generate(&mut rng);
        // File sizes are log-uniform in [mean / 20, mean * 4.6], whose mean is
        // close to `mean`: about TARGET_FILES files.
        let mean = (total / TARGET_FILES).max(64) as f64;
        let (low, high) = ((mean / 20.0).ln(), (mean * 4.6).ln());
        let mut bytes = Vec::with_capacity(total);
        let mut files: Vec<File> = Vec::new();
        let mut per_kind = [0usize; 3];
        while bytes.len() < total {
            let remaining = total - bytes.len();
            // The kind furthest below its share of what is produced so far
            // (counting this file's likely size), so shares hold at any size.
            let produced = (bytes.len() as f64 + mean).max(1.0);
            let kind = Kind::ALL
                .into_iter()
                .filter(|k| *k != Kind::Duplicate || !files.is_empty())
                .max_by(|a, b| {
                    let deficit = |k: Kind| k.target_share() * produced - per_kind[k as usize] as f64;
                    deficit(*a).total_cmp(&deficit(*b))
                })
                .unwrap_or(Kind::Random);
            let start = bytes.len();
            match kind {
                Kind::Duplicate => {
                    let source = files[rng.below(files.len() as u64) as usize].range.clone();
                    let len = source.len().min(remaining);
                    bytes.extend_from_within(source.start..source.start + len);
                }
                Kind::Random | Kind::Text => {
                    let size = (low + (high - low) * rng.unit()).exp() as usize;
                    let len = size.clamp(1, remaining);
                    if kind == Kind::Random {
                        fill_random(&mut rng, &mut bytes, len);
                    } else {
                        fill_text(&mut rng, &vocabulary, &mut bytes, len);
                    }
                }
            }
            per_kind[kind as usize] += bytes.len() - start;
            files.push(File {
                range: start..bytes.len(),
                kind,
            });
        }
        Self { bytes, files }
    }

    pub fn file(&self, file: &File) -> &[u8] {
        &self.bytes[file.range.clone()]
    }

    /// Bytes of files of `kind`.
    pub fn bytes_of(&self, kind: Kind) -> usize {
        self.files
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.range.len())
            .sum()
    }
}

/// wyrand: a small, fast, seeded generator (not for cryptography).
pub struct WyRand(u64);

impl WyRand {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) ^ t) as u64
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn fill_random(rng: &mut WyRand, out: &mut Vec<u8>, len: usize) {
    let end = out.len() + len;
    while out.len() + 8 <= end {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    let tail = end - out.len();
    out.extend_from_slice(&rng.next().to_le_bytes()[..tail]);
}

const VOCABULARY_SIZE: usize = 256;
const TEMPLATES: usize = 256;

/// Made-up words, and line templates made of them. Tuned so that zstd-1
/// compresses the text about 3.5x at about LIMITS.md's text speed relative to
/// random data (mostly short matches, as in real text; few long ones).
pub struct Vocabulary {
    words: Vec<Vec<u8>>,
    templates: Vec<Vec<u8>>,
}

impl Vocabulary {
    fn generate(rng: &mut WyRand) -> Self {
        let words: Vec<Vec<u8>> = (0..VOCABULARY_SIZE)
            .map(|_| {
                let len = 2 + rng.below(10) as usize;
                (0..len).map(|_| b'a' + rng.below(26) as u8).collect()
            })
            .collect();
        let mut vocabulary = Self {
            words,
            templates: Vec::new(),
        };
        vocabulary.templates = (0..TEMPLATES)
            .map(|_| {
                let mut line = Vec::new();
                for _ in 0..3 + rng.below(10) {
                    line.push(b' ');
                    line.extend_from_slice(vocabulary.word(rng));
                }
                line
            })
            .collect();
        vocabulary
    }

    /// A word, common ones more often (the cube of a uniform variable).
    fn word(&self, rng: &mut WyRand) -> &[u8] {
        let u = rng.unit();
        &self.words[(u * u * u * self.words.len() as f64) as usize]
    }
}

/// Log-like lines: a counter, then free words (one line in eight a template),
/// a number in one line of four.
fn fill_text(rng: &mut WyRand, vocabulary: &Vocabulary, out: &mut Vec<u8>, len: usize) {
    let end = out.len() + len;
    let mut counter = rng.below(1_000_000);
    while out.len() < end {
        counter += 1 + rng.below(50);
        push_number(out, counter);
        if rng.below(8) == 0 {
            let u = rng.unit();
            out.extend_from_slice(&vocabulary.templates[(u * u * TEMPLATES as f64) as usize]);
        } else {
            for _ in 0..3 + rng.below(8) {
                out.push(b' ');
                out.extend_from_slice(vocabulary.word(rng));
            }
        }
        if rng.below(4) == 0 {
            out.push(b' ');
            push_number(out, rng.below(10_000));
        }
        out.push(b'\n');
    }
    out.truncate(end);
}

fn push_number(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}
