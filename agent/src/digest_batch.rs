//! Digests of many chunks at once. SHA-512/256, casync's default chunk id, is the most expensive
//! step of `make` and `extract`; chunk ids are independent messages, so on x86-64 CPUs with
//! AVX-512 eight of them are hashed side by side, one per 64-bit vector lane ("multi-buffer"
//! hashing, as in Intel's isa-l_crypto). Elsewhere, and for SHA-256 (which has its own CPU
//! instructions), each chunk is hashed on its own by `otasync-core`.
//!
//! Messages can also stream through the lanes ([`digest_each`]): a lane that finishes takes the
//! next message at once, so lanes idle only when no message is at hand, not at the end of
//! every batch.

use otasync_core::{ChunkId, DigestAlgorithm};

/// The ids of `chunks`, in order.
pub(crate) fn digest_all(algorithm: DigestAlgorithm, chunks: &[&[u8]]) -> Vec<ChunkId> {
    let mut ids = vec![ChunkId([0; 32]); chunks.len()];
    // Longest first: short messages then fill the lanes that free up, so fewer lanes idle
    // while the last long message finishes.
    let mut order: Vec<usize> = (0..chunks.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(chunks[i].len()));
    let mut order = order.into_iter();
    digest_each(
        algorithm,
        chunks.len(),
        |_| order.next().map(|i| Numbered(i, chunks[i])),
        |Numbered(i, _), id| ids[i] = id,
    );
    ids
}

/// A message and its place in the caller's list.
struct Numbered<'a>(usize, &'a [u8]);

impl AsRef<[u8]> for Numbered<'_> {
    fn as_ref(&self) -> &[u8] {
        self.1
    }
}

/// Hashes the messages `next` hands out, and gives each to `done` with its id as soon as it is
/// hashed. `next` is asked for another message whenever one could be hashed alongside those in
/// progress (`at_most` of them); it is told whether none is (`true`: it may wait for one), and
/// returning `None` then ends the stream. With messages in progress, `None` means "none at
/// hand now".
pub(crate) fn digest_each<T: AsRef<[u8]>>(
    algorithm: DigestAlgorithm,
    at_most: usize,
    mut next: impl FnMut(bool) -> Option<T>,
    mut done: impl FnMut(T, ChunkId),
) {
    let mut lanes = match algorithm {
        DigestAlgorithm::Sha512_256 => Lanes::new(),
        DigestAlgorithm::Sha256 => None,
    };
    // (None in progress would be none at all.)
    let at_most = at_most.max(1);
    let Some(lanes) = &mut lanes else {
        while let Some(message) = next(true) {
            let id = crate::sha512_stream::digest(algorithm, message.as_ref());
            done(message, id);
        }
        return;
    };
    loop {
        while lanes.has_room() && lanes.in_progress() < at_most {
            let idle = lanes.in_progress() == 0;
            match next(idle) {
                Some(message) => lanes.start(message),
                None if idle => return,
                None => break,
            }
        }
        if let Some((message, id)) = lanes.run() {
            done(message, id);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[rustversion::since(1.89)]
use x86::Lanes;

/// Without x86-64, or with a Rust older than 1.89 (whose AVX-512 intrinsics were unstable),
/// there are no lanes: every message is hashed on its own.
#[rustversion::attr(since(1.89), cfg(not(target_arch = "x86_64")))]
struct Lanes<T>(std::convert::Infallible, std::marker::PhantomData<T>);

#[rustversion::attr(since(1.89), cfg(not(target_arch = "x86_64")))]
impl<T> Lanes<T> {
    fn new() -> Option<Self> {
        None
    }
    fn has_room(&self) -> bool {
        match self.0 {}
    }
    fn in_progress(&self) -> usize {
        match self.0 {}
    }
    fn start(&mut self, _: T) {
        match self.0 {}
    }
    fn run(&mut self) -> Option<(T, ChunkId)> {
        match self.0 {}
    }
}

#[cfg(target_arch = "x86_64")]
#[rustversion::since(1.89)]
#[clippy::msrv = "1.89"]
mod x86 {
    #![allow(unsafe_code)]

    use crate::sha512_stream::{IV, K};
    use otasync_core::ChunkId;
    use std::arch::x86_64::*;

    /// Lanes in a 512-bit vector of u64.
    const LANES: usize = 8;
    /// With this many lanes or fewer busy and no message at hand, a message is finished with
    /// the scalar compression, which is about three lanes' speed.
    const SCALAR_TAIL: usize = 2;
    /// SHA-512 block size.
    const BLOCK: usize = 128;

    /// Eight messages in progress side by side, SHA-512/256 each.
    pub(super) struct Lanes<T> {
        jobs: [Option<Job<T>>; LANES],
        /// Each lane's chaining value: `state[word][lane]`.
        state: [[u64; LANES]; 8],
        /// Messages finished together with the one handed back, waiting their turn.
        finished: Vec<(T, ChunkId)>,
    }

    impl<T: AsRef<[u8]>> Lanes<T> {
        /// Empty lanes, if this CPU has AVX-512.
        pub(super) fn new() -> Option<Self> {
            is_x86_feature_detected!("avx512f").then(|| Self {
                jobs: Default::default(),
                state: [[0; LANES]; 8],
                finished: Vec::new(),
            })
        }

        /// True while a lane is free.
        pub(super) fn has_room(&self) -> bool {
            self.jobs.iter().any(Option::is_none)
        }

        /// Messages in progress or waiting to be handed back.
        pub(super) fn in_progress(&self) -> usize {
            self.finished.len() + self.jobs.iter().flatten().count()
        }

        /// Starts `message` in a free lane (there must be one).
        pub(super) fn start(&mut self, message: T) {
            let lane = self
                .jobs
                .iter()
                .position(Option::is_none)
                .expect("a free lane");
            self.jobs[lane] = Some(Job::new(message));
            for (word, iv) in self.state.iter_mut().zip(IV) {
                word[lane] = iv;
            }
        }

        /// Hashes until a message is done and hands it back with its id (`None`: none in
        /// progress).
        pub(super) fn run(&mut self) -> Option<(T, ChunkId)> {
            if let Some(done) = self.finished.pop() {
                return Some(done);
            }
            let active = self.jobs.iter().flatten().count();
            if active == 0 {
                return None;
            }
            if active <= SCALAR_TAIL {
                // One or two lanes busy: the scalar compression is as fast per message as
                // eight lanes are per lane times two, so the nearest to its end is finished
                // on its own.
                let lane = (0..LANES)
                    .filter(|&lane| self.jobs[lane].is_some())
                    .min_by_key(|&lane| self.jobs[lane].as_ref().map(Job::remaining))?;
                let job = self.jobs[lane].take()?;
                let mut words: [u64; 8] = std::array::from_fn(|word| self.state[word][lane]);
                return Some(job.finish_scalar(&mut words));
            }
            let idle_block = [0u8; BLOCK];
            loop {
                let mut schedule = [[0u64; LANES]; 16];
                for (lane, job) in self.jobs.iter().enumerate() {
                    let block = job.as_ref().map_or(&idle_block[..], Job::block);
                    for (t, word) in schedule.iter_mut().enumerate() {
                        let mut bytes = [0u8; 8];
                        bytes.copy_from_slice(&block[8 * t..8 * t + 8]);
                        word[lane] = u64::from_be_bytes(bytes);
                    }
                }
                // SAFETY: `new` checked for AVX-512; the arrays are 8 u64 wide.
                unsafe { compress8(&mut self.state, &schedule) };
                for (lane, slot) in self.jobs.iter_mut().enumerate() {
                    let Some(job) = slot else { continue };
                    job.done += 1;
                    if job.done == job.total_blocks {
                        let id = digest_of(std::array::from_fn(|word| self.state[word][lane]));
                        let job = slot.take()?;
                        self.finished.push((job.message, id));
                    }
                }
                if let Some(done) = self.finished.pop() {
                    return Some(done);
                }
            }
        }
    }

    /// The SHA-512/256 digest in a final chaining value.
    fn digest_of(state: [u64; 8]) -> ChunkId {
        let mut id = [0u8; 32];
        for (out, word) in id.chunks_exact_mut(8).zip(state) {
            out.copy_from_slice(&word.to_be_bytes());
        }
        ChunkId(id)
    }

    /// One message's progress in a lane.
    struct Job<T> {
        message: T,
        /// Blocks already compressed.
        done: usize,
        /// The final one or two blocks: the message's tail, 0x80, zeros, the bit length.
        tail: [u8; 2 * BLOCK],
        /// Whole blocks taken straight from the message.
        body_blocks: usize,
        total_blocks: usize,
    }

    impl<T: AsRef<[u8]>> Job<T> {
        fn new(message: T) -> Self {
            let data = message.as_ref();
            let body_blocks = data.len() / BLOCK;
            let rest = &data[body_blocks * BLOCK..];
            let mut tail = [0u8; 2 * BLOCK];
            tail[..rest.len()].copy_from_slice(rest);
            tail[rest.len()] = 0x80;
            // 0x80 plus the 16-byte length must fit after the rest.
            let tail_blocks = if rest.len() + 1 + 16 <= BLOCK { 1 } else { 2 };
            let bits = (data.len() as u128) * 8;
            let end = tail_blocks * BLOCK;
            tail[end - 16..end].copy_from_slice(&bits.to_be_bytes());
            Self {
                message,
                done: 0,
                tail,
                body_blocks,
                total_blocks: body_blocks + tail_blocks,
            }
        }

        fn remaining(&self) -> usize {
            self.total_blocks - self.done
        }

        /// Compresses the remaining blocks one at a time from `state`: the message and its id.
        fn finish_scalar(mut self, state: &mut [u64; 8]) -> (T, ChunkId) {
            while self.done < self.total_blocks {
                let mut block = [0u8; BLOCK];
                block.copy_from_slice(self.block());
                crate::sha512_stream::compress512(state, &[block]);
                self.done += 1;
            }
            (self.message, digest_of(*state))
        }

        fn block(&self) -> &[u8] {
            if self.done < self.body_blocks {
                &self.message.as_ref()[self.done * BLOCK..(self.done + 1) * BLOCK]
            } else {
                let k = self.done - self.body_blocks;
                &self.tail[k * BLOCK..(k + 1) * BLOCK]
            }
        }
    }

    /// One SHA-512 compression in each of eight lanes: `state[word][lane]`, message words
    /// `w[t][lane]` already in host order. Rounds are unrolled sixteen at a time, so that the
    /// message schedule lives in registers.
    #[target_feature(enable = "avx512f")]
    unsafe fn compress8(state: &mut [[u64; LANES]; 8], w: &[[u64; LANES]; 16]) {
        // SAFETY (loads and stores below): each array is exactly 8 u64 = 64 bytes, and the
        // unaligned load/store intrinsics have no alignment requirement.
        let load = |a: &[u64; LANES]| unsafe { _mm512_loadu_si512(a.as_ptr().cast()) };
        let initial: [__m512i; 8] = std::array::from_fn(|i| load(&state[i]));
        let mut wv: [__m512i; 16] = std::array::from_fn(|t| load(&w[t]));
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = initial;
        let add = |x, y| _mm512_add_epi64(x, y);

        // Round t of the 16 in group `j`: extend the schedule (after the first group), then
        // update the state, whose names rotate instead of the values moving.
        macro_rules! round {
            ($j:expr, $i:expr, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident) => {{
                if $j > 0 {
                    let w15 = wv[($i + 1) % 16];
                    let w2 = wv[($i + 14) % 16];
                    let s0 = _mm512_ternarylogic_epi64(
                        _mm512_ror_epi64::<1>(w15),
                        _mm512_ror_epi64::<8>(w15),
                        _mm512_srli_epi64::<7>(w15),
                        0x96,
                    );
                    let s1 = _mm512_ternarylogic_epi64(
                        _mm512_ror_epi64::<19>(w2),
                        _mm512_ror_epi64::<61>(w2),
                        _mm512_srli_epi64::<6>(w2),
                        0x96,
                    );
                    wv[$i] = add(add(wv[$i], s0), add(wv[($i + 9) % 16], s1));
                }
                let big_s1 = _mm512_ternarylogic_epi64(
                    _mm512_ror_epi64::<14>($e),
                    _mm512_ror_epi64::<18>($e),
                    _mm512_ror_epi64::<41>($e),
                    0x96,
                );
                // e ? f : g
                let ch = _mm512_ternarylogic_epi64($e, $f, $g, 0xca);
                let kw = add(_mm512_set1_epi64(K[16 * $j + $i] as i64), wv[$i]);
                let t1 = add(add($h, big_s1), add(ch, kw));
                let big_s0 = _mm512_ternarylogic_epi64(
                    _mm512_ror_epi64::<28>($a),
                    _mm512_ror_epi64::<34>($a),
                    _mm512_ror_epi64::<39>($a),
                    0x96,
                );
                // majority(a, b, c)
                let maj = _mm512_ternarylogic_epi64($a, $b, $c, 0xe8);
                $d = add($d, t1);
                $h = add(t1, add(big_s0, maj));
            }};
        }
        for j in 0..5 {
            round!(j, 0, a, b, c, d, e, f, g, h);
            round!(j, 1, h, a, b, c, d, e, f, g);
            round!(j, 2, g, h, a, b, c, d, e, f);
            round!(j, 3, f, g, h, a, b, c, d, e);
            round!(j, 4, e, f, g, h, a, b, c, d);
            round!(j, 5, d, e, f, g, h, a, b, c);
            round!(j, 6, c, d, e, f, g, h, a, b);
            round!(j, 7, b, c, d, e, f, g, h, a);
            round!(j, 8, a, b, c, d, e, f, g, h);
            round!(j, 9, h, a, b, c, d, e, f, g);
            round!(j, 10, g, h, a, b, c, d, e, f);
            round!(j, 11, f, g, h, a, b, c, d, e);
            round!(j, 12, e, f, g, h, a, b, c, d);
            round!(j, 13, d, e, f, g, h, a, b, c);
            round!(j, 14, c, d, e, f, g, h, a, b);
            round!(j, 15, b, c, d, e, f, g, h, a);
        }
        for ((words, old), new) in state.iter_mut().zip(initial).zip([a, b, c, d, e, f, g, h]) {
            // SAFETY: see `load`.
            unsafe { _mm512_storeu_si512(words.as_mut_ptr().cast(), add(old, new)) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_digests_equal_one_by_one() {
        // Lengths around the padding edges (111/112 bytes before a block end) and long ones.
        let data: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let lens = [
            0, 1, 55, 111, 112, 113, 127, 128, 129, 239, 240, 255, 256, 1000, 4096, 65_537, 70_000,
        ];
        let chunks: Vec<&[u8]> = lens.iter().map(|&n| &data[..n]).collect();
        for algorithm in [DigestAlgorithm::Sha512_256, DigestAlgorithm::Sha256] {
            let expected: Vec<ChunkId> = chunks.iter().map(|c| algorithm.digest(c)).collect();
            assert_eq!(digest_all(algorithm, &chunks), expected);
            assert_eq!(digest_all(algorithm, &chunks[3..4]), expected[3..4]);
            assert!(digest_all(algorithm, &[]).is_empty());
        }
        if Lanes::<&[u8]>::new().is_some() {
            let expected: Vec<ChunkId> = chunks
                .iter()
                .map(|c| DigestAlgorithm::Sha512_256.digest(c))
                .collect();
            // Every batch size around the lane count, so that lanes finish in every pattern
            // (and the last one or two are completed by the scalar tail).
            for start in 0..chunks.len() {
                for end in start + 1..chunks.len().min(start + 11) {
                    let got = digest_all(DigestAlgorithm::Sha512_256, &chunks[start..end]);
                    assert_eq!(got, expected[start..end], "{start}..{end}");
                }
            }
        } else {
            eprintln!("SKIPPED: no AVX-512 on this CPU; the multi-buffer path was not exercised");
        }
    }

    #[test]
    fn streamed_messages_get_their_own_ids_whenever_they_arrive() {
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2246822519) >> 11) as u8)
            .collect();
        // Lengths that make lanes finish at different blocks.
        let messages: Vec<Vec<u8>> = (0..40)
            .map(|i| data[i * 997..i * 997 + (i * 7919) % 20_000 + i].to_vec())
            .collect();
        for algorithm in [DigestAlgorithm::Sha512_256, DigestAlgorithm::Sha256] {
            // Messages at hand only now and then: between them the lanes run part-filled, and
            // a wait (when nothing is in progress) always brings one.
            let mut asked = 0;
            let mut pending = messages.iter().enumerate();
            let mut got = Vec::new();
            digest_each(
                algorithm,
                usize::MAX,
                |idle| {
                    asked += 1;
                    match idle || asked % 3 != 0 {
                        true => pending.next().map(|(i, m)| Numbered(i, m)),
                        false => None,
                    }
                },
                |Numbered(i, m), id| {
                    assert_eq!(id, algorithm.digest(m), "message {i}");
                    got.push(i);
                },
            );
            got.sort_unstable();
            assert_eq!(
                got,
                (0..messages.len()).collect::<Vec<_>>(),
                "{algorithm:?}"
            );
        }
    }
}
