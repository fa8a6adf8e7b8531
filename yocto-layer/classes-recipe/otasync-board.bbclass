# otasync-board: what the otasync recipes and image classes know about the board.
#
# The board is a directory of OTASYNC_BOARD_CONFIGS_DIR (layer.conf: the repository's
# board-configs/), chosen by OTASYNC_BOARD (default: MACHINE; raspberrypi4-64 maps to
# raspberrypi4). It holds:
#   system.json          the agent's configuration, installed as /etc/otasync/system.json
#   fw_env.config        U-Boot boards: where the environment lives (one line, or two: redundant)
#   <board>.wks.in       the A/B partition layout (OTASYNC_WKS_FILE)
#   otasync-board.conf   the build settings below, in bitbake syntax
#
# otasync-board.conf sets:
#   OTASYNC_MOUNTS       DEVICE,MOUNTPOINT,FSTYPE[,OPTIONS] entries: mount units shipped in the
#                        root file system (an update writes the ext4 image, which has none of the
#                        fstab lines wic adds to the first flash image)
#   OTASYNC_UBOOT_*      U-Boot boards: the values substituted into boot.cmd.in
#   OTASYNC_GRUB_*       GRUB boards: where the ESP files go
#   plus IMAGE_BOOT_FILES / IMAGE_EFI_BOOT_FILES appends for images inheriting otasync-image.
#
# The bootloader backend and the compatible string are read from system.json, so the build and
# the device can never disagree about them.

OTASYNC_BOOTLOADER ??= "${@otasync_board_json(d, 'bootloader', 'backend') or 'none'}"
OTASYNC_COMPATIBLE ??= "${@otasync_board_json(d, 'compatible') or ''}"

# UNPACKDIR arrived in styhead; on scarthgap (with meta-lts-mixins' Rust) sources unpack into
# WORKDIR. One spelling for both.
OTASYNC_UNPACKDIR = "${@d.getVar('UNPACKDIR') or d.getVar('WORKDIR')}"

OTASYNC_MOUNTS ??= ""

include ${OTASYNC_BOARD_DIR}/otasync-board.conf

def otasync_board_json(d, *keys):
    """A value of the board's system.json (None when the file or the key is missing)."""
    import json
    import os
    path = os.path.join(d.getVar('OTASYNC_BOARD_DIR') or '', 'system.json')
    if not os.path.isfile(path):
        return None
    bb.parse.mark_dependency(d, path)
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, ValueError) as e:
        bb.fatal("%s: %s" % (path, e))
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value

def otasync_board_require(d):
    """Skips the recipe when the board has no configuration."""
    import os
    path = os.path.join(d.getVar('OTASYNC_BOARD_DIR') or '', 'system.json')
    if not os.path.isfile(path):
        raise bb.parse.SkipRecipe("no otasync board configuration for MACHINE %s (%s is missing): "
                                  "set OTASYNC_BOARD, or OTASYNC_BOARD_CONFIGS_DIR for your own boards"
                                  % (d.getVar('MACHINE'), path))

def otasync_mount_units(d):
    """(unit name, unit text) for each OTASYNC_MOUNTS entry."""
    units = []
    for spec in (d.getVar('OTASYNC_MOUNTS') or '').split():
        fields = spec.split(',')
        if len(fields) < 3 or not all(fields[:3]):
            bb.fatal("OTASYNC_MOUNTS entry %r: expected DEVICE,MOUNTPOINT,FSTYPE[,OPTIONS]" % spec)
        what, where, fstype = fields[:3]
        options = ','.join(fields[3:]) or 'defaults'
        parts = where.strip('/').split('/')
        if not where.startswith('/') or not all(p and all(c.isalnum() or c == '_' for c in p) for p in parts):
            bb.fatal("OTASYNC_MOUNTS mount point %r: use plain absolute paths ([A-Za-z0-9_/])" % where)
        name = '-'.join(parts) + '.mount'
        text = ("[Unit]\n"
                "Description=otasync board mount: %s\n"
                "Before=local-fs.target\n"
                "\n"
                "[Mount]\n"
                "What=%s\n"
                "Where=%s\n"
                "Type=%s\n"
                "Options=%s\n"
                "\n"
                "[Install]\n"
                "WantedBy=local-fs.target\n") % (where, what, where, fstype, options)
        units.append((name, text))
    return units
