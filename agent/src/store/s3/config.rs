//! Where S3 requests go and with what credentials: `s3://bucket/prefix` locators, and the
//! endpoint, region and keys from the environment variables the AWS CLI and SDKs read.
//!
//! | variable | use |
//! |---|---|
//! | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` | the key pair (required) |
//! | `AWS_SESSION_TOKEN` | temporary credentials' token, sent as `x-amz-security-token` |
//! | `AWS_REGION`, else `AWS_DEFAULT_REGION` | the signing region (default `us-east-1`) |
//! | `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL` | an S3-compatible server (path-style) |
//!
//! Without an endpoint, requests go to `https://<bucket>.s3.<region>.amazonaws.com`
//! (virtual-hosted style; path style for bucket names with dots, which the wildcard
//! certificate does not cover). Credential files and instance metadata are not read: build
//! pipelines pass keys in the environment.

use super::sigv4::{Credentials, uri_encode};

/// The URL scheme of S3 store locators.
pub(crate) const SCHEME: &str = "s3://";

/// True for `s3://` locators.
pub(crate) fn is_s3(locator: &str) -> bool {
    locator.starts_with(SCHEME)
}

/// A bucket and a key prefix: `s3://bucket/prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct S3Location {
    /// The bucket.
    pub(crate) bucket: String,
    /// The key prefix without leading or trailing `/`; empty for the bucket's top.
    pub(crate) prefix: String,
}

impl S3Location {
    /// Parses `s3://bucket[/prefix]`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix(SCHEME)
            .ok_or_else(|| format!("{text:?}: an S3 location starts with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's bucket naming rules: 3-63 of a-z 0-9 . -, starting and ending alphanumeric.
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !valid_bucket {
            return Err(format!(
                "{text:?}: {bucket:?} is not a valid bucket name (3-63 characters of a-z, 0-9, \
                 '.' and '-')"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|part| matches!(part, "." | "..")) || prefix.contains("//") {
            return Err(format!(
                "{text:?}: the key prefix may not have empty, '.' or '..' components"
            ));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The key of `name` under the prefix.
    pub(crate) fn key(&self, name: &str) -> String {
        match self.prefix.is_empty() {
            true => name.to_owned(),
            false => format!("{}/{name}", self.prefix),
        }
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.prefix.is_empty() {
            true => write!(f, "{SCHEME}{}", self.bucket),
            false => write!(f, "{SCHEME}{}/{}", self.bucket, self.prefix),
        }
    }
}

/// Everything needed to address and sign requests.
#[derive(Clone, Debug)]
pub(crate) struct S3Config {
    /// `http` or `https`.
    scheme: String,
    /// `host[:port]` of the endpoint.
    authority: String,
    /// Bucket in the path (`/<bucket>/<key>`) rather than in the host name.
    path_style: bool,
    /// The signing region.
    pub(crate) region: String,
    /// The key pair.
    pub(crate) credentials: Credentials,
}

/// An object's address: the URL to send to, its `Host` header and the signed path.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Address {
    /// The URL without query.
    pub(crate) url: String,
    /// The `Host` header, exactly as signed.
    pub(crate) host: String,
    /// The URI-encoded absolute path, exactly as signed.
    pub(crate) path: String,
}

impl S3Config {
    /// Reads the configuration through `var` (the environment in use, a map in tests).
    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let (Some(access_key_id), Some(secret_access_key)) =
            (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err("S3 credentials missing: set AWS_ACCESS_KEY_ID and \
                        AWS_SECRET_ACCESS_KEY (credential files and instance metadata are not read)"
                .into());
        };
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        if !region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!("AWS_REGION={region:?} is not a region name"));
        }
        let credentials = Credentials {
            access_key_id: access_key_id.trim().to_owned(),
            secret_access_key: secret_access_key.trim().to_owned(),
            session_token: var("AWS_SESSION_TOKEN").map(|t| t.trim().to_owned()),
        };
        let endpoint = var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL"));
        let (scheme, authority, path_style) = match endpoint {
            Some(url) => {
                let (scheme, authority) = parse_endpoint(&url)?;
                (scheme, authority, true)
            }
            None => ("https".into(), format!("s3.{region}.amazonaws.com"), false),
        };
        Ok(Self {
            scheme,
            authority,
            path_style,
            region,
            credentials,
        })
    }

    /// The address of object `key` in `bucket` (`key` empty: the bucket itself).
    pub(crate) fn address(&self, bucket: &str, key: &str) -> Address {
        let key = uri_encode(key, false);
        let (host, path) = match self.path_style || bucket.contains('.') {
            true => (self.authority.clone(), format!("/{bucket}/{key}")),
            false => (format!("{bucket}.{}", self.authority), format!("/{key}")),
        };
        Address {
            url: format!("{}://{host}{path}", self.scheme),
            host,
            path,
        }
    }
}

/// `http(s)://host[:port][/]` → (scheme, authority). A path or query is refused: S3 endpoints
/// are the root of a server.
fn parse_endpoint(url: &str) -> Result<(String, String), String> {
    let bad = |why: &str| format!("S3 endpoint {url:?}: {why}");
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected http://HOST[:PORT] or https://HOST[:PORT]"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(bad("only http and https are supported"));
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return Err(bad("expected a host and optional port, without a path"));
    }
    Ok((scheme, authority.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<S3Config, String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        S3Config::from_vars(|name| map.get(name).cloned())
    }

    const KEYS: [(&str, &str); 2] = [
        ("AWS_ACCESS_KEY_ID", "AKID"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
    ];

    #[test]
    fn locations() {
        let loc = S3Location::parse("s3://my-bucket/releases/store/").unwrap();
        assert_eq!(
            (loc.bucket.as_str(), loc.prefix.as_str()),
            ("my-bucket", "releases/store")
        );
        assert_eq!(loc.key("0a1b/x.cacnk"), "releases/store/0a1b/x.cacnk");
        assert_eq!(loc.to_string(), "s3://my-bucket/releases/store");
        let top = S3Location::parse("s3://abc").unwrap();
        assert_eq!((top.prefix.as_str(), top.key("k").as_str()), ("", "k"));
        for bad in [
            "s3://",
            "s3://A_b/x",
            "s3://ab",
            "s3://-ab/x",
            "s3://abc/a//b",
            "s3://abc/../x",
            "http://abc",
        ] {
            assert!(S3Location::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn aws_endpoints_are_virtual_hosted() {
        let c = config(&[KEYS[0], KEYS[1], ("AWS_DEFAULT_REGION", "eu-west-1")]).unwrap();
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(
            c.address("rel", "store/ab cd/x.cacnk"),
            Address {
                url: "https://rel.s3.eu-west-1.amazonaws.com/store/ab%20cd/x.cacnk".into(),
                host: "rel.s3.eu-west-1.amazonaws.com".into(),
                path: "/store/ab%20cd/x.cacnk".into(),
            }
        );
        // Dots would break the wildcard certificate: path style.
        assert_eq!(
            c.address("a.b.c", "k").url,
            "https://s3.eu-west-1.amazonaws.com/a.b.c/k"
        );
    }

    #[test]
    fn custom_endpoints_are_path_style_and_region_prefers_aws_region() {
        let c = config(&[
            KEYS[0],
            KEYS[1],
            ("AWS_REGION", "us-west-2"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL", "http://other:1"),
            ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000/"),
            ("AWS_SESSION_TOKEN", "tok"),
        ])
        .unwrap();
        assert_eq!(c.region, "us-west-2");
        assert_eq!(c.credentials.session_token.as_deref(), Some("tok"));
        assert_eq!(
            c.address("rel", "a/b"),
            Address {
                url: "http://127.0.0.1:9000/rel/a/b".into(),
                host: "127.0.0.1:9000".into(),
                path: "/rel/a/b".into(),
            }
        );
        assert_eq!(c.address("rel", "").path, "/rel/");
    }

    #[test]
    fn missing_or_bad_settings_are_named() {
        let e = config(&[KEYS[0]]).unwrap_err();
        assert!(e.contains("AWS_SECRET_ACCESS_KEY"), "{e}");
        let e = config(&[KEYS[0], KEYS[1], ("AWS_ENDPOINT_URL", "ftp://x")]).unwrap_err();
        assert!(e.contains("ftp://x"), "{e}");
        let e = config(&[KEYS[0], KEYS[1], ("AWS_ENDPOINT_URL", "http://x/path")]).unwrap_err();
        assert!(e.contains("without a path"), "{e}");
        assert!(config(&[KEYS[0], KEYS[1], ("AWS_REGION", "us east")]).is_err());
    }
}
