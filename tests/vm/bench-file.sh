#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench-file.sh: runs INSIDE the test VM. fio 4k random read and write at
# queue depth 32 on a loop device and on azbuse's file engine over the same
# file (on ext4 on brd), buffered and with O_DIRECT on the backing file, all
# in this one VM run, with the ratios azbuse/loop.
#
#   tests/vm/vm-run.sh -- tests/vm/bench-file.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
ctl=${AZBUSE_BUILD_DIR:-$top/build}/tools/azbusectl
. "$here/lib-bench.sh"

cleanup() {
	"$ctl" remove 3 --force >/dev/null 2>&1 || true
	losetup -D 2>/dev/null || true
	mountpoint -q /mnt/bench-back && umount /mnt/bench-back
	modprobe -r brd 2>/dev/null || true
}
trap cleanup EXIT

lsmod | grep -q '^azbuse ' || insmod "${AZBUSE_MODULE:-${AZBUSE_BUILD_DIR:-$top/build}/kmod/azbuse.ko}"
modprobe loop
modprobe brd rd_nr=1 rd_size=$((700 * 1024)) max_part=0
sleep 0.5
mkfs.ext4 -q -F /dev/ram0
mkdir -p /mnt/bench-back
mount /dev/ram0 /mnt/bench-back
img=/mnt/bench-back/disk.img
truncate -s 512M "$img"
dd if=/dev/zero of="$img" bs=1M count=512 conv=fsync status=none

for mode in buffered direct; do
	flag=off
	opt=0
	[ "$mode" = direct ] && flag=on && opt=1
	loopdev=$(losetup -f --show --direct-io="$flag" "$img")
	bench_device "loop-$mode" "$loopdev"
	losetup -d "$loopdev"
	"$ctl" add 3 --engine=file --path "$img" -o direct="$opt" >/dev/null
	bench_device "azbuse-file-$mode" /dev/azbuse3
	"$ctl" info 3 --json | tr ',' '\n' |
		awk -F': ' '/"requests"/ { r += $2 } /"syscalls"/ { s += $2 }
			END { printf "requests per syscall: %.1f\n", s ? r / s : 0 }'
	"$ctl" remove 3
done
trap - EXIT
cleanup

echo
bench_table
for mode in buffered direct; do
	for rw in randread randwrite; do
		a=$(printf '%s\n' "${BENCH_RESULTS[@]}" | awk -v n="azbuse-file-$mode" -v r="$rw" '$1 == n && $2 == r { print $3 }')
		l=$(printf '%s\n' "${BENCH_RESULTS[@]}" | awk -v n="loop-$mode" -v r="$rw" '$1 == n && $2 == r { print $3 }')
		echo "RATIO dev=azbuse-file-$mode rw=$rw vs_loop=$(awk -v a="$a" -v b="$l" 'BEGIN { printf "%.2f", b ? a / b : 0 }')"
	done
done
