//! One test per decoder error: corrupted encoder output and hand-assembled records.

use super::format::*;
use super::tests::{DEFAULT, decode_error, worked_example};
use super::*;
use crate::flags::*;
use alloc::vec::Vec;
use core::convert::Infallible;

/// Patches the u64 at `at`.
fn patched(bytes: &[u8], at: usize, value: u64) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at..at + 8].copy_from_slice(&value.to_le_bytes());
    b
}

#[test]
fn each_corruption_has_its_error() {
    use DecodeErrorKind::*;
    let good = worked_example();
    let kind = |bytes: &[u8]| {
        let e = decode_error(bytes);
        (e.offset, e.kind)
    };
    assert_eq!(kind(&patched(&good, 8, 1)), (0, UnknownRecord(1)));
    assert_eq!(
        kind(&patched(&good, 8, CA_FORMAT_GOODBYE)),
        (0, UnexpectedRecord(CA_FORMAT_GOODBYE))
    );
    assert_eq!(
        kind(&patched(&good, 0, 15)),
        (
            0,
            BadRecordSize {
                kind: CA_FORMAT_ENTRY,
                size: 15
            }
        )
    );
    assert_eq!(
        kind(&patched(&good, 16, 1 << 40)),
        (0, UnknownFeatureFlags(1 << 40))
    );
    assert_eq!(
        kind(&patched(&good, 16, WITH_ACL)),
        (0, FlagsNotNormalized(WITH_ACL))
    );
    assert_eq!(
        kind(&patched(&good, 24, u64::from(S_IFREG | 0o644))),
        (0, RootNotDirectory)
    );
    assert_eq!(kind(&patched(&good, 24, 0o7755)), (0, BadMode(0o7755)));
    assert_eq!(
        kind(&patched(&good, 32, WITH_FLAG_NODUMP)),
        (0, BadEntryFlags(WITH_FLAG_NODUMP))
    );
    assert_eq!(kind(&patched(&good, 40, 65535)), (0, BadUid(65535)));
    assert_eq!(
        kind(&patched(&good, 48, u64::from(u32::MAX))),
        (0, BadGid(u64::from(u32::MAX)))
    );
    assert_eq!(kind(&patched(&good, 56, u64::MAX)), (0, BadMtime(u64::MAX)));
    let flags_at_90 = 90 + 16;
    assert_eq!(
        kind(&patched(&good, flags_at_90, DEFAULT | EXCLUDE_SUBMOUNTS)),
        (
            90,
            FeatureFlagsMismatch {
                expected: DEFAULT,
                found: DEFAULT | EXCLUDE_SUBMOUNTS
            }
        )
    );
    let mut dot = good.clone();
    dot[80..89].copy_from_slice(b"..\0\0\0\0\0\0\0");
    assert_eq!(kind(&dot), (64, BadFilename));
    // A symlink where the PAYLOAD is.
    assert_eq!(
        kind(&patched(&good, 154 + 8, CA_FORMAT_SYMLINK)),
        (154, UnexpectedRecord(CA_FORMAT_SYMLINK))
    );
    // A FILENAME far larger than allowed is refused on its header.
    let huge = patched(&good, 64, 1 << 40);
    let mut dec = Decoder::new();
    assert_eq!(dec.next(&huge).unwrap().0, 64);
    let e = dec.next(&huge[64..80]).unwrap_err();
    assert_eq!(
        (e.offset, e.kind),
        (
            64,
            BadRecordSize {
                kind: CA_FORMAT_FILENAME,
                size: 1 << 40
            }
        )
    );
    assert_eq!(dec.next(&huge[80..]).unwrap_err(), e);
    assert_eq!(dec.finish().unwrap_err(), e);
    assert_eq!(
        kind(&patched(&good, 284, 64)),
        (
            284,
            BadGoodbyeSize {
                size: 64,
                expected: 88
            }
        )
    );
    assert_eq!(
        kind(&patched(&good, 300, 285)),
        (
            300,
            BadGoodbyeItem {
                offset: 285,
                size: 108
            }
        )
    );
    assert_eq!(
        kind(&patched(&good, 300, 100)),
        (
            300,
            BadGoodbyeItem {
                offset: 100,
                size: 108
            }
        )
    );
    assert_eq!(kind(&patched(&good, 348, 283)), (348, BadGoodbyeTail));
    assert_eq!(kind(&patched(&good, 356, 87)), (348, BadGoodbyeTail));
    assert_eq!(kind(&patched(&good, 364, 1)), (348, BadGoodbyeTail));
}

/// Appends a raw record.
fn record(out: &mut Vec<u8>, kind: u64, fixed: &[u64], bytes: &[u8]) {
    put64(
        out,
        &[16 + 8 * fixed.len() as u64 + bytes.len() as u64, kind],
    );
    put64(out, fixed);
    out.extend_from_slice(bytes);
}

fn entry_record(out: &mut Vec<u8>, flags: u64, mode: u32) {
    record(out, CA_FORMAT_ENTRY, &[flags, mode.into(), 0, 0, 0, 0], &[]);
}

#[test]
fn grammar_errors() {
    use DecodeErrorKind::*;
    let all = normalize(0x1_ffff_ffff | SHA512_256);
    let node = |records: &dyn Fn(&mut Vec<u8>)| {
        let mut b = Vec::new();
        entry_record(&mut b, all, S_IFDIR | 0o755);
        record(&mut b, CA_FORMAT_FILENAME, &[], b"x\0");
        records(&mut b);
        decode_error(&b).kind
    };
    let file = |b: &mut Vec<u8>| entry_record(b, all, S_IFREG | 0o644);
    let link = |b: &mut Vec<u8>| entry_record(b, all, S_IFLNK | 0o777);
    assert_eq!(
        node(&|b| {
            file(b);
            record(b, CA_FORMAT_XATTR, &[], b"user.b\0");
            record(b, CA_FORMAT_XATTR, &[], b"user.a\0")
        }),
        NotSorted(CA_FORMAT_XATTR)
    );
    assert_eq!(
        node(&|b| {
            file(b);
            record(b, CA_FORMAT_XATTR, &[], b".ab\0")
        }),
        BadXattrName
    );
    assert_eq!(
        node(&|b| {
            file(b);
            record(b, CA_FORMAT_GROUP, &[], b"g\0");
            record(b, CA_FORMAT_USER, &[], b"u\0")
        }),
        UnexpectedRecord(CA_FORMAT_USER)
    );
    assert_eq!(
        node(&|b| {
            file(b);
            record(b, CA_FORMAT_USER, &[], b"root\0")
        }),
        BadUserName
    );
    assert_eq!(
        node(&|b| {
            link(b);
            record(b, CA_FORMAT_XATTR, &[], b"user.a\0")
        }),
        NotAllowedForFileType(CA_FORMAT_XATTR)
    );
    assert_eq!(
        node(&|b| {
            file(b);
            record(b, CA_FORMAT_ACL_DEFAULT, &[7, 7, 7, 7], &[])
        }),
        NotAllowedForFileType(CA_FORMAT_ACL_DEFAULT)
    );
    assert_eq!(
        node(&|b| {
            file(b);
            record(b, CA_FORMAT_ACL_USER, &[1, 7], &[]);
            record(b, CA_FORMAT_PAYLOAD, &[], &[])
        }),
        MissingAclGroupObj
    );
    assert_eq!(
        node(&|b| {
            file(b);
            record(b, CA_FORMAT_ACL_USER, &[2, 7], &[]);
            record(b, CA_FORMAT_ACL_USER, &[1, 7], &[])
        }),
        NotSorted(CA_FORMAT_ACL_USER)
    );
    assert_eq!(
        node(&|b| {
            file(b);
            record(b, CA_FORMAT_ACL_GROUP_OBJ, &[9], &[])
        }),
        BadAclPermissions(9)
    );
    assert_eq!(
        node(&|b| {
            entry_record(b, all, S_IFDIR);
            record(b, CA_FORMAT_ACL_DEFAULT, &[7, 7, 7, u64::MAX], &[]);
            record(b, CA_FORMAT_ACL_DEFAULT_USER, &[1, 7], &[]);
            record(b, CA_FORMAT_GOODBYE, &[], &[])
        }),
        MissingAclDefaultMask
    );
    assert_eq!(
        node(&|b| {
            file(b);
            record(b, CA_FORMAT_QUOTA_PROJID, &[0], &[])
        }),
        BadQuotaProjid(0)
    );
    assert_eq!(
        node(&|b| {
            file(b);
            record(b, CA_FORMAT_SELINUX, &[], b"a\0b\0")
        }),
        BadSelinuxLabel
    );
    assert_eq!(
        node(&|b| {
            link(b);
            record(b, CA_FORMAT_SYMLINK, &[], b"tt")
        }),
        BadSymlinkTarget
    );
    assert_eq!(
        node(&|b| {
            entry_record(b, all, S_IFCHR);
            record(b, CA_FORMAT_DEVICE, &[1, 1 << 20], &[])
        }),
        BadDevice {
            major: 1,
            minor: 1 << 20
        }
    );
    assert_eq!(
        node(&|b| {
            file(b);
            record(b, CA_FORMAT_FILENAME, &[], b"y\0")
        }),
        UnexpectedRecord(CA_FORMAT_FILENAME)
    );
    // Names without user-names; a names-only archive needs USER and GROUP.
    let mut b = Vec::new();
    entry_record(&mut b, 0xb000000000001f09, S_IFDIR | 0o755);
    record(&mut b, CA_FORMAT_USER, &[], b"u\0");
    assert_eq!(decode_error(&b).kind, FeatureDisabled(CA_FORMAT_USER));
    let mut b = Vec::new();
    entry_record(&mut b, 0xb000000000000004, S_IFDIR | 0o777);
    record(
        &mut b,
        CA_FORMAT_GOODBYE,
        &[64, 40, CA_FORMAT_GOODBYE_TAIL_MARKER],
        &[],
    );
    assert_eq!(decode_error(&b).kind, MissingUserOrGroup);
}

#[test]
fn decoder_depth_limit_matches_casync() {
    let flags = 0xb000000000000000;
    let mut b = Vec::new();
    entry_record(&mut b, flags, S_IFDIR | 0o777);
    for _ in 0..MAX_DEPTH {
        record(&mut b, CA_FORMAT_FILENAME, &[], b"d\0");
        entry_record(&mut b, flags, S_IFDIR | 0o777);
    }
    assert_eq!(decode_error(&b).kind, DecodeErrorKind::Truncated);
    let at = b.len() as u64;
    record(&mut b, CA_FORMAT_FILENAME, &[], b"f\0");
    entry_record(&mut b, flags, S_IFREG | 0o666);
    let e = decode_error(&b);
    assert_eq!((e.offset, e.kind), (at + 18, DecodeErrorKind::TooDeep));
}

#[test]
fn errors_display_their_offset() {
    let e = decode_error(&worked_example()[..10]);
    assert_eq!(alloc::format!("{e}"), "at byte 10: archive is truncated");
    let e = decode_error(&patched(&worked_example(), 8, CA_FORMAT_PAYLOAD));
    assert_eq!(
        alloc::format!("{e}"),
        "at byte 0: unexpected PAYLOAD record"
    );
    let e: EncodeError<Infallible> = EncodeErrorKind::NotSorted.into();
    assert_eq!(
        alloc::format!("{e}"),
        "cannot encode: children are not sorted by name"
    );
}
