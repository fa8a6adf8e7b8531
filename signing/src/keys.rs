//! Ed25519 keys in signify's formats, and key ids.
//!
//! * Key id: the lowercase hex SHA-256 of the raw 32-byte public key. Not TUF's hash of a
//!   canonical-JSON key object: there is no JSON canonicalisation to get wrong, and anyone can
//!   recompute it from a signify `.pub` file.
//! * Key number: signify's 8-byte `keynum`, which ties a signature to a public key. Keys made by
//!   [`SecretKey::generate`] use the first 8 bytes of the key id; keys made by `signify -G` have
//!   a random one, and work the same.
//! * Secret keys are signify's unencrypted form (`signify -G -n`: KDF rounds 0). Encrypted ones
//!   are refused as [`Error::Unsupported`]; protect the file instead (mode 0600, HSM, offline).

use crate::encoding::{base64_decode, base64_encode, hex_decode, hex_encode};
use crate::error::{Error, Result, malformed};
use crate::signify::{ALGORITHM, check_comment, read_block, write_block};
use alloc::string::String;
use core::fmt;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::de::{self, Deserialize, Deserializer};
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256, Sha512};

/// signify's 8-byte key number.
pub type KeyNum = [u8; 8];

/// Length of a signify public key's payload: `"Ed"`, keynum, key.
const PUBLIC_LEN: usize = 2 + 8 + 32;
/// Length of a signify secret key's payload: `"Ed"`, `"BK"`, rounds, salt, checksum, keynum, key.
const SECRET_LEN: usize = 2 + 2 + 4 + 16 + 8 + 8 + 64;

/// Hex SHA-256 of a raw public key: how trust roots name keys.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub [u8; 32]);

impl KeyId {
    /// The id of a raw public key.
    pub fn of(key: &VerifyingKey) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// Parses 64 lowercase hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        hex_decode(text).map(Self)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex_encode(&self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A public key and its signify key number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey {
    /// The key number signatures by this key carry.
    pub keynum: KeyNum,
    /// The Ed25519 key.
    pub key: VerifyingKey,
}

impl PublicKey {
    /// The key's id.
    pub fn id(&self) -> KeyId {
        KeyId::of(&self.key)
    }

    /// Parses a signify `.pub` file. Weak keys are refused ([`Error::WeakKey`]).
    pub fn from_file(text: &str) -> Result<Self> {
        let block = read_block(text, PUBLIC_LEN, "public key file")?;
        if !block.rest.is_empty() {
            return Err(malformed("public key file", "text after the key"));
        }
        Self::from_payload(&block.bytes)
    }

    /// Parses the base64 line of a `.pub` file, as trust roots hold keys.
    pub fn from_base64(text: &str) -> Result<Self> {
        let bytes = base64_decode(text.as_bytes())
            .filter(|b| b.len() == PUBLIC_LEN && b[..2] == ALGORITHM[..])
            .ok_or_else(|| malformed("public key", "not base64 of \"Ed\", keynum and key"))?;
        Self::from_payload(&bytes)
    }

    fn from_payload(bytes: &[u8]) -> Result<Self> {
        let keynum = bytes[2..10].try_into().expect("8 bytes");
        let raw: &[u8; 32] = bytes[10..].try_into().expect("32 bytes");
        let key = VerifyingKey::from_bytes(raw)
            .map_err(|_| malformed("public key", "not a point on the curve"))?;
        if key.is_weak() {
            return Err(Error::WeakKey {
                key_id: KeyId::of(&key),
            });
        }
        Ok(Self { keynum, key })
    }

    /// The base64 line of the `.pub` file.
    pub fn to_base64(&self) -> String {
        base64_encode(&self.payload())
    }

    /// A signify `.pub` file; `comment` must be one line of 1 to 1023 bytes.
    pub fn to_file(&self, comment: &str) -> Result<String> {
        check_comment(comment).map_err(|reason| malformed("comment", reason))?;
        let mut out = String::new();
        write_block(&mut out, comment, &self.payload());
        Ok(out)
    }

    fn payload(&self) -> [u8; PUBLIC_LEN] {
        let mut out = [0; PUBLIC_LEN];
        out[..2].copy_from_slice(ALGORITHM);
        out[2..10].copy_from_slice(&self.keynum);
        out[10..].copy_from_slice(self.key.as_bytes());
        out
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| de::Error::custom("a key id is 64 lowercase hex digits"))
    }
}

/// A signing key and its signify key number. Never printed: `Debug` shows the public half only.
pub struct SecretKey {
    keynum: KeyNum,
    key: SigningKey,
}

impl SecretKey {
    /// The key for a 32-byte seed, numbered with the first 8 bytes of its key id.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let id = KeyId::of(&key.verifying_key());
        Self {
            keynum: id.0[..8].try_into().expect("8 bytes"),
            key,
        }
    }

    /// A new key from the operating system's random source.
    #[cfg(feature = "keygen")]
    pub fn generate() -> core::result::Result<Self, getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        let key = Self::from_seed(&seed);
        seed.fill(0);
        Ok(key)
    }

    /// Parses an unencrypted signify `.sec` file (`signify -G -n`, or [`Self::to_file`]).
    pub fn from_file(text: &str) -> Result<Self> {
        let what = "secret key file";
        let block = read_block(text, SECRET_LEN, what)?;
        let b = &block.bytes;
        if !block.rest.is_empty() {
            return Err(malformed(what, "text after the key"));
        }
        if &b[2..4] != b"BK" {
            return Err(malformed(what, "unknown key derivation function"));
        }
        if b[4..8] != [0; 4] {
            return Err(Error::Unsupported {
                what: "secret key encryption",
                value: "passphrase-protected key (regenerate with signify -n)".into(),
            });
        }
        let pair: &[u8; 64] = b[40..].try_into().expect("64 bytes");
        if Sha512::digest(pair)[..8] != b[24..32] {
            return Err(malformed(what, "checksum mismatch"));
        }
        let key = SigningKey::from_keypair_bytes(pair)
            .map_err(|_| malformed(what, "the public half does not match the secret"))?;
        Ok(Self {
            keynum: b[32..40].try_into().expect("8 bytes"),
            key,
        })
    }

    /// An unencrypted signify `.sec` file (zero salt, KDF rounds 0, as `signify -n` writes).
    pub fn to_file(&self, comment: &str) -> Result<String> {
        check_comment(comment).map_err(|reason| malformed("comment", reason))?;
        let pair = self.key.to_keypair_bytes();
        let mut payload = [0u8; SECRET_LEN];
        payload[..2].copy_from_slice(ALGORITHM);
        payload[2..4].copy_from_slice(b"BK");
        payload[24..32].copy_from_slice(&Sha512::digest(pair)[..8]);
        payload[32..40].copy_from_slice(&self.keynum);
        payload[40..].copy_from_slice(&pair);
        let mut out = String::new();
        write_block(&mut out, comment, &payload);
        payload.fill(0);
        Ok(out)
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            keynum: self.keynum,
            key: self.key.verifying_key(),
        }
    }

    /// The signature of `message` (signify: Ed25519 over the whole message, no prehash).
    pub fn sign(&self, message: &[u8]) -> crate::Signature {
        crate::Signature {
            keynum: self.keynum,
            signature: self.key.sign(message),
        }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public {})", self.public().id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `key`'s `.sec` file with its payload changed by `edit`.
    fn edited_secret(edit: impl FnOnce(&mut [u8])) -> String {
        let text = SecretKey::from_seed(&[3; 32]).to_file("c").unwrap();
        let line = text.lines().nth(1).unwrap();
        let mut payload = base64_decode(line.as_bytes()).unwrap();
        edit(&mut payload);
        alloc::format!("untrusted comment: c\n{}\n", base64_encode(&payload))
    }

    #[test]
    fn passphrase_protected_secret_keys_are_unsupported() {
        let encrypted = edited_secret(|p| p[7] = 42);
        assert!(matches!(
            SecretKey::from_file(&encrypted),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn corrupted_secret_keys_fail_the_checksum() {
        let corrupt = edited_secret(|p| p[50] ^= 1);
        assert!(matches!(
            SecretKey::from_file(&corrupt),
            Err(Error::Malformed { .. })
        ));
        let other_kdf = edited_secret(|p| p[2] = b'X');
        assert!(matches!(
            SecretKey::from_file(&other_kdf),
            Err(Error::Malformed { .. })
        ));
        assert!(SecretKey::from_file(&edited_secret(|_| ())).is_ok());
    }
}
