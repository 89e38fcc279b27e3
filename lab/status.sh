#!/usr/bin/env bash
# Prints the state of the lab. Exit 0 = up and healthy, 3 = down, 1 = degraded.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
say() { [[ -n "${LAB_QUIET:-}" ]] || echo "$@"; }
if [[ ! -f "$LAB_STATE/state.env" ]]; then
  left=$(ip netns list 2>/dev/null | awk '{print $1}' | grep -c "^$LAB_PREFIX-" || true)
  say "lab: down (namespaces left: $left)"
  ((left == 0)) && exit 3 || exit 1
fi
# shellcheck disable=SC1091
source "$LAB_STATE/state.env"
bad=0
alive() { local f=$1; [[ -s "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null; }
tcp() { timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
while read -r name ip _ role; do
  st=ok
  alive "$LAB_STATE/pids/$name.qemu.pid" || st="FAIL(qemu dead)"
  [[ "$st" != ok ]] || tcp "$ip" 22 || st="FAIL(no tcp/22)"
  [[ "$st" == ok ]] || bad=1
  say "$(printf '%-10s %-12s %-15s %s' "$name" "$role" "$ip" "$st (VM, qemu pid $(cat "$LAB_STATE/pids/$name.qemu.pid" 2>/dev/null))")"
done < "$LAB_STATE/vms.list"
while read -r name role ip _; do
  st=ok
  alive "$LAB_STATE/pids/$name.sshd.pid" || st="FAIL(sshd dead)"
  [[ "$role" != real-server ]] || alive "$LAB_STATE/pids/$name.httpd.pid" || st="FAIL(httpd dead)"
  [[ "$st" != ok ]] || tcp "$ip" 22 || st="FAIL(no tcp/22)"
  [[ "$st" == ok ]] || bad=1
  say "$(printf '%-10s %-12s %-15s %s' "$name" "$role" "$ip" "$st")"
done < "$LAB_STATE/hosts.list"
say "lab: $( ((bad)) && echo DEGRADED || echo up) ($DIRECTORS director(s), $REAL_SERVERS real servers, up in ${UP_SECONDS}s at $UP_AT); hosts: $LAB_STATE/hosts.json"
exit $bad
