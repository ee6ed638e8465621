#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 92-rbd-wire: the rbd engine's object path over azbuse's own RADOS
# messenger (-o direct=wire, engine/rbd/osd_wire.c: msgr2 straight to each
# object's primary OSD from the worker's thread), on the cluster ceph_up
# starts in this VM. The same trials as case 90's librados paths: fio
# verify across a worker's SIGKILL, with the image itself holding the data
# (read back through librbd); ext4 across the whole daemon's SIGKILL and
# `--recover`; an OSD restarted under fio, no error reaching ext4, fsck
# clean. Then snapshots stay exact: a snapshot taken while the device
# serves holds what was written before it, not what came after (the own
# path's writes carry the image's snapshot context, read again when the
# header changes). And the path was taken: the workers' counts at close.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio mkfs.ext4 e2fsck

conf=$(ceph_up)
rbd() { command rbd -c "$conf" "$@"; }
mnt=/mnt/azbuse-rbd-wire
work=$(mktemp -d /tmp/rbdwire.XXXXXX)
trap 'if mountpoint -q "$mnt"; then umount "$mnt"; fi' EXIT

rbd create --size 512M --image-feature layering rbd/wire1 || die "rbd create failed"
dev=$(azbusectl add 1 --engine=rbd --image rbd/wire1 --conf "$conf" --queues 2 -o direct=wire \
	--recovery-timeout 60000) || die "azbusectl add -o direct=wire failed"
wait_for 10 grep -q "rbd/wire1: object path over azbuse's own RADOS messenger" \
	/run/azbuse/supervisor-*.log || die "rbd/wire1 did not take the own messenger"
wait_for 10 grep -q "rbd/wire1: object path for reads and writes" /run/azbuse/supervisor-*.log ||
	die "rbd/wire1 (layering only) does not take the object path for reads and writes"
log "rbd/wire1 on $dev, two queues, -o direct=wire: reads and writes over our own messenger"

# fio verify across a worker kill; the image (through librbd) holds the data
head -c 16M /dev/urandom >"$work/old"
ms=$(verify_across_worker_kill 1 "$dev" "$work/fio.log" "$work/old" 400)
# (dd stops reading after what it compares: the export's broken pipe is expected)
cmp <(command rbd -c "$conf" export --no-progress rbd/wire1 - 2>/dev/null |
	dd bs=1M skip=400 count=16 iflag=fullblock status=none) \
	"$work/old" || die "the image itself does not hold what was written through the device"
log "fio verify across a worker kill (new worker in $ms ms); the image holds the data"

# a snapshot while served: exact to the writes completed before it
head -c 8M /dev/urandom >"$work/before"
head -c 8M /dev/urandom >"$work/after"
dd if="$work/before" of="$dev" bs=1M seek=100 oflag=direct status=none
rbd snap create rbd/wire1@s1 || die "rbd snap create failed"
dd if="$work/after" of="$dev" bs=1M seek=100 oflag=direct status=none
cmp <(dd if="$dev" bs=1M skip=100 count=8 iflag=direct status=none) "$work/after" ||
	die "the device does not read back what was written after the snapshot"
cmp <(command rbd -c "$conf" export --no-progress rbd/wire1@s1 - 2>/dev/null |
	dd bs=1M skip=100 count=8 iflag=fullblock status=none) "$work/before" ||
	die "snapshot s1 changed after it was taken (the own path's writes missed its context)"
log "a snapshot taken while served holds the writes before it, not those after"

# ext4, then the whole daemon killed under fio and taken over
mkfs.ext4 -q -F "$dev"
mkdir -p "$mnt"
mount "$dev" "$mnt"
fio --name=recover --directory="$mnt" --ioengine=libaio --direct=1 --iodepth=8 --rw=randwrite \
	--bs=4k --size=16M --numjobs=2 --fsync=32 --verify=crc32c --do_verify=1 --verify_fatal=1 \
	--group_reporting >"$work/fio-recover.log" 2>&1 &
fio_pid=$!
sleep 3
sup=$(supervisor_pids | head -1)
[ -n "$sup" ] || die "no supervisor"
kill -KILL -- "-$sup"
wait_for 5 sh -c "! kill -0 $sup 2>/dev/null" || die "the supervisor survived SIGKILL"
sleep 1
dev2=$(azbusectl add 1 --recover) || die "azbusectl add 1 --recover failed"
[ "$dev2" = "$dev" ] || die "--recover printed $dev2, not $dev"
wait_fio "$fio_pid" "$work/fio-recover.log" "across the daemon's death and --recover"
log "the daemon killed under fio on ext4, taken over by --recover: fio verified"

# an OSD restarted under load: I/O waits for it (sent again to its new
# address, with the same request ids), no error reaches ext4
fio --name=osd --directory="$mnt" --ioengine=libaio --direct=1 --iodepth=8 --rw=randwrite \
	--bs=4k --size=16M --numjobs=1 --fsync=16 --verify=crc32c --do_verify=1 --verify_fatal=1 \
	--time_based --runtime=25 --group_reporting >"$work/fio-osd.log" 2>&1 &
fio_pid=$!
sleep 4
osd_pid=$(cat "$CEPH_DIR/osd.0.pid")
kill "$osd_pid"
wait_for 60 sh -c "! kill -0 $osd_pid 2>/dev/null" || die "osd.0 did not stop"
sleep 3
ceph-osd -c "$conf" -i 0 2>/dev/null || die "osd.0 did not start again"
log "osd.0 restarted under fio"
wait_fio "$fio_pid" "$work/fio-osd.log" "across an OSD restart"
umount "$mnt"
e2fsck -fn "$dev" >"$work/fsck.log" 2>&1 || { cat "$work/fsck.log" >&2; die "fsck found errors"; }
dmesg | grep -q 'I/O error, dev azbuse1' && die "an I/O error reached the block layer"
log "fio verified across the OSD restart; fsck clean; no I/O error"
remove_device 1

ops=$(cat /run/azbuse/supervisor-*.log | awk '/rbd\/wire1: own RADOS path: / {
	sub(/.*own RADOS path: /, ""); n += $1; r += $3 } END { print n + 0, r + 0 }')
read -r sent resent <<<"$ops"
[ "$sent" -gt 0 ] || die "the workers sent nothing over the own messenger"
log "own messenger: $sent ops, $resent of them sent again (the OSD restart, the kills)"
