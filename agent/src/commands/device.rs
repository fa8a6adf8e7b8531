//! The device verbs: `update`, `daemon`, `mark-good`, `mark-bad`, `status`, `check-config`.
//! Each reads the device configuration and works on the agent's state (see [`crate::ota`]).

use crate::cli::Options;
use crate::error::{Error, Result};
use crate::ota::config::{DEFAULT_CONFIG, DeviceConfig};
use crate::ota::fetch::Fetcher;
use crate::ota::state::StateDir;
use crate::ota::update::{Agent, DeviceSlots, Updated, read_root};
use crate::ota::{booted, daemon};
use crate::store::http::{HttpClient, HttpSettings, is_url};
use clap::Subcommand;
use otasync_signing::{Clock, Timestamp};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The device verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum DeviceVerb {
    /// Install the newest signed release into the inactive slot (resuming an interrupted
    /// installation), verify it and make the bootloader try it next.
    Update {
        /// The device configuration.
        #[arg(long, value_name = "PATH", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Fetch the manifest from here instead of the configured release URL.
        #[arg(long = "manifest-url", value_name = "URL")]
        manifest_url: Option<String>,
        /// Reboot when a release was installed.
        #[arg(long)]
        reboot: bool,
    },
    /// Poll for releases and install them (with jitter, and backoff after failures).
    Daemon {
        /// The device configuration.
        #[arg(long, value_name = "PATH", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Reboot when a release was installed.
        #[arg(long)]
        reboot: bool,
    },
    /// The running slot works: commit the release on trial (raises the security floor).
    MarkGood {
        /// The device configuration.
        #[arg(long, value_name = "PATH", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// The running slot does not work: the bootloader stops choosing it.
    MarkBad {
        /// The device configuration.
        #[arg(long, value_name = "PATH", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Show the booted slot, the slots, the bootloader state and installation progress
    /// (--json for the documented JSON).
    Status {
        /// The device configuration.
        #[arg(long, value_name = "PATH", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate a device configuration (on a build host: the file alone).
    CheckConfig {
        /// The configuration file.
        #[arg(default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Also open the bootloader environment, read the trust root and detect the booted
        /// slot, as the agent will.
        #[arg(long = "on-device")]
        on_device: bool,
    },
}

/// Runs a device verb.
pub(crate) fn run(options: &Options, verb: &DeviceVerb) -> Result<()> {
    match verb {
        DeviceVerb::Update {
            config,
            manifest_url,
            reboot,
        } => {
            let config = DeviceConfig::load(config)?;
            let mut agent = build(options, &config, manifest_url.clone())?;
            let updated = agent.update()?;
            match &updated {
                Updated::UpToDate(release) => println!("up to date: {release}"),
                Updated::Installed(release) => println!("installed {release}: reboot to run it"),
            }
            if *reboot && matches!(updated, Updated::Installed(_)) {
                daemon::reboot()?;
            }
            Ok(())
        }
        DeviceVerb::Daemon { config, reboot } => {
            let config = DeviceConfig::load(config)?;
            daemon::run(&config, *reboot, || build(options, &config, None))
        }
        DeviceVerb::MarkGood { config } => {
            let config = DeviceConfig::load(config)?;
            println!("{}", build(options, &config, None)?.mark_good()?);
            Ok(())
        }
        DeviceVerb::MarkBad { config } => {
            let config = DeviceConfig::load(config)?;
            println!("{}", build(options, &config, None)?.mark_bad()?);
            Ok(())
        }
        DeviceVerb::Status { config } => {
            let config = DeviceConfig::load(config)?;
            let status = build(options, &config, None)?.status()?;
            if options.json {
                println!("{status}");
            } else {
                print_status(&status);
            }
            Ok(())
        }
        DeviceVerb::CheckConfig { config, on_device } => {
            let loaded = DeviceConfig::load(config)?;
            if *on_device {
                crate::boot::open(&loaded.bootloader, &loaded.bootnames()).map_err(Error::boot)?;
                read_root(&loaded.trust_root)?;
                booted::booted_bootname(&loaded)?;
            }
            println!(
                "{}: valid ({} slots, bootnames {})",
                config.display(),
                loaded.slots.len(),
                loaded.bootnames().join(" ")
            );
            Ok(())
        }
    }
}

/// The agent for this run: state, bootloader, booted slot, clocks, HTTP client.
fn build<'a>(
    options: &Options,
    config: &'a DeviceConfig,
    manifest_url: Option<String>,
) -> Result<Agent<'a>> {
    let release_url = manifest_url.unwrap_or_else(|| config.release_url.clone());
    if config.tls.https_only && is_url(&release_url) && !release_url.starts_with("https://") {
        return Err(Error::Refused(format!(
            "{release_url} is not HTTPS, and https_only is set"
        )));
    }
    let remote = is_url(&release_url) || config.stores.iter().any(|s| is_url(s));
    let http = remote
        .then(|| HttpClient::new(http_settings(config)).map(Arc::new))
        .transpose()?;
    let states = StateDir::open(&config.state_dir)?;
    let boot = crate::boot::open(&config.bootloader, &config.bootnames()).map_err(Error::boot)?;
    let booted = booted::booted_bootname(config)?;
    let boot_id = std::fs::read_to_string(&config.booted.boot_id)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    Ok(Agent {
        config,
        states,
        boot,
        fetcher: Fetcher::new(http.clone()),
        http,
        slots: &DeviceSlots,
        clock: Clock {
            system: system_time(),
            build_epoch: build_epoch(config.build_epoch_file.as_deref()),
        },
        booted,
        boot_id,
        threads: match remote {
            true => options.concurrency.map_or(config.concurrency, usize::from),
            false => options.threads(),
        },
        release_url,
        checkpoint_every: crate::ota::writer::CHECKPOINT_EVERY,
    })
}

/// HTTP settings from the device configuration (S18, S22).
fn http_settings(config: &DeviceConfig) -> HttpSettings {
    HttpSettings {
        ca: config.tls.ca.clone(),
        client_cert: config
            .tls
            .client_cert
            .clone()
            .zip(config.tls.client_key.clone()),
        headers: Vec::new(),
        connect_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_secs(300),
        retries: 3,
        rate_limit_bps: None,
        min_rate_bps: Some(config.min_rate_bps),
        deadline: Some(Instant::now() + Duration::from_secs(config.deadline_s)),
    }
}

/// The system clock.
fn system_time() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

/// The running image's build time, from its file (seconds, or an RFC 3339 time); 0 if absent.
fn build_epoch(path: Option<&Path>) -> Timestamp {
    let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) else {
        return Timestamp(0);
    };
    let text = text.trim();
    text.parse()
        .ok()
        .map(Timestamp)
        .or_else(|| Timestamp::parse(text))
        .unwrap_or(Timestamp(0))
}

/// The status for people.
fn print_status(status: &serde_json::Value) {
    println!("booted: {}", status["booted"].as_str().unwrap_or("?"));
    if let Some(slots) = status["slots"].as_array() {
        for slot in slots {
            println!(
                "slot {}.{} ({}): {} {}",
                slot["class"].as_str().unwrap_or(""),
                slot["bootname"].as_str().unwrap_or(""),
                slot["device"].as_str().unwrap_or(""),
                slot["status"].as_str().unwrap_or(""),
                slot["release"].as_str().unwrap_or("-"),
            );
        }
    }
    let progress = &status["progress"];
    println!(
        "installation: {} ({} of {} bytes; {} from seeds, {} downloaded)",
        progress["phase"].as_str().unwrap_or("idle"),
        progress["bytes_done"],
        progress["bytes_total"],
        progress["bytes_from_seeds"],
        progress["bytes_downloaded"],
    );
    if let Some(result) = status["last_result"].as_str() {
        println!("last result: {result}");
    }
}
