//! The decoder's grammar state (spec §4.2): which record may come next, and what each one
//! does to the open directories and the current node. Byte assembly lives in `decoder.rs`.

use super::decode_error::{DecodeError, DecodeErrorKind, DecodeErrorKind::*};
use super::decoder::Event;
use super::format::*;
use super::meta::{Entry, FileType};
use super::records;
use super::rules::has_numeric_ids;
use super::{MAX_DEPTH, validate_archive_flags};
use crate::flags::*;
use alloc::vec::Vec;

type Result<T> = core::result::Result<T, DecodeErrorKind>;

/// What the next bytes are.
#[derive(Clone, Copy, Debug)]
pub(super) enum State {
    /// A record header.
    Header,
    /// The body of a record of type `kind` and total size `size`.
    Body { kind: u64, size: u64 },
    /// File contents.
    Payload { remaining: u64 },
    /// Items of the goodbye table that starts at `start`, then its tail.
    Goodbye { start: u64, items_left: u64 },
    /// After the root's GOODBYE.
    Finished { reported: bool, trailing: bool },
}

/// Where the grammar is between records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Grammar {
    /// An ENTRY must come (start of the archive, or after a FILENAME).
    Entry,
    /// After a node's ENTRY: metadata, then what its type calls for.
    Node,
    /// In a directory: FILENAME or GOODBYE.
    Directory,
}

/// A directory being decoded.
#[derive(Clone, Copy, Debug)]
struct Dir {
    entry_offset: u64,
    children: u64,
}

/// What the node being decoded has had so far.
#[derive(Clone, Debug)]
struct Node {
    ty: FileType,
    /// Rank of the last metadata record (see [`MetadataRule`]), 0 right after ENTRY.
    rank: u8,
    /// Sort keys of the last and the current XATTR or ACL entry.
    last_key: Vec<u8>,
    key: Vec<u8>,
    user: bool,
    group: bool,
    named_access: bool,
    group_obj: bool,
    named_default: bool,
    default_mask: bool,
}

/// Where a metadata record type fits into a node.
struct MetadataRule {
    /// Position in the grammar; records come in increasing rank.
    rank: u8,
    /// Several records of this type may follow each other (strictly sorted).
    repeats: bool,
    /// The feature bit the archive needs for it.
    feature: u64,
    /// The file types that may carry it.
    allowed: fn(FileType) -> bool,
}

impl MetadataRule {
    fn of(kind: u64) -> Option<Self> {
        let any: fn(FileType) -> bool = |_| true;
        let not_symlink: fn(FileType) -> bool = |t| t != FileType::Symlink;
        let dir: fn(FileType) -> bool = |t| t == FileType::Directory;
        let regular: fn(FileType) -> bool = |t| t == FileType::Regular;
        let attributes: fn(FileType) -> bool = FileType::has_attributes;
        let (rank, repeats, feature, allowed) = match kind {
            CA_FORMAT_USER => (1, false, WITH_USER_NAMES, any),
            CA_FORMAT_GROUP => (2, false, WITH_USER_NAMES, any),
            CA_FORMAT_XATTR => (3, true, WITH_XATTRS, not_symlink),
            CA_FORMAT_ACL_USER => (4, true, WITH_ACL, not_symlink),
            CA_FORMAT_ACL_GROUP => (5, true, WITH_ACL, not_symlink),
            CA_FORMAT_ACL_GROUP_OBJ => (6, false, WITH_ACL, not_symlink),
            CA_FORMAT_ACL_DEFAULT => (7, false, WITH_ACL, dir),
            CA_FORMAT_ACL_DEFAULT_USER => (8, true, WITH_ACL, dir),
            CA_FORMAT_ACL_DEFAULT_GROUP => (9, true, WITH_ACL, dir),
            CA_FORMAT_SELINUX => (10, false, WITH_SELINUX, any),
            CA_FORMAT_FCAPS => (11, false, WITH_FCAPS, regular),
            CA_FORMAT_QUOTA_PROJID => (12, false, WITH_QUOTA_PROJID, attributes),
            _ => return None,
        };
        Some(Self {
            rank,
            repeats,
            feature,
            allowed,
        })
    }
}

/// The error for a record type that is not allowed where it is.
fn misplaced(kind: u64) -> DecodeErrorKind {
    if record_name(kind).is_some() {
        UnexpectedRecord(kind)
    } else {
        UnknownRecord(kind)
    }
}

/// Everything the decoder tracks but the byte buffer, so that events can borrow the buffer
/// while this changes.
#[derive(Debug)]
pub(super) struct Parser {
    /// Archive offset of the next unconsumed byte.
    pub(super) pos: u64,
    pub(super) state: State,
    grammar: Grammar,
    record_start: u64,
    /// Offset reported by [`super::Decoder::event_offset`].
    pub(super) event_offset: u64,
    pub(super) flags: Option<u64>,
    dirs: Vec<Dir>,
    node: Node,
    pub(super) failed: Option<DecodeError>,
}

impl Parser {
    pub(super) fn new() -> Self {
        Self {
            pos: 0,
            state: State::Header,
            grammar: Grammar::Entry,
            record_start: 0,
            event_offset: 0,
            flags: None,
            dirs: Vec::new(),
            node: Node {
                ty: FileType::Directory,
                rank: 0,
                last_key: Vec::new(),
                key: Vec::new(),
                user: false,
                group: false,
                named_access: false,
                group_obj: false,
                named_default: false,
                default_mask: false,
            },
            failed: None,
        }
    }

    /// Records a failure (sticky) and returns it.
    pub(super) fn fail(&mut self, offset: u64, kind: DecodeErrorKind) -> DecodeError {
        let e = DecodeError { offset, kind };
        self.failed = Some(e);
        e
    }

    /// Records a failure of the current record.
    pub(super) fn fail_at_record(&mut self, kind: DecodeErrorKind) -> DecodeError {
        self.fail(self.record_start, kind)
    }

    /// The current non-directory node is complete: back in its parent directory.
    pub(super) fn end_node(&mut self) {
        self.state = State::Header;
        self.grammar = Grammar::Directory;
    }

    /// After the archive: reports its end, then trailing bytes once; consumes all input.
    pub(super) fn finished(
        &mut self,
        reported: bool,
        trailing: bool,
        len: usize,
    ) -> (usize, Option<Event<&'static [u8]>>) {
        self.event_offset = self.pos;
        let (state, event) = match (reported, trailing, len) {
            (false, _, _) => ((true, trailing), Some(Event::EndArchive)),
            (true, false, 1..) => ((true, true), Some(Event::TrailingData)),
            _ => ((true, trailing), None),
        };
        let consumed = if reported { len } else { 0 };
        self.pos += consumed as u64;
        self.state = State::Finished {
            reported: state.0,
            trailing: state.1,
        };
        (consumed, event)
    }

    /// Handles a complete header or goodbye unit, read as u64 words.
    pub(super) fn unit(
        &mut self,
        words: [u64; 3],
    ) -> core::result::Result<Option<Event<&'static [u8]>>, DecodeError> {
        match self.state {
            State::Header => {
                self.record_start = self.pos - HEADER_SIZE;
                self.header(words[0], words[1])
                    .map_err(|k| self.fail_at_record(k))
            }
            State::Goodbye { start, items_left } => self
                .goodbye_unit(start, items_left, words)
                .map_err(|k| self.fail(self.pos - GOODBYE_ITEM_SIZE, k)),
            _ => Ok(None),
        }
    }

    /// Dispatches a record header: checks that its type may come here and its size, and sets
    /// up what follows.
    fn header(&mut self, size: u64, kind: u64) -> Result<Option<Event<&'static [u8]>>> {
        if size < HEADER_SIZE || size == u64::MAX {
            return Err(BadRecordSize { kind, size });
        }
        if self.grammar == Grammar::Node {
            if let Some(rule) = MetadataRule::of(kind) {
                let node = &self.node;
                if rule.rank < node.rank || (rule.rank == node.rank && !rule.repeats) {
                    return Err(UnexpectedRecord(kind));
                }
                if self.flags.unwrap_or(0) & rule.feature == 0 {
                    return Err(FeatureDisabled(kind));
                }
                if !(rule.allowed)(node.ty) {
                    return Err(NotAllowedForFileType(kind));
                }
                return self.body_of(kind, size);
            }
            self.check_node_complete()?;
            match (self.node.ty, kind) {
                (FileType::Regular, CA_FORMAT_PAYLOAD) => {
                    let remaining = size - HEADER_SIZE;
                    self.event_offset = self.record_start;
                    self.state = State::Payload { remaining };
                    if remaining == 0 {
                        self.end_node();
                    }
                    return Ok(Some(Event::Payload { size: remaining }));
                }
                (FileType::Symlink, CA_FORMAT_SYMLINK) => return self.body_of(kind, size),
                (t, CA_FORMAT_DEVICE) if t.is_device() => return self.body_of(kind, size),
                (FileType::Directory, _) => self.grammar = Grammar::Directory,
                (FileType::Fifo | FileType::Socket, _) => self.end_node(),
                _ => return Err(misplaced(kind)),
            }
        }
        match (self.grammar, kind) {
            (Grammar::Entry, CA_FORMAT_ENTRY) | (Grammar::Directory, CA_FORMAT_FILENAME) => {
                self.body_of(kind, size)
            }
            (Grammar::Directory, CA_FORMAT_GOODBYE) => {
                let children = self.dirs.last().map_or(0, |d| d.children);
                let expected = goodbye_size(children);
                if size != expected {
                    return Err(BadGoodbyeSize { size, expected });
                }
                self.state = State::Goodbye {
                    start: self.record_start,
                    items_left: children,
                };
                Ok(None)
            }
            _ => Err(misplaced(kind)),
        }
    }

    /// Checks the size of a record to be buffered whole, then expects its body.
    fn body_of(&mut self, kind: u64, size: u64) -> Result<Option<Event<&'static [u8]>>> {
        match size_bounds(kind) {
            Some((min, max)) if (min..=max).contains(&size) => {
                self.state = State::Body { kind, size };
                Ok(None)
            }
            _ => Err(BadRecordSize { kind, size }),
        }
    }

    /// The checks casync makes once a node's metadata is complete.
    fn check_node_complete(&self) -> Result<()> {
        let flags = self.flags.unwrap_or(0);
        let node = &self.node;
        if flags & WITH_USER_NAMES != 0 && !has_numeric_ids(flags) && !(node.user && node.group) {
            return Err(MissingUserOrGroup);
        }
        if node.named_access && !node.group_obj {
            return Err(MissingAclGroupObj);
        }
        if node.named_default && !node.default_mask {
            return Err(MissingAclDefaultMask);
        }
        Ok(())
    }

    /// Handles a complete record body.
    pub(super) fn body<'a>(&mut self, kind: u64, body: &'a [u8]) -> Result<Event<&'a [u8]>> {
        self.state = State::Header;
        self.event_offset = self.record_start;
        Ok(match kind {
            CA_FORMAT_ENTRY => Event::Entry(self.entry(body)?),
            CA_FORMAT_FILENAME => {
                let name = records::filename(body)?;
                if let Some(dir) = self.dirs.last_mut() {
                    dir.children += 1;
                }
                self.grammar = Grammar::Entry;
                Event::Filename(name)
            }
            CA_FORMAT_SYMLINK => {
                let target = records::c_string(body, SYMLINK_MAX_LEN, BadSymlinkTarget)?;
                self.end_node();
                Event::Symlink(target)
            }
            CA_FORMAT_DEVICE => {
                let (major, minor) = records::device(body)?;
                self.end_node();
                Event::Device { major, minor }
            }
            _ => self.metadata(kind, body)?,
        })
    }

    /// Checks an ENTRY and starts its node.
    fn entry(&mut self, body: &[u8]) -> Result<Entry> {
        let (feature_flags, fields) = records::entry_fields(body);
        let flags = match self.flags {
            None => {
                validate_archive_flags(feature_flags, UnknownFeatureFlags, FlagsNotNormalized)?;
                self.flags = Some(feature_flags);
                feature_flags
            }
            Some(expected) if expected != feature_flags => {
                return Err(FeatureFlagsMismatch {
                    expected,
                    found: feature_flags,
                });
            }
            Some(flags) => flags,
        };
        let (ty, entry) = records::check_entry(flags, fields)?;
        if self.dirs.is_empty() && ty != FileType::Directory {
            return Err(RootNotDirectory);
        }
        if self.dirs.len() > MAX_DEPTH {
            return Err(TooDeep);
        }
        if ty == FileType::Directory {
            self.dirs.push(Dir {
                entry_offset: self.record_start,
                children: 0,
            });
        }
        let node = &mut self.node;
        node.ty = ty;
        node.rank = 0;
        node.user = false;
        node.group = false;
        node.named_access = false;
        node.group_obj = false;
        node.named_default = false;
        node.default_mask = false;
        self.grammar = Grammar::Node;
        Ok(entry)
    }

    /// Handles a metadata record, whose position the header already checked.
    fn metadata<'a>(&mut self, kind: u64, body: &'a [u8]) -> Result<Event<&'a [u8]>> {
        let flags = self.flags.unwrap_or(0);
        let rank = MetadataRule::of(kind).map_or(0, |r| r.rank);
        let node = &mut self.node;
        let repeat = node.rank == rank;
        node.rank = rank;
        // Sorted kinds: the key goes to `node.key` and must exceed the previous one.
        let event = match kind {
            CA_FORMAT_USER => {
                node.user = true;
                return Ok(Event::User(records::user_name(body)?));
            }
            CA_FORMAT_GROUP => {
                node.group = true;
                return Ok(Event::Group(records::user_name(body)?));
            }
            CA_FORMAT_XATTR => {
                let (name, value) = records::xattr(body)?;
                node.key.clear();
                node.key.extend_from_slice(name);
                Event::Xattr { name, value }
            }
            CA_FORMAT_ACL_USER
            | CA_FORMAT_ACL_GROUP
            | CA_FORMAT_ACL_DEFAULT_USER
            | CA_FORMAT_ACL_DEFAULT_GROUP => {
                let entry = records::acl_entry(flags, kind, body)?;
                records::acl_key(&entry, &mut node.key);
                match kind {
                    CA_FORMAT_ACL_USER => Event::AclUser(entry),
                    CA_FORMAT_ACL_GROUP => Event::AclGroup(entry),
                    CA_FORMAT_ACL_DEFAULT_USER => Event::AclDefaultUser(entry),
                    _ => Event::AclDefaultGroup(entry),
                }
            }
            CA_FORMAT_ACL_GROUP_OBJ => {
                node.group_obj = true;
                return Ok(Event::AclGroupObj(records::permissions(le64(body, 0))?));
            }
            CA_FORMAT_ACL_DEFAULT => {
                let default = records::acl_default(body)?;
                node.default_mask = default.mask.is_some();
                return Ok(Event::AclDefault(default));
            }
            CA_FORMAT_SELINUX => {
                let label = records::c_string(body, SELINUX_MAX_LEN, BadSelinuxLabel)?;
                return Ok(Event::Selinux(label));
            }
            CA_FORMAT_FCAPS => return Ok(Event::Fcaps(body)),
            _ => return Ok(Event::QuotaProjid(records::quota_projid(body)?)),
        };
        if repeat && node.key <= node.last_key {
            return Err(NotSorted(kind));
        }
        core::mem::swap(&mut node.key, &mut node.last_key);
        node.named_access |= matches!(kind, CA_FORMAT_ACL_USER | CA_FORMAT_ACL_GROUP);
        node.named_default |= matches!(
            kind,
            CA_FORMAT_ACL_DEFAULT_USER | CA_FORMAT_ACL_DEFAULT_GROUP
        );
        Ok(event)
    }

    /// Checks a goodbye item (`items_left > 0`) or the tail, given as u64 words.
    fn goodbye_unit(
        &mut self,
        start: u64,
        items_left: u64,
        [a, b, c]: [u64; 3],
    ) -> Result<Option<Event<&'static [u8]>>> {
        let dir = self.dirs.last().copied().ok_or(BadGoodbyeTail)?;
        let span = start - dir.entry_offset;
        if items_left > 0 {
            let (offset, size) = (a, b);
            if size > offset || offset > span {
                return Err(BadGoodbyeItem { offset, size });
            }
            self.state = State::Goodbye {
                start,
                items_left: items_left - 1,
            };
            return Ok(None);
        }
        if a != span || b != goodbye_size(dir.children) || c != CA_FORMAT_GOODBYE_TAIL_MARKER {
            return Err(BadGoodbyeTail);
        }
        self.dirs.pop();
        self.event_offset = start;
        if self.dirs.is_empty() {
            self.state = State::Finished {
                reported: false,
                trailing: false,
            };
        } else {
            self.end_node();
        }
        Ok(Some(Event::EndDirectory))
    }
}
