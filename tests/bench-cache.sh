#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench-cache.sh: the RAM cache tier over a slow disk, run on the host. Boots
# the test VM once (tests/vm/vm-run.sh, 2 vCPUs) and runs
# tests/vm/bench-cache.sh in it (which says what is measured and how): a
# thin volume whose pool is on dm-delay, without and with --cache, beside
# dm-cache (smq, write-back) over the same slow disk and the mem engine.
# Keeps its output, with the commit and settings first, as OUT/cache.log, and
# when OUT is docs/bench rewrites README.md's cache table from it.
#
#   tests/bench-cache.sh [--out DIR] [--runtime S] [--no-build]
#
# Exits non-zero if the VM run fails or the log has no ratios.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
out=docs/bench
runtime=5
build=1
while [ $# -gt 0 ]; do
	case $1 in
	--out) out=${2:?}; shift 2 ;;
	--runtime) runtime=${2:?}; shift 2 ;;
	--no-build) build=0; shift ;;
	-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) echo "bench-cache: unknown option $1" >&2; exit 2 ;;
	esac
done
if [ "$build" = 1 ]; then
	[ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build -j"$(nproc)" >/dev/null
fi
mkdir -p "$out"
log="$out/cache.log"
{
	echo "# commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs' ':!README.md' || echo ' (with local changes)')"
	echo "# 2 vCPUs under QEMU TCG; slow disk: dm-delay 4 ms over brd; fio 4k on a 128 MiB hot set, ${runtime} s per run"
	echo "# command: tests/bench-cache.sh --runtime $runtime"
} >"$log"
AZBUSE_BENCH_RUNTIME=$runtime tests/vm/vm-run.sh --mem 6G --timeout 2400 -- tests/vm/bench-cache.sh |
	tee -a "$log"
grep -q '^RATIO ' "$log" || { echo "bench-cache: no ratios in $log" >&2; exit 1; }
if [ "$(cd "$out" && pwd)" = "$top/docs/bench" ]; then
	tests/bench-cache-readme.py "$log" README.md
fi
