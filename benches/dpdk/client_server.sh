#!/usr/bin/env bash
# DPDK's side of the client_server comparison: DPDK 22.11's own client_server_mp example (from
# dpdk-doc, built under /tmp), one server on CPU 0 and one client on CPU 1, two net_null ports.
# Prints the client's forwarding rate, from the server's own statistics, as one JSON line per run:
#   {"side":"dpdk","pps":N,"placement":"near|far|mixed",...}
#
# usage: benches/dpdk/client_server.sh [SECONDS=5] [RUNS=1]
# Each run takes about SECONDS + 6 s (EAL start-up, the server's first statistics 3 s in, warm-up,
# two placement probes). Needs root (hugepages, /var/run/dpdk) the first time.
# VSD_DEBUG=1 prints the statistics samples to stderr.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=benches/lib.sh
source "$here/../lib.sh"
export BENCH_LOG_TAG=client_server

secs=${1:-5}
runs=${2:-1}
if ! [[ $secs =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ] || [ "$secs" -gt 600 ] ||
  ! [[ $runs =~ ^[0-9]+$ ]] || [ "$runs" -lt 1 ] || [ "$runs" -gt 50 ]; then
  echo "usage: $0 [SECONDS=5 (1-600)] [RUNS=1 (1-50)]" >&2
  exit 2
fi

ensure_dpdk
ensure_hugepages 512

src=/usr/share/dpdk/examples/multi_process/client_server_mp
build=${VSD_BUILD_DIR:-/tmp/vsd-build}/client_server_mp
srv_bin=$build/mp_server/build/mp_server
cli_bin=$build/mp_client/build/mp_client

build_example() {
  mkdir -p "$(dirname "$build")"
  (
    flock -w 300 9 || exit 1
    if [ ! -x "$srv_bin" ] || [ ! -x "$cli_bin" ]; then
      bench_log "building DPDK's client_server_mp in $build"
      rm -rf "$build"
      cp -r "$src" "$build"
      timeout 300 make -s -C "$build/mp_server" >&2
      timeout 300 make -s -C "$build/mp_client" >&2
    fi
  ) 9>"$build.lock"
}
build_example

# Reads the server's statistics log ("EPOCH line" per line) and prints "EPOCH tx" for client 0.
client_tx_samples() {
  awk '/Client +0 - rx:/ { want = 1; next }
       want && /tx:/ { v = $0; sub(/.*tx: */, "", v); sub(/,.*/, "", v); print $1, v; want = 0 }' "$1"
}

# Prints a timestamp (seconds since the epoch, µs) before every line read.
stamp_lines() {
  local line
  while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done
}

prefix=""
srv_pid=""
cli_pid=""
work=$(mktemp -d /tmp/vsd-cs.XXXXXX)
cleanup() {
  local pids=()
  [ -n "$cli_pid" ] && pids+=("$cli_pid")
  [ -n "$srv_pid" ] && pids+=("$srv_pid")
  [ "${#pids[@]}" -gt 0 ] && stop_pids 3 "${pids[@]}"
  cli_pid="" srv_pid=""
  dpdk_cleanup "$prefix"
}
trap 'cleanup; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

one_run() {
  local run=$1 before after busy t_ready first_ts ts pps limit line
  prefix="vsd-$$-$run"
  local slog=$work/server-$run.log clog=$work/client-$run.log
  before=$(placement)
  cpu_busy_begin
  # The server's statistics thread runs only on a worker lcore, so lcore 1 is mapped onto CPU 0
  # beside the forwarding lcore 0: CPU 1 stays the client's. It wakes once a second.
  timeout $((secs + 40)) stdbuf -oL "$srv_bin" --lcores '0@0,1@0' --no-pci \
    --vdev net_null0 --vdev net_null1 --file-prefix "$prefix" -- -p 0x3 -n 1 \
    > >(stamp_lines >"$slog") 2>&1 &
  srv_pid=$!
  if ! wait_for_line "$slog" 'Finished Process Init' 20; then
    bench_log "server did not start; its log:"
    tail -n 20 "$slog" >&2
    return 1
  fi
  timeout $((secs + 40)) stdbuf -oL "$cli_bin" -l 1 --proc-type=secondary --no-pci \
    --file-prefix "$prefix" -- -n 0 >"$clog" 2>&1 &
  cli_pid=$!
  if ! wait_for_line "$clog" 'handling packets' 20; then
    bench_log "client did not start; its log:"
    tail -n 20 "$clog" >&2
    return 1
  fi
  t_ready=$EPOCHREALTIME
  # Window: from the first statistics sample at least 1 s after the client started, SECONDS long.
  limit=$((SECONDS + secs + 12))
  first_ts=""
  while [ "$SECONDS" -lt "$limit" ]; do
    sleep 0.25
    first_ts=$(client_tx_samples "$slog" | awk -v t="$t_ready" '$1 >= t + 1 { print $1; exit }')
    [ -n "$first_ts" ] || continue
    ts=$(client_tx_samples "$slog" | tail -n 1 | cut -d' ' -f1)
    awk -v a="$first_ts" -v b="$ts" -v s="$secs" 'BEGIN { exit !(b - a >= s - 0.05) }' && break
  done
  stop_pids 3 "$cli_pid" "$srv_pid"
  cli_pid="" srv_pid=""
  busy=$(cpu_busy_pct)
  after=$(placement)
  dpdk_cleanup "$prefix"
  pps=$(client_tx_samples "$slog" | awk -v t="$t_ready" -v s="$secs" '
    $1 >= t + 1 && !n { t0 = $1; x0 = $2; n = 1; next }
    n && $1 - t0 <= s + 0.5 { t1 = $1; x1 = $2; n++ }
    END { if (n >= 2 && t1 > t0) printf "%.0f\n", (x1 - x0) / (t1 - t0) }')
  if [ -n "${VSD_DEBUG:-}" ]; then
    bench_log "run $run: client ready at $t_ready; samples (epoch, client 0 tx):"
    client_tx_samples "$slog" >&2
  fi
  if [ -z "$pps" ]; then
    bench_log "run $run: fewer than two statistics samples in the window; server log:"
    tail -n 12 "$slog" >&2
    return 1
  fi
  local tag=$before
  [ "$before" = "$after" ] || tag=mixed
  line=$(printf '{"side":"dpdk","pps":%s,"placement":"%s","placement_before":"%s","placement_after":"%s","busy_pct":%s,"seconds":%s}' \
    "$pps" "$tag" "$before" "$after" "$busy" "$secs")
  echo "$line"
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
