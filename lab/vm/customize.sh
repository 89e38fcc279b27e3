#!/usr/bin/env bash
# Makes the freshly bootstrapped Debian root ($1) into the lab's VM image: what every lab VM
# shares. Per-VM identity (hostname, host key, keys, addresses) is laid over it at each boot by the
# initramfs. Run by lab/vm/build-image.sh as an mmdebstrap customize hook.
set -euo pipefail
R=$1
KROOT=$2   # the extracted Debian cloud kernel (lib/modules/<version>)

# The kernel's modules, so udev, modprobe and IPVS work inside the VM.
mkdir -p "$R/usr/lib/modules"
cp -a "$KROOT"/lib/modules/* "$R/usr/lib/modules/"

printf '/dev/vda / ext4 rw,errors=remount-ro 0 0\n' > "$R/etc/fstab"
rm -f "$R"/etc/ssh/ssh_host_*            # each VM gets its own at each lab:up
: > "$R/etc/machine-id"                  # replaced per VM before systemd starts (no first-boot presets)

# sshd as the tool meets it on a real host, plus what many parallel sessions need.
cat > "$R/etc/ssh/sshd_config.d/lvslab.conf" <<'S'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
MaxStartups 100:30:200
MaxSessions 100
S

# Networking: ifupdown, Debian's default on servers, with the /etc/network/interfaces the VM's
# identity brings; network-online.target waits for it, so lvs-dr.service starts after eth0 is up.
chroot "$R" systemctl enable networking.service ifupdown-wait-online.service >/dev/null 2>&1
# keepalived is installed, not enabled: the tool enables what it needs.
chroot "$R" systemctl disable keepalived.service >/dev/null 2>&1
# Nothing that runs on a timer or asks for a screen: the lab measures what the tool does.
chroot "$R" systemctl mask apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
  e2scrub_reap.service fstrim.timer systemd-pstore.service getty.target >/dev/null 2>&1
# Boot time under emulation (one slow CPU): the initramfs loads virtio_net, so eth0 exists before
# systemd starts and ifupdown need not wait for udev to settle (ifupdown-pre, 5-9 s here); and
# pseudo file systems and modules nothing in the lab uses are not mounted or loaded.
chroot "$R" systemctl mask ifupdown-pre.service dev-hugepages.mount sys-kernel-debug.mount \
  sys-kernel-tracing.mount sys-fs-fuse-connections.mount modprobe@fuse.service modprobe@drm.service \
  modprobe@loop.service modprobe@dm_mod.service modprobe@efi_pstore.service >/dev/null 2>&1

# A real server's HTTP service (busybox httpd, serving the host's name); enabled per VM by identity.
cat > "$R/etc/systemd/system/lvslab-httpd.service" <<'U'
[Unit]
Description=lab HTTP server (answers with the host's name)
After=network.target

[Service]
ExecStart=/bin/busybox httpd -f -p 80 -h /var/www/lvslab
Restart=always

[Install]
WantedBy=multi-user.target
U
mkdir -p "$R/var/www/lvslab"
