# otasync-release: write and sign the release manifest of one or more images.
#
# A recipe inheriting this class (recipes-core/otasync-release/otasync-release.bb is one) names
# its slots as CLASS=IMAGE.TYPE:
#
#   OTASYNC_RELEASE_SLOTS = "rootfs=core-image-minimal.ext4"
#
# CLASS is the slot class of the devices' system.json, IMAGE the image recipe and TYPE the image
# type it chunked (IMAGE_FSTYPES += "ext4 ext4.caibx", see otasync-image.bbclass). do_release
# copies each index as CLASS.caibx, merges the images' stores into store/, writes manifest.json
# with `otasync manifest create` (each slot pinned by the SHA-256 and length of its index and of
# its image) and signs it with `otasync sign`. do_deploy puts the directory into
# DEPLOY_DIR_IMAGE/${OTASYNC_RELEASE_DIR}/:
#
#   manifest.json  manifest.json.sig  CLASS.caibx ...  store/
#
# Publish it as it is: release_url in the devices' system.json names manifest.json, the .sig and
# the indexes are fetched from beside it, and the chunks from OTASYNC_CHUNK_STORES (the manifest)
# or the device's own "stores".
#
# Signing. OTASYNC_SIGNING_KEY lists the release key(s) (`otasync keygen` .sec files; several
# for a threshold). The key is read where it lies by otasync-native: it is never copied into the
# work directory, sstate or the deploy directory, and its content is tracked through
# [file-checksums] so a new key re-signs. Without a key the build stops, unless
# OTASYNC_ALLOW_UNSIGNED = "1": then manifest.json is deployed unsigned, for `otasync sign` on an
# offline machine or an HSM-backed signer. With OTASYNC_TRUST_ROOT set (the root.json devices
# ship), the signed manifest is verified against it before anything is deployed.

inherit otasync-board image-artifact-names deploy nopackages

OTASYNC_RELEASE_SLOTS ??= ""
OTASYNC_RELEASE_DIR ??= "${PN}-${MACHINE}"
# Human-readable release name (never compared by devices).
OTASYNC_RELEASE_NAME ??= "${DISTRO_VERSION}"
# The manifest's metadata version: devices accept only versions above the last one they took.
# The build time (YYYYMMDDhhmmss) grows; set it from CI (a build number) for your own scheme.
OTASYNC_METADATA_VERSION ??= "${DATETIME}"
OTASYNC_METADATA_VERSION[vardepsexclude] = "DATETIME"
# Anti-rollback floor: raise it when a release fixes a vulnerability older ones must not return.
OTASYNC_SECURITY_VERSION ??= "0"
# UTC expiry (YYYY-MM-DDTHH:MM:SSZ); empty: 30 days after signing.
OTASYNC_MANIFEST_EXPIRES ??= ""
# Hardware ids and device ids or groups the release is for; empty: all.
OTASYNC_HARDWARE ??= ""
OTASYNC_DEVICES ??= ""
# Chunk store URLs written into the manifest (a device's "stores" override them).
OTASYNC_CHUNK_STORES ??= ""
OTASYNC_SIGNING_KEY ??= ""
OTASYNC_ALLOW_UNSIGNED ??= "0"
OTASYNC_TRUST_ROOT ??= ""

EXCLUDE_FROM_WORLD = "1"
INHIBIT_DEFAULT_DEPS = "1"
DEPENDS = "otasync-native"
PACKAGE_ARCH = "${MACHINE_ARCH}"
S = "${OTASYNC_UNPACKDIR}"
B = "${WORKDIR}/build"

do_patch[noexec] = "1"
do_configure[noexec] = "1"
do_compile[noexec] = "1"
do_install[noexec] = "1"
deltask do_populate_sysroot

python __anonymous() {
    slots = (d.getVar('OTASYNC_RELEASE_SLOTS') or '').split()
    if not slots:
        raise bb.parse.SkipRecipe("OTASYNC_RELEASE_SLOTS is empty")
    for spec in slots:
        cls, _, target = spec.partition('=')
        image, _, fstype = target.partition('.')
        if not cls or not image or not fstype:
            bb.fatal("OTASYNC_RELEASE_SLOTS entry %r: expected CLASS=IMAGE.TYPE" % spec)
        d.appendVarFlag('do_release', 'depends', ' %s:do_image_complete' % image)
}

do_release() {
	# Refuse before any work when the release could not be signed.
	keys=""
	for key in ${OTASYNC_SIGNING_KEY}; do
		[ -r "$key" ] || bbfatal "OTASYNC_SIGNING_KEY: cannot read $key"
		keys="$keys --key=$key"
	done
	if [ -z "$keys" ] && [ "${OTASYNC_ALLOW_UNSIGNED}" != "1" ]; then
		bbfatal "OTASYNC_SIGNING_KEY is not set: give the release key(s), or set OTASYNC_ALLOW_UNSIGNED = \"1\" to deploy an unsigned manifest for offline signing"
	fi
	[ -n "${OTASYNC_COMPATIBLE}" ] || bbfatal "no compatible string: the board's system.json has none"

	out=${B}/release
	mkdir -p $out/store
	slots=""
	for spec in ${OTASYNC_RELEASE_SLOTS}; do
		class=${spec%%=*}
		target=${spec#*=}
		image=${target%%.*}
		type=${target#*.}
		base=${DEPLOY_DIR_IMAGE}/$image${IMAGE_MACHINE_SUFFIX}${IMAGE_NAME_SUFFIX}
		[ -f $base.$type ] || bbfatal "$base.$type is missing: add \"$type\" to the IMAGE_FSTYPES of $image"
		[ -f $base.$type.caibx ] || bbfatal "$base.$type.caibx is missing: add \"$type.caibx\" to the IMAGE_FSTYPES of $image and inherit otasync-image"
		[ -d $base.castr ] || bbfatal "$base.castr (the chunk store of $image) is missing"
		cp $base.$type.caibx $out/$class.caibx
		cp -R $base.castr/. $out/store/
		slots="$slots $class=$out/$class.caibx:$base.$type"
	done

	otasync manifest create $out/manifest.json $slots \
		--product="${OTASYNC_COMPATIBLE}" \
		--release="${OTASYNC_RELEASE_NAME}" \
		--metadata-version=${OTASYNC_METADATA_VERSION} \
		--security-version=${OTASYNC_SECURITY_VERSION} \
		${@'--expires=' + d.getVar('OTASYNC_MANIFEST_EXPIRES') if d.getVar('OTASYNC_MANIFEST_EXPIRES') else ''} \
		${@' '.join('--hardware=' + h for h in (d.getVar('OTASYNC_HARDWARE') or '').split())} \
		${@' '.join('--device=' + i for i in (d.getVar('OTASYNC_DEVICES') or '').split())} \
		${@' '.join('--chunk-store=' + u for u in (d.getVar('OTASYNC_CHUNK_STORES') or '').split())}

	if [ -z "$keys" ]; then
		bbwarn "OTASYNC_ALLOW_UNSIGNED: $out/manifest.json is NOT signed; devices refuse it until it is (otasync sign manifest.json --key=RELEASE.sec)"
		return 0
	fi
	otasync sign $out/manifest.json $keys

	if [ -n "${OTASYNC_TRUST_ROOT}" ]; then
		check="--root=${OTASYNC_TRUST_ROOT} --compatible=${OTASYNC_COMPATIBLE}"
		set -- ${OTASYNC_HARDWARE}
		[ $# -eq 0 ] || check="$check --hardware-id=$1"
		set -- ${OTASYNC_DEVICES}
		[ $# -eq 0 ] || check="$check --group=$1"
		otasync verify $check $out/manifest.json || bbfatal "the signed manifest does not verify against OTASYNC_TRUST_ROOT (${OTASYNC_TRUST_ROOT})"
	fi
}
do_release[cleandirs] = "${B}/release"
do_release[dirs] = "${B}"
do_release[file-checksums] += "${@' '.join('%s:False' % k for k in (d.getVar('OTASYNC_SIGNING_KEY') or '').split())}"
do_release[file-checksums] += "${@'%s:False' % d.getVar('OTASYNC_TRUST_ROOT') if d.getVar('OTASYNC_TRUST_ROOT') else ''}"
addtask do_release after do_configure before do_deploy

do_deploy() {
	install -d ${DEPLOYDIR}/${OTASYNC_RELEASE_DIR}
	cp -R ${B}/release/. ${DEPLOYDIR}/${OTASYNC_RELEASE_DIR}/
}
addtask do_deploy after do_release before do_build
# A release is re-signed rather than restored from a shared cache.
SSTATE_SKIP_CREATION:task-deploy = "1"
