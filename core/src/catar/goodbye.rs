//! GOODBYE records: the per-directory lookup table (spec §4.7).
//!
//! ```text
//! u64 size = 16 + 24 * (n + 1); u64 type = GOODBYE
//! n × { u64 offset; u64 size; u64 hash }    -- complete binary search tree order
//! tail: { u64 entry_offset; u64 size; u64 CA_FORMAT_GOODBYE_TAIL_MARKER }
//! ```
//!
//! `offset` is the backwards distance from the GOODBYE to the child's FILENAME, `size` spans
//! the FILENAME and the child's whole serialization, and `hash` is SipHash-2-4 of the name.

use super::format::{CA_FORMAT_GOODBYE, CA_FORMAT_GOODBYE_TAIL_MARKER, goodbye_size, put64};
use alloc::vec::Vec;
use siphasher::sip::SipHasher24;

/// The SipHash-2-4 key of goodbye hashes (`CA_FORMAT_GOODBYE_HASH_KEY`).
pub const CA_FORMAT_GOODBYE_HASH_KEY: [u8; 16] = [
    0xb3, 0x84, 0x1d, 0x0f, 0x2b, 0x44, 0x74, 0x85, 0xc1, 0x2e, 0xc2, 0xd1, 0x30, 0xed, 0x36, 0x27,
];

/// The goodbye hash of a file name (raw bytes, no NUL).
pub fn name_hash(name: &[u8]) -> u64 {
    SipHasher24::new_with_key(&CA_FORMAT_GOODBYE_HASH_KEY).hash(name)
}

/// One child of a directory, as the goodbye table describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoodbyeItem {
    /// [`name_hash`] of the child's name.
    pub hash: u64,
    /// Archive offset of the child's FILENAME record.
    pub start: u64,
    /// Bytes from the FILENAME to the end of the child.
    pub size: u64,
}

/// Lays out `sorted` as a complete binary search tree in array form: the children of position
/// `i` are `2i+1` (smaller) and `2i+2` (larger). A port of casync's `ca_make_bst`
/// (`camakebst.c`, permutation by L. Bressel), so the order matches casync byte for byte.
pub fn make_bst<T: Copy>(sorted: &[T], out: &mut Vec<T>) {
    out.clear();
    if let Some(&first) = sorted.first() {
        out.resize(sorted.len(), first);
        let levels = usize::BITS - sorted.len().leading_zeros();
        make_bst_inner(sorted, levels, out, 0);
    }
}

/// Places the subtree for `input` at position `i`; `e` is the number of levels it may use.
fn make_bst_inner<T: Copy>(input: &[T], e: u32, out: &mut [T], i: usize) {
    let n = input.len();
    if n == 0 || e == 0 {
        return;
    }
    let p = 1usize << (e - 1);
    let q = 1usize << e;
    // Where the root goes: the left subtree fills its last level as far as `n` allows.
    let k = if n >= p - 1 + p / 2 {
        (q - 2) / 2
    } else {
        (q - 2) / 2 - (p - 1 + p / 2 - n)
    };
    out[i] = input[k];
    make_bst_inner(&input[..k], e - 1, out, 2 * i + 1);
    make_bst_inner(&input[k + 1..], e - 1, out, 2 * i + 2);
}

/// Serializes the GOODBYE record of the directory whose ENTRY is at `entry_offset`, written at
/// `goodbye_offset`. Sorts `items` by (hash, start) in place.
pub fn encode_goodbye(
    items: &mut [GoodbyeItem],
    entry_offset: u64,
    goodbye_offset: u64,
    out: &mut Vec<u8>,
) {
    items.sort_unstable();
    let mut tree = Vec::with_capacity(items.len());
    make_bst(items, &mut tree);
    let size = goodbye_size(items.len() as u64);
    put64(out, &[size, CA_FORMAT_GOODBYE]);
    for item in &tree {
        put64(out, &[goodbye_offset - item.start, item.size, item.hash]);
    }
    put64(
        out,
        &[
            goodbye_offset - entry_offset,
            size,
            CA_FORMAT_GOODBYE_TAIL_MARKER,
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_casync() {
        assert_eq!(name_hash(b"blk"), 0x85a3f3b8070514d9);
        assert_eq!(name_hash(b"hello.txt"), 0x768166ec6f1259fb);
        assert_eq!(name_hash(b"l"), 0xa1a7aeca9969d80a);
        assert_eq!(name_hash(b"sub"), 0xebfe935698c3deec);
    }

    /// Appends the in-order walk of the array-form tree rooted at `i`.
    fn in_order(tree: &[usize], i: usize, walk: &mut Vec<usize>) {
        if i < tree.len() {
            in_order(tree, 2 * i + 1, walk);
            walk.push(tree[i]);
            in_order(tree, 2 * i + 2, walk);
        }
    }

    #[test]
    fn bst_layout_is_complete_search_tree() {
        let mut tree = Vec::new();
        for n in 1..=2000 {
            let sorted: Vec<usize> = (0..n).collect();
            make_bst(&sorted, &mut tree);
            let mut walk = Vec::new();
            in_order(&tree, 0, &mut walk);
            assert_eq!(walk, sorted, "n = {n}");
        }
        let mut empty = alloc::vec![1u8];
        make_bst(&[], &mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn small_tables_match_casync() {
        // casync's ca_make_bst for 9 items (the spec's test tree root) and 2 items.
        let mut tree = Vec::new();
        make_bst(&[0, 1, 2, 3, 4, 5, 6, 7, 8], &mut tree);
        assert_eq!(tree, [5, 3, 7, 1, 4, 6, 8, 0, 2]);
        make_bst(&[0, 1], &mut tree);
        assert_eq!(tree, [1, 0]);
    }
}
