#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 92-rbd-wire: the rbd engine's object path over azbuse's own RADOS
# messenger (the default, -o direct=wire, engine/rbd/osd_wire.c: msgr2
# straight to each object's primary OSD from the worker's thread, with
# cephx), on the cluster ceph_up starts in this VM. The same trials as
# case 90's librados paths: fio
# verify across a worker's SIGKILL, with the image itself holding the data
# (read back through librbd); ext4 across the whole daemon's SIGKILL and
# `--recover`; an OSD restarted under fio, no error reaching ext4, fsck
# clean. Then snapshots stay exact: a snapshot taken while the device
# serves holds what was written before it, not what came after (the own
# path's writes carry the image's snapshot context, read again when the
# header changes). The workers renew their cephx tickets as they age (the
# cluster's last 60 s) and connect with the new ones (the OSD restart comes
# after a renewal). A blocklisted (fenced) own-path client cannot write.
# And the path was taken: the workers' counts at close.
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
dev=$(azbusectl add 1 --engine=rbd --image rbd/wire1 --conf "$conf" --queues 2 \
	--recovery-timeout 60000) || die "azbusectl add --engine=rbd failed"
wait_for 10 grep -q "rbd/wire1: object path over azbuse's own RADOS messenger" \
	/run/azbuse/supervisor-*.log || die "rbd/wire1 did not take the own messenger (the default)"
grep -q "rbd/wire1: own RADOS path: cephx tickets from the monitors" /run/azbuse/supervisor-*.log ||
	die "the own messenger did not get cephx tickets"
wait_for 10 grep -q "rbd/wire1: object path for reads and writes" /run/azbuse/supervisor-*.log ||
	die "rbd/wire1 (layering only) does not take the object path for reads and writes"
log "rbd/wire1 on $dev, two queues: reads and writes over our own messenger, cephx"

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

# ext4, then the whole daemon killed under fio and taken over; then an OSD
# restarted under load (I/O waits for it), no error reaching ext4
rbd_recover_trial "$dev" "$mnt" "$work"
renewed() { cat /run/azbuse/supervisor-*.log | grep -c "rbd/wire1: own RADOS path: cephx tickets renewed"; }
before=$(renewed)
wait_for 60 sh -c "[ \$(cat /run/azbuse/supervisor-*.log | grep -c 'rbd/wire1: own RADOS path: cephx tickets renewed') -gt $before ]" ||
	die "the new workers did not renew their cephx tickets within 60 s"
log "cephx tickets renewed ($(renewed) renewals so far): the OSD restart reconnects with them"
rbd_osd_restart_trial "$dev" "$mnt" "$work" "$conf"
remove_device 1

# fencing: an `osd blocklist` of the own path's client (its address as the
# OSD sees it, its global id as the nonce) refuses its I/O, as for any
# RADOS client: a fenced host cannot write on
wire_line="rbd/wire1: object path over azbuse's own RADOS messenger"
opened=$(cat /run/azbuse/supervisor-*.log | grep -c "$wire_line")
dev=$(azbusectl add 1 --engine=rbd --image rbd/wire1 --conf "$conf" --queues 1 -o direct=wire) ||
	die "serving rbd/wire1 again failed"
wait_for 10 sh -c "[ \$(cat /run/azbuse/supervisor-*.log | grep -c \"$wire_line\") -gt $opened ]" ||
	die "the new worker did not take the own messenger"
gid=$(cat /run/azbuse/supervisor-*.log | grep "$wire_line" | tail -1 | sed -n 's/.*global id \([0-9]*\)).*/\1/p')
[ -n "$gid" ] || die "no global id in the worker's log"
dd if=/dev/urandom of="$dev" bs=4k count=1 seek=10 oflag=direct status=none ||
	die "a write before the blocklist failed"
command ceph -c "$conf" osd blocklist add "127.0.0.1:0/$gid" >/dev/null 2>&1 ||
	die "ceph osd blocklist add failed"
sleep 2 # (the OSD takes the new map)
if dd if=/dev/urandom of="$dev" bs=4k count=1 seek=11 oflag=direct status=none 2>/dev/null; then
	die "a write of the blocklisted client 127.0.0.1:0/$gid succeeded"
fi
command ceph -c "$conf" osd blocklist rm "127.0.0.1:0/$gid" >/dev/null 2>&1 ||
	die "ceph osd blocklist rm failed"
remove_device 1
log "fenced: with 127.0.0.1:0/$gid on the OSD blocklist, the own path's write failed"

ops=$(cat /run/azbuse/supervisor-*.log | awk '/rbd\/wire1: own RADOS path: / {
	sub(/.*own RADOS path: /, ""); n += $1; r += $3 } END { print n + 0, r + 0 }')
read -r sent resent <<<"$ops"
[ "$sent" -gt 0 ] || die "the workers sent nothing over the own messenger"
log "own messenger: $sent ops, $resent of them sent again (the OSD restart, the kills)"
