//! `otasync serve --store=DIR [--listen=ADDR] [--tls-cert=PEM --tls-key=PEM [--client-ca=PEM]]`:
//! a read-only HTTP/1.1 file server for development and tests, serving a store directory (and
//! index files in it). Keep-alive, GET and HEAD, single `Range: bytes=` ranges; nothing outside
//! the root is ever served (no `..`, no symlink leading out).

use crate::error::{Error, IoContext, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Most connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 256;
/// Longest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// A connection idle this long is closed.
const IDLE: Duration = Duration::from_secs(30);

/// TLS files for `serve`.
pub(crate) struct ServeTls {
    /// Server certificate chain (PEM).
    pub(crate) cert: PathBuf,
    /// Server private key (PEM).
    pub(crate) key: PathBuf,
    /// CA whose client certificates are required (mutual TLS).
    pub(crate) client_ca: Option<PathBuf>,
}

pub(crate) fn run(root: &Path, listen: &str, tls: Option<ServeTls>) -> Result<()> {
    let root = root.canonicalize().at("opening", root)?;
    let tls = tls.map(|t| server_config(&t)).transpose()?;
    let listener = TcpListener::bind(listen).context(|| format!("listening on {listen}"))?;
    let address = listener
        .local_addr()
        .context(|| "reading the listening address".into())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // The first line tells scripts where the server is (with port 0, the port chosen).
    println!("serving {} at {scheme}://{address}/", root.display());
    io::stdout()
        .flush()
        .context(|| "writing to stdout".into())?;
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            continue; // dropped: the client sees a closed connection and may retry
        }
        active.fetch_add(1, Ordering::Relaxed);
        let (root, tls, active) = (root.clone(), tls.clone(), Arc::clone(&active));
        std::thread::spawn(move || {
            let _ = stream.set_read_timeout(Some(IDLE));
            let _ = match tls {
                Some(config) => match rustls::ServerConnection::new(config) {
                    Ok(conn) => serve_connection(rustls::StreamOwned::new(conn, stream), &root),
                    Err(e) => Err(io::Error::other(e)),
                },
                None => serve_connection(stream, &root),
            };
            active.fetch_sub(1, Ordering::Relaxed);
        });
    }
    Ok(())
}

/// Serves requests on one connection until it closes or asks to.
fn serve_connection<S: Read + Write>(stream: S, root: &Path) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let Some(request) = read_head(&mut reader)? else {
            return Ok(());
        };
        let keep_alive = !request.close;
        respond(reader.get_mut(), root, &request)?;
        reader.get_mut().flush()?;
        if !keep_alive {
            return Ok(());
        }
    }
}

/// What the server needs of a request.
struct Request {
    method: String,
    path: String,
    range: Option<String>,
    close: bool,
}

fn read_head<R: BufRead>(reader: &mut R) -> io::Result<Option<Request>> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = String::new();
        let n = reader
            .by_ref()
            .take((MAX_HEAD - total + 1) as u64)
            .read_line(&mut line)?;
        if n == 0 {
            return Ok(None);
        }
        total += n;
        if total > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    let mut first = lines
        .first()
        .map(|l| l.split_whitespace())
        .into_iter()
        .flatten();
    let (method, path, version) = (first.next(), first.next(), first.next());
    let header = |name: &str| {
        lines.iter().skip(1).find_map(|l| {
            let (key, value) = l.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    };
    let connection = header("connection")
        .unwrap_or_default()
        .to_ascii_lowercase();
    Ok(Some(Request {
        method: method.unwrap_or_default().to_owned(),
        path: path.unwrap_or_default().to_owned(),
        range: header("range"),
        close: connection == "close" || version == Some("HTTP/1.0"),
    }))
}

fn respond<W: Write>(out: &mut W, root: &Path, request: &Request) -> io::Result<()> {
    if request.method != "GET" && request.method != "HEAD" {
        return status(out, "405 Method Not Allowed");
    }
    let Some(path) = resolve(root, &request.path) else {
        return status(out, "404 Not Found");
    };
    let Ok(mut file) = File::open(&path) else {
        return status(out, "404 Not Found");
    };
    let len = file.metadata()?.len();
    let (start, end, code) = match request.range.as_deref().map(|r| parse_range(r, len)) {
        None => (0, len, "200 OK"),
        Some(Some((start, end))) => (start, end, "206 Partial Content"),
        Some(None) => {
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n\r\n"
            );
            return out.write_all(head.as_bytes());
        }
    };
    let mut head = format!(
        "HTTP/1.1 {code}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\n",
        end - start
    );
    if code.starts_with("206") {
        head += &format!("Content-Range: bytes {start}-{}/{len}\r\n", end - 1);
    }
    head += "Content-Type: application/octet-stream\r\n\r\n";
    out.write_all(head.as_bytes())?;
    if request.method == "HEAD" {
        return Ok(());
    }
    io::Seek::seek(&mut file, io::SeekFrom::Start(start))?;
    let copied = io::copy(&mut file.take(end - start), out)?;
    if copied != end - start {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file shrank while served",
        ));
    }
    Ok(())
}

fn status<W: Write>(out: &mut W, status: &str) -> io::Result<()> {
    out.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
}

/// The file a request path names under `root`, if it is inside it: only normal components,
/// and the real path (symlinks resolved) must stay below the root.
fn resolve(root: &Path, request_path: &str) -> Option<PathBuf> {
    let path = request_path.split(['?', '#']).next()?;
    let relative = Path::new(path.strip_prefix('/')?);
    if path.contains('%')
        || !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let real = root.join(relative).canonicalize().ok()?;
    (real.starts_with(root) && real.is_file()).then_some(real)
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` against a file of `len` bytes: the half-open range,
/// or `None` when unsatisfiable.
fn parse_range(spec: &str, len: u64) -> Option<(u64, u64)> {
    let (first, last) = spec.strip_prefix("bytes=")?.split_once('-')?;
    let (start, end) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            (len.saturating_sub(n), len)
        }
        (first, "") => (first.parse().ok()?, len),
        (first, last) => (
            first.parse().ok()?,
            last.parse::<u64>().ok()?.saturating_add(1).min(len),
        ),
    };
    (start < end && start < len).then_some((start, end))
}

fn server_config(tls: &ServeTls) -> Result<Arc<rustls::ServerConfig>> {
    let pem_error = |path: &Path, e: rustls::pki_types::pem::Error| {
        Error::Usage(format!("{}: {e}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|iter| iter.collect())
        .map_err(|e| pem_error(&tls.cert, e))?;
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| pem_error(&tls.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Usage(format!("TLS: {e}")))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| pem_error(ca, e))? {
                roots
                    .add(cert.map_err(|e| pem_error(ca, e))?)
                    .map_err(|e| Error::Usage(format!("{}: {e}", ca.display())))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .map_err(|e| Error::Usage(format!("{}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| Error::Usage(format!("TLS: {e}")))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 100)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 100)));
        assert_eq!(parse_range("bytes=95-200", 100), Some((95, 100)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("lines=1-2", 100), None);
    }

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("a")).unwrap();
        std::fs::write(root.join("a/x.cacnk"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("a/out")).unwrap();
        assert!(resolve(&root, "/a/x.cacnk").is_some());
        assert!(resolve(&root, "/a/x.cacnk?v=1").is_some());
        for bad in [
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "a/x.cacnk",
            "/a/out",
            "/a",
            "/%2e%2e/x",
            "//etc/passwd",
        ] {
            assert!(resolve(&root, bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn keep_alive_and_range_over_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("f"), b"0123456789").unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server =
            std::thread::spawn(move || serve_connection(listener.accept().unwrap().0, &root));
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        client
            .write_all(b"GET /f HTTP/1.1\r\nHost: x\r\nRange: bytes=2-4\r\n\r\nGET /f HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).unwrap();
        server.join().unwrap().unwrap();
        assert!(answer.starts_with("HTTP/1.1 206"), "{answer}");
        assert!(
            answer.contains("Content-Range: bytes 2-4/10\r\n"),
            "{answer}"
        );
        assert!(answer.contains("\r\n\r\n234HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n0123456789"), "{answer}");
    }
}
