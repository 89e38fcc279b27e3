#!/usr/bin/env bash
# Installs and builds everything the lab needs, idempotently, cached under .cache/lab/:
#   - Debian packages (apt-get update only when something is missing)
#   - the Debian cloud kernel (has IPVS) extracted from its .deb, with modules.dep
#   - the director's initramfs: busybox-static + IPVS modules + real ipvsadm, iproute2 ip, sshd, kmod, flock
# Usage: lab/prereqs.sh [--force]   (--force rebuilds the initramfs)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FORCE=0; [[ "${1:-}" == "--force" ]] && FORCE=1

LAB_CMD=lab:prereqs lab_require_root
lab_require_tun
mkdir -p "$LAB_CACHE"

# ---- Debian packages ---------------------------------------------------------------------------
missing=()
for p in "${LAB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  lab_log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # openssh-server must not start a system sshd on the machine: deny service starts while
  # installing (the standard policy-rc.d hook), unless the machine already has such a policy.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# lvs-dr lab: no service starts during package install\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq || lab_die "apt-get update failed (the lab needs Debian's package mirrors)"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || lab_die "apt-get install ${missing[*]} failed"
fi
lab_require_qemu
# The package's init script must not start a system sshd for us; we only use the binary.

# ---- kernel with IPVS ----------------------------------------------------------------------------
KDIR="$LAB_CACHE/kernel"
if [[ ! -s "$KDIR/VERSION" || ! -f "$KDIR/root/boot/vmlinuz-$(cat "$KDIR/VERSION")" ]]; then
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  if [[ -z "$pkg" ]]; then
    apt-get update -qq || true
    pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  fi
  [[ -n "$pkg" ]] || lab_die "cannot find the Debian cloud kernel package (apt-cache depends linux-image-cloud-amd64)"
  version="${pkg#linux-image-}"
  lab_log "downloading kernel $pkg"
  rm -rf "$KDIR"; mkdir -p "$KDIR"
  (cd "$KDIR" && apt-get download "$pkg" >/dev/null 2>&1) || lab_die "apt-get download $pkg failed"
  dpkg -x "$KDIR"/"$pkg"_*.deb "$KDIR/root"
  depmod -b "$KDIR/root" "$version"
  rm -f "$KDIR"/*.deb
  echo "$version" > "$KDIR/VERSION"
  FORCE=1
fi
KVER=$(cat "$KDIR/VERSION")

# ---- director initramfs --------------------------------------------------------------------------
INITRD="$LAB_CACHE/director-initramfs.cpio.gz"
STAMP_INPUTS="$(cat "$LAB_DIR/prereqs.sh" "$LAB_DIR/director/init" | sha256sum | cut -c1-16)-$KVER"
if [[ $FORCE -eq 0 && -s "$INITRD" && "$(cat "$INITRD.stamp" 2>/dev/null)" == "$STAMP_INPUTS" ]]; then
  exit 0
fi
lab_log "building the director initramfs"
R="$LAB_CACHE/initramfs-root"
rm -rf "$R"; mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,usr/lib/openssh,etc/ssh,root,proc,sys,dev,run,tmp,var/lib,var/log,lib64,lib/x86_64-linux-gnu}
ln -s /run "$R/var/run"
# busybox provides the small tools; real binaries below replace some of its applets.
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do
  [[ "$a" == busybox ]] && continue
  ln -sf /bin/busybox "$R/bin/$a"
done

copy_bin() { # copy a binary and every library ldd names, keeping paths
  local src=$1 dst=${2:-$1} lib
  mkdir -p "$R$(dirname "$dst")"
  rm -f "$R$dst"; cp -L "$src" "$R$dst"
  for lib in $(ldd "$src" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
    [[ -e "$R$lib" ]] && continue
    mkdir -p "$R$(dirname "$lib")"; cp -L "$lib" "$R$lib"
  done
}
copy_bin /bin/bash /bin/bash
copy_bin /usr/bin/ip /bin/ip                 # iproute2, with -j (JSON)
copy_bin /usr/bin/ip /sbin/ip
copy_bin /usr/sbin/ipvsadm /sbin/ipvsadm
cp /usr/sbin/ipvsadm-save "$R/sbin/ipvsadm-save"; cp /usr/sbin/ipvsadm-restore "$R/sbin/ipvsadm-restore"
copy_bin /usr/sbin/sshd /usr/sbin/sshd
copy_bin /usr/lib/openssh/sftp-server /usr/lib/openssh/sftp-server
copy_bin /usr/bin/kmod /bin/kmod
for t in modprobe insmod rmmod lsmod depmod modinfo; do ln -sf /bin/kmod "$R/sbin/$t"; rm -f "$R/bin/$t"; done
copy_bin /usr/bin/flock /bin/flock
copy_bin /usr/sbin/arping /usr/sbin/arping; rm -f "$R/bin/arping"   # iputils arping, not busybox's
copy_bin /usr/sbin/sysctl /sbin/sysctl; rm -f "$R/bin/sysctl"
for t in sbin/ip sbin/ipvsadm sbin/ipvsadm-save sbin/ipvsadm-restore sbin/sysctl sbin/modprobe bin/flock; do
  ln -sf "/$t" "$R/usr/$t"
done
ln -sf /bin/bash "$R/usr/bin/bash"
# Debian's busybox-static runs its own applets first inside busybox sh (so `ip` would be busybox's
# ip, without -j): make /bin/sh bash, so every command name resolves through PATH to the real binary.
ln -sf bash "$R/bin/sh"
ln -sf /bin/sh "$R/usr/bin/sh"

# modules: NIC + every IPVS scheduler and their dependencies
MODS="virtio_pci virtio_net ip_vs ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_lblc ip_vs_lblcr ip_vs_dh ip_vs_sh ip_vs_sed ip_vs_nq ip_vs_fo ip_vs_ovf ip_vs_mh nf_conntrack dummy"
KR="$KDIR/root/lib/modules/$KVER"
for m in $MODS; do
  modprobe -d "$KDIR/root" -S "$KVER" --show-depends "$m" | awk '$1=="insmod"{print $2}'
done | sort -u | while read -r ko; do
  rel="${ko#"$KR"/}"
  mkdir -p "$R/lib/modules/$KVER/$(dirname "$rel")"
  cp "$ko" "$R/lib/modules/$KVER/$rel"
done
cp "$KR"/modules.order "$KR"/modules.builtin* "$R/lib/modules/$KVER/" 2>/dev/null || true
depmod -b "$R" "$KVER"

# users: root (key only) and the privilege-separation user
cat > "$R/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
sshd:x:100:65534:sshd privsep:/run/sshd:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
P
printf 'root:x:0:\nnogroup:x:65534:\n' > "$R/etc/group"
printf 'root:*:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n' > "$R/etc/shadow"
chmod 600 "$R/etc/shadow"
printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files\n' > "$R/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n%s director\n' "$DIRECTOR_IP" > "$R/etc/hosts"
echo director > "$R/etc/hostname"
cat > "$R/etc/ssh/sshd_config" <<'S'
Port 22
ListenAddress 0.0.0.0
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AuthorizedKeysFile /etc/ssh/authorized_keys/%u
PidFile /run/sshd.pid
UseDNS no
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp /usr/lib/openssh/sftp-server
SetEnv PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
S
mkdir -p "$R/etc/sysctl.d" "$R/etc/systemd/system" "$R/etc/modules-load.d"
install -m 0755 "$LAB_DIR/director/init" "$R/init"
(cd "$R" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) > "$INITRD.tmp"
mv "$INITRD.tmp" "$INITRD"
echo "$STAMP_INPUTS" > "$INITRD.stamp"
lab_log "initramfs ready: $INITRD ($(du -h "$INITRD" | cut -f1))"
