#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench-thin.sh: the thin engine beside the kernel's dm-thin, run on the
# host. Boots the test VM once (tests/vm/vm-run.sh, 2 vCPUs) and runs
# tests/vm/bench-thin.sh in it (which says what is measured and how); keeps
# its output, with the commit and settings first, as OUT/thin.log, and when
# OUT is docs/bench rewrites README.md's thin table from it
# (tests/bench-thin-readme.py).
#
#   tests/bench-thin.sh [--out DIR] [--runtime S] [--mapped-gb N] [--data raw|file] [--no-build]
#
#   --out DIR        where thin.log goes (default docs/bench)
#   --runtime S      seconds per time-based measurement (default 5)
#   --mapped-gb N    mapped GiB of the memory measurement's big point (default 2;
#                    the guest's own default, 100, takes most of an hour)
#   --data KIND      raw (default): the pool's data on a block device, as
#                    dm-thin's data device; file: sparse files on ext4
#   --no-build       do not run cmake --build (which builds the module too) first
#
# Exits non-zero if the VM run fails or the log has no ratios.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
out=docs/bench
runtime=5
mapped_gb=2
data=raw
build=1
while [ $# -gt 0 ]; do
	case $1 in
	--out) out=${2:?}; shift 2 ;;
	--runtime) runtime=${2:?}; shift 2 ;;
	--mapped-gb) mapped_gb=${2:?}; shift 2 ;;
	--data) data=${2:?}; shift 2 ;;
	--no-build) build=0; shift ;;
	-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) echo "bench-thin: unknown option $1" >&2; exit 2 ;;
	esac
done
if [ "$build" = 1 ]; then
	[ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build -j"$(nproc)" >/dev/null
fi
mkdir -p "$out"
log="$out/thin.log"
{
	echo "# commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs' ':!README.md' || echo ' (with local changes)')"
	echo "# 2 vCPUs under QEMU TCG, both on brd, 64 KiB chunks, fio 4k QD32 x 2 jobs, ${runtime} s per run, azbuse data: $data"
	echo "# command: tests/bench-thin.sh --runtime $runtime --mapped-gb $mapped_gb --data $data"
} >"$log"
AZBUSE_BENCH_RUNTIME=$runtime AZBUSE_THIN_BENCH_MAPPED_GB=$mapped_gb AZBUSE_THIN_BENCH_DATA=$data \
	tests/vm/vm-run.sh --mem 6G --timeout 3000 -- tests/vm/bench-thin.sh | tee -a "$log"
grep -q '^RATIO ' "$log" || { echo "bench-thin: no ratios in $log" >&2; exit 1; }
if [ "$(cd "$out" && pwd)" = "$top/docs/bench" ]; then
	tests/bench-thin-readme.py "$log" README.md
fi
