#!/usr/bin/env bash
# DPDK's side of the IPC comparison: builds mp_perf.c against Debian's libdpdk (under /tmp) and
# runs one primary and one secondary. Prints the JSON lines of mp_perf (see mp_perf.c), each with
# the run's placement tags and the CPU other processes used meanwhile added:
#   {"side":"dpdk","case":"request_sync secondary->primary","unit":"us","p50":..,"p99":..,...}
#   {"side":"dpdk","case":"sendmsg secondary->primary","unit":"msg/s","rate":..,...}
#   and the same two the other way, primary->secondary.
#
# usage: benches/dpdk/mp_perf.sh [REQUESTS=10000] [MODE=lcore] [RUNS=1]
#   MODE lcore:   primary -l 0, secondary -l 1. DPDK runs its control threads (the IPC thread
#                 rte_mp_handle among them) on the CPUs no lcore uses: the other one here.
#   MODE pinned:  the same, and each whole process is held to its CPU with taskset (IPC threads
#                 included); case names end in " pinned".
#   MODE one-cpu: both processes, all threads, on CPU 0; case names end in " one-cpu".
# A run of 10 000 requests takes 3-6 s on these VMs; it is bounded by timeouts in any case.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=benches/lib.sh
source "$here/../lib.sh"
export BENCH_LOG_TAG=mp_perf

requests=${1:-10000}
mode=${2:-lcore}
runs=${3:-1}
if ! [[ $requests =~ ^[0-9]+$ ]] || [ "$requests" -lt 10 ] || [ "$requests" -gt 1000000 ] ||
  ! [[ $runs =~ ^[0-9]+$ ]] || [ "$runs" -lt 1 ] || [ "$runs" -gt 50 ]; then
  echo "usage: $0 [REQUESTS=10000 (10-1000000)] [MODE=lcore|pinned|one-cpu] [RUNS=1 (1-50)]" >&2
  exit 2
fi
case $mode in
  lcore) p_cpu=0 s_cpu=1 suffix="" wrap=0 ;;
  pinned) p_cpu=0 s_cpu=1 suffix=" pinned" wrap=1 ;;
  one-cpu) p_cpu=0 s_cpu=0 suffix=" one-cpu" wrap=1 ;;
  *)
    echo "$0: MODE is lcore, pinned or one-cpu" >&2
    exit 2
    ;;
esac
warmup=$(((requests + 9) / 10))
stream_secs=1
# Worst case: every request at its 5 s limit is not bounded usefully; allow ~1 ms per request on
# top of the fixed parts, which is 10x the slowest figure seen here.
budget=$((30 + requests * 2 * 11 / 10000 + 4 * stream_secs))

ensure_dpdk
ensure_hugepages 512

bin=${VSD_BUILD_DIR:-/tmp/vsd-build}/mp_perf
if [ ! -x "$bin" ] || [ "$here/mp_perf.c" -nt "$bin" ]; then
  bench_log "building $bin"
  mkdir -p "$(dirname "$bin")"
  # shellcheck disable=SC2046
  timeout 120 cc -O2 -Wall -Wextra $(pkg-config --cflags libdpdk) "$here/mp_perf.c" \
    -o "$bin.tmp" $(pkg-config --libs libdpdk)
  mv -f "$bin.tmp" "$bin"
fi

prefix=""
p_pid=""
s_pid=""
work=$(mktemp -d /tmp/vsd-mp.XXXXXX)
cleanup() {
  local pids=()
  [ -n "$s_pid" ] && pids+=("$s_pid")
  [ -n "$p_pid" ] && pids+=("$p_pid")
  [ "${#pids[@]}" -gt 0 ] && stop_pids 3 "${pids[@]}"
  s_pid="" p_pid=""
  dpdk_cleanup "$prefix"
}
trap 'cleanup; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# The command prefix that holds a process to CPU $1 in the pinned and one-cpu modes.
pin_prefix() {
  if [ "$wrap" = 1 ]; then echo "taskset -c $1"; fi
}

one_run() {
  local run=$1 before after busy tag rc=0 end
  prefix="vsd-$$-mp-$run"
  local app=(-- -n "$requests" -w "$warmup" -t "$stream_secs" -T "$budget" -c "$suffix")
  before=$(placement)
  cpu_busy_begin
  local p_pre s_pre
  read -r -a p_pre <<<"$(pin_prefix "$p_cpu")"
  read -r -a s_pre <<<"$(pin_prefix "$s_cpu")"
  timeout $((budget + 20)) "${p_pre[@]}" stdbuf -oL "$bin" -l "$p_cpu" --no-pci \
    --file-prefix "$prefix" "${app[@]}" >"$work/primary.out" 2>"$work/primary.err" &
  p_pid=$!
  if ! wait_for_line "$work/primary.err" 'primary ready' 20; then
    bench_log "primary did not start:"
    tail -n 20 "$work/primary.out" "$work/primary.err" >&2
    return 1
  fi
  timeout $((budget + 20)) "${s_pre[@]}" stdbuf -oL "$bin" -l "$s_cpu" --proc-type=secondary \
    --no-pci --file-prefix "$prefix" "${app[@]}" >"$work/secondary.out" 2>"$work/secondary.err" &
  s_pid=$!
  # The secondary ends the run; the primary lingers until told (or 5 s) so it outlives it.
  end=$((SECONDS + budget + 25))
  while kill -0 "$s_pid" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.1; done
  wait "$s_pid" 2>/dev/null || rc=$?
  s_pid=""
  stop_pids 5 "$p_pid"
  p_pid=""
  busy=$(cpu_busy_pct)
  after=$(placement)
  dpdk_cleanup "$prefix"
  tag=$before
  [ "$before" = "$after" ] || tag=mixed
  local extra
  extra=$(printf ',"placement":"%s","placement_before":"%s","placement_after":"%s","busy_pct":%s,"mode":"%s"}' \
    "$tag" "$before" "$after" "$busy" "$mode")
  cat "$work/secondary.out" "$work/primary.out" | grep '^{"side"' | sed "s/}\$/${extra//\//\\/}/"
  if [ "$rc" -ne 0 ] || [ "$(cat "$work/secondary.out" "$work/primary.out" | grep -c '^{"side"')" -ne 4 ]; then
    bench_log "run $run incomplete (secondary exit $rc):"
    cat "$work/secondary.out" "$work/secondary.err" "$work/primary.out" "$work/primary.err" |
      grep -v '^{' | grep -v '^EAL: \(Detected\|Selected\|Multi-process socket\)' | tail -n 20 >&2 || true
    return 1
  fi
}

failed=0
for run in $(seq 1 "$runs"); do
  one_run "$run" || failed=$((failed + 1))
  cleanup
done
[ "$failed" -eq 0 ] || {
  bench_log "$failed of $runs runs failed"
  exit 1
}
