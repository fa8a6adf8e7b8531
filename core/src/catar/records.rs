//! Parsing and checking the bodies (everything after the 16-byte header) of the records the
//! decoder holds in memory. Each function sees one complete body whose size is already within
//! [`super::format::size_bounds`].

use super::decode_error::DecodeErrorKind::{self, *};
use super::format::*;
use super::meta::{AclDefault, AclEntry, Entry, FileType};
use super::rules::*;
use alloc::vec::Vec;

type Result<T> = core::result::Result<T, DecodeErrorKind>;

/// The string before the final NUL, if the body ends with one.
fn c_str(body: &[u8]) -> Option<&[u8]> {
    match body.split_last() {
        Some((0, s)) => Some(s),
        _ => None,
    }
}

/// An ENTRY body's fields: feature flags, then the rest.
pub(super) fn entry_fields(body: &[u8]) -> (u64, [u64; 5]) {
    let f = |i: usize| le64(body, 8 * i);
    (f(0), [f(1), f(2), f(3), f(4), f(5)])
}

/// Checks an ENTRY's fields against the archive flags; returns its type and contents.
pub(super) fn check_entry(flags: u64, fields: [u64; 5]) -> Result<(FileType, Entry)> {
    let [mode, attrs, uid, gid, mtime] = fields;
    let ty = FileType::from_mode(mode)
        .filter(|&t| type_enabled(flags, t))
        .filter(|_| u32::try_from(mode).is_ok_and(|m| normalize_mode(flags, m) == m))
        .ok_or(BadMode(mode))?;
    if normalize_entry_flags(flags, ty, attrs) != attrs {
        return Err(BadEntryFlags(attrs));
    }
    if !valid_id(flags, uid) {
        return Err(BadUid(uid));
    }
    if !valid_id(flags, gid) {
        return Err(BadGid(gid));
    }
    if mtime == u64::MAX || normalize_mtime(flags, mtime) != mtime {
        return Err(BadMtime(mtime));
    }
    // The checks above bound mode and ids to 32 bits.
    let entry = Entry {
        mode: mode as u32,
        flags: attrs,
        uid: uid as u32,
        gid: gid as u32,
        mtime,
    };
    Ok((ty, entry))
}

/// A USER or GROUP name.
pub(super) fn user_name(body: &[u8]) -> Result<&[u8]> {
    c_str(body)
        .filter(|n| valid_user_name(n))
        .ok_or(BadUserName)
}

/// An XATTR's name and value.
pub(super) fn xattr(body: &[u8]) -> Result<(&[u8], &[u8])> {
    let nul = body[..body.len().min(XATTR_NAME_MAX_LEN + 1)]
        .iter()
        .position(|&b| b == 0)
        .ok_or(BadXattrName)?;
    let name = &body[..nul];
    if !valid_xattr_name(name) {
        return Err(BadXattrName);
    }
    Ok((name, &body[nul + 1..]))
}

/// ACL permission bits.
pub(super) fn permissions(p: u64) -> Result<u64> {
    if valid_permissions(p) {
        Ok(p)
    } else {
        Err(BadAclPermissions(p))
    }
}

/// A named ACL entry of record type `kind`.
pub(super) fn acl_entry(flags: u64, kind: u64, body: &[u8]) -> Result<AclEntry<&[u8]>> {
    let id = le64(body, 0);
    let name = match &body[16..] {
        [] => None,
        _ if flags & crate::flags::WITH_USER_NAMES == 0 => return Err(FeatureDisabled(kind)),
        rest => Some(user_name(rest)?),
    };
    if !valid_id(flags, id) {
        let group = matches!(kind, CA_FORMAT_ACL_GROUP | CA_FORMAT_ACL_DEFAULT_GROUP);
        return Err(if group { BadGid(id) } else { BadUid(id) });
    }
    Ok(AclEntry {
        id: id as u32,
        name,
        permissions: permissions(le64(body, 8))?,
    })
}

/// The ACL_DEFAULT record.
pub(super) fn acl_default(body: &[u8]) -> Result<AclDefault> {
    let mask = le64(body, 24);
    Ok(AclDefault {
        user_obj: permissions(le64(body, 0))?,
        group_obj: permissions(le64(body, 8))?,
        other: permissions(le64(body, 16))?,
        mask: if mask == u64::MAX {
            None
        } else {
            Some(permissions(mask)?)
        },
    })
}

/// A NUL-terminated SELinux label or symlink target.
pub(super) fn c_string(body: &[u8], max: usize, err: DecodeErrorKind) -> Result<&[u8]> {
    c_str(body).filter(|s| valid_c_string(s, max)).ok_or(err)
}

/// A QUOTA_PROJID value.
pub(super) fn quota_projid(body: &[u8]) -> Result<u32> {
    let v = le64(body, 0);
    u32::try_from(v)
        .ok()
        .filter(|&p| p != 0)
        .ok_or(BadQuotaProjid(v))
}

/// A DEVICE's major and minor.
pub(super) fn device(body: &[u8]) -> Result<(u64, u64)> {
    let (major, minor) = (le64(body, 0), le64(body, 8));
    if major >= 1 << 12 || minor >= 1 << 20 {
        return Err(BadDevice { major, minor });
    }
    Ok((major, minor))
}

/// A FILENAME's name.
pub(super) fn filename(body: &[u8]) -> Result<&[u8]> {
    c_str(body).filter(|n| valid_filename(n)).ok_or(BadFilename)
}

/// The ordering key of an ACL entry: id, whether it has a name, the name, NUL, permissions.
/// Byte order on keys is casync's entry order (names hold no NUL).
pub(super) fn acl_key(entry: &AclEntry<&[u8]>, key: &mut Vec<u8>) {
    key.clear();
    key.extend_from_slice(&u64::from(entry.id).to_be_bytes());
    key.push(u8::from(entry.name.is_some()));
    key.extend_from_slice(entry.name.unwrap_or_default());
    key.push(0);
    key.extend_from_slice(&entry.permissions.to_be_bytes());
}
