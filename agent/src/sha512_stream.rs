//! SHA-512/256 of one long stream (a whole image for `make` and `digest`). Its speed is that of
//! the SHA-512 block function, so on x86-64 CPUs with AVX2, BMI1 and BMI2 the blocks go through
//! our own: the message schedule of two blocks at a time is computed in AVX2 vectors, between
//! scalar rounds (inline assembly) that use BMI2's `rorx` and BMI1's `andn`, the structure of
//! Intel's "Fast SHA-512 Implementations on Intel Architecture Processors" and OpenSSL's
//! `sha512_block_data_order_avx2`. Elsewhere the blocks go through `sha2`'s compression.

use otasync_core::digest::Hasher;
use otasync_core::{ChunkId, DigestAlgorithm};

/// SHA-512 block size in bytes.
const BLOCK: usize = 128;

/// FIPS 180-4 §5.3.6.2: SHA-512/256 initial hash value.
pub(crate) const IV: [u64; 8] = [
    0x22312194fc2bf72c,
    0x9f555fa3c84c64c2,
    0x2393b86b6f53b151,
    0x963877195940eabd,
    0x96283ee2a88effe3,
    0xbe5e1e2553863992,
    0x2b0199fc2c85b8aa,
    0x0eb72ddc81c52ca2,
];

/// FIPS 180-4 §4.2.3: SHA-512 round constants.
pub(crate) const K: [u64; 80] = [
    0x428a2f98d728ae22,
    0x7137449123ef65cd,
    0xb5c0fbcfec4d3b2f,
    0xe9b5dba58189dbbc,
    0x3956c25bf348b538,
    0x59f111f1b605d019,
    0x923f82a4af194f9b,
    0xab1c5ed5da6d8118,
    0xd807aa98a3030242,
    0x12835b0145706fbe,
    0x243185be4ee4b28c,
    0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f,
    0x80deb1fe3b1696b1,
    0x9bdc06a725c71235,
    0xc19bf174cf692694,
    0xe49b69c19ef14ad2,
    0xefbe4786384f25e3,
    0x0fc19dc68b8cd5b5,
    0x240ca1cc77ac9c65,
    0x2de92c6f592b0275,
    0x4a7484aa6ea6e483,
    0x5cb0a9dcbd41fbd4,
    0x76f988da831153b5,
    0x983e5152ee66dfab,
    0xa831c66d2db43210,
    0xb00327c898fb213f,
    0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2,
    0xd5a79147930aa725,
    0x06ca6351e003826f,
    0x142929670a0e6e70,
    0x27b70a8546d22ffc,
    0x2e1b21385c26c926,
    0x4d2c6dfc5ac42aed,
    0x53380d139d95b3df,
    0x650a73548baf63de,
    0x766a0abb3c77b2a8,
    0x81c2c92e47edaee6,
    0x92722c851482353b,
    0xa2bfe8a14cf10364,
    0xa81a664bbc423001,
    0xc24b8b70d0f89791,
    0xc76c51a30654be30,
    0xd192e819d6ef5218,
    0xd69906245565a910,
    0xf40e35855771202a,
    0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8,
    0x1e376c085141ab53,
    0x2748774cdf8eeb99,
    0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63,
    0x4ed8aa4ae3418acb,
    0x5b9cca4f7763e373,
    0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc,
    0x78a5636f43172f60,
    0x84c87814a1f0ab72,
    0x8cc702081a6439ec,
    0x90befffa23631e28,
    0xa4506cebde82bde9,
    0xbef9a3f7b2c67915,
    0xc67178f2e372532b,
    0xca273eceea26619c,
    0xd186b8c721c0c207,
    0xeada7dd6cde0eb1e,
    0xf57d4f7fee6ed178,
    0x06f067aa72176fba,
    0x0a637dc5a2c898a6,
    0x113f9804bef90dae,
    0x1b710b35131c471b,
    0x28db77f523047d84,
    0x32caab7b40c72493,
    0x3c9ebe0a15c9bebc,
    0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6,
    0x597f299cfc657e2a,
    0x5fcb6fab3ad6faec,
    0x6c44198c4a475817,
];

/// An incremental SHA-512/256 hasher for one stream.
pub(crate) struct Sha512_256Stream {
    /// The chaining value.
    state: [u64; 8],
    /// Bytes of an unfinished block.
    buf: [u8; BLOCK],
    /// How many bytes of `buf` are in use (always < `BLOCK` between calls).
    buf_len: usize,
    /// Bytes hashed so far, including `buf`.
    total: u128,
    /// Whether the blocks go through the x86-64 AVX2/BMI2 block function.
    fast: bool,
}

impl Default for Sha512_256Stream {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha512_256Stream {
    /// A hasher that has seen nothing yet, with the fastest block function this CPU runs.
    pub(crate) fn new() -> Self {
        Self::with_fast_path(fast_path_available())
    }

    /// A hasher that uses the x86-64 block function if `fast` (which the caller has checked
    /// with [`fast_path_available`]), else `sha2`'s.
    fn with_fast_path(fast: bool) -> Self {
        Self {
            state: IV,
            buf: [0; BLOCK],
            buf_len: 0,
            total: 0,
            fast: fast && fast_path_available(),
        }
    }

    /// Hashes `data` as the next bytes of the stream.
    pub(crate) fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u128;
        if self.buf_len > 0 {
            let take = data.len().min(BLOCK - self.buf_len);
            self.buf[self.buf_len..][..take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < BLOCK {
                return;
            }
            compress(&mut self.state, &[self.buf], self.fast);
            self.buf_len = 0;
        }
        let (blocks, rest) = data.as_chunks::<BLOCK>();
        compress(&mut self.state, blocks, self.fast);
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    /// The SHA-512/256 digest of everything passed to [`update`](Self::update).
    pub(crate) fn finalize(mut self) -> ChunkId {
        // FIPS 180-4 §5.1.2: 0x80, zeros, then the length in bits as a 128-bit big-endian
        // number, filling one block or two.
        let mut tail = [[0u8; BLOCK]; 2];
        let n = self.buf_len;
        tail[0][..n].copy_from_slice(&self.buf[..n]);
        tail[0][n] = 0x80;
        let blocks = if n + 1 + 16 <= BLOCK { 1 } else { 2 };
        let bits = (self.total << 3).to_be_bytes();
        tail[blocks - 1][BLOCK - 16..].copy_from_slice(&bits);
        compress(&mut self.state, &tail[..blocks], self.fast);
        let mut id = [0u8; 32];
        for (out, word) in id.chunks_exact_mut(8).zip(self.state) {
            out.copy_from_slice(&word.to_be_bytes());
        }
        ChunkId(id)
    }
}

/// An incremental hasher of either chunk digest: SHA-512/256 through [`Sha512_256Stream`],
/// SHA-256 (which has its own CPU instructions) through `otasync-core`.
pub(crate) enum StreamHasher {
    /// SHA-512/256.
    Sha512_256(Sha512_256Stream),
    /// Any other digest.
    Other(Hasher),
}

impl StreamHasher {
    /// A hasher of `algorithm` that has seen nothing yet.
    pub(crate) fn new(algorithm: DigestAlgorithm) -> Self {
        match algorithm {
            DigestAlgorithm::Sha512_256 => Self::Sha512_256(Sha512_256Stream::new()),
            other => Self::Other(other.hasher()),
        }
    }

    /// Hashes `data` as the next bytes of the stream.
    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha512_256(h) => h.update(data),
            Self::Other(h) => h.update(data),
        }
    }

    /// The digest of everything passed to [`update`](Self::update).
    pub(crate) fn finalize(self) -> ChunkId {
        match self {
            Self::Sha512_256(h) => h.finalize(),
            Self::Other(h) => h.finalize(),
        }
    }
}

/// The `algorithm` digest of one message (a chunk checked on its own).
pub(crate) fn digest(algorithm: DigestAlgorithm, data: &[u8]) -> ChunkId {
    let mut hasher = StreamHasher::new(algorithm);
    hasher.update(data);
    hasher.finalize()
}

/// Whether this CPU runs the x86-64 block function.
fn fast_path_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The SHA-512 compression of `blocks` into `state`, with the fastest block function this
/// CPU runs.
pub(crate) fn compress512(state: &mut [u64; 8], blocks: &[[u8; BLOCK]]) {
    compress(state, blocks, fast_path_available());
}

/// The SHA-512 compression of `blocks` into `state`, with the x86-64 block function if `fast`
/// (which must only be set if [`fast_path_available`]).
fn compress(state: &mut [u64; 8], blocks: &[[u8; BLOCK]], fast: bool) {
    #[cfg(target_arch = "x86_64")]
    if fast {
        x86::compress(state, blocks);
        return;
    }
    let _ = fast;
    sha2::block_api::compress512(state, blocks);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    #![allow(unsafe_code)]

    use super::{BLOCK, K};
    use std::arch::asm;
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    /// Whether the CPU has what [`compress_avx2`] needs.
    pub(super) fn available() -> bool {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("bmi1")
            && is_x86_feature_detected!("bmi2")
    }

    /// SHA-512 compression of `blocks` into `state` (with `sha2`'s if not [`available`]).
    pub(super) fn compress(state: &mut [u64; 8], blocks: &[[u8; BLOCK]]) {
        if !available() {
            sha2::block_api::compress512(state, blocks);
            return;
        }
        let (pairs, odd) = blocks.as_chunks::<2>();
        for [first, second] in pairs {
            // SAFETY: `available()`: the CPU has AVX2, BMI1 and BMI2.
            unsafe { compress_avx2(state, first, Some(second)) };
        }
        if let [last] = odd {
            // SAFETY: as above.
            unsafe { compress_avx2(state, last, None) };
        }
    }

    /// FIPS 180-4 §4.2.3: SHA-512 round constants, each pair of them twice, as the two 128-bit
    /// halves of a 256-bit vector hold the same two rounds of two blocks.
    #[repr(align(32))]
    struct KPairs([u64; 160]);

    static K2: KPairs = {
        let mut out = [0u64; 160];
        let mut j = 0;
        while j < 40 {
            out[4 * j] = K[2 * j];
            out[4 * j + 1] = K[2 * j + 1];
            out[4 * j + 2] = K[2 * j];
            out[4 * j + 3] = K[2 * j + 1];
            j += 1;
        }
        KPairs(out)
    };

    /// W[t] + K[t] of two blocks: u64 `4j + i` is round `2j + i` of the first block and
    /// u64 `4j + 2 + i` that of the second (i = 0, 1), as the vectors compute them.
    #[repr(align(32))]
    struct Schedule(
        #[expect(dead_code, reason = "written and read through a raw pointer only")] [u64; 160],
    );

    /// `K2[4j..4j + 4]` as a vector.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn k2(j: usize) -> __m256i {
        let pair = &K2.0[4 * j..4 * j + 4];
        // SAFETY: `pair` is 4 u64 = 32 bytes, 32-byte aligned as K2 is and 4j u64 = 32j bytes.
        unsafe { _mm256_load_si256(pair.as_ptr().cast()) }
    }

    /// Stores `v` as u64s `4j..4j + 4` of the schedule at `wk`.
    ///
    /// # Safety
    ///
    /// `wk` must point to a writable [`Schedule`].
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn store(wk: *mut __m256i, j: usize, v: __m256i) {
        assert!(j < 40);
        // SAFETY: u64s 4j..4j + 4 are inside the schedule at `wk`, and 32-byte aligned as it
        // is.
        unsafe { _mm256_store_si256(wk.add(j), v) }
    }

    /// σ0 of each u64 (FIPS 180-4 (4.12)).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn small_sigma0(x: __m256i) -> __m256i {
        let r1 = _mm256_or_si256(_mm256_srli_epi64::<1>(x), _mm256_slli_epi64::<63>(x));
        let r8 = _mm256_or_si256(_mm256_srli_epi64::<8>(x), _mm256_slli_epi64::<56>(x));
        _mm256_xor_si256(_mm256_xor_si256(r1, r8), _mm256_srli_epi64::<7>(x))
    }

    /// σ1 of each u64 (FIPS 180-4 (4.13)).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn small_sigma1(x: __m256i) -> __m256i {
        let r19 = _mm256_or_si256(_mm256_srli_epi64::<19>(x), _mm256_slli_epi64::<45>(x));
        let r61 = _mm256_or_si256(_mm256_srli_epi64::<61>(x), _mm256_slli_epi64::<3>(x));
        _mm256_xor_si256(_mm256_xor_si256(r19, r61), _mm256_srli_epi64::<6>(x))
    }

    /// The next two schedule words of both blocks: with `x` = W[t-16..t] as pairs (x[0] the
    /// oldest), replaces x[0] (the oldest pair) by W[t], W[t+1].
    #[inline]
    #[target_feature(enable = "avx2")]
    fn schedule_step(x: &mut [__m256i; 8], old: usize) {
        let at = |k: usize| x[(old + k) % 8];
        // W[t-15], W[t-14] and W[t-7], W[t-6].
        let w15 = _mm256_alignr_epi8::<8>(at(1), at(0));
        let w7 = _mm256_alignr_epi8::<8>(at(5), at(4));
        let sum = _mm256_add_epi64(_mm256_add_epi64(at(0), w7), small_sigma0(w15));
        x[old] = _mm256_add_epi64(sum, small_sigma1(at(7)));
    }

    /// One SHA-512 round (FIPS 180-4 §6.4.2 step 3) with the variables renamed instead of
    /// moved, in the order of OpenSSL's `sha512_block_data_order_avx2`: updates `d` and `h`.
    /// Carried from round to round: `s0`, Σ0 of the previous `a`, not yet added to `a`;
    /// `fc`, a copy of `f`; `bc`, b ^ c (consumed; the next round's is left in `ab`).
    macro_rules! round {
        ($a:ident, $b:ident, $d:ident, $e:ident, $g:ident, $h:ident,
         $s0:ident, $fc:ident, $bc:ident, $ab:ident, $wk:ident, $off:expr) => {
            // SAFETY: reads the u64 at `$wk + $off`, inside the schedule (see callers); only
            // registers are written; BMI2 (`rorx`) and BMI1 (`andn`) are enabled.
            unsafe {
                asm!(
                    "add {h}, qword ptr [{wk} + {off}]",
                    "and {fc}, {e}",
                    "rorx {t0}, {e}, 41",
                    "rorx {ab}, {e}, 18",
                    "lea {a}, [{a} + {s0}]",
                    "lea {h}, [{h} + {fc}]",
                    "andn {fc}, {e}, {g}",
                    "xor {t0}, {ab}",
                    "rorx {s0}, {e}, 14",
                    "lea {h}, [{h} + {fc}]",
                    "xor {t0}, {s0}",
                    "mov {ab}, {a}",
                    "rorx {fc}, {a}, 39",
                    "lea {h}, [{h} + {t0}]",
                    "xor {ab}, {b}",
                    "rorx {s0}, {a}, 34",
                    "rorx {t0}, {a}, 28",
                    "lea {d}, [{d} + {h}]",
                    "and {bc}, {ab}",
                    "xor {s0}, {fc}",
                    "xor {bc}, {b}",
                    "xor {s0}, {t0}",
                    "lea {h}, [{h} + {bc}]",
                    "mov {fc}, {e}",
                    a = inout(reg) $a,
                    b = in(reg) $b,
                    d = inout(reg) $d,
                    e = in(reg) $e,
                    g = in(reg) $g,
                    h = inout(reg) $h,
                    s0 = inout(reg) $s0,
                    fc = inout(reg) $fc,
                    bc = inout(reg) $bc => _,
                    ab = out(reg) $ab,
                    t0 = out(reg) _,
                    wk = in(reg) $wk,
                    off = const $off,
                    options(pure, readonly, nostack),
                );
            }
        };
    }

    /// Eight rounds on `s` from round `r` (a multiple of 8), W + K of round `r + i` at
    /// `$wk + 8 * $at(r + i)`, with the blocks `$p0`..`$p3` before rounds 0, 2, 4 and 6.
    macro_rules! rounds8 {
        ($s:ident, $wk:ident, $at:ident, $r:expr, $p0:block, $p1:block, $p2:block, $p3:block) => {
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = $s.v;
            let (mut s0, mut fc, mut bc, mut ab) = ($s.s0, $s.fc, $s.bc, 0u64);
            $p0
            round!(a, b, d, e, g, h, s0, fc, bc, ab, $wk, 8 * $at($r));
            round!(h, a, c, d, f, g, s0, fc, ab, bc, $wk, 8 * $at($r + 1));
            $p1
            round!(g, h, b, c, e, f, s0, fc, bc, ab, $wk, 8 * $at($r + 2));
            round!(f, g, a, b, d, e, s0, fc, ab, bc, $wk, 8 * $at($r + 3));
            $p2
            round!(e, f, h, a, c, d, s0, fc, bc, ab, $wk, 8 * $at($r + 4));
            round!(d, e, g, h, b, c, s0, fc, ab, bc, $wk, 8 * $at($r + 5));
            $p3
            round!(c, d, f, g, a, b, s0, fc, bc, ab, $wk, 8 * $at($r + 6));
            round!(b, c, e, f, h, a, s0, fc, ab, bc, $wk, 8 * $at($r + 7));
            $s = Working { v: [a, b, c, d, e, f, g, h], s0, fc, bc };
        };
    }

    /// The working variables between rounds, with what [`round!`] carries.
    #[derive(Clone, Copy)]
    struct Working {
        v: [u64; 8],
        s0: u64,
        fc: u64,
        bc: u64,
    }

    impl Working {
        fn new(v: [u64; 8]) -> Self {
            Self {
                v,
                s0: 0,
                fc: v[5],
                bc: v[1] ^ v[2],
            }
        }

        /// Adds the working variables to the chaining value.
        fn finish(mut self, state: &mut [u64; 8]) {
            self.v[0] = self.v[0].wrapping_add(self.s0);
            for (word, new) in state.iter_mut().zip(self.v) {
                *word = word.wrapping_add(new);
            }
        }
    }

    /// Where round `r` of the first block finds W + K in a [`Schedule`].
    const fn first_at(r: usize) -> usize {
        4 * (r / 2) + r % 2
    }

    /// Where round `r` of the second block finds W + K in a [`Schedule`].
    const fn second_at(r: usize) -> usize {
        4 * (r / 2) + 2 + r % 2
    }

    /// Compresses `first`, then `second` if given.
    #[target_feature(enable = "avx2,bmi1,bmi2")]
    fn compress_avx2(state: &mut [u64; 8], first: &[u8; BLOCK], second: Option<&[u8; BLOCK]>) {
        let second_or_first = second.unwrap_or(first);
        let bswap = _mm256_set_epi64x(
            0x0809_0a0b_0c0d_0e0f,
            0x0001_0203_0405_0607,
            0x0809_0a0b_0c0d_0e0f,
            0x0001_0203_0405_0607,
        );
        // Every vector is written by `store` before the rounds read it; `wk` is the only
        // pointer to it that is used.
        let mut schedule = MaybeUninit::<Schedule>::uninit();
        let wk: *mut __m256i = schedule.as_mut_ptr().cast();
        let mut x = [_mm256_setzero_si256(); 8];
        for (j, x) in x.iter_mut().enumerate() {
            let (lo, hi) = (
                &first[16 * j..16 * j + 16],
                &second_or_first[16 * j..16 * j + 16],
            );
            // SAFETY: `lo` and `hi` are 16 bytes each; unaligned loads.
            let v = unsafe {
                _mm256_set_m128i(
                    _mm_loadu_si128(hi.as_ptr().cast()),
                    _mm_loadu_si128(lo.as_ptr().cast()),
                )
            };
            *x = _mm256_shuffle_epi8(v, bswap);
            // SAFETY: `wk` points to `schedule`.
            unsafe { store(wk, j, _mm256_add_epi64(*x, k2(j))) };
        }

        let mut s = Working::new(*state);
        // Rounds 0..64 of the first block, with the schedule of rounds 16..80 of both: one
        // step, two words of each block, every two rounds.
        let p = wk.cast_const();
        macro_rules! step {
            ($k:literal, $base:expr) => {{
                schedule_step(&mut x, $k);
                let v = _mm256_add_epi64(x[$k], k2(8 + $k + $base / 2));
                // SAFETY: `wk` points to `schedule`.
                unsafe { store(wk, 8 + $k + $base / 2, v) };
            }};
        }
        macro_rules! sixteen {
            ($base:expr) => {
                rounds8!(
                    s,
                    p,
                    first_at,
                    $base,
                    { step!(0, $base) },
                    { step!(1, $base) },
                    { step!(2, $base) },
                    { step!(3, $base) }
                );
                rounds8!(
                    s,
                    p,
                    first_at,
                    $base + 8,
                    { step!(4, $base) },
                    { step!(5, $base) },
                    { step!(6, $base) },
                    { step!(7, $base) }
                );
            };
        }
        sixteen!(0);
        sixteen!(16);
        sixteen!(32);
        sixteen!(48);
        rounds8!(s, p, first_at, 64, {}, {}, {}, {});
        rounds8!(s, p, first_at, 72, {}, {}, {}, {});
        s.finish(state);

        if second.is_some() {
            let mut s = Working::new(*state);
            rounds8!(s, p, second_at, 0, {}, {}, {}, {});
            rounds8!(s, p, second_at, 8, {}, {}, {}, {});
            rounds8!(s, p, second_at, 16, {}, {}, {}, {});
            rounds8!(s, p, second_at, 24, {}, {}, {}, {});
            rounds8!(s, p, second_at, 32, {}, {}, {}, {});
            rounds8!(s, p, second_at, 40, {}, {}, {}, {});
            rounds8!(s, p, second_at, 48, {}, {}, {}, {});
            rounds8!(s, p, second_at, 56, {}, {}, {}, {});
            rounds8!(s, p, second_at, 64, {}, {}, {}, {});
            rounds8!(s, p, second_at, 72, {}, {}, {}, {});
            s.finish(state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    /// Marsaglia's xorshift64.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    fn reference(data: &[u8]) -> [u8; 32] {
        sha2::Sha512_256::digest(data).into()
    }

    /// Both block functions, the x86-64 one only where it runs.
    fn paths() -> Vec<bool> {
        if fast_path_available() {
            vec![true, false]
        } else {
            vec![false]
        }
    }

    fn one_go(data: &[u8], fast: bool) -> [u8; 32] {
        let mut hasher = Sha512_256Stream::with_fast_path(fast);
        hasher.update(data);
        hasher.finalize().0
    }

    #[test]
    fn sha512_stream_empty() {
        // FIPS 180-4 example value of SHA-512/256("").
        let empty = "c672b8d1ef56ed28ab87c3622c5114069bdd3ad7b8f9737498d0c01ecef0967a";
        for fast in paths() {
            let id = Sha512_256Stream::with_fast_path(fast).finalize();
            let hex: String = id.0.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, empty, "fast: {fast}");
            assert_eq!(id.0, reference(b""));
        }
        assert_eq!(Sha512_256Stream::new().finalize().0, reference(b""));
    }

    #[test]
    fn sha512_stream_short_lengths_byte_by_byte() {
        let data = XorShift(1).bytes(300);
        for fast in paths() {
            for len in 1..=300 {
                let mut hasher = Sha512_256Stream::with_fast_path(fast);
                for byte in &data[..len] {
                    hasher.update(core::slice::from_ref(byte));
                }
                assert_eq!(
                    hasher.finalize().0,
                    reference(&data[..len]),
                    "len {len}, fast: {fast}"
                );
                assert_eq!(
                    one_go(&data[..len], fast),
                    reference(&data[..len]),
                    "len {len}"
                );
            }
        }
    }

    #[test]
    fn sha512_stream_padding_edges() {
        let data = XorShift(2).bytes(4 * BLOCK + 1);
        let edges = [
            111, 112, 127, 128, 129, 239, 240, 255, 256, 367, 368, 383, 384, 511, 512, 513,
        ];
        for fast in paths() {
            for len in edges {
                assert_eq!(
                    one_go(&data[..len], fast),
                    reference(&data[..len]),
                    "len {len}, fast: {fast}"
                );
            }
        }
    }

    #[test]
    fn sha512_stream_random_pieces() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let data = rng.bytes(3 << 20);
        for fast in paths() {
            for round in 0..12 {
                let len = if round == 0 {
                    data.len()
                } else {
                    rng.below(data.len() + 1)
                };
                let message = &data[..len];
                let mut hasher = Sha512_256Stream::with_fast_path(fast);
                let mut rest = message;
                while !rest.is_empty() {
                    // Mostly small pieces, sometimes large ones.
                    let max = if rng.below(4) == 0 {
                        1 << 20
                    } else {
                        3 * BLOCK
                    };
                    let piece = rng.below(max.min(rest.len()) + 1);
                    hasher.update(&rest[..piece]);
                    rest = &rest[piece..];
                }
                assert_eq!(
                    hasher.finalize().0,
                    reference(message),
                    "len {len}, fast: {fast}"
                );
            }
        }
    }

    #[test]
    fn sha512_stream_block_functions_agree() {
        let mut rng = XorShift(3);
        for blocks in 0..=9 {
            let data = rng.bytes(blocks * BLOCK);
            let (blocks, _) = data.as_chunks::<BLOCK>();
            let mut fallback = IV;
            compress(&mut fallback, blocks, false);
            let mut fast = IV;
            compress(&mut fast, blocks, true);
            assert_eq!(fast, fallback, "{} blocks", blocks.len());
        }
    }
}
