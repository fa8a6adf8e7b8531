SUMMARY = "Signed otasync release (manifest, indexes, chunk store) of an image for this machine"
DESCRIPTION = "Writes manifest.json for the slots in OTASYNC_RELEASE_SLOTS, signs it with the \
key(s) in OTASYNC_SIGNING_KEY and deploys the release directory. Build it explicitly: \
bitbake otasync-release. See classes-recipe/otasync-release.bbclass."
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

inherit otasync-release

# One root file system slot, from core-image-minimal's ext4 image. Override in local.conf or a
# bbappend (e.g. "rootfs=my-image.ext4 appfs=my-apps.squashfs").
OTASYNC_RELEASE_SLOTS ?= "rootfs=core-image-minimal.ext4"
