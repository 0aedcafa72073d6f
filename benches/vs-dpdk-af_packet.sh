#!/usr/bin/env bash
# net_af_packet receive and forward rates on veth pairs: shoal's symmetric_mp beside DPDK's
# dpdk-testpmd (Debian's DPDK 22.11), alternately in one run (shoal, DPDK, shoal, DPDK, ...).
#
#   sudo benches/vs-dpdk-af_packet.sh            # ROUNDS=3 SECS=5 by default
#
# Set-up (a network namespace of its own, removed on exit):
#   b0 --veth-- a0  [DUT]  a1 --veth-- b1
# A generator (symmetric_mp with a net_gen port forwarding into net_af_packet on b0, 64-byte
# UDP/TCP frames over 1024 flows, busy polling, lcore 0 = CPU 0) sends into a0 while a DUT is
# measured (it is stopped between runs, so that the placement probe has both CPUs). The device
# under test runs on CPU 1 and forwards a0 (net_af_packet) -> a1 (net_af_packet): everything it
# receives it sends. The rate is what reached b1 per second (the kernel's rx counter of b1);
# "offered" is what reached a0 (the generator's rate). A DUT that keeps up forwards all that
# is offered; the generator, one CPU doing its own sending and the kernel's delivery into the
# DUT's ring, is usually the limit on a 2-CPU machine.
# Both DUTs get the same rings (framesz=2048, framecnt=4096) and qdisc bypass.
#
# Prints one JSON object per case and run (see ../shared/benchmarking.md), each tagged with the
# placement the c2c probe measured just before and after it, then one line per case with the
# median ratio over runs whose tags agree (ratio = shoal rate / DPDK rate: above 1, shoal is
# faster).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared}
NS=shoal-bench-$$
WORK=$(mktemp -d /tmp/shoal-afp-bench.XXXXXX)

die() { echo "error: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, AF_PACKET)"
command -v dpdk-testpmd >/dev/null || die "dpdk-testpmd not found: apt-get install -y dpdk"

cleanup() {
    for p in $(jobs -p); do kill -9 "$p" 2>/dev/null || true; done
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# The generator and DUT binaries, the placement probe, the namespace with its two veth pairs,
# and the helpers both veth benches use.
# shellcheck source=benches/veth-bench.sh
source "$HERE/veth-bench.sh"

b1_rx() { nsx cat /sys/class/net/b1/statistics/rx_packets; }

RINGS="framesz=2048,framecnt=4096"

start_gen() {
    ip netns exec "$NS" "$SMP" -l 0 --no-huge -m 256 --file-prefix "gen-$$" --log-level warning \
        --vdev net_gen0,flows=1024,size=64 --vdev "net_af_packet1,iface=b0,$RINGS" \
        -- -p 0x3 --num-procs 1 --proc-id 0 --busy-poll >"$WORK/gen.log" 2>&1 &
    GEN=$!
    wait_line "$WORK/gen.log" "Finished Process Init" 20
}

stop_pid() { kill -INT "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

rx_of() { nsx cat "/sys/class/net/$1/statistics/rx_packets"; }

# run_one impl -> prints "<offered pps> <forwarded pps>", both from the kernel's counters of
# a0 (what the generator delivered) and b1 (what the DUT sent out) over the same window.
run_one() {
    local impl=$1 log="$WORK/$1.log" pid t0 t1 o0 o1 f0 f1
    if [ "$impl" = shoal ]; then
        ip netns exec "$NS" "$SMP" -l 1 --no-huge -m 256 --file-prefix "dut-$$" --log-level warning \
            --vdev "net_af_packet0,iface=a0,$RINGS" --vdev "net_af_packet1,iface=a1,$RINGS" \
            -- -p 0x3 --num-procs 1 --proc-id 0 --busy-poll >"$log" 2>&1 &
        pid=$!
        wait_line "$log" "Finished Process Init" 20
    else
        ip netns exec "$NS" dpdk-testpmd -l 0,1 --no-pci --no-huge -m 1024 --file-prefix "dpdk-$$" \
            --vdev "net_af_packet0,iface=a0,blocksz=4096,$RINGS" \
            --vdev "net_af_packet1,iface=a1,blocksz=4096,$RINGS" \
            -- --forward-mode=io --nb-cores=1 --rxq=1 --txq=1 --total-num-mbufs=32768 \
            --stats-period=1 >"$log" 2>&1 </dev/null &
        pid=$!
        wait_line "$log" "Port statistics" 30
    fi
    sleep 0.5
    t0=$(date +%s.%N); o0=$(rx_of a0); f0=$(rx_of b1)
    sleep "$SECS"
    t1=$(date +%s.%N); o1=$(rx_of a0); f1=$(rx_of b1)
    stop_pid "$pid"
    awk -v t0="$t0" -v t1="$t1" -v o0="$o0" -v o1="$o1" -v f0="$f0" -v f1="$f1" \
        'BEGIN { w = t1 - t0; printf "%.0f %.0f\n", (o1 - o0) / w, (f1 - f0) / w }'
}

declare -A RES
for r in $(seq 1 "$ROUNDS"); do
    for case in fwd; do
        for impl in shoal dpdk; do
            before=$(placement)
            # The generator runs only during a measurement: the probe needs both CPUs idle.
            start_gen
            read -r c0 i0 < <(cpu_busy)
            read -r offered pps < <(run_one "$impl")
            read -r c1 i1 < <(cpu_busy)
            stop_pid "$GEN"
            after=$(placement)
            tag=$before; [ "$before" = "$after" ] || tag="mixed"
            busy=$(awk -v a="$c0" -v b="$c1" -v c="$i0" -v d="$i1" 'BEGIN{printf "%.2f", (b-a)/((b-a)+(d-c)+1e-9)}')
            echo "{\"bench\":\"af_packet\",\"case\":\"$case 64B\",\"impl\":\"$impl\",\"round\":$r,\"unit\":\"pps\",\"rate\":$pps,\"offered_pps\":$offered,\"placement\":\"$tag\",\"cpu_busy\":$busy}"
            RES["$case,$impl,$r"]="$pps $tag"
        done
    done
done

for case in fwd; do
    ratios=()
    for r in $(seq 1 "$ROUNDS"); do
        read -r s st <<<"${RES["$case,shoal,$r"]}"
        read -r d dt <<<"${RES["$case,dpdk,$r"]}"
        [ "$st" = "$dt" ] && [ "$st" != mixed ] || continue
        ratios+=("$(awk -v s="$s" -v d="$d" 'BEGIN{printf "%.3f", (d>0 ? s/d : 0)}') $st $s $d")
    done
    if [ ${#ratios[@]} -eq 0 ]; then
        echo "{\"bench\":\"af_packet\",\"case\":\"$case 64B\",\"runs\":0,\"note\":\"no pair of runs with one placement\"}"
        continue
    fi
    printf '%s\n' "${ratios[@]}" | sort -n | awk -v c="$case" '{r[NR]=$1; p[NR]=$2; s[NR]=$3; d[NR]=$4}
        END { m = int((NR + 1) / 2);
              printf "{\"bench\":\"af_packet\",\"case\":\"%s 64B\",\"unit\":\"pps\",\"shoal\":%s,\"dpdk\":%s,\"ratio\":%s,\"placement\":\"%s\",\"runs\":%d,\"ratio_min\":%s}\n", c, s[m], d[m], r[m], p[m], NR, r[1] }'
done
