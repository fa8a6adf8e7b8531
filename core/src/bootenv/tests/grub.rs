//! grubenv codec tests.

use super::{env, pairs};
use crate::bootenv::grub::{BLOCK_SIZE, SIGNATURE, encoded_len, parse, store, to_block};
use crate::bootenv::{Env, EnvError};
use alloc::vec::Vec;

/// `grub-editenv FILE create` (Debian 2.06: signature, a `# WARNING` line, `#` padding).
const CREATED: &[u8] = include_bytes!("../../../../fuzz/corpus/grubenv/grubenv-created");
/// `CREATED` after `grub-editenv FILE set ORDER="B A" A_OK=1 A_TRY=0 B_OK=1 B_TRY=1
/// WEIRD=<a\b LF c\> saved_entry=gnulinux-advanced>gnulinux-6.1`.
const RAUC: &[u8] = include_bytes!("../../../../fuzz/corpus/grubenv/grubenv-rauc");

/// A block: the signature, `body`, `#` padding.
fn block(body: &[u8]) -> Vec<u8> {
    let mut block = SIGNATURE.to_vec();
    block.extend_from_slice(body);
    block.resize(BLOCK_SIZE, b'#');
    block
}

#[test]
fn grub_editenv_fixtures() {
    assert_eq!(CREATED.len(), BLOCK_SIZE);
    assert_eq!(parse(CREATED), Ok(Env::new()));
    let env = parse(RAUC).unwrap();
    assert_eq!(
        pairs(&env),
        [
            ("A_OK", "1"),
            ("A_TRY", "0"),
            ("B_OK", "1"),
            ("B_TRY", "1"),
            ("ORDER", "B A"),
            ("WEIRD", "a\\b\nc\\"),
            ("saved_entry", "gnulinux-advanced>gnulinux-6.1"),
        ]
    );
    // The escaped bytes as grub-editenv wrote them.
    assert!(RAUC.windows(12).any(|w| w == b"WEIRD=a\\\\b\\\n"));
}

#[test]
fn store_layout_and_round_trip() {
    let env = env(&[("b", "x\\y\nz"), ("a", ""), ("c", "=")]);
    let out = to_block(&env).unwrap();
    let body = b"a=\nb=x\\\\y\\\nz\nc==\n";
    assert_eq!(out[..SIGNATURE.len()], *SIGNATURE);
    assert_eq!(&out[SIGNATURE.len()..SIGNATURE.len() + body.len()], body);
    assert!(
        out[SIGNATURE.len() + body.len()..]
            .iter()
            .all(|&b| b == b'#')
    );
    assert_eq!(encoded_len(&env), SIGNATURE.len() + body.len());
    assert_eq!(parse(&out), Ok(env.clone()));
    // The fixture's variables re-stored read back the same.
    let fixture = parse(RAUC).unwrap();
    assert_eq!(parse(&to_block(&fixture).unwrap()), Ok(fixture));
}

#[test]
fn overflow_is_an_error_and_exact_fit_is_not() {
    // name "v", "=", value, "\n": 3 + value bytes after the signature.
    let room = BLOCK_SIZE - SIGNATURE.len() - 3;
    let mut env = Env::new();
    env.set("v", alloc::vec![b'x'; room]).unwrap();
    let out = to_block(&env).unwrap();
    assert_eq!(out[BLOCK_SIZE - 1], b'\n');
    assert_eq!(parse(&out), Ok(env.clone()));
    env.set("v", alloc::vec![b'x'; room + 1]).unwrap();
    assert_eq!(
        to_block(&env),
        Err(EnvError::TooLarge {
            needed: BLOCK_SIZE + 1,
            capacity: BLOCK_SIZE
        })
    );
    // Escapes count: a backslash takes two bytes.
    let mut value = alloc::vec![b'x'; room - 1];
    value.push(b'\\');
    env.set("v", &value).unwrap();
    assert!(matches!(to_block(&env), Err(EnvError::TooLarge { .. })));
    let mut out = [0u8; BLOCK_SIZE];
    assert!(store(&env, &mut out).is_err());
}

#[test]
fn comments_and_escapes() {
    // Comment lines anywhere; a backslash in a comment escapes its newline (GRUB's
    // find_next_line); any escaped byte stands for itself.
    let parsed = parse(&block(b"# c \\\nstill comment\nA=1\n#x\nB=\\q\\\\\n")).unwrap();
    assert_eq!(pairs(&parsed), [("A", "1"), ("B", "q\\")]);
    // No trailing padding at all: the last line ends the block.
    let mut full = SIGNATURE.to_vec();
    full.extend_from_slice(b"A=");
    full.resize(BLOCK_SIZE - 1, b'y');
    full.push(b'\n');
    assert_eq!(
        parse(&full).unwrap().get("A").map(<[u8]>::len),
        Some(BLOCK_SIZE - 28)
    );
}

#[test]
fn parse_errors_are_specific() {
    let at = SIGNATURE.len();
    assert_eq!(
        parse(&CREATED[..1023]),
        Err(EnvError::GrubSize { size: 1023 })
    );
    let mut bad = CREATED.to_vec();
    bad[2] = b'g';
    assert_eq!(parse(&bad), Err(EnvError::GrubSignature));
    assert_eq!(
        parse(&block(b"A=1\nB\nC=2\n")),
        Err(EnvError::MissingSeparator { offset: at + 4 })
    );
    assert_eq!(
        parse(&block(b"\nA=1\n")),
        Err(EnvError::MissingSeparator { offset: at })
    );
    assert_eq!(
        parse(&block(b"=1\n")),
        Err(EnvError::BadName { offset: at })
    );
    assert_eq!(
        parse(&block(b" A=1\n")),
        Err(EnvError::BadName { offset: at })
    );
    assert_eq!(
        parse(&block(b"A=1\nA=2\n")),
        Err(EnvError::Duplicate { offset: at + 4 })
    );
    assert_eq!(
        parse(&block(b"A=a\0b\n")),
        Err(EnvError::GrubNul { offset: at + 3 })
    );
    assert_eq!(
        parse(&block(b"A\0=1\n")),
        Err(EnvError::GrubNul { offset: at + 1 })
    );
    // A value running into the padding, or a name without '=' before the end.
    let mut open = SIGNATURE.to_vec();
    open.extend_from_slice(b"A=");
    open.resize(BLOCK_SIZE, b'#');
    assert_eq!(
        parse(&open),
        Err(EnvError::GrubUnterminatedLine { offset: at })
    );
    let mut escaped_end = open.clone();
    escaped_end[BLOCK_SIZE - 1] = b'\\';
    assert_eq!(
        parse(&escaped_end),
        Err(EnvError::GrubUnterminatedLine { offset: at })
    );
    let mut no_eq = SIGNATURE.to_vec();
    no_eq.resize(BLOCK_SIZE, b'A');
    assert_eq!(
        parse(&no_eq),
        Err(EnvError::MissingSeparator { offset: at })
    );
}
