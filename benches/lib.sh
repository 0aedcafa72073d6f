# shellcheck shell=bash
# Helpers shared by the benchmark runners (benches/vs-dpdk.sh and benches/dpdk/*.sh).
# Source it; it defines functions and a few variables and runs nothing else.
#
#   ensure_dpdk                 install Debian's DPDK 22.11 packages when missing (needs root)
#   ensure_hugepages [N]        at least N (512) 2 MiB pages reserved and hugetlbfs mounted
#   ensure_free_hugepages [N]   at least N (512) 2 MiB pages free (raises the reservation by the
#                               shortfall, up to 4096 pages in all) and hugetlbfs mounted
#   c2c_ns [SECONDS]            median one-way CPU 0 <-> CPU 1 handoff latency in ns (c2c probe)
#   placement                   "near" (< 80 ns one way) or "far", from a ~0.3 s probe
#   cpu_busy_begin / cpu_busy_pct
#                               CPU used by other processes between the two calls, in % of all CPUs
#   json_line BENCH CASE UNIT SHOAL DPDK lower|higher PLACEMENT
#                               one comparison line; ratio > 1 means shoal is better
#   summary_line BENCH [RATIO...] | summary_line BENCH - <LINES
#                               closing line: number of cases, min and median ratio, from the
#                               arguments, or with "-" from the "ratio" fields of JSON lines on stdin
#   json_num LINE KEY           a numeric field of a one-line JSON object
#   dpdk_cleanup PREFIX         remove a DPDK file prefix's runtime directory and hugepage files
#   stop_pids GRACE PID...      SIGINT, then SIGKILL after GRACE seconds, then reap
#   wait_for_line FILE REGEX SECONDS
#                               wait until FILE has a line matching REGEX (status 1 on timeout)
#   symmetric_pair SECONDS DIR CMD0... ::: CMD1...
#                               two symmetric_mp peers (DPDK's or shoal's) on one window; prints
#                               "AGG_PPS PPS0 PPS1 DROPS" (see below)
#
# Everything that can block takes a timeout. Messages go to stderr; results to stdout.

BENCH_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH_ROOT="$(cd "$BENCH_LIB_DIR/.." && pwd)"
# Below this median one-way latency (ns) the two vCPUs are "near" (see shared/benchmarking.md).
PLACEMENT_NEAR_NS=${PLACEMENT_NEAR_NS:-80}
DPDK_PACKAGES=(dpdk dpdk-dev libdpdk-dev dpdk-doc pkg-config)

bench_log() { printf '%s: %s\n' "${BENCH_LOG_TAG:-bench}" "$*" >&2; }

ensure_dpdk() {
  local missing=() p
  for p in "${DPDK_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
      bench_log "missing ${missing[*]}; run as root or: apt-get install -y ${DPDK_PACKAGES[*]}"
      return 1
    fi
    bench_log "installing ${missing[*]}"
    local apt=(timeout 900 env DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=300)
    if ! "${apt[@]}" install -y "${missing[@]}" >/dev/null; then
      # A fresh machine may have no package lists yet.
      "${apt[@]}" update >/dev/null || true
      "${apt[@]}" install -y "${missing[@]}" >/dev/null || {
        bench_log "apt-get install failed"
        return 1
      }
    fi
  fi
  if ! pkg-config --exists libdpdk; then
    bench_log "pkg-config finds no libdpdk"
    return 1
  fi
}

# Every hugetlbfs mount point, one a line (nothing when none).
hugetlbfs_mounts() { awk '$3 == "hugetlbfs" { print $2 }' /proc/mounts; }

ensure_hugepages() {
  local want=${1:-512} have free
  if [ -z "$(hugetlbfs_mounts)" ] && [ "$(id -u)" = 0 ]; then
    if ! { mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages; }; then
      bench_log "could not mount hugetlbfs at /dev/hugepages"
    fi
  fi
  have=$(cat /proc/sys/vm/nr_hugepages)
  if [ "$have" -lt "$want" ] && [ "$(id -u)" = 0 ]; then
    echo "$want" >/proc/sys/vm/nr_hugepages 2>/dev/null || true
  fi
  free=$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)
  if [ -z "$(hugetlbfs_mounts)" ] || [ "${free:-0}" -lt 64 ]; then
    bench_log "need hugetlbfs and 64 free 2 MiB pages (free: ${free:-0}); DPDK's primary with --no-huge accepts no secondary"
    return 1
  fi
}

# ensure_free_hugepages [N]: other processes (or files they left on hugetlbfs) may hold most of
# the reserved pages; reserve more so that N are free, without going over 4096 in all.
ensure_free_hugepages() {
  local want=${1:-512} have free
  if [ -z "$(hugetlbfs_mounts)" ] && [ "$(id -u)" = 0 ]; then
    if ! { mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages; }; then
      bench_log "could not mount hugetlbfs at /dev/hugepages"
    fi
  fi
  have=$(cat /proc/sys/vm/nr_hugepages)
  free=$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)
  if [ "${free:-0}" -lt "$want" ] && [ "$(id -u)" = 0 ]; then
    local target=$((have + want - ${free:-0}))
    [ "$target" -le 4096 ] || target=4096
    echo "$target" >/proc/sys/vm/nr_hugepages 2>/dev/null || true
    free=$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)
  fi
  if [ -z "$(hugetlbfs_mounts)" ] || [ "${free:-0}" -lt "$want" ]; then
    bench_log "want $want free 2 MiB pages on hugetlbfs, have ${free:-0}"
    return 1
  fi
}

# Path of the c2c probe, built (release) when missing or older than its source. C2C_BIN overrides.
c2c_bin() {
  if [ -n "${C2C_BIN:-}" ]; then
    echo "$C2C_BIN"
    return 0
  fi
  local target=${CARGO_TARGET_DIR:-$BENCH_ROOT/target}
  local bin=$target/release/c2c src=$BENCH_ROOT/benches/src/bin/c2c.rs
  if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ]; then
    bench_log "building the c2c probe"
    (cd "$BENCH_ROOT" && timeout 900 cargo build -q --release -p shoal-benches --bin c2c) >&2 || {
      bench_log "could not build c2c"
      return 1
    }
  fi
  echo "$bin"
}

c2c_ns() {
  local bin
  bin=$(c2c_bin) || return 1
  timeout 20 "$bin" "${1:-0.3}"
}

placement() {
  local ns
  ns=$(c2c_ns 0.3) || {
    echo unknown
    return 1
  }
  awk -v ns="$ns" -v lim="$PLACEMENT_NEAR_NS" 'BEGIN { print (ns + 0 < lim + 0) ? "near" : "far" }'
}

# Busy and total jiffies of all CPUs (steal counts as busy: the host took the vCPU), and the CPU
# time of this shell and of the children it has reaped.
_cpu_snapshot() {
  local own
  # Fields 14-17 (utime stime cutime cstime); the command name (field 2) has no spaces here.
  own=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat")
  awk -v own="$own" '$1 == "cpu" {
    busy = $2 + $3 + $4 + $7 + $8 + $9; total = busy + $5 + $6
    print busy, total, own; exit }' /proc/stat
}

# Call cpu_busy_begin, run the case, reap every process it started (stop_pids or wait), then call
# cpu_busy_pct from the same shell: it prints the CPU time that other processes used meanwhile, in
# percent of all CPUs' time (0-100, one decimal). Our own processes' time is known only once they
# are reaped, which is why the shell that calls cpu_busy_begin must be the one that reaps them
# (cpu_busy_pct itself may run in a command substitution).
cpu_busy_begin() {
  CPU_BUSY_PID=$BASHPID
  CPU_BUSY_SNAP=$(_cpu_snapshot "$CPU_BUSY_PID")
}

cpu_busy_pct() {
  [ -n "${CPU_BUSY_SNAP:-}" ] || {
    echo 0
    return 1
  }
  # shellcheck disable=SC2086
  awk -v a="$CPU_BUSY_SNAP" -v b="$(_cpu_snapshot "$CPU_BUSY_PID")" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    total = y[2] - x[2]; others = (y[1] - x[1]) - (y[3] - x[3])
    if (others < 0) others = 0
    printf "%.1f\n", (total > 0) ? 100 * others / total : 0 }'
}

_json_str() {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}

# json_line BENCH CASE UNIT SHOAL DPDK lower|higher PLACEMENT
# "lower": the unit is a cost (ns, us, cycles), ratio = dpdk / shoal;
# "higher": the unit is a rate (pps, msg/s), ratio = shoal / dpdk. Either way > 1 means shoal wins.
json_line() {
  if [ $# -ne 7 ]; then
    bench_log "json_line BENCH CASE UNIT SHOAL DPDK lower|higher PLACEMENT"
    return 2
  fi
  local bench=$1 case=$2 unit=$3 shoal=$4 dpdk=$5 better=$6 place=$7
  local ratio
  ratio=$(awk -v s="$shoal" -v d="$dpdk" -v b="$better" 'BEGIN {
    if (s + 0 <= 0 || d + 0 <= 0) { print "null"; exit }
    r = (b == "higher") ? s / d : d / s
    printf "%.3f\n", r }')
  printf '{"bench":%s,"case":%s,"unit":%s,"shoal":%s,"dpdk":%s,"ratio":%s,"placement":%s}\n' \
    "$(_json_str "$bench")" "$(_json_str "$case")" "$(_json_str "$unit")" \
    "$(_num_or_null "$shoal")" "$(_num_or_null "$dpdk")" "$ratio" "$(_json_str "$place")"
}

_num_or_null() {
  if [[ $1 =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; then printf '%s' "$1"; else printf null; fi
}

# summary_line BENCH [RATIO...]: no ratio gives "cases":0 (nulls are skipped too).
# summary_line BENCH -: the ratios of the JSON lines on stdin.
summary_line() {
  local bench=$1
  shift
  local ratios=""
  if [ "${1:-}" = - ]; then
    ratios=$(sed -n 's/.*"ratio":\(-\{0,1\}[0-9][0-9.eE+-]*\).*/\1/p')
  elif [ $# -gt 0 ]; then
    ratios=$(printf '%s\n' "$@")
  fi
  printf '%s\n' "$ratios" | grep -E '^-?[0-9]' | sort -g | awk -v b="$(_json_str "$bench")" '
    { r[NR] = $1 }
    END {
      n = NR
      if (n == 0) { printf "{\"bench\":%s,\"cases\":0,\"ratio_min\":null,\"ratio_median\":null}\n", b; exit }
      med = (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
      printf "{\"bench\":%s,\"cases\":%d,\"ratio_min\":%.3f,\"ratio_median\":%.3f}\n", b, n, r[1], med
    }'
}

# json_num LINE KEY: the number after "KEY": in LINE (empty when absent).
json_num() {
  printf '%s\n' "$1" | sed -n "s/.*\"$2\":\(-\{0,1\}[0-9][0-9.eE+-]*\).*/\1/p" | head -n 1
}

dpdk_cleanup() {
  local prefix=$1 m
  [ -n "$prefix" ] || return 0
  rm -rf "/var/run/dpdk/$prefix" "${XDG_RUNTIME_DIR:-/nonexistent}/dpdk/$prefix" 2>/dev/null
  while read -r m; do
    [ -n "$m" ] && rm -f "$m/${prefix}map_"* 2>/dev/null
  done < <(hugetlbfs_mounts)
  return 0
}

# stop_pids GRACE PID...: SIGINT to each PID, SIGKILL after GRACE seconds, then reap them. Only
# the PIDs given (children of this shell) are touched, with their process group when they lead
# one: `timeout CMD` does, so CMD goes too even when timeout itself has to be killed.
stop_pids() {
  local grace=$1 p deadline
  shift
  for p in "$@"; do _signal_pid INT "$p"; done
  deadline=$((SECONDS + grace))
  for p in "$@"; do
    while kill -0 "$p" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    _signal_pid KILL "$p"
  done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

# _signal_pid SIG PID: to PID's process group when PID leads it, else to PID alone.
_signal_pid() {
  local pgid
  pgid=$(awk '{ print $5 }' "/proc/$2/stat" 2>/dev/null) || pgid=""
  if [ "$pgid" = "$2" ]; then
    kill "-$1" -- "-$2" 2>/dev/null || true
  else
    kill "-$1" "$2" 2>/dev/null || true
  fi
}

wait_for_line() {
  local file=$1 re=$2 secs=$3 end
  end=$((SECONDS + secs))
  until grep -qE -- "$re" "$file" 2>/dev/null; do
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.1
  done
}

# Prints a timestamp (seconds since the epoch, µs) before every line read.
_stamp_lines() {
  local line
  while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done
}

# symmetric_pair SECONDS DIR CMD0... ::: CMD1...: runs the symmetric_mp peer CMD0 (the primary,
# proc-id 0), then, once it says "lcore N using queue 0", CMD1 (proc-id 1); once CMD1 says
# "using queue 1" it lets both forward for SECONDS, then sends SIGINT to both at one moment. DPDK's
# sample and shoal's print the same lines on SIGINT ("Port P: RX - n, TX - n, Drop - n" per port),
# so both are measured alike: each process's rate is its packets sent (TX summed over its ports)
# over its own forwarding time, from its time-stamped "using queue" line to its "Exiting on
# signal" line (the moment it took the signal and read its counters); prints
# "AGG_PPS PPS0 PPS1 DROPS" (AGG_PPS = PPS0 + PPS1). The logs are DIR/proc0.log and DIR/proc1.log.
# SYM_PIDS holds the processes while they run (for a caller's clean-up). Status 1 on failure.
SYM_PIDS=()
symmetric_pair() {
  local secs=$1 dir=$2 i
  shift 2
  local cmd0=() cmd1=()
  while [ $# -gt 0 ] && [ "$1" != ":::" ]; do cmd0+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  cmd1=("$@")
  if [ "${#cmd0[@]}" -eq 0 ] || [ "${#cmd1[@]}" -eq 0 ]; then
    bench_log "symmetric_pair SECONDS DIR CMD0... ::: CMD1..."
    return 2
  fi
  local log0=$dir/proc0.log log1=$dir/proc1.log t_stop
  : >"$log0"
  : >"$log1"
  timeout $((secs + 60)) stdbuf -oL "${cmd0[@]}" > >(_stamp_lines >"$log0") 2>&1 &
  SYM_PIDS=("$!")
  if ! wait_for_line "$log0" 'using queue 0 ' 30; then
    bench_log "proc-id 0 did not start; its log:"
    tail -n 15 "$log0" >&2
    stop_pids 3 "${SYM_PIDS[@]}"
    SYM_PIDS=()
    return 1
  fi
  timeout $((secs + 60)) stdbuf -oL "${cmd1[@]}" > >(_stamp_lines >"$log1") 2>&1 &
  SYM_PIDS+=("$!")
  if ! wait_for_line "$log1" 'using queue 1 ' 30; then
    bench_log "proc-id 1 did not start; its log:"
    tail -n 15 "$log1" >&2
    stop_pids 3 "${SYM_PIDS[@]}"
    SYM_PIDS=()
    return 1
  fi
  sleep "$secs"
  t_stop=$EPOCHREALTIME
  # Both at once (each `timeout` leads its process group), then the usual grace and reaping.
  kill -INT -- "-${SYM_PIDS[0]}" "-${SYM_PIDS[1]}" 2>/dev/null || true
  stop_pids 5 "${SYM_PIDS[@]}"
  SYM_PIDS=()
  # The counts are printed on SIGINT; the time-stamping reader may still be writing them.
  for i in 0 1; do
    if ! wait_for_line "$dir/proc$i.log" 'Port [0-9]+: RX - [0-9]+, TX - [0-9]+, Drop - [0-9]+' 5; then
      bench_log "proc-id $i printed no counts; its log:"
      tail -n 15 "$dir/proc$i.log" >&2
      return 1
    fi
  done
  sleep 0.2
  awk -v stop="$t_stop" '
    FNR == 1 { f++ }
    / using queue [0-9]+ / && !(f in ready) { ready[f] = $1 }
    / Exiting on signal / && !(f in end) { end[f] = $1 }
    / Port [0-9]+: RX - [0-9]+, TX - [0-9]+, Drop - [0-9]+/ {
      v = $0; sub(/.*TX - /, "", v); sub(/,.*/, "", v); tx[f] += v
      d = $0; sub(/.*Drop - /, "", d); drop += d + 0
    }
    END {
      if (f != 2 || !(1 in ready) || !(2 in ready) || !(1 in tx) || !(2 in tx)) exit 1
      for (i = 1; i <= 2; i++) if (!(i in end)) end[i] = stop
      p0 = tx[1] / (end[1] - ready[1]); p1 = tx[2] / (end[2] - ready[2])
      printf "%.0f %.0f %.0f %d\n", p0 + p1, p0, p1, drop
    }' "$log0" "$log1"
}
