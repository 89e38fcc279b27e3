#!/usr/bin/env bash
# Installs and builds everything the lab needs, idempotently, cached under .cache/lab/:
#   - Debian packages (apt-get update only when something is missing)
#   - the Debian cloud kernel (has IPVS) extracted from its .deb, with modules.dep
#   - the VMs' Debian 12 image with systemd (lab/vm/build-image.sh)
# Usage: lab/prereqs.sh [--force]   (--force rebuilds the VM image)
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
fi

# ---- the VMs' Debian image (directors and rsvm1) ------------------------------------------------
FORCE_ARG=(); ((FORCE)) && FORCE_ARG=(--force)
"$LAB_DIR/vm/build-image.sh" "${FORCE_ARG[@]}"
