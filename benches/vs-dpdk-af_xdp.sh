#!/usr/bin/env bash
# net_af_xdp receive and forward rates on veth pairs: shoal's symmetric_mp on net_af_xdp beside
# dpdk-testpmd on DPDK's net_af_xdp (Debian's DPDK 22.11), and shoal's own net_af_packet for
# scale, alternately in one run (shoal, DPDK, shoal af_packet, shoal, DPDK, ...).
#
#   sudo benches/vs-dpdk-af_xdp.sh            # ROUNDS=3 SECS=5 by default
#
# Set-up (a network namespace of its own, removed on exit):
#   b0 --veth-- a0  [DUT]  a1 --veth-- b1
# A generator (symmetric_mp with a net_gen port forwarding into net_af_xdp on b0, 64-byte
# UDP/TCP frames over 1024 flows, busy polling, lcore 0 = CPU 0) sends into a0. The device under
# test runs on CPU 1:
#   fwd: a0 -> a1, everything it receives it sends; the rate is what reached b1 per second (the
#        kernel's rx counter of b1).
#   rx:  a0 -> a null port (shoal: net_null; DPDK: testpmd's rxonly mode); the rate is the
#        share of what reached a0 that the DUT counted as received (its own counters at exit),
#        times the rate that reached a0.
# "offered" is what reached a0 per second (a0's rx counter counts every frame its XDP program
# saw). On a 2-CPU machine the generator and the kernel's veth delivery share CPU 0, so the
# generator is often the limit: then a DUT that keeps up gets everything offered.
#
# Prints one JSON object per case and run (see ../shared/benchmarking.md), each tagged with the
# placement the c2c probe measured just before and after it, then one line per case with the
# median ratio over runs whose tags agree (ratio = shoal rate / DPDK rate: above 1, shoal is
# faster), and the median ratio of shoal's af_xdp to shoal's af_packet.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared}
NS=shoal-xbench-$$
WORK=$(mktemp -d /tmp/shoal-axdp-bench.XXXXXX)

die() { echo "error: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, AF_XDP, BPF)"
command -v dpdk-testpmd >/dev/null || die "dpdk-testpmd not found: apt-get install -y dpdk"

cleanup() {
    for p in $(jobs -p); do kill -9 "$p" 2>/dev/null || true; done
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK" "/var/run/dpdk/dpdk-$$"
}
trap cleanup EXIT

# The generator and DUT binaries, the placement probe, the namespace with its two veth pairs,
# and the helpers both veth benches use.
# shellcheck source=benches/veth-bench.sh
source "$HERE/veth-bench.sh"

rx_of() { nsx cat "/sys/class/net/$1/statistics/rx_packets"; }

start_gen() {
    ip netns exec "$NS" "$SMP" -l 0 --no-huge -m 256 --file-prefix "gen-$$" --log-level warning \
        --vdev net_gen0,flows=1024,size=64 --vdev net_af_xdp1,iface=b0 \
        -- -p 0x3 --num-procs 1 --proc-id 0 --busy-poll >"$WORK/gen.log" 2>&1 &
    GEN=$!
    wait_line "$WORK/gen.log" "Finished Process Init" 20
}

stop_pid() { kill -INT "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# run_one impl case -> prints "<offered pps> <rate pps>".
run_one() {
    local impl=$1 case=$2 log="$WORK/$1-$2.log" pid t0 t1 o0 o1 f0 f1 a_start a_end rx port1
    case "$impl" in
    shoal|shoal_af_packet)
        local drv=net_af_xdp
        [ "$impl" = shoal ] || drv=net_af_packet
        port1="--vdev ${drv}1,iface=a1"
        [ "$case" = rx ] && port1="--vdev net_null1"
        # shellcheck disable=SC2086
        ip netns exec "$NS" "$SMP" -l 1 --no-huge -m 256 --file-prefix "dut-$$" --log-level warning \
            --vdev "${drv}0,iface=a0" $port1 \
            -- -p 0x3 --num-procs 1 --proc-id 0 --busy-poll >"$log" 2>&1 &
        pid=$!
        wait_line "$log" "Finished Process Init" 20
        ;;
    dpdk)
        local mode=io
        [ "$case" = rx ] && mode=rxonly
        ip netns exec "$NS" dpdk-testpmd -l 0,1 --no-pci --no-huge -m 1024 --file-prefix "dpdk-$$" \
            --vdev net_af_xdp0,iface=a0 --vdev net_af_xdp1,iface=a1 \
            -- --forward-mode=$mode --nb-cores=1 --rxq=1 --txq=1 --total-num-mbufs=32768 \
            --stats-period=1 >"$log" 2>&1 </dev/null &
        pid=$!
        wait_line "$log" "Port statistics" 30
        ;;
    esac
    a_start=$(rx_of a0)
    start_gen
    sleep 0.5
    t0=$(date +%s.%N); o0=$(rx_of a0); f0=$(rx_of b1)
    sleep "$SECS"
    t1=$(date +%s.%N); o1=$(rx_of a0); f1=$(rx_of b1)
    stop_pid "$GEN"
    sleep 0.3
    a_end=$(rx_of a0)
    stop_pid "$pid"
    if [ "$impl" = dpdk ]; then
        # testpmd's closing "Forward statistics for port 0": its RX-packets.
        rx=$(awk '/Forward statistics for port 0/{f=1} f && /RX-packets:/{print $2; exit}' "$log")
    else
        rx=$(awk '/^Port 0: RX - /{gsub(",","",$5); print $5; exit}' "$log")
    fi
    [ -n "$rx" ] || { cat "$log" >&2; die "no receive count in $log"; }
    awk -v t0="$t0" -v t1="$t1" -v o0="$o0" -v o1="$o1" -v f0="$f0" -v f1="$f1" \
        -v rx="$rx" -v a0="$a_start" -v a1="$a_end" -v c="$case" \
        'BEGIN { w = t1 - t0; off = (o1 - o0) / w
                 if (c == "fwd") r = (f1 - f0) / w; else r = (a1 > a0 ? off * rx / (a1 - a0) : 0)
                 printf "%.0f %.0f\n", off, r }'
}

IMPLS="shoal dpdk shoal_af_packet"
CASES="rx fwd"
declare -A RES
for r in $(seq 1 "$ROUNDS"); do
    for case in $CASES; do
        for impl in $IMPLS; do
            before=$(placement)
            read -r c0 i0 < <(cpu_busy)
            read -r offered pps < <(run_one "$impl" "$case")
            read -r c1 i1 < <(cpu_busy)
            after=$(placement)
            tag=$before; [ "$before" = "$after" ] || tag="mixed"
            busy=$(awk -v a="$c0" -v b="$c1" -v c="$i0" -v d="$i1" 'BEGIN{printf "%.2f", (b-a)/((b-a)+(d-c)+1e-9)}')
            echo "{\"bench\":\"af_xdp\",\"case\":\"$case 64B\",\"impl\":\"$impl\",\"round\":$r,\"unit\":\"pps\",\"rate\":$pps,\"offered_pps\":$offered,\"placement\":\"$tag\",\"cpu_busy\":$busy}"
            RES["$case,$impl,$r"]="$pps $tag"
        done
    done
done

# summary NAME OTHER: median of shoal / OTHER over rounds whose placement tags agree.
summary() {
    local case=$1 other=$2 key=$3 ratios=() r s st d dt
    for r in $(seq 1 "$ROUNDS"); do
        read -r s st <<<"${RES["$case,shoal,$r"]}"
        read -r d dt <<<"${RES["$case,$other,$r"]}"
        [ "$st" = "$dt" ] && [ "$st" != mixed ] || continue
        ratios+=("$(awk -v s="$s" -v d="$d" 'BEGIN{printf "%.3f", (d>0 ? s/d : 0)}') $st $s $d")
    done
    if [ ${#ratios[@]} -eq 0 ]; then
        echo "{\"bench\":\"af_xdp\",\"case\":\"$case 64B\",\"vs\":\"$other\",\"runs\":0,\"note\":\"no pair of runs with one placement\"}"
        return
    fi
    printf '%s\n' "${ratios[@]}" | sort -n | awk -v c="$case" -v o="$other" -v k="$key" '{r[NR]=$1; p[NR]=$2; s[NR]=$3; d[NR]=$4}
        END { m = int((NR + 1) / 2);
              printf "{\"bench\":\"af_xdp\",\"case\":\"%s 64B\",\"unit\":\"pps\",\"shoal\":%s,\"%s\":%s,\"ratio\":%s,\"vs\":\"%s\",\"placement\":\"%s\",\"runs\":%d,\"ratio_min\":%s}\n", c, s[m], k, d[m], r[m], o, p[m], NR, r[1] }'
}
for case in $CASES; do
    summary "$case" dpdk dpdk
    summary "$case" shoal_af_packet shoal_af_packet
done
