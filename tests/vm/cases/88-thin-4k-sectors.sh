#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 88-thin-4k-sectors: thin pools on a disk of 4 KiB logical sectors (loop
# devices with --sector-size 4096 over RAM disks), one on ext4 there and one
# on the raw device (init --data). Direct I/O to such data must be aligned
# to 4 KiB, so the volume's device takes 4 KiB logical blocks (with 512, the
# module's direct I/O of a 512-byte write would fail, and the module
# refuses such a backing); the module still serves reads and overwrites
# from the map, and fio verify passes with no request failed.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio
require_cmd losetup
require_cmd blockdev

fs=/mnt/thin-4k-fs
loops=()
thin_case_cleanup() {
	local l
	cleanup_devices
	if mountpoint -q "$fs"; then umount "$fs"; fi
	for l in "${loops[@]}"; do [ -z "$l" ] || losetup -d "$l"; done
}
thin_pool_setup thin-4k 256 3
modprobe loop
for ram in /dev/ram1 /dev/ram2; do
	loops+=("$(losetup --find --show --sector-size 4096 "$ram")")
done
[ "$(blockdev --getss "${loops[0]}")" = 4096 ] || die "the loop device does not have 4 KiB sectors"

# serve_and_check POOL WHAT: vol1 of POOL served with 4 KiB blocks, written,
# read and overwritten under fio verify, the module serving from the map
serve_and_check() {
	local p=$1 what=$2 lbs failed direct
	"$thin" --pool "$p" create vol1 --size 96M >/dev/null || die "$what: create failed"
	azbusectl add 1 --engine=thin --pool "$p" --volume vol1 >/dev/null ||
		die "$what: serving vol1 failed"
	lbs=$(blockdev --getss /dev/azbuse1)
	[ "$lbs" = 4096 ] || die "$what: the device's logical block is $lbs bytes, not the data's 4096"
	run_fio --name="$what-fill" --filename=/dev/azbuse1 --rw=write --bs=64k --size=64M \
		--direct=1 --ioengine=libaio --iodepth=8 --verify=crc32c --do_verify=0
	run_fio --name="$what-overwrite" --filename=/dev/azbuse1 --rw=randwrite --bs=4k --size=64M \
		--direct=1 --ioengine=libaio --iodepth=16 --number_ios=4096 --norandommap \
		--verify=crc32c --do_verify=1 --verify_fatal=1
	direct=$(queue_sum direct)
	failed=$(queue_sum failed)
	[ "$direct" -gt 0 ] || die "$what: the module served nothing from the map"
	[ "$failed" = 0 ] || die "$what: $failed requests failed"
	if dmesg | grep -q 'azbuse.*direct.*-22'; then die "$what: the module's direct I/O failed"; fi
	remove_device 1
	"$thin" --pool "$p" check >/tmp/thin-4k-check.log 2>&1 ||
		{ cat /tmp/thin-4k-check.log >&2; die "$what: check found problems"; }
	log "ok   $what: 4 KiB logical blocks, $direct requests served from the map, fio verify"
}

mkfs.ext4 -q -F "${loops[0]}"
mkdir -p "$fs"
mount "${loops[0]}" "$fs"
"$thin" --pool "$fs/pool" init --chunk-size 64k --shards 2 >/dev/null || die "init on ext4 failed"
serve_and_check "$fs/pool" "ext4 on 4k sectors"

athin init --data "${loops[1]}" --chunk-size 64k --shards 2 >/dev/null || die "init --data on 4k sectors failed"
serve_and_check "$pool" "raw 4k-sector device"
log "ok"
