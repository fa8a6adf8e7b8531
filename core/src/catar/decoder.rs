//! The sans-IO catar decoder and its events.

use super::decode_error::{DecodeError, DecodeErrorKind};
use super::format::{GOODBYE_ITEM_SIZE, HEADER_SIZE, le64};
use super::grammar::{Parser, State};
use super::meta::{AclDefault, AclEntry, Entry};
use alloc::vec::Vec;

/// What the decoder found. `B` is `&[u8]` for events borrowed from the input or the decoder;
/// [`Event::map`] turns them into owned ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<B> {
    /// A node begins (ENTRY). The archive's feature flags are [`Decoder::feature_flags`].
    Entry(Entry),
    /// Owner name (USER).
    User(B),
    /// Group name (GROUP).
    Group(B),
    /// Extended attribute (XATTR).
    Xattr {
        /// Name, without NUL.
        name: B,
        /// Raw value.
        value: B,
    },
    /// Named user of the access ACL (ACL_USER).
    AclUser(AclEntry<B>),
    /// Named group of the access ACL (ACL_GROUP).
    AclGroup(AclEntry<B>),
    /// Owning-group permissions of the access ACL (ACL_GROUP_OBJ).
    AclGroupObj(u64),
    /// Base entries of the default ACL (ACL_DEFAULT).
    AclDefault(AclDefault),
    /// Named user of the default ACL (ACL_DEFAULT_USER).
    AclDefaultUser(AclEntry<B>),
    /// Named group of the default ACL (ACL_DEFAULT_GROUP).
    AclDefaultGroup(AclEntry<B>),
    /// SELinux label, without NUL (SELINUX).
    Selinux(B),
    /// Raw `security.capability` value (FCAPS).
    Fcaps(B),
    /// Project quota id (QUOTA_PROJID).
    QuotaProjid(u32),
    /// Symlink target, without NUL; ends the node (SYMLINK).
    Symlink(B),
    /// Device numbers; ends the node (DEVICE).
    Device {
        /// Major number.
        major: u64,
        /// Minor number.
        minor: u64,
    },
    /// The contents of a regular file follow as `PayloadData` events totalling `size` bytes;
    /// the node ends with the last of them (immediately when `size` is 0).
    Payload {
        /// File size.
        size: u64,
    },
    /// The next piece of file contents.
    PayloadData(B),
    /// The name of the next child of the current directory (FILENAME); its ENTRY follows.
    Filename(B),
    /// The current directory ends (GOODBYE, checked).
    EndDirectory,
    /// The root directory has ended: the archive is complete.
    EndArchive,
    /// Bytes follow the end of the archive (casync ignores them); reported once, at their
    /// offset, and then consumed silently.
    TrailingData,
}

impl<B> Event<B> {
    /// Converts every byte string with `f`.
    pub fn map<C>(self, mut f: impl FnMut(B) -> C) -> Event<C> {
        match self {
            Self::Entry(e) => Event::Entry(e),
            Self::User(b) => Event::User(f(b)),
            Self::Group(b) => Event::Group(f(b)),
            Self::Xattr { name, value } => Event::Xattr {
                name: f(name),
                value: f(value),
            },
            Self::AclUser(a) => Event::AclUser(a.map(f)),
            Self::AclGroup(a) => Event::AclGroup(a.map(f)),
            Self::AclGroupObj(p) => Event::AclGroupObj(p),
            Self::AclDefault(d) => Event::AclDefault(d),
            Self::AclDefaultUser(a) => Event::AclDefaultUser(a.map(f)),
            Self::AclDefaultGroup(a) => Event::AclDefaultGroup(a.map(f)),
            Self::Selinux(b) => Event::Selinux(f(b)),
            Self::Fcaps(b) => Event::Fcaps(f(b)),
            Self::QuotaProjid(p) => Event::QuotaProjid(p),
            Self::Symlink(b) => Event::Symlink(f(b)),
            Self::Device { major, minor } => Event::Device { major, minor },
            Self::Payload { size } => Event::Payload { size },
            Self::PayloadData(b) => Event::PayloadData(f(b)),
            Self::Filename(b) => Event::Filename(f(b)),
            Self::EndDirectory => Event::EndDirectory,
            Self::EndArchive => Event::EndArchive,
            Self::TrailingData => Event::TrailingData,
        }
    }
}

/// What [`Decoder::next`] returns: how many input bytes it consumed, and the event, if any.
pub type Step<'a> = (usize, Option<Event<&'a [u8]>>);

/// The catar decoder: a sans-IO state machine. Feed it bytes split any way you like with
/// [`Decoder::next`]; it reports one [`Event`] per record (and per piece of payload data), and
/// [`Decoder::finish`] tells a complete archive from a truncated one once the input ends.
///
/// It enforces the grammar and every check casync's decoder makes (spec §4), plus a few casync
/// leaves out: the goodbye table must have one item per child and each item must point inside
/// its directory, FCAPS and QUOTA_PROJID need their feature bits, and µs-granularity mtimes are
/// checked in µs (casync's checks ms, a bug).
///
/// Memory stays bounded: only records up to their [maximum size](super::format::size_bounds)
/// are buffered, and only when they straddle two inputs; payload data is handed out as slices
/// of the input, and goodbye tables are checked item by item.
///
/// ```
/// use otasync_core::catar::{Decoder, Encoder, Event, Metadata, S_IFDIR, S_IFREG};
/// let dir = Metadata { entry: otasync_core::catar::Entry { mode: S_IFDIR | 0o755, ..Default::default() }, ..Default::default() };
/// let mut file = dir.clone();
/// file.entry.mode = S_IFREG | 0o644;
/// let mut encoder = Encoder::new(Vec::new(), 0xb0000001ffeffe26, &dir).unwrap();
/// encoder.file(b"a.txt", &file, 2).unwrap();
/// encoder.payload(b"hi").unwrap();
/// let archive = encoder.finish().unwrap();
///
/// let mut decoder = Decoder::new();
/// let mut names = Vec::new();
/// for piece in archive.chunks(10) {
///     let mut at = 0;
///     while let (n, Some(event)) = decoder.next(&piece[at..]).unwrap() {
///         at += n;
///         if let Event::Filename(name) = event {
///             names.push(name.to_vec());
///         }
///     }
/// }
/// decoder.finish().unwrap();
/// assert_eq!(names, [b"a.txt"]);
/// ```
#[derive(Debug)]
pub struct Decoder {
    /// A record part that straddles inputs, assembled here.
    buf: Vec<u8>,
    /// `buf` holds a unit already handed out; cleared on the next call.
    buf_used: bool,
    p: Parser,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder at the start of an archive.
    pub fn new() -> Self {
        Self {
            buf: Vec::new(),
            buf_used: false,
            p: Parser::new(),
        }
    }

    /// The archive's feature flags, once the first ENTRY has been read.
    pub fn feature_flags(&self) -> Option<u64> {
        self.p.flags
    }

    /// Archive offset of the next byte to feed (bytes consumed so far).
    pub fn position(&self) -> u64 {
        self.p.pos
    }

    /// Archive offset of the last event: its record's start, or for `PayloadData` the data's.
    pub fn event_offset(&self) -> u64 {
        self.p.event_offset
    }

    /// Consumes a prefix of `input` and returns its length with the next event, if one is
    /// complete. `None` means all of `input` was consumed and more is needed (or, after
    /// [`Event::EndArchive`], that there was nothing left). Errors are sticky.
    pub fn next<'a>(&'a mut self, input: &'a [u8]) -> Result<Step<'a>, DecodeError> {
        if let Some(e) = self.p.failed {
            return Err(e);
        }
        if self.buf_used {
            self.buf.clear();
            self.buf_used = false;
        }
        let mut at = 0;
        loop {
            let need = match self.p.state {
                State::Finished { reported, trailing } => {
                    let (n, event) = self.p.finished(reported, trailing, input.len() - at);
                    return Ok((at + n, event));
                }
                State::Payload { remaining } => {
                    let n = remaining.min((input.len() - at) as u64) as usize;
                    if n == 0 {
                        return Ok((at, None));
                    }
                    self.p.event_offset = self.p.pos;
                    self.p.pos += n as u64;
                    self.p.state = State::Payload {
                        remaining: remaining - n as u64,
                    };
                    if remaining == n as u64 {
                        self.p.end_node();
                    }
                    return Ok((at + n, Some(Event::PayloadData(&input[at..at + n]))));
                }
                State::Header => HEADER_SIZE,
                State::Body { size, .. } => size - HEADER_SIZE,
                State::Goodbye { .. } => GOODBYE_ITEM_SIZE,
            } as usize;
            // Assemble the next unit of `need` bytes, from the input directly when possible.
            let rest = &input[at..];
            let unit_in_input = if self.buf.is_empty() && rest.len() >= need {
                at += need;
                self.p.pos += need as u64;
                Some(at - need)
            } else {
                let n = rest.len().min(need - self.buf.len());
                self.buf.extend_from_slice(&rest[..n]);
                at += n;
                self.p.pos += n as u64;
                if self.buf.len() < need {
                    return Ok((at, None));
                }
                None
            };
            if let State::Body { kind, .. } = self.p.state {
                let unit: &'a [u8] = match unit_in_input {
                    Some(start) => &input[start..start + need],
                    None => {
                        self.buf_used = true;
                        &self.buf
                    }
                };
                let event = self
                    .p
                    .body(kind, unit)
                    .map_err(|k| self.p.fail_at_record(k))?;
                return Ok((at, Some(event)));
            }
            // Headers and goodbye units are read as u64 words and dropped.
            let unit = match unit_in_input {
                Some(start) => &input[start..start + need],
                None => &self.buf[..],
            };
            let mut words = [0u64; 3];
            for (i, w) in words.iter_mut().enumerate().take(need / 8) {
                *w = le64(unit, 8 * i);
            }
            self.buf.clear();
            if let Some(event) = self.p.unit(words)? {
                return Ok((at, Some(event)));
            }
        }
    }

    /// Ends the input: `Ok` when the archive was complete, else the error it failed with or
    /// [`DecodeErrorKind::Truncated`] at the end of the input.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match (self.p.failed, self.p.state) {
            (Some(e), _) => Err(e),
            (None, State::Finished { .. }) => Ok(()),
            (None, _) => Err(DecodeError {
                offset: self.p.pos,
                kind: DecodeErrorKind::Truncated,
            }),
        }
    }
}
