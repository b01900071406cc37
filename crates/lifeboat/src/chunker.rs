//! Content-defined chunking over a `Read` (FastCDC 2020, FORMAT.md
//! "Chunking"). It cuts exactly where `fastcdc::v2020::StreamCDC` cuts, but
//! keeps one `2 × max` buffer for a worker's whole life and hands chunks out
//! as slices of it.
//!
//! Why not `StreamCDC` itself: it allocates a zeroed `max`-byte buffer per
//! entry, and for every chunk copies it out, shifts the rest of the buffer
//! down and zero-fills the tail, about 4 MiB of memory traffic per chunk at
//! the store's 4 MiB maximum. The benchmark measured it at a third of this
//! chunker's speed, and at a third of the pipeline's speed on small files.

use std::io::{ErrorKind, Read};

use crate::format::ChunkerParams;
use fastcdc::v2020::{cut, logarithm2, Normalization, MASKS};

/// Why `ReadChunker::chunks` stopped.
#[derive(Debug)]
pub enum ChunksError<E> {
    Read(std::io::Error),
    Each(E),
}

pub struct ReadChunker {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    buffer: Vec<u8>,
}

impl ReadChunker {
    /// The masks are `StreamCDC::new`'s (normalization level 1, seed 0).
    pub fn new(params: ChunkerParams) -> Self {
        let bits = logarithm2(params.avg);
        let level = Normalization::Level1.bits();
        Self {
            min: params.min as usize,
            avg: params.avg as usize,
            max: params.max as usize,
            mask_s: MASKS[(bits + level) as usize],
            mask_l: MASKS[(bits - level) as usize],
            buffer: vec![0; 2 * params.max as usize],
        }
    }

    /// Reads `reader` to its end and calls `each` with every chunk in order.
    pub fn chunks<E>(
        &mut self,
        mut reader: impl Read,
        mut each: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), ChunksError<E>> {
        let (mut start, mut end, mut eof) = (0, 0, false);
        loop {
            // A cut is final only once `max` bytes (or the end) are in view.
            if !eof && end - start < self.max {
                self.buffer.copy_within(start..end, 0);
                end -= start;
                start = 0;
                while !eof && end < self.buffer.len() {
                    match reader.read(&mut self.buffer[end..]) {
                        Ok(0) => eof = true,
                        Ok(n) => end += n,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(ChunksError::Read(e)),
                    }
                }
            }
            if start == end {
                return Ok(());
            }
            let (_, length) = cut(
                &self.buffer[start..end],
                self.min,
                self.avg,
                self.max,
                self.mask_s,
                self.mask_l,
                self.mask_s << 1,
                self.mask_l << 1,
            );
            each(&self.buffer[start..start + length]).map_err(ChunksError::Each)?;
            start += length;
        }
    }
}

#[cfg(test)]
mod tests {
    use fastcdc::v2020::StreamCDC;

    use super::*;

    /// Hands out at most `step` bytes per read, to cross buffer refills.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn cuts_where_stream_cdc_cuts() {
        let small = ChunkerParams {
            min: 1024,
            avg: 4096,
            max: 16384,
        };
        let mut chunker = ReadChunker::new(small);
        let mut zeros_then_noise = vec![0u8; 100_000];
        zeros_then_noise.extend(noise(300_000, 9));
        for (data, step) in [
            (noise(1_000_000, 1), usize::MAX),
            (noise(1_000_000, 2), 777),
            (noise(500, 3), usize::MAX),
            (Vec::new(), usize::MAX),
            (zeros_then_noise, 5000),
        ] {
            let expected: Vec<Vec<u8>> = StreamCDC::new(&data[..], small.min, small.avg, small.max)
                .map(|c| c.unwrap().data)
                .collect();
            let mut got = Vec::new();
            chunker
                .chunks(Trickle(&data, step), |chunk| {
                    got.push(chunk.to_vec());
                    Ok::<(), ()>(())
                })
                .unwrap();
            assert_eq!(got, expected, "{} bytes read {step} at a time", data.len());
        }
    }
}
