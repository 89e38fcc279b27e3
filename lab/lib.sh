# shellcheck shell=bash
# Common settings for the lab scripts. Sourced, never executed.
# The addresses are fixed: the rest of the project hard-codes them (stacks/Pulumi.lab.yaml).

LAB_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAB_DIR="$LAB_REPO/lab"
LAB_STATE="${LAB_STATE:-$LAB_REPO/.lab}"
LAB_CACHE="${LAB_CACHE:-$LAB_REPO/.cache/lab}"

LAB_PREFIX="lvslab"                 # every namespace the lab makes starts with "lvslab-"
LAB_NET_NS="lvslab-net"             # holds the bridges br0 (segment A) and br1 (segment B) and the director VM
LAB_ROOT_LINK="lvslab0"             # root-namespace end of the test runner's way in

SEG_A_NET="198.51.100"; SEG_A_CIDR="198.51.100.0/24"
SEG_B_NET="203.0.113";  SEG_B_CIDR="203.0.113.0/24"
ROUTER_A_IP="$SEG_A_NET.1"; ROUTER_B_IP="$SEG_B_NET.1"
DIRECTOR_IP="$SEG_A_NET.2"
DIRECTOR_MAC="52:54:00:c6:33:02"
DIRECTOR2_IP="$SEG_A_NET.220"        # LAB_DIRECTORS=2
DIRECTOR2_MAC="52:54:00:c6:33:dc"
RSVM1_IP="$SEG_A_NET.230"            # the real server that boots systemd (a VM)
RSVM1_MAC="52:54:00:c6:33:e6"
MAX_DIRECTORS=2
VIP="$SEG_A_NET.5"
CLIENT_IP="$SEG_A_NET.240"
RUNNER_IP="$SEG_A_NET.254"
RSB1_IP="$SEG_B_NET.10"
SUDO_HOST="rs3"; SUDO_USER_NAME="lvsops"
# Segment A is dual-stack: every host on it also has 2001:db8:100::<its IPv4 last octet, as written>.
SEG_A6_PREFIX="2001:db8:100::"; SEG_A6_CIDR="2001:db8:100::/64"
ROUTER_A_IP6="${SEG_A6_PREFIX}1"
VIP6="${SEG_A6_PREFIX}5"
RUNNER_IP6="${SEG_A6_PREFIX}254"
MAX_REAL_SERVERS=200

# Packages the lab needs on the machine (Debian 12).
LAB_PACKAGES=(qemu-system-x86 qemu-utils mmdebstrap e2fsprogs ipvsadm openssh-server openssh-client busybox-static
  arping ndisc6 kmod cpio iputils-ping curl iproute2 util-linux procps sudo bash gzip)

# Packages of the VMs' Debian 12 image (lab/vm/build-image.sh): what a real director has, plus
# busybox for a real server's HTTP service.
VM_PACKAGES=(systemd-sysv udev ifupdown openssh-server iproute2 ipvsadm keepalived kmod util-linux procps arping ndisc6 ethtool busybox)

lab_die() { echo "lab: $*" >&2; exit 1; }
lab_log() { echo "lab: $*" >&2; }

lab_kernel_version() { cat "$LAB_CACHE/kernel/VERSION" 2>/dev/null; }

# The lab's VMs for LAB_DIRECTORS=N: "name ip mac role" lines, directors first.
lab_vms() {
  local n=${1:-1}
  echo "director $DIRECTOR_IP $DIRECTOR_MAC director"
  ((n < 2)) || echo "director2 $DIRECTOR2_IP $DIRECTOR2_MAC director"
  echo "rsvm1 $RSVM1_IP $RSVM1_MAC real-server"
}
lab_directors_arg() { # validates LAB_DIRECTORS, prints it
  local n=${LAB_DIRECTORS:-1}
  [[ "$n" =~ ^[0-9]+$ && "$n" -ge 1 && "$n" -le $MAX_DIRECTORS ]] \
    || lab_die "LAB_DIRECTORS must be 1 or 2 (got '$n'): the lab has room for two directors on segment A"
  echo "$n"
}

# A locally administered MAC per segment-A/B address: 02:00:<4 octets of the IP in hex>.
lab_mac_for_ip() {
  local IFS=.; set -- $1
  printf '02:00:%02x:%02x:%02x:%02x' "$1" "$2" "$3" "$4"
}

# A segment-A host's IPv6 address: 198.51.100.X -> 2001:db8:100::X (the digits read as hex: a name, not arithmetic).
lab_ip6_for_ip() {
  echo "$SEG_A6_PREFIX${1##*.}"
}

lab_require_root() {
  [[ $(id -u) -eq 0 ]] || lab_die "must run as root (namespaces, bridges, tap devices): try 'sudo npm run ${LAB_CMD:-lab:up}'"
}
lab_require_tun() {
  [[ -c /dev/net/tun ]] || lab_die "/dev/net/tun is missing: the director VM needs a tap device (modprobe tun, or run the container with --device /dev/net/tun)"
}
lab_require_qemu() {
  command -v qemu-system-x86_64 >/dev/null || lab_die "qemu-system-x86_64 not found: run 'sudo npm run lab:prereqs' (installs qemu-system-x86)"
}

# Start time (clock ticks since boot) of a process, to tell a recorded PID from a reused one.
lab_pid_start() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo "${20}"
}
