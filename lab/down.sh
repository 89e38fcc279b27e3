#!/usr/bin/env bash
# Takes the lab down: stops the processes the lab started (recorded PIDs, then whatever still runs
# inside the lab's own lvslab-* namespaces, by PID: every qemu runs inside lvslab-net), deletes the
# namespaces, the runner link and its routes, and the per-run state (the VMs' overlay disks with it).
# Leaves the lab key and .cache/lab alone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LAB_CMD=lab:down lab_require_root
if [[ -z "${LAB_LOCKED:-}" ]]; then
  mkdir -p "$LAB_STATE"
  exec 9>"$LAB_STATE/.lock"
  flock -w 120 9 || lab_die "another lab:up/down is running"
fi

lab_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep "^$LAB_PREFIX-" || true; }
pids=()
# recorded PIDs: only while they are still the processes the lab started (same start time)
for f in "$LAB_STATE"/pids/*.pid; do
  [[ -s "$f" ]] || continue
  p=$(cat "$f")
  want=$(awk -v p="$p" '$1 == p {print $2}' "$LAB_STATE/pid-starttimes" 2>/dev/null || true)
  have=$(lab_pid_start "$p" || true)
  if [[ -n "$have" && ( -z "$want" || "$want" == "$have" ) ]]; then
    # no start time recorded (up.sh interrupted early): accept it only if it lives in a lab namespace
    if [[ -z "$want" ]]; then
      ns=$(ip netns identify "$p" 2>/dev/null || true)
      [[ "$ns" == "$LAB_PREFIX-"* ]] || continue
    fi
    pids+=("$p")
  fi
done
for ns in $(lab_namespaces); do
  while read -r p; do [[ -n "$p" ]] && pids+=("$p"); done < <(ip netns pids "$ns" 2>/dev/null || true)
done
if ((${#pids[@]})); then
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _i in $(seq 50); do
    live=(); for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && live+=("$p"); done
    ((${#live[@]} == 0)) && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true; done
fi
ip link del "$LAB_ROOT_LINK" 2>/dev/null || true   # also removes the runner's /32 routes
for ns in $(lab_namespaces); do ip netns del "$ns"; done
rm -rf "$LAB_STATE/hosts" "$LAB_STATE/pids" "$LAB_STATE/hosts.json" "$LAB_STATE/known_hosts" \
  "$LAB_STATE/hosts.list" "$LAB_STATE/state.env" "$LAB_STATE/pid-starttimes" "$LAB_STATE/vms.list" \
  "$LAB_STATE/runner-routes.batch"
lab_log "down"
