#!/usr/bin/env bash
# Prepares a machine for shoal's tests: Debian packages from ci/apt-packages.txt, and (as root)
# a hugetlbfs mount with some 2 MiB pages so that the hugepage paths are exercised too.
# Safe to run again. Without root it only reports what it would need.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if [ "$(id -u)" != 0 ]; then
  echo "setup: not root; skipping packages and hugepages (tests that need them skip with a reason)"
  exit 0
fi

mapfile -t pkgs < <(grep -v '^\s*#' "$here/apt-packages.txt" | grep -v '^\s*$')
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! grep -q ' /dev/hugepages hugetlbfs ' /proc/mounts; then
  mkdir -p /dev/hugepages
  mount -t hugetlbfs nodev /dev/hugepages || echo "setup: could not mount hugetlbfs (tests fall back to /dev/shm)"
fi
want=${SHOAL_HUGEPAGES:-256}
have=$(cat /proc/sys/vm/nr_hugepages)
if [ "$have" -lt "$want" ]; then
  echo "$want" > /proc/sys/vm/nr_hugepages || true
fi
echo "setup: hugepages total=$(cat /proc/sys/vm/nr_hugepages) free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)"
