SUMMARY = "GRUB A/B slot selection for otasync"
DESCRIPTION = "otasync-ab.cfg, the GRUB script fragment implementing RAUC's ORDER / x_OK / x_TRY \
convention (the board's grub.cfg sets the slot partitions and sources it), and the initial \
1024-byte grubenv. Both are deployed for the EFI system partition (IMAGE_EFI_BOOT_FILES in the \
board's otasync-board.conf)."
SECTION = "bootloaders"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

inherit otasync-board deploy nopackages

SRC_URI = "file://otasync-ab.cfg file://grubenv"
S = "${OTASYNC_UNPACKDIR}"
PACKAGE_ARCH = "${MACHINE_ARCH}"

python __anonymous() {
    otasync_board_require(d)
    if d.getVar('OTASYNC_BOOTLOADER') != 'grub':
        raise bb.parse.SkipRecipe("the board %s boots with %s, not GRUB"
                                  % (d.getVar('OTASYNC_BOARD'), d.getVar('OTASYNC_BOOTLOADER')))
}

do_configure[noexec] = "1"

do_compile() {
	# GRUB's save_env rewrites the file's blocks in place: it must stay exactly 1024 bytes.
	size=$(wc -c < ${S}/grubenv)
	if [ "$size" -ne 1024 ]; then
		bbfatal "grubenv is $size bytes, GRUB needs exactly 1024"
	fi
}

do_deploy() {
	install -m 0644 ${S}/otasync-ab.cfg ${DEPLOYDIR}/otasync-ab.cfg
	install -m 0644 ${S}/grubenv ${DEPLOYDIR}/grubenv
}
addtask do_deploy after do_compile before do_build
