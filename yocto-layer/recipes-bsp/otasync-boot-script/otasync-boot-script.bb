SUMMARY = "U-Boot boot script choosing the A/B root slot for otasync"
DESCRIPTION = "boot.scr implementing RAUC's BOOT_ORDER / BOOT_x_LEFT convention: it picks the \
first slot with attempts left, decrements and saves its counter, then boots the kernel from that \
slot with root= and otasync.slot= on the command line. Deployed for the boot partition; the \
board values come from board-configs/<board>/otasync-board.conf."
SECTION = "bootloaders"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

inherit otasync-board kernel-arch deploy nopackages

SRC_URI = "file://boot.cmd.in"
S = "${OTASYNC_UNPACKDIR}"
DEPENDS = "u-boot-tools-native"
PACKAGE_ARCH = "${MACHINE_ARCH}"

# meta-raspberrypi's SD card image deploys whatever provides u-boot-default-script:
# PREFERRED_PROVIDER_u-boot-default-script = "otasync-boot-script".
PROVIDES += "u-boot-default-script"

# Board values (board-configs/<board>/otasync-board.conf).
OTASYNC_UBOOT_DEVTYPE ??= "mmc"
OTASYNC_UBOOT_DEVNUM ??= "0"
OTASYNC_UBOOT_PART_A ??= "2"
OTASYNC_UBOOT_PART_B ??= "3"
OTASYNC_UBOOT_ROOT_A ??= "PARTLABEL=rootfs_a"
OTASYNC_UBOOT_ROOT_B ??= "PARTLABEL=rootfs_b"
OTASYNC_UBOOT_KERNEL ??= "/boot/Image"
OTASYNC_UBOOT_BOOTCMD ??= "booti"
OTASYNC_UBOOT_LOAD_FDT ??= ""
OTASYNC_UBOOT_FDT_ADDR ??= "${fdtcontroladdr}"
OTASYNC_UBOOT_BOOTARGS ??= "console=${console}"
# Environment files to create for the boot partition, zero-filled (an invalid CRC: U-Boot starts
# from its default environment and its first saveenv writes a valid copy). For environments in
# FAT files, where the agent must find every copy it alternates between.
OTASYNC_UBOOT_ENV_FILES ??= ""
OTASYNC_UBOOT_ENV_SIZE ??= "0x4000"

python __anonymous() {
    otasync_board_require(d)
    if d.getVar('OTASYNC_BOOTLOADER') != 'uboot':
        raise bb.parse.SkipRecipe("the board %s boots with %s, not U-Boot"
                                  % (d.getVar('OTASYNC_BOARD'), d.getVar('OTASYNC_BOOTLOADER')))
}

python do_configure() {
    import os
    attempts = otasync_board_json(d, 'bootloader', 'boot_attempts') or 3
    if not isinstance(attempts, int) or not 1 <= attempts <= 9:
        # `itest` reads the counter as hex and setexpr writes hex: one digit keeps both readings
        # equal, and 9 attempts are plenty.
        bb.fatal("bootloader.boot_attempts must be 1..9, got %r" % attempts)
    values = {
        'BOOT_ATTEMPTS': str(attempts),
        'DEVTYPE': d.getVar('OTASYNC_UBOOT_DEVTYPE'),
        'DEVNUM': d.getVar('OTASYNC_UBOOT_DEVNUM'),
        'PART_A': d.getVar('OTASYNC_UBOOT_PART_A'),
        'PART_B': d.getVar('OTASYNC_UBOOT_PART_B'),
        'ROOT_A': d.getVar('OTASYNC_UBOOT_ROOT_A'),
        'ROOT_B': d.getVar('OTASYNC_UBOOT_ROOT_B'),
        'KERNEL': d.getVar('OTASYNC_UBOOT_KERNEL'),
        'BOOTCMD': d.getVar('OTASYNC_UBOOT_BOOTCMD'),
        'LOAD_FDT': d.getVar('OTASYNC_UBOOT_LOAD_FDT'),
        'FDT_ADDR': d.getVar('OTASYNC_UBOOT_FDT_ADDR'),
        'BOOTARGS': d.getVar('OTASYNC_UBOOT_BOOTARGS'),
    }
    with open(os.path.join(d.getVar('S'), 'boot.cmd.in')) as f:
        text = f.read()
    for key, value in values.items():
        text = text.replace('@@%s@@' % key, value or '')
    if '@@' in text:
        bb.fatal("boot.cmd.in has a placeholder this recipe does not fill")
    with open(os.path.join(d.getVar('B'), 'boot.cmd'), 'w') as f:
        f.write(text)
}
do_configure[vardeps] += "OTASYNC_UBOOT_DEVTYPE OTASYNC_UBOOT_DEVNUM OTASYNC_UBOOT_PART_A \
    OTASYNC_UBOOT_PART_B OTASYNC_UBOOT_ROOT_A OTASYNC_UBOOT_ROOT_B OTASYNC_UBOOT_KERNEL \
    OTASYNC_UBOOT_BOOTCMD OTASYNC_UBOOT_LOAD_FDT OTASYNC_UBOOT_FDT_ADDR OTASYNC_UBOOT_BOOTARGS"
do_configure[file-checksums] += "${OTASYNC_BOARD_DIR}/system.json:True"

do_compile() {
	mkimage -A ${UBOOT_ARCH} -T script -C none -n "otasync A/B boot script" -d ${B}/boot.cmd ${B}/boot.scr
	for name in ${OTASYNC_UBOOT_ENV_FILES}; do
		dd if=/dev/zero of=${B}/$name bs=$(printf %d ${OTASYNC_UBOOT_ENV_SIZE}) count=1
	done
}

do_deploy() {
	install -m 0644 ${B}/boot.cmd ${DEPLOYDIR}/otasync-boot.cmd
	install -m 0644 ${B}/boot.scr ${DEPLOYDIR}/boot.scr
	for name in ${OTASYNC_UBOOT_ENV_FILES}; do
		install -m 0644 ${B}/$name ${DEPLOYDIR}/$name
	done
}
addtask do_deploy after do_compile before do_build
