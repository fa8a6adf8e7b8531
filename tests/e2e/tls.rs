//! Test certificates made with rcgen at test time (nothing secret is committed): a CA, server
//! certificates for 127.0.0.1 (valid or expired), and a client CA with a client certificate.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, date_time_ymd};
use std::path::{Path, PathBuf};

/// PEM files written into a directory.
pub(crate) struct TestPki {
    pub(crate) ca: PathBuf,
    pub(crate) server_cert: PathBuf,
    pub(crate) server_key: PathBuf,
    pub(crate) expired_cert: PathBuf,
    pub(crate) client_ca: PathBuf,
    pub(crate) client_cert: PathBuf,
    pub(crate) client_key: PathBuf,
    pub(crate) other_ca: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    expired: bool,
) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    if expired {
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl TestPki {
    pub(crate) fn new(dir: &Path) -> Self {
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let server_ca = ca("otasync test CA");
        let (cert, key) = leaf(&server_ca, &["127.0.0.1", "localhost"], false);
        let (expired, expired_key) = leaf(&server_ca, &["127.0.0.1"], true);
        let client_ca = ca("otasync test client CA");
        let (client_cert, client_key) = leaf(&client_ca, &["device-0001"], false);
        let pki = Self {
            ca: write("ca.pem", &server_ca.pem()),
            server_cert: write("server.pem", &cert),
            server_key: write("server.key", &key),
            expired_cert: write("expired.pem", &expired),
            client_ca: write("client-ca.pem", &client_ca.pem()),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
            other_ca: write("other-ca.pem", &ca("someone else").pem()),
        };
        write("expired.key", &expired_key);
        pki
    }
}
