//! Encoder and decoder together: casync's worked example, a round trip over every node type
//! and record, and one test per error.

use super::format::*;
use super::*;
use crate::flags::*;
use crate::fuzzing::decode_catar;
use alloc::vec;
use alloc::vec::Vec;
use core::convert::Infallible;

/// `CA_FORMAT_DEFAULT`, what `casync make` uses.
pub(super) const DEFAULT: u64 = 0xb0000001ffeffe26;
const MTIME: u64 = 1_577_934_245_123_456_789;

pub(super) fn meta(mode: u32) -> Metadata {
    Metadata {
        entry: Entry {
            mode,
            mtime: MTIME,
            ..Entry::default()
        },
        ..Metadata::default()
    }
}

fn events(bytes: &[u8]) -> Vec<Event<Vec<u8>>> {
    let (events, end) = decode_catar(bytes, &[]);
    end.unwrap();
    events
}

pub(super) fn decode_error(bytes: &[u8]) -> DecodeError {
    decode_catar(bytes, &[]).1.unwrap_err()
}

pub(super) fn worked_example() -> Vec<u8> {
    let mut enc = Encoder::new(Vec::new(), DEFAULT, &meta(S_IFDIR | 0o755)).unwrap();
    enc.file(b"hello.txt", &meta(S_IFREG | 0o644), 6).unwrap();
    enc.payload(b"hel").unwrap();
    enc.payload(b"lo\n").unwrap();
    assert!(
        enc.symlink(b"l", &meta(S_IFLNK | 0o777), b"hello.txt")
            .unwrap()
    );
    enc.finish().unwrap()
}

#[test]
fn worked_example_is_byte_identical() {
    let bytes = worked_example();
    assert_eq!(bytes.len(), 372);
    let digest = crate::DigestAlgorithm::Sha512_256.digest(&bytes);
    assert_eq!(
        alloc::format!("{digest}"),
        "679adad85ec0896a26c5573d5c58f28c5793db06474a75441ef7533156c3f3d1"
    );
    // Goodbye at 284: `l` first (smaller hash), then `hello.txt`, then the tail.
    assert_eq!(le64(&bytes, 284 + 16), 108);
    assert_eq!(le64(&bytes, 284 + 24), 108);
    assert_eq!(le64(&bytes, 284 + 32), 0xa1a7aeca9969d80a);
    assert_eq!(le64(&bytes, 284 + 40), 220);
    assert_eq!(le64(&bytes, 372 - 24), 284);
}

#[test]
fn worked_example_decodes() {
    let bytes = worked_example();
    let entry = |mode| {
        Event::Entry(Entry {
            mode,
            mtime: MTIME,
            ..Entry::default()
        })
    };
    assert_eq!(
        events(&bytes),
        vec![
            entry(S_IFDIR | 0o755),
            Event::Filename(b"hello.txt".to_vec()),
            entry(S_IFREG | 0o644),
            Event::Payload { size: 6 },
            Event::PayloadData(b"hello\n".to_vec()),
            Event::Filename(b"l".to_vec()),
            entry(S_IFLNK | 0o777),
            Event::Symlink(b"hello.txt".to_vec()),
            Event::EndDirectory,
            Event::EndArchive,
        ]
    );
    // Every split gives the same events; every strict prefix is truncated there.
    for cut in 0..bytes.len() {
        assert_eq!(decode_catar(&bytes, &[cut]), decode_catar(&bytes, &[]));
        let e = decode_error(&bytes[..cut]);
        assert_eq!((e.offset, e.kind), (cut as u64, DecodeErrorKind::Truncated));
    }
}

/// Every node type and every record kind, with all WITH bits on.
fn full_tree() -> (Vec<u8>, Vec<Event<Vec<u8>>>) {
    let flags = normalize(0x1_ffff_ffff | SHA512_256);
    let named = |id, name: &[u8], permissions| AclEntry {
        id,
        name: Some(name.to_vec()),
        permissions,
    };
    let mut root = meta(S_IFDIR | 0o750);
    root.entry.flags = WITH_FLAG_NOATIME | WITH_SUBVOLUME;
    root.quota_projid = 7;
    root.acl.default = Some(AclDefault {
        user_obj: 7,
        group_obj: 5,
        other: 0,
        mask: Some(5),
    });
    root.acl.default_users = vec![named(1000, b"alice", 5)];
    root.acl.default_groups = vec![AclEntry {
        id: 0,
        name: None,
        permissions: 4,
    }];
    let mut file = meta(S_IFREG | 0o4755);
    file.entry.uid = 1000;
    file.entry.gid = 100;
    file.entry.flags = WITH_FLAG_IMMUTABLE | WITH_SUBVOLUME; // subvolume is for directories only
    file.user = Some(b"alice".to_vec());
    file.group = Some(b"users".to_vec());
    // Given unsorted and with a namespace casync does not store.
    file.xattrs = vec![
        (b"user.b".to_vec(), b"2".to_vec()),
        (b"security.x".to_vec(), b"no".to_vec()),
        (b"trusted.a".to_vec(), vec![0, 1]),
    ];
    file.acl.users = vec![named(1001, b"bob", 6), named(1000, b"alice", 7)];
    file.acl.groups = vec![named(100, b"users", 4)];
    file.acl.group_obj = Some(5);
    file.selinux = Some(b"system_u:object_r:etc_t:s0".to_vec());
    file.fcaps = Some(vec![1, 2, 3]);
    let mut link = meta(S_IFLNK | 0o777);
    link.xattrs = vec![(b"user.dropped".to_vec(), vec![])];
    let mut enc = Encoder::new(Vec::new(), flags, &root).unwrap();
    enc.device(b"blk", &meta(S_IFBLK | 0o600), 7, 1).unwrap();
    enc.device(b"chr", &meta(S_IFCHR | 0o666), 1, 3).unwrap();
    enc.directory(b"dir", &meta(S_IFDIR | 0o700)).unwrap();
    enc.special(b"fifo", &meta(S_IFIFO | 0o644)).unwrap();
    enc.file(b"file", &file, 100_000).unwrap();
    for chunk in [0u8; 100_000].chunks(7000) {
        enc.payload(chunk).unwrap();
    }
    enc.end_directory().unwrap();
    enc.file(b"empty", &meta(S_IFREG | 0o600), 0).unwrap();
    enc.symlink(b"link", &link, b"dir/file").unwrap();
    enc.special(b"sock", &meta(S_IFSOCK | 0o755)).unwrap();
    let bytes = enc.finish().unwrap();

    let entry = |mode, uid, gid, flags| {
        Event::Entry(Entry {
            mode,
            flags,
            uid,
            gid,
            mtime: MTIME,
        })
    };
    let owned = |id, name: &[u8], permissions| AclEntry {
        id,
        name: Some(name.to_vec()),
        permissions,
    };
    let name = |n: &[u8]| Event::Filename(n.to_vec());
    let expected = vec![
        entry(S_IFDIR | 0o750, 0, 0, WITH_FLAG_NOATIME | WITH_SUBVOLUME),
        Event::AclDefault(AclDefault {
            user_obj: 7,
            group_obj: 5,
            other: 0,
            mask: Some(5),
        }),
        Event::AclDefaultUser(owned(1000, b"alice", 5)),
        Event::AclDefaultGroup(AclEntry {
            id: 0,
            name: None,
            permissions: 4,
        }),
        Event::QuotaProjid(7),
        name(b"blk"),
        entry(S_IFBLK | 0o600, 0, 0, 0),
        Event::Device { major: 7, minor: 1 },
        name(b"chr"),
        entry(S_IFCHR | 0o666, 0, 0, 0),
        Event::Device { major: 1, minor: 3 },
        name(b"dir"),
        entry(S_IFDIR | 0o700, 0, 0, 0),
        name(b"fifo"),
        entry(S_IFIFO | 0o644, 0, 0, 0),
        name(b"file"),
        entry(S_IFREG | 0o4755, 1000, 100, WITH_FLAG_IMMUTABLE),
        Event::User(b"alice".to_vec()),
        Event::Group(b"users".to_vec()),
        Event::Xattr {
            name: b"trusted.a".to_vec(),
            value: vec![0, 1],
        },
        Event::Xattr {
            name: b"user.b".to_vec(),
            value: b"2".to_vec(),
        },
        Event::AclUser(owned(1000, b"alice", 7)),
        Event::AclUser(owned(1001, b"bob", 6)),
        Event::AclGroup(owned(100, b"users", 4)),
        Event::AclGroupObj(5),
        Event::Selinux(b"system_u:object_r:etc_t:s0".to_vec()),
        Event::Fcaps(vec![1, 2, 3]),
        Event::Payload { size: 100_000 },
        Event::PayloadData(vec![0; 100_000]),
        Event::EndDirectory,
        name(b"empty"),
        entry(S_IFREG | 0o600, 0, 0, 0),
        Event::Payload { size: 0 },
        name(b"link"),
        entry(S_IFLNK | 0o777, 0, 0, 0),
        Event::Symlink(b"dir/file".to_vec()),
        name(b"sock"),
        entry(S_IFSOCK | 0o755, 0, 0, 0),
        Event::EndDirectory,
        Event::EndArchive,
    ];
    (bytes, expected)
}

#[test]
fn round_trip_every_record() {
    let (bytes, expected) = full_tree();
    assert_eq!(events(&bytes), expected);
    let total = bytes.len() as u64;
    assert_eq!(
        le64(&bytes, bytes.len() - 24) + le64(&bytes, bytes.len() - 16),
        total
    );
    for cut in (0..bytes.len()).step_by(97) {
        assert_eq!(decode_catar(&bytes, &[cut]).0, expected, "cut at {cut}");
    }
    let mut trailing = bytes.clone();
    trailing.extend_from_slice(b"junk");
    let (mut got, end) = decode_catar(&trailing, &[bytes.len() + 1]);
    assert_eq!((got.pop(), end), (Some(Event::TrailingData), Ok(())));
    assert_eq!(got, expected);
}

#[test]
fn decoder_reports_offsets_and_flags() {
    let bytes = worked_example();
    let mut dec = Decoder::new();
    let mut seen = Vec::new();
    let mut at = 0;
    while let (n, Some(event)) = dec.next(&bytes[at..]).unwrap() {
        at += n;
        if matches!(event, Event::Entry(_)) {
            seen.push(dec.event_offset());
        }
    }
    assert_eq!(seen, [0, 90, 194]);
    assert_eq!(dec.feature_flags(), Some(DEFAULT));
    assert_eq!(dec.position(), 372);
    dec.finish().unwrap();
}

#[test]
fn normalization_follows_flags() {
    let mut file = meta(S_IFREG | 0o4750);
    file.entry.uid = 1000;
    file.entry.gid = 1000;
    file.user = Some(b"alice".to_vec());
    file.xattrs = vec![(b"user.a".to_vec(), vec![])];
    file.entry.flags = WITH_FLAG_NOATIME;
    let stored_as = |flags: u64, file: &Metadata| {
        let mut enc = Encoder::new(Vec::new(), flags, &meta(S_IFDIR | 0o700)).unwrap();
        enc.file(b"f", file, 0).unwrap();
        events(&enc.finish().unwrap())[2..4].to_vec()
    };
    let stored = |flags| stored_as(flags, &file);
    let entry = |mode, id, mtime, flags| {
        Event::Entry(Entry {
            mode,
            flags,
            uid: id,
            gid: id,
            mtime,
        })
    };
    let none = 0xb000000000000000;
    assert_eq!(stored(none)[0], entry(S_IFREG | 0o666, 0, 0, 0));
    assert_eq!(
        stored(0xb000000000001f09)[0],
        entry(S_IFREG | 0o4750, 1000, 1_577_934_245_000_000_000, 0)
    );
    assert_eq!(
        stored(none | WITH_READ_ONLY | WITH_2SEC_TIME)[0],
        entry(S_IFREG | 0o666, 0, 1_577_934_244_000_000_000, 0)
    );
    assert_eq!(
        stored(none | WITH_FLAG_NOATIME | WITH_USEC_TIME | WITH_XATTRS),
        [
            entry(
                S_IFREG | 0o666,
                0,
                1_577_934_245_123_456_000,
                WITH_FLAG_NOATIME
            ),
            Event::Xattr {
                name: b"user.a".to_vec(),
                value: vec![]
            }
        ]
    );
    file.entry.mode = S_IFREG | 0o440;
    assert_eq!(
        stored_as(none | WITH_READ_ONLY, &file)[0],
        entry(S_IFREG | 0o444, 0, 0, 0)
    );
}

fn encode_error<T: core::fmt::Debug>(r: Result<T, EncodeError<Infallible>>) -> EncodeErrorKind {
    match r.unwrap_err() {
        EncodeError::Format(kind) => kind,
        EncodeError::Sink(never) => match never {},
    }
}

#[test]
fn encoder_refuses_bad_input() {
    use EncodeErrorKind::*;
    let root = meta(S_IFDIR | 0o755);
    let new = |flags| Encoder::new(Vec::new(), flags, &root);
    assert_eq!(encode_error(new(1 << 40)), UnknownFeatureFlags(1 << 40));
    assert_eq!(encode_error(new(WITH_ACL)), FlagsNotNormalized(WITH_ACL));
    let mut enc = new(DEFAULT).unwrap();
    let file = meta(S_IFREG | 0o644);
    assert_eq!(encode_error(enc.file(b"a/b", &file, 0)), BadFilename);
    assert_eq!(encode_error(enc.file(b"..", &file, 0)), BadFilename);
    assert_eq!(
        encode_error(enc.file(b"x", &meta(S_IFDIR), 0)),
        WrongFileType(S_IFDIR)
    );
    assert_eq!(
        encode_error(enc.special(b"x", &file)),
        WrongFileType(S_IFREG | 0o644)
    );
    let mut bad = file.clone();
    bad.entry.uid = 65535;
    assert_eq!(encode_error(enc.file(b"x", &bad, 0)), InvalidId(65535));
    bad.entry.uid = 1;
    bad.user = Some(b"1x".to_vec());
    assert_eq!(encode_error(enc.file(b"x", &bad, 0)), BadUserName);
    enc.file(b"m", &file, 2).unwrap();
    assert_eq!(
        encode_error(enc.file(b"n", &file, 0)),
        PayloadMismatch { missing: 2 }
    );
    assert_eq!(
        encode_error(enc.payload(b"abc")),
        PayloadMismatch { missing: 0 }
    );
    enc.payload(b"ab").unwrap();
    assert_eq!(encode_error(enc.file(b"m", &file, 0)), NotSorted);
    assert_eq!(encode_error(enc.file(b"a", &file, 0)), NotSorted);
    let mut xattrs = file.clone();
    xattrs.xattrs = vec![(b"user.a".to_vec(), vec![]), (b"user.a".to_vec(), vec![1])];
    assert_eq!(encode_error(enc.file(b"x", &xattrs, 0)), DuplicateXattr);
    let mut acl = file.clone();
    acl.acl.users = vec![AclEntry {
        id: 5,
        name: None,
        permissions: 8,
    }];
    acl.acl.group_obj = Some(7);
    assert_eq!(encode_error(enc.file(b"x", &acl, 0)), BadAclPermissions(8));
    acl.acl.group_obj = None;
    assert_eq!(encode_error(enc.file(b"x", &acl, 0)), MissingAclMask);
    assert_eq!(
        encode_error(enc.symlink(b"x", &meta(S_IFLNK), b"a\0b")),
        BadString
    );
    let dev = meta(S_IFCHR);
    assert_eq!(
        encode_error(enc.device(b"x", &dev, 4096, 0)),
        BadDevice {
            major: 4096,
            minor: 0
        }
    );
    enc.end_directory().unwrap();
    assert_eq!(encode_error(enc.end_directory()), Finished);
    assert_eq!(encode_error(enc.file(b"z", &file, 0)), Finished);

    let mut unix = new(0xb000000000001f09).unwrap();
    let mut big = file.clone();
    big.entry.gid = 70000;
    assert_eq!(encode_error(unix.file(b"x", &big, 0)), IdTooLarge(70000));
    let names_only = new(0xb000000000000004).unwrap_err();
    assert_eq!(names_only, EncodeError::Format(MissingName));
}

#[test]
fn encoder_depth_limit_matches_casync() {
    let dir = meta(S_IFDIR | 0o755);
    let mut enc = Encoder::new(Vec::new(), DEFAULT, &dir).unwrap();
    for _ in 0..MAX_DEPTH {
        enc.directory(b"d", &dir).unwrap();
    }
    let file = meta(S_IFREG | 0o644);
    assert_eq!(
        encode_error(enc.file(b"f", &file, 0)),
        EncodeErrorKind::TooDeep
    );
    let bytes = enc.finish().unwrap();
    assert_eq!(events(&bytes).len(), 2 * 64 + 63 + 1);
}

#[test]
fn skipped_types_write_nothing() {
    let mut enc = Encoder::new(Vec::new(), 0xb000000000000000, &meta(S_IFDIR)).unwrap();
    let before = enc.position();
    assert!(!enc.symlink(b"l", &meta(S_IFLNK), b"t").unwrap());
    assert!(!enc.device(b"b", &meta(S_IFBLK), 1, 1).unwrap());
    assert!(!enc.special(b"f", &meta(S_IFIFO)).unwrap());
    assert_eq!(enc.position(), before);
}
