//! Chunk stores and index files over HTTP(S), with ureq and rustls (ring): blocking, one shared
//! connection pool, keep-alive. Every response body is read up to a bound and no further
//! (endless-data defence); redirects are refused; 5xx answers, resets and timeouts are retried
//! with exponential backoff and jitter; a store that keeps failing is skipped for a while so
//! that the next mirror serves. Nothing fetched is trusted: chunks are verified by id later.

use super::ChunkStore;
use crate::error::{Error, Result};
use otasync_core::ChunkId;
use std::collections::HashMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};

/// Consecutive failures after which a store is skipped for [`SKIP_FOR`].
const FAILURES_BEFORE_SKIP: u32 = 3;
/// How long a failing store is skipped.
const SKIP_FOR: Duration = Duration::from_secs(30);
/// First retry delay; doubled on each further retry.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// How to talk HTTP: TLS trust, client identity, headers, timeouts, retries, rate.
#[derive(Clone, Debug, Default)]
pub(crate) struct HttpSettings {
    /// PEM file of the CA certificates to trust (instead of none: there is no built-in store).
    pub(crate) ca: Option<PathBuf>,
    /// PEM client certificate chain and key, for mutual TLS.
    pub(crate) client_cert: Option<(PathBuf, PathBuf)>,
    /// Extra request headers (`Name: value`).
    pub(crate) headers: Vec<(String, String)>,
    /// Connect timeout.
    pub(crate) connect_timeout: Duration,
    /// Longest wait for any single read (idle timeout).
    pub(crate) read_timeout: Duration,
    /// Limit on a whole request, body included.
    pub(crate) request_timeout: Duration,
    /// Retries after the first attempt.
    pub(crate) retries: u32,
    /// Cap on the download rate, bytes per second, over all requests.
    pub(crate) rate_limit_bps: Option<u64>,
    /// A transfer slower than this (bytes per second, averaged after [`THROUGHPUT_WINDOW`]) is
    /// abandoned as stalled and retried.
    pub(crate) min_rate_bps: Option<u64>,
    /// When the whole operation must be over: no request starts or continues after it.
    pub(crate) deadline: Option<Instant>,
}

/// The time a transfer gets before its average rate is held against `min_rate_bps`.
pub(crate) const THROUGHPUT_WINDOW: Duration = Duration::from_secs(5);

/// A shared HTTP client.
pub(crate) struct HttpClient {
    agent: ureq::Agent,
    settings: HttpSettings,
    limiter: Option<RateLimiter>,
}

/// Why a request did not give a body.
#[derive(Debug)]
pub(crate) enum FetchError {
    /// 404 or 410: the server does not have it.
    NotFound,
    /// Anything else, after retries.
    Failed(String),
    /// The body is longer than the limit the caller gave: cut off there, never buffered.
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFound => f.write_str("not found"),
            Self::Failed(reason) => f.write_str(reason),
            Self::TooLarge { limit } => write!(f, "body larger than {limit} bytes: cut off"),
        }
    }
}

impl HttpClient {
    /// A client with these settings; reads the CA and client certificate files now.
    pub(crate) fn new(settings: HttpSettings) -> Result<Self> {
        let tls = tls_config(&settings)?;
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(settings.connect_timeout))
            .timeout_per_read(Some(settings.read_timeout))
            .timeout_per_call(Some(settings.request_timeout))
            .max_idle_connections_per_host(64)
            .user_agent(concat!("otasync/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build();
        let limiter = settings.rate_limit_bps.map(RateLimiter::new);
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default(),
            CachingResolver::default(),
        );
        Ok(Self {
            agent,
            settings,
            limiter,
        })
    }

    /// The configured agent, for requests other than store GETs (S3 uploads sign their own).
    pub(crate) fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    /// The settings the client was made with.
    pub(crate) fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// GETs `url`, reading at most `limit` bytes of body into `buf` (more is an error, never
    /// buffered). Retries what may succeed on another try.
    pub(crate) fn get(&self, url: &str, limit: u64, buf: &mut Vec<u8>) -> Result<(), FetchError> {
        self.get_counted(url, limit, buf, &AtomicU64::new(0))
    }

    /// [`HttpClient::get`], adding the requests made (retries included) to `requests`.
    fn get_counted(
        &self,
        url: &str,
        limit: u64,
        buf: &mut Vec<u8>,
        requests: &AtomicU64,
    ) -> Result<(), FetchError> {
        let mut delay = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            if self.settings.deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(FetchError::Failed("the overall deadline has passed".into()));
            }
            requests.fetch_add(1, Ordering::Relaxed);
            match self.get_once(url, limit, buf) {
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Retry(reason)) if attempt < self.settings.retries => {
                    log::debug!("{url}: {reason}; retrying in {delay:?}");
                    std::thread::sleep(delay + jitter(delay));
                    delay *= 2;
                    attempt += 1;
                }
                Err(Attempt::Retry(reason)) => return Err(FetchError::Failed(reason)),
                Ok(()) => return Ok(()),
            }
        }
    }

    fn get_once(&self, url: &str, limit: u64, buf: &mut Vec<u8>) -> Result<(), Attempt> {
        let started = Instant::now();
        let mut request = self.agent.get(url);
        for (name, value) in &self.settings.headers {
            request = request.header(name, value);
        }
        if let Some(deadline) = self.settings.deadline {
            let left = deadline
                .saturating_duration_since(started)
                .min(self.settings.request_timeout);
            request = request.config().timeout_per_call(Some(left)).build();
        }
        let mut response = request.call().map_err(classify)?;
        match response.status().as_u16() {
            200 => {}
            404 | 410 => return Err(Attempt::Final(FetchError::NotFound)),
            code @ (500..=599 | 408 | 429) => return Err(Attempt::Retry(format!("HTTP {code}"))),
            code @ 300..=399 => {
                return Err(Attempt::Final(FetchError::Failed(format!(
                    "HTTP {code}: redirects are refused"
                ))));
            }
            code => return Err(Attempt::Final(FetchError::Failed(format!("HTTP {code}")))),
        }
        buf.clear();
        let mut body = response.body_mut().with_config().limit(limit).reader();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = match body.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) => return Err(classify_io(e, limit)),
            };
            buf.extend_from_slice(&chunk[..n]);
            if let Some(limiter) = &self.limiter {
                limiter.take(n as u64);
            }
            let elapsed = started.elapsed();
            if let Some(min) = self.settings.min_rate_bps
                && elapsed > THROUGHPUT_WINDOW
                && (buf.len() as f64) < min as f64 * elapsed.as_secs_f64()
            {
                return Err(Attempt::Retry(format!(
                    "stalled: {} bytes in {elapsed:.1?}, below {min} bytes/s",
                    buf.len()
                )));
            }
        }
    }
}

/// One attempt's failure: worth retrying or not.
enum Attempt {
    Retry(String),
    Final(FetchError),
}

fn classify(e: ureq::Error) -> Attempt {
    match e {
        ureq::Error::Io(e) => classify_io(e, 0),
        ureq::Error::Timeout(t) => Attempt::Retry(format!("timeout ({t})")),
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => Attempt::Retry(e.to_string()),
        ureq::Error::BodyExceedsLimit(limit) => Attempt::Final(FetchError::TooLarge { limit }),
        other => Attempt::Final(FetchError::Failed(other.to_string())),
    }
}

fn classify_io(e: io::Error, limit: u64) -> Attempt {
    // ureq reports an over-long body and its own timeouts wrapped in io::Error.
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
    {
        Some(ureq::Error::BodyExceedsLimit(_)) => Attempt::Final(FetchError::TooLarge { limit }),
        _ => Attempt::Retry(e.to_string()),
    }
}

/// How long a host's resolved addresses are reused.
const RESOLVE_TTL: Duration = Duration::from_secs(60);

/// ureq resolves the host again for every request, even on a pooled connection, and on a new
/// thread whenever a timeout is set (one thread per chunk); this remembers each host's
/// addresses for [`RESOLVE_TTL`].
#[derive(Debug, Default)]
struct CachingResolver {
    inner: DefaultResolver,
    cache: Mutex<HashMap<String, (Instant, ResolvedSocketAddrs)>>,
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let key = format!("{:?}://{:?}", uri.scheme(), uri.authority());
        let cache = || self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, addrs)) = cache().get(&key)
            && at.elapsed() < RESOLVE_TTL
        {
            return Ok(addrs.clone());
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        cache().insert(key, (Instant::now(), addrs.clone()));
        Ok(addrs)
    }
}

/// Up to half of `delay`, pseudo-random, so that retrying clients spread out.
pub(crate) fn jitter(delay: Duration) -> Duration {
    let r = crate::fsutil::random_u64() % 1000;
    delay.mul_f64(r as f64 / 2000.0)
}

fn tls_config(settings: &HttpSettings) -> Result<TlsConfig> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|source| Error::Io {
            context: format!("reading {}", path.display()),
            source,
        })
    };
    let bad = |path: &PathBuf, what: &str| {
        Error::Usage(format!(
            "{}: no {what} found (PEM expected)",
            path.display()
        ))
    };
    let mut builder = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()));
    // Without --ca nothing is trusted: HTTPS then fails with a clear message instead of
    // silently trusting a compiled-in store that goes stale on devices.
    let mut roots = Vec::new();
    if let Some(ca) = &settings.ca {
        let pem = read(ca)?;
        for item in ureq::tls::parse_pem(&pem) {
            if let Ok(ureq::tls::PemItem::Certificate(cert)) = item {
                roots.push(cert);
            }
        }
        if roots.is_empty() {
            return Err(bad(ca, "certificate"));
        }
    }
    builder = builder.root_certs(RootCerts::Specific(Arc::new(roots)));
    if let Some((cert_path, key_path)) = &settings.client_cert {
        let chain: Vec<Certificate<'static>> = ureq::tls::parse_pem(&read(cert_path)?)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if chain.is_empty() {
            return Err(bad(cert_path, "certificate"));
        }
        let key =
            PrivateKey::from_pem(&read(key_path)?).map_err(|_| bad(key_path, "private key"))?;
        builder = builder.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    Ok(builder.build())
}

/// A token bucket shared by all requests: at most `rate` bytes per second on average.
struct RateLimiter {
    rate: u64,
    state: Mutex<(Instant, u64)>,
}

impl RateLimiter {
    fn new(rate: u64) -> Self {
        Self {
            rate: rate.max(1),
            state: Mutex::new((Instant::now(), 0)),
        }
    }

    /// Accounts `bytes` and sleeps as long as the average is above the rate.
    fn take(&self, bytes: u64) {
        let wait = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.1 += bytes;
            let due = Duration::from_secs_f64(state.1 as f64 / self.rate as f64);
            due.saturating_sub(state.0.elapsed())
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

/// A casync store served over HTTP(S): `<base>/<4 hex>/<64 hex>.cacnk`.
pub(crate) struct HttpStore {
    base: String,
    client: Arc<HttpClient>,
    /// Requests sent, retries included.
    requests: AtomicU64,
    failures: AtomicU32,
    skip_until: Mutex<Option<Instant>>,
}

impl HttpStore {
    pub(crate) fn new(base: &str, client: Arc<HttpClient>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            client,
            requests: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            skip_until: Mutex::new(None),
        }
    }

    fn chunk_url(&self, id: &ChunkId) -> String {
        let hex = id.to_string();
        format!("{}/{}/{hex}.cacnk", self.base, &hex[..4])
    }

    fn skipping(&self) -> bool {
        let mut until = self.skip_until.lock().unwrap_or_else(|p| p.into_inner());
        match *until {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                *until = None;
                false
            }
            None => false,
        }
    }
}

impl ChunkStore for HttpStore {
    fn name(&self) -> &str {
        &self.base
    }

    fn fetch(&self, id: &ChunkId, limit: u64, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
        if self.skipping() {
            return Err(io::Error::other("skipped for now after repeated failures"));
        }
        match self
            .client
            .get_counted(&self.chunk_url(id), limit, buf, &self.requests)
        {
            Ok(()) => {
                self.failures.store(0, Ordering::Relaxed);
                Ok(Some(true))
            }
            Err(FetchError::NotFound) => Ok(None),
            Err(e) => {
                let reason = e.to_string();
                if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= FAILURES_BEFORE_SKIP {
                    *self.skip_until.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(Instant::now() + SKIP_FOR);
                    log::warn!(
                        "store {} keeps failing ({reason}); skipping it for {SKIP_FOR:?}",
                        self.base
                    );
                }
                Err(io::Error::other(reason))
            }
        }
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn stored_size(&self, id: &ChunkId) -> io::Result<Option<u64>> {
        // A GET is the only way that works with every static server and CDN; the body is
        // needed for nothing else, so this is used only by `info`'s dry run.
        let mut buf = Vec::new();
        match self.client.get(
            &self.chunk_url(id),
            super::stored_size_limit(128 << 20),
            &mut buf,
        ) {
            Ok(()) => Ok(Some(buf.len() as u64)),
            Err(FetchError::NotFound) => Ok(None),
            Err(e) => Err(io::Error::other(e.to_string())),
        }
    }
}

/// True for `http://` and `https://` locators.
pub(crate) fn is_url(locator: &str) -> bool {
    locator.starts_with("http://") || locator.starts_with("https://")
}

/// The store casync derives for an index URL: its last path component replaced by
/// `default.castr` (query and fragment dropped).
pub(crate) fn default_store_url(index_url: &str) -> String {
    let without_query = index_url.split(['?', '#']).next().unwrap_or(index_url);
    match without_query.rsplit_once('/') {
        Some((dir, _))
            if dir.contains("://") && dir.split("://").nth(1).is_some_and(|h| !h.is_empty()) =>
        {
            format!("{dir}/default.castr")
        }
        _ => format!("{without_query}/default.castr"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_store_urls() {
        assert_eq!(
            default_store_url("http://h/x/y.caidx?q=1"),
            "http://h/x/default.castr"
        );
        assert_eq!(
            default_store_url("https://h:8080/a.caibx"),
            "https://h:8080/default.castr"
        );
        assert!(is_url("https://x") && is_url("http://x") && !is_url("/x") && !is_url("host:/x"));
    }

    #[test]
    fn rate_limiter_holds_the_average() {
        let limiter = RateLimiter::new(1_000_000);
        let start = Instant::now();
        for _ in 0..10 {
            limiter.take(20_000);
        }
        // 200 kB at 1 MB/s: at least ~0.2 s.
        assert!(
            start.elapsed() >= Duration::from_millis(190),
            "{:?}",
            start.elapsed()
        );
    }
}
