#!/usr/bin/env bash
# A small embedded example of the whole job: a build host publishes 1.0 and 1.1 of a 32 MiB ext4
# root file system (chunks into a casync store, indexes, a signed release manifest); a release
# server serves them on 127.0.0.1; the device agent, running 1.0 from slot A, verifies the
# manifest, writes slot B from slot A and the missing chunks, re-hashes it, switches the GRUB
# environment, and after the "reboot" commits the release.
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

echo "== build host: publish 1.0, then 1.1 (chunks into one store, indexes, signed manifest)"
"$otasync" keygen --secret-key="$work/release.sec" --public-key="$work/release.pub" >/dev/null
"$otasync" keygen --secret-key="$work/root.sec" --public-key="$work/root.pub" >/dev/null
"$otasync" root create "$work/root.json" --root-key="$work/root.pub" --release-key="$work/release.pub"
mkdir -p "$work/www"
for v in 1.0 1.1; do
  "$otasync" publish --key="$work/release.sec" --store="$work/www/store" \
    --manifest-out="$work/www/manifest.json" --product=demo-board --release="$v" \
    --metadata-version="${v/./}" "rootfs=$work/rootfs-$v.img"
done
echo "== store: $(find "$work/www/store" -type f | wc -l) chunk files, $(du -sh "$work/www/store" | cut -f1)"

echo "== release server: otasync serve on 127.0.0.1"
"$otasync" serve --store="$work/www" > "$work/serve.out" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do grep -q ' at ' "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/.* at \(.*\)\/$/\1/p' "$work/serve.out")

echo "== device: slot A holds 1.0 and is running, slot B holds older data; GRUB env boots A"
cp "$work/rootfs-1.0.img" "$work/slot-a.img"
head -c 40M /dev/zero > "$work/slot-b.img"
echo "console=ttyS0 root=PARTLABEL=rootfs_a otasync.slot=A ro" > "$work/cmdline"
echo boot-1 > "$work/boot_id"
# A 1024-byte grubenv, as grub-editenv writes it: the variables, then '#' up to the size.
body=$'# GRUB Environment Block\nORDER=A B\nA_OK=1\nA_TRY=0\nB_OK=1\nB_TRY=0\n'
{ printf '%s' "$body"; head -c $((1024 - ${#body})) /dev/zero | tr '\0' '#'; } > "$work/grubenv"
cat > "$work/system.json" <<JSON
{
  "compatible": "demo-board",
  "slots": [
    {"class": "rootfs", "bootname": "A", "device": "$work/slot-a.img"},
    {"class": "rootfs", "bootname": "B", "device": "$work/slot-b.img"}
  ],
  "booted": {"cmdline": "$work/cmdline", "boot_id": "$work/boot_id"},
  "bootloader": {"backend": "grub", "grubenv": "$work/grubenv"},
  "release_url": "$base/manifest.json",
  "stores": ["$base/store"],
  "trust_root": "$work/root.json",
  "state_dir": "$work/state"
}
JSON
"$otasync" check-config --on-device "$work/system.json"
echo "== device: what 1.1 costs to download, given the running slot (1.0)"
"$otasync" info --store="$work/www/store" --seed="$work/slot-a.img" "$work/www/rootfs-1.1.caibx" | tail -2
echo "== device: otasync update (verify, fetch, write slot B, re-hash, switch the bootloader)"
"$otasync" update --config="$work/system.json"
cmp -n "$(stat -c %s "$work/rootfs-1.1.img")" "$work/rootfs-1.1.img" "$work/slot-b.img" \
  && echo "== slot B now holds 1.1, byte for byte"
grep -a '^ORDER\|^B_' "$work/grubenv"
echo "== device reboots into B; after the health checks, mark-good commits the release"
echo "console=ttyS0 root=PARTLABEL=rootfs_b otasync.slot=B ro" > "$work/cmdline"
echo boot-2 > "$work/boot_id"
"$otasync" mark-good --config="$work/system.json"
"$otasync" status --config="$work/system.json"
