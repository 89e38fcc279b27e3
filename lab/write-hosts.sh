#!/usr/bin/env bash
# Writes .lab/hosts.json and .lab/known_hosts from the state of a running lab (called by up.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N=$1
KEY="$LAB_STATE/id_ed25519"
KH="$LAB_STATE/known_hosts"
: > "$KH.tmp"
entries=()

host_json() { # name role ip prefix gw iface mac ns segment (segment A hosts also have an IPv6 address)
  local name=$1 role=$2 ip=$3 prefix=$4 gw=$5 iface=$6 mac=$7 ns=$8 seg=$9 ip6j=null
  local S="$LAB_STATE/hosts/$name" pub fp line gwj sudo=""
  pub=$(cut -d' ' -f1,2 "$S/ssh_host_ed25519_key.pub")
  fp=$(ssh-keygen -lf "$S/ssh_host_ed25519_key.pub" | awk '{print $2}')
  line="$ip $pub"
  echo "$line" >> "$KH.tmp"
  if [[ "$gw" == - ]]; then gwj=null; else gwj="\"$gw\""; fi
  if [[ -f "$S/sudo-user" ]]; then
    sudo=", \"sudoUser\": {\"user\": \"$(cat "$S/sudo-user")\", \"privateKeyPath\": \"$KEY\", \"passwordless\": true}"
  fi
  local nsj="\"$ns\""; [[ "$ns" == - ]] && nsj=null
  [[ "$seg" == A ]] && ip6j="\"$(lab_ip6_for_ip "$ip")\""
  printf '    {"name": "%s", "role": "%s", "segment": "%s", "address": "%s", "port": 22, "user": "root", "privateKeyPath": "%s", "hostKeyType": "ssh-ed25519", "hostKey": "%s", "hostKeyFingerprint": "%s", "knownHostsLine": "%s", "interface": "%s", "ip": "%s", "prefix": %s, "gateway": %s, "ip6": %s, "mac": "%s", "namespace": %s%s}' \
    "$name" "$role" "$seg" "$ip" "$KEY" "$pub" "$fp" "$line" "$iface" "$ip" "$prefix" "$gwj" "$ip6j" "$mac" "$nsj" "$sudo"
}

entries+=("$(host_json router router "$ROUTER_A_IP" 24 - eth0 "$(lab_mac_for_ip "$ROUTER_A_IP")" "$LAB_PREFIX-router" A)")
vms=()
while read -r name ip mac role; do
  entries+=("$(host_json "$name" "$role" "$ip" 24 "$ROUTER_A_IP" eth0 "$mac" - A)")
  d="$LAB_STATE/hosts/$name"
  vms+=("$(printf '    "%s": {"role": "%s", "mac": "%s", "serialLogPath": "%s", "qmpSocket": "%s", "qemuPidFile": "%s", "diskPath": "%s"}' \
    "$name" "$role" "$mac" "$d/serial.log" "$d/qmp.sock" "$LAB_STATE/pids/$name.qemu.pid" "$d/disk.qcow2")")
done < "$LAB_STATE/vms.list"
for ((i = 1; i <= N; i++)); do
  ip="$SEG_A_NET.$((9 + i))"
  entries+=("$(host_json "rs$i" real-server "$ip" 24 "$ROUTER_A_IP" eth0 "$(lab_mac_for_ip "$ip")" "$LAB_PREFIX-rs$i" A)")
done
entries+=("$(host_json rsb1 real-server "$RSB1_IP" 24 "$ROUTER_B_IP" eth0 "$(lab_mac_for_ip "$RSB1_IP")" "$LAB_PREFIX-rsb1" B)")
entries+=("$(host_json client client "$CLIENT_IP" 24 "$ROUTER_A_IP" eth0 "$(lab_mac_for_ip "$CLIENT_IP")" "$LAB_PREFIX-client" A)")

{
  printf '{\n  "version": 1,\n  "createdAt": "%s",\n  "realServers": %s,\n' "$(date -u +%FT%TZ)" "$N"
  printf '  "privateKeyPath": "%s",\n  "publicKeyPath": "%s.pub",\n  "knownHostsPath": "%s",\n' "$KEY" "$KEY" "$KH"
  printf '  "vip": "%s",\n  "vipRange": {"first": "%s.3", "last": "%s.9"},\n  "vip6": "%s",\n' "$VIP" "$SEG_A_NET" "$SEG_A_NET" "$VIP6"
  printf '  "runner": {"address": "%s", "prefix": 32, "interface": "%s", "routes": [%s]},\n' "$RUNNER_IP" "$LAB_ROOT_LINK" \
    "$(sed 's/^route replace \(.*\)$/"\1"/' "$LAB_STATE/runner-routes.batch" | paste -sd, -)"
  printf '  "director": {"serialLogPath": "%s", "kernelVersion": "%s", "mac": "%s", "qemuPidFile": "%s"},\n' \
    "$LAB_STATE/hosts/director/serial.log" "$(lab_kernel_version)" "$DIRECTOR_MAC" "$LAB_STATE/pids/director.qemu.pid"
  printf '  "directors": %s,\n' "$(awk '$4 == "director"' "$LAB_STATE/vms.list" | wc -l)"
  printf '  "vms": {\n'
  (IFS=$'\n'; echo "${vms[*]}" | sed '$!s/$/,/')
  printf '  },\n'
  printf '  "segments": [\n'
  printf '    {"name": "A", "cidr": "%s", "prefix": 24, "gateway": "%s", "cidr6": "%s", "gateway6": "%s", "bridge": "br0", "namespace": "%s"},\n' "$SEG_A_CIDR" "$ROUTER_A_IP" "$SEG_A6_CIDR" "$ROUTER_A_IP6" "$LAB_NET_NS"
  printf '    {"name": "B", "cidr": "%s", "prefix": 24, "gateway": "%s", "bridge": "br1", "namespace": "%s"}\n  ],\n' "$SEG_B_CIDR" "$ROUTER_B_IP" "$LAB_NET_NS"
  printf '  "hosts": [\n'
  (IFS=$'\n'; echo "${entries[*]}" | sed '$!s/$/,/')
  printf '  ]\n}\n'
} > "$LAB_STATE/hosts.json.tmp"
mv "$LAB_STATE/hosts.json.tmp" "$LAB_STATE/hosts.json"
mv "$KH.tmp" "$KH"
