//! `otasync publish` end to end: to a directory store and to a real S3-compatible server on
//! 127.0.0.1 (moto's server with its IAM checks on, so every request's SigV4 signature is
//! verified by botocore's own implementation), consumed by the agent on a device, and signed
//! offline with `--unsigned` + `otasync sign`.

use crate::agent::Device;
use crate::fault_server::{Fault, FaultServer};
use crate::support::{fails, files_below, ok, otasync, random_bytes, s};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EXIT_FAILURE: i32 = 1;
const EXIT_USAGE: i32 = 2;

/// A fixed signing time, so that two runs write the same manifest.
const ISSUED_AT: &str = "--issued-at=2026-09-01T00:00:00Z";

/// The bucket the server is set up with.
const BUCKET: &str = "releases";

/// Run by the tests with `python3 -c`: `setup ENDPOINT` creates an IAM user allowed `s3:*` (the
/// server's first three requests need no signature), prints its key pair and creates the
/// bucket with it; `download ENDPOINT KEY SECRET BUCKET PREFIX DIR` copies every object under
/// PREFIX/ (asked for without the slash: moto 5 checks the signature of a query holding `%2F`
/// against its decoded form, and refuses even boto3's).
const S3_HELPER: &str = r#"
import json, os, sys
import boto3
cmd, endpoint = sys.argv[1], sys.argv[2]
def client(service, key="unused", secret="unused"):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)
if cmd == "setup":
    bucket = sys.argv[3]
    iam = client("iam")
    iam.create_user(UserName="publisher")
    key = iam.create_access_key(UserName="publisher")["AccessKey"]
    policy = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="publisher", PolicyName="publish",
                        PolicyDocument=json.dumps(policy))
    client("s3", key["AccessKeyId"], key["SecretAccessKey"]).create_bucket(Bucket=bucket)
    print(key["AccessKeyId"], key["SecretAccessKey"])
elif cmd == "download":
    key, secret, bucket, prefix, out = sys.argv[3:8]
    s3 = client("s3", key, secret)
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            path = os.path.join(out, item["Key"][len(prefix) + 1:])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
            count += 1
    print(count)
"#;

/// moto's S3 server on a free port of 127.0.0.1, with signature checking on, an IAM user
/// allowed `s3:*` and the bucket [`BUCKET`]. Its access log (one line per request) is kept
/// for counting requests. Killed on drop.
struct S3Server {
    child: Child,
    endpoint: String,
    key_id: String,
    secret: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts the server, or returns `None` (skipping the test) where moto is not installed
    /// outside CI.
    fn start() -> Option<Self> {
        let have = Command::new("python3")
            .args(["-c", "import moto.server, boto3"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !have {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI installs moto[server] (.ci/run)"
            );
            eprintln!("SKIPPED: needs python3 with moto[server] (pip install 'moto[server]')");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", "0"])
            // After the IAM set-up's three requests, every request must be signed.
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let mut server = Self {
            child,
            endpoint: String::new(),
            key_id: String::new(),
            secret: String::new(),
            log,
            _dir: dir,
        };
        server.endpoint = server.wait_for_port();
        let out =
            ok(Command::new("python3").args(["-c", S3_HELPER, "setup", &server.endpoint, BUCKET]));
        let mut keys = out.split_whitespace().map(str::to_owned);
        server.key_id = keys.next().expect("access key id");
        server.secret = keys.next().expect("secret access key");
        Some(server)
    }

    /// The endpoint the server prints once it listens.
    fn wait_for_port(&self) -> String {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            let file = std::fs::File::open(&self.log).unwrap();
            for line in BufReader::new(file).lines().map_while(Result::ok) {
                if let Some(url) = line.split("Running on ").nth(1) {
                    return url.trim().to_owned();
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "moto did not start: {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// `otasync ARGS` with this server's endpoint and `secret` for the publisher's key.
    fn otasync_with(&self, key_id: &str, secret: &str, args: &[&str]) -> Command {
        let mut cmd = otasync(args);
        cmd.env("AWS_ACCESS_KEY_ID", key_id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env_remove("AWS_ENDPOINT_URL_S3")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_DEFAULT_REGION");
        cmd
    }

    /// `otasync ARGS` with this server's endpoint and the publisher's credentials.
    fn otasync(&self, args: &[&str]) -> Command {
        self.otasync_with(&self.key_id, &self.secret, args)
    }

    /// Answered requests `METHOD /BUCKET/…` whose path contains `needle`, from the access log.
    fn count(&self, method: &str, needle: &str) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap();
        let start = format!("\"{method} /{BUCKET}/");
        log.lines()
            .filter_map(|l| l.split_once(&start).map(|(_, rest)| rest))
            .filter(|rest| rest.split(' ').next().unwrap_or("").contains(needle))
            .count()
    }

    /// Copies every object under `prefix/` into `dir` (with boto3: an independent client).
    fn download(&self, prefix: &str, dir: &Path) -> usize {
        let out = ok(Command::new("python3").args([
            "-c",
            S3_HELPER,
            "download",
            &self.endpoint,
            &self.key_id,
            &self.secret,
            BUCKET,
            prefix,
            s(dir),
        ]));
        out.trim().parse().unwrap()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `publish` arguments for release `version` of `slots`, the manifest into `out`.
fn publish_args(out: &Path, version: u64, extra: &[&str], slots: &[String]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--json".into(),
        "publish".into(),
        format!("--manifest-out={}", s(&out.join("manifest.json"))),
        "--product=acme-gw".into(),
        format!("--metadata-version={version}"),
        format!("--release=v{version}"),
        ISSUED_AT.into(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args.extend(slots.iter().cloned());
    args
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A key pair `NAME.sec`/`NAME.pub` in `dir`.
fn keygen(dir: &Path, name: &str) -> PathBuf {
    let secret = dir.join(format!("{name}.sec"));
    ok(otasync(&[
        "keygen",
        "--secret-key",
        s(&secret),
        "--public-key",
        s(&dir.join(format!("{name}.pub"))),
    ]));
    secret
}

/// Images rootfs-1 (6 MiB), rootfs-2 (three small edits of it) and boot (1 MiB, unchanged).
fn images(dir: &Path) -> (Vec<String>, Vec<String>) {
    let v1 = random_bytes(6 << 20, 1);
    let mut v2 = v1.clone();
    for at in [1 << 20, 3 << 20, 5 << 20] {
        v2[at..at + 1000].copy_from_slice(&random_bytes(1000, at as u64));
    }
    std::fs::write(dir.join("rootfs-1.img"), v1).unwrap();
    std::fs::write(dir.join("rootfs-2.img"), v2).unwrap();
    std::fs::write(dir.join("boot.img"), random_bytes(1 << 20, 2)).unwrap();
    let slots = |n: u32| {
        vec![
            format!("rootfs={}", s(&dir.join(format!("rootfs-{n}.img")))),
            format!("boot={}", s(&dir.join("boot.img"))),
        ]
    };
    (slots(1), slots(2))
}

#[test]
fn publishing_twice_to_s3_uploads_only_the_chunks_the_bucket_lacks() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "release");
    let (v1, v2) = images(dir.path());
    let key_arg = format!("--key={}", s(&key));
    let to_s3 = [
        key_arg.as_str(),
        "--store=s3://releases/store",
        "--index-dir=s3://releases/www",
    ];
    let s3_out = dir.path().join("s3");

    let first = json(&ok(
        server.otasync(&to_str(&publish_args(&s3_out, 1, &to_s3, &v1)))
    ));
    let new1 = first["chunks_new"].as_u64().unwrap();
    let rootfs_chunks = first["slots"]["rootfs"]["chunks"].as_u64().unwrap();
    let boot_chunks = first["slots"]["boot"]["chunks"].as_u64().unwrap();
    assert!(rootfs_chunks > 50 && boot_chunks > 5, "{first}");
    // Random images: every chunk is new, each uploaded once, each after one HEAD.
    assert_eq!(new1, rootfs_chunks + boot_chunks, "{first}");
    assert_eq!(server.count("PUT", ".cacnk"), new1 as usize);
    assert_eq!(server.count("HEAD", ".cacnk"), new1 as usize);
    assert_eq!(
        first["s3_requests"]["put"],
        new1 + 2,
        "chunks and two indexes: {first}"
    );
    let uploaded1 = first["bytes_uploaded"].as_u64().unwrap();
    assert!(
        uploaded1 > 7 << 20,
        "random data does not compress: {first}"
    );

    let second = json(&ok(
        server.otasync(&to_str(&publish_args(&s3_out, 2, &to_s3, &v2)))
    ));
    let new2 = second["chunks_new"].as_u64().unwrap();
    let reused2 = second["chunks_reused"].as_u64().unwrap();
    let chunks2 = second["slots"]["rootfs"]["chunks"].as_u64().unwrap() + boot_chunks;
    // Three 1000-byte edits touch at most two chunks each; boot is all reused.
    assert!((3..=6).contains(&new2), "{second}");
    assert_eq!(new2 + reused2, chunks2, "{second}");
    assert_eq!(second["slots"]["boot"]["chunks_new"], 0, "{second}");
    assert_eq!(
        server.count("PUT", ".cacnk"),
        (new1 + new2) as usize,
        "only new chunks uploaded"
    );
    assert_eq!(server.count("PUT", ".caibx"), 4);
    let uploaded2 = second["bytes_uploaded"].as_u64().unwrap();
    assert!(uploaded2 < uploaded1 / 4, "{uploaded2} of {uploaded1}");
    eprintln!(
        "publish 1: {new1} chunks, {uploaded1} bytes uploaded; publish 2: {new2} new, {reused2} \
         reused, {uploaded2} bytes uploaded"
    );

    // The same releases published to a directory: the bucket holds exactly its chunk files,
    // byte for byte, and the same indexes; the manifests are identical.
    let local_out = dir.path().join("local");
    let store = dir.path().join("local-store");
    let to_dir = [key_arg.clone(), format!("--store={}", s(&store))];
    let to_dir: Vec<&str> = to_dir.iter().map(String::as_str).collect();
    ok(otasync(&to_str(&publish_args(&local_out, 1, &to_dir, &v1))));
    ok(otasync(&to_str(&publish_args(&local_out, 2, &to_dir, &v2))));
    let mirror = dir.path().join("mirror");
    let objects = server.download("store", &mirror.join("store"));
    assert_eq!(objects as u64, new1 + new2);
    let local_files = files_below(&store);
    assert_eq!(files_below(&mirror.join("store")), local_files);
    for file in &local_files {
        assert!(
            std::fs::read(mirror.join("store").join(file)).unwrap()
                == std::fs::read(store.join(file)).unwrap(),
            "{file} differs"
        );
    }
    assert_eq!(server.download("www", &mirror.join("www")), 4);
    for index in [
        "rootfs-v2.caibx",
        "boot-v1.caibx",
        "rootfs-v1.caibx",
        "boot-v2.caibx",
    ] {
        assert_eq!(
            std::fs::read(mirror.join("www").join(index)).unwrap(),
            std::fs::read(local_out.join(index)).unwrap(),
            "{index}"
        );
    }
    assert_eq!(
        std::fs::read(s3_out.join("manifest.json")).unwrap(),
        std::fs::read(local_out.join("manifest.json")).unwrap()
    );
    // What a CDN in front of the bucket serves is a casync store: the image comes back.
    let restored = dir.path().join("restored.img");
    ok(otasync(&[
        "extract",
        &format!("--store={}", s(&mirror.join("store"))),
        s(&mirror.join("www/rootfs-v2.caibx")),
        s(&restored),
    ]));
    assert!(
        std::fs::read(&restored).unwrap()
            == std::fs::read(dir.path().join("rootfs-2.img")).unwrap()
    );
}

#[test]
fn bad_s3_credentials_fail_clearly_before_any_upload() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "release");
    let (v1, _) = images(dir.path());
    let key_arg = format!("--key={}", s(&key));
    let extra = [key_arg.as_str(), "--store=s3://releases/store"];
    let args = publish_args(dir.path(), 1, &extra, &v1);
    let manifest = dir.path().join("manifest.json");

    let err = fails(
        server.otasync_with(&server.key_id, "not-the-secret", &to_str(&args)),
        EXIT_FAILURE,
    );
    assert!(err.contains("s3://releases/store"), "{err}");
    assert!(
        err.contains("SignatureDoesNotMatch") && err.contains("AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );
    let err = fails(
        server.otasync_with("AKIANOSUCHKEY0000000", &server.secret, &to_str(&args)),
        EXIT_FAILURE,
    );
    assert!(
        err.contains("InvalidAccessKeyId") && err.contains("AWS_ACCESS_KEY_ID"),
        "{err}"
    );
    let mut no_keys = server.otasync(&to_str(&args));
    no_keys.env_remove("AWS_SECRET_ACCESS_KEY");
    let err = fails(no_keys, EXIT_USAGE);
    assert!(err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
    let other_bucket = publish_args(
        dir.path(),
        1,
        &[key_arg.as_str(), "--store=s3://no-such-bucket/store"],
        &v1,
    );
    let err = fails(server.otasync(&to_str(&other_bucket)), EXIT_FAILURE);
    assert!(err.contains("NoSuchBucket"), "{err}");

    assert_eq!(server.count("PUT", ""), 0, "nothing uploaded");
    assert_eq!(server.count("HEAD", ""), 0, "no chunk even looked up");
    assert!(!manifest.exists());
    assert!(
        files_below(dir.path()).iter().all(|f| !f.contains("caibx")),
        "no index written"
    );
}

#[test]
fn a_device_updates_from_what_publish_wrote() {
    let Some(device) = Device::new() else { return };
    let key = format!("--key={}", s(&device.path("release.sec")));
    let out = ok(otasync(&[
        "publish",
        &key,
        &format!("--store={}", s(&device.path("www/store"))),
        &format!("--manifest-out={}", s(&device.path("www/manifest.json"))),
        "--product=acme-gw",
        "--metadata-version=2",
        "--security-version=1",
        "--release=v2",
        &format!("rootfs={}", s(&device.path("images/v2.img"))),
    ]));
    assert!(
        out.contains("manifest: ") && out.contains("(signed with 1 key)"),
        "{out}"
    );
    assert!(device.path("www/rootfs-v2.caibx").exists());
    let server = FaultServer::start(device.path("www"), Fault::None);
    device.configure(server.url("").trim_end_matches('/'), "");
    let out = ok(device.agent("update"));
    assert!(out.contains("installed v2"), "{out}");
    assert!(device.b_holds("v2"));
    assert_eq!(server.count("rootfs-v2.caibx"), 1);
    assert!(server.count(".cacnk") > 0);
}

#[test]
fn an_unsigned_manifest_signed_offline_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for name in ["root", "release"] {
        keygen(d, name);
    }
    ok(otasync(&[
        "root",
        "create",
        s(&d.join("root.json")),
        "--root-key",
        s(&d.join("root.pub")),
        "--release-key",
        s(&d.join("release.pub")),
    ]));
    let image = d.join("rootfs.img");
    std::fs::write(&image, random_bytes(2 << 20, 9)).unwrap();
    let manifest = d.join("out/manifest.json");
    // A stale signature of an earlier manifest is removed, not left to confuse the signer.
    std::fs::create_dir_all(d.join("out")).unwrap();
    std::fs::write(d.join("out/manifest.json.sig"), "stale").unwrap();
    let out = ok(otasync(&[
        "publish",
        "--unsigned",
        &format!("--store={}", s(&d.join("store"))),
        &format!("--manifest-out={}", s(&manifest)),
        "--product=acme-gw",
        "--metadata-version=3",
        ISSUED_AT,
        &format!("rootfs={}", s(&image)),
    ]));
    assert!(
        out.contains("unsigned: sign it with `otasync sign"),
        "{out}"
    );
    assert!(!d.join("out/manifest.json.sig").exists());
    let verify = || {
        let mut cmd = otasync(&["verify", &format!("--root={}", s(&d.join("root.json")))]);
        cmd.args(["--now=2026-09-02T00:00:00Z", "--compatible=acme-gw"])
            .arg(&manifest);
        cmd
    };
    let unsigned = verify().output().unwrap();
    assert!(!unsigned.status.success(), "unsigned is refused");
    let err = String::from_utf8_lossy(&unsigned.stderr);
    assert!(err.contains("manifest.json.sig"), "{err}");
    ok(otasync(&[
        "sign",
        s(&manifest),
        "--key",
        s(&d.join("release.sec")),
    ]));
    ok(verify());

    // The manifest is what `manifest create` writes for the same index and image (the release
    // name defaults to the metadata version).
    let index = d.join("out/rootfs-3.caibx");
    let created = d.join("created.json");
    ok(otasync(&[
        "manifest",
        "create",
        s(&created),
        &format!("rootfs={}:{}", s(&index), s(&image)),
        "--product=acme-gw",
        "--metadata-version=3",
        ISSUED_AT,
    ]));
    assert_eq!(
        std::fs::read(&created).unwrap(),
        std::fs::read(&manifest).unwrap()
    );
    // And `make` writes the same index into the same store.
    let made = d.join("made.caibx");
    ok(otasync(&[
        "make",
        &format!("--store={}", s(&d.join("store"))),
        s(&made),
        s(&image),
    ]));
    assert_eq!(
        std::fs::read(&made).unwrap(),
        std::fs::read(&index).unwrap()
    );
}

#[test]
fn failures_leave_the_published_release_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = keygen(d, "release");
    let (v1, _) = images(d);
    let key_arg = format!("--key={}", s(&key));
    let key_arg = key_arg.as_str();
    let store = format!("--store={}", s(&d.join("store")));
    let store = store.as_str();
    let out = d.join("www");
    ok(otasync(&to_str(&publish_args(
        &out,
        1,
        &[key_arg, store],
        &v1,
    ))));
    let manifest = std::fs::read(out.join("manifest.json")).unwrap();
    let signature = std::fs::read(out.join("manifest.json.sig")).unwrap();
    let listing = files_below(d);

    // A missing image: named, nothing replaced, no temporary file left.
    let missing = vec![format!("rootfs={}", s(&d.join("nope.img")))];
    let err = fails(
        otasync(&to_str(&publish_args(&out, 2, &[key_arg, store], &missing))),
        EXIT_FAILURE,
    );
    assert!(err.contains("nope.img"), "{err}");
    // A key that is not a key: refused before any chunk is cut.
    std::fs::write(d.join("bad.sec"), "not a key\n").unwrap();
    let bad_key = format!("--key={}", s(&d.join("bad.sec")));
    let fresh_store = format!("--store={}", s(&d.join("fresh-store")));
    let err = otasync(&to_str(&publish_args(
        &out,
        2,
        &[bad_key.as_str(), fresh_store.as_str()],
        &v1,
    )))
    .output()
    .unwrap();
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("bad.sec"));
    assert!(!d.join("fresh-store").exists());
    // Neither a key nor --unsigned; a slot twice; a bad release name.
    fails(
        otasync(&to_str(&publish_args(&out, 2, &[store], &v1))),
        EXIT_USAGE,
    );
    let twice = vec![v1[0].clone(), v1[0].clone()];
    let err = fails(
        otasync(&to_str(&publish_args(&out, 2, &[key_arg, store], &twice))),
        EXIT_USAGE,
    );
    assert!(err.contains("given twice"), "{err}");
    let err = fails(
        otasync(&to_str(&publish_args(
            &out,
            2,
            &[key_arg, store, "--release=a/b"],
            &v1,
        ))),
        EXIT_USAGE,
    );
    assert!(err.contains("release name"), "{err}");

    assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), manifest);
    assert_eq!(
        std::fs::read(out.join("manifest.json.sig")).unwrap(),
        signature
    );
    let mut now = files_below(d);
    now.retain(|f| f != "bad.sec");
    assert_eq!(now, listing, "no partial or temporary file left behind");

    // Publishing v1 again writes nothing new to the store.
    let again = json(&ok(otasync(&to_str(&publish_args(
        &out,
        1,
        &[key_arg, store],
        &v1,
    )))));
    assert_eq!(again["chunks_new"], 0, "{again}");
    assert_eq!(again["bytes_uploaded"], 0, "{again}");
}

fn to_str(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}
