#!/usr/bin/env bash
# Runs as the first process of a namespace host, already inside its network namespace and a fresh
# mount + UTS namespace (lab/up.sh starts it with `ip netns exec NS unshare --mount --uts ...`).
# Gives the host a private view of what the tool writes, then becomes the host's sshd.
#   /etc, /var/lib, /root : overlayfs, lower = the machine's, upper = .lab/hosts/NAME/ovl/* (private)
#   /run, /tmp            : private tmpfs (/run/lock, /run/lvs-dr, /run/sshd)
# Usage: host-init.sh NAME ROLE STATE_DIR IP
set -euo pipefail
NAME=$1 ROLE=$2 S=$3 IP=$4

mount --make-rprivate /
hostname "$NAME"
overlay_all() {
  local d k
  for d in etc var/lib root; do
    k=${d//\//-}
    mkdir -p "$S/ovl/$k/upper" "$S/ovl/$k/work"
    mount -t overlay "lvslab-$NAME-$k" \
      -o "lowerdir=/$d,upperdir=$S/ovl/$k/upper,workdir=$S/ovl/$k/work" "/$d" || return 1
  done
}
mkdir -p "$S/ovl"
if ! overlay_all 2>"$S/ovl.err"; then
  # the state directory's file system cannot hold an overlay upper layer (e.g. it is itself an
  # overlayfs, as in a container): keep the upper layers on a tmpfs private to this host instead
  for d in root var/lib etc; do mountpoint -q "/$d" && umount "/$d" 2>/dev/null || true; done
  mount -t tmpfs -o mode=700 "lvslab-$NAME-ovl" "$S/ovl"
  overlay_all
fi
# A fresh Debian root's dotfiles, not this machine's: bash sources ~/.bashrc for every SSH
# command, and a developer's (pyenv init, say) costs every round trip 140 ms.
for f in bashrc profile; do
  if [[ -f /usr/share/base-files/dot.$f ]]; then cp /usr/share/base-files/dot.$f /root/.$f; else cp /etc/skel/.$f /root/.$f; fi
done
mount -t tmpfs -o mode=755 "lvslab-$NAME-run" /run
mkdir -p /run/sshd /run/lock /run/lvs-dr
chmod 1777 /run/lock
mount -t tmpfs -o mode=1777 "lvslab-$NAME-tmp" /tmp

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
  busybox httpd -f -p 80 -h "$S/www" &
  echo $! > "$S/httpd.pid"
fi
echo $$ > "$S/sshd.pid"
exec /usr/sbin/sshd -D -e -f "$S/sshd_config"
