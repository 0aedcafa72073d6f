#!/usr/bin/env bash
# DPDK's side of the symmetric comparison: DPDK 22.11's own symmetric_mp example (from dpdk-doc,
# built under /tmp), two processes (proc-id 0 on CPU 0, the primary; proc-id 1 on CPU 1), two
# net_null ports with one queue per process each. Prints the aggregate forwarding rate of the two
# processes as one JSON line per run:
#   {"side":"dpdk","pps":N,"pps_procs":[N0,N1],"drops":N,"placement":"near|far|mixed",...}
# and, first, the sample's configuration (from its source) as one JSON line:
#   {"side":"dpdk","config":{"burst":32,"nb_mbufs":65536,"cache":256,...}}
#
# usage: benches/dpdk/symmetric_mp.sh [SECONDS=5] [RUNS=1]
# The sample prints its counters only on SIGINT, so each process's rate is its packets sent over
# its whole forwarding time (symmetric_pair in ../lib.sh); its counters are 32-bit, which at ~50
# Mpps wrap after ~80 s, hence SECONDS <= 60. Each run takes about SECONDS + 5 s. Needs root
# (hugepages, /var/run/dpdk) the first time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=benches/lib.sh
source "$here/../lib.sh"
export BENCH_LOG_TAG=symmetric_mp

secs=${1:-5}
runs=${2:-1}
if ! [[ $secs =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ] || [ "$secs" -gt 60 ] ||
  ! [[ $runs =~ ^[0-9]+$ ]] || [ "$runs" -lt 1 ] || [ "$runs" -gt 50 ]; then
  echo "usage: $0 [SECONDS=5 (1-60)] [RUNS=1 (1-50)]" >&2
  exit 2
fi

ensure_dpdk
ensure_hugepages 512

src=/usr/share/dpdk/examples/multi_process/symmetric_mp
build=${VSD_BUILD_DIR:-/tmp/vsd-build}/symmetric_mp
bin=$build/build/symmetric_mp

build_example() {
  mkdir -p "$(dirname "$build")"
  (
    flock -w 300 9 || exit 1
    if [ ! -x "$bin" ]; then
      bench_log "building DPDK's symmetric_mp in $build"
      rm -rf "$build"
      cp -r "$src" "$build"
      timeout 300 make -s -C "$build" >&2
    fi
  ) 9>"$build.lock"
}
build_example

# The sample's own constants, as built.
config_line() {
  awk '$1 == "#define" && $2 ~ /^(NB_MBUFS|MBUF_CACHE_SIZE|PKT_BURST|RX_RING_SIZE|TX_RING_SIZE)$/ {
         v = $3; for (i = 4; i <= NF && $i !~ /^\/\*/; i++) v = v $i; gsub(/\*/, " * ", v)
         n = split(v, f, " \\* "); x = 1; for (i = 1; i <= n; i++) x *= f[i]; c[$2] = x }
       END { printf "{\"side\":\"dpdk\",\"config\":{\"burst\":%d,\"nb_mbufs\":%d,\"cache\":%d,\"data_room\":2176,\"rx_ring\":\"%d (net_null ignores it)\",\"tx_ring\":\"%d\",\"queues_per_port\":2,\"lcores\":\"proc-id 0: -l 0, proc-id 1: -l 1\",\"ports\":\"net_null0, net_null1\",\"busy_poll\":\"yes (always)\"}}\n",
               c["PKT_BURST"], c["NB_MBUFS"], c["MBUF_CACHE_SIZE"], c["RX_RING_SIZE"], c["TX_RING_SIZE"] }' "$build/main.c"
}

prefix=""
work=$(mktemp -d /tmp/vsd-smp.XXXXXX)
cleanup() {
  [ "${#SYM_PIDS[@]}" -gt 0 ] && stop_pids 3 "${SYM_PIDS[@]}"
  SYM_PIDS=()
  dpdk_cleanup "$prefix"
}
trap 'cleanup; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

one_run() {
  local run=$1 before after busy res tag
  prefix="vsd-$$-$run"
  mkdir -p "$work/$run"
  before=$(placement)
  cpu_busy_begin
  # Not in a command substitution: SYM_PIDS must stay visible to cleanup.
  symmetric_pair "$secs" "$work/$run" \
    "$bin" -l 0 --proc-type=primary --no-pci --vdev net_null0 --vdev net_null1 \
    --file-prefix "$prefix" -- -p 0x3 --num-procs=2 --proc-id=0 \
    ::: "$bin" -l 1 --proc-type=secondary --no-pci --file-prefix "$prefix" \
    -- -p 0x3 --num-procs=2 --proc-id=1 >"$work/$run/result" || {
    bench_log "run $run failed"
    return 1
  }
  busy=$(cpu_busy_pct)
  after=$(placement)
  dpdk_cleanup "$prefix"
  tag=$before
  [ "$before" = "$after" ] || tag=mixed
  res=$(cat "$work/$run/result")
  # shellcheck disable=SC2086
  set -- $res
  printf '{"side":"dpdk","pps":%s,"pps_procs":[%s,%s],"drops":%s,"placement":"%s","placement_before":"%s","placement_after":"%s","busy_pct":%s,"seconds":%s}\n' \
    "$1" "$2" "$3" "$4" "$tag" "$before" "$after" "$busy" "$secs"
}

config_line
failed=0
for run in $(seq 1 "$runs"); do
  one_run "$run" || failed=$((failed + 1))
  cleanup
done
[ "$failed" -eq 0 ] || {
  bench_log "$failed of $runs runs failed"
  exit 1
}
