//! Debian's nginx, started by a test on a free loopback port with a generated configuration,
//! serving a directory read-only; stopped when dropped.

use crate::support::s;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx.
pub(crate) struct Nginx {
    pub(crate) port: u16,
    scheme: &'static str,
    child: Child,
    access_log: PathBuf,
}

impl Nginx {
    /// Serves `root` over plain HTTP, or `None` (with a visible message) when nginx is missing
    /// outside CI.
    pub(crate) fn start(root: &Path, work: &Path) -> Option<Self> {
        Self::start_with(root, work, "")
    }

    /// Serves `root` over HTTPS with this certificate and key; with `client_ca`, clients must
    /// present a certificate it signed.
    pub(crate) fn start_tls(
        root: &Path,
        work: &Path,
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
    ) -> Option<Self> {
        let mut tls = format!(
            "ssl_certificate {};\n    ssl_certificate_key {};\n",
            s(cert),
            s(key)
        );
        if let Some(client_ca) = client_ca {
            tls += &format!(
                "    ssl_client_certificate {};\n    ssl_verify_client on;\n",
                s(client_ca)
            );
        }
        Self::start_with(root, work, &tls)
    }

    fn start_with(root: &Path, work: &Path, tls: &str) -> Option<Self> {
        let exists = Path::new("/usr/sbin/nginx").exists();
        if !exists {
            assert!(std::env::var_os("CI").is_none(), "CI installs nginx-light");
            eprintln!("SKIPPED: nginx is not installed (apt-get install nginx-light)");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let access_log = work.join("access.log");
        let config = work.join("nginx.conf");
        std::fs::write(
            &config,
            format!(
                "user root;\nworker_processes 1;\npid {work}/nginx.pid;\nerror_log {work}/error.log;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  access_log {log};\n  client_body_temp_path {work}/tmp;\n  proxy_temp_path {work}/tmp;\n\
                 fastcgi_temp_path {work}/tmp;\n  uwsgi_temp_path {work}/tmp;\n  scgi_temp_path {work}/tmp;\n\
                 keepalive_requests 100000;\n\
                 server {{\n    listen 127.0.0.1:{port}{ssl};\n    root {root};\n    {tls}  }}\n}}\n",
                work = s(work),
                log = s(&access_log),
                root = s(root),
                ssl = if tls.is_empty() { "" } else { " ssl" },
            ),
        )
        .unwrap();
        std::fs::create_dir_all(work.join("tmp")).unwrap();
        let child = Command::new("/usr/sbin/nginx")
            .args(["-c", s(&config), "-p", s(work), "-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let nginx = Self {
            port,
            scheme: if tls.is_empty() { "http" } else { "https" },
            child,
            access_log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(nginx)
    }

    /// A URL on this server.
    pub(crate) fn url(&self, path: &str) -> String {
        format!(
            "{}://127.0.0.1:{}/{}",
            self.scheme,
            self.port,
            path.trim_start_matches('/')
        )
    }

    /// Logged requests whose line contains `needle`.
    pub(crate) fn requests(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.access_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
