#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 91-rbd-snapshots: azbuse-rbd on the shared Ceph cluster (ceph_up), in
# azbuse-thin's words, against an image that an azbuse device serves from
# two queues behind a RAM cache: a snapshot taken while it is served holds
# exactly what was written before it; a clone of it (protected on the way)
# reads as the snapshot and is served too; a rollback is refused while the
# image is served and done after, and the device then reads the snapshot; a
# resize grows and shrinks the served device with the image (a shrink is
# refused while a cache serves it), and the device follows an image grown
# by `rbd resize`; a snapshot with
# clones is not deleted; the cache's reads are served by the module. Served
# with -o direct=on: the snapshot is taken while writes go to the objects
# directly (the object path), which must carry the new snapshot context
# from the next write on; the clone's reads of objects it never wrote are
# handed to librbd. The clone, and the image after its rollback (resized
# while served), take the object path over azbuse's own messenger
# (-o direct=wire): the same hand-over of unwritten objects, and the size
# it checks requests against follows the header.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd python3
tool=$AZBUSE_BUILD_DIR/tools/azbuse-rbd
[ -x "$tool" ] || skip "no azbuse-rbd (librbd-dev missing at build time)"

conf=$(ceph_up)
rbd() { command rbd -c "$conf" "$@"; }
arbd() { "$tool" --conf "$conf" "$@"; }
work=$(mktemp -d /tmp/rbd-snap.XXXXXX)

rbd create --size 128M --image-feature layering rbd/snapvol || die "rbd create failed"
dev=$(azbusectl add 1 --engine=rbd --image rbd/snapvol --conf "$conf" --queues 2 -o direct=on --cache 64M) ||
	die "azbusectl add --engine=rbd --cache failed"
head -c 16M /dev/urandom >"$work/a"
head -c 16M /dev/urandom >"$work/b"

# --- the cache in front: reads of a warm set come from the module -------------
azbusectl cache 1 --seq-cutoff 0 >/dev/null # (the warm-up is one sequential stream)
dd if="$work/a" of="$dev" bs=1M oflag=direct status=none
dd if="$dev" of=/dev/null bs=64k count=256 iflag=direct status=none
before=$(azbusectl cache 1 --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["module_hits"])')
cmp <(dd if="$dev" bs=64k count=256 iflag=direct status=none) "$work/a" || die "rbd+cache reads back wrong"
hits=$(($(azbusectl cache 1 --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["module_hits"])') - before))
[ "$hits" -ge 250 ] || die "only $hits of 256 warm reads were served by the module"
if arbd resize rbd/snapvol --size 64M --yes 2>"$work/err"; then
	die "an image served behind a cache was shrunk"
fi
grep -q "RAM cache" "$work/err" || die "unclear refusal: $(cat "$work/err")"
log "ok   rbd behind a RAM cache: $hits of 256 warm reads served by the module; no shrink under it"

# --- a snapshot of the served image -------------------------------------------
arbd snapshot rbd/snapvol s1 >/dev/null || die "azbuse-rbd snapshot failed"
dd if="$work/b" of="$dev" bs=1M oflag=direct status=none
arbd --json list rbd/snapvol >"$work/list.json" || die "azbuse-rbd list failed"
python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); assert [x["name"] for x in s] == ["s1"], s' \
	"$work/list.json" || die "list: $(cat "$work/list.json")"
cmp <(rbd export --no-progress rbd/snapvol@s1 - 2>/dev/null | head -c 16M) "$work/a" ||
	die "the snapshot does not hold what was written before it"
log "ok   snapshot of the served image holds exactly the writes before it; list shows it"

# --- a clone of it, served ------------------------------------------------------
arbd clone rbd/snapvol@s1 rbd/clone1 >/dev/null || die "azbuse-rbd clone failed"
dev2=$(azbusectl add 2 --engine=rbd --image rbd/clone1 --conf "$conf" --queues 2 -o direct=wire) ||
	die "serving the clone failed"
cmp <(dd if="$dev2" bs=1M count=16 iflag=direct status=none) "$work/a" || die "the clone reads wrong"
dd if="$work/b" of="$dev2" bs=1M seek=32 oflag=direct status=none
cmp <(dd if="$dev2" bs=1M skip=32 count=16 iflag=direct status=none) "$work/b" ||
	die "the clone does not read back its own writes"
remove_device 2
grep -q "rbd/clone1: object path for reads (writes through librbd" /run/azbuse/supervisor-*.log ||
	die "the clone's writes are not left to librbd (a first write copies the parent's object up)"
read -r reads writes handed < <(rbd_object_path_counts rbd/clone1)
if [ "$writes" != 0 ] || [ "$handed" = 0 ]; then
	die "the clone's object path: $reads reads, $writes writes, $handed reads of unwritten objects through librbd"
fi
log "ok   clone of the snapshot (protected on the way) served: reads the snapshot, takes writes"

# --- rollback: refused while served, then done ---------------------------------
if arbd rollback rbd/snapvol s1 --yes 2>"$work/err"; then
	die "rollback of a served image succeeded"
fi
grep -q "stop serving it first" "$work/err" || die "unclear refusal: $(cat "$work/err")"
grep -q "open by 2 other client" "$work/err" || die "not one client per queue: $(cat "$work/err")"
if arbd rollback rbd/snapvol s1 2>/dev/null; then
	die "rollback without --yes succeeded"
fi
remove_device 1
arbd rollback rbd/snapvol s1 --yes >/dev/null || die "azbuse-rbd rollback failed"
dev=$(azbusectl add 1 --engine=rbd --image rbd/snapvol --conf "$conf" --queues 2 -o direct=wire) ||
	die "serving the image again failed"
cmp <(dd if="$dev" bs=1M count=16 iflag=direct status=none) "$work/a" ||
	die "after the rollback the image does not read as the snapshot"
log "ok   rollback refused while served ($(head -c 60 "$work/err")...), done after"

# --- resize of the served image --------------------------------------------------
arbd resize rbd/snapvol --size 256M >/dev/null || die "azbuse-rbd resize (grow) failed"
[ "$(blockdev --getsize64 "$dev")" = $((256 << 20)) ] ||
	die "the device did not grow with the image: $(blockdev --getsize64 "$dev")"
dd if="$work/b" of="$dev" bs=1M seek=200 oflag=direct status=none
cmp <(dd if="$dev" bs=1M skip=200 count=16 iflag=direct status=none) "$work/b" ||
	die "the grown range reads back wrong"
if arbd resize rbd/snapvol --size 128M 2>/dev/null; then
	die "a shrink without --yes succeeded"
fi
arbd resize rbd/snapvol --size 128M --yes >/dev/null || die "azbuse-rbd resize (shrink) failed"
[ "$(blockdev --getsize64 "$dev")" = $((128 << 20)) ] || die "the device did not shrink"
[ "$(rbd info --format json rbd/snapvol | python3 -c 'import json, sys; print(json.load(sys.stdin)["size"])')" = $((128 << 20)) ] ||
	die "the image did not shrink"
cmp <(dd if="$dev" bs=1M count=16 iflag=direct status=none) "$work/a" || die "data lost in the resizes"
# grown behind the device's back: the device follows
rbd resize --no-progress --size 192M rbd/snapvol >/dev/null || die "rbd resize failed"
wait_for 20 sh -c "[ \$(blockdev --getsize64 $dev) = $((192 << 20)) ]" ||
	die "the device did not follow rbd resize: $(blockdev --getsize64 "$dev")"
dd if="$work/b" of="$dev" bs=1M seek=160 oflag=direct status=none
cmp <(dd if="$dev" bs=1M skip=160 count=16 iflag=direct status=none) "$work/b" ||
	die "the range rbd resize added reads back wrong"
# shrunk behind the device's back: the device stays, and I/O past the
# image's end fails (librbd would cut a write short and report success)
rbd resize --no-progress --allow-shrink --size 176M rbd/snapvol >/dev/null ||
	die "rbd resize (shrink) failed"
wait_for 20 grep -q "rbd/snapvol shrank to $((176 << 20)) bytes under azbuse1" \
	/run/azbuse/supervisor-*.log || die "no warning of the shrink behind the device's back"
end=$((176 << 20))
if dd if="$work/b" of="$dev" bs=8K count=1 seek=$((end - 4096)) oflag=direct,seek_bytes \
	status=none 2>/dev/null; then
	die "a write across the shrunk image's end succeeded"
fi
if dd if="$dev" of=/dev/null bs=8K count=1 skip=$((end - 4096)) iflag=direct,skip_bytes \
	status=none 2>/dev/null; then
	die "a read across the shrunk image's end succeeded"
fi
grep -q "rbd/snapvol: .* lie past the image's end" /run/azbuse/supervisor-*.log ||
	die "the worker did not say why the I/O past the end failed"
# (a failed write may have written a part: the last MiB is not compared)
cmp <(dd if="$dev" bs=1M skip=160 count=15 iflag=direct status=none) <(head -c 15M "$work/b") ||
	die "the range within the shrunk image reads back wrong"
remove_device 1
log "ok   resize: the served device grew to 256 MiB and shrank back to 128 MiB with its image; it followed rbd resize to 192 MiB; past the end of an image shrunk behind it, I/O fails"

# --- a snapshot with clones is not deleted ----------------------------------------
if arbd delete rbd/snapvol@s1 --yes 2>"$work/err"; then
	die "a snapshot with a clone was deleted"
fi
grep -q "has clones" "$work/err" || die "unclear refusal: $(cat "$work/err")"
rbd rm --no-progress rbd/clone1 >/dev/null 2>&1 || die "rbd rm clone1 failed"
arbd delete rbd/snapvol@s1 --yes >/dev/null || die "azbuse-rbd delete failed"
[ "$(arbd --json list rbd/snapvol | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')" = 0 ] ||
	die "the snapshot is still listed: $(arbd list rbd/snapvol)"
log "ok   a snapshot with a clone is kept; without, deleted"
rm -rf "$work"
log "ok"
