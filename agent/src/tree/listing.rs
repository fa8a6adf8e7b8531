//! casync's `list`, `mtree`, `stat` and `digest` output for a catar stream (spec §6, §7),
//! byte for byte.

use super::events::{Flow, for_each_event};
use super::scan::{Node, Stage, normalize_subpath, scan};
use super::{Result, TreeError, localtime, sys};
use otasync_core::catar::FileType;
use otasync_core::flags::*;
use otasync_core::{ChunkId, DigestAlgorithm};
use std::io::{Read, Write};
use std::path::Path;

/// casync's escaping for paths, link targets, names and xattrs: bytes ≤ 0x20, ≥ 0x7f, `\`
/// and `#` become `\` plus three octal digits.
pub(crate) fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        if b <= 0x20 || b >= 0x7f || b == b'\\' || b == b'#' {
            out.extend_from_slice(&[
                b'\\',
                b'0' + (b >> 6),
                b'0' + ((b >> 3) & 7),
                b'0' + (b & 7),
            ]);
        } else {
            out.push(b);
        }
    }
}

fn escaped_path(path: &[u8], out: &mut Vec<u8>) {
    if path.is_empty() {
        out.push(b'.');
    } else {
        escape(path, out);
    }
}

/// `ls -l`-style mode string (casync `ls_format_mode`).
pub(crate) fn mode_string(m: u32) -> [u8; 10] {
    let ty = match FileType::from_mode(m.into()) {
        Some(FileType::Directory) => b'd',
        Some(FileType::Regular) => b'-',
        Some(FileType::Symlink) => b'l',
        Some(FileType::BlockDevice) => b'b',
        Some(FileType::CharDevice) => b'c',
        Some(FileType::Fifo) => b'p',
        Some(FileType::Socket) => b's',
        None => b'?',
    };
    let bit = |mask: u32, c: u8| if m & mask != 0 { c } else { b'-' };
    let special = |set: bool, x: bool, on: u8, off: u8| match (set, x) {
        (true, true) => on,
        (true, false) => off,
        (false, true) => b'x',
        (false, false) => b'-',
    };
    let dir = ty == b'd';
    [
        ty,
        bit(0o400, b'r'),
        bit(0o200, b'w'),
        special(m & 0o4000 != 0, m & 0o100 != 0, b's', b'S'),
        bit(0o40, b'r'),
        bit(0o20, b'w'),
        special(m & 0o2000 != 0, m & 0o10 != 0, b's', b'S'),
        bit(0o4, b'r'),
        bit(0o2, b'w'),
        special(dir && m & 0o1000 != 0, m & 0o1 != 0, b't', b'T'),
    ]
}

/// casync's 10-character chattr string (`ls_format_chattr`), from ENTRY flags.
fn chattr_string(entry_flags: u64) -> [u8; 10] {
    let fl = sys::feature_to_chattr(entry_flags);
    let table: [(u32, u8); 10] = [
        (0x8, b'S'),
        (0x1_0000, b'D'),
        (0x10, b'i'),
        (0x20, b'a'),
        (0x40, b'd'),
        (0x80, b'A'),
        (0x4, b'c'),
        (0x400, b'N'),
        (0x80_0000, b'C'),
        (0x2000_0000, b'P'),
    ];
    table.map(|(f, c)| if fl & f != 0 { c } else { b'-' })
}

/// casync's 3-character FAT attribute string.
fn fat_string(entry_flags: u64) -> [u8; 3] {
    let b = |f: u64, c: u8| if entry_flags & f != 0 { c } else { b'-' };
    [
        b(WITH_FLAG_HIDDEN, b'h'),
        b(WITH_FLAG_SYSTEM, b's'),
        b(WITH_FLAG_ARCHIVE, b'a'),
    ]
}

fn has_numeric_ids(flags: u64) -> bool {
    flags & (WITH_16BIT_UIDS | WITH_32BIT_UIDS) != 0
}

fn has_time(flags: u64) -> bool {
    flags & (WITH_SEC_TIME | WITH_USEC_TIME | WITH_NSEC_TIME | WITH_2SEC_TIME) != 0
}

fn write_err(e: std::io::Error) -> TreeError {
    TreeError::io(Path::new("output"), e)
}

/// `casync list [ARCHIVE] [SUBPATH]`: mode string and path of every entry in archive order;
/// without `recursive`, only the top entry and its direct children.
pub(crate) fn list<R: Read, W: Write + ?Sized>(
    input: R,
    name: &Path,
    out: &mut W,
    recursive: bool,
    subpath: &[u8],
) -> Result<()> {
    let sub = normalize_subpath(subpath);
    let mut line = Vec::new();
    scan(input, name, &sub, false, |stage, _| {
        if let Stage::Header(node) = stage {
            if !recursive && node.path != sub {
                let rest = &node.path[sub.len() + usize::from(!sub.is_empty())..];
                if rest.contains(&b'/') {
                    return Ok(Flow::Continue);
                }
            }
            line.clear();
            line.extend_from_slice(&mode_string(node.entry.mode));
            line.push(b' ');
            escaped_path(&node.path, &mut line);
            line.push(b'\n');
            out.write_all(&line).map_err(write_err)?;
        }
        Ok(Flow::Continue)
    })
}

/// `casync mtree [ARCHIVE] [SUBPATH]`. `digest_name` is the `--digest` option, which names the
/// digest key; the value is always computed with the archive's algorithm (as casync does).
///
/// `flags=` lists hidden/system/archive/sappend/nodump/simmutable when the archive has any of
/// those feature bits; like casync, entries other than files and directories show every one
/// as set (spec §9.9; kept because mtree consumers may compare against casync's output).
pub(crate) fn mtree<R: Read, W: Write + ?Sized>(
    input: R,
    name: &Path,
    out: &mut W,
    subpath: &[u8],
    digest_name: DigestAlgorithm,
) -> Result<()> {
    let mut line = Vec::new();
    scan(input, name, subpath, true, |stage, pos| {
        match stage {
            Stage::Header(node) => {
                line.clear();
                mtree_line(node, pos.flags, &mut line);
                if node.file_type() != Some(FileType::Regular) {
                    line.push(b'\n');
                    out.write_all(&line).map_err(write_err)?;
                }
            }
            Stage::Done {
                node,
                payload: Some(digest),
                ..
            } if node.file_type() == Some(FileType::Regular) => {
                let key = match digest_name {
                    DigestAlgorithm::Sha512_256 => "sha512256digest",
                    DigestAlgorithm::Sha256 => "sha256digest",
                };
                line.extend_from_slice(format!(" {key}={digest}\n").as_bytes());
                out.write_all(&line).map_err(write_err)?;
            }
            Stage::Done { .. } => {}
        }
        Ok(Flow::Continue)
    })
}

fn mtree_line(node: &Node, flags: u64, line: &mut Vec<u8>) {
    let e = &node.entry;
    let ty = node.file_type();
    escaped_path(&node.path, line);
    let kind = match ty {
        Some(FileType::Symlink) => "link",
        Some(FileType::Directory) => "dir",
        Some(FileType::Regular) => "file",
        Some(FileType::Socket) => "socket",
        Some(FileType::CharDevice) => "char",
        Some(FileType::BlockDevice) => "block",
        Some(FileType::Fifo) => "fifo",
        None => "",
    };
    line.extend_from_slice(format!(" type={kind} mode={:04o}", e.mode & 0o7777).as_bytes());
    if let Some(size) = node.size {
        line.extend_from_slice(format!(" size={size}").as_bytes());
    }
    if let Some(t) = &node.target {
        line.extend_from_slice(b" link=");
        escape(t, line);
    }
    if let Some((major, minor)) = node.device {
        line.extend_from_slice(format!(" device=linux,{major},{minor}").as_bytes());
    }
    if has_numeric_ids(flags) {
        line.extend_from_slice(format!(" uid={} gid={}", e.uid, e.gid).as_bytes());
    }
    let names = flags & WITH_USER_NAMES != 0;
    for (key, id, name) in [
        (" uname=", e.uid, &node.user),
        (" gname=", e.gid, &node.group),
    ] {
        let name = match name {
            Some(n) => Some(n.as_slice()),
            None if names && id == 0 => Some(&b"root"[..]),
            None => None,
        };
        if let Some(n) = name {
            line.extend_from_slice(key.as_bytes());
            escape(n, line);
        }
    }
    const SHOWN: [(u64, &str); 6] = [
        (WITH_FLAG_HIDDEN, "hidden"),
        (WITH_FLAG_SYSTEM, "system"),
        (WITH_FLAG_ARCHIVE, "archive"),
        (WITH_FLAG_APPEND, "sappend"),
        (WITH_FLAG_NODUMP, "nodump"),
        (WITH_FLAG_IMMUTABLE, "simmutable"),
    ];
    let attrs = ty.is_some_and(FileType::has_attributes);
    let shown: Vec<String> = SHOWN
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(bit, n)| {
            if !attrs || e.flags & bit != 0 {
                (*n).to_string()
            } else {
                format!("no{n}")
            }
        })
        .collect();
    if !shown.is_empty() {
        line.extend_from_slice(format!(" flags={}", shown.join(",")).as_bytes());
    }
    if has_time(flags) {
        let (s, ns) = (e.mtime / 1_000_000_000, e.mtime % 1_000_000_000);
        line.extend_from_slice(format!(" time={s}.{ns:09}").as_bytes());
    }
}

/// `casync stat [ARCHIVE] [PATH]`: one entry's details.
pub(crate) fn stat<R: Read, W: Write + ?Sized>(
    input: R,
    name: &Path,
    out: &mut W,
    path: &[u8],
) -> Result<()> {
    let sub = normalize_subpath(path);
    let mut text = Vec::new();
    scan(input, name, &sub, true, |stage, pos| {
        match stage {
            Stage::Header(node) if node.path == sub => {
                stat_header(node, pos.flags, &mut text);
                if node.file_type() == Some(FileType::Directory) {
                    out.write_all(&text).map_err(write_err)?;
                    return Ok(Flow::Stop);
                }
            }
            Stage::Done {
                node,
                payload,
                hardlink,
                ..
            } if node.path == sub => {
                if let Some(d) = payload {
                    text.extend_from_slice(format!("  Digest: {d}\n").as_bytes());
                }
                if let Some(d) = hardlink {
                    text.extend_from_slice(format!("HLDigest: {d}\n").as_bytes());
                }
                out.write_all(&text).map_err(write_err)?;
                return Ok(Flow::Stop);
            }
            _ => {}
        }
        Ok(Flow::Continue)
    })
}

fn stat_header(node: &Node, flags: u64, t: &mut Vec<u8>) {
    let e = &node.entry;
    t.extend_from_slice(b"    File: ");
    escaped_path(&node.path, t);
    t.extend_from_slice(b"\n    Mode: ");
    t.extend_from_slice(&mode_string(e.mode));
    t.push(b'\n');
    if node.file_type().is_some_and(FileType::has_attributes) {
        t.extend_from_slice(b"FileAttr: ");
        t.extend_from_slice(&chattr_string(e.flags));
        t.extend_from_slice(b"\n FATAttr: ");
        t.extend_from_slice(&fat_string(e.flags));
        t.push(b'\n');
    }
    t.extend_from_slice(format!("  Offset: {}\n", node.offset).as_bytes());
    if has_time(flags) {
        let secs = (e.mtime / 1_000_000_000) as i64;
        if let Some((y, mo, d, h, mi, s)) = localtime::local(secs) {
            let ns = e.mtime % 1_000_000_000;
            let line = format!("    Time: {y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{ns:09}\n");
            t.extend_from_slice(line.as_bytes());
        }
    }
    if let Some(size) = node.size {
        t.extend_from_slice(format!("    Size: {size}\n").as_bytes());
    }
    let numeric = has_numeric_ids(flags);
    let names = flags & WITH_USER_NAMES != 0;
    for (label, id, name) in [
        ("    User: ", e.uid, &node.user),
        ("   Group: ", e.gid, &node.group),
    ] {
        let name = match name {
            Some(n) => Some(n.as_slice()),
            None if names && id == 0 => Some(&b"root"[..]),
            None => None,
        };
        match (numeric, name) {
            (true, Some(n)) => {
                t.extend_from_slice(label.as_bytes());
                escape(n, t);
                t.extend_from_slice(format!(" ({id})\n").as_bytes());
            }
            (true, None) => t.extend_from_slice(format!("{label}{id}\n").as_bytes()),
            (false, Some(n)) => {
                t.extend_from_slice(label.as_bytes());
                escape(n, t);
                t.push(b'\n');
            }
            (false, None) => {}
        }
    }
    if let Some(p) = node.projid {
        t.extend_from_slice(format!("  ProjID: {p}\n").as_bytes());
    }
    if let Some(target) = &node.target {
        t.extend_from_slice(b"  Target: ");
        escape(target, t);
        t.push(b'\n');
    }
    if let Some((major, minor)) = node.device {
        t.extend_from_slice(format!("  Device: {major}:{minor}\n").as_bytes());
    }
    for (n, v) in &node.xattrs {
        t.extend_from_slice(b"   XAttr: ");
        escape(n, t);
        t.extend_from_slice(" → ".as_bytes());
        escape(v, t);
        t.push(b'\n');
    }
}

/// What [`digest_stream`] hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DigestKind {
    /// The whole archive (no subpath).
    Archive,
    /// The sub-archive of a directory (equal to `casync digest` of that directory).
    Directory,
    /// The contents of a regular file.
    Payload,
}

/// `casync digest ARCHIVE [SUBPATH]` on a catar stream, with the archive's digest algorithm.
/// Other file types than directories and regular files fail, as in casync.
pub(crate) fn digest_stream<R: Read>(
    input: R,
    name: &Path,
    subpath: &[u8],
) -> Result<(ChunkId, DigestKind)> {
    let sub = normalize_subpath(subpath);
    if sub.is_empty() {
        let mut hasher = None;
        let mut early = Vec::new();
        for_each_event(input, name, |_, raw, pos| {
            match &mut hasher {
                Some(h) => otasync_core::digest::Hasher::update(h, raw),
                None if pos.flags != 0 || pos.end >= 24 => {
                    let mut h = DigestAlgorithm::from_flags(pos.flags).hasher();
                    h.update(&early);
                    h.update(raw);
                    hasher = Some(h);
                }
                None => early.extend_from_slice(raw),
            }
            Ok(Flow::Continue)
        })?;
        let h = hasher.ok_or_else(|| TreeError::archive(name, "empty archive"))?;
        return Ok((h.finalize(), DigestKind::Archive));
    }
    let mut result = None;
    scan(input, name, &sub, true, |stage, _| {
        if let Stage::Done {
            node,
            payload,
            subtree,
            ..
        } = stage
            && node.path == sub
        {
            result = match node.file_type() {
                Some(FileType::Directory) => subtree.map(|d| (d, DigestKind::Directory)),
                Some(FileType::Regular) => payload.map(|d| (d, DigestKind::Payload)),
                _ => None,
            };
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    })?;
    result.ok_or_else(|| {
        TreeError::archive(
            Path::new(&String::from_utf8_lossy(&sub).into_owned()),
            "not a directory or regular file",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        let mut out = Vec::new();
        escape("a b#ü\\x".as_bytes(), &mut out);
        assert_eq!(out, b"a\\040b\\043\\303\\274\\134x");
        out.clear();
        escape(b"\x7f\x00~!", &mut out);
        assert_eq!(out, b"\\177\\000~!");
    }

    #[test]
    fn modes() {
        assert_eq!(&mode_string(0o104755), b"-rwsr-xr-x");
        assert_eq!(&mode_string(0o041777), b"drwxrwxrwt");
        assert_eq!(&mode_string(0o101644), b"-rw-r--r--");
        assert_eq!(&mode_string(0o042750), b"drwxr-s---");
        assert_eq!(&mode_string(0o102640), b"-rw-r-S---");
        assert_eq!(&mode_string(0o140755), b"srwxr-xr-x");
        assert_eq!(&mode_string(0o120777), b"lrwxrwxrwx");
    }

    #[test]
    fn attr_strings() {
        assert_eq!(&chattr_string(WITH_FLAG_NOATIME), b"-----A----");
        assert_eq!(&chattr_string(0x3ff0000), b"SDiadAcNCP");
        assert_eq!(&fat_string(0), b"---");
    }
}
