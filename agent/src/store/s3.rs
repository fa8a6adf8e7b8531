//! Publishing to S3 and S3-compatible servers: a write-only chunk store at `s3://bucket/prefix`
//! with casync's layout (`<prefix>/<4 hex>/<64 hex>.cacnk`), so that a CDN or web server in
//! front of the bucket is an HTTP store for `otasync` and `casync` alike. Devices never talk
//! S3: they fetch over plain HTTPS.
//!
//! Requests are signed with SigV4 ([`sigv4`]), sent with the shared ureq agent (rustls, ring;
//! `http://` endpoints work for tests), and retried with exponential backoff and jitter when
//! they may pass (5xx, 408, 429, `RequestTimeout`, resets, timeouts). A chunk is uploaded only
//! when a HEAD finds the bucket lacks it; a run that meets a chunk twice asks once.
//! The payload's SHA-256 is signed (`x-amz-content-sha256`), so S3 refuses a body damaged on
//! the way.

pub(crate) mod config;
pub(crate) mod sigv4;

pub(crate) use config::{S3Location, is_s3};

use super::ChunkSink;
use super::http::{FIRST_BACKOFF, HttpClient, jitter};
use super::local::PutOutcome;
use crate::compression::{Compression, Compressor};
use crate::error::{Error, Result};
use config::S3Config;
use otasync_core::ChunkId;
use sigv4::{Scope, sha256_hex};
use std::collections::HashSet;
use std::fmt;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

/// Most of an answer's body read: error documents are small, and no success body is needed.
const MAX_REPLY_BODY: u64 = 64 << 10;

/// Requests sent to S3 so far, retries included, by method.
#[derive(Debug, Default)]
pub(crate) struct RequestCounts {
    /// HEADs (does the bucket have this chunk?).
    pub(crate) head: AtomicU64,
    /// PUTs (uploads).
    pub(crate) put: AtomicU64,
    /// GETs (the bucket check).
    pub(crate) get: AtomicU64,
}

/// A signing S3 client over the shared HTTP agent.
pub(crate) struct S3Client {
    config: S3Config,
    http: Arc<HttpClient>,
    /// Requests sent.
    pub(crate) requests: RequestCounts,
}

/// Why an S3 request did not succeed: S3's own error code and message when it answered, with
/// a hint at the usual cause.
#[derive(Debug)]
pub(crate) struct S3Failure {
    status: Option<u16>,
    code: Option<String>,
    message: String,
}

/// An answer with a final status (success or not).
struct Reply {
    status: u16,
    body: Vec<u8>,
}

/// One attempt's failure: worth retrying or not.
enum Attempt {
    Retry(String),
    Final(S3Failure),
}

impl S3Client {
    /// A client configured from the process environment (see [`config`]).
    pub(crate) fn from_env(http: Arc<HttpClient>) -> Result<Self> {
        let config = S3Config::from_vars(|name| std::env::var(name).ok()).map_err(Error::Usage)?;
        log::debug!("S3: {config:?}");
        Ok(Self {
            config,
            http,
            requests: RequestCounts::default(),
        })
    }

    /// Checks, before any upload, that the bucket exists and the credentials are accepted and
    /// may list it (a HEAD on a missing key answers 403 instead of 404 without `s3:ListBucket`):
    /// one ListObjectsV2 of at most one key under the prefix. (The prefix is given without
    /// its trailing `/`: the same permission, and moto's server, our test server, mis-checks
    /// signatures of queries holding `%2F`.)
    pub(crate) fn check(&self, location: &S3Location) -> Result<(), S3Failure> {
        let query = [
            ("list-type", "2"),
            ("max-keys", "1"),
            ("prefix", location.prefix.as_str()),
        ];
        let reply = self.request("GET", &location.bucket, "", &query, None)?;
        match reply.status {
            200 => Ok(()),
            _ => Err(S3Failure::from_reply(&reply)),
        }
    }

    /// Whether the bucket has object `key`.
    pub(crate) fn exists(&self, bucket: &str, key: &str) -> Result<bool, S3Failure> {
        let reply = self.request("HEAD", bucket, key, &[], None)?;
        match reply.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(S3Failure::from_reply(&reply)),
        }
    }

    /// Uploads `body` as object `key`.
    pub(crate) fn put(&self, bucket: &str, key: &str, body: &[u8]) -> Result<(), S3Failure> {
        let reply = self.request("PUT", bucket, key, &[], Some(body))?;
        match reply.status {
            200 => Ok(()),
            _ => Err(S3Failure::from_reply(&reply)),
        }
    }

    /// Sends a request, retrying what may pass, until a final answer or the retries are spent.
    fn request(
        &self,
        method: &'static str,
        bucket: &str,
        key: &str,
        query: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Reply, S3Failure> {
        let settings = self.http.settings();
        let payload_hash = sha256_hex(body.unwrap_or_default());
        let mut delay = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            if settings.deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(S3Failure::transport("the overall deadline has passed"));
            }
            let counter = match method {
                "HEAD" => &self.requests.head,
                "PUT" => &self.requests.put,
                _ => &self.requests.get,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let reason = match self.attempt(method, bucket, key, query, body, &payload_hash) {
                Ok(reply) => match retry_reason(&reply) {
                    Some(reason) if attempt < settings.retries => reason,
                    _ => return Ok(reply),
                },
                Err(Attempt::Final(failure)) => return Err(failure),
                Err(Attempt::Retry(reason)) if attempt < settings.retries => reason,
                Err(Attempt::Retry(reason)) => return Err(S3Failure::transport(&reason)),
            };
            log::debug!("S3 {method} {bucket}/{key}: {reason}; retrying in {delay:?}");
            std::thread::sleep(delay + jitter(delay));
            delay *= 2;
            attempt += 1;
        }
    }

    /// One signed request.
    fn attempt(
        &self,
        method: &'static str,
        bucket: &str,
        key: &str,
        query: &[(&str, &str)],
        body: Option<&[u8]>,
        payload_hash: &str,
    ) -> Result<Reply, Attempt> {
        let address = self.config.address(bucket, key);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let amz_date = sigv4::amz_date(now);
        let credentials = &self.config.credentials;
        let mut headers = vec![
            ("host", address.host.as_str()),
            ("x-amz-content-sha256", payload_hash),
            ("x-amz-date", amz_date.as_str()),
        ];
        if let Some(token) = &credentials.session_token {
            headers.push(("x-amz-security-token", token));
        }
        let scope = Scope {
            amz_date: &amz_date,
            region: &self.config.region,
            service: "s3",
        };
        let authorization = sigv4::authorization(
            credentials,
            &scope,
            &sigv4::Request {
                method,
                path: &address.path,
                query,
                headers: &headers,
                payload_hash,
            },
        );
        let url = match query.is_empty() {
            true => address.url,
            false => {
                let pairs: Vec<String> = query
                    .iter()
                    .map(|(n, v)| {
                        format!(
                            "{}={}",
                            sigv4::uri_encode(n, true),
                            sigv4::uri_encode(v, true)
                        )
                    })
                    .collect();
                format!("{}?{}", address.url, pairs.join("&"))
            }
        };
        let agent = self.http.agent();
        let response = match (method, body) {
            ("PUT", Some(body)) => {
                let mut request = agent.put(&url);
                for (name, value) in &headers {
                    request = request.header(*name, *value);
                }
                request.header("authorization", &authorization).send(body)
            }
            _ => {
                let mut request = match method {
                    "HEAD" => agent.head(&url),
                    _ => agent.get(&url),
                };
                for (name, value) in &headers {
                    request = request.header(*name, *value);
                }
                request.header("authorization", &authorization).call()
            }
        };
        let mut response = response.map_err(classify)?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        if method != "HEAD" {
            // Only error documents matter; a body cut off here just ends the connection.
            let _ = response
                .body_mut()
                .as_reader()
                .take(MAX_REPLY_BODY)
                .read_to_end(&mut body);
        }
        Ok(Reply { status, body })
    }
}

/// Why an answer is worth another try, if it is.
fn retry_reason(reply: &Reply) -> Option<String> {
    let code = xml_field(&reply.body, "Code");
    match reply.status {
        500..=599 | 408 | 429 => Some(format!(
            "HTTP {}{}",
            reply.status,
            code.map(|c| format!(" {c}")).unwrap_or_default()
        )),
        400 if code.as_deref() == Some("RequestTimeout") => Some("HTTP 400 RequestTimeout".into()),
        _ => None,
    }
}

fn classify(e: ureq::Error) -> Attempt {
    match e {
        ureq::Error::Io(_)
        | ureq::Error::Timeout(_)
        | ureq::Error::ConnectionFailed
        | ureq::Error::HostNotFound => Attempt::Retry(e.to_string()),
        other => Attempt::Final(S3Failure::transport(&other.to_string())),
    }
}

/// The text of the first `<name>…</name>` element of an S3 error document.
fn xml_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + text[start..].find(&format!("</{name}>"))?;
    let value = text[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    Some(
        value
            .chars()
            .filter(|c| !c.is_control())
            .take(500)
            .collect(),
    )
}

impl S3Failure {
    fn transport(reason: &str) -> Self {
        Self {
            status: None,
            code: None,
            message: reason.to_owned(),
        }
    }

    fn from_reply(reply: &Reply) -> Self {
        Self {
            status: Some(reply.status),
            code: xml_field(&reply.body, "Code"),
            message: xml_field(&reply.body, "Message").unwrap_or_default(),
        }
    }

    /// What usually causes this failure.
    fn hint(&self) -> Option<&'static str> {
        Some(match (self.code.as_deref(), self.status) {
            (Some("SignatureDoesNotMatch"), _) => "check AWS_SECRET_ACCESS_KEY",
            (Some("InvalidAccessKeyId" | "InvalidClientTokenId"), _) => "check AWS_ACCESS_KEY_ID",
            (Some("ExpiredToken" | "InvalidToken" | "TokenRefreshRequired"), _) => {
                "the session token (AWS_SESSION_TOKEN) is wrong or has expired"
            }
            (Some("NoSuchBucket"), _) => "the bucket does not exist",
            (Some("RequestTimeTooSkewed"), _) => "this machine's clock is off",
            (
                Some(
                    "AuthorizationHeaderMalformed"
                    | "PermanentRedirect"
                    | "IllegalLocationConstraintException",
                ),
                _,
            )
            | (None, Some(301)) => "the bucket is in another region: set AWS_REGION",
            (Some("AccessDenied"), _) | (None, Some(403)) => {
                "access denied: wrong credentials, or they lack s3:ListBucket, s3:GetObject or \
                 s3:PutObject on the bucket"
            }
            _ => return None,
        })
    }

    /// This failure as the command's error, naming what was being done to what.
    pub(crate) fn at(self, what: &str, location: &str) -> Error {
        Error::Io {
            context: format!("{what} {location}"),
            source: io::Error::other(self.to_string()),
        }
    }
}

impl fmt::Display for S3Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(status) = self.status {
            write!(f, "HTTP {status}")?;
        }
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if !self.message.is_empty() {
            let sep = if self.status.is_some() { ": " } else { "" };
            write!(f, "{sep}{}", self.message)?;
        }
        if let Some(hint) = self.hint() {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// A casync chunk store in a bucket, written to by `publish`.
pub(crate) struct S3Store {
    location: S3Location,
    client: Arc<S3Client>,
    /// Chunks this run has met: found in the bucket, uploaded, or being uploaded by another
    /// worker (the index is written only after every worker is done).
    claimed: Mutex<HashSet<ChunkId>>,
}

impl S3Store {
    /// The store at `location`, through `client`.
    pub(crate) fn new(location: S3Location, client: Arc<S3Client>) -> Self {
        Self {
            location,
            client,
            claimed: Mutex::new(HashSet::new()),
        }
    }

    /// Object key of a chunk: casync's `<4 hex>/<64 hex>.cacnk` under the prefix.
    pub(crate) fn chunk_key(&self, id: &ChunkId) -> String {
        let hex = id.to_string();
        self.location.key(&format!("{}/{hex}.cacnk", &hex[..4]))
    }
}

impl ChunkSink for S3Store {
    fn put(
        &self,
        id: &ChunkId,
        data: &[u8],
        compression: Compression,
        compressor: &mut Compressor,
        scratch: &mut Vec<u8>,
    ) -> Result<PutOutcome> {
        if compression == Compression::None {
            return Err(Error::Usage(
                "S3 stores hold zstd chunks (.cacnk), which is what HTTP stores serve; \
                 --compression=none is for directory stores"
                    .into(),
            ));
        }
        if !self
            .claimed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(*id)
        {
            return Ok(PutOutcome::Present);
        }
        let key = self.chunk_key(id);
        let bucket = &self.location.bucket;
        let name = || format!("s3://{bucket}/{key}");
        if self
            .client
            .exists(bucket, &key)
            .map_err(|e| e.at("looking up", &name()))?
        {
            return Ok(PutOutcome::Present);
        }
        super::compress_chunk(compressor, id, data, scratch)?;
        self.client
            .put(bucket, &key, scratch)
            .map_err(|e| e.at("uploading", &name()))?;
        Ok(PutOutcome::Written {
            stored_bytes: scratch.len() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: body.as_bytes().to_vec(),
        }
    }

    const DENIED: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch</Code>\
        <Message>The request signature we calculated does not match &amp; so on</Message></Error>";

    #[test]
    fn errors_name_the_code_and_the_likely_cause() {
        let text = S3Failure::from_reply(&reply(403, DENIED)).to_string();
        assert_eq!(
            text,
            "HTTP 403 SignatureDoesNotMatch: The request signature we calculated does not match \
             & so on (check AWS_SECRET_ACCESS_KEY)"
        );
        let head = S3Failure::from_reply(&reply(403, "")).to_string();
        assert!(head.starts_with("HTTP 403 (access denied"), "{head}");
        assert_eq!(
            S3Failure::transport("connection refused").to_string(),
            "connection refused"
        );
    }

    #[test]
    fn what_is_retried() {
        assert!(retry_reason(&reply(503, "<Error><Code>SlowDown</Code></Error>")).is_some());
        assert!(retry_reason(&reply(500, "")).is_some());
        assert!(retry_reason(&reply(429, "")).is_some());
        assert!(retry_reason(&reply(400, "<Error><Code>RequestTimeout</Code></Error>")).is_some());
        assert!(retry_reason(&reply(400, "<Error><Code>BadDigest</Code></Error>")).is_none());
        assert!(retry_reason(&reply(403, DENIED)).is_none());
        assert!(retry_reason(&reply(404, "")).is_none());
    }

    /// A server on 127.0.0.1 answering its connections with `replies` in turn (one request per
    /// connection); returns the port and what it received.
    fn scripted_server(replies: Vec<&'static str>) -> (u16, std::thread::JoinHandle<Vec<String>>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for reply in replies {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    request.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                request.push_str(&String::from_utf8_lossy(&body));
                seen.push(request);
                let mut stream = stream;
                write!(
                    stream,
                    "{reply}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
            }
            seen
        });
        (port, handle)
    }

    fn client_for(port: u16, retries: u32) -> S3Client {
        let endpoint = format!("http://127.0.0.1:{port}");
        let config = S3Config::from_vars(|name| match name {
            "AWS_ACCESS_KEY_ID" => Some("AKID".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".into()),
            "AWS_ENDPOINT_URL" => Some(endpoint.clone()),
            _ => None,
        })
        .unwrap();
        let settings = crate::store::http::HttpSettings {
            connect_timeout: std::time::Duration::from_secs(5),
            read_timeout: std::time::Duration::from_secs(5),
            request_timeout: std::time::Duration::from_secs(10),
            retries,
            ..Default::default()
        };
        S3Client {
            config,
            http: Arc::new(HttpClient::new(settings).unwrap()),
            requests: RequestCounts::default(),
        }
    }

    #[test]
    fn uploads_are_signed_and_retried_after_a_slow_down() {
        let (port, server) = scripted_server(vec!["HTTP/1.1 503 Slow Down", "HTTP/1.1 200 OK"]);
        let client = client_for(port, 3);
        client
            .put("rel", "store/ab/c.cacnk", b"chunk bytes")
            .unwrap();
        assert_eq!(client.requests.put.load(Ordering::Relaxed), 2);
        let seen = server.join().unwrap();
        let request = seen[1].to_ascii_lowercase();
        assert!(
            request.starts_with("put /rel/store/ab/c.cacnk http/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains(&format!("host: 127.0.0.1:{port}\r\n")),
            "{request}"
        );
        let body_hash = sha256_hex(b"chunk bytes");
        assert!(request.contains(&format!("x-amz-content-sha256: {body_hash}\r\n")));
        assert!(
            request.contains(
                "authorization: aws4-hmac-sha256 credential=akid/"
            ) && request.contains("/us-east-1/s3/aws4_request, signedheaders=host;x-amz-content-sha256;x-amz-date, signature="),
            "{request}"
        );
        assert!(request.ends_with("\r\n\r\nchunk bytes"));
    }

    #[test]
    fn refusals_are_not_retried_and_retries_end() {
        let (port, server) = scripted_server(vec!["HTTP/1.1 403 Forbidden"]);
        let client = client_for(port, 3);
        let err = client.exists("rel", "k").unwrap_err().to_string();
        assert!(err.starts_with("HTTP 403 (access denied"), "{err}");
        assert_eq!(client.requests.head.load(Ordering::Relaxed), 1);
        server.join().unwrap();

        let (port, server) = scripted_server(vec!["HTTP/1.1 500 Oops"; 3]);
        let client = client_for(port, 2);
        let err = client.put("rel", "k", b"x").unwrap_err().to_string();
        assert!(err.starts_with("HTTP 500"), "{err}");
        assert_eq!(client.requests.put.load(Ordering::Relaxed), 3);
        server.join().unwrap();
    }

    #[test]
    fn chunk_keys_follow_casync() {
        let client = Arc::new(S3Client {
            config: S3Config::from_vars(|n| {
                matches!(n, "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY").then(|| "x".to_owned())
            })
            .unwrap(),
            http: Arc::new(HttpClient::new(Default::default()).unwrap()),
            requests: RequestCounts::default(),
        });
        let store = S3Store::new(S3Location::parse("s3://rel/a/store").unwrap(), client);
        let id = ChunkId([0xab; 32]);
        assert_eq!(
            store.chunk_key(&id),
            format!("a/store/abab/{}.cacnk", "ab".repeat(32))
        );
    }
}
