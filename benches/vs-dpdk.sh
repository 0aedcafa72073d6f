#!/usr/bin/env bash
# vs-dpdk.sh NAME: runs DPDK 22.11's benchmark NAME and shoal's counterpart alternately in one
# run (DPDK, shoal, DPDK, shoal, ...), tags every run with the vCPU placement (near/far) from a
# cache-line ping-pong before and after it, and prints one JSON line per case with the median
# of each side over the runs of the same placement, the ratio DPDK time / shoal time (above 1:
# shoal is faster), and a summary line. See ../shared/benchmarking.md.
#
#   benches/vs-dpdk.sh ring          # ring_perf_autotest vs benches/src/bin/ring_perf.rs
#   benches/vs-dpdk.sh client_server # DPDK's client_server_mp vs shoal's mp_server/mp_client
#   benches/vs-dpdk.sh ipc           # rte_mp_* (benches/dpdk/mp_perf.sh) vs benches/src/bin/mp_perf.rs
#   benches/vs-dpdk.sh symmetric     # DPDK's symmetric_mp vs shoal's, 2 processes on 2 net_null ports
#   benches/vs-dpdk.sh af_packet     # dpdk-testpmd's net_af_packet vs shoal's, on veth pairs (vs-dpdk-af_packet.sh)
#   benches/vs-dpdk.sh af_xdp        # dpdk-testpmd's net_af_xdp vs shoal's (and shoal's af_packet), on veth pairs (vs-dpdk-af_xdp.sh)
#   benches/vs-dpdk.sh memif         # dpdk-testpmd's net_memif vs shoal's, each side of the link (vs-dpdk-memif.sh)
#
# client_server, symmetric and ipc are described above run_client_server, run_symmetric and
# run_ipc below.
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
#
# Every run's JSON lines are also kept (keep_results, at the end) in target/vs-dpdk/NAME.jsonl
# (RESULTS=FILE or RESULTS_DIR=DIR elsewhere), where benches/report finds them.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
# The settings given in the environment, for the record kept with the results.
RUN_ENV=""
for v in PAIRS BUDGET RUN_TIMEOUT QUIET_WAIT OTHERS_MAX BUSY_MAX MIN_RUNS MEMPOOL_SECS MEMPOOL_DPDK \
    CS_SECONDS IPC_REQUESTS SMP_SECONDS SMP_MBUFS ROUNDS SECS; do
    [ -n "${!v:-}" ] && RUN_ENV+="$v=${!v} "
done
PAIRS_GIVEN=${PAIRS:-}
PAIRS=${PAIRS:-5}
BUDGET=${BUDGET:-1200}
RUN_TIMEOUT=${RUN_TIMEOUT:-240}
OTHERS_MAX=${OTHERS_MAX:-0.10}
BUSY_MAX=${BUSY_MAX:-5}
MIN_RUNS=${MIN_RUNS:-2}
work=$(mktemp -d /tmp/vs-dpdk.XXXXXX)
prefixes=()
shoal_prefixes=()
live_pids=()
# shellcheck source=benches/lib.sh
source "$here/lib.sh"

log() { echo "vs-dpdk: $*" >&2; }

cleanup() {
    local p
    for p in "${prefixes[@]:-}"; do
        [ -n "$p" ] || continue
        rm -rf "/var/run/dpdk/$p" "${XDG_RUNTIME_DIR:-/nonexistent}/dpdk/$p" 2>/dev/null || true
    done
    for p in "${live_pids[@]:-}"; do
        [ -n "$p" ] && stop_pids 2 "$p"
    done
    for p in "${SYM_PIDS[@]:-}"; do
        [ -n "$p" ] && stop_pids 2 "$p"
    done
    for p in "${shoal_prefixes[@]:-}"; do
        [ -n "$p" ] && shoal_cleanup "$p"
    done
    if [ "${KEEP_LOGS:-0}" = 1 ]; then
        log "logs kept in $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Debian's DPDK 22.11 (lib.sh's ensure_dpdk installs it); dpdk-test, with ring_perf_autotest,
# is in dpdk-dev.
ensure_dpdk_test() {
    ensure_dpdk || exit 1
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
    ensure_dpdk_test
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
    ensure_dpdk_test
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

# ---------------------------------------------------------------------------------------------
# client_server and ipc: DPDK's side comes from benches/dpdk/*.sh (which tag their own runs), the
# shoal side from the functions below, tagged the same way (placement probe right before and
# right after, CPU used by other processes meanwhile). Pairs run DPDK first, then shoal. A run is
# kept when its two tags agree (near/near or far/far) and others used at most BUSY_MAX % of the
# machine (default 5); each case is compared per placement, median of the kept runs of each side,
# with "runs":[shoal,dpdk] appended. Environment: PAIRS (default 3 for these two), BUSY_MAX,
# CS_SECONDS (client_server window, default 5), IPC_REQUESTS (default 10000). Before each run
# they wait up to QUIET_WAIT seconds (default 20 here) for other processes to use under 25%.

# Removes a shoal file prefix's runtime directory and segment files.
shoal_cleanup() {
    local p=$1 m
    [ -n "$p" ] || return 0
    rm -rf "/var/run/shoal/$p" "${XDG_RUNTIME_DIR:-/nonexistent}/shoal/$p" 2>/dev/null || true
    rm -f "/dev/shm/shoal_${p}_seg"* 2>/dev/null || true
    while read -r m; do
        [ -n "$m" ] && rm -f "$m/shoal_${p}_seg"* 2>/dev/null
    done < <(hugetlbfs_mounts)
    return 0
}

# Prints a timestamp (seconds since the epoch, µs) before every line read.
stamp_lines() {
    local line
    while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done
}

# Builds release binaries of the workspace (arguments go to cargo build).
build_release() {
    (cd "$root" && timeout 1200 cargo build -q --release "$@") >&2
}

# "EPOCH tx" of client 0 from the time-stamped statistics of shoal's mp_server
# ("Client  0: enqueued N dropped N rx N tx N tx_drop N ring ...").
shoal_client_tx_samples() {
    awk '$2 == "Client" && $3 == "0:" {
        for (i = 4; i < NF; i++) if ($i == "tx") { print $1, $(i + 1); break } }' "$1"
}

# Keeps a run line when its tags agree and the machine was quiet; else says why on stderr.
keep_run() {
    local line=$1 what=$2 tag busy
    tag=$(printf '%s\n' "$line" | sed -n 's/.*"placement":"\([a-z]*\)".*/\1/p')
    busy=$(json_num "$line" busy_pct)
    case $tag in
    near | far) ;;
    *)
        log "$what discarded (placement $tag)"
        return 1
        ;;
    esac
    if awk -v b="${busy:-100}" -v m="$BUSY_MAX" 'BEGIN { exit !(b > m) }'; then
        log "$what discarded (other processes used ${busy}% of the CPUs)"
        return 1
    fi
}

# shoal_cs_run SECONDS RUN: one run of shoal's mp_server (CPU 0) and mp_client (CPU 1) with two
# net_null ports; prints {"side":"shoal","pps":N,"placement":...} measured as DPDK's side does:
# client 0's tx count over the window that starts with the first statistics sample at least 1 s
# after the server saw the client connect, SECONDS long.
shoal_cs_run() {
    local secs=$1 run=$2
    local srv=$root/target/release/mp_server cli=$root/target/release/mp_client
    local prefix="vss-$$-$run" slog="$work/shoal-cs-$run.log" clog="$work/shoal-cs-client-$run.log"
    local before after busy t_ready first_ts ts pps limit srv_pid cli_pid end tag
    shoal_prefixes+=("$prefix")
    before=$(placement)
    cpu_busy_begin
    timeout $((secs + 40)) "$srv" -l 0 --file-prefix "$prefix" --vdev net_null0 --vdev net_null1 \
        -- -p 0x3 -n 1 --poll --wait-clients --no-neighbour-copy --stats-interval 1000 \
        > >(stamp_lines >"$slog") 2>&1 &
    srv_pid=$!
    live_pids=("$srv_pid")
    if ! wait_for_line "$slog" 'server ready' 20; then
        log "shoal run $run: server did not start:"
        tail -n 20 "$slog" >&2
        stop_pids 2 "$srv_pid"
        live_pids=()
        shoal_cleanup "$prefix"
        return 1
    fi
    timeout $((secs + 40)) "$cli" -l 1 --proc-type=secondary --file-prefix "$prefix" \
        -- -n 0 --poll --no-flow-table >"$clog" 2>&1 &
    cli_pid=$!
    live_pids+=("$cli_pid")
    if wait_for_line "$slog" 'all 1 clients connected' 20; then
        t_ready=$(awk '/all 1 clients connected/ { print $1; exit }' "$slog")
        limit=$((SECONDS + secs + 12))
        while [ "$SECONDS" -lt "$limit" ]; do
            sleep 0.25
            first_ts=$(shoal_client_tx_samples "$slog" | awk -v t="$t_ready" '$1 >= t + 1 { print $1; exit }')
            [ -n "$first_ts" ] || continue
            ts=$(shoal_client_tx_samples "$slog" | tail -n 1 | cut -d' ' -f1)
            awk -v a="$first_ts" -v b="$ts" -v s="$secs" 'BEGIN { exit !(b - a >= s - 0.05) }' && break
        done
    else
        log "shoal run $run: the client did not connect:"
        tail -n 10 "$clog" "$slog" >&2
        t_ready=""
    fi
    # SIGINT to the server only: it tells the client to stop, which exits by itself.
    stop_pids 5 "$srv_pid"
    end=$((SECONDS + 10))
    while kill -0 "$cli_pid" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.1; done
    kill -0 "$cli_pid" 2>/dev/null && log "shoal run $run: the client outlived the server; stopping it"
    stop_pids 2 "$cli_pid"
    live_pids=()
    busy=$(cpu_busy_pct)
    after=$(placement)
    shoal_cleanup "$prefix"
    [ -n "$t_ready" ] || return 1
    pps=$(shoal_client_tx_samples "$slog" | awk -v t="$t_ready" -v s="$secs" '
        $1 >= t + 1 && !n { t0 = $1; x0 = $2; n = 1; next }
        n && $1 - t0 <= s + 0.5 { t1 = $1; x1 = $2; n++ }
        END { if (n >= 2 && t1 > t0) printf "%.0f\n", (x1 - x0) / (t1 - t0) }')
    if [ -z "$pps" ]; then
        log "shoal run $run: fewer than two statistics samples in the window; server log:"
        tail -n 12 "$slog" >&2
        return 1
    fi
    tag=$before
    [ "$before" = "$after" ] || tag=mixed
    printf '{"side":"shoal","pps":%s,"placement":"%s","placement_before":"%s","placement_after":"%s","busy_pct":%s,"seconds":%s}\n' \
        "$pps" "$tag" "$before" "$after" "$busy" "$secs"
}

# Medians per placement of the kept run lines in $1 (one JSON object a line with "side",
# "placement" and the numeric field $2 for the case key $3 or "-" for every line): prints
# "PLACEMENT SHOAL DPDK N_SHOAL N_DPDK" for each placement both sides have.
medians() {
    python3 - "$@" <<'PY'
import json, statistics, sys
path, field, case = sys.argv[1], sys.argv[2], sys.argv[3]
vals = {}
for l in open(path):
    if not l.strip():
        continue
    r = json.loads(l)
    if case != "-" and r.get("case", "").removesuffix(" pinned") != case:
        continue
    if field not in r:
        continue
    vals.setdefault(r["placement"], {"shoal": [], "dpdk": []})[r["side"]].append(float(r[field]))
for place in ("near", "far"):
    v = vals.get(place)
    if v and v["shoal"] and v["dpdk"]:
        print(place, round(statistics.median(v["shoal"]), 3), round(statistics.median(v["dpdk"]), 3),
              len(v["shoal"]), len(v["dpdk"]))
    elif v:
        print(f"vs-dpdk: {case} {place}: {len(v['shoal'])} shoal and {len(v['dpdk'])} dpdk runs: "
              "not compared", file=sys.stderr)
PY
}

# json_line with "runs":[N_SHOAL,N_DPDK] appended.
json_line_runs() {
    local ns=$8 nd=$9
    json_line "$1" "$2" "$3" "$4" "$5" "$6" "$7" | sed "s/}\$/,\"runs\":[$ns,$nd]}/"
}

# client_server: forwarding rate (packets/s) of one server (CPU 0) and one client (CPU 1) with
# two net_null ports: DPDK's client_server_mp (benches/dpdk/client_server.sh) against shoal's
# mp_server --poll --wait-clients --no-neighbour-copy and mp_client --poll --no-flow-table (neither
# reads packet bytes, as DPDK's server and client do not), both on hugepages. The
# rate is the client's tx growth per second over CS_SECONDS, from 1 s after it connected.
# Ratio: shoal pps / DPDK pps. About (2 x CS_SECONDS + 25) s per pair.
run_client_server() {
    local pairs=${PAIRS_GIVEN:-3} secs=${CS_SECONDS:-5} i line
    ensure_free_hugepages 512 || exit 1
    build_release -p shoal-apps --bin mp_server --bin mp_client || { log "cannot build shoal-apps"; exit 1; }
    c2c_bin >/dev/null || exit 1
    : >"$work/cs.jsonl"
    for i in $(seq 1 "$pairs"); do
        QUIET_WAIT=${QUIET_WAIT:-20} wait_quiet >/dev/null
        log "client_server pair $i/$pairs: dpdk"
        if line=$(timeout -k 10 $((secs + 90)) "$here/dpdk/client_server.sh" "$secs" 1 2>>"$work/dpdk-cs.err" |
            grep '^{"side"'); then
            log "  $line"
            keep_run "$line" "dpdk run $i" && echo "$line" >>"$work/cs.jsonl"
        else
            log "dpdk run $i failed:"
            tail -n 8 "$work/dpdk-cs.err" >&2
        fi
        QUIET_WAIT=${QUIET_WAIT:-20} wait_quiet >/dev/null
        log "client_server pair $i/$pairs: shoal"
        shoal_cs_run "$secs" "$i" >"$work/shoal-cs-$i.json" || true
        if line=$(grep '^{"side"' "$work/shoal-cs-$i.json"); then
            log "  $line"
            keep_run "$line" "shoal run $i" && echo "$line" >>"$work/cs.jsonl"
        else
            log "shoal run $i failed"
        fi
    done
    local place s d ns nd out=""
    while read -r place s d ns nd; do
        out+=$(json_line_runs client_server "1 server + 1 client, net_null" pps "$s" "$d" higher "$place" "$ns" "$nd")$'\n'
    done < <(medians "$work/cs.jsonl" pps -)
    printf '%s' "$out"
    printf '%s' "$out" | summary_line client_server -
}

# shoal_smp_run SECONDS RUN: one run of two shoal symmetric_mp peers (proc-id 0, the primary, on
# CPU 0; proc-id 1 on CPU 1) on two net_null ports with one queue per process, --busy-poll (DPDK's
# sample always polls) and a pool of SMP_MBUFS mbufs (DPDK's NB_MBUFS). Measured as DPDK's side
# (symmetric_pair in lib.sh); prints the primary's configuration line as JSON, then
# {"side":"shoal","pps":N,"pps_procs":[N0,N1],"drops":N,"placement":...}.
shoal_smp_run() {
    local secs=$1 run=$2 bin=$root/target/release/symmetric_mp
    local prefix="vsy-$$-$run" dir="$work/shoal-smp-$run" before after busy tag res cfg
    shoal_prefixes+=("$prefix")
    mkdir -p "$dir"
    before=$(placement)
    cpu_busy_begin
    if ! symmetric_pair "$secs" "$dir" \
        "$bin" -l 0 --proc-type=primary --file-prefix "$prefix" --vdev net_null0 --vdev net_null1 \
        -- -p 0x3 --num-procs 2 --proc-id 0 --busy-poll --nb-mbufs "$SMP_MBUFS" \
        ::: "$bin" -l 1 --proc-type=secondary --file-prefix "$prefix" \
        -- -p 0x3 --num-procs 2 --proc-id 1 --busy-poll >"$dir/result"; then
        shoal_cleanup "$prefix"
        return 1
    fi
    busy=$(cpu_busy_pct)
    after=$(placement)
    shoal_cleanup "$prefix"
    # "APP: SMP_MBUF_POOL: N mbufs, cache C, data room D; burst B"
    cfg=$(sed -n 's/.*APP: SMP_MBUF_POOL: \([0-9]*\) mbufs, cache \([0-9]*\), data room \([0-9]*\); burst \([0-9]*\).*/\4 \1 \2 \3/p' "$dir/proc0.log")
    # shellcheck disable=SC2086
    set -- $cfg
    [ $# -eq 4 ] && printf '{"side":"shoal","config":{"burst":%s,"nb_mbufs":%s,"cache":%s,"data_room":%s,"rx_ring":"none (net_null has no descriptor ring)","tx_ring":"none","queues_per_port":2,"lcores":"proc-id 0: -l 0, proc-id 1: -l 1","ports":"net_null0, net_null1","busy_poll":"yes (--busy-poll)"}}\n' "$@"
    res=$(cat "$dir/result")
    # shellcheck disable=SC2086
    set -- $res
    tag=$before
    [ "$before" = "$after" ] || tag=mixed
    printf '{"side":"shoal","pps":%s,"pps_procs":[%s,%s],"drops":%s,"placement":"%s","placement_before":"%s","placement_after":"%s","busy_pct":%s,"seconds":%s}\n' \
        "$1" "$2" "$3" "$4" "$tag" "$before" "$after" "$busy" "$secs"
}

# symmetric: aggregate forwarding rate (packets/s) of two symmetric_mp processes on two net_null
# ports, one queue per process per port, proc-id 0 (the primary) on CPU 0 and proc-id 1 on CPU 1:
# DPDK's own sample (benches/dpdk/symmetric_mp.sh) against shoal's, the same burst (32), pool
# (SMP_MBUFS, default DPDK's 65536), cache (256) and data room. Both configurations are printed
# first (JSON lines with "config"). Each process's rate is its packets sent over its forwarding
# time (SMP_SECONDS, default 5, once both are up); the ratio is shoal's sum / DPDK's sum. About
# (2 x SMP_SECONDS + 15) s per pair.
run_symmetric() {
    local pairs=${PAIRS_GIVEN:-3} secs=${SMP_SECONDS:-5} i line out="" said_shoal="" said_dpdk=""
    SMP_MBUFS=${SMP_MBUFS:-65536}
    ensure_free_hugepages 512 || exit 1
    build_release -p shoal-apps --bin symmetric_mp || { log "cannot build symmetric_mp"; exit 1; }
    c2c_bin >/dev/null || exit 1
    : >"$work/smp.jsonl"
    for i in $(seq 1 "$pairs"); do
        if [ "$SECONDS" -ge "$BUDGET" ]; then
            log "time budget of ${BUDGET}s spent after $((i - 1)) pairs"
            break
        fi
        QUIET_WAIT=${QUIET_WAIT:-20} wait_quiet >/dev/null
        log "symmetric pair $i/$pairs: dpdk"
        if timeout -k 10 $((secs + 90)) "$here/dpdk/symmetric_mp.sh" "$secs" 1 \
            >"$work/dpdk-smp-$i.out" 2>>"$work/dpdk-smp.err" &&
            line=$(grep '^{"side":"dpdk","pps"' "$work/dpdk-smp-$i.out"); then
            if [ -z "$said_dpdk" ]; then
                grep '"config"' "$work/dpdk-smp-$i.out" | sed 's/^{/{"bench":"symmetric_mp",/' || true
                said_dpdk=1
            fi
            log "  $line"
            keep_run "$line" "dpdk run $i" && echo "$line" >>"$work/smp.jsonl"
        else
            log "dpdk run $i failed:"
            tail -n 8 "$work/dpdk-smp.err" >&2
        fi
        QUIET_WAIT=${QUIET_WAIT:-20} wait_quiet >/dev/null
        log "symmetric pair $i/$pairs: shoal"
        shoal_smp_run "$secs" "$i" >"$work/shoal-smp-$i.json" || true
        if [ -z "$said_shoal" ] && grep -q '"config"' "$work/shoal-smp-$i.json"; then
            grep '"config"' "$work/shoal-smp-$i.json" | sed 's/^{/{"bench":"symmetric_mp",/'
            said_shoal=1
        fi
        if line=$(grep '^{"side":"shoal","pps"' "$work/shoal-smp-$i.json"); then
            log "  $line"
            keep_run "$line" "shoal run $i" && echo "$line" >>"$work/smp.jsonl"
        else
            log "shoal run $i failed"
        fi
    done
    local place s d ns nd
    while read -r place s d ns nd; do
        out+=$(json_line_runs symmetric_mp "2 processes, 2 net_null ports, aggregate" pps "$s" "$d" higher "$place" "$ns" "$nd")$'\n'
    done < <(medians "$work/smp.jsonl" pps -)
    printf '%s' "$out"
    printf '%s' "$out" | summary_line symmetric_mp -
}

# Prints CPU affinity of every thread of PID and of its descendants (stderr).
log_affinity() {
    local pid=$1 t kids k
    for t in /proc/"$pid"/task/*; do
        [ -r "$t/status" ] || continue
        log "  pid $pid tid ${t##*/} $(cat "$t/comm" 2>/dev/null): CPUs $(awk '/^Cpus_allowed_list/ { print $2 }' "$t/status")"
    done
    kids=$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)
    for k in $kids; do log_affinity "$k"; done
}

# shoal_ipc_run REQUESTS RUN: shoal's mp_perf, the primary held to CPU 0 with taskset (its IPC
# thread inherits it), its secondary on CPU 1 (the EAL pins its main thread to -l 1 before it
# starts the IPC thread, which inherits that). Prints mp_perf's four lines with the tags added.
shoal_ipc_run() {
    local n=$1 run=$2 bin=$root/target/release/mp_perf prefix="vsi-$$-$2"
    local before after busy tag pid end rc=0 budget=$((60 + n * 2 / 1000))
    local out=$work/shoal-ipc-$run.out err=$work/shoal-ipc-$run.err
    shoal_prefixes+=("$prefix")
    before=$(placement)
    cpu_busy_begin
    timeout "$budget" taskset -c 0 "$bin" -l 0 --file-prefix "$prefix" -- -n "$n" -t 1 >"$out" 2>"$err" &
    pid=$!
    live_pids=("$pid")
    if [ "$run" = 1 ]; then
        # Thread placement, once: both processes' threads a moment after start.
        sleep 0.7
        log "thread placement of shoal's mp_perf (timeout, then the primary, then its secondary):"
        log_affinity "$pid"
    fi
    end=$((SECONDS + budget + 5))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        stop_pids 3 "$pid"
        rc=1
    else
        wait "$pid" || rc=$?
    fi
    live_pids=()
    busy=$(cpu_busy_pct)
    after=$(placement)
    shoal_cleanup "$prefix"
    tag=$before
    [ "$before" = "$after" ] || tag=mixed
    local extra
    extra=$(printf ',"placement":"%s","placement_before":"%s","placement_after":"%s","busy_pct":%s,"mode":"pinned"}' \
        "$tag" "$before" "$after" "$busy")
    grep '"side":"shoal"' "$out" | sed "s/}\$/${extra//\//\\/}/" || true
    if [ "$rc" -ne 0 ] || [ "$(grep -c '"side":"shoal"' "$out")" -ne 4 ]; then
        log "shoal ipc run $run incomplete (exit $rc):"
        tail -n 10 "$err" >&2
        return 1
    fi
}

# ipc: rte_mp_request_sync round trips (p50, p99) and rte_mp_sendmsg rate, both directions:
# benches/dpdk/mp_perf.sh REQUESTS pinned (each DPDK process, IPC thread included, held to its
# CPU with taskset) against shoal's mp_perf placed the same way (see shoal_ipc_run): primary and
# its IPC thread on CPU 0, secondary and its IPC thread on CPU 1. DPDK's case names lose their
# " pinned" suffix to match shoal's. Ratios: DPDK µs / shoal µs, shoal msg/s / DPDK msg/s.
run_ipc() {
    local pairs=${PAIRS_GIVEN:-3} n=${IPC_REQUESTS:-10000} i lines l
    ensure_free_hugepages 512 || exit 1
    build_release -p shoal-benches --bin mp_perf || { log "cannot build mp_perf"; exit 1; }
    c2c_bin >/dev/null || exit 1
    : >"$work/ipc.jsonl"
    for i in $(seq 1 "$pairs"); do
        QUIET_WAIT=${QUIET_WAIT:-20} wait_quiet >/dev/null
        log "ipc pair $i/$pairs: dpdk"
        lines=$(timeout -k 10 $((90 + n * 3 / 1000)) "$here/dpdk/mp_perf.sh" "$n" pinned 1 2>>"$work/dpdk-ipc.err" |
            grep '^{"side"' || true)
        [ -n "$lines" ] || { log "dpdk run $i failed:"; tail -n 8 "$work/dpdk-ipc.err" >&2; }
        QUIET_WAIT=${QUIET_WAIT:-20} wait_quiet >/dev/null
        log "ipc pair $i/$pairs: shoal"
        shoal_ipc_run "$n" "$i" >"$work/shoal-ipc-$i.json" || true
        lines+=$'\n'$(grep '"side"' "$work/shoal-ipc-$i.json" || true)
        local said=""
        while IFS= read -r l; do
            [ -n "$l" ] || continue
            local side
            side=$(printf '%s' "$l" | sed -n 's/.*"side":"\([a-z]*\)".*/\1/p')
            log "  $(printf '%s' "$l" | sed 's/,"\(min\|max\|mean\|sent\|received\|n\|placement_before\|placement_after\|first\|last\)":[^,}]*//g')"
            # One verdict per run: its four lines share their tags.
            if keep_run "$l" "$side run $i" 2>"$work/keep.msg"; then
                echo "$l" >>"$work/ipc.jsonl"
            elif [[ $said != *"$side"* ]]; then
                cat "$work/keep.msg" >&2
                said+=" $side"
            fi
        done <<<"$lines"
    done
    local out="" c dir place s d ns nd
    for dir in "secondary->primary" "primary->secondary"; do
        for c in p50 p99; do
            while read -r place s d ns nd; do
                out+=$(json_line_runs ipc "request_sync $dir $c, pinned" us "$s" "$d" lower "$place" "$ns" "$nd")$'\n'
            done < <(medians "$work/ipc.jsonl" "$c" "request_sync $dir")
        done
        while read -r place s d ns nd; do
            out+=$(json_line_runs ipc "sendmsg $dir, pinned" msg/s "$s" "$d" higher "$place" "$ns" "$nd")$'\n'
        done < <(medians "$work/ipc.jsonl" rate "sendmsg $dir")
    done
    printf '%s' "$out"
    printf '%s' "$out" | summary_line ipc -
}

# keep_results NAME CMD...: runs CMD with its output shown and also written to a file; when it
# succeeded with at least one compared case, stores that output, headed by a line describing the
# run ({"meta":{"name":..,"date":..,"commit":..,"command":..}}), in $RESULTS (default
# $RESULTS_DIR/NAME.jsonl, RESULTS_DIR defaulting to target/vs-dpdk) and a dated copy beside it,
# for benches/report. A run that compared nothing leaves the previous results alone.
keep_results() {
    local name=$1 rc=0 out="$work/final.jsonl" dir file stamp commit
    shift
    # A group, so that the redirection (and the tee that $! names) belongs to this shell also
    # when CMD is a program, and waiting for the tee means the file is whole.
    { "$@"; } > >(tee "$out") || rc=$?
    wait "${!:-}" 2>/dev/null || true
    if [ "$rc" -ne 0 ] || ! grep -q '"ratio": \?[0-9]' "$out"; then
        log "no compared case (status $rc): results not kept"
        return "$rc"
    fi
    dir=${RESULTS_DIR:-$root/target/vs-dpdk}
    file=${RESULTS:-$dir/$name.jsonl}
    stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    commit=$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)
    mkdir -p "$(dirname "$file")" || return 0
    {
        printf '{"meta":{"name":"%s","date":"%s","commit":"%s","command":"%s"}}\n' "$name" "$stamp" "$commit" "${RUN_ENV}benches/vs-dpdk.sh $name"
        grep '^{' "$out"
    } >"$file.tmp" && mv "$file.tmp" "$file"
    [ -n "${RESULTS:-}" ] || cp "$file" "$dir/$name-${stamp//:/}.jsonl"
    log "results kept in $file (benches/report turns them into tables and a chart)"
}

case "${1:-}" in
ring) keep_results ring run_ring ;;
mempool) keep_results mempool run_mempool ;;
client_server) keep_results client_server run_client_server ;;
symmetric) keep_results symmetric run_symmetric ;;
ipc) keep_results ipc run_ipc ;;
af_packet) keep_results af_packet "$here/vs-dpdk-af_packet.sh" ;;
af_xdp) keep_results af_xdp "$here/vs-dpdk-af_xdp.sh" ;;
memif) keep_results memif "$here/vs-dpdk-memif.sh" ;;
*)
    echo "usage: $0 ring|mempool|client_server|symmetric|ipc|af_packet|af_xdp|memif" >&2
    exit 2
    ;;
esac
