//! `otasync sign --key A.sec [--key B.sec …] FILE`: writes (or with `--append`, extends) the
//! detached signature file `FILE.sig`, one signify block per key.

use super::keyfiles::{read_capped, read_secret_key, signature_path, signing_error, write_replace};
use crate::error::{Error, Result};
use otasync_signing::{MAX_DOCUMENT, MAX_SIGNATURE_FILE, SignatureFile};
use std::path::{Path, PathBuf};

pub(crate) fn run(
    file: &Path,
    keys: &[PathBuf],
    output: Option<&Path>,
    append: bool,
) -> Result<()> {
    if keys.is_empty() {
        return Err(Error::Usage("sign: give at least one --key".into()));
    }
    let message = read_capped(file, MAX_DOCUMENT)?;
    let output = signature_path(file, output);
    let mut signatures = match append && output.exists() {
        true => SignatureFile::parse(&read_capped(&output, MAX_SIGNATURE_FILE)?)
            .map_err(|e| signing_error(&output, e))?,
        false => SignatureFile::default(),
    };
    for path in keys {
        let key = read_secret_key(path)?;
        let public = path.with_extension("pub");
        let name = public.file_name().unwrap_or_default().to_string_lossy();
        signatures
            .add(&format!("verify with {name}"), key.sign(&message))
            .map_err(|e| signing_error(&output, e))?;
    }
    write_replace(&output, signatures.to_file().as_bytes())
}
