#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench.sh: runs INSIDE the test VM. fio 4k random read and write at queue
# depth 32 on brd and null_blk (the in-kernel limits) and on azbuse's null
# and mem engines, all in this one VM run, and prints each azbuse figure as
# a ratio to brd and null_blk, with azbuse's requests per syscall.
#
#   tests/vm/vm-run.sh -- tests/vm/bench.sh
#
# Env: AZBUSE_BENCH_RUNTIME (seconds per measurement, default 10),
#      AZBUSE_BUILD_DIR (default ./build), AZBUSE_BENCH_QUEUES (default: CPUs),
#      AZBUSE_BENCH_ADD_OPTS (extra azbusectl add options, e.g. --poll-us 20).
# RAM-backed devices (brd, azbuse mem) are written once before they are
# measured, so both are in steady state.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${AZBUSE_BUILD_DIR:-$top/build}
ctl=$build/tools/azbusectl
queues=${AZBUSE_BENCH_QUEUES:-$(nproc)}
. "$here/lib-bench.sh"

cleanup() {
	"$ctl" remove 1 --force >/dev/null 2>&1 || true
	modprobe -r brd null_blk 2>/dev/null || true
}
trap cleanup EXIT

lsmod | grep -q '^azbuse ' || insmod "${AZBUSE_MODULE:-$build/kmod/azbuse.ko}"

modprobe brd rd_nr=1 rd_size=$((512 * 1024)) max_part=0
wait_for_dev /dev/ram0
fill_device /dev/ram0
bench_device brd /dev/ram0
modprobe -r brd

modprobe null_blk nr_devices=1 queue_mode=2 irqmode=0 gb=1 bs=4096
wait_for_dev /dev/nullb0
bench_device null_blk /dev/nullb0
modprobe -r null_blk

declare -A per_call
for engine in null mem; do
	# shellcheck disable=SC2086 # extra options split on purpose
	"$ctl" add 1 --engine="$engine" --size 512M --queues "$queues" ${AZBUSE_BENCH_ADD_OPTS:-} >/dev/null
	fill_device /dev/azbuse1
	bench_device "azbuse-$engine" /dev/azbuse1
	per_call[$engine]=$("$ctl" info 1 --json | tr ',' '\n' |
		awk -F': ' '/"requests"/ { r += $2 } /"syscalls"/ { s += $2 }
			END { printf "%.1f", s ? r / s : 0 }')
	"$ctl" remove 1
done
trap - EXIT

echo
bench_table
echo
# iops NAME RW: the IOPS measured for NAME and RW in this run
iops() {
	local r name rw value lat
	for r in "${BENCH_RESULTS[@]}"; do
		read -r name rw value lat <<<"$r"
		if [ "$name" = "$1" ] && [ "$rw" = "$2" ]; then
			echo "$value"
			return
		fi
	done
	echo 0
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b ? a / b : 0 }'; }

printf '%-12s %-10s %10s %12s %8s %12s\n' device rw iops vs_null_blk vs_brd req/syscall
for engine in null mem; do
	for rw in randread randwrite; do
		a=$(iops "azbuse-$engine" "$rw")
		vn=$(ratio "$a" "$(iops null_blk "$rw")")
		vb=$(ratio "$a" "$(iops brd "$rw")")
		printf '%-12s %-10s %10s %12s %8s %12s\n' "azbuse-$engine" "$rw" "$a" "$vn" "$vb" \
			"${per_call[$engine]}"
		echo "RATIO dev=azbuse-$engine rw=$rw vs_null_blk=$vn vs_brd=$vb req_per_syscall=${per_call[$engine]}"
	done
done
