//! The board configurations: system.json, fw_env.config (read back by fw_printenv), the .wks
//! layouts, the GRUB files and the build settings, against each other and `otasync check-config`.

use super::bitbake::*;
use super::*;
use std::collections::{BTreeMap, BTreeSet};

#[test]
fn grub_scripts_parse_and_grubenv_is_one_kibibyte() {
    let files = layer().join("recipes-bsp/otasync-grub-conf/files");
    let grubenv = files.join("grubenv");
    let bytes = std::fs::read(&grubenv).expect("grubenv");
    assert_eq!(bytes.len(), 1024);
    assert!(bytes.starts_with(b"# GRUB Environment Block\n"));
    let fragment = std::fs::read_to_string(files.join("otasync-ab.cfg")).expect("fragment");
    for needle in [
        "load_env",
        "save_env",
        "otasync.slot=${otasync_slot}",
        "A_TRY",
        "B_OK",
        "ORDER",
    ] {
        assert!(fragment.contains(needle), "otasync-ab.cfg lacks {needle}");
    }
    let mut scripts = vec![files.join("otasync-ab.cfg")];
    for (board, dir) in boards() {
        if system_json(&dir)["bootloader"]["backend"] != "grub" {
            continue;
        }
        let cfg = dir.join("grub.cfg");
        let text = std::fs::read_to_string(&cfg).expect("grub.cfg");
        assert!(
            text.contains("source \"${prefix}/otasync-ab.cfg\""),
            "{board}"
        );
        // The slots' partitions are those of the .wks.
        let layout = wks(&dir, &board);
        for slot in system_json(&dir)["slots"].as_array().expect("slots") {
            let name = slot["bootname"].as_str().expect("bootname");
            let number = layout.partition_of(slot["device"].as_str().expect("device"));
            assert!(
                text.contains(&format!("set otasync_part_{name}=gpt{number}\n")),
                "{board}: slot {name}"
            );
        }
        scripts.push(cfg);
    }
    if have("grub-script-check", "grub-common") {
        for script in &scripts {
            ok(Command::new("grub-script-check").arg(script));
        }
    }
    if have("grub-editenv", "grub-common") {
        let listed = ok(Command::new("grub-editenv").arg(&grubenv).arg("list"));
        assert_eq!(listed, "ORDER=A B\nA_OK=1\nA_TRY=0\nB_OK=0\nB_TRY=0\n");
    }
}

/// One `part` line of a .wks.
struct Part {
    mountpoint: Option<String>,
    options: BTreeMap<String, String>,
}

/// A .wks layout: the partitions in table order (`--no-table` ones left out).
pub(super) struct Layout {
    board: String,
    gpt: bool,
    parts: Vec<Part>,
}

impl Layout {
    /// The 1-based partition number `device` (`/dev/disk/by-partlabel/NAME`, `/dev/mmcblk0pN`,
    /// `/dev/sdaN`) names, which must be a root file system slot.
    pub(super) fn partition_of(&self, device: &str) -> usize {
        let index = match device.strip_prefix("/dev/disk/by-partlabel/") {
            Some(label) => {
                assert!(self.gpt, "{}: partition names need a GPT", self.board);
                self.parts
                    .iter()
                    .position(|p| p.options.get("--part-name").map(String::as_str) == Some(label))
                    .unwrap_or_else(|| panic!("{}: no partition named {label}", self.board))
            }
            None => {
                let digits: String = device
                    .chars()
                    .rev()
                    .take_while(char::is_ascii_digit)
                    .collect();
                let number: usize = digits
                    .chars()
                    .rev()
                    .collect::<String>()
                    .parse()
                    .unwrap_or_else(|_| panic!("{device}"));
                assert!(
                    number >= 1 && number <= self.parts.len(),
                    "{}: {device}",
                    self.board
                );
                number - 1
            }
        };
        assert_eq!(
            self.parts[index]
                .options
                .get("--source")
                .map(String::as_str),
            Some("rootfs"),
            "{}: {device} is not a root file system slot",
            self.board
        );
        index + 1
    }
}

/// Splits a .wks line into words, honouring double quotes.
fn wks_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    assert!(!quoted, "unbalanced quotes: {line}");
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Reads `<board>.wks.in` in `dir`.
pub(super) fn wks(dir: &Path, board: &str) -> Layout {
    let path = dir.join(format!("{board}.wks.in"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut layout = Layout {
        board: board.to_owned(),
        gpt: false,
        parts: Vec::new(),
    };
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let words = wks_words(line);
        let (command, rest) = words.split_first().expect("a command");
        let mut options = BTreeMap::new();
        let mut mountpoint = None;
        let mut i = 0;
        while i < rest.len() {
            let word = &rest[i];
            if let Some(option) = word.strip_prefix("--") {
                let (key, value) = match option.split_once('=') {
                    Some((k, v)) => (format!("--{k}"), v.to_owned()),
                    None if ["active", "no-fstab-update", "no-table", "use-uuid"]
                        .contains(&option) =>
                    {
                        (word.clone(), String::new())
                    }
                    None => {
                        i += 1;
                        (
                            word.clone(),
                            rest.get(i)
                                .unwrap_or_else(|| panic!("{line}: {word} needs a value"))
                                .clone(),
                        )
                    }
                };
                options.insert(key, value);
            } else {
                assert!(
                    mountpoint.is_none() && i == 0,
                    "{}: stray word {word}",
                    path.display()
                );
                mountpoint = Some(word.clone());
            }
            i += 1;
        }
        match command.as_str() {
            "bootloader" => layout.gpt = options.get("--ptable").map(String::as_str) == Some("gpt"),
            "part" if options.contains_key("--no-table") => {}
            "part" => layout.parts.push(Part {
                mountpoint,
                options,
            }),
            other => panic!("{}: unknown command {other}", path.display()),
        }
    }
    layout
}

/// `fw_env.config`'s entries: (device, offset, size).
fn fw_env_lines(path: &Path) -> Vec<(String, i64, u64)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let number = |field: &str| -> i64 {
        let (negative, digits) = match field.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, field),
        };
        let value = match digits.strip_prefix("0x") {
            Some(hex) => i64::from_str_radix(hex, 16),
            None => digits.parse(),
        }
        .unwrap_or_else(|_| panic!("{}: bad number {field}", path.display()));
        if negative { -value } else { value }
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert!(
                (3..=6).contains(&fields.len()),
                "{}: {line}",
                path.display()
            );
            assert!(fields[0].starts_with('/'), "{}: {line}", path.display());
            let size = number(fields[2]);
            assert!(size > 0, "{}: {line}", path.display());
            (fields[0].to_owned(), number(fields[1]), size as u64)
        })
        .collect()
}

/// A board's OTASYNC_MOUNTS: (device, mount point).
pub(super) fn mounts(dir: &Path) -> Vec<(String, String)> {
    let conf = stmts(&dir.join("otasync-board.conf"));
    let value = value_of(&conf, "OTASYNC_MOUNTS").expect("OTASYNC_MOUNTS");
    value
        .split_whitespace()
        .map(|entry| {
            let fields: Vec<&str> = entry.split(',').collect();
            assert!(fields.len() >= 3, "OTASYNC_MOUNTS entry {entry}");
            (fields[0].to_owned(), fields[1].to_owned())
        })
        .collect()
}

#[test]
fn board_configs_are_complete_and_consistent() {
    const KEYS: [&str; 14] = [
        "compatible",
        "hardware_id",
        "device_id",
        "groups",
        "slots",
        "booted",
        "bootloader",
        "release_url",
        "stores",
        "tls",
        "trust_root",
        "state_dir",
        "poll_interval_s",
        "build_epoch_file",
    ];
    let mut backends = BTreeSet::new();
    for (board, dir) in boards() {
        let config = system_json(&dir);
        let object = config.as_object().expect("an object");
        for key in object.keys() {
            assert!(KEYS.contains(&key.as_str()), "{board}: unknown key {key}");
        }
        for key in [
            "compatible",
            "slots",
            "booted",
            "bootloader",
            "release_url",
            "tls",
            "trust_root",
            "state_dir",
            "poll_interval_s",
        ] {
            assert!(object.contains_key(key), "{board}: no {key}");
        }
        assert!(config["compatible"].as_str().is_some_and(|c| !c.is_empty()));
        // The files otasync-conf installs.
        assert_eq!(
            config["trust_root"],
            json!("/etc/otasync/root.json"),
            "{board}"
        );
        assert_eq!(config["tls"]["ca"], json!("/etc/otasync/ca.pem"), "{board}");
        assert_eq!(config["tls"]["https_only"], json!(true), "{board}");
        assert_eq!(
            config["tls"]["client_cert"].is_string(),
            config["tls"]["client_key"].is_string()
        );
        let url = config["release_url"].as_str().expect("release_url");
        assert!(
            url.starts_with("https://") && url.ends_with("/manifest.json"),
            "{board}: {url}"
        );
        if let Some(stores) = config.get("stores") {
            for store in stores.as_array().expect("stores") {
                let store = store.as_str().expect("store URL");
                assert!(
                    store.starts_with("https://") && store.ends_with('/'),
                    "{board}: {store}"
                );
            }
        }
        assert!(config["poll_interval_s"].as_u64().is_some_and(|p| p >= 60));
        assert!(
            config["booted"]["cmdline"].is_string()
                && config["booted"]["check_root_device"].is_boolean()
        );

        // Two root slots, A and B, on distinct devices that the .wks lays out.
        let slots = config["slots"].as_array().expect("slots");
        let rootfs: Vec<&Value> = slots.iter().filter(|s| s["class"] == "rootfs").collect();
        let names: Vec<&str> = rootfs
            .iter()
            .map(|s| s["bootname"].as_str().expect("bootname"))
            .collect();
        assert_eq!(names, ["A", "B"], "{board}");
        let devices: BTreeSet<&str> = rootfs
            .iter()
            .map(|s| s["device"].as_str().expect("device"))
            .collect();
        assert_eq!(devices.len(), 2, "{board}");
        let layout = wks(&dir, &board);
        let slot_parts: Vec<&Part> = layout
            .parts
            .iter()
            .filter(|p| p.options.get("--source").map(String::as_str) == Some("rootfs"))
            .collect();
        assert_eq!(
            slot_parts.len(),
            2,
            "{board}: the .wks must have two root file system slots"
        );
        assert_eq!(
            slot_parts[0].options.get("--fixed-size"),
            slot_parts[1].options.get("--fixed-size"),
            "{board}: slots differ in size"
        );
        assert!(
            slot_parts[0].options.contains_key("--fixed-size"),
            "{board}: slot sizes must be fixed"
        );
        let numbers: BTreeSet<usize> = devices.iter().map(|d| layout.partition_of(d)).collect();
        assert_eq!(numbers.len(), 2);
        assert!(
            layout
                .parts
                .iter()
                .any(|p| p.mountpoint.as_deref() == Some("/data")),
            "{board}: no /data partition"
        );

        // Everything the agent writes outside /dev is on a mounted partition, /data above all.
        let mounts = mounts(&dir);
        let mounted = |path: &str| {
            mounts
                .iter()
                .any(|(_, at)| path.starts_with(&format!("{at}/")))
        };
        let state = config["state_dir"].as_str().expect("state_dir");
        assert!(
            state.starts_with("/data/") && mounted(state),
            "{board}: state_dir {state}"
        );
        for (device, at) in &mounts {
            assert!(device.starts_with("/dev/"), "{board}: {device}");
            // Mount units point at partitions of the layout, by name or number.
            let listed = layout.parts.iter().enumerate().any(|(i, p)| {
                p.mountpoint.as_deref() == Some(at.as_str())
                    && (device.ends_with(&format!("p{}", i + 1))
                        || p.options
                            .get("--part-name")
                            .is_some_and(|n| device == &format!("/dev/disk/by-partlabel/{n}")))
            });
            assert!(
                listed,
                "{board}: {device} on {at} is not a partition of the .wks"
            );
            assert!(
                layout
                    .parts
                    .iter()
                    .filter(|p| p.mountpoint.as_deref() == Some(at.as_str()))
                    .all(|p| p.options.contains_key("--no-fstab-update")),
                "{board}: {at}"
            );
        }

        let bootloader = &config["bootloader"];
        let backend = bootloader["backend"].as_str().expect("backend");
        backends.insert(backend.to_owned());
        let fw_env = dir.join("fw_env.config");
        match backend {
            "uboot" => {
                assert_eq!(
                    bootloader["fw_env_config"],
                    json!("/etc/fw_env.config"),
                    "{board}"
                );
                for key in ["boot_attempts", "boot_attempts_primary"] {
                    assert!(
                        bootloader[key]
                            .as_u64()
                            .is_some_and(|n| (1..=9).contains(&n)),
                        "{board}: {key}"
                    );
                }
                let lines = fw_env_lines(&fw_env);
                assert!(
                    (1..=2).contains(&lines.len()),
                    "{board}: fw_env.config has {} entries",
                    lines.len()
                );
                // A single copy must be allowed explicitly, and only then.
                assert_eq!(
                    bootloader["allow_nonredundant_env"],
                    json!(lines.len() == 1),
                    "{board}"
                );
                if lines.len() == 2 {
                    assert_eq!(lines[0].2, lines[1].2, "{board}: copies differ in size");
                    if lines[0].0 == lines[1].0 {
                        // Two copies in one device or file must not overlap.
                        let distance = lines[0].1.abs_diff(lines[1].1);
                        assert!(distance >= lines[0].2, "{board}: the two copies overlap");
                    }
                }
                for (device, _, _) in &lines {
                    assert!(
                        device.starts_with("/dev/") || mounted(device),
                        "{board}: {device} is on no mount"
                    );
                }
            }
            "grub" => {
                let grubenv = bootloader["grubenv"].as_str().expect("grubenv");
                assert!(
                    grubenv.ends_with("/grubenv") && mounted(grubenv),
                    "{board}: {grubenv}"
                );
                assert!(!fw_env.exists(), "{board}: fw_env.config on a GRUB board");
                assert!(dir.join("grub.cfg").is_file());
            }
            other => panic!("{board}: backend {other}"),
        }
        let readme = std::fs::read_to_string(dir.join("README.md")).expect("board README.md");
        assert!(
            readme.contains("local.conf"),
            "{board}: README.md without the build settings"
        );
    }
    assert_eq!(
        backends,
        BTreeSet::from(["grub".to_owned(), "uboot".to_owned()])
    );
}

#[test]
fn board_configs_pass_check_config() {
    let configs = board_configs();
    assert_eq!(configs.len(), boards().len());
    for config in &configs {
        let out = ok(otasync(&["check-config", s(config)]));
        assert!(out.contains("valid"), "{}: {out}", config.display());
    }
    // The check is real: the same configuration without its slots is refused.
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut broken = system_json(configs[0].parent().expect("board directory"));
    broken.as_object_mut().expect("object").remove("slots");
    let path = tmp.path().join("system.json");
    std::fs::write(&path, broken.to_string()).expect("config");
    let out = otasync(&["check-config", s(&path)])
        .output()
        .expect("otasync");
    assert!(
        !out.status.success(),
        "a configuration without slots passed"
    );
}

#[test]
fn fw_env_configs_are_read_by_fw_printenv() {
    if !have("fw_printenv", "libubootenv-tool") || !have("mkenvimage", "u-boot-tools") {
        return;
    }
    for (board, dir) in boards() {
        let config = system_json(&dir);
        if config["bootloader"]["backend"] != "uboot" {
            continue;
        }
        let lines = fw_env_lines(&dir.join("fw_env.config"));
        let redundant = lines.len() == 2;
        let tmp = tempfile::tempdir().expect("tempdir");
        // Each copy, as U-Boot writes it: copy 1 newer (flags 2) and different.
        let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut config_text = String::new();
        for (i, (device, offset, size)) in lines.iter().enumerate() {
            let order = if i == 0 { "A B" } else { "B A" };
            let env = tmp.path().join(format!("env{i}.txt"));
            std::fs::write(
                &env,
                format!("BOOT_ORDER={order}\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n"),
            )
            .expect("env");
            let copy = tmp.path().join(format!("copy{i}.bin"));
            let mut cmd = Command::new("mkenvimage");
            if redundant {
                cmd.arg("-r");
            }
            ok(cmd
                .args(["-s", &size.to_string(), "-o"])
                .arg(&copy)
                .arg(&env));
            let mut bytes = std::fs::read(&copy).expect("copy");
            if redundant {
                bytes[4] = i as u8 + 1;
            }
            let count = files.len();
            let file = files
                .entry(device.clone())
                .or_insert_with(|| tmp.path().join(format!("device{count}")));
            let mut content = std::fs::read(&*file).unwrap_or_default();
            let offset = usize::try_from(*offset).expect("non-negative offset");
            if content.len() < offset + bytes.len() {
                content.resize(offset + bytes.len(), 0xff);
            }
            content[offset..offset + bytes.len()].copy_from_slice(&bytes);
            std::fs::write(&*file, content).expect("device file");
            config_text.push_str(&format!("{} {offset:#x} {size:#x}\n", s(file)));
        }
        let cfg = tmp.path().join("fw_env.config");
        std::fs::write(&cfg, config_text).expect("config");
        let out = ok(Command::new("fw_printenv")
            .arg("-c")
            .arg(&cfg)
            .arg("BOOT_ORDER"));
        // Redundant: the newer copy wins, so fw_printenv read both lines as one environment.
        let expected = if redundant {
            "BOOT_ORDER=B A\n"
        } else {
            "BOOT_ORDER=A B\n"
        };
        assert_eq!(out, expected, "{board}");
        if redundant {
            // A torn write of the newer copy leaves the older one, intact where it was written.
            let (device, offset, _) = &lines[1];
            let file = &files[device];
            let mut content = std::fs::read(file).expect("device file");
            let at = usize::try_from(*offset).expect("offset") + 8;
            content[at] ^= 0xff;
            std::fs::write(file, content).expect("device file");
            let out = ok(Command::new("fw_printenv")
                .arg("-c")
                .arg(&cfg)
                .arg("BOOT_ORDER"));
            assert_eq!(out, "BOOT_ORDER=A B\n", "{board}: copy 0 did not survive");
        }
    }
}
