//! The layer's tasks and parse-time code, run: the board chosen from MACHINE, the Rust version
//! check, the `caibx` conversion and `do_release` with the real `otasync`, the U-Boot script
//! filled in and compiled, the mount units verified by systemd.

use super::boards::{mounts, wks};
use super::datastore::*;
use super::*;

#[test]
fn board_follows_the_machine() {
    if !have("python3", "python3") {
        return;
    }
    let layer_conf = layer().join("conf/layer.conf");
    for (machine, board) in [
        ("qemux86-64", "qemux86-64"),
        ("qemuarm64", "qemuarm64"),
        ("raspberrypi4-64", "raspberrypi4"),
        ("raspberrypi4", "raspberrypi4"),
    ] {
        let recipe = Recipe::load(
            &layer_conf,
            Path::new("/nonexistent"),
            &[("MACHINE", machine)],
        );
        assert_eq!(recipe.var("OTASYNC_BOARD"), board);
        let dir = PathBuf::from(recipe.var("OTASYNC_BOARD_DIR"));
        assert!(dir.join("system.json").is_file(), "{}", dir.display());
        assert!(
            PathBuf::from(recipe.var("OTASYNC_WKS_FILE")).is_file(),
            "{machine}"
        );
    }
}

#[test]
fn otasync_recipe_skips_itself_on_an_old_rust() {
    if !have("python3", "python3") {
        return;
    }
    let board = repo().join("board-configs/qemux86-64");
    let recipe_path = layer().join("recipes-support/otasync/otasync_git.bb");
    for (rust, skipped) in [
        ("1.75.0%", true),
        ("1.84.1", true),
        ("1.88.0", false),
        ("1.94.1", false),
        ("", false),
    ] {
        let recipe = Recipe::load(&recipe_path, &board, &[("RUSTVERSION", rust)]);
        assert_eq!(recipe.anonymous.len(), 1);
        let result = &recipe.run(vec![json!({"python": recipe.anonymous[0]})])[0];
        match skipped {
            true => assert!(
                result["skip"]
                    .as_str()
                    .is_some_and(|m| m.contains("meta-lts-mixins")),
                "{rust}: {result}"
            ),
            false => assert_eq!(result, &json!({"ok": true}), "{rust}"),
        }
    }
}

/// A deploy directory as core-image-minimal leaves it for qemux86-64 with
/// `IMAGE_FSTYPES += "ext4 ext4.caibx"`, made by running otasync-image.bbclass's conversion
/// command with the real binary. Returns the image class recipe used.
fn deploy_image(deploy: &Path) -> Recipe {
    let board = repo().join("board-configs/qemux86-64");
    let name = "core-image-minimal-qemux86-64.rootfs";
    let recipe = Recipe::load(
        &layer().join("classes-recipe/otasync-image.bbclass"),
        &board,
        &[
            ("MACHINE", "qemux86-64"),
            ("IMGDEPLOYDIR", s(deploy)),
            ("IMAGE_NAME", name),
            ("IMAGE_LINK_NAME", name),
            ("type", "ext4"),
        ],
    );
    let mut image = text_bytes(1_500_000);
    image.extend(random_bytes(1_000_000, 7));
    std::fs::write(deploy.join(format!("{name}.ext4")), image).expect("image");
    let command = recipe.var("CONVERSION_CMD:caibx");
    assert!(
        recipe
            .var("CONVERSIONTYPES")
            .split_whitespace()
            .any(|t| t == "caibx")
    );
    assert_eq!(recipe.var("CONVERSION_DEPENDS_caibx"), "otasync-native");
    let (fine, _, err) = run_shell_task(&recipe, &command, deploy);
    assert!(fine, "{command}: {err}");
    recipe
}

#[test]
fn caibx_conversion_chunks_the_image_into_a_store() {
    if !have("python3", "python3") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    deploy_image(tmp.path());
    let name = "core-image-minimal-qemux86-64.rootfs";
    let index = tmp.path().join(format!("{name}.ext4.caibx"));
    let store = tmp.path().join(format!("{name}.castr"));
    assert!(index.is_file() && store.is_dir());
    assert!(!files_below(&store).is_empty());
    // The store holds every chunk of the index, and they reassemble the image.
    ok(otasync(&[
        "verify",
        &format!("--store={}", s(&store)),
        s(&index),
        s(&tmp.path().join(format!("{name}.ext4"))),
    ]));
}

/// The release recipe for qemux86-64 with `settings` (local.conf) and the deploy directory.
fn release_recipe(deploy: &Path, work: &Path, settings: &[(&str, &str)]) -> Recipe {
    let mut local = vec![
        ("MACHINE", "qemux86-64"),
        ("PN", "otasync-release"),
        ("DEPLOY_DIR_IMAGE", s(deploy)),
        ("WORKDIR", s(work)),
        ("IMAGE_MACHINE_SUFFIX", "-qemux86-64"),
        ("IMAGE_NAME_SUFFIX", ".rootfs"),
        ("DISTRO_VERSION", "5.3"),
        ("DATETIME", "20261125120000"),
    ];
    local.extend_from_slice(settings);
    Recipe::load(
        &layer().join("recipes-core/otasync-release/otasync-release.bb"),
        &repo().join("board-configs/qemux86-64"),
        &local,
    )
}

#[test]
fn release_writes_and_signs_a_manifest_devices_accept() {
    if !have("python3", "python3") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let deploy = tmp.path().join("deploy");
    let work = tmp.path().join("work");
    let keys = tmp.path().join("keys");
    for dir in [&deploy, &work, &work.join("build"), &keys] {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    deploy_image(&deploy);
    let k = |name: &str| keys.join(name);
    ok(otasync(&[
        "keygen",
        &format!("--secret-key={}", s(&k("release.sec"))),
        &format!("--public-key={}", s(&k("release.pub"))),
    ]));
    ok(otasync(&[
        "keygen",
        &format!("--secret-key={}", s(&k("root.sec"))),
        &format!("--public-key={}", s(&k("root.pub"))),
    ]));
    ok(otasync(&[
        "root",
        "create",
        s(&k("root.json")),
        &format!("--root-key={}", s(&k("root.pub"))),
        &format!("--release-key={}", s(&k("release.pub"))),
    ]));

    let recipe = release_recipe(
        &deploy,
        &work,
        &[
            ("OTASYNC_SIGNING_KEY", s(&k("release.sec"))),
            ("OTASYNC_TRUST_ROOT", s(&k("root.json"))),
            ("OTASYNC_CHUNK_STORES", "https://cdn.example.com/store/"),
        ],
    );
    // The anonymous function makes do_release wait for the image.
    assert_eq!(recipe.anonymous.len(), 1);
    let anon = &recipe.run(vec![
        json!({"python": recipe.anonymous[0]}),
        json!({"eval": "d.getVarFlag('do_release', 'depends')"}),
    ]);
    assert_eq!(anon[0], json!({"ok": true}));
    assert_eq!(
        anon[1]["value"],
        json!(" core-image-minimal:do_image_complete")
    );
    assert_eq!(recipe.var("OTASYNC_COMPATIBLE"), "otasync-qemux86-64");

    let build = work.join("build");
    std::fs::create_dir_all(build.join("release")).expect("release dir");
    let (fine, _, err) = run_shell_task(&recipe, recipe.function("do_release"), &build);
    assert!(fine, "do_release: {err}");
    let release = build.join("release");
    let manifest = release.join("manifest.json");
    assert!(manifest.is_file() && release.join("manifest.json.sig").is_file());
    assert!(release.join("rootfs.caibx").is_file());
    assert!(!files_below(&release.join("store")).is_empty());
    let parsed: Value =
        serde_json::from_slice(&std::fs::read(&manifest).expect("manifest")).expect("JSON");
    assert_eq!(parsed["product"], json!("otasync-qemux86-64"));
    assert_eq!(parsed["version"], json!(20261125120000u64));
    assert_eq!(
        parsed["slots"]["rootfs"]["index"]["path"],
        json!("rootfs.caibx")
    );
    // A device with the trust root accepts it; the release key never reaches the release.
    ok(otasync(&[
        "verify",
        &format!("--root={}", s(&k("root.json"))),
        "--compatible=otasync-qemux86-64",
        s(&manifest),
    ]));
    let secret = std::fs::read_to_string(k("release.sec")).expect("key");
    let key_line = secret.lines().nth(1).expect("key line");
    for file in files_below(&release) {
        let bytes = std::fs::read(release.join(&file)).expect("file");
        assert!(
            !String::from_utf8_lossy(&bytes).contains(key_line),
            "{file} holds the secret key"
        );
    }

    // do_deploy copies the directory as it is.
    let deploydir = tmp.path().join("deploydir");
    std::fs::create_dir_all(&deploydir).expect("deploydir");
    let recipe = release_recipe(&deploy, &work, &[("DEPLOYDIR", s(&deploydir))]);
    let (fine, _, err) = run_shell_task(&recipe, recipe.function("do_deploy"), &build);
    assert!(fine, "do_deploy: {err}");
    assert!(
        deploydir
            .join("otasync-release-qemux86-64/manifest.json.sig")
            .is_file()
    );

    // A trust root that does not hold the signing key stops the release.
    ok(otasync(&[
        "keygen",
        &format!("--secret-key={}", s(&k("other.sec"))),
        &format!("--public-key={}", s(&k("other.pub"))),
    ]));
    ok(otasync(&[
        "root",
        "create",
        s(&k("other-root.json")),
        &format!("--root-key={}", s(&k("root.pub"))),
        &format!("--release-key={}", s(&k("other.pub"))),
    ]));
    std::fs::remove_dir_all(&release).expect("clean");
    std::fs::create_dir_all(&release).expect("release dir");
    let recipe = release_recipe(
        &deploy,
        &work,
        &[
            ("OTASYNC_SIGNING_KEY", s(&k("release.sec"))),
            ("OTASYNC_TRUST_ROOT", s(&k("other-root.json"))),
        ],
    );
    let (fine, _, err) = run_shell_task(&recipe, recipe.function("do_release"), &build);
    assert!(
        !fine && err.contains("does not verify against OTASYNC_TRUST_ROOT"),
        "{err}"
    );
}

#[test]
fn release_without_a_key_fails_unless_unsigned_is_allowed() {
    if !have("python3", "python3") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let deploy = tmp.path().join("deploy");
    let work = tmp.path().join("work");
    let build = work.join("build");
    std::fs::create_dir_all(build.join("release")).expect("mkdir");
    std::fs::create_dir_all(&deploy).expect("mkdir");
    deploy_image(&deploy);

    let recipe = release_recipe(&deploy, &work, &[]);
    let (fine, _, err) = run_shell_task(&recipe, recipe.function("do_release"), &build);
    assert!(
        !fine && err.contains("OTASYNC_SIGNING_KEY is not set"),
        "{err}"
    );
    assert!(
        !build.join("release/manifest.json").exists(),
        "it worked before refusing"
    );

    let recipe = release_recipe(
        &deploy,
        &work,
        &[("OTASYNC_SIGNING_KEY", "/nonexistent/release.sec")],
    );
    let (fine, _, err) = run_shell_task(&recipe, recipe.function("do_release"), &build);
    assert!(
        !fine && err.contains("cannot read /nonexistent/release.sec"),
        "{err}"
    );

    let recipe = release_recipe(&deploy, &work, &[("OTASYNC_ALLOW_UNSIGNED", "1")]);
    let (fine, _, err) = run_shell_task(&recipe, recipe.function("do_release"), &build);
    assert!(fine, "{err}");
    assert!(err.contains("NOT signed"), "{err}");
    assert!(build.join("release/manifest.json").is_file());
    assert!(!build.join("release/manifest.json.sig").exists());

    // An image type missing from IMAGE_FSTYPES is named.
    let recipe = release_recipe(
        &deploy,
        &work,
        &[
            ("OTASYNC_ALLOW_UNSIGNED", "1"),
            (
                "OTASYNC_RELEASE_SLOTS",
                "rootfs=core-image-minimal.squashfs",
            ),
        ],
    );
    let (fine, _, err) = run_shell_task(&recipe, recipe.function("do_release"), &build);
    assert!(
        !fine && err.contains("add \"squashfs\" to the IMAGE_FSTYPES"),
        "{err}"
    );
}

#[test]
fn uboot_boot_script_is_filled_in_for_every_uboot_board() {
    if !have("python3", "python3") {
        return;
    }
    let recipe_path = layer().join("recipes-bsp/otasync-boot-script/otasync-boot-script.bb");
    let template = layer().join("recipes-bsp/otasync-boot-script/files/boot.cmd.in");
    let mut uboot_boards = 0;
    for (board, dir) in boards() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::copy(&template, tmp.path().join("boot.cmd.in")).expect("copy");
        let recipe = Recipe::load(
            &recipe_path,
            &dir,
            &[
                ("OTASYNC_BOARD", &board),
                ("UNPACKDIR", s(tmp.path())),
                ("B", s(tmp.path())),
            ],
        );
        let config = system_json(&dir);
        let backend = config["bootloader"]["backend"].as_str().expect("backend");
        let results = recipe.run(vec![
            json!({"python": recipe.anonymous[0]}),
            json!({"python": recipe.function("do_configure")}),
        ]);
        if backend != "uboot" {
            assert!(results[0]["skip"].is_string(), "{board}: {results:?}");
            continue;
        }
        uboot_boards += 1;
        assert_eq!(
            results,
            [json!({"ok": true}), json!({"ok": true})],
            "{board}"
        );
        let script = std::fs::read_to_string(tmp.path().join("boot.cmd")).expect("boot.cmd");
        assert!(!script.contains("@@"), "{board}: unfilled placeholder");
        let attempts = config["bootloader"]["boot_attempts"]
            .as_u64()
            .expect("boot_attempts");
        assert!(script.contains(&format!("setenv BOOT_A_LEFT {attempts}")));
        for slot in config["slots"].as_array().expect("slots") {
            let name = slot["bootname"].as_str().expect("bootname");
            assert!(
                script.contains(&format!("setenv otasync_slot {name}")),
                "{board}"
            );
        }
        assert!(
            script.contains("otasync.slot=${otasync_slot}")
                && script.contains("root=${otasync_root}")
        );
        // The counter is saved before anything is loaded.
        assert!(script.find("saveenv").expect("saveenv") < script.find("load ").expect("load"));
        // The board's slots: partition numbers and root= agree with the .wks layout.
        let layout = wks(&dir, &board);
        for slot in config["slots"].as_array().expect("slots") {
            let name = slot["bootname"].as_str().expect("bootname");
            let device = slot["device"].as_str().expect("device");
            let number = layout.partition_of(device);
            assert!(
                script.contains(&format!("setenv otasync_part {number}\n")),
                "{board}: slot {name} is partition {number} of the .wks"
            );
            let root = match device.strip_prefix("/dev/disk/by-partlabel/") {
                Some(label) => format!("PARTLABEL={label}"),
                None => device.to_owned(),
            };
            assert!(
                script.contains(&format!("setenv otasync_root {root}\n")),
                "{board}: {root}"
            );
        }
        if have("mkimage", "u-boot-tools") {
            let scr = tmp.path().join("boot.scr");
            ok(Command::new("mkimage")
                .args(["-A", "arm64", "-T", "script", "-C", "none", "-d"])
                .arg(tmp.path().join("boot.cmd"))
                .arg(&scr));
            assert!(std::fs::metadata(&scr).expect("boot.scr").len() > 64);
        }
    }
    assert_eq!(uboot_boards, 3);
}

#[test]
fn board_mount_units_verify() {
    if !have("python3", "python3") || !have("systemd-analyze", "systemd") {
        return;
    }
    let recipe_path = layer().join("recipes-core/otasync-conf/otasync-conf.bb");
    for (board, dir) in boards() {
        let recipe = Recipe::load(&recipe_path, &dir, &[("OTASYNC_BOARD", &board)]);
        let results = recipe.run(vec![
            json!({"python": recipe.anonymous[0]}),
            json!({"eval": "otasync_mount_units(d)"}),
            json!({"getvar": "SYSTEMD_SERVICE:${PN}"}),
            json!({"getvar": "SRC_URI"}),
        ]);
        assert_eq!(results[0], json!({"ok": true}), "{board}");
        let units = results[1]["value"]
            .as_array()
            .unwrap_or_else(|| panic!("{board}: {}", results[1]));
        assert_eq!(units.len(), mounts(&dir).len());
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut paths = Vec::new();
        for unit in units {
            let name = unit[0].as_str().expect("unit name");
            let path = tmp.path().join(name);
            std::fs::write(&path, unit[1].as_str().expect("unit text")).expect("unit");
            paths.push(path);
        }
        // Where= must match the unit's name, which systemd-analyze checks.
        let (clean, err) = systemd_verify(&paths);
        assert!(clean, "{board}: {err}");
        // fw_env.config is fetched exactly for U-Boot boards.
        let uboot = system_json(&dir)["bootloader"]["backend"] == "uboot";
        let src_uri = results[3]["value"].as_str().expect("SRC_URI");
        assert_eq!(
            src_uri.contains("file://fw_env.config"),
            uboot,
            "{board}: {src_uri}"
        );
    }
    // A board without a configuration is skipped with a message, not built half-way.
    let recipe = Recipe::load(
        &recipe_path,
        Path::new("/nonexistent"),
        &[("OTASYNC_BOARD_DIR", "/nonexistent")],
    );
    let result = &recipe.run(vec![json!({"python": recipe.anonymous[0]})])[0];
    assert!(
        result["skip"]
            .as_str()
            .is_some_and(|m| m.contains("OTASYNC_BOARD")),
        "{result}"
    );
}
