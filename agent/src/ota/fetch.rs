//! Fetching release metadata: the manifest and its signature file (capped, S10), the trust
//! root rotations published beside them, and each slot's `.caibx` (exactly its declared length
//! and SHA-256, S9, S10). Locations are the configured release URL and paths the signed
//! manifest gives relative to it; nothing else is fetched (S16). A release URL may also be a
//! local path (a USB stick, tests).

use crate::error::{Error, IoContext, Result};
use crate::store::http::{FetchError, HttpClient, is_url};
use otasync_core::DigestAlgorithm;
use otasync_signing::{MAX_DOCUMENT, MAX_SIGNATURE_FILE, Sha256 as Pinned};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// Reads release files over HTTP(S) or from the file system.
pub(crate) struct Fetcher {
    client: Option<Arc<HttpClient>>,
}

impl Fetcher {
    /// A fetcher using `client` for URLs.
    pub(crate) fn new(client: Option<Arc<HttpClient>>) -> Self {
        Self { client }
    }

    /// The bytes at `location`, at most `limit` of them (more is an error, never buffered);
    /// `Ok(None)` when the server or file system does not have it.
    pub(crate) fn get(&self, location: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let mut bytes = Vec::new();
        if !is_url(location) {
            let path = Path::new(location);
            let file = match std::fs::File::open(path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e).at("opening", path),
            };
            file.take(limit + 1)
                .read_to_end(&mut bytes)
                .at("reading", path)?;
            if bytes.len() as u64 > limit {
                return Err(too_large(location, limit));
            }
            return Ok(Some(bytes));
        }
        let Some(client) = &self.client else {
            return Err(Error::Usage(format!(
                "{location}: no HTTP client configured"
            )));
        };
        match client.get(location, limit, &mut bytes) {
            Ok(()) => Ok(Some(bytes)),
            Err(FetchError::NotFound) => Ok(None),
            Err(FetchError::TooLarge { .. }) => Err(too_large(location, limit)),
            Err(e) => Err(Error::Io {
                context: format!("fetching {location}"),
                source: std::io::Error::other(e.to_string()),
            }),
        }
    }

    /// Like [`Fetcher::get`], but absence is an error.
    pub(crate) fn require(&self, location: &str, limit: u64) -> Result<Vec<u8>> {
        self.get(location, limit)?
            .ok_or_else(|| Error::InvalidInput {
                path: location.to_owned(),
                reason: "not found".into(),
            })
    }

    /// The manifest at `url` and its signature file (`url.sig`), each within its cap.
    pub(crate) fn manifest(&self, url: &str) -> Result<(Vec<u8>, Vec<u8>)> {
        let manifest = self.require(url, MAX_DOCUMENT as u64)?;
        let signature = self.require(&format!("{url}.sig"), MAX_SIGNATURE_FILE as u64)?;
        Ok((manifest, signature))
    }

    /// A file the manifest pins: exactly `pinned_size` bytes hashing to `sha256` (S9, S10).
    pub(crate) fn pinned(
        &self,
        location: &str,
        sha256: &Pinned,
        pinned_size: u64,
    ) -> Result<Vec<u8>> {
        let bytes = self.require(location, pinned_size)?;
        check_pinned(location, &bytes, sha256, pinned_size)?;
        Ok(bytes)
    }
}

/// Checks bytes against the length and SHA-256 the manifest gives for them.
pub(crate) fn check_pinned(what: &str, bytes: &[u8], sha256: &Pinned, size: u64) -> Result<()> {
    if bytes.len() as u64 != size {
        return Err(Error::InvalidInput {
            path: what.to_owned(),
            reason: format!("{} bytes, the manifest says {size}", bytes.len()),
        });
    }
    if DigestAlgorithm::Sha256.digest(bytes).0 != sha256.0 {
        return Err(Error::InvalidInput {
            path: what.to_owned(),
            reason: "its SHA-256 differs from the manifest's".into(),
        });
    }
    Ok(())
}

/// `relative` resolved against the directory of `base` (a URL or a path).
pub(crate) fn sibling(base: &str, relative: &str) -> String {
    match base.rfind('/') {
        Some(slash) => format!("{}{relative}", &base[..=slash]),
        None => relative.to_owned(),
    }
}

fn too_large(location: &str, limit: u64) -> Error {
    Error::InvalidInput {
        path: location.to_owned(),
        reason: format!("larger than its {limit}-byte limit; refused"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_and_caps() {
        assert_eq!(
            sibling("https://h/rel/m.json", "a.caibx"),
            "https://h/rel/a.caibx"
        );
        assert_eq!(sibling("m.json", "a.caibx"), "a.caibx");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![1u8; 100]).unwrap();
        let fetcher = Fetcher::new(None);
        let location = path.to_str().unwrap();
        assert!(
            fetcher
                .get(location, 99)
                .unwrap_err()
                .to_string()
                .contains("limit")
        );
        assert_eq!(fetcher.get(location, 100).unwrap().unwrap().len(), 100);
        let sha = Pinned(DigestAlgorithm::Sha256.digest(&[1u8; 100]).0);
        assert!(fetcher.pinned(location, &sha, 100).is_ok());
        assert!(fetcher.pinned(location, &sha, 99).is_err());
        assert!(
            fetcher
                .get(&format!("{location}.missing"), 10)
                .unwrap()
                .is_none()
        );
    }
}
