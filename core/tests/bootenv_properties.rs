//! Property tests of the boot environment codecs: any valid set of variables survives a
//! U-Boot and a grubenv round trip, and the fuzz entry points hold on random and mutated
//! inputs.

use otasync_core::bootenv::{Env, grub, uboot};
use otasync_core::fuzzing;
use proptest::prelude::*;

/// Names as the codecs accept them, from a small alphabet so that names collide.
fn name() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(b"ABab_.x".to_vec()),
        prop::collection::vec(prop::sample::select(b"AB_01#= \n\\\xff".to_vec()), 0..6),
    )
        .prop_map(|(first, rest)| {
            let mut name = vec![first];
            name.extend(rest.into_iter().filter(|b| !matches!(b, b'=' | b'\n')));
            name
        })
}

/// Values: any bytes but NUL, with backslashes and newlines likely.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![Just(b'\\'), Just(b'\n'), Just(b'='), 1u8..=255],
        0..40,
    )
}

fn env() -> impl Strategy<Value = Env> {
    prop::collection::vec((name(), value()), 0..12).prop_map(|pairs| {
        let mut env = Env::new();
        for (n, v) in pairs {
            env.set(n, v).unwrap();
        }
        env
    })
}

/// A seed from the fuzz corpus with a few bytes overwritten.
fn mutated(seed: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4).prop_map(
        move |edits| {
            let mut data = seed.to_vec();
            for (at, byte) in edits {
                let i = at.index(data.len());
                data[i] = byte;
            }
            data
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn uboot_round_trip(env in env(), flags in any::<u8>()) {
        let size = uboot::encoded_len(&env) + uboot::REDUNDANT_HEADER;
        let mut copy = vec![0u8; size];
        uboot::store_redundant(&env, &mut copy, flags).unwrap();
        let loaded = uboot::load_redundant([&copy, &vec![0; size]], uboot::FlagsMode::Incremental).unwrap();
        prop_assert_eq!(loaded.env, env.clone());
        prop_assert_eq!(loaded.flags, flags);
        // A single copy has one header byte less; the same buffer is a byte short for a
        // redundant one.
        let mut single = vec![0u8; size - 1];
        uboot::store_single(&env, &mut single).unwrap();
        prop_assert_eq!(uboot::load_single(&single).unwrap(), env.clone());
        prop_assert!(uboot::store_redundant(&env, &mut single, flags).is_err());
    }

    #[test]
    fn grub_round_trip(env in env()) {
        match grub::to_block(&env) {
            Ok(block) => prop_assert_eq!(grub::parse(&block).unwrap(), env),
            Err(_) => prop_assert!(grub::encoded_len(&env) > grub::BLOCK_SIZE),
        }
    }

    #[test]
    fn fuzz_entry_points_on_random_bytes(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        fuzzing::uboot_env(&data);
        fuzzing::grubenv(&data);
    }

    #[test]
    fn fuzz_entry_points_on_mutated_seeds(
        pair in mutated(include_bytes!("../../fuzz/corpus/uboot_env/fw_setenv-2x4k.bin")),
        block in mutated(include_bytes!("../../fuzz/corpus/grubenv/grubenv-rauc")),
    ) {
        fuzzing::uboot_env(&pair);
        fuzzing::uboot_env(&pair[..4096]);
        fuzzing::uboot_env(&pair[5..4096]);
        fuzzing::grubenv(&block);
        fuzzing::grubenv(&block[25..]);
    }
}
