//! `otasync sign --key A.sec [--key B.sec …] FILE`: writes (or with `--append`, extends) the
//! detached signature file `FILE.sig`, one signify block per key.

use super::keyfiles::{read_capped, read_secret_key, signature_path, signing_error, write_replace};
use crate::error::{Error, Result};
use otasync_signing::{MAX_DOCUMENT, MAX_SIGNATURE_FILE, SecretKey, SignatureFile};
use std::path::{Path, PathBuf};

pub(crate) fn run(
    file: &Path,
    keys: &[PathBuf],
    output: Option<&Path>,
    append: bool,
) -> Result<()> {
    let signer = Signer::load(keys)?;
    let message = read_capped(file, MAX_DOCUMENT)?;
    let output = signature_path(file, output);
    let mut signatures = match append && output.exists() {
        true => SignatureFile::parse(&read_capped(&output, MAX_SIGNATURE_FILE)?)
            .map_err(|e| signing_error(&output, e))?,
        false => SignatureFile::default(),
    };
    signer.sign_into(&message, &mut signatures, &output)?;
    write_replace(&output, signatures.to_file().as_bytes())
}

/// Secret keys read for signing (`sign`, `publish`), each with the comment its signature
/// block carries: `verify with NAME.pub`.
pub(crate) struct Signer {
    keys: Vec<(String, SecretKey)>,
}

impl Signer {
    /// Reads the keys; at least one is needed.
    pub(crate) fn load(paths: &[PathBuf]) -> Result<Self> {
        if paths.is_empty() {
            return Err(Error::Usage("sign: give at least one --key".into()));
        }
        let keys = paths
            .iter()
            .map(|path| {
                let key = read_secret_key(path)?;
                let public = path.with_extension("pub");
                let name = public.file_name().unwrap_or_default().to_string_lossy();
                Ok((format!("verify with {name}"), key))
            })
            .collect::<Result<_>>()?;
        Ok(Self { keys })
    }

    /// How many keys sign.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Adds one signature of `message` per key to `signatures`, the content of `output`.
    pub(crate) fn sign_into(
        &self,
        message: &[u8],
        signatures: &mut SignatureFile,
        output: &Path,
    ) -> Result<()> {
        for (comment, key) in &self.keys {
            signatures
                .add(comment, key.sign(message))
                .map_err(|e| signing_error(output, e))?;
        }
        Ok(())
    }
}
