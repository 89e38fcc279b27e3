#!/usr/bin/env bash
# Times the lab, each figure the median of LAB_BENCH_RUNS runs (default 3; min and max shown too):
#   - prerequisites from nothing (kernel download + VM image build), in a scratch cache (once)
#   - up with the defaults from a warm cache (director + rsvm1 VMs), up again (no-op), down
#   - up with LAB_DIRECTORS=2
#   - a director reboot (`systemctl reboot` inside the guest) until SSH answers from the new boot
#   - scale mode up and down (LAB_BENCH_SCALE=N real servers, default 100; once)
# Usage: sudo npm run lab:bench   (LAB_BENCH_SKIP_BUILD=1 skips the build from nothing)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SCALE="${LAB_BENCH_SCALE:-100}"
RUNS="${LAB_BENCH_RUNS:-3}"
LAB_CMD=lab:bench lab_require_root
"$LAB_DIR/prereqs.sh"
"$LAB_DIR/down.sh" 2>/dev/null
now() { date +%s.%N; }
SSH=(ssh -F /dev/null -i "$LAB_STATE/id_ed25519" -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes
  -o UserKnownHostsFile="$LAB_STATE/known_hosts" -o BatchMode=yes -o ConnectTimeout=5 -o LogLevel=ERROR)

# one timed run of a command: prints seconds
timed() {
  local t0 t1
  t0=$(now); "$@" >/dev/null 2>&1 || lab_die "failed: $*"; t1=$(now)
  awk "BEGIN{printf \"%.1f\", $t1-$t0}"
}
report() { # label target values...
  local label=$1 target=$2; shift 2
  local sorted med verdict
  sorted=$(printf '%s\n' "$@" | sort -n)
  med=$(echo "$sorted" | awk '{a[NR]=$1} END{print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}')
  verdict=""
  [[ "$target" == - ]] || verdict=$(awk "BEGIN{print ($med <= $target) ? \"ok (target <= ${target} s)\" : \"OVER TARGET (<= ${target} s)\"}")
  printf '%-44s median %6.1f s   min %6.1f  max %6.1f  (n=%d)  %s\n' "$label" "$med" "$(echo "$sorted" | head -1)" "$(echo "$sorted" | tail -1)" "$#" "$verdict"
}
director_reboot() {
  local before after t0
  before=$("${SSH[@]}" "root@$DIRECTOR_IP" cat /proc/sys/kernel/random/boot_id)
  t0=$(now)
  timeout 10 "${SSH[@]}" "root@$DIRECTOR_IP" systemctl reboot >/dev/null 2>&1 || true
  for _ in $(seq 600); do
    # `timeout`: a session accepted just before the old sshd went away would otherwise hang for the
    # whole TCP retransmission backoff (about a minute) and be counted as boot time.
    after=$(timeout 5 "${SSH[@]}" "root@$DIRECTOR_IP" cat /proc/sys/kernel/random/boot_id 2>/dev/null || true)
    [[ -n "$after" && "$after" != "$before" ]] && break
    sleep 0.2
  done
  [[ -n "$after" && "$after" != "$before" ]] || lab_die "the director did not come back from its reboot"
  awk "BEGIN{printf \"%.1f\", $(now)-$t0}"
}

echo "lab bench on $(nproc) cores, $(date -u +%FT%TZ), kernel $(lab_kernel_version), $RUNS runs each"
if [[ -z "${LAB_BENCH_SKIP_BUILD:-}" ]]; then
  mkdir -p "$LAB_REPO/.cache"; scratch=$(mktemp -d "$LAB_REPO/.cache/bench-cache.XXXXXX")
  report "prerequisites from nothing (kernel + image)" 600 "$(LAB_CACHE="$scratch" timed "$LAB_DIR/prereqs.sh")"
  rm -rf "$scratch"
fi
up=(); again=(); down=(); up2=(); down2=(); reboot=()
for ((r = 1; r <= RUNS; r++)); do
  up+=("$(timed env LAB_REAL_SERVERS=3 LAB_DIRECTORS=1 "$LAB_DIR/up.sh")")
  again+=("$(timed env LAB_REAL_SERVERS=3 LAB_DIRECTORS=1 "$LAB_DIR/up.sh")")
  reboot+=("$(director_reboot)")
  down+=("$(timed "$LAB_DIR/down.sh")")
  up2+=("$(timed env LAB_REAL_SERVERS=3 LAB_DIRECTORS=2 "$LAB_DIR/up.sh")")
  down2+=("$(timed "$LAB_DIR/down.sh")")
done
report "up, defaults (2 VMs + 6 namespace hosts)" 30 "${up[@]}"
report "up again (idempotent no-op)" 5 "${again[@]}"
report "director reboot until SSH answers" - "${reboot[@]}"
report "down, defaults" 5 "${down[@]}"
report "up, LAB_DIRECTORS=2 (3 VMs)" 45 "${up2[@]}"
report "down, LAB_DIRECTORS=2" 5 "${down2[@]}"
report "up, scale mode ($SCALE real servers)" 60 "$(timed env LAB_REAL_SERVERS="$SCALE" "$LAB_DIR/up.sh")"
report "down, scale mode ($SCALE real servers)" 10 "$(timed "$LAB_DIR/down.sh")"
