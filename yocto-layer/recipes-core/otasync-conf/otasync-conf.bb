SUMMARY = "otasync device configuration for this board"
DESCRIPTION = "The board's /etc/otasync/system.json (from board-configs/, picked by MACHINE or \
OTASYNC_BOARD), /etc/fw_env.config on U-Boot boards, the release trust root \
(/etc/otasync/root.json, from OTASYNC_TRUST_ROOT), the TLS CA (/etc/otasync/ca.pem, from \
OTASYNC_TLS_CA) and mount units for the partitions the agent \
needs (the data partition, and the boot or EFI partition holding the boot environment)."
SECTION = "admin"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

inherit otasync-board systemd

# The trust root devices verify releases against (`otasync root create`; public keys only).
# Without it the agent refuses every release, so the build warns.
OTASYNC_TRUST_ROOT ??= ""
# The CA certificate(s) the release server's and stores' TLS certificates chain to (PEM),
# installed as /etc/otasync/ca.pem: the agent trusts nothing else.
OTASYNC_TLS_CA ??= ""
# Set to "0" when the BSP's U-Boot recipe already ships /etc/fw_env.config (they must agree).
OTASYNC_INSTALL_FW_ENV ??= "1"

FILESEXTRAPATHS:prepend = "${OTASYNC_BOARD_DIR}:"
SRC_URI = "file://system.json"
SRC_URI:append = "${@' file://fw_env.config' if d.getVar('OTASYNC_BOOTLOADER') == 'uboot' else ''}"
S = "${OTASYNC_UNPACKDIR}"

RPROVIDES:${PN} += "virtual-otasync-conf"
PACKAGE_ARCH = "${MACHINE_ARCH}"

python __anonymous() {
    otasync_board_require(d)
}

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
	install -d -m 0755 ${D}${sysconfdir}/otasync
	install -m 0644 ${S}/system.json ${D}${sysconfdir}/otasync/system.json
	if [ "${OTASYNC_BOOTLOADER}" = "uboot" ] && [ "${OTASYNC_INSTALL_FW_ENV}" = "1" ]; then
		install -m 0644 ${S}/fw_env.config ${D}${sysconfdir}/fw_env.config
	fi
	if [ -n "${OTASYNC_TRUST_ROOT}" ]; then
		install -m 0644 ${OTASYNC_TRUST_ROOT} ${D}${sysconfdir}/otasync/root.json
	else
		bbwarn "OTASYNC_TRUST_ROOT is not set: the image has no /etc/otasync/root.json and otasync will refuse every release"
	fi
	if [ -n "${OTASYNC_TLS_CA}" ]; then
		install -m 0644 ${OTASYNC_TLS_CA} ${D}${sysconfdir}/otasync/ca.pem
	fi
}
do_install[file-checksums] += "${@'%s:True' % d.getVar('OTASYNC_TRUST_ROOT') if d.getVar('OTASYNC_TRUST_ROOT') else ''}"
do_install[file-checksums] += "${@'%s:True' % d.getVar('OTASYNC_TLS_CA') if d.getVar('OTASYNC_TLS_CA') else ''}"
do_install[postfuncs] += "otasync_install_mount_units"
do_install[vardeps] += "OTASYNC_MOUNTS"

python otasync_install_mount_units() {
    import os
    unitdir = d.expand('${D}${systemd_system_unitdir}')
    for name, text in otasync_mount_units(d):
        os.makedirs(unitdir, exist_ok=True)
        with open(os.path.join(unitdir, name), 'w') as f:
            f.write(text)
}

SYSTEMD_SERVICE:${PN} = "${@' '.join(name for name, _ in otasync_mount_units(d))}"
FILES:${PN} += "${systemd_system_unitdir}/*.mount"
CONFFILES:${PN} = "${sysconfdir}/otasync/system.json"
