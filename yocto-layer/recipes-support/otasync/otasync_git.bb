SUMMARY = "casync-compatible image sync and signed A/B OTA update agent"
DESCRIPTION = "otasync chunks images into casync stores on the build host and, on the device, \
updates the inactive A/B slot from a signed release manifest, fetching only the chunks the \
device lacks, then makes the new slot first in one atomic boot-environment commit. The U-Boot \
and GRUB environments are read and written natively: no fw_setenv or grub-editenv is needed."
SECTION = "admin"
LICENSE = "MIT | Apache-2.0"
# The workspace Cargo.toml's `license = "MIT OR Apache-2.0"` line (line 10).
LIC_FILES_CHKSUM = "file://Cargo.toml;beginline=10;endline=10;md5=86b31c7756a1a7962f28b62856ed4f05"

# Where the otasync repository is published (this layer lives in it, as yocto-layer/). Point it
# at your mirror, or build the checkout the layer sits in with externalsrc (README.md).
OTASYNC_GIT_URI ??= "git://github.com/otasync/otasync.git;protocol=https;branch=main"
SRC_URI = "${OTASYNC_GIT_URI};destsuffix=${BP}"
# SRCREV and otasync-crates.inc move together: the .inc must match this commit's Cargo.lock.
SRCREV = "583af05f2d9d5aa4e2642265c7692ca49ca56f3c"
PV = "0.1.0+git"

# UNPACKDIR arrived in styhead; scarthgap (with meta-lts-mixins' Rust) unpacks into WORKDIR.
OTASYNC_UNPACKDIR = "${@d.getVar('UNPACKDIR') or d.getVar('WORKDIR')}"
S = "${OTASYNC_UNPACKDIR}/${BP}"

inherit cargo cargo-update-recipe-crates systemd

require ${BPN}-crates.inc

# The binary is the `agent` member of the workspace; Cargo.lock is at the workspace root.
CARGO_SRC_DIR = "agent"
CARGO_LOCK_PATH = "${S}/Cargo.lock"

# do_update_crates reads every Cargo.lock under CARGO_LOCK_SRC_DIR, and fuzz/ and ci/nostd-probe/
# carry their own (never built here): hand it the workspace's lock alone. The result is the file
# scripts/update-crates-inc.sh writes, which is what the repository's tests check.
CARGO_LOCK_SRC_DIR = "${WORKDIR}/otasync-lock"
do_update_crates[prefuncs] += "otasync_stage_lock"
otasync_stage_lock() {
	rm -rf ${CARGO_LOCK_SRC_DIR}
	mkdir -p ${CARGO_LOCK_SRC_DIR}
	cp ${S}/Cargo.lock ${CARGO_LOCK_SRC_DIR}/Cargo.lock
}

python __anonymous() {
    # Edition 2024, rust-version 1.88 and a version 4 Cargo.lock: an older cargo cannot even read
    # the manifest. RUSTVERSION is set where several Rust versions can be chosen (scarthgap,
    # meta-lts-mixins); releases without it ship one Rust, and whinlatter's 1.90 is enough.
    version = (d.getVar('RUSTVERSION') or '').rstrip('%')
    fields = version.split('.')
    try:
        major, minor = int(fields[0]), int(fields[1])
    except (ValueError, IndexError):
        return
    if (major, minor) < (1, 88):
        raise bb.parse.SkipRecipe("otasync needs Rust 1.88 or newer, this build has %s: "
                                  "on scarthgap add meta-lts-mixins (branch scarthgap/rust)" % version)
}

do_install:append:class-target() {
	install -d ${D}${systemd_system_unitdir}
	install -m 0644 ${S}/agent/systemd/otasync.service ${D}${systemd_system_unitdir}/
	install -m 0644 ${S}/agent/systemd/otasync-mark-good.service ${D}${systemd_system_unitdir}/
}

# ${PN}: the binary and the polling daemon; ${PN}-mark-good: commits the booted slot once
# boot-complete.target is reached (a separate package, as meta-rauc does, so images that decide
# health in their own way can leave it out).
PACKAGES =+ "${PN}-mark-good"
SYSTEMD_PACKAGES = "${PN} ${PN}-mark-good"
SYSTEMD_SERVICE:${PN} = "otasync.service"
SYSTEMD_SERVICE:${PN}-mark-good = "otasync-mark-good.service"
FILES:${PN}-mark-good = "${systemd_system_unitdir}/otasync-mark-good.service"
RDEPENDS:${PN}-mark-good = "${PN}"
# /etc/otasync/system.json, the trust root and fw_env.config come from otasync-conf (the board's).
RDEPENDS:${PN}:append:class-target = " virtual-otasync-conf"
RRECOMMENDS:${PN}:append:class-target = " ${PN}-mark-good"

# otasync-native chunks images and signs manifests at build time (otasync-image.bbclass,
# otasync-release.bbclass); nativesdk-otasync puts the same tool into SDKs.
BBCLASSEXTEND = "native nativesdk"
