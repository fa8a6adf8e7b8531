//! Property tests: chunk boundaries do not depend on how the input is split across `scan()`
//! calls, and indexes survive an encode/decode round trip.

use otasync_core::fuzzing::boundaries;
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
