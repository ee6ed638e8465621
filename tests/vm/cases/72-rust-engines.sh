#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 72-rust-engines: the Rust binding's examples (bindings/rust/examples),
# built by cargo with Debian's rustc, each serving a device from two queues:
# fio verify passes across a SIGKILL of a worker (its replacement finds the
# data: the RAM disk's memory was mapped by the supervisor before the fork;
# the checksum engine's files are on disk), data written before the kill
# reads back after it, and ext4 made on the device passes fsck. The checksum
# engine also completes every request from threads of its own, and a block
# changed behind its back reads as an I/O error, not as wrong data.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio mkfs.ext4 e2fsck

examples=$AZBUSE_BUILD_DIR/bindings/rust/target/release/examples
dev=/dev/azbuse1
work=$(mktemp -d /tmp/rust-engines.XXXXXX)

# exercise NAME PROGRAM ARGS...: the checks every example passes
exercise() {
	local name=$1 ms
	shift
	"$@" >/dev/null || die "$name did not start"
	[ -b "$dev" ] || die "$name: $dev missing"
	[ "$(azbusectl info 1 --json | grep -o '"queues": [0-9]*' | grep -o '[0-9]*$')" = 2 ] ||
		die "$name: the device does not have 2 queues"
	head -c 16M /dev/urandom >"$work/old"
	ms=$(verify_across_worker_kill 1 "$dev" "$work/fio.log" "$work/old" 200)
	mkfs.ext4 -q -F "$dev" || die "$name: mkfs.ext4 failed"
	mkdir -p "$work/mnt"
	mount "$dev" "$work/mnt" || die "$name: mount failed"
	cp "$work/old" "$work/mnt/file"
	sync
	umount "$work/mnt"
	e2fsck -fn "$dev" >"$work/fsck.log" 2>&1 || { cat "$work/fsck.log" >&2; die "$name: fsck found errors"; }
	log "$name: fio verify across a worker kill (new worker in $ms ms), old data intact, ext4 clean"
}

ramdisk=$examples/azbuse-ramdisk
[ -x "$ramdisk" ] || die "no $ramdisk (build with Debian's cargo: cmake finds /usr/bin/cargo)"
exercise ramdisk "$ramdisk" 1 --size 256M --queues 2
remove_device 1

checksum=$examples/azbuse-checksum
[ -x "$checksum" ] || die "no $checksum"
exercise checksum "$checksum" 1 --size 256M --queues 2 -o path="$work/disk.img" -o threads=3
# a block changed behind the engine's back: the read fails, nothing wrong is returned
dd if="$work/old" of="$dev" bs=1M seek=240 count=1 oflag=direct status=none
dd if=/dev/zero of="$work/disk.img" bs=4k seek=$((240 * 256 + 5)) count=1 conv=notrunc status=none
if dd if="$dev" of=/dev/null bs=4k skip=$((240 * 256 + 5)) count=1 iflag=direct status=none 2>/dev/null; then
	die "checksum: a block changed on disk read without an error"
fi
cmp <(dd if="$dev" bs=4k skip=$((240 * 256 + 6)) count=10 iflag=direct status=none) \
	<(dd if="$work/old" bs=4k skip=6 count=10 status=none) || die "checksum: the blocks beside it changed"
log "checksum: a block changed behind its back reads as an I/O error"
remove_device 1
rm -rf "$work"
log "ok"
