#!/usr/bin/env bash
# Captures REAL command output from a running lab into test/fixtures/ (see test/fixtures/README.md).
# Needs `lab:up` first. Leaves the lab as it found it (table cleared, VIPs and sysctls removed).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT="$LAB_REPO/test/fixtures"
mkdir -p "$OUT/director" "$OUT/real-server"
SSH=(ssh -F /dev/null -i "$LAB_STATE/id_ed25519" -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes
  -o UserKnownHostsFile="$LAB_STATE/known_hosts" -o BatchMode=yes)
on() { local ip=$1; shift; "${SSH[@]}" "root@$ip" "$@"; }
D=$DIRECTOR_IP; V=$VIP
RS=("$SEG_A_NET.10" "$SEG_A_NET.11" "$SEG_A_NET.12")

on "$D" 'modprobe ip_vs; ipvsadm -C'
on "$D" 'ipvsadm-save -n' > "$OUT/director/ipvsadm-save-empty.txt"

# real servers: DR sysctls + VIP on lo
for ip in "${RS[@]}"; do
  on "$ip" "sysctl -q -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
    net.ipv4.conf.lo.arp_ignore=1 net.ipv4.conf.lo.arp_announce=2 \
    net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2 net.ipv4.conf.all.rp_filter=0 \
    && ip addr replace $V/32 dev lo"
done
on "${RS[0]}" 'ip -j addr show' > "$OUT/real-server/ip-j-addr.txt"
on "${RS[0]}" 'sysctl net.ipv4.conf.all.arp_ignore net.ipv4.conf.all.arp_announce net.ipv4.conf.lo.arp_ignore net.ipv4.conf.lo.arp_announce net.ipv4.conf.eth0.arp_ignore net.ipv4.conf.eth0.arp_announce net.ipv4.conf.all.rp_filter' > "$OUT/real-server/sysctl.txt"

# director: VIP on eth0 and the table the core's parsers must read
on "$D" "ip addr replace $V/32 dev eth0
set -e
ipvsadm -A -t $V:80 -s rr
ipvsadm -a -t $V:80 -r ${RS[0]}:80 -g -w 1
ipvsadm -a -t $V:80 -r ${RS[1]}:80 -g -w 2
ipvsadm -a -t $V:80 -r ${RS[2]}:80 -g -w 0
ipvsadm -A -u $V:53 -s wrr -p 300 -M 255.255.255.0
ipvsadm -a -u $V:53 -r ${RS[0]}:53 -g -w 1 -x 100 -y 10
ipvsadm -a -u $V:53 -r ${RS[1]}:53 -g -w 3
ipvsadm -A -f 7 -s sh -b sh-port,sh-fallback
ipvsadm -a -f 7 -r ${RS[0]} -g -w 1
ipvsadm -a -f 7 -r ${RS[2]} -g -w 1 -x 100 -y 10
ipvsadm -A -t $SEG_A_NET.6:443 -s mh -b mh-port
ipvsadm -a -t $SEG_A_NET.6:443 -r ${RS[1]}:443 -g -w 1 -x 100 -y 10
ipvsadm -a -t $SEG_A_NET.6:443 -r ${RS[2]}:443 -g -w 1"

# some real traffic through the VIP so the counters are not all zero (replies bypass the director)
for _i in 1 2 3 4 5 6; do
  ip netns exec "$LAB_PREFIX-client" curl -s -m 5 "http://$V/" >> "$OUT/director/curl-vip-from-client.txt"
done
on "$D" 'ipvsadm-save -n' > "$OUT/director/ipvsadm-save.txt"
on "$D" 'ipvsadm -S -n' > "$OUT/director/ipvsadm-S-n.txt"
on "$D" 'ipvsadm -Ln --exact' > "$OUT/director/ipvsadm-Ln-exact.txt"
on "$D" 'ipvsadm -Ln --exact --thresholds' > "$OUT/director/ipvsadm-Ln-exact-thresholds.txt"
on "$D" 'ipvsadm -Ln --stats --exact' > "$OUT/director/ipvsadm-Ln-stats.txt"
on "$D" 'ipvsadm -Ln --rate --exact' > "$OUT/director/ipvsadm-Ln-rate.txt"
on "$D" 'ipvsadm -Ln --persistent-conn --exact' > "$OUT/director/ipvsadm-Ln-persistent-conn.txt"
on "$D" 'ipvsadm -Ln --timeout' > "$OUT/director/ipvsadm-Ln-timeout.txt"
on "$D" 'ipvsadm -Ln -t 198.51.100.5:80 --exact' > "$OUT/director/ipvsadm-Ln-one-service.txt"
on "$D" 'cat /proc/net/ip_vs' > "$OUT/director/proc-net-ip_vs.txt"
on "$D" 'ip -j addr show' > "$OUT/director/ip-j-addr.txt"
on "$D" "ip -j route get $SEG_A_NET.10" > "$OUT/director/ip-j-route-get-onlink.txt"
on "$D" "ip -j route get $RSB1_IP" > "$OUT/director/ip-j-route-get-via.txt"
on "$D" 'ip -j neigh show' > "$OUT/director/ip-j-neigh.txt"
# .99 holds no host: asked to resolve, it stays incomplete (flags 0x0) beside the answered RIPs (0x2)
on "$D" "ip neigh replace $SEG_A_NET.99 dev eth0 nud none use; cat /proc/net/arp" > "$OUT/director/proc-net-arp.txt"
# Every state a new RIP's entry can be in: .97 permanent, .98 just asked (incomplete), .99 asked
# above and silent since (failed), the others answered.
on "$D" "sleep 4; ip neigh replace $SEG_A_NET.98 dev eth0 nud none use; ip neigh add $SEG_A_NET.97 lladdr 02:00:c6:33:64:61 dev eth0 nud permanent; ip -j neigh show; ip neigh del $SEG_A_NET.97 dev eth0; ip neigh del $SEG_A_NET.98 dev eth0; ip neigh del $SEG_A_NET.99 dev eth0" > "$OUT/director/ip-j-neigh-states.txt"
on "$D" 'ip -j link show' > "$OUT/director/ip-j-link.txt"
on "$D" 'ip -j route show' > "$OUT/director/ip-j-route.txt"
ip netns exec "$LAB_PREFIX-client" ip -j neigh show > "$OUT/director/client-ip-j-neigh-after-vip.txt"
on "$D" 'ipvsadm --version; ip -V; uname -r' > "$OUT/director/versions.txt" 2>&1
on "${RS[0]}" "ip -V; uname -r" > "$OUT/real-server/versions.txt"

# undo
on "$D" "ipvsadm -C; ip addr del $V/32 dev eth0"
for ip in "${RS[@]}"; do
  on "$ip" "ip addr del $V/32 dev lo; sysctl -q -w net.ipv4.conf.all.arp_ignore=0 net.ipv4.conf.all.arp_announce=0 \
    net.ipv4.conf.lo.arp_ignore=0 net.ipv4.conf.lo.arp_announce=0 net.ipv4.conf.eth0.arp_ignore=0 net.ipv4.conf.eth0.arp_announce=0"
done
lab_log "fixtures written to $OUT"
