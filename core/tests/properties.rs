//! Property tests: chunk boundaries and decoded catar events do not depend on how the input is
//! split across calls, and indexes and archives survive an encode/decode round trip.

use otasync_core::catar::{Encoder, Entry, Event, Metadata, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG};
use otasync_core::fuzzing::{boundaries, decode_catar};
use otasync_core::index::{ChunkEntry, Index, IndexHeader};
use otasync_core::{ChunkId, ChunkSizes, flags};
use proptest::prelude::*;

fn sizes() -> impl Strategy<Value = ChunkSizes> {
    prop_oneof![
        Just(ChunkSizes::derive(64, 256, 1024).unwrap()),
        Just(ChunkSizes::derive(1, 64, 256).unwrap()),
        Just(ChunkSizes::derive(0, 512, 0).unwrap()),
        Just(ChunkSizes::derive(100, 100, 100).unwrap()),
        (64u64..4096).prop_map(|avg| ChunkSizes::derive(0, avg, 0).unwrap()),
    ]
}

/// Random bytes interleaved with runs of zeros (which the chunker skips over).
fn data_with_zero_runs() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..3000),
            (0usize..5000).prop_map(|n| vec![0u8; n]),
        ],
        0..8,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn boundaries_independent_of_split(
        sizes in sizes(),
        data in prop_oneof![proptest::collection::vec(any::<u8>(), 0..20_000), data_with_zero_runs()],
        piece in 1usize..5000,
    ) {
        let whole = boundaries(sizes, &data, data.len().max(1));
        prop_assert_eq!(&whole, &boundaries(sizes, &data, piece));
        prop_assert_eq!(&whole, &boundaries(sizes, &data, 1));
        if let Some(&last) = whole.last() {
            prop_assert_eq!(last, data.len());
        }
    }

    #[test]
    fn index_round_trip(lens in proptest::collection::vec(16384u64..=262144, 0..50), seed in any::<u8>()) {
        let header = IndexHeader { feature_flags: flags::BLOB_INDEX_DEFAULT, sizes: ChunkSizes::default() };
        let mut index = Index::new(header);
        let mut end = 0;
        for (i, len) in lens.iter().enumerate() {
            end += len;
            index.chunks.push(ChunkEntry { end, id: ChunkId([seed ^ i as u8; 32]) });
        }
        let bytes = index.encode();
        prop_assert_eq!(bytes.len(), 104 + 40 * lens.len());
        prop_assert_eq!(Index::decode(&bytes).unwrap(), index);
    }
}

/// A node of a generated tree: file contents, symlink target, FIFO, or a directory of leaves.
#[derive(Clone, Debug)]
enum Node {
    File(Vec<u8>),
    Symlink(Vec<u8>),
    Fifo,
    Dir(Vec<(Vec<u8>, Node)>),
}

fn leaf() -> impl Strategy<Value = Node> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Node::File),
        proptest::collection::vec(1u8..=255, 1..40).prop_map(Node::Symlink),
        Just(Node::Fifo),
    ]
}

/// Children with distinct names that are valid and sorted as casync sorts them.
fn children<S: Strategy<Value = Node>>(node: S) -> impl Strategy<Value = Vec<(Vec<u8>, Node)>> {
    proptest::collection::btree_map("[a-zA-Z0-9._-]{1,12}", node, 0..8).prop_map(|m| {
        m.into_iter()
            .filter(|(n, _)| n != "." && n != "..")
            .map(|(n, node)| (n.into_bytes(), node))
            .collect()
    })
}

fn tree() -> impl Strategy<Value = Vec<(Vec<u8>, Node)>> {
    children(prop_oneof![leaf(), children(leaf()).prop_map(Node::Dir)])
}

fn encode_tree(children: &[(Vec<u8>, Node)]) -> Vec<u8> {
    let meta = |mode| Metadata {
        entry: Entry {
            mode,
            mtime: 1 << 60,
            ..Entry::default()
        },
        ..Metadata::default()
    };
    fn add(
        enc: &mut Encoder<Vec<u8>>,
        children: &[(Vec<u8>, Node)],
        meta: &dyn Fn(u32) -> Metadata,
    ) {
        for (name, node) in children {
            match node {
                Node::File(data) => {
                    enc.file(name, &meta(S_IFREG | 0o644), data.len() as u64)
                        .unwrap();
                    enc.payload(data).unwrap();
                }
                Node::Symlink(target) => {
                    assert!(enc.symlink(name, &meta(S_IFLNK | 0o777), target).unwrap());
                }
                Node::Fifo => assert!(enc.special(name, &meta(S_IFIFO | 0o600)).unwrap()),
                Node::Dir(inner) => {
                    enc.directory(name, &meta(S_IFDIR | 0o755)).unwrap();
                    add(enc, inner, meta);
                    enc.end_directory().unwrap();
                }
            }
        }
    }
    let mut enc = Encoder::new(
        Vec::new(),
        flags::normalize(0x1_ffff_ffff),
        &meta(S_IFDIR | 0o700),
    )
    .unwrap();
    add(&mut enc, children, &meta);
    enc.finish().unwrap()
}

/// Sorted cut offsets within `0..=len`.
fn cuts_in(cuts: &[usize], len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (len + 1)).collect();
    cuts.sort_unstable();
    cuts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn catar_decoding_independent_of_split(tree in tree(), cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
        let bytes = encode_tree(&tree);
        let whole = decode_catar(&bytes, &[]);
        prop_assert_eq!(&whole.1, &Ok(()));
        prop_assert_eq!(whole.0.last(), Some(&Event::EndArchive));
        prop_assert_eq!(&whole, &decode_catar(&bytes, &cuts_in(&cuts, bytes.len())));
        let bytewise: Vec<usize> = (1..bytes.len()).collect();
        prop_assert_eq!(&whole, &decode_catar(&bytes, &bytewise));
    }

    #[test]
    fn corrupted_catar_decoding_independent_of_split(
        tree in tree(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cuts in proptest::collection::vec(any::<usize>(), 1..4),
    ) {
        let mut bytes = encode_tree(&tree);
        for (at, x) in flips {
            let len = bytes.len();
            bytes[at % len] ^= x;
        }
        let cut = bytes.len() / 2;
        bytes.truncate(bytes.len() - cut % 7);
        prop_assert_eq!(decode_catar(&bytes, &[]), decode_catar(&bytes, &cuts_in(&cuts, bytes.len())));
    }
}
