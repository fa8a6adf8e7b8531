//! `otasync keygen --secret-key KEY.sec --public-key KEY.pub`: a new Ed25519 key pair in
//! signify's formats. The secret key is created with mode 0600, never overwrites a file and is
//! never printed; the key id is printed.

use super::keyfiles::write_new;
use crate::error::{Error, Result};
use otasync_signing::SecretKey;
use std::path::Path;

pub(crate) fn run(secret_path: &Path, public_path: &Path, comment: Option<&str>) -> Result<()> {
    let key = SecretKey::generate().map_err(|e| Error::Io {
        context: "reading the system's random source".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let public = key.public();
    let comment = comment.unwrap_or("otasync key");
    let invalid = |e: otasync_signing::Error| Error::Usage(format!("--comment: {e}"));
    let secret_text = key
        .to_file(&format!("{comment} secret key"))
        .map_err(invalid)?;
    let public_text = public
        .to_file(&format!("{comment} public key"))
        .map_err(invalid)?;
    write_new(secret_path, secret_text.as_bytes(), 0o600)?;
    write_new(public_path, public_text.as_bytes(), 0o644)?;
    println!("{}", public.id());
    Ok(())
}
