//! Comparing two catar streams entry by entry: what `diff` and `verify ARCHIVE DIR` report.
//!
//! Each stream is turned into [`Snapshot`]s — one per node, in archive order (depth first,
//! children sorted bytewise), with every record about it and a digest of its contents — and two
//! snapshots of the same path are compared field by field. Since both streams come from casync's
//! encoder rules (a directory is serialized with the archive's own feature flags), the fields
//! compare exactly what the archive can hold: no more (atime, inode numbers) and no less.

use super::events::{Flow, for_each_event};
use super::listing::{escape, mode_string};
use super::{Result, TreeError};
use otasync_core::catar::{AclEntry, Entry, Event, FileType, S_IFMT};
use otasync_core::digest::Hasher;
use otasync_core::{ChunkId, DigestAlgorithm};
use std::cmp::Ordering;
use std::io::Read;
use std::path::Path;

/// Everything an archive says about one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Path from the root, components joined by `/`; empty for the root.
    pub(crate) path: Vec<u8>,
    /// The ENTRY: mode, chattr flags, owner, mtime.
    pub(crate) entry: Entry,
    /// USER record.
    pub(crate) user: Option<Vec<u8>>,
    /// GROUP record.
    pub(crate) group: Option<Vec<u8>>,
    /// XATTR records, in archive order (sorted by name).
    pub(crate) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// The ACL records, rendered (`user:1:rw-`, `default:group:2:r--`, …).
    pub(crate) acl: Vec<String>,
    /// SELINUX record.
    pub(crate) selinux: Option<Vec<u8>>,
    /// FCAPS record.
    pub(crate) fcaps: Option<Vec<u8>>,
    /// QUOTA_PROJID record.
    pub(crate) projid: Option<u32>,
    /// SYMLINK target.
    pub(crate) target: Option<Vec<u8>>,
    /// DEVICE numbers.
    pub(crate) device: Option<(u64, u64)>,
    /// File size and content digest (regular files).
    pub(crate) content: Option<(u64, ChunkId)>,
}

impl Snapshot {
    fn file_type(&self) -> Option<FileType> {
        FileType::from_mode(self.entry.mode.into())
    }

    /// The path as casync's `list` prints it (escaped, `.` for the root).
    pub(crate) fn shown_path(&self) -> String {
        shown(&self.path)
    }
}

fn shown(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return ".".into();
    }
    let mut out = Vec::new();
    escape(bytes, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn permissions(p: u64) -> String {
    let bit = |m: u64, c: char| if p & m != 0 { c } else { '-' };
    [bit(4, 'r'), bit(2, 'w'), bit(1, 'x')].iter().collect()
}

fn acl_entry(kind: &str, e: &AclEntry<&[u8]>) -> String {
    let name = e
        .name
        .map(|n| format!("({})", shown(n)))
        .unwrap_or_default();
    format!("{kind}:{}{name}:{}", e.id, permissions(e.permissions))
}

/// Decodes the catar stream `input` and calls `on` with each node once its records are
/// complete (a directory before its children), and the archive's feature flags.
pub(crate) fn snapshots<R: Read>(
    input: R,
    name: &Path,
    mut on: impl FnMut(Snapshot, u64) -> Result<Flow>,
) -> Result<()> {
    let mut dirs: Vec<Vec<u8>> = Vec::new();
    let mut path = Vec::new();
    let mut cur: Option<Snapshot> = None;
    let mut hasher: Option<(Hasher, u64)> = None;
    let mut flags = 0;
    for_each_event(input, name, |event, _, pos| {
        flags = pos.flags;
        let Some(event) = event else {
            return Ok(Flow::Continue);
        };
        fn node<'a>(cur: &'a mut Option<Snapshot>, name: &Path) -> Result<&'a mut Snapshot> {
            cur.as_mut()
                .ok_or_else(|| TreeError::archive(name, "a record outside any entry"))
        }
        match event {
            Event::Entry(entry) => {
                cur = Some(Snapshot {
                    path: path.clone(),
                    entry,
                    ..Snapshot::default()
                });
            }
            Event::User(u) => node(&mut cur, name)?.user = Some(u.to_vec()),
            Event::Group(g) => node(&mut cur, name)?.group = Some(g.to_vec()),
            Event::Xattr { name: key, value } => node(&mut cur, name)?
                .xattrs
                .push((key.to_vec(), value.to_vec())),
            Event::AclUser(e) => node(&mut cur, name)?.acl.push(acl_entry("user", &e)),
            Event::AclGroup(e) => node(&mut cur, name)?.acl.push(acl_entry("group", &e)),
            Event::AclGroupObj(p) => node(&mut cur, name)?
                .acl
                .push(format!("group::{}", permissions(p))),
            Event::AclDefault(d) => {
                let mask = d.mask.map(|m| format!(",mask::{}", permissions(m)));
                node(&mut cur, name)?.acl.push(format!(
                    "default:user::{},group::{},other::{}{}",
                    permissions(d.user_obj),
                    permissions(d.group_obj),
                    permissions(d.other),
                    mask.unwrap_or_default()
                ));
            }
            Event::AclDefaultUser(e) => node(&mut cur, name)?
                .acl
                .push(acl_entry("default:user", &e)),
            Event::AclDefaultGroup(e) => node(&mut cur, name)?
                .acl
                .push(acl_entry("default:group", &e)),
            Event::Selinux(s) => node(&mut cur, name)?.selinux = Some(s.to_vec()),
            Event::Fcaps(c) => node(&mut cur, name)?.fcaps = Some(c.to_vec()),
            Event::QuotaProjid(p) => node(&mut cur, name)?.projid = Some(p),
            Event::Symlink(t) => {
                let mut done = cur
                    .take()
                    .ok_or_else(|| TreeError::archive(name, "SYMLINK"))?;
                done.target = Some(t.to_vec());
                return on(done, flags);
            }
            Event::Device { major, minor } => {
                let mut done = cur
                    .take()
                    .ok_or_else(|| TreeError::archive(name, "DEVICE"))?;
                done.device = Some((major, minor));
                return on(done, flags);
            }
            Event::Payload { size } => {
                let h = DigestAlgorithm::from_flags(flags).hasher();
                if size == 0 {
                    let mut done = cur
                        .take()
                        .ok_or_else(|| TreeError::archive(name, "PAYLOAD"))?;
                    done.content = Some((0, h.finalize()));
                    return on(done, flags);
                }
                node(&mut cur, name)?.content = Some((size, ChunkId([0; 32])));
                hasher = Some((h, size));
            }
            Event::PayloadData(data) => {
                let Some((h, left)) = hasher.as_mut() else {
                    return Err(TreeError::archive(name, "payload outside a file"));
                };
                h.update(data);
                *left = left.saturating_sub(data.len() as u64);
                if *left == 0 {
                    let (h, _) = hasher.take().unwrap_or_else(|| unreachable!());
                    let mut done = cur
                        .take()
                        .ok_or_else(|| TreeError::archive(name, "PAYLOAD"))?;
                    if let Some((size, _)) = done.content {
                        done.content = Some((size, h.finalize()));
                    }
                    return on(done, flags);
                }
            }
            Event::Filename(child) => {
                // The node before is complete: a directory whose first child this is, or a
                // fifo or socket (no record after their metadata).
                if let Some(done) = cur.take() {
                    let is_dir = done.file_type() == Some(FileType::Directory);
                    if is_dir {
                        dirs.push(done.path.clone());
                    }
                    if on(done, flags)? == Flow::Stop {
                        return Ok(Flow::Stop);
                    }
                }
                path.clear();
                if let Some(parent) = dirs.last() {
                    path.extend_from_slice(parent);
                    if !parent.is_empty() {
                        path.push(b'/');
                    }
                }
                path.extend_from_slice(child);
            }
            Event::EndDirectory => {
                match cur.take() {
                    // An empty directory ends.
                    Some(done) if done.file_type() == Some(FileType::Directory) => {
                        return on(done, flags);
                    }
                    // A fifo or socket was the last child.
                    Some(done) => {
                        dirs.pop();
                        return on(done, flags);
                    }
                    None => {
                        dirs.pop();
                    }
                }
            }
            Event::EndArchive | Event::TrailingData => {}
        }
        Ok(Flow::Continue)
    })
}

/// Orders paths as they occur in an archive: a directory before its children, siblings
/// bytewise (casync sorts names with `strcmp`).
pub(crate) fn archive_order(a: &[u8], b: &[u8]) -> Ordering {
    fn parts(p: &[u8]) -> Vec<&[u8]> {
        match p.is_empty() {
            true => Vec::new(),
            false => p.split(|&c| c == b'/').collect(),
        }
    }
    parts(a).cmp(&parts(b))
}

/// One field that differs, rendered for people and JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldChange {
    /// The field: `type`, `content`, `mode`, `uid`, `gid`, `user`, `group`, `mtime`, `flags`,
    /// `xattr NAME`, `acl`, `selinux`, `fcaps`, `projid`, `target`, `device`.
    pub(crate) field: String,
    /// Its value in the archive (`-` when absent).
    pub(crate) archive: String,
    /// Its value in the directory (`-` when absent).
    pub(crate) directory: String,
}

fn type_name(mode: u32) -> &'static str {
    match FileType::from_mode(mode.into()) {
        Some(FileType::Directory) => "directory",
        Some(FileType::Regular) => "file",
        Some(FileType::Symlink) => "symlink",
        Some(FileType::BlockDevice) => "block device",
        Some(FileType::CharDevice) => "char device",
        Some(FileType::Fifo) => "fifo",
        Some(FileType::Socket) => "socket",
        None => "unknown",
    }
}

fn opt(value: Option<&[u8]>) -> String {
    value.map_or_else(|| "-".into(), shown)
}

fn mtime(ns: u64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

/// The fields in which `directory` differs from `archive` (same path). A different type is
/// reported alone: the other fields then mean different things.
pub(crate) fn compare(archive: &Snapshot, directory: &Snapshot) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    let mut push = |field: &str, a: String, d: String| {
        if a != d {
            changes.push(FieldChange {
                field: field.into(),
                archive: a,
                directory: d,
            });
        }
    };
    let (ea, ed) = (&archive.entry, &directory.entry);
    if ea.mode & S_IFMT != ed.mode & S_IFMT {
        let line = |m: u32| {
            let s = mode_string(m);
            format!("{} ({})", type_name(m), String::from_utf8_lossy(&s[..1]))
        };
        push("type", line(ea.mode), line(ed.mode));
        return changes;
    }
    let content = |s: &Snapshot| {
        s.content
            .map_or_else(|| "-".into(), |(size, id)| format!("{size} bytes, {id}"))
    };
    push("content", content(archive), content(directory));
    push(
        "target",
        opt(archive.target.as_deref()),
        opt(directory.target.as_deref()),
    );
    let device = |s: &Snapshot| {
        s.device
            .map_or_else(|| "-".into(), |(a, b)| format!("{a}:{b}"))
    };
    push("device", device(archive), device(directory));
    push(
        "mode",
        format!("{:04o}", ea.mode & 0o7777),
        format!("{:04o}", ed.mode & 0o7777),
    );
    push("uid", ea.uid.to_string(), ed.uid.to_string());
    push("gid", ea.gid.to_string(), ed.gid.to_string());
    push(
        "user",
        opt(archive.user.as_deref()),
        opt(directory.user.as_deref()),
    );
    push(
        "group",
        opt(archive.group.as_deref()),
        opt(directory.group.as_deref()),
    );
    push("mtime", mtime(ea.mtime), mtime(ed.mtime));
    push(
        "flags",
        format!("{:#x}", ea.flags),
        format!("{:#x}", ed.flags),
    );
    let mut names: Vec<&[u8]> = archive
        .xattrs
        .iter()
        .chain(&directory.xattrs)
        .map(|(n, _)| n.as_slice())
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let value = |s: &Snapshot| {
            opt(s
                .xattrs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_slice()))
        };
        push(
            &format!("xattr {}", shown(name)),
            value(archive),
            value(directory),
        );
    }
    let acl = |s: &Snapshot| match s.acl.is_empty() {
        true => "-".into(),
        false => s.acl.join(","),
    };
    push("acl", acl(archive), acl(directory));
    push(
        "selinux",
        opt(archive.selinux.as_deref()),
        opt(directory.selinux.as_deref()),
    );
    let hex = |b: &Option<Vec<u8>>| {
        b.as_ref().map_or_else(
            || "-".into(),
            |b| b.iter().map(|x| format!("{x:02x}")).collect(),
        )
    };
    push("fcaps", hex(&archive.fcaps), hex(&directory.fcaps));
    let projid = |s: &Snapshot| s.projid.map_or_else(|| "-".into(), |p| p.to_string());
    push("projid", projid(archive), projid(directory));
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_order_is_depth_first_bytewise() {
        let mut paths: Vec<&[u8]> = vec![b"b", b"a/z", b"", b"a", b"a-b", b"a/b/c", b"a/b"];
        paths.sort_by(|a, b| archive_order(a, b));
        let want: Vec<&[u8]> = vec![b"", b"a", b"a/b", b"a/b/c", b"a/z", b"a-b", b"b"];
        assert_eq!(paths, want);
    }

    #[test]
    fn fields_are_compared_one_by_one() {
        let base = Snapshot {
            path: b"f".to_vec(),
            entry: Entry {
                mode: 0o100644,
                uid: 0,
                gid: 0,
                mtime: 1_000_000_000,
                flags: 0,
            },
            xattrs: vec![(b"user.a".to_vec(), b"1".to_vec())],
            content: Some((3, ChunkId([1; 32]))),
            ..Snapshot::default()
        };
        assert!(compare(&base, &base).is_empty());
        let mut other = base.clone();
        other.entry.mode = 0o100600;
        other.entry.uid = 7;
        other.xattrs = vec![(b"user.b".to_vec(), b"2".to_vec())];
        let fields: Vec<String> = compare(&base, &other)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, ["mode", "uid", "xattr user.a", "xattr user.b"]);
        other = base.clone();
        other.entry.mode = 0o040755;
        let changes = compare(&base, &other);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].field, "type");
    }
}
