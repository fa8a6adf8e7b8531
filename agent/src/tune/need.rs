//! What one candidate makes devices fetch: the distinct chunks of NEW, which old releases hold
//! each, and which must be compressed to know the sizes (those some old release lacks).

use super::cut::Cut;
use otasync_core::{ChunkId, ChunkSizes, DigestAlgorithm};
use std::collections::HashSet;

/// A chunk of NEW some old release lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    /// Its first place in NEW.
    pub(crate) start: u64,
    /// Its length.
    pub(crate) len: u64,
    /// Its id.
    pub(crate) id: ChunkId,
}

/// The outcome for one old release at one level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Delta {
    /// Chunks fetched: one request each.
    pub(crate) requests: u64,
    /// Their compressed bytes: what goes over the air besides the index.
    pub(crate) chunk_bytes: u64,
    /// Their uncompressed bytes.
    pub(crate) raw_bytes: u64,
    /// Compressed bytes NEW adds to a store holding the old release's chunks.
    pub(crate) store_growth: u64,
}

/// The chunks of NEW for one candidate against every old release.
pub(crate) struct Need {
    /// Distinct chunks of NEW other than the all-zero one: length, whether each old release
    /// holds it, and its number in `pieces` if some old release lacks it.
    firsts: Vec<(u64, Vec<bool>, Option<usize>)>,
    /// The all-zero chunk, if NEW has it: whether each old release holds it, and its number in
    /// `pieces`.
    zero: Option<(Vec<bool>, Option<usize>)>,
    /// The chunks to compress.
    pub(crate) pieces: Vec<Piece>,
}

impl Need {
    /// Works out what `new`, cut with `sizes`, needs from old releases holding `olds`. A chunk
    /// of `max` zero bytes is written without fetching, as the agent's assembly does.
    pub(crate) fn of(
        new: &Cut,
        olds: &[HashSet<ChunkId>],
        sizes: ChunkSizes,
        digest: DigestAlgorithm,
    ) -> Self {
        let spans = || {
            let starts = std::iter::once(0).chain(new.entries.iter().map(|e| e.end));
            new.entries
                .iter()
                .zip(starts)
                .map(|(e, start)| (start, e.end - start, e.id))
        };
        let zero_id = spans()
            .any(|(_, len, _)| len == sizes.max)
            .then(|| digest.digest(&vec![0; usize::try_from(sizes.max).unwrap_or(0)]));
        let mut need = Self {
            firsts: Vec::new(),
            zero: None,
            pieces: Vec::new(),
        };
        let mut seen: HashSet<ChunkId> = HashSet::with_capacity(new.entries.len());
        let mut zero_at = None;
        for (start, len, id) in spans() {
            if Some(id) == zero_id {
                zero_at.get_or_insert((start, len));
            } else if seen.insert(id) {
                let (held, piece) = need.place(olds, Piece { start, len, id });
                need.firsts.push((len, held, piece));
            }
        }
        if let (Some(id), Some((start, len))) = (zero_id, zero_at) {
            need.zero = Some(need.place(olds, Piece { start, len, id }));
        }
        need
    }

    /// Which old releases hold `piece`, and its number among the pieces to compress if one
    /// lacks it.
    fn place(&mut self, olds: &[HashSet<ChunkId>], piece: Piece) -> (Vec<bool>, Option<usize>) {
        let held: Vec<bool> = olds.iter().map(|o| o.contains(&piece.id)).collect();
        let number = (!held.iter().all(|&h| h)).then(|| {
            self.pieces.push(piece);
            self.pieces.len() - 1
        });
        (held, number)
    }

    /// The outcome against old release `k`, given each piece's compressed size.
    pub(crate) fn delta(&self, k: usize, size: impl Fn(usize) -> u64) -> Delta {
        let mut delta = Delta::default();
        for (len, held, piece) in &self.firsts {
            if let (false, Some(p)) = (held[k], piece) {
                delta.requests += 1;
                delta.chunk_bytes += size(*p);
                delta.raw_bytes += len;
            }
        }
        delta.store_growth = delta.chunk_bytes;
        if let Some((held, Some(p))) = &self.zero
            && !held[k]
        {
            delta.store_growth += size(*p);
        }
        delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otasync_core::index::ChunkEntry;
    use std::time::Duration;

    fn id(n: u8) -> ChunkId {
        ChunkId([n; 32])
    }

    #[test]
    fn repeats_held_and_zero_chunks_are_not_fetched() {
        let sizes = ChunkSizes::derive(0, 16, 0).unwrap();
        let zero = DigestAlgorithm::Sha512_256.digest(&[0; 64]);
        let mut entries = Vec::new();
        let mut end = 0;
        // Chunk 1 twice, 2, 3, and the all-zero chunk (max = 64 bytes) twice.
        for (len, id) in [
            (20, id(1)),
            (30, id(2)),
            (20, id(1)),
            (40, id(3)),
            (64, zero),
            (64, zero),
        ] {
            end += len;
            entries.push(ChunkEntry { end, id });
        }
        let new = Cut {
            entries,
            cpu: Duration::ZERO,
        };
        let olds = [
            HashSet::from([id(2)]),
            HashSet::from([id(1), id(2), id(3), zero]),
        ];
        let need = Need::of(&new, &olds, sizes, DigestAlgorithm::Sha512_256);
        // Chunks 1 and 3 (first places) and the zero chunk are compressed; both hold 2.
        let places: Vec<(u64, u64)> = need.pieces.iter().map(|p| (p.start, p.len)).collect();
        assert_eq!(places, vec![(0, 20), (70, 40), (110, 64)]);
        let size = |p: usize| [5, 9, 2][p];
        assert_eq!(
            need.delta(0, size),
            Delta {
                requests: 2,
                chunk_bytes: 5 + 9,
                raw_bytes: 60,
                store_growth: 5 + 9 + 2,
            }
        );
        assert_eq!(need.delta(1, size), Delta::default());
    }
}
