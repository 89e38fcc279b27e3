#!/usr/bin/env bash
# Runs as the first process of a namespace host, already inside its network namespace and a fresh
# mount + UTS namespace (lab/up.sh starts it with `ip netns exec NS unshare --mount --uts ...`).
# Gives the host a private view of what the tool writes, then becomes the host's sshd.
#   /run, /tmp            : private tmpfs (/run/lock, /run/lvs-dr, /run/sshd)
#   /etc, /var/lib, /root : overlayfs, lower = the machine's, upper = a tmpfs private to the host
#   /run/lvslab           : the host's own files (keys, sshd_config, www), copied from STATE_DIR
# STATE_DIR may be anywhere, also under /root, /tmp or a 0700 directory: it is reached only
# through a bind mount made before anything covers it, and what other users must read is copied.
# Usage: host-init.sh NAME ROLE STATE_DIR IP
set -euo pipefail
NAME=$1 ROLE=$2 S=$3 IP=$4

mount --make-rprivate /
hostname "$NAME"
mount -t tmpfs -o mode=755 "lvslab-$NAME-run" /run
L=/run/lvslab
mkdir -p "$L/state" "$L/ovl"
mount --bind "$S" "$L/state"
S="$L/state"
# The upper layers live on a tmpfs: the state directory may itself sit under /root (the lower layer
# of an overlay cannot hold its own upper layer) or on a file system that cannot hold one.
mount -t tmpfs -o mode=700 "lvslab-$NAME-ovl" "$L/ovl"
for d in etc var/lib root; do
  k=${d//\//-}
  mkdir -p "$L/ovl/$k/upper" "$L/ovl/$k/work"
  mount -t overlay "lvslab-$NAME-$k" -o "lowerdir=/$d,upperdir=$L/ovl/$k/upper,workdir=$L/ovl/$k/work" "/$d"
done
# A fresh Debian root's dotfiles, not this machine's: bash sources ~/.bashrc for every SSH
# command, and a developer's (pyenv init, say) costs every round trip 140 ms.
for f in bashrc profile; do
  if [[ -f /usr/share/base-files/dot.$f ]]; then cp /usr/share/base-files/dot.$f /root/.$f; else cp /etc/skel/.$f /root/.$f; fi
done
mkdir -p /run/sshd /run/lock /run/lvs-dr
chmod 1777 /run/lock
mount -t tmpfs -o mode=1777 "lvslab-$NAME-tmp" /tmp

# What sshd and httpd read, world-readable where a non-root user's session needs it (the state
# directory's parents may be 0700).
install -m 600 "$S/ssh_host_ed25519_key" "$L/ssh_host_ed25519_key"
install -m 755 -d "$L/authorized_keys" "$L/www"
for f in "$S"/authorized_keys/*; do install -m 644 "$f" "$L/authorized_keys/"; done
cp "$S"/www/* "$L/www/" 2>/dev/null || true

printf '127.0.0.1\tlocalhost\n%s\t%s\n' "$IP" "$NAME" > /etc/hosts
echo "$NAME" > /etc/hostname

if [[ -f "$S/sudo-user" ]]; then
  # a non-root user with passwordless sudo, only inside this host's private /etc
  u=$(cat "$S/sudo-user"); uid=1500
  while getent passwd "$uid" >/dev/null || getent group "$uid" >/dev/null; do uid=$((uid+1)); done
  echo "$u:x:$uid:$uid:lab sudo user:/var/lib/$u:/bin/bash" >> /etc/passwd
  echo "$u:x:$uid:" >> /etc/group
  echo "$u:*:19000:0:99999:7:::" >> /etc/shadow   # '*' = no password, but not locked for keys
  mkdir -p "/var/lib/$u"; chown "$uid:$uid" "/var/lib/$u"
  mkdir -p /etc/sudoers.d
  echo "$u ALL=(ALL:ALL) NOPASSWD: ALL" > "/etc/sudoers.d/$u"; chmod 0440 "/etc/sudoers.d/$u"
fi

if [[ "$ROLE" == real-server ]]; then
  busybox httpd -f -p 80 -h "$L/www" &
  echo $! > "$S/httpd.pid"
fi
echo $$ > "$S/sshd.pid"
exec /usr/sbin/sshd -D -e -f "$S/sshd_config"
