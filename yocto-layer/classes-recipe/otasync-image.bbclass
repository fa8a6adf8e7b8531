# otasync-image: chunk image files into a casync store at build time, and wire the board's A/B
# boot files into wic images.
#
# Use it from an image recipe (inherit otasync-image) or for every image (IMAGE_CLASSES +=
# "otasync-image"), then ask for the conversion in IMAGE_FSTYPES:
#
#   IMAGE_FSTYPES += "ext4 ext4.caibx wic"
#
# For each TYPE.caibx, otasync-native runs
#   otasync make --store=STORE IMAGE_NAME.TYPE.caibx IMAGE_NAME.TYPE
# in the image's deploy directory: IMAGE_NAME.TYPE.caibx is the casync index (byte-identical to
# what `casync make` writes) and STORE, ${OTASYNC_STORE_NAME} in DEPLOY_DIR_IMAGE, holds its
# chunks (zstd-compressed .cacnk files). Keep TYPE itself in IMAGE_FSTYPES when a release is made
# from the image (otasync-release.bbclass hashes the image file for the manifest).
#
# The store in the deploy directory holds this build's chunks; publishing copies them to the
# store devices fetch from (an HTTPS server or a CDN in front of a bucket). Chunk names are their
# hashes, so copying over an older store uploads only what is new.

inherit otasync-board

# The store directory, in IMGDEPLOYDIR (deployed to DEPLOY_DIR_IMAGE with the image).
OTASYNC_STORE_NAME ?= "${IMAGE_LINK_NAME}.castr"
# Chunk ids: sha512-256 (casync's default) or sha256.
OTASYNC_DIGEST ?= "sha512-256"
# MIN:AVG:MAX or AVG, in bytes; empty: casync's 16K:64K:256K. Changing it makes every chunk new.
OTASYNC_CHUNK_SIZE ?= ""
# zstd level of the chunks (1..22); empty: otasync's default, as casync's.
OTASYNC_COMPRESSION_LEVEL ?= ""
OTASYNC_MAKE_ARGS ?= "--digest=${OTASYNC_DIGEST} \
    ${@'--chunk-size=' + d.getVar('OTASYNC_CHUNK_SIZE') if d.getVar('OTASYNC_CHUNK_SIZE') else ''} \
    ${@'--compression-level=' + d.getVar('OTASYNC_COMPRESSION_LEVEL') if d.getVar('OTASYNC_COMPRESSION_LEVEL') else ''}"

CONVERSIONTYPES:append = " caibx"
CONVERSION_CMD:caibx = "otasync make --store=${IMGDEPLOYDIR}/${OTASYNC_STORE_NAME} ${OTASYNC_MAKE_ARGS} ${IMAGE_NAME}.${type}.caibx ${IMAGE_NAME}.${type}"
CONVERSION_DEPENDS_caibx = "otasync-native"

# wic images of an otasync board need its boot files in DEPLOY_DIR_IMAGE: boot.scr for U-Boot,
# the GRUB fragment and the initial grubenv for GRUB (the board's otasync-board.conf adds them to
# IMAGE_BOOT_FILES / IMAGE_EFI_BOOT_FILES). Set WKS_FILE = "${OTASYNC_WKS_FILE}" for the board's
# A/B layout.
OTASYNC_BOOT_FILES_TASK ??= "${@'otasync-boot-script:do_deploy' if d.getVar('OTASYNC_BOOTLOADER') == 'uboot' else ('otasync-grub-conf:do_deploy' if d.getVar('OTASYNC_BOOTLOADER') == 'grub' else '')}"
do_image_wic[depends] += "${OTASYNC_BOOT_FILES_TASK}"
