//! U-Boot backend: fw_env.config parsing, RAUC semantics, and interop with libubootenv's
//! `fw_printenv`/`fw_setenv` and `mkenvimage` on files and a loop device.

use super::loop_device::LoopDevice;
use super::{Pairs, Step, bootnames, have, parse_listing, run, s, vars};
use crate::boot::fw_env::{CopyLocation, force_ro_path, parse_config};
use crate::boot::uboot::{apply_bad, apply_primary, boot_state};
use crate::boot::{BootError, BootState, Bootloader, BootloaderConfig, SlotBootState, open};
use otasync_core::bootenv::Env;
use otasync_core::bootenv::uboot::{FLAGS_OFFSET, FlagsMode, load_redundant, store_redundant};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Size of one copy in these tests.
const SIZE: usize = 0x2000;

/// Variables a board's default environment has besides RAUC's.
const BOARD: &[(&str, &str)] = &[
    ("bootcmd", "run rauc_boot; reset"),
    ("bootargs", "console=ttyS0,115200"),
    (".flags", "serial#:so"),
    ("serial#", "0042"),
];

fn env(pairs: &[(&str, &str)]) -> Env {
    let mut env = Env::new();
    for (n, v) in pairs {
        env.set(n, v).unwrap();
    }
    env
}

/// A 2 x SIZE file holding `pairs` in copy 0 (flags `flags`) and zeros in copy 1, and the
/// fw_env.config naming both copies.
struct Fixture {
    _dir: tempfile::TempDir,
    file: PathBuf,
    config: PathBuf,
}

impl Fixture {
    fn new(pairs: &[(&str, &str)], flags: u8) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("uboot.env");
        let mut bytes = vec![0u8; 2 * SIZE];
        store_redundant(&env(pairs), &mut bytes[..SIZE], flags).unwrap();
        std::fs::write(&file, &bytes).unwrap();
        let config = dir.path().join("fw_env.config");
        std::fs::write(
            &config,
            format!(
                "# two copies in one file\n{f} 0x0 {SIZE:#x}\n{f} {SIZE:#x} {SIZE:#x}\n",
                f = s(&file)
            ),
        )
        .unwrap();
        Self {
            _dir: dir,
            file,
            config,
        }
    }

    fn backend(&self, attempts: u32, primary: u32) -> Box<dyn Bootloader> {
        let config = BootloaderConfig::Uboot {
            fw_env_config: self.config.clone(),
            boot_attempts: attempts,
            boot_attempts_primary: primary,
            allow_nonredundant_env: false,
        };
        open(&config, &bootnames()).unwrap()
    }

    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.file).unwrap()
    }

    /// What `fw_printenv -c` prints (it hides `.flags`).
    fn fw_printenv(&self) -> BTreeMap<String, String> {
        parse_listing(&run("fw_printenv", &["-c", s(&self.config)]))
    }

    fn fw_setenv(&self, args: &[&str]) {
        let mut all = vec!["-c", s(&self.config)];
        all.extend_from_slice(args);
        run("fw_setenv", &all);
    }

    /// `(current copy, its flags)` as our codec chooses them.
    fn current(&self) -> (usize, u8) {
        let bytes = self.bytes();
        let loaded =
            load_redundant([&bytes[..SIZE], &bytes[SIZE..]], FlagsMode::Incremental).unwrap();
        (loaded.current, loaded.flags)
    }
}

fn slot(bootname: &str, in_order: bool, attempts_left: u32) -> SlotBootState {
    SlotBootState {
        bootname: bootname.into(),
        in_order,
        attempts_left,
        good: in_order && attempts_left > 0,
    }
}

fn order(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn fw_env_config_columns() {
    let copies = parse_config(
        "# comment\n\n/dev/mmcblk0 0x3c0000 0x4000\n  /dev/mmcblk0\t-0x4000 4000 0x200 2 1 # x\n",
    )
    .unwrap();
    assert_eq!(
        copies,
        [
            CopyLocation {
                device: "/dev/mmcblk0".into(),
                offset: 0x3c0000,
                size: 0x4000,
                disable_lock: false
            },
            CopyLocation {
                device: "/dev/mmcblk0".into(),
                offset: -0x4000,
                size: 0x4000,
                disable_lock: true
            },
        ]
    );
    // Offsets are C integers (octal with a leading 0), sizes always hex.
    let one = parse_config("f 010 10\n").unwrap();
    assert_eq!((one[0].offset, one[0].size), (8, 16));
    let one = parse_config("f 4096 0X2000 # trailing comment\n").unwrap();
    assert_eq!((one[0].offset, one[0].size), (4096, 0x2000));
    for (text, error) in [
        ("", "no environment"),
        ("# only\n", "no environment"),
        ("f 0\n", "line 1: needs"),
        ("f 0x 0x2000\n", "bad offset"),
        ("f 08 0x2000\n", "bad offset"),
        ("f 1 0x2000g\n", "bad size"),
        ("f 0 0\n", "not in 6"),
        ("f 0 0x1000000\n", "not in 6"),
        ("f 0 0x2000 1 1 x\n", "bad disable-lock"),
        ("f 0 0x2000 1 1 1 1\n", "more than 6"),
        ("f 0 0x2000\nf 0x2000 0x1000\n", "differ in size"),
        ("f 0 0x20\nf 0x20 0x20\nf 0x40 0x20\n", "more than two"),
        ("/dev/mtd1 0 0x2000\n", "MTD and UBI"),
        ("/dev/ubi0:env 0 0x2000\n", "MTD and UBI"),
    ] {
        let e = parse_config(text).unwrap_err();
        assert!(e.contains(error), "{text:?}: {e}");
    }
}

#[test]
fn force_ro_only_for_emmc_boot_partitions() {
    assert_eq!(
        force_ro_path(Path::new("/dev/mmcblk0boot1")),
        Some(PathBuf::from("/sys/class/block/mmcblk0boot1/force_ro"))
    );
    assert_eq!(
        force_ro_path(Path::new("/dev/block/mmcblk12boot0")),
        Some(PathBuf::from("/sys/class/block/mmcblk12boot0/force_ro"))
    );
    for other in [
        "/dev/mmcblk0",
        "/dev/mmcblk0p1",
        "/dev/mmcblkboot0",
        "/dev/sda",
        "x.env",
    ] {
        assert_eq!(force_ro_path(Path::new(other)), None, "{other}");
    }
}

#[test]
fn rauc_semantics() {
    let names = bootnames();
    // Unset order: empty, no slot good; LEFT read as strtoull(.., 16).
    let mut e = env(&[("BOOT_A_LEFT", "a"), ("BOOT_B_LEFT", " 0x1f junk")]);
    assert_eq!(
        boot_state(&e, &names),
        BootState {
            order: vec![],
            slots: vec![slot("A", false, 10), slot("B", false, 31)]
        }
    );
    // Bad with no order leaves the order unset.
    apply_bad(&mut e, "B").unwrap();
    assert_eq!(e.get("BOOT_ORDER"), None);
    assert_eq!(e.get("BOOT_B_LEFT"), Some(&b"0"[..]));
    // Primary creates the order from the configured bootnames.
    apply_primary(&mut e, "B", 12, &names).unwrap();
    assert_eq!(e.get("BOOT_ORDER"), Some(&b"B A"[..]));
    assert_eq!(e.get("BOOT_B_LEFT"), Some(&b"c"[..]));
    // Bad removes from the order, primary puts back first, keeping unknown names.
    let mut e = env(&[
        ("BOOT_ORDER", "R  A B"),
        ("BOOT_A_LEFT", "3"),
        ("BOOT_B_LEFT", "3"),
    ]);
    apply_bad(&mut e, "A").unwrap();
    assert_eq!(e.get("BOOT_ORDER"), Some(&b"R B"[..]));
    assert_eq!(
        boot_state(&e, &names).slots,
        [slot("A", false, 0), slot("B", true, 3)]
    );
    apply_primary(&mut e, "A", 3, &names).unwrap();
    assert_eq!(e.get("BOOT_ORDER"), Some(&b"A R B"[..]));
    assert_eq!(boot_state(&e, &names).order, order(&["A", "R", "B"]));
}

/// The board's variables with both slots bootable, A first, three attempts each.
fn board_with_both_slots() -> Vec<(&'static str, &'static str)> {
    let mut pairs = BOARD.to_vec();
    pairs.extend([
        ("BOOT_ORDER", "A B"),
        ("BOOT_A_LEFT", "3"),
        ("BOOT_B_LEFT", "3"),
    ]);
    pairs
}

/// Our commits read back by fw_printenv: each is one write of the non-current copy with
/// flags + 1, the other copy untouched, the board's variables kept; a commit that changes
/// nothing writes nothing.
#[test]
fn our_writes_read_by_fw_printenv() {
    if !have("fw_printenv") {
        return;
    }
    let pairs = board_with_both_slots();
    let fx = Fixture::new(&pairs, 7);
    let mut boot = fx.backend(10, 4);
    let steps: [(&str, Step, Pairs); 4] = [
        (
            "mark_bad B",
            |b| b.mark_bad("B"),
            &[("BOOT_ORDER", "A"), ("BOOT_B_LEFT", "0")],
        ),
        (
            "set_primary B",
            |b| b.set_primary("B"),
            &[("BOOT_ORDER", "B A"), ("BOOT_B_LEFT", "4")],
        ),
        ("mark_good B", |b| b.mark_good("B"), &[("BOOT_B_LEFT", "a")]),
        (
            "mark_bad A",
            |b| b.mark_bad("A"),
            &[("BOOT_ORDER", "B"), ("BOOT_A_LEFT", "0")],
        ),
    ];
    let mut expected = vars(&pairs);
    expected.remove(".flags");
    for (i, (what, step, changes)) in steps.into_iter().enumerate() {
        let before = fx.bytes();
        let (current, flags) = fx.current();
        step(boot.as_mut()).unwrap();
        let after = fx.bytes();
        let kept = current * SIZE..(current + 1) * SIZE;
        assert_eq!(
            before[kept.clone()],
            after[kept],
            "{what}: current copy touched"
        );
        assert_eq!(fx.current(), (1 - current, flags.wrapping_add(1)), "{what}");
        assert_eq!(fx.current().1, 8 + i as u8);
        expected.extend(vars(changes));
        assert_eq!(fx.fw_printenv(), expected, "{what}");
        // The same operation again changes nothing and writes nothing.
        step(boot.as_mut()).unwrap();
        assert_eq!(fx.bytes(), after, "{what} repeated");
    }
    // `.flags` is kept.
    let bytes = fx.bytes();
    let loaded = load_redundant([&bytes[..SIZE], &bytes[SIZE..]], FlagsMode::Incremental).unwrap();
    assert_eq!(loaded.env.get(".flags"), Some(&b"serial#:so"[..]));
    assert_eq!(
        boot.state().unwrap(),
        BootState {
            order: order(&["B"]),
            slots: vec![slot("A", false, 0), slot("B", true, 10)]
        }
    );
}

/// fw_setenv and our backend take turns on the same environment; each reads what the other
/// wrote, and the flags keep counting through the wrap from 255 to 0.
#[test]
fn fw_setenv_and_ours_take_turns() {
    if !have("fw_setenv") || !have("fw_printenv") {
        return;
    }
    let fx = Fixture::new(BOARD, 253);
    let mut boot = fx.backend(3, 3);
    fx.fw_setenv(&["BOOT_ORDER", "B A"]);
    fx.fw_setenv(&["BOOT_B_LEFT", "2"]);
    assert_eq!(fx.current().1, 255);
    let state = boot.state().unwrap();
    assert_eq!(state.order, order(&["B", "A"]));
    assert_eq!(state.slots, [slot("A", true, 0), slot("B", true, 2)]);
    boot.set_primary("A").unwrap();
    assert_eq!(fx.current().1, 0);
    let printed = fx.fw_printenv();
    assert_eq!(printed["BOOT_ORDER"], "A B");
    assert_eq!(printed["BOOT_A_LEFT"], "3");
    assert_eq!(printed["bootcmd"], "run rauc_boot; reset");
    fx.fw_setenv(&["BOOT_A_LEFT", "1"]);
    assert_eq!(fx.current().1, 1);
    assert_eq!(boot.state().unwrap().slots[0], slot("A", true, 1));
    boot.mark_good("A").unwrap();
    assert_eq!(fx.current().1, 2);
    assert_eq!(fx.fw_printenv()["BOOT_A_LEFT"], "3");
}

/// `mkenvimage -r` output, with the two copies in two files, is read as is; our write goes
/// to the second file, which fw_printenv then reads.
#[test]
fn mkenvimage_copies_in_two_files() {
    if !have("mkenvimage") || !have("fw_printenv") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("env.txt");
    std::fs::write(
        &text,
        "BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\nbootdelay=0\n",
    )
    .unwrap();
    let first = dir.path().join("env0.bin");
    let second = dir.path().join("env1.bin");
    run(
        "mkenvimage",
        &["-r", "-s", "0x2000", "-o", s(&first), s(&text)],
    );
    std::fs::write(&second, vec![0xffu8; SIZE]).unwrap();
    let config = dir.path().join("fw_env.config");
    std::fs::write(
        &config,
        format!("{} 0 0x2000\n{} 0 0x2000\n", s(&first), s(&second)),
    )
    .unwrap();
    let mut boot = open(
        &BootloaderConfig::Uboot {
            fw_env_config: config.clone(),
            boot_attempts: 3,
            boot_attempts_primary: 5,
            allow_nonredundant_env: false,
        },
        &bootnames(),
    )
    .unwrap();
    assert_eq!(
        boot.state().unwrap().slots,
        [slot("A", true, 3), slot("B", true, 3)]
    );
    let untouched = std::fs::read(&first).unwrap();
    boot.set_primary("B").unwrap();
    assert_eq!(std::fs::read(&first).unwrap(), untouched);
    assert_eq!(std::fs::read(&second).unwrap()[FLAGS_OFFSET], 2);
    assert_eq!(
        parse_listing(&run("fw_printenv", &["-c", s(&config)])),
        vars(&[
            ("BOOT_ORDER", "B A"),
            ("BOOT_A_LEFT", "3"),
            ("BOOT_B_LEFT", "5"),
            ("bootdelay", "0")
        ])
    );
}

/// A write of the new copy cut short after k bytes (the rest old bytes or zeros), or with one
/// byte corrupted: fw_printenv and our reader both give the environment before the write.
#[test]
fn torn_write_gives_old_env_to_both() {
    if !have("fw_printenv") {
        return;
    }
    let pairs = board_with_both_slots();
    let fx = Fixture::new(&pairs, 1);
    let mut boot = fx.backend(3, 3);
    // Copy 1 holds an older environment, so that "old bytes" differ from the new ones.
    boot.mark_bad("A").unwrap();
    boot.mark_bad("B").unwrap();
    let old = fx.bytes();
    let old_vars = fx.fw_printenv();
    assert_eq!(old_vars["BOOT_ORDER"], "");
    boot.set_primary("A").unwrap();
    let new = fx.bytes();
    let new_vars = fx.fw_printenv();
    assert_eq!(new_vars["BOOT_ORDER"], "A B");
    let (target, _) = fx.current();
    let copy = target * SIZE;
    assert_ne!(old[copy..copy + SIZE], new[copy..copy + SIZE]);
    let mut torn_cases = 0;
    for k in [0, 1, 4, 5, 6, 40, 100, 200, SIZE / 2, SIZE - 1] {
        for rest_old in [true, false] {
            let mut torn = old.clone();
            torn[copy..copy + k].copy_from_slice(&new[copy..copy + k]);
            if !rest_old {
                torn[copy + k..copy + SIZE].fill(0);
            }
            std::fs::write(&fx.file, &torn).unwrap();
            // Past the end of the new variables the new copy is zeros, like what it replaces:
            // such a "torn" write is complete.
            let complete = torn[copy..copy + SIZE] == new[copy..copy + SIZE];
            let (vars, order_) = match complete {
                true => (&new_vars, order(&["A", "B"])),
                false => (&old_vars, order(&[])),
            };
            let what = format!("k={k} rest_old={rest_old}");
            assert_eq!(&fx.fw_printenv(), vars, "{what}");
            assert_eq!(boot.state().unwrap().order, order_, "{what}");
            torn_cases += usize::from(!complete);
        }
        let mut corrupt = new.clone();
        corrupt[copy + k] ^= 0x01;
        std::fs::write(&fx.file, &corrupt).unwrap();
        if k != FLAGS_OFFSET {
            assert_eq!(fx.fw_printenv(), old_vars, "corrupt byte {k}");
            assert_eq!(boot.state().unwrap().order, order(&[]), "corrupt byte {k}");
        }
    }
    assert!(torn_cases >= 12, "{torn_cases}");
    // After a torn write, the next commit goes to the same copy again and completes.
    std::fs::write(&fx.file, &old).unwrap();
    boot.set_primary("A").unwrap();
    assert_eq!(fx.current().0, target);
    assert_eq!(fx.fw_printenv(), new_vars);
}

#[test]
fn single_copy_needs_allow_nonredundant_env() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("uboot.env");
    let mut bytes = vec![0u8; SIZE];
    otasync_core::bootenv::uboot::store_single(&env(BOARD), &mut bytes).unwrap();
    std::fs::write(&file, &bytes).unwrap();
    let config_file = dir.path().join("fw_env.config");
    std::fs::write(&config_file, format!("{} 0 0x2000\n", s(&file))).unwrap();
    let config = |allow| BootloaderConfig::Uboot {
        fw_env_config: config_file.clone(),
        boot_attempts: 3,
        boot_attempts_primary: 3,
        allow_nonredundant_env: allow,
    };
    let e = open(&config(false), &bootnames()).err().unwrap();
    assert!(
        matches!(e, BootError::Config(ref m) if m.contains("allow_nonredundant_env")),
        "{e}"
    );
    let mut boot = open(&config(true), &bootnames()).unwrap();
    boot.set_primary("A").unwrap();
    if have("fw_printenv") {
        let printed = parse_listing(&run("fw_printenv", &["-c", s(&config_file)]));
        assert_eq!(printed["BOOT_ORDER"], "A B");
        assert_eq!(printed["BOOT_A_LEFT"], "3");
        assert_eq!(printed["serial#"], "0042");
    }
}

/// Neither copy valid: reading and writing both fail with the named error; nothing written.
#[test]
fn no_valid_copy_is_named_and_not_overwritten() {
    let fx = Fixture::new(&[], 1);
    std::fs::write(&fx.file, vec![0u8; 2 * SIZE]).unwrap();
    let mut boot = fx.backend(3, 3);
    let e = boot.state().unwrap_err();
    assert!(matches!(e, BootError::NoValidEnv { .. }), "{e}");
    assert!(e.to_string().contains("default environment"), "{e}");
    assert!(matches!(
        boot.mark_bad("A"),
        Err(BootError::NoValidEnv { .. })
    ));
    assert_eq!(fx.bytes(), vec![0u8; 2 * SIZE]);
    assert!(matches!(boot.mark_bad("C"), Err(BootError::Config(_))));
}

/// Variables that do not fit: a specific error, nothing written.
#[test]
fn overflow_is_refused_before_writing() {
    let big = "x".repeat(SIZE - 20);
    let fx = Fixture::new(&[("big", &big)], 1);
    let before = fx.bytes();
    let e = fx.backend(3, 3).set_primary("B").unwrap_err();
    assert!(matches!(e, BootError::Env { .. }), "{e}");
    assert!(
        e.to_string().contains("bytes but the environment holds"),
        "{e}"
    );
    assert_eq!(fx.bytes(), before);
}

/// Negative offsets count from the end of a block device (BLKGETSIZE64); fw_printenv reads
/// our copies there too. Needs root for the loop device.
#[test]
fn negative_offsets_on_a_loop_device() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIPPED: negative_offsets_on_a_loop_device needs root for losetup");
        return;
    }
    if !have("losetup") || !have("fw_printenv") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    let mut bytes = vec![0u8; 16 * SIZE];
    let end = bytes.len();
    store_redundant(&env(BOARD), &mut bytes[end - 2 * SIZE..end - SIZE], 1).unwrap();
    std::fs::write(&image, &bytes).unwrap();
    let device = LoopDevice::attach(&image);
    let config = dir.path().join("fw_env.config");
    std::fs::write(
        &config,
        format!("{d} -0x4000 0x2000\n{d} -0x2000 0x2000\n", d = device.path),
    )
    .unwrap();
    let mut boot = open(
        &BootloaderConfig::Uboot {
            fw_env_config: config.clone(),
            boot_attempts: 3,
            boot_attempts_primary: 3,
            allow_nonredundant_env: false,
        },
        &bootnames(),
    )
    .unwrap();
    boot.set_primary("B").unwrap();
    let printed = parse_listing(&run("fw_printenv", &["-c", s(&config)]));
    assert_eq!(printed["BOOT_ORDER"], "B A");
    assert_eq!(printed["bootcmd"], "run rauc_boot; reset");
    drop(device);
    let on_disk = std::fs::read(&image).unwrap();
    assert_eq!(
        on_disk[end - SIZE + FLAGS_OFFSET],
        2,
        "copy 1 written at the end"
    );
}
