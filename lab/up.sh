#!/usr/bin/env bash
# Brings the lab up (idempotent). LAB_REAL_SERVERS=N (1..200, default 3) real servers on segment A.
# Writes .lab/hosts.json and .lab/known_hosts. See lab/README.md for the topology.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N="${LAB_REAL_SERVERS:-3}"
[[ "$N" =~ ^[0-9]+$ && "$N" -ge 1 && "$N" -le $MAX_REAL_SERVERS ]] || lab_die "LAB_REAL_SERVERS must be 1..$MAX_REAL_SERVERS (got '$N')"
((N >= 3)) || lab_die "LAB_REAL_SERVERS must be at least 3 (rs3 carries the sudo user)"
NDIR=$(lab_directors_arg)
lab_require_root
lab_require_tun
# First use is this one command: install and build what is missing (a no-op in ~0.2 s when cached).
[[ -n "${LAB_SKIP_PREREQS:-}" ]] || "$LAB_DIR/prereqs.sh"
lab_require_qemu
VM="$LAB_CACHE/vm"
[[ -s "$VM/STAMP" && -s "$VM/root.raw" && -s "$VM/initramfs.gz" && -s "$VM/vmlinuz" ]] \
  || lab_die "the VM image is missing: run 'sudo npm run lab:prereqs'"

mkdir -p "$LAB_STATE"
exec 9>"$LAB_STATE/.lock"
flock -w 120 9 || lab_die "another lab:up/down is running"

# ---- idempotence ----------------------------------------------------------------------------------
if [[ -f "$LAB_STATE/state.env" ]]; then
  if grep -qx "REAL_SERVERS=$N" "$LAB_STATE/state.env" && grep -qx "DIRECTORS=$NDIR" "$LAB_STATE/state.env" \
    && grep -qx "IMAGE=$(cat "$VM/STAMP")" "$LAB_STATE/state.env" && LAB_QUIET=1 "$LAB_DIR/status.sh" >/dev/null 2>&1; then
    lab_log "already up ($NDIR director(s), $N real servers); nothing to do"
    exit 0
  fi
  lab_log "a previous lab is present but differs or is degraded: taking it down first"
  LAB_LOCKED=1 "$LAB_DIR/down.sh"
elif ip netns list | grep -q "^$LAB_PREFIX-" || ip link show "$LAB_ROOT_LINK" >/dev/null 2>&1; then
  lab_log "leftovers of a lab found: cleaning first"
  LAB_LOCKED=1 "$LAB_DIR/down.sh"
fi

# The lab's addresses must be free on this machine: its /32 routes would shadow the machine's own.
taken=$(ip -o -4 addr show | awk '{split($4, a, "/"); print $2, a[1]}' | grep -E " (${SEG_A_NET//./\\.}|${SEG_B_NET//./\\.})\." || true)
[[ -z "$taken" ]] || lab_die "this machine already has addresses in the lab's ranges ($SEG_A_CIDR, $SEG_B_CIDR): $taken"
taken=$(ip -o -6 addr show | awk '{split($4, a, "/"); print $2, a[1]}' | grep -iF " $SEG_A6_PREFIX" || true)
[[ -z "$taken" ]] || lab_die "this machine already has addresses in the lab's IPv6 range ($SEG_A6_CIDR): $taken"

T0=$(date +%s.%N)
rm -rf "$LAB_STATE/hosts" "$LAB_STATE/pids"
mkdir -p "$LAB_STATE/hosts" "$LAB_STATE/pids"
KEY="$LAB_STATE/id_ed25519"
if [[ ! -f "$KEY" ]]; then
  ssh-keygen -q -t ed25519 -N '' -C "lvslab-operator" -f "$KEY"
fi
chmod 600 "$KEY"
LABPUB=$(cat "$KEY.pub")
lab_vms "$NDIR" > "$LAB_STATE/vms.list"

# ---- segment bridges, router, runner link --------------------------------------------------------
ip netns add "$LAB_NET_NS"
ip -n "$LAB_NET_NS" link set lo up
ip -n "$LAB_NET_NS" link add br0 type bridge
ip -n "$LAB_NET_NS" link add br1 type bridge
# VRRP and IPv6 neighbour discovery are multicast: the bridge floods it instead of snooping.
ip -n "$LAB_NET_NS" link set br0 type bridge mcast_snooping 0
ip -n "$LAB_NET_NS" link set br0 up
ip -n "$LAB_NET_NS" link set br1 up

# ---- the VMs: Debian 12 with systemd (boot while the namespaces are made) ------------------------
# Each boots from its own copy-on-write overlay of the cached image (every lab:up starts clean; a
# reboot inside one lab:up keeps what the tool wrote) and gets its identity from a cpio appended to
# the initramfs: hostname, machine id, host key, the lab key, its address.
start_vm() { # name ip mac role
  local name=$1 ip=$2 mac=$3 role=$4 D="$LAB_STATE/hosts/$1" I
  I="$D/identity/lab/root"
  mkdir -p "$I/etc/ssh" "$I/root/.ssh" "$I/etc/network"
  ssh-keygen -q -t ed25519 -N '' -C "$name@lvslab" -f "$D/ssh_host_ed25519_key"
  cp "$D/ssh_host_ed25519_key" "$D/ssh_host_ed25519_key.pub" "$I/etc/ssh/"
  echo "$LABPUB" > "$I/root/.ssh/authorized_keys"
  chmod 700 "$I/root/.ssh" "$I/root"; chmod 600 "$I/root/.ssh/authorized_keys"
  echo "$name" > "$I/etc/hostname"
  printf '127.0.0.1\tlocalhost\n%s\t%s\n' "$ip" "$name" > "$I/etc/hosts"
  od -An -tx1 -N16 /dev/urandom | tr -d ' \n' > "$I/etc/machine-id"; echo >> "$I/etc/machine-id"
  # IPv6 beside IPv4 on segment A. dad-attempts 0: the lab's addresses are unique by construction,
  # and DAD would hold the boot (ifupdown waits for it) and the address for a second or more.
  printf 'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet static\n  address %s/24\n  gateway %s\n\niface eth0 inet6 static\n  address %s/64\n  gateway %s\n  dad-attempts 0\n' \
    "$ip" "$ROUTER_A_IP" "$(lab_ip6_for_ip "$ip")" "$ROUTER_A_IP6" > "$I/etc/network/interfaces"
  if [[ "$role" == real-server ]]; then
    mkdir -p "$I/var/www/lvslab" "$I/etc/systemd/system/multi-user.target.wants"
    echo "$name" > "$I/var/www/lvslab/index.html"
    ln -s /etc/systemd/system/lvslab-httpd.service "$I/etc/systemd/system/multi-user.target.wants/lvslab-httpd.service"
  fi
  (cd "$D/identity" && find . -print0 | cpio --null -o -H newc --quiet -R 0:0 | gzip -1) > "$D/identity.cpio.gz"
  cat "$VM/initramfs.gz" "$D/identity.cpio.gz" > "$D/initrd.gz"
  rm -rf "$D/identity"
  qemu-img create -q -f qcow2 -b "$VM/root.raw" -F raw "$D/disk.qcow2"
  ip -n "$LAB_NET_NS" tuntap add dev "t-$name" mode tap
  ip -n "$LAB_NET_NS" link set "t-$name" master br0 up
  : > "$D/serial.log"
  # No -no-reboot: a `reboot` in the guest restarts it, as on a real host; QMP gives a hard reset.
  # -cpu qemu64, not max: under TCG, max's extra instruction sets made each SSH session ~40% slower
  # (1.36 s against 0.94 s), and a reboot from inside the guest took 40-199 s against 21-39 s.
  ip netns exec "$LAB_NET_NS" qemu-system-x86_64 -name "lvslab-$name" -accel tcg -cpu "${LAB_QEMU_CPU:-qemu64}" -smp 1 -m 512 \
    -nodefaults -no-user-config -display none \
    -kernel "$VM/vmlinuz" -initrd "$D/initrd.gz" \
    -append "console=ttyS0 root=/dev/vda net.ifnames=0 panic=-1 quiet loglevel=3 systemd.show_status=0 mitigations=off" \
    -drive "file=$D/disk.qcow2,if=virtio,cache=unsafe,discard=unmap" \
    -serial "file:$D/serial.log" \
    -netdev "tap,id=n0,ifname=t-$name,script=no,downscript=no" \
    -device "virtio-net-pci,netdev=n0,mac=$mac,romfile=" \
    -qmp "unix:$D/qmp.sock,server=on,wait=off" \
    -daemonize -pidfile "$LAB_STATE/pids/$name.qemu.pid" 9>&- \
    || lab_die "qemu failed to start $name (see $D/serial.log)"
}
while read -r name ip mac role; do
  mkdir -p "$LAB_STATE/hosts/$name"
  start_vm "$name" "$ip" "$mac" "$role"
done < "$LAB_STATE/vms.list"

# ---- namespace hosts -----------------------------------------------------------------------------
# name role ip prefix gateway bridge
HOSTS=("router router $ROUTER_A_IP 24 - br0")
for ((i = 1; i <= N; i++)); do HOSTS+=("rs$i real-server $SEG_A_NET.$((9 + i)) 24 $ROUTER_A_IP br0"); done
HOSTS+=("rsb1 real-server $RSB1_IP 24 $ROUTER_B_IP br1")
HOSTS+=("client client $CLIENT_IP 24 $ROUTER_A_IP br0")
printf '%s\n' "${HOSTS[@]}" > "$LAB_STATE/hosts.list"

setup_host() { # name role ip prefix gw bridge
  local name=$1 role=$2 ip=$3 prefix=$4 gw=$5 br=$6 ns="$LAB_PREFIX-$1" S="$LAB_STATE/hosts/$1"
  mkdir -p "$S/authorized_keys" "$S/www"
  ssh-keygen -q -t ed25519 -N '' -C "$name@lvslab" -f "$S/ssh_host_ed25519_key"
  echo "$LABPUB" > "$S/authorized_keys/root"
  echo "$name" > "$S/www/index.html"
  if [[ "$name" == "$SUDO_HOST" ]]; then
    echo "$SUDO_USER_NAME" > "$S/sudo-user"
    echo "$LABPUB" > "$S/authorized_keys/$SUDO_USER_NAME"
  fi
  cat > "$S/sshd_config" <<CFG
Port 22
ListenAddress 0.0.0.0
HostKey /run/lvslab/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AuthorizedKeysFile /run/lvslab/authorized_keys/%u
PidFile /run/sshd.pid
UseDNS no
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp /usr/lib/openssh/sftp-server
CFG
  ip netns add "$ns"
  ip link add eth0 netns "$ns" address "$(lab_mac_for_ip "$ip")" type veth peer name "v-$name" netns "$LAB_NET_NS"
  ip -n "$LAB_NET_NS" link set "v-$name" master "$br" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$ip/$prefix" dev eth0
  if [[ "$br" == br0 ]]; then ip -n "$ns" addr add "$(lab_ip6_for_ip "$ip")/64" dev eth0 nodad; fi
  ip -n "$ns" link set eth0 up
  if [[ "$role" == router ]]; then
    ip link add eth1 netns "$ns" address "$(lab_mac_for_ip "$ROUTER_B_IP")" type veth peer name "v-$name-b" netns "$LAB_NET_NS"
    ip -n "$LAB_NET_NS" link set "v-$name-b" master br1 up
    ip -n "$ns" addr add "$ROUTER_B_IP/24" dev eth1
    ip -n "$ns" link set eth1 up
    ip netns exec "$ns" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
  else
    ip -n "$ns" route add default via "$gw"
    if [[ "$br" == br0 ]]; then ip -n "$ns" -6 route add default via "$ROUTER_A_IP6"; fi
  fi
  setsid ip netns exec "$ns" unshare --mount --uts --propagation private \
    "$LAB_DIR/host-init.sh" "$name" "$role" "$S" "$ip" > "$S/host.log" 2>&1 < /dev/null 9>&- &
}
export -f setup_host lab_mac_for_ip lab_ip6_for_ip
export LAB_STATE LAB_PREFIX LAB_NET_NS LAB_DIR LABPUB SUDO_HOST SUDO_USER_NAME ROUTER_B_IP ROUTER_A_IP6 SEG_A6_PREFIX

# The runner's way in (root namespace): .254 on segment A as a /32, and a /32 route to each host the
# lab made, nothing wider: the machine may reach real services through addresses in these ranges.
ip link add "$LAB_ROOT_LINK" address "$(lab_mac_for_ip "$RUNNER_IP")" type veth peer name runner netns "$LAB_NET_NS"
ip -n "$LAB_NET_NS" link set runner master br0 up
ip addr add "$RUNNER_IP/32" dev "$LAB_ROOT_LINK"
ip addr add "$RUNNER_IP6/128" dev "$LAB_ROOT_LINK" nodad
ip link set "$LAB_ROOT_LINK" up

# parallel: a few workers, each a stream of hosts
JOBS=4
printf '%s\n' "${HOSTS[@]}" | xargs -P "$JOBS" -L 1 bash -c 'setup_host "$@"' _ 9>&-
{
  while read -r _ ip _; do
    echo "route replace $ip/32 dev $LAB_ROOT_LINK src $RUNNER_IP"
    echo "route replace $(lab_ip6_for_ip "$ip")/128 dev $LAB_ROOT_LINK src $RUNNER_IP6"
  done < "$LAB_STATE/vms.list"
  for h in "${HOSTS[@]}"; do
    read -r name _ ip _ _ br <<<"$h"
    if [[ "$br" == br0 ]]; then
      echo "route replace $ip/32 dev $LAB_ROOT_LINK src $RUNNER_IP"
      echo "route replace $(lab_ip6_for_ip "$ip")/128 dev $LAB_ROOT_LINK src $RUNNER_IP6"
    else echo "route replace $ip/32 via $ROUTER_A_IP dev $LAB_ROOT_LINK src $RUNNER_IP"; fi
  done
} > "$LAB_STATE/runner-routes.batch"
ip -batch "$LAB_STATE/runner-routes.batch"

# ---- wait for every sshd -------------------------------------------------------------------------
wait_tcp() { # ip port timeout-seconds
  local end=$((SECONDS + $3))
  until timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; do
    ((SECONDS < end)) || return 1
    sleep 0.2
  done
}
for h in "${HOSTS[@]}"; do
  read -r name _ <<<"$h"
  S="$LAB_STATE/hosts/$name"
  for _try in $(seq 100); do [[ -s "$S/sshd.pid" ]] && break; sleep 0.05; done
  [[ -s "$S/sshd.pid" ]] || lab_die "host $name did not start (see $S/host.log)"
  cp "$S/sshd.pid" "$LAB_STATE/pids/$name.sshd.pid"
  [[ -s "$S/httpd.pid" ]] && cp "$S/httpd.pid" "$LAB_STATE/pids/$name.httpd.pid"
done
for h in "${HOSTS[@]}"; do
  read -r name _ ip _ <<<"$h"
  wait_tcp "$ip" 22 20 || lab_die "sshd on $name ($ip) is not answering (see $LAB_STATE/hosts/$name/host.log)"
done
while read -r name ip _; do
  wait_tcp "$ip" 22 120 || lab_die "the $name VM's sshd is not answering on $ip:22 (serial log: $LAB_STATE/hosts/$name/serial.log)"
done < "$LAB_STATE/vms.list"

# remember when each recorded process started, so lab:down never kills a reused PID
for f in "$LAB_STATE"/pids/*.pid; do
  p=$(cat "$f"); echo "$p $(lab_pid_start "$p" || echo gone)"
done > "$LAB_STATE/pid-starttimes"

# ---- hosts.json and known_hosts -----------------------------------------------------------------
"$LAB_DIR/write-hosts.sh" "$N"

# ---- prove every default host answers real SSH with the pinned key -------------------------------
check=(); while read -r _ ip _; do check+=("$ip"); done < "$LAB_STATE/vms.list"
for h in "${HOSTS[@]}"; do read -r name _ ip _ <<<"$h"; [[ "$name" =~ ^rs[0-9]+$ && ${name#rs} -gt 3 ]] || check+=("$ip"); done
for ip in "${check[@]}"; do
  ssh -F /dev/null -i "$KEY" -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$LAB_STATE/known_hosts" \
    -o BatchMode=yes -o ConnectTimeout=10 "root@$ip" true &
done
fail=0; for _j in "${check[@]}"; do wait -n || fail=1; done
((fail == 0)) || lab_die "SSH with the pinned key failed on at least one host"

T1=$(date +%s.%N)
printf 'REAL_SERVERS=%s\nDIRECTORS=%s\nIMAGE=%s\nUP_AT=%s\nUP_SECONDS=%s\n' "$N" "$NDIR" "$(cat "$VM/STAMP")" "$(date -u +%FT%TZ)" "$(echo "$T1 - $T0" | bc 2>/dev/null || awk "BEGIN{print $T1-$T0}")" > "$LAB_STATE/state.env"
lab_log "up: $(awk '{printf "%s%s", (NR > 1 ? " + " : ""), $1}' "$LAB_STATE/vms.list") (VMs) + $N real servers + rsb1 + client + router; hosts in $LAB_STATE/hosts.json"
