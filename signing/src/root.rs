//! The trust root: which keys may sign, for which role, how many must agree; and its rotation.
//!
//! ```json
//! {
//!   "format": 1,
//!   "version": 2,
//!   "expires": "2030-01-01T00:00:00Z",
//!   "keys": { "<key id>": "<base64 line of the signify .pub file>", … },
//!   "roles": {
//!     "root":    { "keyids": ["<key id>", …], "threshold": 2 },
//!     "release": { "keyids": ["<key id>", …], "threshold": 1 }
//!   }
//! }
//! ```
//!
//! Loading refuses weak keys (S3), key ids that are not the hash of their key, two keys with the
//! same signify key number, role entries naming unknown or repeated keys, thresholds of 0 or
//! above the role's size, and a key in both roles (key separation). Version N+1 is accepted from
//! version N only when signed by a threshold of N's root keys and a threshold of its own (S19).

use crate::error::{Error, Result, malformed};
use crate::json::{MAX_DOCUMENT, parse_document, unique_map};
use crate::keys::{KeyId, PublicKey};
use crate::sigfile::SignatureFile;
use crate::threshold;
use crate::time::Timestamp;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// The only trust root format version understood.
pub const ROOT_FORMAT: u32 = 1;

/// The keys of one role and how many of them must sign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleDoc {
    keyids: Vec<KeyId>,
    threshold: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Roles {
    root: RoleDoc,
    release: RoleDoc,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RootDoc {
    format: u32,
    version: u64,
    expires: Timestamp,
    #[serde(deserialize_with = "unique_map")]
    keys: BTreeMap<KeyId, String>,
    roles: Roles,
}

/// A validated trust root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustRoot {
    doc: RootDoc,
    root_keys: Vec<PublicKey>,
    release_keys: Vec<PublicKey>,
}

/// The outcome of an accepted rotation N → N+1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// The new trust root, to persist.
    pub root: TrustRoot,
    /// The release key set changed: the metadata version floor must be reset (S8), see
    /// [`crate::History::after_rotation`].
    pub release_keys_changed: bool,
}

impl TrustRoot {
    /// A trust root from its parts; the same checks as [`Self::parse`].
    pub fn new(
        version: u64,
        expires: Timestamp,
        root: (&[PublicKey], usize),
        release: (&[PublicKey], usize),
    ) -> Result<Self> {
        let role = |(keys, threshold): (&[PublicKey], usize)| RoleDoc {
            keyids: keys.iter().map(PublicKey::id).collect(),
            threshold,
        };
        let keys = root.0.iter().chain(release.0);
        Self::validate(RootDoc {
            format: ROOT_FORMAT,
            version,
            expires,
            keys: keys.map(|k| (k.id(), k.to_base64())).collect(),
            roles: Roles {
                root: role(root),
                release: role(release),
            },
        })
    }

    /// Parses and validates a trust root (at most [`MAX_DOCUMENT`] bytes). The root shipped in
    /// the read-only rootfs is trusted as it is; later versions come through [`Self::rotate`].
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        Self::validate(parse_document(bytes, "trust root", &[("format", &["1"])])?)
    }

    fn validate(doc: RootDoc) -> Result<Self> {
        let what = "trust root";
        if doc.format != ROOT_FORMAT {
            return Err(Error::Unsupported {
                what: "format",
                value: alloc::format!("{}", doc.format),
            });
        }
        if doc.version == 0 {
            return Err(malformed(what, "versions start at 1"));
        }
        let mut keys: BTreeMap<KeyId, PublicKey> = BTreeMap::new();
        for (id, text) in &doc.keys {
            let key = PublicKey::from_base64(text)?;
            if key.id() != *id {
                return Err(malformed(
                    what,
                    alloc::format!("{id} is not the id of its key"),
                ));
            }
            if keys.values().any(|k| k.keynum == key.keynum) {
                return Err(malformed(what, "two keys share a signify key number"));
            }
            keys.insert(*id, key);
        }
        let resolve = |name: &str, role: &RoleDoc| -> Result<Vec<PublicKey>> {
            let mut out: Vec<PublicKey> = Vec::new();
            for id in &role.keyids {
                let key = keys.get(id).ok_or_else(|| {
                    malformed(what, alloc::format!("{name} names unknown key {id}"))
                })?;
                if out.contains(key) {
                    return Err(malformed(what, alloc::format!("{name} lists {id} twice")));
                }
                out.push(*key);
            }
            if role.threshold == 0 || role.threshold > out.len() {
                return Err(malformed(
                    what,
                    alloc::format!("{name} threshold out of range"),
                ));
            }
            Ok(out)
        };
        let root_keys = resolve("root", &doc.roles.root)?;
        let release_keys = resolve("release", &doc.roles.release)?;
        if root_keys.iter().any(|k| release_keys.contains(k)) {
            return Err(malformed(
                what,
                "a key is in both the root and the release role",
            ));
        }
        Ok(Self {
            doc,
            root_keys,
            release_keys,
        })
    }

    /// The JSON document (pretty-printed); [`Self::parse`] of it gives back `self`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(&self.doc).expect("plain data serializes");
        out.push(b'\n');
        out
    }

    /// The version, which rotation increases by exactly one.
    pub fn version(&self) -> u64 {
        self.doc.version
    }

    /// When this root stops being trusted.
    pub fn expires(&self) -> Timestamp {
        self.doc.expires
    }

    /// The keys that sign trust roots, and how many must.
    pub fn root_role(&self) -> (&[PublicKey], usize) {
        (&self.root_keys, self.doc.roles.root.threshold)
    }

    /// The keys that sign release manifests, and how many must.
    pub fn release_role(&self) -> (&[PublicKey], usize) {
        (&self.release_keys, self.doc.roles.release.threshold)
    }

    /// Refuses this root if it expires at or before `now` (S7).
    pub fn check_expiry(&self, now: Timestamp) -> Result<()> {
        if self.doc.expires <= now {
            return Err(Error::Expired {
                what: "trust root",
                expires: self.doc.expires,
                now,
            });
        }
        Ok(())
    }

    /// Checks that a threshold of release keys signed the raw `message` (S1, S2); the caps on
    /// the message and the signature file are checked first (S10).
    pub fn verify_release(&self, message: &[u8], signature_file: &[u8]) -> Result<()> {
        let signatures = capped(message, "manifest", signature_file)?;
        let (keys, threshold) = self.release_role();
        threshold::check("release", keys, threshold, message, &signatures)
    }

    /// Accepts `next` (the raw bytes of version N+1) if it is signed by a threshold of this
    /// root's root keys and a threshold of its own root keys (S19). Expiry is not checked here:
    /// walk the whole chain, then check the last root's expiry (TUF).
    pub fn rotate(&self, next: &[u8], signature_file: &[u8]) -> Result<Rotation> {
        let signatures = capped(next, "trust root", signature_file)?;
        let (keys, threshold) = self.root_role();
        threshold::check("root", keys, threshold, next, &signatures)?;
        let root = Self::parse(next)?;
        let expected = self.version().saturating_add(1);
        if root.version() < expected {
            return Err(Error::RollbackRejected {
                what: "trust root version",
                found: root.version(),
                minimum: expected,
            });
        }
        if root.version() != expected {
            return Err(Error::VersionSkipped {
                expected,
                found: root.version(),
            });
        }
        let (keys, threshold) = root.root_role();
        threshold::check("root", keys, threshold, next, &signatures)?;
        let ids = |r: &Self| {
            let mut ids = r.doc.roles.release.keyids.clone();
            ids.sort();
            ids
        };
        let release_keys_changed = ids(self) != ids(&root);
        Ok(Rotation {
            root,
            release_keys_changed,
        })
    }
}

/// Parses the signature file after checking the signed document's size cap.
fn capped(message: &[u8], what: &'static str, signature_file: &[u8]) -> Result<SignatureFile> {
    if message.len() > MAX_DOCUMENT {
        return Err(Error::TooLarge {
            what,
            limit: MAX_DOCUMENT,
        });
    }
    SignatureFile::parse(signature_file)
}
