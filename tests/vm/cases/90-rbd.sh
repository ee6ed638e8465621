#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 90-rbd: the rbd engine (engine/rbd) on a real Ceph cluster started in this
# VM (ceph_up: a monitor, a manager, one OSD on BlueStore): an image served
# from two queues reads back what fio wrote across a SIGKILL of a worker;
# ext4 on it passes fsck; the whole daemon killed under fio is taken over by
# `azbusectl add --recover` with nothing lost; an OSD restarted under load
# delays I/O but no error reaches the filesystem; an image with the
# exclusive-lock feature is refused on several queues, with the fix named;
# one whose configuration turns librbd's cache on is refused.
# With -o direct=on, reads and writes go to the objects directly (the
# object path, through librados) where the image's features allow: all of
# vol1's, only the reads of the locked image; by default over azbuse's own
# messenger (case 92); with -o direct=off, everything goes through librbd.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio mkfs.ext4 e2fsck

conf=$(ceph_up)
rbd() { command rbd -c "$conf" "$@"; }
mnt=/mnt/azbuse-rbd
work=$(mktemp -d /tmp/rbd.XXXXXX)
trap 'if mountpoint -q "$mnt"; then umount "$mnt"; fi' EXIT

rbd create --size 512M --image-feature layering rbd/vol1 || die "rbd create failed"
dev=$(azbusectl add 1 --engine=rbd --image rbd/vol1 --conf "$conf" --queues 2 -o direct=on \
	--recovery-timeout 60000) || die "azbusectl add --engine=rbd failed"
[ "$(blockdev --getsize64 "$dev")" = $((512 << 20)) ] || die "$dev is not the image's 512 MiB"
wait_for 10 grep -q "rbd/vol1: object path for reads and writes" /run/azbuse/supervisor-*.log ||
	die "rbd/vol1 (layering only) does not take the object path for reads and writes"
log "rbd/vol1 on $dev, two queues, -o direct=on: reads and writes to its objects directly"

# fio verify across a worker kill
head -c 16M /dev/urandom >"$work/old"
ms=$(verify_across_worker_kill 1 "$dev" "$work/fio.log" "$work/old" 400)
# (dd stops reading after what it compares: the export's broken pipe is expected)
cmp <(command rbd -c "$conf" export --no-progress rbd/vol1 - 2>/dev/null |
	dd bs=1M skip=400 count=16 iflag=fullblock status=none) \
	"$work/old" || die "the image itself does not hold what was written through the device"
log "fio verify across a worker kill (new worker in $ms ms); the image holds the data"

# ext4, then the whole daemon killed under fio and taken over; then an OSD
# restarted under load (I/O waits for it), no error reaching ext4
rbd_recover_trial "$dev" "$mnt" "$work"
rbd_osd_restart_trial "$dev" "$mnt" "$work" "$conf"
remove_device 1
read -r reads writes _ < <(rbd_object_path_counts rbd/vol1)
if [ "$reads" = 0 ] || [ "$writes" = 0 ]; then
	die "the workers did not use the object path: $reads reads, $writes writes"
fi
log "object path: $reads reads and $writes writes went to vol1's objects directly"

# exclusive-lock: one handle writes at a time, so several queues are refused
rbd create --size 64M rbd/locked || die "rbd create failed"
if azbusectl add 1 --engine=rbd --image rbd/locked --conf "$conf" --queues 2 2>"$work/err"; then
	die "an exclusive-lock image was served from two queues"
fi
grep -q 'rbd feature disable' "$work/err" || die "the refusal does not say how: $(cat "$work/err")"
if azbusectl add 1 --engine=rbd --image rbd/locked --conf "$conf" --queues 1 -o direct=maybe \
	2>"$work/err-direct"; then
	die "-o direct=maybe was taken"
fi
grep -q "give wire" "$work/err-direct" || die "unclear refusal of -o direct=maybe: $(cat "$work/err-direct")"
dev=$(azbusectl add 1 --engine=rbd --image rbd/locked --conf "$conf" --queues 1 -o direct=off) ||
	die "the exclusive-lock image with one queue, all through librbd (-o direct=off), failed"
dd if="$work/old" of="$dev" bs=1M count=8 oflag=direct status=none
cmp <(dd if="$dev" bs=1M count=8 iflag=direct status=none) <(head -c 8M "$work/old") ||
	die "rbd/locked reads back wrong through librbd"
remove_device 1
if grep -q "rbd/locked: object path" /run/azbuse/supervisor-*.log; then
	die "the object path was taken with -o direct=off"
fi
dev=$(azbusectl add 1 --engine=rbd --image rbd/locked --conf "$conf" --queues 1 -o direct=on) ||
	die "the exclusive-lock image with one queue and -o direct=on failed"
wait_for 10 grep -q "rbd/locked: object path for reads (writes through librbd" \
	/run/azbuse/supervisor-*.log || die "rbd/locked's writes are not left to librbd"
dd if="$work/old" of="$dev" bs=1M count=16 oflag=direct status=none
cmp <(dd if="$dev" bs=1M count=16 iflag=direct status=none) "$work/old" || die "rbd/locked reads back wrong"
remove_device 1
log "exclusive-lock image: refused on two queues ($(cut -c1-60 "$work/err")...), served on one"

# librbd's cache turned on by the image's configuration (applied over the
# engine's): refused with how to turn it off, since a cached handle per
# queue would acknowledge writes a dead worker loses
rbd config image set rbd/locked rbd_cache true || die "rbd config image set failed"
if azbusectl add 1 --engine=rbd --image rbd/locked --conf "$conf" --queues 1 2>"$work/err-cache"; then
	die "an image with rbd_cache on in its configuration was served"
fi
grep -q "rbd config image set rbd/locked rbd_cache false" "$work/err-cache" ||
	die "the refusal of rbd_cache does not say how: $(cat "$work/err-cache")"
rbd config image set rbd/locked rbd_cache false || die "rbd config image set failed"
dev=$(azbusectl add 1 --engine=rbd --image rbd/locked --conf "$conf" --queues 1) ||
	die "the image with rbd_cache set off again was refused"
remove_device 1
log "rbd_cache on in the image's configuration: refused ($(cut -c1-70 "$work/err-cache")...)"
# (the images stay: a killed client's watch on vol1 outlives it for a while,
# and the cluster is gone with the VM)
rm -rf "$work"
log "ok"
