#!/usr/bin/env bash
# A small embedded example of the whole job: a build host publishes v1 and v2 of a 32 MiB ext4
# root file system into a casync store and signs a release manifest for v2; the device, which
# holds v1 in its active slot, checks the manifest and updates its inactive slot, fetching only
# the chunks v1 lacks.
#   bash scripts/demo.sh            (builds otasync in release mode first)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p otasync
otasync=$PWD/target/release/otasync
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Two versions of a root file system (an ext4 image each; random data if mkfs.ext4 is missing).
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/lib"
cp /bin/ls /bin/cat /bin/sh "$work/rootfs/bin/" 2>/dev/null || true
for i in $(seq 1 40); do head -c 100000 /dev/urandom > "$work/rootfs/lib/lib$i.so"; done
image() {  # $1 = version
  echo "otasync-demo $1" > "$work/rootfs/etc/os-release"
  if command -v mkfs.ext4 >/dev/null; then
    truncate -s 32M "$work/rootfs-$1.img"
    mkfs.ext4 -q -F -E root_owner=0:0 -U 5f0c7a0e-3b9e-4c3e-9d7a-c45a5ca5ca5c -d "$work/rootfs" "$work/rootfs-$1.img"
  else
    tar -cf "$work/rootfs-$1.img" -C "$work/rootfs" .
  fi
}
image 1.0
head -c 200000 /dev/urandom > "$work/rootfs/lib/libnew.so"   # the update adds a library
image 1.1

echo "== build host: chunk both versions into one store"
for v in 1.0 1.1; do
  "$otasync" make --store="$work/store.castr" "$work/rootfs-$v.caibx" "$work/rootfs-$v.img" >/dev/null
done
"$otasync" info "$work/rootfs-1.1.caibx"
echo "== store: $(find "$work/store.castr" -type f | wc -l) chunk files, $(du -sh "$work/store.castr" | cut -f1)"

echo "== build host: a trust root and a signed release manifest for 1.1"
"$otasync" keygen --secret-key="$work/release.sec" --public-key="$work/release.pub" >/dev/null
"$otasync" keygen --secret-key="$work/root.sec" --public-key="$work/root.pub" >/dev/null
"$otasync" root create "$work/root.json" --root-key="$work/root.pub" --release-key="$work/release.pub"
"$otasync" manifest create "$work/manifest.json" "rootfs=$work/rootfs-1.1.caibx:$work/rootfs-1.1.img" \
  --product=demo-board --release=1.1 --metadata-version=2
"$otasync" sign "$work/manifest.json" --key="$work/release.sec"

echo "== device: verify the manifest (compatible demo-board, last version 1)"
"$otasync" verify --root="$work/root.json" --compatible=demo-board --last-version=1 "$work/manifest.json"
echo "== device: what the update will download, given the active slot (1.0)"
"$otasync" info --store="$work/store.castr" --seed="$work/rootfs-1.0.img" "$work/rootfs-1.1.caibx" | tail -2
echo "== device: update the inactive slot from the active one and the store"
cp "$work/rootfs-1.0.img" "$work/inactive-slot.img"
"$otasync" extract --print-stats --store="$work/store.castr" --seed="$work/rootfs-1.0.img" \
  "$work/rootfs-1.1.caibx" "$work/inactive-slot.img"
cmp "$work/rootfs-1.1.img" "$work/inactive-slot.img" && echo "== the slot now holds 1.1, byte for byte"
