#!/usr/bin/env bash
# net_memif throughput, 64-byte frames, one queue: DPDK's dpdk-testpmd (Debian's DPDK 22.11) and
# shoal's benches/src/bin/memif_perf.rs on each side of the link, alternately in one run.
#
#   benches/vs-dpdk-memif.sh            # ROUNDS=3 SECS=4 by default; or benches/vs-dpdk.sh memif
#
# Each round measures four links, the receiver always the memif server on CPU 1 and the
# sender the client on CPU 0 (testpmd --forward-mode=rxonly / txonly; memif_perf rx / tx):
#   dpdk>dpdk    testpmd  -> testpmd   (the baseline)
#   dpdk>shoal   testpmd  -> shoal     (shoal receiving)
#   shoal>dpdk   shoal    -> testpmd   (shoal sending)
#   shoal>shoal  shoal    -> shoal
# The rate is the receiver's median per-second count over the run (first second left out).
# Each run is tagged with the placement of the two vCPUs (lib.sh's c2c probe, before and
# after); a round's ratios (case rate / dpdk>dpdk rate: above 1, shoal is faster) are kept
# only when all its runs have one placement and other processes used at most OTHERS_MAX percent
# of the machine during each (default 20: the machine is shared). One JSON line per run, then
# one per case with the median ratio over the rounds kept.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-4}
OTHERS_MAX=${OTHERS_MAX:-20}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
work=$(mktemp -d /tmp/shoal-memif-bench.XXXXXX)
# shellcheck source=benches/lib.sh
source "$here/lib.sh"
BENCH_LOG_TAG=memif

pids=()
cleanup() {
    local p
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    rm -rf /var/run/dpdk/memifb-$$-* "$work" 2>/dev/null || true
    rm -rf /var/run/shoal/memifb-$$-* /dev/shm/shoal_memifb-$$-* 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd not found: apt-get install -y dpdk" >&2; exit 1; }
(cd "$root" && cargo build --release -q -p shoal-benches --bin memif_perf)
PERF="$root/target/release/memif_perf"

wait_line() { # file pattern seconds
    local i=0
    while ! grep -q "$2" "$1" 2>/dev/null; do
        sleep 0.05
        i=$((i + 1))
        [ $i -lt $(($3 * 20)) ] || { cat "$1" >&2; echo "memif: no \"$2\" within $3 s" >&2; return 1; }
    done
}

n=0
# start impl role(server|client) cpu sock log -> pid in $started
start() {
    local impl=$1 role=$2 cpu=$3 sock=$4 log=$5 vdev
    n=$((n + 1))
    vdev="net_memif0,role=$role,socket=$sock"
    if [ "$impl" = dpdk ]; then
        local mode=rxonly lcores="0,1"
        [ "$role" = client ] && mode=txonly
        # The forwarding lcore is the one that is not the main lcore.
        [ "$cpu" = 0 ] && lcores="1,0"
        stdbuf -oL dpdk-testpmd -l "$lcores" --main-lcore "${lcores%%,*}" --no-pci --no-huge -m 512 \
            --file-prefix "memifb-$$-$n" --vdev "$vdev" -- --forward-mode=$mode --nb-cores=1 \
            --total-num-mbufs=16384 --no-mlockall --stats-period=1 --no-flush-rx >"$log" 2>&1 </dev/null &
        started=$!
        wait_line "$log" "Port statistics" 30
    else
        local what=rx
        [ "$role" = client ] && what=tx
        "$PERF" -l "$cpu" --no-huge -m 256 --file-prefix "memifb-$$-$n" --log-level warning \
            --vdev "$vdev" -- "$what" >"$log" 2>&1 </dev/null &
        started=$!
        wait_line "$log" "memif_perf ready" 30
    fi
    pids+=("$started")
}

stop() { kill -INT "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# median of the receiver's Rx-pps lines, the first left out
rate_of() {
    grep -o 'Rx-pps: *[0-9]*' "$1" | awk '{print $2}' | tail -n +2 | sort -n |
        awk '{a[NR]=$1} END {if (NR == 0) print 0; else print a[int((NR+1)/2)]}'
}

# run rx_impl tx_impl -> "<pps> <placement>"
run() {
    local rx=$1 tx=$2 sock="shoal-memifb-$$-$n" before after srv cli
    before=$(placement || true)
    cpu_busy_begin
    start "$rx" server 1 "$sock" "$work/srv.log"
    srv=$started
    start "$tx" client 0 "$sock" "$work/cli.log"
    cli=$started
    sleep "$SECS"
    stop "$cli"
    stop "$srv"
    local others
    others=$(cpu_busy_pct || echo 100)
    after=$(placement || true)
    local tag=$before
    [ "$before" = "$after" ] || tag=mixed
    awk -v o="$others" -v m="$OTHERS_MAX" 'BEGIN { exit !(o + 0 > m + 0) }' && tag=busy
    echo "$(rate_of "$work/srv.log") $tag $others"
}

declare -A RES
cases=("dpdk dpdk dpdk>dpdk" "shoal dpdk dpdk>shoal" "dpdk shoal shoal>dpdk" "shoal shoal shoal>shoal")
for r in $(seq 1 "$ROUNDS"); do
    for c in "${cases[@]}"; do
        read -r rx tx name <<<"$c"
        run "$rx" "$tx" >"$work/res"
        read -r pps tag others <"$work/res"
        echo "{\"bench\":\"memif\",\"case\":\"$name 64B\",\"round\":$r,\"unit\":\"pps\",\"rate\":$pps,\"placement\":\"$tag\",\"others_cpu_pct\":$others}"
        RES["$name,$r"]="$pps $tag"
    done
done

for c in "${cases[@]:1}"; do
    read -r _ _ name <<<"$c"
    rows=()
    for r in $(seq 1 "$ROUNDS"); do
        read -r s st <<<"${RES["$name,$r"]}"
        read -r d dt <<<"${RES["dpdk>dpdk,$r"]}"
        [ "$st" = "$dt" ] && [ "$st" != mixed ] && [ "$st" != unknown ] && [ "$st" != busy ] || continue
        rows+=("$(awk -v s="$s" -v d="$d" 'BEGIN{printf "%.3f", (d > 0 ? s / d : 0)}') $st $s $d")
    done
    if [ ${#rows[@]} -eq 0 ]; then
        echo "{\"bench\":\"memif\",\"case\":\"$name 64B\",\"runs\":0,\"note\":\"no round with one placement and a quiet machine\"}"
        continue
    fi
    printf '%s\n' "${rows[@]}" | sort -n | awk -v c="$name" '{r[NR]=$1; p[NR]=$2; s[NR]=$3; d[NR]=$4}
        END { m = int((NR + 1) / 2);
              printf "{\"bench\":\"memif\",\"case\":\"%s 64B\",\"unit\":\"pps\",\"shoal\":%s,\"dpdk\":%s,\"ratio\":%s,\"placement\":\"%s\",\"runs\":%d,\"ratio_min\":%s}\n", c, s[m], d[m], r[m], p[m], NR, r[1] }'
done
