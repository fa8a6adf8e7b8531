//! Remote stores and indexes over HTTP: against Debian's nginx serving a store casync made, and
//! against a loopback server that fails on purpose. Every case ends in the right output or a
//! clear error within its deadline; never a wrong output.

use crate::fault_server::{Fault, FaultServer};
use crate::nginx::Nginx;
use crate::support::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const EXIT_FAILURE: i32 = 1;
const EXIT_CHUNK_CORRUPT: i32 = 5;

/// An image, its index and store made by casync (or by otasync without casync), under `www/`.
struct Site {
    dir: tempfile::TempDir,
    data: Vec<u8>,
}

impl Site {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let www = dir.path().join("www");
        std::fs::create_dir(&www).unwrap();
        let mut data = text_bytes(900_000);
        data.extend(random_bytes(700_000, 77));
        data.extend(vec![0u8; 600_000]);
        let image = dir.path().join("image.img");
        std::fs::write(&image, &data).unwrap();
        let store = format!("--store={}", s(&www.join("default.castr")));
        let index = www.join("image.caibx");
        let made_by_casync = std::process::Command::new("casync")
            .arg("--version")
            .output()
            .is_ok();
        if made_by_casync {
            ok(casync(&[&store, "make", s(&index), s(&image)]));
        } else {
            ok(otasync(&[&store, "make", s(&index), s(&image)]));
        }
        Self { dir, data }
    }

    fn www(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn chunk_files(&self) -> usize {
        files_below(&self.www().join("default.castr")).len()
    }

    fn assert_output(&self, out: &Path) {
        assert!(
            std::fs::read(out).unwrap() == self.data,
            "output differs from the image"
        );
    }

    fn assert_no_output(&self, out: &Path) {
        assert!(!out.exists(), "a failed extraction left {}", out.display());
        let litter: Vec<_> = std::fs::read_dir(out.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".#"))
            .collect();
        assert!(litter.is_empty(), "temporary files left: {litter:?}");
    }
}

#[test]
fn extracts_from_nginx_with_the_index_url_and_default_store() {
    let site = Site::new();
    let Some(nginx) = Nginx::start(&site.www(), site.dir.path()) else {
        return;
    };
    let out = site.path("out.img");
    let stats: serde_json::Value = serde_json::from_str(&ok(otasync(&[
        "extract",
        "--json",
        &nginx.url("image.caibx"),
        s(&out),
    ])))
    .unwrap();
    site.assert_output(&out);
    // Every distinct non-zero chunk was requested exactly once.
    let fetched = stats["stores"][0]["chunks"].as_u64().unwrap() as usize;
    assert_eq!(nginx.requests(".cacnk"), fetched);
    assert!(fetched <= site.chunk_files());
    // Same again to stdout, with the store given explicitly and a custom header.
    let store = format!("--store={}", nginx.url("default.castr/"));
    let got = otasync(&[
        "extract",
        &store,
        "--header=X-Fleet: test",
        &nginx.url("image.caibx"),
        "-",
    ])
    .output()
    .unwrap();
    assert!(got.status.success());
    assert!(got.stdout == site.data);
}

#[test]
fn seeded_update_over_http_fetches_each_missing_chunk_once() {
    let site = Site::new();
    // v2: the image with a changed region; the device holds v1 (the image) as its seed.
    let mut v2 = site.data.clone();
    for b in &mut v2[100_000..160_000] {
        *b = b.wrapping_add(1);
    }
    std::fs::write(site.path("v2.img"), &v2).unwrap();
    let store = format!("--store={}", s(&site.www().join("default.castr")));
    ok(otasync(&[
        &store,
        "make",
        s(&site.www().join("v2.caibx")),
        s(&site.path("v2.img")),
    ]));
    let Some(nginx) = Nginx::start(&site.www(), site.dir.path()) else {
        return;
    };
    let seed = format!("--seed={}", s(&site.path("image.img")));
    let info: serde_json::Value = serde_json::from_str(&ok(otasync(&[
        "info",
        "--json",
        &seed,
        &nginx.url("v2.caibx"),
    ])))
    .unwrap();
    let requests_before = nginx.requests(".cacnk");
    let out = site.path("v2-out.img");
    let stats: serde_json::Value = serde_json::from_str(&ok(otasync(&[
        "extract",
        "--json",
        &seed,
        &nginx.url("v2.caibx"),
        s(&out),
    ])))
    .unwrap();
    assert!(std::fs::read(&out).unwrap() == v2);
    let fetched = stats["stores"][0]["chunks"].as_u64().unwrap();
    assert!(
        fetched > 0 && fetched < 8,
        "only the changed region is fetched: {stats}"
    );
    assert_eq!(
        nginx.requests(".cacnk") - requests_before,
        fetched as usize,
        "no duplicate requests"
    );
    assert_eq!(
        stats["stores"][0]["requests"], fetched,
        "the report counts requests"
    );
    assert_eq!(info["fetch"]["chunks"], fetched, "the dry run predicted it");
    assert_eq!(
        info["fetch"]["stored_bytes"],
        stats["stores"][0]["fetched_bytes"]
    );
}

/// Extracts the site's index with the given mirrors (in order); returns the command's result.
fn extract_via(
    site: &Site,
    index_url: &str,
    mirrors: &[String],
    extra: &[&str],
) -> std::process::Output {
    let mut args: Vec<String> = vec!["extract".into(), "--retries=1".into(), "--json".into()];
    args.extend(mirrors.iter().map(|m| format!("--store={m}")));
    args.extend(extra.iter().map(|e| e.to_string()));
    args.push(index_url.into());
    args.push(s(&site.path("out.img")).into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    otasync(&args).output().unwrap()
}

#[test]
fn broken_first_mirrors_fall_through_to_a_good_one() {
    let site = Site::new();
    let good = FaultServer::start(site.www(), Fault::None);
    for fault in [
        Fault::Status(404),
        Fault::Status(503),
        Fault::DropMidBody,
        Fault::Corrupt,
    ] {
        let bad = FaultServer::start(site.www(), fault);
        let mirrors = [bad.url("default.castr"), good.url("default.castr")];
        let out = extract_via(&site, &good.url("image.caibx"), &mirrors, &[]);
        assert!(
            out.status.success(),
            "{fault:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        site.assert_output(&site.path("out.img"));
        assert!(
            bad.count(".cacnk") > 0,
            "{fault:?}: the bad mirror was tried first"
        );
        std::fs::remove_file(site.path("out.img")).unwrap();
    }
}

#[test]
fn only_bad_mirrors_fail_cleanly() {
    let site = Site::new();
    let index_server = FaultServer::start(site.www(), Fault::None);
    let cases = [
        (Fault::Corrupt, EXIT_CHUNK_CORRUPT, "corrupt"),
        (Fault::Status(500), EXIT_FAILURE, "HTTP 500"),
        (Fault::Endless, EXIT_FAILURE, "larger than"),
    ];
    for (fault, code, message) in cases {
        let bad = FaultServer::start(site.www(), fault);
        let out = extract_via(
            &site,
            &index_server.url("image.caibx"),
            &[bad.url("default.castr")],
            &[],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{fault:?}: {stderr}");
        assert!(stderr.contains(message), "{fault:?}: {stderr}");
        site.assert_no_output(&site.path("out.img"));
    }
}

#[test]
fn a_trickling_server_is_abandoned_within_the_deadline() {
    let site = Site::new();
    let index_server = FaultServer::start(site.www(), Fault::None);
    let slow = FaultServer::start(site.www(), Fault::Trickle);
    // Each way of giving up on a server that sends one byte a second: per request, below a
    // minimum rate, or at the overall deadline.
    for (options, message) in [
        (&["--request-timeout=2", "--retries=0"][..], "timeout"),
        (&["--min-rate-bps=1K", "--retries=0"][..], "stalled"),
        (&["--deadline=3"][..], "deadline"),
    ] {
        let started = Instant::now();
        let out = extract_via(
            &site,
            &index_server.url("image.caibx"),
            &[slow.url("default.castr")],
            options,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{options:?}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{options:?} took {:?}",
            started.elapsed()
        );
        assert!(stderr.contains(message), "{options:?}: {stderr}");
        site.assert_no_output(&site.path("out.img"));
    }
}

#[test]
fn redirects_and_missing_indexes_are_refused() {
    let site = Site::new();
    let good = FaultServer::start(site.www(), Fault::None);
    let redirecting = FaultServer::start(site.www(), Fault::RedirectTo(good.port));
    let out = extract_via(
        &site,
        &redirecting.url("image.caibx"),
        &[good.url("default.castr")],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("redirect"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        good.count("image.caibx"),
        0,
        "the redirect was not followed"
    );
    let out = extract_via(
        &site,
        &good.url("nothing.caibx"),
        &[good.url("default.castr")],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    site.assert_no_output(&site.path("out.img"));
}

#[test]
fn headers_are_sent_and_the_rate_is_capped() {
    let site = Site::new();
    let server = FaultServer::start(site.www(), Fault::None);
    let started = Instant::now();
    let out = extract_via(
        &site,
        &server.url("image.caibx"),
        &[server.url("default.castr")],
        &[
            "--header=Authorization: Bearer t0ken",
            "--rate-limit-bps=2M",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    site.assert_output(&site.path("out.img"));
    let requests = server.requests.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .all(|r| r.to_lowercase().contains("authorization: bearer t0ken"))
    );
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fetched = stats["stores"][0]["fetched_bytes"].as_u64().unwrap();
    let floor = Duration::from_secs_f64(fetched as f64 / (2 << 20) as f64 * 0.9);
    assert!(
        started.elapsed() >= floor,
        "{fetched} bytes in {:?} at 2 MiB/s",
        started.elapsed()
    );
}

#[test]
fn https_with_a_pinned_ca_and_mutual_tls() {
    let site = Site::new();
    let pki = crate::tls::TestPki::new(site.dir.path());
    let work = site.path("nginx-tls");
    std::fs::create_dir(&work).unwrap();
    let Some(nginx) = Nginx::start_tls(&site.www(), &work, &pki.server_cert, &pki.server_key, None)
    else {
        return;
    };
    let index = nginx.url("image.caibx");
    let out = site.path("out.img");
    let ca = format!("--ca={}", s(&pki.ca));
    ok(otasync(&["extract", &ca, &index, s(&out)]));
    site.assert_output(&out);
    std::fs::remove_file(&out).unwrap();
    // No CA configured, or the wrong one: refused, with the reason.
    for args in [vec![], vec![format!("--ca={}", s(&pki.other_ca))]] {
        let mut cmd: Vec<&str> = vec!["extract", "--retries=0"];
        cmd.extend(args.iter().map(String::as_str));
        cmd.extend([index.as_str(), s(&out)]);
        let stderr = fails(otasync(&cmd), EXIT_FAILURE);
        assert!(
            stderr.contains("UnknownIssuer") || stderr.to_lowercase().contains("certificate"),
            "{stderr}"
        );
        site.assert_no_output(&out);
    }
    drop(nginx);

    // An expired server certificate.
    let work = site.path("nginx-expired");
    std::fs::create_dir(&work).unwrap();
    let Some(expired) = Nginx::start_tls(
        &site.www(),
        &work,
        &pki.expired_cert,
        &site.path("expired.key"),
        None,
    ) else {
        return;
    };
    let stderr = fails(
        otasync(&[
            "extract",
            "--retries=0",
            &ca,
            &expired.url("image.caibx"),
            s(&out),
        ]),
        EXIT_FAILURE,
    );
    assert!(stderr.to_lowercase().contains("expired"), "{stderr}");
    drop(expired);

    // Mutual TLS: the server wants a client certificate from its client CA.
    let work = site.path("nginx-mtls");
    std::fs::create_dir(&work).unwrap();
    let Some(mtls) = Nginx::start_tls(
        &site.www(),
        &work,
        &pki.server_cert,
        &pki.server_key,
        Some(&pki.client_ca),
    ) else {
        return;
    };
    let index = mtls.url("image.caibx");
    let stderr = fails(
        otasync(&["extract", "--retries=0", &ca, &index, s(&out)]),
        EXIT_FAILURE,
    );
    assert!(
        stderr.contains("HTTP 400") || stderr.contains("certificate"),
        "{stderr}"
    );
    let cert = format!("--client-cert={}", s(&pki.client_cert));
    let key = format!("--client-key={}", s(&pki.client_key));
    ok(otasync(&["extract", &ca, &cert, &key, &index, s(&out)]));
    site.assert_output(&out);
}

/// `otasync serve` running as a child process; killed when dropped.
pub(crate) struct Served {
    child: std::process::Child,
    pub(crate) base: String,
}

impl Served {
    /// Serves `root` with extra `serve` arguments.
    pub(crate) fn start(root: &Path, extra: &[&str]) -> Self {
        use std::io::BufRead;
        let store = format!("--store={}", s(root));
        let mut args = vec!["serve", store.as_str()];
        args.extend_from_slice(extra);
        let mut child = otasync(&args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .split(" at ")
            .nth(1)
            .expect("serve prints its address")
            .trim()
            .to_owned();
        Self { child, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_is_a_store_for_otasync_and_casync() {
    let site = Site::new();
    let served = Served::start(&site.www(), &[]);
    let out = site.path("out.img");
    ok(otasync(&["extract", &served.url("image.caibx"), s(&out)]));
    site.assert_output(&out);
    if have_casync() {
        // casync's HTTP helper (curl) talks to it too.
        let theirs = site.path("casync.img");
        ok(casync(&["extract", &served.url("image.caibx"), s(&theirs)]));
        site.assert_output(&theirs);
    }
    // Nothing outside the root.
    let port: u16 = served
        .base
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read, Write};
    socket
        .write_all(b"GET /../../../../etc/passwd HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}

#[test]
fn serve_over_https_with_client_certificates() {
    let site = Site::new();
    let pki = crate::tls::TestPki::new(site.dir.path());
    let (cert, key, client_ca) = (
        format!("--tls-cert={}", s(&pki.server_cert)),
        format!("--tls-key={}", s(&pki.server_key)),
        format!("--client-ca={}", s(&pki.client_ca)),
    );
    let served = Served::start(&site.www(), &[&cert, &key, &client_ca]);
    assert!(served.base.starts_with("https://"));
    let out = site.path("out.img");
    let ca = format!("--ca={}", s(&pki.ca));
    fails(
        otasync(&[
            "extract",
            "--retries=0",
            &ca,
            &served.url("image.caibx"),
            s(&out),
        ]),
        EXIT_FAILURE,
    );
    site.assert_no_output(&out);
    let client = [
        format!("--client-cert={}", s(&pki.client_cert)),
        format!("--client-key={}", s(&pki.client_key)),
    ];
    ok(otasync(&[
        "extract",
        &ca,
        &client[0],
        &client[1],
        &served.url("image.caibx"),
        s(&out),
    ]));
    site.assert_output(&out);
}
