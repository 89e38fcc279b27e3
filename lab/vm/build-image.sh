#!/usr/bin/env bash
# Builds the lab VMs' Debian 12 image from Debian's packages, once, cached under .cache/lab/vm/:
#   root.raw        ext4 file system (sparse): mmdebstrap of bookworm + lab/vm/customize.sh
#   vmlinuz         the Debian cloud kernel (IPVS as modules), booted directly by qemu
#   initramfs.gz    busybox + the disk and NIC drivers; lays each VM's identity over the root (lab/vm/init)
#   STAMP           hash of every input; written last, so an interrupted build is never used
# Every lab:up boots each VM from a copy-on-write overlay of root.raw: the image itself never changes.
# Usage: lab/vm/build-image.sh [--force]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

FORCE=0; [[ "${1:-}" == "--force" ]] && FORCE=1
KVER=$(lab_kernel_version)
KROOT="$LAB_CACHE/kernel/root"
[[ -n "$KVER" && -f "$KROOT/boot/vmlinuz-$KVER" ]] || lab_die "the kernel is missing: run 'npm run lab:prereqs'"
OUT="$LAB_CACHE/vm"
stamp=$( (cat "$LAB_DIR/vm/build-image.sh" "$LAB_DIR/vm/customize.sh" "$LAB_DIR/vm/init"; echo "$KVER ${VM_PACKAGES[*]}") | sha256sum | cut -c1-16)
image_ok() { [[ "$(cat "$OUT/STAMP" 2>/dev/null)" == "$stamp" && -s "$OUT/root.raw" && -s "$OUT/initramfs.gz" && -s "$OUT/vmlinuz" ]]; }
[[ $FORCE -eq 0 ]] && image_ok && exit 0

mkdir -p "$LAB_CACHE"
# One build at a time; one that waited finds the image another just built.
exec 8>"$LAB_CACHE/.vm-build.lock"
flock -w 900 8 || lab_die "another image build holds $LAB_CACHE/.vm-build.lock"
[[ $FORCE -eq 0 ]] && image_ok && exit 0
need_mb=2500
have_mb=$(df --output=avail -BM "$LAB_CACHE" | tail -1 | tr -dc 0-9)
((have_mb >= need_mb)) || lab_die "building the VM image needs ${need_mb} MB free in $LAB_CACHE (have ${have_mb} MB): free some space, or set LAB_CACHE to a larger file system"
command -v mmdebstrap >/dev/null || lab_die "mmdebstrap is missing: run 'npm run lab:prereqs'"

# Leftovers of an interrupted build are removed, never used. --one-file-system: whatever a killed
# build left mounted in its tree is never followed.
rm -rf --one-file-system "$LAB_CACHE"/vm.build.* "$OUT.old"
B=$(mktemp -d "$LAB_CACHE/vm.build.XXXXXX")
trap 'rm -rf --one-file-system "$B"' EXIT
lab_log "building the VM image (Debian 12 with systemd; a few minutes the first time)"
t0=$SECONDS

mirror=${LAB_DEBIAN_MIRROR:-$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit} /^deb / && $3 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null)}
mirror=${mirror:-http://deb.debian.org/debian}
# Without a dpkg path-exclude for docs the image is 60 MB larger; nothing in the lab reads them.
# In a mount namespace of its own: the file systems mmdebstrap mounts in the tree for its hooks
# vanish with it, also when it is killed.
unshare --mount --propagation private mmdebstrap --variant=minbase --include="$(IFS=,; echo "${VM_PACKAGES[*]}")" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook="bash '$LAB_DIR/vm/customize.sh' \"\$1\" '$KROOT'" \
  bookworm "$B/rootfs" "$mirror" > "$B/mmdebstrap.log" 2>&1 \
  || { tail -20 "$B/mmdebstrap.log" >&2; lab_die "mmdebstrap failed (the lab needs Debian's package mirror: $mirror)"; }

# The file system image, made from the tree without mounting anything.
mke2fs -q -t ext4 -L lvslab-root -d "$B/rootfs" "$B/root.raw" 2G >/dev/null \
  || lab_die "mke2fs failed building $B/root.raw"
cp "$KROOT/boot/vmlinuz-$KVER" "$B/vmlinuz"

# The initramfs: busybox, the disk and NIC drivers' modules in load order, /init.
I="$B/initramfs"
mkdir -p "$I"/{bin,sbin,proc,sys,dev,newroot,modules}
cp /bin/busybox "$I/bin/busybox"
for a in sh mount umount mkdir cp cat sleep insmod switch_root; do ln -s busybox "$I/bin/$a"; done
ln -s ../bin/switch_root "$I/sbin/switch_root"
for m in virtio_pci virtio_blk virtio_net; do modprobe -d "$KROOT" -S "$KVER" --show-depends "$m"; done | awk '$1 == "insmod" && !seen[$2]++ {print $2}' \
  | while read -r ko; do cp "$ko" "$I/modules/"; basename "$ko"; done > "$I/modules.order"
install -m 0755 "$LAB_DIR/vm/init" "$I/init"
(cd "$I" && find . -print0 | cpio --null -o -H newc --quiet -R 0:0 | gzip -1) > "$B/initramfs.gz"

rm -rf "$B/rootfs" "$I"
echo "$stamp" > "$B/STAMP"
[[ -e "$OUT" ]] && mv "$OUT" "$OUT.old"
mv "$B" "$OUT"
trap - EXIT
rm -rf "$OUT.old"
lab_log "VM image ready in $((SECONDS - t0)) s: $OUT ($(du -sh --apparent-size "$OUT/root.raw" | cut -f1) sparse, $(du -sh "$OUT/root.raw" | cut -f1) used)"
