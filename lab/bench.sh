#!/usr/bin/env bash
# Times the lab: default up from cached prerequisites, down, and scale mode up/down.
# Usage: lab/bench.sh   (LAB_BENCH_SCALE=N to change the scale-mode size, default 100)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SCALE="${LAB_BENCH_SCALE:-100}"
LAB_CMD=lab:bench lab_require_root
"$LAB_DIR/prereqs.sh"
"$LAB_DIR/down.sh" 2>/dev/null
now() { date +%s.%N; }
rows=()
measure() { # label target-seconds command...
  local label=$1 target=$2; shift 2
  local t0 t1 dt verdict
  t0=$(now); "$@" >/dev/null 2>&1 || lab_die "$label failed"; t1=$(now)
  dt=$(awk "BEGIN{printf \"%.1f\", $t1-$t0}")
  verdict=$(awk "BEGIN{print ($dt <= $target) ? \"ok\" : \"OVER TARGET\"}")
  rows+=("$(printf '%-34s %7ss   (target <= %ss) %s' "$label" "$dt" "$target" "$verdict")")
  echo "${rows[-1]}"
}
echo "lab bench on $(nproc) cores, $(date -u +%FT%TZ), kernel cache $(lab_kernel_version)"
measure "up (default: 3 rs, cached prereqs)" 20 env LAB_REAL_SERVERS=3 "$LAB_DIR/up.sh"
measure "up again (idempotent no-op)" 5 env LAB_REAL_SERVERS=3 "$LAB_DIR/up.sh"
measure "down (default)" 5 "$LAB_DIR/down.sh"
measure "up (scale: $SCALE real servers)" 60 env LAB_REAL_SERVERS="$SCALE" "$LAB_DIR/up.sh"
measure "down (scale: $SCALE real servers)" 10 "$LAB_DIR/down.sh"
