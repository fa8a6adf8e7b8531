//! U-Boot environment codec tests.

use super::{env, pairs};
use crate::bootenv::uboot::{
    self, FLAG_ACTIVE, FLAG_OBSOLETE, FLAGS_OFFSET, FlagsMode, Layout, REDUNDANT_HEADER, choose,
    load_redundant, load_single, parse_data, store_redundant, store_single,
};
use crate::bootenv::{Env, EnvError, crc32};
use alloc::vec;
use alloc::vec::Vec;

/// `mkenvimage -r -s 0x1000` of `fixture.txt` (below): one redundant copy, flags 1, 0xff
/// padding, variables in input order.
const MKENVIMAGE_R_4K: &[u8] =
    include_bytes!("../../../../fuzz/corpus/uboot_env/mkenvimage-r-4k.bin");
/// `mkenvimage -s 0x800` of the same text: a single copy.
const MKENVIMAGE_2K: &[u8] = include_bytes!("../../../../fuzz/corpus/uboot_env/mkenvimage-2k.bin");
/// A 2 x 0x1000 file: `mkenvimage -r` output then zeros, after libubootenv's
/// `fw_setenv BOOT_A_LEFT 2` (copy 1, flags 2) and `fw_setenv BOOT_ORDER "B A"` (copy 0,
/// flags 3).
const FW_SETENV_2X4K: &[u8] =
    include_bytes!("../../../../fuzz/corpus/uboot_env/fw_setenv-2x4k.bin");

/// The text the fixtures were made from.
const FIXTURE_VARS: &[(&str, &str)] = &[
    ("BOOT_ORDER", "A B"),
    ("BOOT_A_LEFT", "3"),
    ("BOOT_B_LEFT", "3"),
    ("bootcmd", "run distro_bootcmd; echo fail"),
    ("bootargs", "console=ttyS0,115200 root=/dev/mmcblk0p2"),
    ("serial#", "0042"),
    (".flags", "serial#:so"),
];

#[test]
fn mkenvimage_redundant_copy() {
    assert_eq!(MKENVIMAGE_R_4K.len(), 0x1000);
    assert_eq!(uboot::check_copy(MKENVIMAGE_R_4K, Layout::Redundant), Ok(1));
    // Alone (the other copy blank), it is the current copy.
    let blank = [0u8; 0x1000];
    let loaded = load_redundant([MKENVIMAGE_R_4K, &blank], FlagsMode::Incremental).unwrap();
    assert_eq!(loaded.current, 0);
    assert_eq!(loaded.flags, 1);
    assert_eq!(loaded.valid, [true, false]);
    assert_eq!(loaded.env, env(FIXTURE_VARS));
    let loaded = load_redundant([&blank, MKENVIMAGE_R_4K], FlagsMode::Incremental).unwrap();
    assert_eq!((loaded.current, loaded.valid), (1, [false, true]));
    // .flags is an ordinary variable to the codec: kept, and written back.
    let mut out = vec![0u8; 0x1000];
    store_redundant(&loaded.env, &mut out, 2).unwrap();
    let again = load_redundant([&out, MKENVIMAGE_R_4K], FlagsMode::Incremental).unwrap();
    assert_eq!(again.current, 0);
    assert_eq!(again.env.get(".flags"), Some(&b"serial#:so"[..]));
}

#[test]
fn mkenvimage_single_copy() {
    assert_eq!(load_single(MKENVIMAGE_2K), Ok(env(FIXTURE_VARS)));
    // Read with the wrong layout, the CRC does not match.
    assert!(matches!(
        uboot::check_copy(MKENVIMAGE_2K, Layout::Redundant),
        Err(EnvError::CrcMismatch { .. })
    ));
}

#[test]
fn fw_setenv_pair() {
    let (a, b) = FW_SETENV_2X4K.split_at(0x1000);
    let loaded = load_redundant([a, b], FlagsMode::Incremental).unwrap();
    assert_eq!(
        (loaded.current, loaded.flags, loaded.valid),
        (0, 3, [true, true])
    );
    let mut expected = env(FIXTURE_VARS);
    expected.set("BOOT_A_LEFT", "2").unwrap();
    expected.set("BOOT_ORDER", "B A").unwrap();
    assert_eq!(loaded.env, expected);
    // The older copy holds the environment before the last fw_setenv.
    let older = load_redundant([b, b], FlagsMode::Incremental).unwrap();
    assert_eq!(older.flags, 2);
    assert_eq!(older.env.get("BOOT_ORDER"), Some(&b"A B"[..]));
    assert_eq!(older.env.get("BOOT_A_LEFT"), Some(&b"2"[..]));
}

/// The CRC the spec verified for `mkenvimage -r -s 0x4000` of three RAUC variables.
#[test]
fn spec_golden_crc() {
    let mut copy = vec![0xffu8; 0x4000];
    let text = b"BOOT_ORDER=A B\0BOOT_A_LEFT=3\0BOOT_B_LEFT=3\0\0";
    copy[REDUNDANT_HEADER..REDUNDANT_HEADER + text.len()].copy_from_slice(text);
    assert_eq!(crc32(&copy[REDUNDANT_HEADER..]), 0x7a6f_3d0d);
    copy[..4].copy_from_slice(&0x7a6f_3d0du32.to_le_bytes());
    copy[FLAGS_OFFSET] = 1;
    let loaded = load_redundant([&copy, &copy], FlagsMode::Incremental).unwrap();
    assert_eq!(
        pairs(&loaded.env),
        [
            ("BOOT_A_LEFT", "3"),
            ("BOOT_B_LEFT", "3"),
            ("BOOT_ORDER", "A B")
        ]
    );
}

#[test]
fn store_is_sorted_zero_padded_and_round_trips() {
    let env = env(&[("b", "2"), ("a", "x=y z"), (".flags", "a:sa"), ("e", "")]);
    let mut out = [0xaau8; 64];
    store_redundant(&env, &mut out, 7).unwrap();
    let data = b".flags=a:sa\0a=x=y z\0b=2\0e=\0\0";
    assert_eq!(&out[REDUNDANT_HEADER..REDUNDANT_HEADER + data.len()], data);
    assert!(out[REDUNDANT_HEADER + data.len()..].iter().all(|&b| b == 0));
    assert_eq!(out[FLAGS_OFFSET], 7);
    assert_eq!(
        u32::from_le_bytes(out[..4].try_into().unwrap()),
        crc32(&out[REDUNDANT_HEADER..])
    );
    assert_eq!(
        load_redundant([&out, &out], FlagsMode::Incremental)
            .unwrap()
            .env,
        env
    );
    let mut single = [0u8; 40];
    store_single(&env, &mut single).unwrap();
    assert_eq!(load_single(&single), Ok(env.clone()));
    // Exactly full: the entries and the final NUL fill the data area.
    let mut exact = vec![0u8; 4 + uboot::encoded_len(&env)];
    store_single(&env, &mut exact).unwrap();
    assert_eq!(load_single(&exact), Ok(env.clone()));
    // One byte less does not fit.
    exact.pop();
    assert_eq!(
        store_single(&env, &mut exact),
        Err(EnvError::TooLarge {
            needed: exact.len() + 1,
            capacity: exact.len()
        })
    );
    assert_eq!(
        store_redundant(&Env::new(), &mut [0u8; 5], 1),
        Err(EnvError::CopyTooSmall { size: 5, min: 6 })
    );
}

#[test]
fn parse_errors_are_specific() {
    assert_eq!(
        parse_data(b"a=1\0bc\0\0"),
        Err(EnvError::MissingSeparator { offset: 4 })
    );
    assert_eq!(
        parse_data(b"a=1\0=x\0\0"),
        Err(EnvError::BadName { offset: 4 })
    );
    assert_eq!(
        parse_data(b"a=1\0#c=x\0\0"),
        Err(EnvError::BadName { offset: 4 })
    );
    assert_eq!(
        parse_data(b"a=1\0 c=x\0"),
        Err(EnvError::BadName { offset: 4 })
    );
    assert_eq!(
        parse_data(b"a=1\0b=2"),
        Err(EnvError::Unterminated { offset: 4 })
    );
    // No room for the terminator after the last entry: the end of the area ends the list.
    assert_eq!(parse_data(b"a=1\0"), Ok(env(&[("a", "1")])));
    // Later definitions win; anything after the empty entry is padding.
    assert_eq!(parse_data(b"a=1\0a=2\0\0garbage"), Ok(env(&[("a", "2")])));
    assert_eq!(parse_data(b""), Ok(Env::new()));
    // Offsets in copies count from the start of the copy.
    let mut copy = [0u8; 16];
    copy[4..9].copy_from_slice(b"x=1\0y");
    let crc = crc32(&copy[4..]);
    copy[..4].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        load_single(&copy),
        Err(EnvError::MissingSeparator { offset: 8 })
    );
    copy[0] ^= 1;
    assert!(matches!(
        load_single(&copy),
        Err(EnvError::CrcMismatch { .. })
    ));
    assert_eq!(
        load_single(&[0; 4]),
        Err(EnvError::CopyTooSmall { size: 4, min: 5 })
    );
    assert_eq!(
        load_redundant([&[0; 8], &[0; 9]], FlagsMode::Incremental),
        Err(EnvError::CopySizeMismatch {
            first: 8,
            second: 9
        })
    );
    assert_eq!(
        load_redundant([&[0; 8], &[0; 8]], FlagsMode::Incremental),
        Err(EnvError::NoValidCopy)
    );
}

#[test]
fn choose_incremental() {
    let m = FlagsMode::Incremental;
    assert_eq!(choose([None, None], m), None);
    assert_eq!(choose([Some(9), None], m), Some(0));
    assert_eq!(choose([None, Some(9)], m), Some(1));
    assert_eq!(choose([Some(1), Some(2)], m), Some(1));
    assert_eq!(choose([Some(2), Some(1)], m), Some(0));
    assert_eq!(choose([Some(5), Some(5)], m), Some(0));
    assert_eq!(choose([Some(255), Some(0)], m), Some(1));
    assert_eq!(choose([Some(0), Some(255)], m), Some(0));
    assert_eq!(choose([Some(254), Some(255)], m), Some(1));
    assert_eq!(choose([Some(0), Some(1)], m), Some(1));
}

#[test]
fn choose_boolean() {
    let m = FlagsMode::Boolean;
    assert_eq!(choose([Some(FLAG_ACTIVE), Some(FLAG_OBSOLETE)], m), Some(0));
    assert_eq!(choose([Some(FLAG_OBSOLETE), Some(FLAG_ACTIVE)], m), Some(1));
    assert_eq!(choose([Some(1), Some(1)], m), Some(0));
    assert_eq!(choose([Some(255), Some(255)], m), Some(0));
    assert_eq!(choose([Some(255), Some(1)], m), Some(0));
    assert_eq!(choose([Some(1), Some(255)], m), Some(1));
    assert_eq!(choose([Some(0), Some(255)], m), Some(1));
    assert_eq!(choose([None, Some(0)], m), Some(1));
}

/// Writes `next` the way the agent does: into the non-current copy, flags from `mode`.
fn write_next(copies: &mut [Vec<u8>; 2], next: &Env, mode: FlagsMode) -> usize {
    let loaded = load_redundant([&copies[0], &copies[1]], mode).unwrap();
    let target = 1 - loaded.current;
    store_redundant(next, &mut copies[target], mode.next(loaded.flags)).unwrap();
    target
}

/// Flags wrap from 255 to 0 and the newest copy stays current across the wrap.
#[test]
fn flags_wrap_around() {
    let size = 64;
    let mut copies = [vec![0u8; size], vec![0u8; size]];
    store_redundant(&env(&[("n", "0")]), &mut copies[0], 250).unwrap();
    let mut seen_wrap = false;
    for i in 1..600u32 {
        let next = env(&[("n", &alloc::format!("{i}"))]);
        let target = write_next(&mut copies, &next, FlagsMode::Incremental);
        let loaded = load_redundant([&copies[0], &copies[1]], FlagsMode::Incremental).unwrap();
        assert_eq!(loaded.current, target, "write {i}");
        assert_eq!(loaded.env, next, "write {i}");
        assert_eq!(loaded.flags, (250 + i) as u8);
        seen_wrap |= loaded.flags == 0;
    }
    assert!(seen_wrap);
}

/// For every length k of a write of the new copy that was cut short, whatever the rest of
/// the copy holds, the loader returns the old environment, unless the bytes on the medium
/// already equal the complete new copy. A corrupted byte anywhere also gives the old one.
#[test]
fn torn_write_matrix() {
    let size = 0x200;
    let older = env(&[("BOOT_ORDER", "A B"), ("BOOT_A_LEFT", "3"), ("v", "older")]);
    let old = env(&[("BOOT_ORDER", "B A"), ("BOOT_B_LEFT", "3"), ("v", "old")]);
    let new = env(&[
        ("BOOT_ORDER", "A"),
        ("BOOT_B_LEFT", "0"),
        ("v", "new value"),
    ]);
    let mut cases = 0;
    for (old_flags, current) in [(1u8, 0usize), (1, 1), (255, 0), (0, 1), (254, 1)] {
        let mut copies = [vec![0u8; size], vec![0u8; size]];
        store_redundant(&old, &mut copies[current], old_flags).unwrap();
        store_redundant(&older, &mut copies[1 - current], old_flags.wrapping_sub(1)).unwrap();
        let loaded = load_redundant([&copies[0], &copies[1]], FlagsMode::Incremental).unwrap();
        assert_eq!((loaded.current, &loaded.env), (current, &old));
        let target = 1 - current;
        let mut written = vec![0u8; size];
        store_redundant(&new, &mut written, old_flags.wrapping_add(1)).unwrap();
        let before = copies[target].clone();
        for k in 0..=size {
            // What follows the written prefix: the copy's previous bytes, zeros or 0xff.
            for fill in [None, Some(0u8), Some(0xff)] {
                let mut torn = written[..k].to_vec();
                match fill {
                    None => torn.extend_from_slice(&before[k..]),
                    Some(byte) => torn.resize(size, byte),
                }
                let mut media = copies.clone();
                media[target] = torn;
                let loaded = load_redundant([&media[0], &media[1]], FlagsMode::Incremental)
                    .unwrap_or_else(|e| panic!("k={k}: {e}"));
                if media[target] == written {
                    assert_eq!((loaded.current, &loaded.env), (target, &new), "k={k}");
                } else {
                    assert_eq!((loaded.current, &loaded.env), (current, &old), "k={k}");
                }
                cases += 1;
            }
            if k < size {
                let mut media = copies.clone();
                media[target] = written.clone();
                media[target][k] ^= 0x20;
                let loaded =
                    load_redundant([&media[0], &media[1]], FlagsMode::Incremental).unwrap();
                let expected = if k == FLAGS_OFFSET {
                    // The flags byte is outside the CRC: a corrupted one still names a valid
                    // copy, whose environment is one of the two complete ones.
                    if loaded.current == target { &new } else { &old }
                } else {
                    &old
                };
                assert_eq!(&loaded.env, expected, "corrupt byte {k}");
                cases += 1;
            }
        }
    }
    assert!(cases > 10_000);
}

/// NOR boolean flags: write the new copy active, then mark the old obsolete. Between the two
/// steps both copies are active and copy 0 wins, so the loader sees one complete environment
/// at every point; a torn new copy leaves the old one.
#[test]
fn nor_boolean_mode() {
    let size = 128;
    let mode = FlagsMode::Boolean;
    let mut copies = [vec![0xffu8; size], vec![0xffu8; size]];
    store_redundant(&env(&[("n", "0")]), &mut copies[0], FLAG_ACTIVE).unwrap();
    for i in 1..6u32 {
        let prev = load_redundant([&copies[0], &copies[1]], mode).unwrap();
        let next = env(&[("n", &alloc::format!("{i}"))]);
        let target = 1 - prev.current;
        let mut written = vec![0u8; size];
        store_redundant(&next, &mut written, mode.next(prev.flags)).unwrap();
        assert_eq!(written[FLAGS_OFFSET], FLAG_ACTIVE);
        // Torn after the header (CRC and flags, not the data): the old copy stays.
        let mut torn = copies.clone();
        torn[target][..REDUNDANT_HEADER].copy_from_slice(&written[..REDUNDANT_HEADER]);
        let loaded = load_redundant([&torn[0], &torn[1]], mode).unwrap();
        assert_eq!(loaded.env, prev.env);
        // Step 1 done: both active, copy 0 wins.
        copies[target] = written;
        let loaded = load_redundant([&copies[0], &copies[1]], mode).unwrap();
        assert_eq!(loaded.current, 0);
        assert!(loaded.env == prev.env || loaded.env == next);
        // Step 2: the old copy obsolete (its CRC stays valid: the flags are outside it).
        copies[prev.current][FLAGS_OFFSET] = FLAG_OBSOLETE;
        let loaded = load_redundant([&copies[0], &copies[1]], mode).unwrap();
        assert_eq!((loaded.current, loaded.valid), (target, [true, true]));
        assert_eq!(loaded.env, next);
    }
}
