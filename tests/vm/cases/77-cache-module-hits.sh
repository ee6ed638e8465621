#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 77-cache-module-hits: the module serves reads that a device's RAM cache
# holds by itself (AZBUSE_CTL_CACHE_ATTACH), without a worker. A warm set's
# reads are counted as module hits on the queue where they arrived; with the
# module parameter off, under LRU and in pass-through the workers serve them
# instead. Overwrites racing with reads (write-through and write-back) never
# give a torn or stale block. A hit needs no worker: with queue 0's worker
# SIGKILLed and not yet replaced, the warm set still reads. A region that is
# garbage under a valid header, rewritten while the device is read, cannot
# hurt the module (each read completes, the device's data is intact after a
# detach), malformed attaches are refused, and a region left attached is
# unpinned when the device goes.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio
require_cmd python3
tool=$AZBUSE_TOOLS/azbuse-cache-attach
[ -x "$tool" ] || die "$tool is missing: build the azbuse-cache-attach target"
param=/sys/module/azbuse/parameters/serve_cache_hits

# cache_stat FIELD: a total from `azbusectl cache 1 --json`
cache_stat() {
	azbusectl cache 1 --json | python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# hot_read: 4096 random 4 KiB reads of the first 16 MiB (two jobs, one per CPU)
hot_read() {
	fio --name=hot --filename="$dev" --direct=1 --ioengine=libaio --iodepth=8 --rw=randread \
		--bs=4k --size=16M --number_ios=2048 --numjobs=2 --cpus_allowed=0-1 \
		--cpus_allowed_policy=split >/dev/null || die "fio hot read"
}

# module_hits_during CMD...: how many reads the module served while CMD ran
module_hits_during() {
	local before
	before=$(cache_stat module_hits)
	"$@"
	echo $(($(cache_stat module_hits) - before))
}

[ -e "$param" ] || die "no $param"
dev=$(add_mem_device 1 256M --queues 2 --cache 64M)
azbusectl cache 1 --seq-cutoff 0 >/dev/null
dd if=/dev/urandom of="$dev" bs=1M count=16 oflag=direct status=none
dd if="$dev" of=/dev/null bs=64k count=256 iflag=direct status=none # (fills the cache)

# --- hits in the module, on both queues ----------------------------------------
reqs0=$(queue_requests 1 | awk '{ s += $1 } END { print s }')
hits=$(module_hits_during hot_read)
reqs=$(($(queue_requests 1 | awk '{ s += $1 } END { print s }') - reqs0))
[ "$hits" -ge $((4096 * 9 / 10)) ] || die "the module served $hits of 4096 warm reads"
[ "$reqs" -lt 400 ] || die "the workers still saw $reqs requests of 4096 warm reads"
for q in 0 1; do
	n=$(azbusectl cache 1 | awk -v q="$q" '$1 == "queue" && $2 == q { for (i = 3; i < NF; i += 2) if ($i == "module_hits") print $(i + 1) }')
	[ "${n:-0}" -gt 0 ] || die "queue $q counted no module hits"
done
log "ok   $hits of 4096 warm reads served by the module ($reqs reached the workers), on both queues"

# --- who serves when the module does not ---------------------------------------
echo 0 >"$param"
hits0=$(cache_stat hits)
n=$(module_hits_during hot_read)
echo 1 >"$param"
[ "$n" = 0 ] || die "the module served $n reads with serve_cache_hits=0"
[ $(($(cache_stat hits) - hits0)) -ge $((4096 * 9 / 10)) ] || die "the workers did not serve the hits"
azbusectl cache 1 --policy lru >/dev/null
n=$(module_hits_during hot_read)
[ "$n" = 0 ] || die "the module served $n reads under LRU"
azbusectl cache 1 --policy s3fifo --mode passthrough >/dev/null
n=$(module_hits_during hot_read)
[ "$n" = 0 ] || die "the module served $n reads in pass-through mode"
azbusectl cache 1 --mode writethrough >/dev/null
log "ok   serve_cache_hits=0, LRU and pass-through: the workers serve every read"

# --- overwrites racing with the module's reads ----------------------------------
# (one queue: its worker serves the engine's reads and writes in turn, so a
# torn block could only come from the module's copy racing the worker's
# changes to the cache; the worker runs on either CPU)
remove_device 1
dev=$(add_mem_device 1 64M --queues 1 --cache 16M)
for mode in writethrough writeback; do
	azbusectl cache 1 --mode "$mode" >/dev/null
	before=$(cache_stat module_hits)
	"$tool" torn "$dev" 8 256 >/tmp/torn-$mode.log 2>&1 ||
		{ cat /tmp/torn-$mode.log >&2; die "torn or stale reads in $mode"; }
	n=$(($(cache_stat module_hits) - before))
	[ "$n" -gt 0 ] || die "$mode: the module served no read during the race"
	log "ok   $mode: 8 s of overwrites racing with reads, $n served by the module: no block torn or stale ($(grep -h '^reader' /tmp/torn-$mode.log | tr '\n' ' '))"
done
remove_device 1

# --- a hit needs no worker --------------------------------------------------------
dev=$(add_mem_device 1 256M --queues 2 --cache 64M)
azbusectl cache 1 --seq-cutoff 0 >/dev/null
dd if=/dev/urandom of="$dev" bs=1M count=16 oflag=direct status=none
dd if="$dev" of=/dev/null bs=64k count=256 iflag=direct status=none
sup=$(supervisor_pids | head -1)
w0=$(queue_counter 1 0 worker_pid)
kill -STOP "$sup"
kill -KILL "$w0"
sleep 0.5
n=$(timeout 20 bash -c "$(declare -f hot_read); dev=$dev; hot_read; echo ok") || true
kill -CONT "$sup"
[ "$n" = ok ] || die "warm reads stalled while queue 0 had no worker"
wait_for 10 queue_worker_replaced 1 0 "$w0" || die "queue 0 got no new worker"
log "ok   warm reads on both queues completed while queue 0 had no worker"

# --- resized under the module: it never reads pages the workers gave up ----------
dd if=/dev/urandom of="$dev" bs=1M count=16 oflag=direct status=none
dd if="$dev" of=/dev/null bs=64k count=256 iflag=direct status=none
azbusectl cache 1 --size 8M >/dev/null || die "shrinking the cache failed"
azbusectl cache 1 --size 64M >/dev/null || die "growing the cache back failed"
head -c 16M /dev/urandom >/tmp/after-resize
dd if=/tmp/after-resize of="$dev" bs=1M oflag=direct status=none
dd if="$dev" of=/dev/null bs=64k count=256 iflag=direct status=none # (refills what they dropped)
before=$(cache_stat module_hits)
cmp <(dd if="$dev" bs=64k count=256 iflag=direct status=none) /tmp/after-resize ||
	die "after a shrink and a grow, the device read back old data"
n=$(($(cache_stat module_hits) - before))
[ "$n" -gt 0 ] || die "no module hits after the resize"
log "ok   shrunk to 8 MiB and grown back under the module: new data reads back ($n module hits)"
remove_device 1

# --- a hostile region -------------------------------------------------------------
dev=$(add_mem_device 1 64M --queues 2)
seed=${AZBUSE_SEED:-$(date +%s)}
"$tool" hostile 1 "$dev" 20000 "$seed" >/tmp/hostile.log 2>&1 ||
	{ cat /tmp/hostile.log >&2; die "hostile region (seed $seed)"; }
remove_device 1 # (with the last region still attached)
module_still_works 2 "a hostile cache region"
log "ok   $(grep -c '^ok' /tmp/hostile.log) checks of malformed attaches and a garbage region (seed $seed); the one left attached went with its device"
log "ok"
