//! The metadata records of a node as the encoder writes them: ENTRY with casync's
//! normalization (spec §4.3), then USER/GROUP, XATTR, ACL, SELINUX, FCAPS and QUOTA_PROJID
//! records as the archive's feature flags and the node's type call for.

use super::encoder::EncodeErrorKind;
use super::format::*;
use super::meta::{AclEntry, FileType, Metadata};
use super::rules::*;
use crate::flags::*;
use alloc::vec::Vec;

type Result<T> = core::result::Result<T, EncodeErrorKind>;

/// Appends a record: header, fixed u64 fields, then byte strings.
pub(super) fn put_record(out: &mut Vec<u8>, kind: u64, fixed: &[u64], bytes: &[&[u8]]) {
    let len: usize = bytes.iter().map(|b| b.len()).sum();
    put64(
        out,
        &[HEADER_SIZE + 8 * fixed.len() as u64 + len as u64, kind],
    );
    put64(out, fixed);
    for b in bytes {
        out.extend_from_slice(b);
    }
}

/// Checks a raw uid/gid and returns what the archive stores for it.
fn stored_id(flags: u64, id: u32) -> Result<u64> {
    if id == 0xffff || id == u32::MAX {
        return Err(EncodeErrorKind::InvalidId(id));
    }
    if flags & WITH_16BIT_UIDS != 0 && id > 0xffff {
        return Err(EncodeErrorKind::IdTooLarge(id));
    }
    Ok(if has_numeric_ids(flags) { id.into() } else { 0 })
}

/// The name record to write for an owner or group named `name`, if any (the caller leaves out
/// the name of the host's root).
fn owner_name(flags: u64, name: Option<&[u8]>) -> Result<Option<&[u8]>> {
    if flags & WITH_USER_NAMES == 0 {
        return Ok(None);
    }
    match name {
        Some(n) if valid_user_name(n) => Ok(Some(n)),
        Some(_) => Err(EncodeErrorKind::BadUserName),
        None => Ok(None),
    }
}

/// Appends ENTRY and the metadata records of a node of type `ty`, normalized for `flags`.
pub(super) fn encode_metadata(
    flags: u64,
    meta: &Metadata,
    ty: FileType,
    out: &mut Vec<u8>,
) -> Result<()> {
    let e = &meta.entry;
    let (uid, gid) = (stored_id(flags, e.uid)?, stored_id(flags, e.gid)?);
    let user = owner_name(flags, meta.user.as_deref())?;
    let group = owner_name(flags, meta.group.as_deref())?;
    if flags & WITH_USER_NAMES != 0
        && !has_numeric_ids(flags)
        && (user.is_none() || group.is_none())
    {
        return Err(EncodeErrorKind::MissingName);
    }
    let entry = [
        flags,
        normalize_mode(flags, e.mode).into(),
        normalize_entry_flags(flags, ty, e.flags),
        uid,
        gid,
        normalize_mtime(flags, e.mtime),
    ];
    put_record(out, CA_FORMAT_ENTRY, &entry, &[]);
    for (kind, name) in [(CA_FORMAT_USER, user), (CA_FORMAT_GROUP, group)] {
        if let Some(name) = name {
            put_record(out, kind, &[], &[name, b"\0"]);
        }
    }
    if flags & WITH_XATTRS != 0 && ty != FileType::Symlink {
        let mut xattrs: Vec<_> = meta
            .xattrs
            .iter()
            .filter(|(n, _)| stored_xattr(n))
            .collect();
        xattrs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if xattrs.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(EncodeErrorKind::DuplicateXattr);
        }
        for (name, value) in xattrs {
            if value.len() > XATTR_VALUE_MAX_LEN {
                return Err(EncodeErrorKind::ValueTooLarge);
            }
            put_record(out, CA_FORMAT_XATTR, &[], &[name, b"\0", value]);
        }
    }
    if flags & WITH_ACL != 0 && ty != FileType::Symlink {
        encode_acl(flags, meta, ty, out)?;
    }
    if let Some(label) = meta
        .selinux
        .as_deref()
        .filter(|_| flags & WITH_SELINUX != 0)
    {
        if !valid_c_string(label, SELINUX_MAX_LEN) {
            return Err(EncodeErrorKind::BadString);
        }
        put_record(out, CA_FORMAT_SELINUX, &[], &[label, b"\0"]);
    }
    let fcaps = meta.fcaps.as_deref();
    if let Some(fcaps) = fcaps.filter(|_| flags & WITH_FCAPS != 0 && ty == FileType::Regular) {
        if fcaps.len() > FCAPS_MAX_LEN {
            return Err(EncodeErrorKind::ValueTooLarge);
        }
        put_record(out, CA_FORMAT_FCAPS, &[], &[fcaps]);
    }
    if meta.quota_projid != 0 && flags & WITH_QUOTA_PROJID != 0 && ty.has_attributes() {
        put_record(
            out,
            CA_FORMAT_QUOTA_PROJID,
            &[meta.quota_projid.into()],
            &[],
        );
    }
    Ok(())
}

/// Appends the ACL records of a node (the archive has the `acl` flag).
fn encode_acl(flags: u64, meta: &Metadata, ty: FileType, out: &mut Vec<u8>) -> Result<()> {
    let acl = &meta.acl;
    let (default, default_users, default_groups): (_, &[_], &[_]) = if ty == FileType::Directory {
        (acl.default, &acl.default_users, &acl.default_groups)
    } else {
        (None, &[], &[])
    };
    if (!acl.users.is_empty() || !acl.groups.is_empty()) && acl.group_obj.is_none() {
        return Err(EncodeErrorKind::MissingAclMask);
    }
    if (!default_users.is_empty() || !default_groups.is_empty())
        && default.and_then(|d| d.mask).is_none()
    {
        return Err(EncodeErrorKind::MissingAclMask);
    }
    encode_acl_entries(flags, CA_FORMAT_ACL_USER, &acl.users, out)?;
    encode_acl_entries(flags, CA_FORMAT_ACL_GROUP, &acl.groups, out)?;
    if let Some(p) = acl.group_obj {
        put_record(out, CA_FORMAT_ACL_GROUP_OBJ, &[permissions(p)?], &[]);
    }
    if let Some(d) = default {
        let mask = d.mask.map_or(Ok(u64::MAX), permissions)?;
        let perms = [
            permissions(d.user_obj)?,
            permissions(d.group_obj)?,
            permissions(d.other)?,
            mask,
        ];
        put_record(out, CA_FORMAT_ACL_DEFAULT, &perms, &[]);
    }
    encode_acl_entries(flags, CA_FORMAT_ACL_DEFAULT_USER, default_users, out)?;
    encode_acl_entries(flags, CA_FORMAT_ACL_DEFAULT_GROUP, default_groups, out)
}

/// Checks ACL permission bits.
fn permissions(p: u64) -> Result<u64> {
    if valid_permissions(p) {
        Ok(p)
    } else {
        Err(EncodeErrorKind::BadAclPermissions(p))
    }
}

/// Appends the named ACL entries of one list, as stored and in casync's order.
fn encode_acl_entries(
    flags: u64,
    kind: u64,
    list: &[AclEntry<Vec<u8>>],
    out: &mut Vec<u8>,
) -> Result<()> {
    // (id, name, permissions) as stored: the tuple order is casync's entry order.
    let mut stored = Vec::with_capacity(list.len());
    for entry in list {
        stored.push((
            stored_id(flags, entry.id)?,
            // casync names no ACL entry of id 0.
            owner_name(flags, entry.name.as_deref().filter(|_| entry.id != 0))?,
            permissions(entry.permissions)?,
        ));
    }
    stored.sort_unstable();
    if stored.windows(2).any(|w| w[0] == w[1]) {
        return Err(EncodeErrorKind::DuplicateAclEntry);
    }
    for (id, name, perms) in stored {
        let name: &[&[u8]] = match name {
            Some(n) => &[n, b"\0"],
            None => &[],
        };
        put_record(out, kind, &[id, perms], name);
    }
    Ok(())
}
