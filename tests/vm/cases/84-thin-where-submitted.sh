#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 84-thin-where-submitted: a thin volume is served where each request was
# submitted (a second device of the volume is refused). The device has a direct map (route-queue direct-map): reads
# and overwrites of any chunk whose owner published it are served by the
# module from the map (counted as DIRECT), none handed on; first writes
# (posted by the module straight to the owner's ring, as the map knows no
# chunk yet), copy-on-write after live snapshots and discards go to the
# owner; fio verify from both CPUs passes across live snapshots; a chunk freed by a
# discard is never handed out again while a write through its old mapping
# is in flight (the module's direct_write_delay_ms holds such writes while
# the owner discards, reuses and reads back); --route chunk still serves
# everything at the owner, with no map.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio
require_cmd python3
require_cmd blkdiscard

thin_pool_setup thin-where 768

sum_redirected() { queue_sum redirected; }

athin init --chunk-size 64k --shards 2 >/dev/null || die "init failed"
athin create vol1 --size 256M >/dev/null || die "create failed"

# --- reads and overwrites where submitted ----------------------------------------
serve vol1
azbusectl info 1 | grep -q "route-queue direct-map" || die "thin is not routed by queue with a direct map by default"
# a second device of the same volume would keep a map of its own, and a
# chunk freed through one would still be written in place through the other
if azbusectl add 2 --engine=thin --pool "$pool" --volume vol1 >/tmp/where-twice.log 2>&1; then
	die "vol1 was served by a second device"
fi
grep -q "volume vol1 is served already" /tmp/where-twice.log ||
	{ cat /tmp/where-twice.log >&2; die "serving vol1 twice: not the expected error"; }
[ -b /dev/azbuse2 ] && die "/dev/azbuse2 left behind by a refused add"
log "ok   a volume already served is refused a second device"
# first writes: the map knows no chunk yet, so the module posts each write to
# its chunk's owner at once (none handed on by a worker); owners publish
run_fio --name=fill --filename=/dev/azbuse1 --rw=write --bs=1M --size=128M --direct=1 \
	--ioengine=libaio --iodepth=8 --cpus_allowed=0
[ "$(sum_redirected)" = 0 ] || die "first writes were handed on instead of posted to their owner"
for q in 0 1; do
	[ "$(queue_counter 1 $q requests)" -gt 0 ] || die "shard $q's owner got no first write"
done
# the owners wrote the new chunks' data through their io_uring, many at once
async=$(thin_status_sum data_writes_async)
[ "$async" -ge 2048 ] || die "only $async of the fill's 2048 new chunks went through the io_uring"
# from the ring's buffers, registered with it once (no pin per write)
fixed=$(thin_status_sum data_writes_fixed)
[ "$fixed" -ge 2048 ] || die "only $fixed of the fill's 2048 new chunks were written from the registered buffers"
foreign0=$(thin_status_sum other_shards_served)
direct0=$(queue_sum direct)
for cpu in 0 1; do
	run_fio --name=read-cpu$cpu --filename=/dev/azbuse1 --rw=randread --bs=4k --size=128M \
		--direct=1 --ioengine=libaio --iodepth=16 --runtime=2 --time_based --cpus_allowed=$cpu
	run_fio --name=overwrite-cpu$cpu --filename=/dev/azbuse1 --rw=randwrite --bs=4k \
		--size=128M --direct=1 --ioengine=libaio --iodepth=16 --runtime=2 --time_based \
		--cpus_allowed=$cpu
done
after=$(sum_redirected)
foreign=$(($(thin_status_sum other_shards_served) - foreign0))
direct=$(($(queue_sum direct) - direct0))
[ "$after" = 0 ] || die "reads and overwrites of published chunks were handed on ($after requests)"
[ "$direct" -gt 10000 ] || die "only $direct reads and overwrites were served by the module itself"
log "ok   first writes posted straight to their owners, none handed on; then $direct reads and overwrites served by the module from the map, $foreign of other shards' chunks by the worker where submitted, none handed on"

# --- a new owner waits, as the one it replaces would have, before reusing ---------
# (here, before any snapshot's chunks are freed, X's chunks are the only free ones)
held_write_reuse_check /dev/azbuse1 20 kill-owner
log "ok   discards, a new owner and its reuse beside held writers of the discarded chunks"

# --- fio verify from both CPUs across live snapshots ------------------------------
fio --name=verify --filename=/dev/azbuse1 --rw=randwrite --bssplit=4k/50:64k/30:256k/20 \
	--offset=128M --direct=1 --ioengine=libaio --iodepth=16 --numjobs=2 \
	--offset_increment=64M --size=64M --cpus_allowed=0-1 --cpus_allowed_policy=split \
	--verify=crc32c --do_verify=1 --verify_fatal=1 --eta=never --output=/tmp/where-verify.log &
fio_pid=$!
for i in 1 2 3; do
	sleep 1
	athin snapshot vol1 "snap$i" >/dev/null || die "live snapshot $i failed"
done
wait_fio "$fio_pid" /tmp/where-verify.log "across live snapshots"
grep -E '^ *(read|write): IOPS' /tmp/where-verify.log | sed "s/^ */[$case_name] fio: /"
log "ok   fio verify from both CPUs across 3 live snapshots"
for i in 1 2 3; do
	athin delete "snap$i" --yes >/dev/null || die "deleting snapshot $i failed"
done

# --- no chunk reused while a worker may still write through its old mapping ------
held_write_reuse_check /dev/azbuse1 10
log "ok   discards, reuse and read-back beside a held writer of the discarded chunks"
azbusectl remove 1 >/dev/null
athin check >/tmp/where-check.log 2>&1 || { cat /tmp/where-check.log >&2; die "check after serving"; }

# --- --route chunk: every request at its owner --------------------------------------
serve vol1 --route chunk
azbusectl info 1 | grep -q "route-queue" && die "--route chunk was not kept"
run_fio --name=chunk-verify --filename=/dev/azbuse1 --rw=randwrite --bs=4k --size=32M \
	--direct=1 --ioengine=libaio --iodepth=16 --numjobs=2 --offset_increment=32M \
	--cpus_allowed=0-1 --cpus_allowed_policy=split --verify=crc32c --do_verify=1 --verify_fatal=1
[ "$(sum_redirected)" = 0 ] || die "--route chunk handed requests on"
[ "$(thin_status_sum other_shards_served)" = 0 ] || die "--route chunk served other shards' chunks"
azbusectl remove 1 >/dev/null
athin check >/tmp/where-check.log 2>&1 || { cat /tmp/where-check.log >&2; die "check at the end"; }
log "ok"
