//! POSIX ACLs as the kernel stores them in the `system.posix_acl_access` and
//! `system.posix_acl_default` xattrs, and their mapping to catar's ACL records (spec §4.5).
//!
//! Kernel format: le32 version 2, then entries of {le16 tag, le16 perm, le32 id}, sorted by
//! tag and then id; the id is meaningful for USER and GROUP entries only.

use otasync_core::catar::{Acl, AclDefault, AclEntry};

/// The xattr holding the access ACL.
pub(crate) const ACCESS_XATTR: &str = "system.posix_acl_access";
/// The xattr holding a directory's default ACL.
pub(crate) const DEFAULT_XATTR: &str = "system.posix_acl_default";

const VERSION: u32 = 2;
pub(crate) const USER_OBJ: u16 = 0x01;
pub(crate) const USER: u16 = 0x02;
pub(crate) const GROUP_OBJ: u16 = 0x04;
pub(crate) const GROUP: u16 = 0x08;
pub(crate) const MASK: u16 = 0x10;
pub(crate) const OTHER: u16 = 0x20;
/// The id of entries that have none.
const UNDEFINED_ID: u32 = u32::MAX;

/// One entry of a kernel ACL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct KernelEntry {
    /// `USER_OBJ`, `USER`, …
    pub(crate) tag: u16,
    /// Permission bits rwx = 4/2/1.
    pub(crate) perm: u16,
    /// uid or gid for `USER`/`GROUP`.
    pub(crate) id: u32,
}

/// Parses a kernel ACL xattr value; `None` if malformed.
pub(crate) fn decode(value: &[u8]) -> Option<Vec<KernelEntry>> {
    let (version, rest) = value.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*version) != VERSION || rest.len() % 8 != 0 {
        return None;
    }
    let entries = rest
        .chunks_exact(8)
        .map(|c| KernelEntry {
            tag: u16::from_le_bytes([c[0], c[1]]),
            perm: u16::from_le_bytes([c[2], c[3]]),
            id: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect::<Vec<_>>();
    let known = [USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER];
    entries
        .iter()
        .all(|e| known.contains(&e.tag) && e.perm & !7 == 0)
        .then_some(entries)
}

/// Encodes entries as a kernel ACL xattr value, sorted as the kernel requires.
pub(crate) fn encode(entries: &[KernelEntry]) -> Vec<u8> {
    let mut sorted = entries.to_vec();
    sorted.sort_unstable_by_key(|e| (e.tag, e.id));
    let mut out = Vec::with_capacity(4 + 8 * sorted.len());
    out.extend_from_slice(&VERSION.to_le_bytes());
    for e in sorted {
        let id = if matches!(e.tag, USER | GROUP) {
            e.id
        } else {
            UNDEFINED_ID
        };
        out.extend_from_slice(&e.tag.to_le_bytes());
        out.extend_from_slice(&e.perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    out
}

/// How names of ACL entries are looked up (`None` when the archive has no user names).
pub(crate) type NameLookup<'a> = Option<&'a mut dyn FnMut(bool, u32) -> Option<Vec<u8>>>;

/// Fills `acl` from the kernel access ACL (only what goes beyond the mode bits).
pub(crate) fn access_to_catar(entries: &[KernelEntry], acl: &mut Acl, mut names: NameLookup<'_>) {
    let mut has_mask = false;
    let mut group_obj = None;
    for e in entries {
        let mut named = |group: bool| AclEntry {
            id: e.id,
            name: names.as_mut().and_then(|f| f(group, e.id)),
            permissions: e.perm.into(),
        };
        match e.tag {
            USER => acl.users.push(named(false)),
            GROUP => acl.groups.push(named(true)),
            GROUP_OBJ => group_obj = Some(u64::from(e.perm)),
            MASK => has_mask = true,
            _ => {}
        }
    }
    if has_mask {
        acl.group_obj = group_obj;
    }
}

/// Fills `acl` from a directory's kernel default ACL.
pub(crate) fn default_to_catar(entries: &[KernelEntry], acl: &mut Acl, mut names: NameLookup<'_>) {
    if entries.is_empty() {
        return;
    }
    let mut d = AclDefault {
        user_obj: 0,
        group_obj: 0,
        other: 0,
        mask: None,
    };
    for e in entries {
        let perm = u64::from(e.perm);
        let mut named = |group: bool| AclEntry {
            id: e.id,
            name: names.as_mut().and_then(|f| f(group, e.id)),
            permissions: perm,
        };
        match e.tag {
            USER_OBJ => d.user_obj = perm,
            GROUP_OBJ => d.group_obj = perm,
            OTHER => d.other = perm,
            MASK => d.mask = Some(perm),
            USER => acl.default_users.push(named(false)),
            GROUP => acl.default_groups.push(named(true)),
            _ => {}
        }
    }
    acl.default = Some(d);
}

fn perm(p: u64) -> u16 {
    (p & 7) as u16
}

/// The kernel access ACL for a catar ACL and the node's mode, or `None` when the mode says
/// it all.
pub(crate) fn access_from_catar(
    acl: &Acl,
    mode: u32,
    mut id_of: impl FnMut(bool, &AclEntry<Vec<u8>>) -> u32,
) -> Option<Vec<KernelEntry>> {
    if acl.users.is_empty() && acl.groups.is_empty() && acl.group_obj.is_none() {
        return None;
    }
    let bits = |shift: u32| ((mode >> shift) & 7) as u16;
    let mut out = vec![
        KernelEntry {
            tag: USER_OBJ,
            perm: bits(6),
            id: UNDEFINED_ID,
        },
        KernelEntry {
            tag: GROUP_OBJ,
            perm: acl.group_obj.map_or(bits(3), perm),
            id: UNDEFINED_ID,
        },
        KernelEntry {
            tag: MASK,
            perm: bits(3),
            id: UNDEFINED_ID,
        },
        KernelEntry {
            tag: OTHER,
            perm: bits(0),
            id: UNDEFINED_ID,
        },
    ];
    push_named(&mut out, &acl.users, &acl.groups, &mut id_of);
    Some(out)
}

/// Appends the named user and group entries, in that order.
fn push_named(
    out: &mut Vec<KernelEntry>,
    users: &[AclEntry<Vec<u8>>],
    groups: &[AclEntry<Vec<u8>>],
    id_of: &mut impl FnMut(bool, &AclEntry<Vec<u8>>) -> u32,
) {
    for (group, list) in [(false, users), (true, groups)] {
        for e in list {
            out.push(KernelEntry {
                tag: if group { GROUP } else { USER },
                perm: perm(e.permissions),
                id: id_of(group, e),
            });
        }
    }
}

/// The kernel default ACL for a catar ACL, if it has one.
pub(crate) fn default_from_catar(
    acl: &Acl,
    mut id_of: impl FnMut(bool, &AclEntry<Vec<u8>>) -> u32,
) -> Option<Vec<KernelEntry>> {
    let d = acl.default?;
    let base = |tag, p| KernelEntry {
        tag,
        perm: perm(p),
        id: UNDEFINED_ID,
    };
    let mut out = vec![
        base(USER_OBJ, d.user_obj),
        base(GROUP_OBJ, d.group_obj),
        base(OTHER, d.other),
    ];
    if let Some(m) = d.mask {
        out.push(base(MASK, m));
    }
    push_named(
        &mut out,
        &acl.default_users,
        &acl.default_groups,
        &mut id_of,
    );
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xattr_round_trip() {
        // setfacl -m u:1000:rw,g:100:r on a 0640 file, as the kernel stores it.
        let raw: Vec<u8> = [
            &2u32.to_le_bytes()[..],
            &[1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff],
            &[2, 0, 6, 0, 0xe8, 3, 0, 0],
            &[4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff],
            &[8, 0, 4, 0, 100, 0, 0, 0],
            &[0x10, 0, 6, 0, 0xff, 0xff, 0xff, 0xff],
            &[0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
        ]
        .concat();
        let entries = decode(&raw).unwrap();
        assert_eq!(entries.len(), 6);
        assert_eq!(encode(&entries), raw);
        let mut acl = Acl::default();
        access_to_catar(&entries, &mut acl, None);
        assert_eq!(acl.users.len(), 1);
        assert_eq!((acl.users[0].id, acl.users[0].permissions), (1000, 6));
        assert_eq!((acl.groups[0].id, acl.groups[0].permissions), (100, 4));
        assert_eq!(acl.group_obj, Some(4));
        // Back, with the mask in the mode's group bits.
        let back = access_from_catar(&acl, 0o100660, |_, e| e.id).unwrap();
        assert_eq!(encode(&back), raw);
        assert!(decode(&raw[..7]).is_none());
        assert!(decode(&[1, 0, 0, 0]).is_none());
    }

    #[test]
    fn default_acl() {
        let entries = vec![
            KernelEntry {
                tag: USER_OBJ,
                perm: 7,
                id: UNDEFINED_ID,
            },
            KernelEntry {
                tag: USER,
                perm: 5,
                id: 7,
            },
            KernelEntry {
                tag: GROUP_OBJ,
                perm: 5,
                id: UNDEFINED_ID,
            },
            KernelEntry {
                tag: MASK,
                perm: 5,
                id: UNDEFINED_ID,
            },
            KernelEntry {
                tag: OTHER,
                perm: 0,
                id: UNDEFINED_ID,
            },
        ];
        let mut acl = Acl::default();
        let mut names = |_: bool, id: u32| (id == 7).then(|| b"lp".to_vec());
        default_to_catar(&entries, &mut acl, Some(&mut names));
        let d = acl.default.unwrap();
        assert_eq!(
            (d.user_obj, d.group_obj, d.other, d.mask),
            (7, 5, 0, Some(5))
        );
        assert_eq!(acl.default_users[0].name.as_deref(), Some(&b"lp"[..]));
        let back = default_from_catar(&acl, |_, e| e.id).unwrap();
        assert_eq!(encode(&back), encode(&entries));
    }
}
