//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`) for requests signed in the `Authorization`
//! header, as the S3 API reference's "Signature Calculations for the Authorization Header"
//! describes it: canonical request, string to sign, derived signing key, signature.
//!
//! The primitives (HMAC-SHA256, SHA-256) are ring's, already linked for TLS. No crate fits:
//! `aws-sigv4` pulls the async smithy runtime, and `rusty-s3` needs Rust 1.89. The unit tests
//! reproduce the AWS SigV4 test-suite vectors and the four S3 examples of that reference page.
//!
//! ```text
//! canonical request = METHOD \n PATH \n QUERY \n (name:value \n)* \n SIGNED;NAMES \n PAYLOAD-HASH
//! string to sign    = AWS4-HMAC-SHA256 \n YYYYMMDDTHHMMSSZ \n DATE/REGION/SERVICE/aws4_request \n
//!                     hex(sha256(canonical request))
//! signing key       = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, DATE), REGION), SERVICE), "aws4_request")
//! ```

use ring::{digest, hmac};
use std::fmt;
use std::fmt::Write as _;

/// The algorithm name: first line of the string to sign and first word of the header.
pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The last component of every credential scope.
const TERMINATOR: &str = "aws4_request";

/// An access key pair, with the session token of temporary credentials.
#[derive(Clone)]
pub(crate) struct Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub(crate) access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub(crate) secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, sent (and signed) as `x-amz-security-token`.
    pub(crate) session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    /// Names the key id only: secrets never reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("session_token", &self.session_token.is_some())
            .finish_non_exhaustive()
    }
}

/// What of a request the signature covers.
pub(crate) struct Request<'a> {
    /// `GET`, `PUT`, `HEAD`…
    pub(crate) method: &'a str,
    /// The absolute path as sent, already URI-encoded (S3 encodes each key segment once).
    pub(crate) path: &'a str,
    /// Query parameters, not yet encoded.
    pub(crate) query: &'a [(&'a str, &'a str)],
    /// The headers to sign, `host` and `x-amz-date` among them; names in any case.
    pub(crate) headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the payload (what `x-amz-content-sha256` carries for S3).
    pub(crate) payload_hash: &'a str,
}

/// Where and when a signature is valid: `DATE/REGION/SERVICE/aws4_request`.
pub(crate) struct Scope<'a> {
    /// `YYYYMMDDTHHMMSSZ`, the request's `x-amz-date`; its first 8 characters are the date.
    pub(crate) amz_date: &'a str,
    /// The bucket's region, e.g. `us-east-1`.
    pub(crate) region: &'a str,
    /// `s3` for S3.
    pub(crate) service: &'a str,
}

impl Scope<'_> {
    fn date(&self) -> &str {
        self.amz_date.get(..8).unwrap_or(self.amz_date)
    }

    fn credential_scope(&self) -> String {
        format!(
            "{}/{}/{}/{TERMINATOR}",
            self.date(),
            self.region,
            self.service
        )
    }
}

/// The canonical request and its signed-headers list.
pub(crate) fn canonical_request(request: &Request<'_>) -> (String, String) {
    // Lowercase names, values trimmed with inner runs of spaces collapsed, sorted by name;
    // a repeated name's values joined by commas in the order given.
    let mut headers: Vec<(String, String)> = Vec::with_capacity(request.headers.len());
    for (name, value) in request.headers {
        let name = name.to_ascii_lowercase();
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        match headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            None => headers.push((name, value)),
        }
    }
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let signed = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let mut query: Vec<(String, String)> = request
        .query
        .iter()
        .map(|(n, v)| (uri_encode(n, true), uri_encode(v, true)))
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write!(out, "{}\n{}\n{query}\n", request.method, request.path);
    for (name, value) in &headers {
        let _ = writeln!(out, "{name}:{value}");
    }
    let _ = write!(out, "\n{signed}\n{}", request.payload_hash);
    (out, signed)
}

/// The string to sign for a canonical request.
pub(crate) fn string_to_sign(scope: &Scope<'_>, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{}\n{}\n{}",
        scope.amz_date,
        scope.credential_scope(),
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The hex signature of `string_to_sign` with the key derived from `secret` for `scope`.
pub(crate) fn signature(secret: &str, scope: &Scope<'_>, string_to_sign: &str) -> String {
    let step = |key: &[u8], data: &str| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
    };
    let date = step(format!("AWS4{secret}").as_bytes(), scope.date());
    let region = step(date.as_ref(), scope.region);
    let service = step(region.as_ref(), scope.service);
    let signing = step(service.as_ref(), TERMINATOR);
    hex(step(signing.as_ref(), string_to_sign).as_ref())
}

/// The `Authorization` header value for `request`.
pub(crate) fn authorization(
    credentials: &Credentials,
    scope: &Scope<'_>,
    request: &Request<'_>,
) -> String {
    let (canonical, signed) = canonical_request(request);
    let sts = string_to_sign(scope, &canonical);
    format!(
        "{ALGORITHM} Credential={}/{}, SignedHeaders={signed}, Signature={}",
        credentials.access_key_id,
        scope.credential_scope(),
        signature(&credentials.secret_access_key, scope, &sts)
    )
}

/// SigV4's URI encoding: every byte but `A-Z a-z 0-9 - . _ ~` as `%XX` (uppercase hex), and
/// `/` too unless `encode_slash` is false (object key paths).
pub(crate) fn uri_encode(text: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (b == b'/' && !encode_slash)
        {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Lowercase hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// `x-amz-date` for a time in unix seconds: `YYYYMMDDTHHMMSSZ`.
pub(crate) fn amz_date(unix_seconds: u64) -> String {
    otasync_signing::Timestamp(unix_seconds)
        .to_string()
        .replace(['-', ':'], "")
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The credentials of the AWS SigV4 test suite (`aws-sig-v4-test-suite`).
    fn suite_credentials() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    /// The credentials of the S3 API reference's examples.
    fn s3_credentials() -> Credentials {
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    const SUITE_SCOPE: Scope<'static> = Scope {
        amz_date: "20150830T123600Z",
        region: "us-east-1",
        service: "service",
    };

    const S3_SCOPE: Scope<'static> = Scope {
        amz_date: "20130524T000000Z",
        region: "us-east-1",
        service: "s3",
    };

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn suite(method: &str, query: &[(&str, &str)]) -> String {
        let headers = [
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
        ];
        let request = Request {
            method,
            path: "/",
            query,
            headers: &headers,
            payload_hash: EMPTY,
        };
        authorization(&suite_credentials(), &SUITE_SCOPE, &request)
    }

    #[test]
    fn suite_get_vanilla() {
        assert_eq!(
            suite("GET", &[]),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn suite_post_vanilla() {
        assert!(suite("POST", &[]).ends_with(
            "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        ));
    }

    #[test]
    fn suite_get_vanilla_query_order_key_case() {
        let auth = suite("GET", &[("Param2", "value2"), ("Param1", "value1")]);
        assert!(
            auth.ends_with(
                "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
            ),
            "{auth}"
        );
    }

    #[test]
    fn suite_get_vanilla_canonical_request() {
        let headers = [
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
        ];
        let (canonical, signed) = canonical_request(&Request {
            method: "GET",
            path: "/",
            query: &[],
            headers: &headers,
            payload_hash: EMPTY,
        });
        assert_eq!(signed, "host;x-amz-date");
        assert_eq!(
            canonical,
            format!(
                "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
                 host;x-amz-date\n{EMPTY}"
            )
        );
        assert_eq!(
            string_to_sign(&SUITE_SCOPE, &canonical),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
             bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
    }

    /// S3 API reference, "Example: GET Object" (a range request).
    #[test]
    fn s3_get_object() {
        let headers = [
            ("Host", "examplebucket.s3.amazonaws.com"),
            ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY),
            ("x-amz-date", "20130524T000000Z"),
        ];
        let request = Request {
            method: "GET",
            path: "/test.txt",
            query: &[],
            headers: &headers,
            payload_hash: EMPTY,
        };
        assert_eq!(
            authorization(&s3_credentials(), &S3_SCOPE, &request),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    /// S3 API reference, "Example: PUT Object": a key needing encoding and a signed payload.
    #[test]
    fn s3_put_object() {
        let body = b"Welcome to Amazon S3.";
        let hash = sha256_hex(body);
        assert_eq!(
            hash,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        let headers = [
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("Host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", &hash),
        ];
        let path = format!("/{}", uri_encode("test$file.text", false));
        assert_eq!(path, "/test%24file.text");
        let request = Request {
            method: "PUT",
            path: &path,
            query: &[],
            headers: &headers,
            payload_hash: &hash,
        };
        let (canonical, _) = canonical_request(&request);
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d"
        );
        assert!(
            authorization(&s3_credentials(), &S3_SCOPE, &request).ends_with(
                "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, \
                 Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
            )
        );
    }

    fn s3_bucket_get(query: &[(&str, &str)]) -> String {
        let headers = [
            ("Host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", EMPTY),
        ];
        let request = Request {
            method: "GET",
            path: "/",
            query,
            headers: &headers,
            payload_hash: EMPTY,
        };
        authorization(&s3_credentials(), &S3_SCOPE, &request)
    }

    /// S3 API reference, "Example: GET Bucket Lifecycle": a parameter without a value.
    #[test]
    fn s3_get_bucket_lifecycle() {
        assert!(s3_bucket_get(&[("lifecycle", "")]).ends_with(
            "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        ));
    }

    /// S3 API reference, "Example: Get Bucket (List Objects)": parameters sorted.
    #[test]
    fn s3_list_objects() {
        assert!(
            s3_bucket_get(&[("prefix", "J"), ("max-keys", "2")]).ends_with(
                "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
            )
        );
    }

    #[test]
    fn header_values_are_trimmed_and_repeats_joined() {
        let headers = [
            ("Host", "h"),
            ("My-Header1", "  a   b   c  "),
            ("my-header2", "x"),
            ("My-Header2", "y"),
        ];
        let (canonical, signed) = canonical_request(&Request {
            method: "GET",
            path: "/",
            query: &[],
            headers: &headers,
            payload_hash: EMPTY,
        });
        assert_eq!(signed, "host;my-header1;my-header2");
        assert!(
            canonical.contains("\nmy-header1:a b c\nmy-header2:x,y\n"),
            "{canonical}"
        );
    }

    #[test]
    fn encoding_and_dates() {
        assert_eq!(uri_encode("a b/ü~*", false), "a%20b/%C3%BC~%2A");
        assert_eq!(uri_encode("a/b=c&d", true), "a%2Fb%3Dc%26d");
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(amz_date(0), "19700101T000000Z");
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let text = format!("{:?}", s3_credentials());
        assert!(
            text.contains("AKIAIOSFODNN7EXAMPLE") && !text.contains("bPxRfiCY"),
            "{text}"
        );
    }
}
