//! casync's content-defined chunker, as a sans-IO scanner.
//!
//! Ported from casync `src/cachunker.c` (`ca_chunker_scan`) and checked against Debian's casync
//! binary (spec §1). Feed bytes with [`Chunker::scan`]; it answers where the current chunk ends, or
//! that it needs more input. The boundary rule, exactly:
//!
//! * With `min == avg == max` the chunker cuts every `avg` bytes (fixed-size mode).
//! * Otherwise nothing is tested until the chunk holds `max(min, 48)` bytes. From then on, after
//!   each byte, the buzhash `h` of the last 48 bytes is tested and the chunk ends after that byte
//!   when `len >= max` or `h mod d == d - 1`, `d` being the [discriminator](ChunkSizes::discriminator).
//! * The stream is never reset: the next chunk starts right after a cut, with a fresh window.

use crate::buzhash_table::BUZHASH_TABLE;
use core::fmt;

/// Bytes in the rolling-hash window (`CA_CHUNKER_WINDOW_SIZE`).
pub const WINDOW_SIZE: usize = 48;

/// The largest chunk size limit casync accepts (`CA_CHUNK_SIZE_LIMIT_MAX`, 128 MiB).
pub const CHUNK_SIZE_LIMIT_MAX: u64 = 128 * 1024 * 1024;

/// The smallest chunk size limit casync accepts (`CA_CHUNK_SIZE_LIMIT_MIN`).
pub const CHUNK_SIZE_LIMIT_MIN: u64 = 1;

/// casync's default average chunk size (`CA_CHUNK_SIZE_AVG_DEFAULT`, 64 KiB).
pub const DEFAULT_AVG_CHUNK_SIZE: u64 = 64 * 1024;

/// Minimum, average and maximum chunk size, as stored in an index header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChunkSizes {
    /// No chunk but the last is shorter (casync still tests no earlier than 48 bytes).
    pub min: u64,
    /// The target average, from which the discriminator is derived.
    pub avg: u64,
    /// No chunk is longer.
    pub max: u64,
}

/// Why chunk size limits were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkSizeError {
    /// A limit is outside `[1, 128 MiB]`.
    OutOfRange {
        /// The offending value.
        value: u64,
    },
    /// `min <= avg <= max` does not hold.
    Unordered {
        /// The minimum given or derived.
        min: u64,
        /// The average given or derived.
        avg: u64,
        /// The maximum given or derived.
        max: u64,
    },
}

impl fmt::Display for ChunkSizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange { value } => write!(
                f,
                "chunk size {value} is outside [{CHUNK_SIZE_LIMIT_MIN}, {CHUNK_SIZE_LIMIT_MAX}]"
            ),
            Self::Unordered { min, avg, max } => {
                write!(
                    f,
                    "chunk sizes must satisfy min <= avg <= max, got {min}:{avg}:{max}"
                )
            }
        }
    }
}

impl core::error::Error for ChunkSizeError {}

impl Default for ChunkSizes {
    fn default() -> Self {
        Self {
            min: 16 * 1024,
            avg: DEFAULT_AVG_CHUNK_SIZE,
            max: 256 * 1024,
        }
    }
}

impl ChunkSizes {
    /// Derives the limits casync would use from the ones given, 0 meaning "not given"
    /// (`ca_chunker_set_size`, spec §1.1): a missing average comes from the others, a missing
    /// minimum is `avg/4`, a missing maximum `avg*4` (capped at 128 MiB).
    pub fn derive(min: u64, avg: u64, max: u64) -> Result<Self, ChunkSizeError> {
        let in_range = |v: u64| (CHUNK_SIZE_LIMIT_MIN..=CHUNK_SIZE_LIMIT_MAX).contains(&v);
        let avg = if avg != 0 {
            if !in_range(avg) {
                return Err(ChunkSizeError::OutOfRange { value: avg });
            }
            avg
        } else {
            let guess = match (min, max) {
                (0, 0) => DEFAULT_AVG_CHUNK_SIZE,
                (min, 0) => min.saturating_mul(4),
                (0, max) => max / 4,
                (min, max) => rounded_geometric_mean(min, max),
            };
            guess.clamp(CHUNK_SIZE_LIMIT_MIN, CHUNK_SIZE_LIMIT_MAX)
        };
        let min = if min == 0 { (avg / 4).max(1) } else { min };
        let max = if max == 0 {
            avg.saturating_mul(4).min(CHUNK_SIZE_LIMIT_MAX)
        } else {
            max
        };
        for value in [min, max] {
            if !in_range(value) {
                return Err(ChunkSizeError::OutOfRange { value });
            }
        }
        if min > avg || avg > max {
            return Err(ChunkSizeError::Unordered { min, avg, max });
        }
        Ok(Self { min, avg, max })
    }

    /// Checks limits read from an index header: each in `[1, 128 MiB]` and ordered.
    pub fn validate(self) -> Result<Self, ChunkSizeError> {
        for value in [self.min, self.avg, self.max] {
            if !(CHUNK_SIZE_LIMIT_MIN..=CHUNK_SIZE_LIMIT_MAX).contains(&value) {
                return Err(ChunkSizeError::OutOfRange { value });
            }
        }
        if self.min > self.avg || self.avg > self.max {
            return Err(ChunkSizeError::Unordered {
                min: self.min,
                avg: self.avg,
                max: self.max,
            });
        }
        Ok(self)
    }

    /// True when casync cuts fixed-size chunks (`min == avg == max`).
    pub fn is_fixed(self) -> bool {
        self.min == self.avg && self.avg == self.max
    }

    /// The divisor of the boundary test, derived from the average as casync does
    /// (`CA_CHUNKER_DISCRIMINATOR_FROM_AVG`): `avg / (-1.42888852e-7 * avg + 1.33237515)`,
    /// truncated, clamped to `[min, max]`. A negative quotient (averages above ~9.3 MiB) is
    /// a huge unsigned value in C and so clamps to `max`.
    pub fn discriminator(self) -> u64 {
        let avg = self.avg as f64;
        let quotient = avg / (-1.42888852e-7 * avg + 1.33237515);
        let d = if quotient.is_finite() && quotient >= 0.0 {
            quotient as u64
        } else {
            u64::MAX
        };
        d.clamp(self.min, self.max)
    }
}

/// `lrint(2^((log2(a) + log2(b)) / 2))`, i.e. `sqrt(a*b)` rounded to nearest, in integers.
fn rounded_geometric_mean(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    let root = isqrt(product);
    // sqrt(p) > root + 1/2  <=>  p > root^2 + root (integers; a tie is impossible)
    let rounded = if product > root * root + root {
        root + 1
    } else {
        root
    };
    u64::try_from(rounded).unwrap_or(u64::MAX)
}

fn isqrt(n: u128) -> u128 {
    if n < 2 {
        return n;
    }
    // Newton's method from an over-estimate converges monotonically downwards.
    let mut x = 1u128 << (128 - n.leading_zeros()).div_ceil(2);
    loop {
        let y = (x + n / x) / 2;
        if y >= x {
            return x;
        }
        x = y;
    }
}

/// `T[b]` rotated left by 48 (= 16): what leaves the hash when byte `b` drops out of the window.
const BUZHASH_OUT: [u32; 256] = {
    let mut out = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        out[i] = BUZHASH_TABLE[i].rotate_left(WINDOW_SIZE as u32);
        i += 1;
    }
    out
};

/// Buzhash of a window of 48 zero bytes.
const ZERO_WINDOW_HASH: u32 = {
    let mut hash = 0u32;
    let mut i = 0;
    while i < WINDOW_SIZE {
        hash ^= BUZHASH_TABLE[0].rotate_left((WINDOW_SIZE - 1 - i) as u32);
        i += 1;
    }
    hash
};

/// Length of the run of zero bytes `data` starts with.
fn zero_prefix_len(data: &[u8]) -> usize {
    const STEP: usize = 64;
    let whole = data
        .chunks_exact(STEP)
        .take_while(|block| block.iter().all(|&b| b == 0))
        .count();
    let rest = &data[whole * STEP..];
    whole * STEP + rest.iter().position(|&b| b != 0).unwrap_or(rest.len())
}

/// Buzhash of a full window: XOR of `rol32(T[b[i]], 47 - i)` (`ca_chunker_start`).
#[inline]
pub fn buzhash_window(window: &[u8; WINDOW_SIZE]) -> u32 {
    window.iter().enumerate().fold(0u32, |h, (i, &b)| {
        h ^ BUZHASH_TABLE[usize::from(b)].rotate_left((WINDOW_SIZE - 1 - i) as u32)
    })
}

/// One rolling step: drop `out`, take in `new` (`ca_chunker_roll`).
#[inline(always)]
pub fn buzhash_roll(hash: u32, out: u8, new: u8) -> u32 {
    hash.rotate_left(1) ^ BUZHASH_OUT[usize::from(out)] ^ BUZHASH_TABLE[usize::from(new)]
}

/// `hash % d == d - 1`, i.e. `d` divides `hash + 1`, by one multiplication (Lemire, Kaser,
/// Kurz: "Faster remainder by direct computation", 2019, theorem 1): with `c = ceil(2^64 / d)`,
/// `d | n` exactly when `n * c mod 2^64 < c`. Exact for `n < 2^(64 - log2 d)`; here `n <= 2^32`
/// and `d <= 2^27`. For `d == 1`, `c` wraps to 0 and the test is always true, as it should be.
#[inline(always)]
fn is_cut(hash: u32, c: u64) -> bool {
    (u64::from(hash) + 1).wrapping_mul(c) <= c.wrapping_sub(1)
}

/// The scanner state: feed bytes, learn where chunks end.
#[derive(Clone, Debug)]
pub struct Chunker {
    sizes: ChunkSizes,
    /// First chunk length at which the boundary test runs: `max(min, 48)`.
    threshold: u64,
    /// `ceil(2^64 / discriminator)`, for [`is_cut`].
    cut_multiplier: u64,
    /// Bytes consumed into the current chunk.
    chunk_len: u64,
    hash: u32,
    /// The last [`WINDOW_SIZE`] bytes fed, oldest first.
    window: [u8; WINDOW_SIZE],
}

impl Chunker {
    /// A scanner for these limits (taken as valid: see [`ChunkSizes::derive`]).
    pub fn new(sizes: ChunkSizes) -> Self {
        // The discriminator is clamped into [min, max] <= 128 MiB, so it fits in u32.
        let discriminator = u32::try_from(sizes.discriminator()).unwrap_or(u32::MAX);
        Self {
            sizes,
            threshold: sizes.min.max(WINDOW_SIZE as u64),
            cut_multiplier: (u64::MAX / u64::from(discriminator)).wrapping_add(1),
            chunk_len: 0,
            hash: 0,
            window: [0; WINDOW_SIZE],
        }
    }

    /// The limits this chunker cuts by.
    pub fn sizes(&self) -> ChunkSizes {
        self.sizes
    }

    /// Bytes fed into the chunk that has not ended yet.
    pub fn pending_len(&self) -> u64 {
        self.chunk_len
    }

    /// Consumes `data`, the bytes that follow everything fed before. Returns `Some(n)` when the
    /// current chunk ends after `data[..n]`; the caller then feeds `data[n..]` (the next chunk's
    /// start) in a later call. `None` means all of `data` belongs to the current chunk.
    pub fn scan(&mut self, data: &[u8]) -> Option<usize> {
        if self.sizes.is_fixed() {
            return self.scan_fixed(data);
        }
        let mut i = 0;
        if self.chunk_len < self.threshold {
            // Bytes before the first test only matter as the window at the threshold.
            let needed = (self.threshold - self.chunk_len) as usize;
            if data.len() < needed {
                self.chunk_len += data.len() as u64;
                self.remember(data);
                return None;
            }
            i = needed;
            self.chunk_len = self.threshold;
            self.hash = buzhash_window(&self.window_ending_at(data, i));
            if self.is_boundary(self.hash) {
                return Some(self.cut(data, i));
            }
        }
        match self.roll(data, i) {
            Some(end) => Some(self.cut(data, end)),
            None => {
                self.remember(data);
                None
            }
        }
    }

    fn scan_fixed(&mut self, data: &[u8]) -> Option<usize> {
        let needed = self.sizes.avg - self.chunk_len;
        if (data.len() as u64) >= needed {
            self.chunk_len = 0;
            Some(needed as usize)
        } else {
            self.chunk_len += data.len() as u64;
            None
        }
    }

    /// Rolls the hash over `data[start..]` with `chunk_len >= threshold`; returns the end of the
    /// chunk (exclusive) if it ends within `data`. Leaves `chunk_len` and `hash` updated.
    #[inline]
    fn roll(&mut self, data: &[u8], start: usize) -> Option<usize> {
        // The chunk must end at `max`: never look further than that.
        let to_max = usize::try_from(self.sizes.max - self.chunk_len).unwrap_or(usize::MAX);
        let limit = data.len().min(start.saturating_add(to_max));
        let c = self.cut_multiplier;
        let mut hash = self.hash;
        let mut i = start;
        let mut found = None;
        if hash == ZERO_WINDOW_HASH
            && !is_cut(hash, c)
            && self.window_ending_at(data, i).iter().all(|&b| b == 0)
        {
            // Rolling a zero byte through an all-zero window leaves the hash as it is, so a run
            // of zeros (free space in an image) cannot end the chunk before `max`: skip it.
            i += zero_prefix_len(&data[i..limit]);
        }
        // While the outgoing byte precedes `data`, it comes from the saved window.
        let from_window = limit.min(WINDOW_SIZE).max(i);
        for (&out, &new) in self.window[i.min(WINDOW_SIZE)..from_window.min(WINDOW_SIZE)]
            .iter()
            .zip(&data[i..from_window])
        {
            hash = buzhash_roll(hash, out, new);
            i += 1;
            if is_cut(hash, c) {
                found = Some(i);
                break;
            }
        }
        if found.is_none() && i < limit {
            // Zipped slices: no bounds checks in the hot loop.
            let outgoing = &data[i - WINDOW_SIZE..limit - WINDOW_SIZE];
            let incoming = &data[i..limit];
            for (&out, &new) in outgoing.iter().zip(incoming) {
                hash = buzhash_roll(hash, out, new);
                i += 1;
                if is_cut(hash, c) {
                    found = Some(i);
                    break;
                }
            }
        }
        self.hash = hash;
        self.chunk_len += (i - start) as u64;
        found.or((self.chunk_len >= self.sizes.max).then_some(i))
    }

    #[inline(always)]
    fn is_boundary(&self, hash: u32) -> bool {
        self.chunk_len >= self.sizes.max || is_cut(hash, self.cut_multiplier)
    }

    /// Ends the chunk after `data[..end]`.
    fn cut(&mut self, data: &[u8], end: usize) -> usize {
        self.remember(&data[..end]);
        self.chunk_len = 0;
        end
    }

    /// The 48 stream bytes ending just before `data[end]`.
    fn window_ending_at(&self, data: &[u8], end: usize) -> [u8; WINDOW_SIZE] {
        let mut window = [0u8; WINDOW_SIZE];
        let from_data = end.min(WINDOW_SIZE);
        let from_saved = WINDOW_SIZE - from_data;
        window[..from_saved].copy_from_slice(&self.window[WINDOW_SIZE - from_saved..]);
        window[from_saved..].copy_from_slice(&data[end - from_data..end]);
        window
    }

    /// Records `data` as the latest bytes fed.
    fn remember(&mut self, data: &[u8]) {
        self.window = self.window_ending_at(data, data.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn derives_casync_defaults_and_limits() {
        assert_eq!(ChunkSizes::derive(0, 0, 0), Ok(ChunkSizes::default()));
        assert_eq!(ChunkSizes::derive(0, 65536, 0), Ok(ChunkSizes::default()));
        // casync test-cachunker.c: (1024,0,0) -> 1024/4096/16384 and (128K,0,512K) -> avg 256K
        assert_eq!(
            ChunkSizes::derive(1024, 0, 0),
            Ok(ChunkSizes {
                min: 1024,
                avg: 4096,
                max: 16384
            })
        );
        assert_eq!(
            ChunkSizes::derive(128 << 10, 0, 512 << 10).map(|s| s.avg),
            Ok(256 << 10)
        );
        assert_eq!(
            ChunkSizes::derive(0, 1, 0),
            Ok(ChunkSizes {
                min: 1,
                avg: 1,
                max: 4
            })
        );
        assert_eq!(
            ChunkSizes::derive(0, 64 << 20, 0),
            Ok(ChunkSizes {
                min: 16 << 20,
                avg: 64 << 20,
                max: 128 << 20
            })
        );
        assert!(matches!(
            ChunkSizes::derive(0, (128 << 20) + 1, 0),
            Err(ChunkSizeError::OutOfRange { .. })
        ));
        assert!(matches!(
            ChunkSizes::derive(100, 50, 200),
            Err(ChunkSizeError::Unordered { .. })
        ));
        assert!(matches!(
            ChunkSizes::derive(1, 50, 20),
            Err(ChunkSizeError::Unordered { .. })
        ));
    }

    #[test]
    fn discriminators_match_casync() {
        // spec §1.1: values before clamping, for the default min/max of each avg
        for (avg, d) in [
            (1024, 768),
            (4096, 3075),
            (8192, 6153),
            (16384, 12318),
            (32768, 24680),
            (65536, 49535),
            (131072, 99777),
            (262144, 202440),
            (1 << 20, 886711),
        ] {
            let sizes = ChunkSizes::derive(0, avg, 0).unwrap();
            assert_eq!(sizes.discriminator(), d, "avg {avg}");
        }
        // Large averages: the negative denominator clamps to max, not min.
        let big = ChunkSizes::derive(1 << 20, 16 << 20, 32 << 20).unwrap();
        assert_eq!(big.discriminator(), 32 << 20);
    }

    #[test]
    fn hash_vectors_from_spec() {
        let zeros = [0u8; WINDOW_SIZE];
        assert_eq!(buzhash_window(&zeros), 0x9e489e48);
        assert_eq!(ZERO_WINDOW_HASH, 0x9e489e48);
        assert_eq!(buzhash_roll(ZERO_WINDOW_HASH, 0, 0), ZERO_WINDOW_HASH);
        let data = crate::testdata::vec_bin_prefix(WINDOW_SIZE + 1);
        let first: [u8; WINDOW_SIZE] = data[..WINDOW_SIZE].try_into().unwrap();
        let h = buzhash_window(&first);
        assert_eq!(h, 0x3bc340be);
        let rolled = buzhash_roll(h, data[0], data[WINDOW_SIZE]);
        assert_eq!(rolled, 0xf4859d28);
        let second: [u8; WINDOW_SIZE] = data[1..=WINDOW_SIZE].try_into().unwrap();
        assert_eq!(buzhash_window(&second), rolled);
    }

    #[test]
    fn cut_test_agrees_with_remainder() {
        for d in [
            1u32,
            2,
            3,
            7,
            768,
            4096,
            49535,
            202440,
            886711,
            1 << 27,
            134217727,
        ] {
            let c = (u64::MAX / u64::from(d)).wrapping_add(1);
            for h in [
                0u32,
                1,
                2,
                d - 2,
                d - 1,
                d,
                d.wrapping_add(1),
                0x9e489e48,
                u32::MAX - 1,
                u32::MAX,
            ] {
                assert_eq!(is_cut(h, c), h % d == d - 1, "{h} % {d}");
            }
            for k in 0..2000u32 {
                let h = k.wrapping_mul(2654435761);
                assert_eq!(is_cut(h, c), h % d == d - 1, "{h} % {d}");
            }
        }
    }

    fn ends(sizes: ChunkSizes, data: &[u8]) -> Vec<usize> {
        let mut chunker = Chunker::new(sizes);
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some(n) = chunker.scan(&data[pos..]) {
            pos += n;
            out.push(pos);
        }
        if pos < data.len() {
            out.push(data.len());
        }
        out
    }

    #[test]
    fn golden_boundaries_default_sizes() {
        let data = crate::testdata::vec_bin();
        let ends = ends(ChunkSizes::default(), &data);
        assert_eq!(ends.len(), 33);
        assert_eq!(&ends[..5], &[80921, 138220, 187412, 237372, 296795]);
        assert_eq!(&ends[31..], &[2046181, 2097152]);
    }

    #[test]
    fn golden_boundaries_small_sizes() {
        let data = crate::testdata::vec_bin();
        let sizes = ChunkSizes::derive(1024, 4096, 16384).unwrap();
        let ends = ends(sizes, &data);
        assert_eq!(ends.len(), 529);
        assert_eq!(&ends[..5], &[10613, 12445, 14923, 17919, 21763]);
        assert_eq!(&ends[527..], &[2094467, 2097152]);
    }

    #[test]
    fn exact_min_and_effective_min_of_48() {
        let data = crate::testdata::vec_bin_prefix(64 * 1024);
        let sizes = ChunkSizes::derive(64, 256, 1024).unwrap();
        let e = ends(sizes, &data);
        let lens: Vec<usize> = e
            .iter()
            .scan(0, |p, &x| Some(x - core::mem::replace(p, x)))
            .collect();
        assert!(lens.contains(&64), "a chunk of exactly min bytes exists");
        assert!(
            lens[..lens.len() - 1]
                .iter()
                .all(|&l| (64..=1024).contains(&l))
        );
        for min in [1, 16] {
            let sizes = ChunkSizes::derive(min, 64, 256).unwrap();
            let e = ends(sizes, &data);
            let lens: Vec<usize> = e
                .iter()
                .scan(0, |p, &x| Some(x - core::mem::replace(p, x)))
                .collect();
            assert!(
                lens[..lens.len() - 1].iter().all(|&l| l >= 48),
                "min {min} acts as 48"
            );
            assert!(lens.contains(&48));
        }
    }

    #[test]
    fn fixed_size_mode_cuts_every_avg_bytes() {
        let data = [7u8; 10_000];
        let sizes = ChunkSizes::derive(4096, 4096, 4096).unwrap();
        assert_eq!(ends(sizes, &data), [4096, 8192, 10_000]);
    }

    #[test]
    fn zero_runs_are_skipped_with_the_same_boundaries() {
        // Zeros after data, data after zeros, and zeros split across scan() calls.
        let mut data = crate::testdata::vec_bin_prefix(300_000);
        data.extend(alloc::vec![0u8; 700_000]);
        data.extend(crate::testdata::vec_bin_prefix(200_000));
        data.extend(alloc::vec![0u8; 100]);
        data.extend(crate::testdata::vec_bin_prefix(100_000));
        for sizes in [
            ChunkSizes::default(),
            ChunkSizes::derive(0, 4096, 0).unwrap(),
        ] {
            let whole = ends(sizes, &data);
            assert_eq!(whole, crate::fuzzing::boundaries(sizes, &data, 4093));
            assert_eq!(whole, crate::fuzzing::boundaries(sizes, &data, 1));
        }
        assert_eq!(zero_prefix_len(&[0; 200]), 200);
        let mut v = [0u8; 200];
        v[130] = 1;
        assert_eq!(zero_prefix_len(&v), 130);
        assert_eq!(zero_prefix_len(&[]), 0);
    }

    #[test]
    fn forced_cut_at_max_on_zeros() {
        // Zeros never satisfy the test for the default discriminator: every chunk is max.
        let data = alloc::vec![0u8; 1 << 20];
        assert_eq!(
            ends(ChunkSizes::default(), &data),
            [262144, 524288, 786432, 1048576]
        );
    }
}
