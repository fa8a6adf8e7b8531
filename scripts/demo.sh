#!/usr/bin/env bash
# A small embedded example: a 32 MiB ext4 root file system image is chunked into a casync store,
# then reassembled and checked, the way a build pipeline publishes and a device fetches it.
#   bash scripts/demo.sh            (builds otasync in release mode first)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p otasync
otasync=$PWD/target/release/otasync
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A root file system: some binaries and libraries, as a 32 MiB ext4 image (or random data
# with holes if mkfs.ext4 is not installed).
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc"
cp /bin/ls /bin/cat /bin/sh "$work/rootfs/bin/" 2>/dev/null || true
echo "otasync-demo 1.0" > "$work/rootfs/etc/os-release"
if command -v mkfs.ext4 >/dev/null; then
  truncate -s 32M "$work/rootfs.img"
  mkfs.ext4 -q -F -d "$work/rootfs" "$work/rootfs.img"
else
  head -c 8M /dev/urandom > "$work/rootfs.img"; truncate -s 32M "$work/rootfs.img"
fi

echo "== make: chunk the image into a store"
"$otasync" -v make --store="$work/store.castr" "$work/rootfs.caibx" "$work/rootfs.img"
"$otasync" info "$work/rootfs.caibx"
echo "== store: $(find "$work/store.castr" -type f | wc -l) chunk files, $(du -sh "$work/store.castr" | cut -f1)"
echo "== extract: reassemble it, every chunk verified"
"$otasync" -v extract --store="$work/store.castr" "$work/rootfs.caibx" "$work/copy.img"
cmp "$work/rootfs.img" "$work/copy.img" && echo "== the copy is identical to the image"
echo "== digest of the image and of the index's content:"
"$otasync" digest "$work/rootfs.img"
"$otasync" digest --store="$work/store.castr" "$work/rootfs.caibx"
