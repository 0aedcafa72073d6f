# shellcheck shell=bash
# What benches/vs-dpdk-af_packet.sh and vs-dpdk-af_xdp.sh share. Source it after setting ROOT,
# SHARED, NS, WORK, die() and the EXIT trap that removes the namespace: it builds symmetric_mp
# (the generator and shoal's DUT) and the c2c probe, makes the namespace $NS with two veth pairs
# (a0-b0, a1-b1, up, IPv6 off), and defines nsx, placement, cpu_busy and wait_line.

(cd "$ROOT" && cargo build --release -q -p shoal-apps --bin symmetric_mp)
SMP="$ROOT/target/release/symmetric_mp"
cc -O2 -pthread -o "$WORK/c2c" "$SHARED/tools/c2c_latency.c"

ip netns add "$NS"
nsx() { ip netns exec "$NS" "$@"; }
nsx sysctl -qw net.ipv6.conf.all.disable_ipv6=1
nsx sysctl -qw net.ipv6.conf.default.disable_ipv6=1
for p in 0 1; do
    nsx ip link add "a$p" type veth peer name "b$p"
    nsx ip link set "a$p" up
    nsx ip link set "b$p" up
done

# Median one-way c2c latency in ns over ~1.2 s.
placement() {
    local ns
    ns=$("$WORK/c2c" 1.2 200 | awk '{gsub("one-way=","",$2); print $2+0}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    if awk -v n="$ns" 'BEGIN{exit !(n < 80)}'; then echo near; else echo far; fi
}

cpu_busy() { awk '/^cpu /{print $2+$3+$4+$6+$7+$8, $5}' /proc/stat; }

wait_line() { # file pattern seconds
    local i=0
    while ! grep -q "$2" "$1" 2>/dev/null; do
        sleep 0.05; i=$((i + 1))
        [ $i -lt $(($3 * 20)) ] || { cat "$1" >&2; die "no \"$2\" within $3 s"; }
    done
}
