//! Fuzz entry points: one call per target, used by `fuzz/` (libFuzzer) and run as ordinary
//! tests over the checked-in seed corpus. Each asserts the properties that must hold for
//! any input; none may panic otherwise.

use crate::catar::{DecodeError, Decoder, Event};
use crate::chunker::{ChunkSizes, Chunker};
use crate::index::Index;
use alloc::vec::Vec;

/// Decodes arbitrary bytes as an index; whatever decodes must re-encode to the same bytes.
pub fn index(data: &[u8]) {
    if let Ok(index) = Index::decode(data) {
        assert_eq!(
            index.encode(),
            data,
            "decoded index does not re-encode identically"
        );
    }
}

/// Chunks arbitrary bytes in one piece and in pieces split by the first bytes of the input;
/// the boundaries must agree and respect the limits.
pub fn chunker(data: &[u8]) {
    let Some((&[a, b, c], payload)) = data.split_first_chunk::<3>() else {
        return;
    };
    // Small limits so that short inputs have many boundaries.
    let avg = 64 + u64::from(a) * 4;
    let sizes = ChunkSizes::derive(0, avg, 0).expect("derived from a valid average");
    let whole = boundaries(sizes, payload, payload.len().max(1));
    let piece = 1 + usize::from(u16::from_le_bytes([b, c])) % 97;
    assert_eq!(whole, boundaries(sizes, payload, piece), "split at {piece}");
    let mut start = 0;
    for (i, &end) in whole.iter().enumerate() {
        let len = (end - start) as u64;
        assert!(len <= sizes.max.max(48));
        if i + 1 < whole.len() {
            assert!(len >= sizes.min.max(48));
        }
        start = end;
    }
}

/// Boundaries found when `data` is fed in pieces of `piece` bytes.
pub fn boundaries(sizes: ChunkSizes, data: &[u8], piece: usize) -> Vec<usize> {
    let mut chunker = Chunker::new(sizes);
    let mut ends = Vec::new();
    let mut fed = 0;
    for block in data.chunks(piece) {
        let mut at = 0;
        while let Some(n) = chunker.scan(&block[at..]) {
            at += n;
            ends.push(fed + at);
        }
        fed += block.len();
    }
    if ends.last().copied().unwrap_or(0) < data.len() {
        ends.push(data.len());
    }
    ends
}

/// Decodes arbitrary bytes as a catar archive, whole and fed in two pieces split at a position
/// taken from the input; the events and the outcome must agree.
pub fn catar(data: &[u8]) {
    let mix = data
        .iter()
        .take(8)
        .fold(0usize, |h, &b| h.wrapping_mul(31) ^ usize::from(b));
    let split = mix % (data.len() + 1);
    let whole = decode_catar(data, &[]);
    assert_eq!(whole, decode_catar(data, &[split]), "split at {split}");
}

/// Decodes `data` fed in pieces cut at the ascending offsets `cuts`: the owned events (adjacent
/// payload pieces merged, so that the list does not depend on the cuts) and how it ended.
pub fn decode_catar(data: &[u8], cuts: &[usize]) -> (Vec<Event<Vec<u8>>>, Result<(), DecodeError>) {
    let mut decoder = Decoder::new();
    let mut events: Vec<Event<Vec<u8>>> = Vec::new();
    let mut start = 0;
    for end in cuts.iter().copied().chain([data.len()]) {
        let piece = &data[start..end];
        start = end;
        let mut at = 0;
        loop {
            let (n, event) = match decoder.next(&piece[at..]) {
                Ok(step) => step,
                Err(e) => return (events, Err(e)),
            };
            at += n;
            match (event, events.last_mut()) {
                (None, _) => break,
                (Some(Event::PayloadData(more)), Some(Event::PayloadData(data))) => {
                    data.extend_from_slice(more)
                }
                (Some(event), _) => events.push(event.map(<[u8]>::to_vec)),
            }
        }
        assert_eq!(
            at,
            piece.len(),
            "the decoder asked for more input without consuming all"
        );
    }
    (events, decoder.finish())
}

/// Reads arbitrary bytes as a U-Boot data area, as a single copy and, split in halves, as a
/// redundant pair; whatever reads must write and read back to the same variables, and a
/// write into the non-current copy must become current.
pub fn uboot_env(data: &[u8]) {
    use crate::bootenv::uboot;
    if let Ok(env) = uboot::parse_data(data) {
        let mut out = alloc::vec![0xa5; uboot::encoded_len(&env)];
        uboot::encode_data(&env, &mut out).expect("sized by encoded_len");
        assert_eq!(uboot::parse_data(&out).as_ref(), Ok(&env));
    }
    if let Ok(env) = uboot::load_single(data) {
        let mut out = alloc::vec![0; data.len()];
        // Our writer may need more room than the input used (no duplicates, but a final NUL).
        if uboot::store_single(&env, &mut out).is_ok() {
            assert_eq!(uboot::load_single(&out).as_ref(), Ok(&env));
        }
    }
    let (a, b) = data.split_at(data.len() / 2);
    for mode in [uboot::FlagsMode::Incremental, uboot::FlagsMode::Boolean] {
        let Ok(loaded) = uboot::load_redundant([a, &b[..a.len()]], mode) else {
            continue;
        };
        let mut next = alloc::vec![0; a.len()];
        if uboot::store_redundant(&loaded.env, &mut next, mode.next(loaded.flags)).is_err() {
            continue;
        }
        let mut old = [a, b].map(<[u8]>::to_vec);
        if mode == uboot::FlagsMode::Boolean {
            old[loaded.current][uboot::FLAGS_OFFSET] = uboot::FLAG_OBSOLETE;
        }
        let copies = match loaded.current {
            0 => [&old[0][..], &next[..]],
            _ => [&next[..], &old[1][..a.len()]],
        };
        let again = uboot::load_redundant(copies, mode).expect("a freshly written pair loads");
        assert_eq!(again.current, 1 - loaded.current);
        assert_eq!(again.env, loaded.env);
    }
}

/// Reads arbitrary bytes as a grubenv block, and as the body of one (signature prepended,
/// `#`-padded or cut to 1024 bytes); whatever reads must write to a block that reads back
/// to the same variables and re-writes to the same bytes.
pub fn grubenv(data: &[u8]) {
    use crate::bootenv::grub;
    let mut fitted = grub::SIGNATURE.to_vec();
    fitted.extend_from_slice(data);
    fitted.resize(grub::BLOCK_SIZE, b'#');
    for block in [data, &fitted[..]] {
        if let Ok(env) = grub::parse(block) {
            let out = grub::to_block(&env).expect("what was read fits");
            assert_eq!(grub::parse(&out).as_ref(), Ok(&env));
            assert_eq!(grub::to_block(&env), Ok(out));
        }
    }
}
