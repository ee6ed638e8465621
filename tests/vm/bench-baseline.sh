#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench-baseline.sh: baseline block-device numbers to compare azbuse against.
# Runs INSIDE the test VM (as root), e.g.
#   tests/vm/vm-run.sh -- tests/vm/bench-baseline.sh
# Measures fio 4k randread/randwrite (see lib-bench.sh) on brd (512 MiB RAM
# disk) and null_blk (multiqueue, no IRQ, no backing memory), prints a BENCH
# line per measurement and a table, then unloads both modules.
# AZBUSE_BENCH_RUNTIME sets the seconds per measurement (default 10).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib-bench.sh
. "$here/lib-bench.sh"

if [ "$(id -u)" -ne 0 ] || [ ! -d /sys/module ]; then
	echo "bench-baseline.sh: run it as root in the test VM (tests/vm/vm-run.sh)" >&2
	exit 1
fi
for m in brd null_blk; do
	if [ -d "/sys/module/$m" ]; then
		echo "bench-baseline.sh: $m is already loaded; unload it first" >&2
		exit 1
	fi
done

cleanup() {
	modprobe -r brd 2>/dev/null || true
	modprobe -r null_blk 2>/dev/null || true
}
trap cleanup EXIT

modprobe brd rd_nr=1 rd_size=$((512 * 1024)) max_part=0
wait_for_dev /dev/ram0
bench_device brd /dev/ram0
modprobe -r brd

modprobe null_blk nr_devices=1 queue_mode=2 irqmode=0 gb=1 bs=4096
wait_for_dev /dev/nullb0
bench_device null_blk /dev/nullb0
modprobe -r null_blk

trap - EXIT
echo
bench_table
