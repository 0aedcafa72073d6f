#!/usr/bin/env bash
# vs-dpdk.sh NAME: runs DPDK 22.11's benchmark NAME and shoal's counterpart alternately in one
# run (DPDK, shoal, DPDK, shoal, ...), tags every run with the vCPU placement (near/far) from a
# cache-line ping-pong before and after it, and prints one JSON line per case with the median
# of each side over the runs of the same placement, the ratio DPDK time / shoal time (above 1:
# shoal is faster), and a summary line. See ../shared/benchmarking.md.
#
#   benches/vs-dpdk.sh ring          # ring_perf_autotest vs benches/src/bin/ring_perf.rs
#   benches/vs-dpdk.sh mempool       # mempool_perf_autotest's loop vs benches/src/bin/mempool_perf.rs
#
# mempool: dpdk-test's mempool_perf_autotest runs every case for 5 s (about an hour in all, with
# the cases we compare in its last third), so by default DPDK's side is benches/dpdk/mempool_perf.c:
# the same loop on DPDK's own library (rte_mempool_generic_get/put, default cache, ring_mp_mc)
# built here against libdpdk-dev, on the cases and for the time per case we choose (MEMPOOL_SECS,
# default 1). Both sides run on normal pages (--no-huge), since huge pages are shared and often
# short on these machines. MEMPOOL_DPDK=autotest runs dpdk-test mempool_perf_autotest itself instead, cut by
# RUN_TIMEOUT, and compares the cases it printed. Shoal's side also runs every case on pools
# without owner tags (NO_OWNER_TAGS); the report ends with what the tracking costs.
#
# Before each run it waits (QUIET_WAIT seconds, default 60) for other processes to use under 25%
# of the machine; a run during which other processes used more than OTHERS_MAX CPUs (default
# 0.10, from /proc/stat) is discarded, and so are rows whose probes say `busy`.
#
# DPDK's runs are tagged by probes before and after the whole run (its two-core cases sit in
# the middle), ours by probes right around the two-core cases, so a placement flip inside a
# DPDK run can go unseen: a two-core row needs MIN_RUNS runs of each side (default 2), and the
# median absorbs a stray one.
#
# Environment: PAIRS (default 5), BUDGET seconds after which no new pair starts (default 1200),
# RUN_TIMEOUT seconds per run (default 240), QUIET_WAIT, OTHERS_MAX, MIN_RUNS, KEEP_LOGS=1 keeps
# the raw logs (their directory is printed on stderr).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
PAIRS=${PAIRS:-5}
BUDGET=${BUDGET:-1200}
RUN_TIMEOUT=${RUN_TIMEOUT:-240}
OTHERS_MAX=${OTHERS_MAX:-0.10}
MIN_RUNS=${MIN_RUNS:-2}
work=$(mktemp -d /tmp/vs-dpdk.XXXXXX)
prefixes=()

log() { echo "vs-dpdk: $*" >&2; }

cleanup() {
    local p
    for p in "${prefixes[@]:-}"; do
        [ -n "$p" ] || continue
        rm -rf "/var/run/dpdk/$p" "${XDG_RUNTIME_DIR:-/nonexistent}/dpdk/$p" 2>/dev/null || true
    done
    if [ "${KEEP_LOGS:-0}" = 1 ]; then
        log "logs kept in $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi
}

# Debian's DPDK 22.11: dpdk-test (with ring_perf_autotest) is in dpdk-dev.
ensure_dpdk() {
    command -v dpdk-test >/dev/null && return 0
    log "installing Debian's dpdk and dpdk-dev"
    export DEBIAN_FRONTEND=noninteractive
    timeout 900 as_root apt-get install -y dpdk dpdk-dev >"$work/apt.log" 2>&1 ||
        { timeout 300 as_root apt-get update >>"$work/apt.log" 2>&1 &&
          timeout 900 as_root apt-get install -y dpdk dpdk-dev >>"$work/apt.log" 2>&1; } ||
        { tail -20 "$work/apt.log" >&2; log "cannot install dpdk-dev"; exit 1; }
    command -v dpdk-test >/dev/null || { log "dpdk-test missing after install"; exit 1; }
}

# Builds a benches binary with the bench profile (lto) and prints its path.
build_bench() {
    local bin=$1
    (cd "$root" && timeout 1200 cargo build --profile bench -p shoal-benches --bin "$bin" \
        --message-format=json-render-diagnostics) |
        python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])
' "$bin" | tail -1
}

# Parses dpdk-test's ring_perf_autotest output into our JSON case lines (ns from the EAL's TSC
# rate). One-core rows are cycles per enqueue+dequeue of a whole burst: divided by the burst.
# Two-core rows are already per element. Empty-dequeue rows are per call.
parse_dpdk_ring() {
    python3 - "$1" "$2" <<'PY'
import json, re, sys
log, placement = sys.argv[1], sys.argv[2]
text = open(log, errors="replace").read()
m = re.search(r"TSC frequency is ~(\d+) KHz", text)
if not m:
    sys.exit("no TSC frequency in the DPDK log (was --log-level=lib.eal:debug given?)")
ghz = int(m.group(1)) / 1e6
section = None
line_re = re.compile(r"^(legacy APIs|elem APIs: element size (\d+)B): (SP/SC|MP/MC): "
                     r"(single|burst|bulk)(?: \(size: (\d+)\))?: ([\d.]+)\s*$")
for line in text.splitlines():
    if line.startswith("###"):
        section = line
        continue
    r = line_re.match(line.strip())
    if not r or section is None:
        continue
    esize = int(r.group(2) or 8)
    mode, api, size, cyc = r.group(3), r.group(4), int(r.group(5) or 1), float(r.group(6))
    ns = cyc / ghz
    if "single element" in section:
        case, unit = f"{mode} single one-core {esize}B", "ns/elem"
    elif "empty bulk deq" in section:
        case, unit = f"{mode} empty-dequeue bulk {size} one-core {esize}B", "ns/call"
    elif "burst enq/deq" in section or "bulk enq/deq" in section:
        case, unit, ns = f"{mode} {api} {size} one-core {esize}B", "ns/elem", ns / size
    elif "two physical cores" in section:
        case, unit = f"{mode} bulk {size} two-cores {esize}B", "ns/elem"
    else:
        continue  # hyperthreads / NUMA / all-cores sections do not exist or carry no times
    print(json.dumps({"bench": "ring_perf", "case": case, "unit": unit, "dpdk": round(ns, 3),
                      "placement": placement}))
PY
}

# Percentage of the machine's CPU time used over one second while this script sleeps, i.e. by
# other processes (/proc/stat).
cpu_busy() {
    python3 - <<'PY'
import time
def snap():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(f), f[3] + f[4]
t0, i0 = snap(); time.sleep(1); t1, i1 = snap()
print(round(100 * (1 - (i1 - i0) / max(t1 - t0, 1))))
PY
}

# Waits (at most QUIET_WAIT seconds, default 60) until other processes use under 25% of the
# machine; prints the last busy figure.
wait_quiet() {
    local busy waited=0
    busy=$(cpu_busy)
    while [ "$busy" -ge 25 ] && [ "$waited" -lt "${QUIET_WAIT:-60}" ]; do
        sleep 2
        waited=$((waited + 3))
        busy=$(cpu_busy)
    done
    echo "$busy"
}

# measured LOG CMD...: runs CMD with its output in
# LOG and prints the CPU time other processes used meanwhile, in CPUs (busy time of the machine
# from /proc/stat minus the command's own user+system time, over the wall time). Exits with
# the command's status.
measured() {
    python3 - "$@" <<'PY'
import os, subprocess, sys, time
def busy():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(f) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")
log, cmd = sys.argv[1], sys.argv[2:]
b0, t0 = busy(), time.monotonic()
with open(log, "wb") as out:
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
b1, t1 = busy(), time.monotonic()
own = ru.ru_utime + ru.ru_stime
print(f"{max(0.0, (b1 - b0 - own) / max(t1 - t0, 1e-3)):.2f}")
sys.exit(os.waitstatus_to_exitcode(status) & 0xff)
PY
}

# Placement tag of one probe line printed by ring_perf --probe-only.
probe_tag() {
    timeout 60 "$1" --probe-only 2>/dev/null |
        python3 -c 'import json,sys; print(json.loads(sys.stdin.read() or "{}").get("placement","unknown"))' ||
        echo unknown
}

# Median per case of both sides, ratio, summary: two-core cases per placement (near, far),
# one-core cases over all undisturbed runs ("any": they do not depend on the placement).
report() {
    python3 - "$work/results.jsonl" "$MIN_RUNS" <<'PY'
import json, statistics, sys
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
min_runs = int(sys.argv[2])
vals = defaultdict(lambda: {"shoal": [], "dpdk": []})
units, cases = {}, []
for r in rows:
    side = "shoal" if "shoal" in r else "dpdk"
    vals[(r["case"], r["placement"])][side].append(r[side])
    units[r["case"]] = r["unit"]
    if r["case"] not in cases:
        cases.append(r["case"])
out = []
for case in cases:
    if "one-core" in case:
        # One-core figures do not depend on the placement: pool every undisturbed run.
        v = {"shoal": [], "dpdk": []}
        for (c, _), s in vals.items():
            if c == case:
                v["shoal"] += s["shoal"]
                v["dpdk"] += s["dpdk"]
        if v["shoal"] and v["dpdk"]:
            out.append((case, "any", v))
            continue
    else:
        found = False
        for place in ("near", "far"):
            v = vals.get((case, place))
            if v and min(len(v["shoal"]), len(v["dpdk"])) >= min_runs:
                out.append((case, place, v))
                found = True
            elif v and (v["shoal"] or v["dpdk"]):
                print(f"vs-dpdk: {case} {place}: {len(v['shoal'])} shoal and {len(v['dpdk'])} dpdk "
                      f"runs, fewer than {min_runs}: not compared", file=sys.stderr)
        if found:
            continue
    print(f"vs-dpdk: {case}: no DPDK and shoal runs to compare", file=sys.stderr)
ratios = []
for case, place, v in out:
    s, d = statistics.median(v["shoal"]), statistics.median(v["dpdk"])
    ratio = d / s if s > 0 else float("inf")
    ratios.append(ratio)
    print(json.dumps({"bench": "ring_perf", "case": case, "unit": units[case], "shoal": round(s, 3),
                      "dpdk": round(d, 3), "ratio": round(ratio, 2), "placement": place,
                      "runs": [len(v["shoal"]), len(v["dpdk"])]}))
if ratios:
    print(json.dumps({"bench": "ring_perf", "cases": len(ratios), "ratio_min": round(min(ratios), 2),
                      "ratio_median": round(statistics.median(ratios), 2)}))
else:
    print(json.dumps({"bench": "ring_perf", "cases": 0}))
    sys.exit(1)
PY
}

run_ring() {
    ensure_dpdk
    local shoal_bin
    shoal_bin=$(build_bench ring_perf)
    [ -x "$shoal_bin" ] || { log "cannot build ring_perf"; exit 1; }
    : >"$work/results.jsonl"
    local i before after prefix busy others
    for i in $(seq 1 "$PAIRS"); do
        if [ "$SECONDS" -ge "$BUDGET" ]; then
            log "time budget of ${BUDGET}s spent after $((i - 1)) pairs"
            break
        fi
        # DPDK: ring_perf_autotest, tagged by our probe before and after.
        prefix="vsd-$$-$i"
        prefixes+=("$prefix")
        busy=$(wait_quiet)
        before=$(probe_tag "$shoal_bin")
        log "pair $i: dpdk (placement before: $before, others' CPU ${busy}%)"
        if others=$(DPDK_TEST=ring_perf_autotest measured "$work/dpdk-$i.log" timeout -k 10 "$RUN_TIMEOUT" \
            stdbuf -oL dpdk-test --no-huge -m 512 --no-pci --file-prefix "$prefix" -l 0-1 \
            --log-level=lib.eal:debug); then
            after=$(probe_tag "$shoal_bin")
            log "pair $i: dpdk done (placement after: $after, others used $others CPUs)"
            # Two-core rows need one placement throughout; one-core rows (which do not depend
            # on it) only an undisturbed machine.
            if awk "BEGIN{exit !($others > $OTHERS_MAX)}"; then
                log "pair $i: dpdk run discarded (other processes used $others CPUs meanwhile)"
                after=busy
            fi
            case "$before/$after" in
            near/near | far/far) parse_dpdk_ring "$work/dpdk-$i.log" "$before" >>"$work/results.jsonl" ;;
            near/far | far/near)
                log "pair $i: dpdk placement changed ($before -> $after): one-core rows only"
                parse_dpdk_ring "$work/dpdk-$i.log" mixed | grep one-core >>"$work/results.jsonl" || true
                ;;
            *) log "pair $i: dpdk run discarded (placement $before -> $after)" ;;
            esac
        else
            log "pair $i: dpdk-test failed or timed out; last lines:"
            tail -5 "$work/dpdk-$i.log" >&2 || true
        fi
        rm -rf "/var/run/dpdk/$prefix" "${XDG_RUNTIME_DIR:-/nonexistent}/dpdk/$prefix" 2>/dev/null || true

        # shoal: ring_perf probes itself around its one-core and its two-core cases; rows tagged
        # busy or unknown are discarded, and two-core rows need near or far.
        busy=$(wait_quiet)
        log "pair $i: shoal (others' CPU ${busy}%)"
        if others=$(measured "$work/shoal-$i.log" timeout -k 10 "$RUN_TIMEOUT" "$shoal_bin"); then
            log "pair $i: shoal done (others used $others CPUs)"
            if awk "BEGIN{exit !($others > $OTHERS_MAX)}"; then
                log "pair $i: shoal run discarded (other processes used $others CPUs meanwhile)"
                continue
            fi
            { grep '"bench":"ring_perf"' "$work/shoal-$i.log" | grep -E '"placement":"(near|far)"'
              grep '"bench":"ring_perf"' "$work/shoal-$i.log" | grep one-core | grep '"placement":"mixed"'
            } >>"$work/results.jsonl" || true
            if grep -q '"placement":"\(busy\|unknown\)"' "$work/shoal-$i.log"; then
                log "pair $i: shoal rows discarded ($(grep -o '"placement":"[a-z]*"' "$work/shoal-$i.log" | sort | uniq -c | tr -s ' \n' ' '))"
            fi
        else
            log "pair $i: ring_perf failed or timed out"
            tail -5 "$work/shoal-$i.log" >&2 || true
        fi
    done
    report
}

# Parses mempool_perf_autotest lines (ours or dpdk-test's, constant_n=0 only) into case lines.
parse_dpdk_mempool() {
    python3 - "$1" "$2" <<'PY'
import json, re, sys
log, placement = sys.argv[1], sys.argv[2]
line_re = re.compile(r"mempool_autotest cache=(\d+) cores=(\d+) n_get_bulk=(\d+) n_put_bulk=(\d+) "
                     r"n_keep=(\d+) constant_n=0 rate_persec=(\d+)")
for m in line_re.finditer(open(log, errors="replace").read()):
    cache, cores, get, put, keep, rate = m.groups()
    if int(rate) == 0:
        continue
    case = f"cache={cache} cores={cores} n_get_bulk={get} n_put_bulk={put} n_keep={keep}"
    print(json.dumps({"bench": "mempool_perf", "case": case, "unit": "ns/obj",
                      "dpdk": round(1e9 / int(rate), 3), "placement": placement}))
PY
}

# Median per (case, placement) of both sides, ratio, tracking cost, summary. Cases where the two
# cores share nothing (one core; two cores each on its own cache) do not depend on the vCPU
# placement: every run counts ("any"). The others (two cores on the common ring) compare runs
# of the same placement only.
report_mempool() {
    python3 - "$work/results.jsonl" <<'PY'
import json, statistics, sys
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def shared(case):
    return "cores=2" in case and "cache=0 " in case
vals = defaultdict(lambda: {"shoal": [], "dpdk": []})
cases = []
for r in rows:
    side = "shoal" if "shoal" in r else "dpdk"
    place = r["placement"]
    if shared(r["case"]):
        if place not in ("near", "far"):
            continue
    else:
        place = "any"
    vals[(r["case"], place)][side].append(r[side])
    if r["case"] not in cases:
        cases.append(r["case"])
ratios, costs = [], []
for case in cases:
    if case.endswith(" untracked"):
        continue
    for place in ("any", "near", "far"):
        v = vals.get((case, place))
        if not v or not v["shoal"]:
            continue
        s = statistics.median(v["shoal"])
        line = {"bench": "mempool_perf", "case": case, "unit": "ns/obj", "shoal": round(s, 3),
                "placement": place}
        if v["dpdk"]:
            d = statistics.median(v["dpdk"])
            line.update({"dpdk": round(d, 3), "ratio": round(d / s, 2)})
            ratios.append(d / s)
        u = vals.get((case + " untracked", place))
        if u and u["shoal"]:
            su = statistics.median(u["shoal"])
            line["untracked"] = round(su, 3)
            line["tracking_cost_pct"] = round(100 * (s / su - 1), 1)
            costs.append(s / su - 1)
        line["runs"] = [len(v["shoal"]), len(v["dpdk"])]
        print(json.dumps(line))
summary = {"bench": "mempool_perf", "cases": len(ratios)}
if ratios:
    summary.update({"ratio_min": round(min(ratios), 2), "ratio_median": round(statistics.median(ratios), 2)})
if costs:
    summary["tracking_cost_median_pct"] = round(100 * statistics.median(costs), 1)
print(json.dumps(summary))
if not ratios:
    sys.exit(1)
PY
}

# Our DPDK harness, built against Debian's libdpdk-dev.
build_dpdk_mempool() {
    local out="$work/mempool_perf_dpdk"
    command -v pkg-config >/dev/null && pkg-config --exists libdpdk ||
        { log "libdpdk-dev (pkg-config libdpdk) is needed for the DPDK side"; exit 1; }
    # shellcheck disable=SC2046
    cc -O3 -o "$out" "$here/dpdk/mempool_perf.c" $(pkg-config --cflags --libs libdpdk) >&2 ||
        { log "cannot build benches/dpdk/mempool_perf.c"; exit 1; }
    echo "$out"
}

run_mempool() {
    ensure_dpdk
    local shoal_bin dpdk_bin secs=${MEMPOOL_SECS:-1} cases=""
    shoal_bin=$(build_bench mempool_perf)
    [ -x "$shoal_bin" ] || { log "cannot build mempool_perf"; exit 1; }
    if [ "${MEMPOOL_DPDK:-harness}" != autotest ]; then
        dpdk_bin=$(build_dpdk_mempool)
    fi
    local cache cores b k
    for cache in 0 512; do for cores in 1 2; do for b in 1 4 32; do for k in 32 128; do
        cases="$cases $cache $cores $b $b $k"
    done; done; done; done
    : >"$work/results.jsonl"
    local i before after prefix busy
    for i in $(seq 1 "$PAIRS"); do
        if [ "$SECONDS" -ge "$BUDGET" ]; then
            log "time budget of ${BUDGET}s spent after $((i - 1)) pairs"
            break
        fi
        prefix="vsd-$$-$i"
        prefixes+=("$prefix")
        busy=$(wait_quiet)
        before=$(probe_tag "$shoal_bin")
        log "pair $i: dpdk (placement before: $before, others' CPU ${busy}%)"
        local ok=0
        if [ "${MEMPOOL_DPDK:-harness}" = autotest ]; then
            DPDK_TEST=mempool_perf_autotest timeout -k 10 "$RUN_TIMEOUT" stdbuf -oL dpdk-test --no-huge -m 512 \
                --no-pci --file-prefix "$prefix" -l 0-1 </dev/null >"$work/dpdk-$i.log" 2>&1
            # A timeout is expected: the cases printed so far are what we compare.
            ok=1
        else
            # shellcheck disable=SC2086
            timeout -k 10 "$RUN_TIMEOUT" stdbuf -oL "$dpdk_bin" -l 0-1 --no-huge -m 256 --no-pci \
                --file-prefix "$prefix" --log-level=warning -- "$secs" $cases \
                </dev/null >"$work/dpdk-$i.log" 2>&1 && ok=1
        fi
        if [ "$ok" = 1 ]; then
            after=$(probe_tag "$shoal_bin")
            local tag=mixed
            [ "$before" = "$after" ] && tag=$before
            if [ "$before" = busy ] || [ "$after" = busy ] || [ "$tag" = unknown ]; then
                log "pair $i: dpdk run discarded (placement $before -> $after)"
            else
                parse_dpdk_mempool "$work/dpdk-$i.log" "$tag" >>"$work/results.jsonl"
            fi
        else
            log "pair $i: the DPDK mempool benchmark failed or timed out; last lines:"
            tail -5 "$work/dpdk-$i.log" >&2 || true
        fi
        rm -rf "/var/run/dpdk/$prefix" "${XDG_RUNTIME_DIR:-/nonexistent}/dpdk/$prefix" 2>/dev/null || true

        busy=$(wait_quiet)
        log "pair $i: shoal (others' CPU ${busy}%)"
        if timeout -k 10 "$RUN_TIMEOUT" "$shoal_bin" -l 0-1 --no-huge -m 256 --file-prefix "vss-$$-$i" \
            --log-level warning -- --secs "$secs" >"$work/shoal-$i.log" 2>&1; then
            grep '"bench":"mempool_perf"' "$work/shoal-$i.log" | grep -E '"placement":"(near|far|mixed)"' \
                >>"$work/results.jsonl" ||
                log "pair $i: shoal run discarded ($(grep -o '"placement":"[a-z]*"' "$work/shoal-$i.log" | sort -u | tr '\n' ' '))"
        else
            log "pair $i: mempool_perf failed or timed out"
            tail -5 "$work/shoal-$i.log" >&2 || true
        fi
    done
    report_mempool
}

case "${1:-}" in
ring) run_ring ;;
mempool) run_mempool ;;
*)
    echo "usage: $0 ring|mempool" >&2
    exit 2
    ;;
esac
