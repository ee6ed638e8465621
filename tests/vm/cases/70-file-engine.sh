#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 70-file-engine: the file engine over a file on ext4: an ext4 filesystem on
# the azbuse device survives umount, fsck and remount; fio verify passes with
# one and two queues; each worker is one thread (its loop waits for new
# requests and its io_uring's completions in one poll), and a worker
# SIGKILLed under fio verify loses nothing; discard gives the backing file's blocks back while
# write-zeroes with NOUNMAP keeps them; what was written is in the backing
# file after the device is removed.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio

back=/mnt/azbuse-back
cleanup_back() {
	mountpoint -q /mnt/azbuse-fs && umount /mnt/azbuse-fs
	cleanup_devices
	mountpoint -q "$back" && umount "$back"
	modprobe -r brd 2>/dev/null || true
}
trap cleanup_back EXIT

modprobe brd rd_nr=1 rd_size=$((900 * 1024)) max_part=0
wait_for 5 test -b /dev/ram0 || die "no /dev/ram0"
mkfs.ext4 -q -F /dev/ram0
mkdir -p "$back" /mnt/azbuse-fs
mount /dev/ram0 "$back"
img=$back/disk.img

add_file_device() { # SIZE OPTIONS...
	local size=$1 dev
	shift
	dev=$(azbusectl add 2 --engine=file --path "$img" --size "$size" "$@") ||
		die "azbusectl add --engine=file failed"
	[ -b "$dev" ] || die "'$dev' is not a block device"
	echo "$dev"
}
allocated_kib() { du -k "$img" | cut -f1; }

# --- ext4 round trip -----------------------------------------------------------
dev=$(add_file_device 512M --queues 2)
log "device $dev on $img ($(stat -c %s "$img") bytes, $(allocated_kib) KiB allocated)"
mkfs.ext4 -q -F "$dev"
mount "$dev" /mnt/azbuse-fs
write_random_files /mnt/azbuse-fs 20 100
sha256_record /mnt/azbuse-fs /tmp/file-engine.sha256
umount /mnt/azbuse-fs
fsck.ext4 -f -n "$dev" >/dev/null || die "fsck found errors"
echo 3 >/proc/sys/vm/drop_caches
mount "$dev" /mnt/azbuse-fs
sha256_verify /mnt/azbuse-fs /tmp/file-engine.sha256 || die "checksums differ after remount"
umount /mnt/azbuse-fs
log "ok   ext4: 100 MiB written, fsck clean, checksums match after remount"

# --- fio verify ----------------------------------------------------------------
run_fio --name=file-verify --filename="$dev" --direct=1 --ioengine=libaio --iodepth=16 \
	--rw=randwrite --bssplit=4k/40:64k/30:1m/30 --size=128M --numjobs=2 \
	--offset_increment=256M --verify=crc32c --do_verify=1 --verify_fatal=1 --group_reporting
log "ok   fio verify, 2 jobs on 2 queues"
for q in 0 1; do # (io_uring's own io-wq workers, iou-wrk-*, show up as its tasks)
	pid=$(queue_counter 2 "$q" worker_pid)
	others=$(for t in /proc/"$pid"/task/*; do [ "${t##*/}" = "$pid" ] || cat "$t/comm"; done |
		awk '!/^iou-/ { n++ } END { print n + 0 }')
	[ "$others" -eq 0 ] || die "the worker of queue $q has $others thread(s) of its own"
done
fio --name=file-kill --filename="$dev" --direct=1 --ioengine=libaio --iodepth=32 \
	--rw=randwrite --bssplit=4k/50:64k/50 --size=96M --numjobs=2 --offset_increment=256M \
	--cpus_allowed=0-1 --cpus_allowed_policy=split --verify=crc32c --do_verify=1 \
	--verify_fatal=1 --eta=never --output=/tmp/file-kill.log &
fio_pid=$!
sleep 1
ms=$(replace_worker 2 1)
wait_fio "$fio_pid" /tmp/file-kill.log "with a worker killed"
log "ok   one thread per worker; fio verify across a worker SIGKILL (new worker in $ms ms)"
remove_device 2

# --- discard and write-zeroes against the backing file's allocation ------------
rm -f "$img"
dev=$(add_file_device 256M --queues 1)
dd if=/dev/urandom of="$dev" bs=1M count=64 oflag=direct status=none
sync
before=$(allocated_kib)
blkdiscard -o 0 -l $((32 << 20)) "$dev"
sync
after=$(allocated_kib)
log "discard of 32 MiB: backing file $before KiB -> $after KiB allocated"
[ $((before - after)) -ge $((30 * 1024)) ] || die "discard did not give the blocks back"
blkdiscard -z -o $((32 << 20)) -l $((16 << 20)) "$dev" # NOUNMAP: stays allocated
sync
[ $(($(allocated_kib) - after)) -ge -1024 ] || die "write-zeroes with NOUNMAP freed blocks"
cmp -n $((16 << 20)) -i $((32 << 20)):0 "$dev" /dev/zero || die "write-zeroes left data"
fallocate -p -o $((32 << 20)) -l $((16 << 20)) "$dev" # no NOUNMAP: may unmap
sync
log "write-zeroes: NOUNMAP kept the blocks, without NOUNMAP $(allocated_kib) KiB allocated"
[ "$(allocated_kib)" -le $((after - 15 * 1024)) ] || die "write-zeroes without NOUNMAP kept the blocks"
cmp -n $((48 << 20)) "$dev" /dev/zero || die "the zeroed ranges do not read as zeros"
log "ok   discard and write-zeroes shrink the backing file; NOUNMAP keeps it allocated"

# --- what was written is in the file -------------------------------------------
dd if=/dev/urandom of=/tmp/pattern bs=1M count=8 status=none
dd if=/tmp/pattern of="$dev" bs=1M seek=100 oflag=direct,dsync status=none
remove_device 2
cmp -n $((8 << 20)) -i 0:$((100 << 20)) /tmp/pattern "$img" || die "the backing file lacks the data"
log "ok   the data is in the backing file after removal"
trap - EXIT
cleanup_back
log "ok"
