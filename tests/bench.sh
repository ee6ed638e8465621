#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench.sh: the azbuse benchmark, run on the host. Boots the test VM twice
# (tests/vm/vm-run.sh): once with 2 vCPUs to run the same fio jobs on every
# device (in-kernel: brd, null_blk, loop, dm-thin, dm-cache; nbd through
# nbdkit; ublk where ublksrv is installed; azbuse's null, mem, file and thin
# engines), once with 4 vCPUs for queue scaling (azbuse null with 1, 2 and 4
# queues beside brd). Writes results.json, bench.md and bench-*.png into the
# output directory and prints the Markdown tables (tests/bench-report.py).
#
#   tests/bench.sh [--short] [--out DIR] [--runtime S] [--repeats N]
#                  [--devices LIST] [--jobs LIST] [--size MB]
#                  [--scaling-devices LIST] [--no-scaling | --scaling-only]
#                  [--cpus N] [--scaling-cpus N] [--mem SIZE] [--no-build]
#
#   --short            CI mode: 1 repeat, 1 s per job, 3 jobs, 256 MiB devices,
#                      every device, output in build/bench-short (never docs/)
#   --out DIR          output directory (default docs/bench, or build/bench-short)
#   --runtime S        seconds per fio run (default 5; env AZBUSE_BENCH_RUNTIME)
#   --repeats N        runs per figure, median and min..max (default 3;
#                      AZBUSE_BENCH_REPEATS)
#                      (writing docs/bench also rewrites README.md's
#                      overview: tests/bench-readme.py)
#   --devices LIST     devices of the main run, comma- or space-separated
#                      (AZBUSE_BENCH_DEVICES; brd is added first if missing,
#                      as every ratio is to brd)
#   --jobs LIST        jobs of the main run (AZBUSE_BENCH_JOBS; default all)
#   --size MB          device size and fio's range (default 512)
#   --scaling-devices LIST  devices of the scaling run
#                      (default brd,azbuse-null-q1,azbuse-null-q2,azbuse-null-q4)
#   --no-scaling       only the main run;  --scaling-only: only the scaling run
#   --cpus N / --scaling-cpus N  vCPUs of the two runs (default 2 / 4)
#   --mem SIZE         guest memory (default 3G)
#   --no-build         do not run cmake --build first
#
# Devices: brd null_blk loop nbd ublk-null ublk-loop dm-thin dm-thin-nozero
#   dm-cache azbuse-null azbuse-mem azbuse-rust-ram azbuse-mem-nopoll azbuse-file azbuse-thin
#   azbuse-thin-raw
#   azbuse-null-qN
#   (tests/vm/bench-devices.sh says how each is set up; dm-thin-nozero is
#   not in the default set: the fill provisions every block before the runs).
# Jobs: randread-4k-qd1 randwrite-4k-qd1 randread-4k-qd32 randwrite-4k-qd32
#   randread-4k-qd32-percpu randwrite-4k-qd32-percpu read-128k-qd8
#   write-128k-qd8 read-1m-qd8 write-1m-qd8 (tests/vm/bench-matrix.sh).
# ublk needs ublksrv's `ublk` binary (AZBUSE_UBLK=PATH, or on PATH); without
# it the ublk devices are reported as skipped. Other AZBUSE_* variables reach
# the guest too (AZBUSE_BENCH_ADD_OPTS: more `azbusectl add` options;
# AZBUSE_BENCH_THIN_SHARDS: shards of the thin pool, default 2).
#
# Re-run one device quickly:
#   tests/bench.sh --devices azbuse-thin --jobs randwrite-4k-qd32 --repeats 1 --no-scaling --out /tmp/b
#
# Ends with "N passed, N failed, N skipped" (one per device and VM run) and
# exits 1 if a device failed to set up, a fio run failed or a VM run failed.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

usage() { # STATUS: the comment at the top, on stdout (0) or stderr
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&"$(($1 ? 2 : 1))"
	exit "$1"
}

all_devices="brd,null_blk,loop,nbd,ublk-null,ublk-loop,dm-thin,dm-cache,azbuse-null,azbuse-mem,azbuse-rust-ram,azbuse-mem-nopoll,azbuse-file,azbuse-thin,azbuse-thin-raw"
short=0
out=
runtime=${AZBUSE_BENCH_RUNTIME:-}
repeats=${AZBUSE_BENCH_REPEATS:-}
devices=${AZBUSE_BENCH_DEVICES:-}
jobs=${AZBUSE_BENCH_JOBS:-}
size=${AZBUSE_BENCH_SIZE_MB:-}
scaling_devices="brd,azbuse-null-q1,azbuse-null-q2,azbuse-null-q4"
do_main=1 do_scaling=1
cpus=2 scaling_cpus=4 mem=3G build=1
while [ $# -gt 0 ]; do
	case $1 in
	--short) short=1; shift ;;
	--out) out=${2:?}; shift 2 ;;
	--runtime) runtime=${2:?}; shift 2 ;;
	--repeats) repeats=${2:?}; shift 2 ;;
	--devices) devices=${2:?}; shift 2 ;;
	--jobs) jobs=${2:?}; shift 2 ;;
	--size) size=${2:?}; shift 2 ;;
	--scaling-devices) scaling_devices=${2:?}; shift 2 ;;
	--no-scaling) do_scaling=0; shift ;;
	--scaling-only) do_main=0; shift ;;
	--cpus) cpus=${2:?}; shift 2 ;;
	--scaling-cpus) scaling_cpus=${2:?}; shift 2 ;;
	--mem) mem=${2:?}; shift 2 ;;
	--no-build) build=0; shift ;;
	-h | --help) usage 0 ;;
	*) echo "bench.sh: unknown option $1 (--help lists them)" >&2; exit 2 ;;
	esac
done

if [ "$short" = 1 ]; then
	: "${runtime:=1}" "${repeats:=1}" "${size:=256}" "${out:=build/bench-short}"
	: "${jobs:=randread-4k-qd32,randwrite-4k-qd32,write-1m-qd8}"
	case $(realpath -m "$out")/ in
	"$top"/docs/*) echo "bench.sh: --short does not write into docs/" >&2; exit 2 ;;
	esac
fi
: "${runtime:=5}" "${repeats:=3}" "${size:=512}" "${out:=docs/bench}"
: "${devices:=$all_devices}"
for n in "$runtime" "$repeats" "$size" "$cpus" "$scaling_cpus"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: '$n' is not a positive number" >&2; exit 2; }
done
devices=$(tr ' ' ',' <<<"$devices")
case ,$devices, in *,brd,*) ;; *) devices=brd,$devices ;; esac
# one job too: how far the emulated VM itself scales (brd with 1 job and with 4)
scaling_jobs=randread-4k-qd32,randread-4k-qd32-percpu

for tool in python3 fio; do
	command -v "$tool" >/dev/null || { echo "bench.sh: $tool is missing: run tests/vm/install-deps.sh" >&2; exit 2; }
done
if [ "$build" = 1 ]; then
	[ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build -j"$(nproc)" >/dev/null
fi
if [ ! -f build/kmod/azbuse.ko ] || [ ! -x build/tools/azbusectl ]; then
	echo "bench.sh: no build/kmod/azbuse.ko or build/tools/azbusectl: build first" >&2
	exit 2
fi

mkdir -p "$out" build
out=$(cd "$out" && pwd)
work=$(mktemp -d "$top/build/bench-vm.XXXXXX")
export AZBUSE_BENCH_RUNTIME=$runtime AZBUSE_BENCH_REPEATS=$repeats AZBUSE_BENCH_SIZE_MB=$size
host_args=(--host "cores=$(nproc)" --host "commit=$(git rev-parse --short HEAD 2>/dev/null || echo ?)$(git diff --quiet HEAD 2>/dev/null || echo +changes)")
rc_args=()
raws=()
start=$SECONDS

# boot NAME CPUS DEVICES JOBS: one VM run of bench-matrix.sh
boot() {
	local name=$1 vcpus=$2 devs=$3 jobs=$4 n_dev n_job timeout_s rc=0 sampler
	n_dev=$(tr ', ' '\n' <<<"$devs" | grep -c .)
	n_job=$(tr ', ' '\n' <<<"$jobs" | grep -c .)
	# fio start-up and the fills take seconds each under emulation
	timeout_s=$((600 + repeats * n_dev * (120 + n_job * (runtime + 15))))
	# the host's 1-minute load average every 10 s: how noisy the run was
	while :; do
		cut -d' ' -f1 /proc/loadavg
		sleep 10
	done >"$work/$name.load" &
	sampler=$!
	echo "bench.sh: VM run '$name': $vcpus vCPUs, devices $devs; jobs $jobs; ${runtime}s x $repeats (timeout ${timeout_s}s)"
	# A VM that dies before its command ends (exit 125: the emulator's
	# fault or a panic; its console's last lines are shown) is booted once
	# more and its run done again from the start.
	for try in 1 2; do
		rc=0
		rm -rf "${work:?}/$name"
		AZBUSE_BENCH_DEVICES=$devs AZBUSE_BENCH_JOBS=$jobs \
			tests/vm/vm-run.sh --cpus "$vcpus" --mem "$mem" --timeout "$timeout_s" \
			--out "$work/$name" -- tests/vm/bench-matrix.sh "$name" 2>&1 |
			tee "$work/$name.log" || rc=$?
		[ "$rc" != 0 ] || break
		echo "bench.sh: VM run '$name' failed (exit $rc); the last lines of its console:" >&2
		tail -n 40 "$work/$name.log" | sed 's/^/  | /' >&2
		[ "$rc" = 125 ] || break
		[ "$try" = 1 ] && echo "bench.sh: VM run '$name' died before it ended: booting it once more" >&2
	done
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	host_args+=(--host "load_$name=$(sort -g "$work/$name.load" | awk '{ v[NR] = $1 }
		END { if (NR) printf "%s..%s (median %s, %d samples)", v[1], v[NR], v[int((NR + 1) / 2)], NR }')")
	rc_args+=(--vm-rc "$name=$rc")
	python3 tests/bench-record.py "$work/$name" >"$work/$name.jsonl"
	raws+=("$work/$name.jsonl")
}

if [ "$do_main" = 1 ]; then
	boot main "$cpus" "$devices" "${jobs:-randread-4k-qd1,randwrite-4k-qd1,randread-4k-qd32,randwrite-4k-qd32,randread-4k-qd32-percpu,randwrite-4k-qd32-percpu,read-128k-qd8,write-128k-qd8,read-1m-qd8,write-1m-qd8}"
fi
if [ "$do_scaling" = 1 ]; then
	boot scaling "$scaling_cpus" "$scaling_devices" "$scaling_jobs"
fi

echo
rc=0
python3 tests/bench-report.py --out "$out" "${host_args[@]}" "${rc_args[@]}" "${raws[@]}" || rc=$?
# the README's overview comes from the run kept in docs/bench, never by hand
if [ "$rc" = 0 ] && [ "$(cd "$out" && pwd)" = "$top/docs/bench" ]; then
	python3 tests/bench-readme.py "$out/results.json" README.md || rc=$?
	echo "bench.sh: README.md's overview updated from $out/results.json"
fi
echo "bench.sh: took $((SECONDS - start)) s; results in $out (results.json, bench.md, bench-*.png)"
if [ "$rc" = 0 ]; then
	rm -rf "$work"
else
	echo "bench.sh: VM logs kept in $work" >&2
fi
exit "$rc"
