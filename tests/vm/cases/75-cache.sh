#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 75-cache: the RAM cache in front of an engine (azbusectl add --cache). On
# a two-queue mem device: fio verify (mixed sizes, both queues) in
# write-through mode; a second read pass of a set that fits is served by the
# cache (hits, and the engine sees no reads); the mode and policy change
# under a verifying fio; a worker SIGKILL under fio verify leaves the cache
# right (the other worker and the new one keep serving hits from it);
# S3-FIFO keeps at least 90% of a hot set through a scan of twice the
# cache's size, and LRU less;
# azbusectl cache shows and changes it, and refuses what is not a mode. On
# the file engine: data written through the cache is in the file when the
# device is removed. On a thin volume: the module's direct map is off, fio
# verify passes across a snapshot, and check is clean.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio
require_cmd python3

# cache_stat FIELD: a value from `azbusectl cache 1 --json`
cache_stat() {
	azbusectl cache 1 --json | python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# --- what azbusectl refuses --------------------------------------------------
if azbusectl add 1 --engine=mem --size 64M --cache 100k >/dev/null 2>&1; then
	die "--cache 100k was taken"
fi
if azbusectl add 1 --engine=mem --size 64M --cache 64M --cache-mode fast >/dev/null 2>&1; then
	die "--cache-mode fast was taken"
fi
add_mem_device 1 16M >/dev/null
if azbusectl cache 1 >/tmp/cache-none.log 2>&1; then
	die "azbusectl cache on a device without a cache succeeded"
fi
grep -q "has no cache" /tmp/cache-none.log || die "no clear error: $(cat /tmp/cache-none.log)"
remove_device 1

# --- mem, two queues: verify, hits, mode changes, a worker kill ----------------
dev=$(add_mem_device 1 256M --queues 2 --cache 64M)
[ "$(cache_stat mode)" = writethrough ] || die "cache mode is $(cache_stat mode)"
[ "$(cache_stat policy)" = s3fifo ] || die "cache policy is $(cache_stat policy)"
run_fio --name=verify --filename="$dev" --direct=1 --ioengine=libaio --iodepth=16 \
	--rw=randwrite --bssplit=4k/40:16k/20:64k/20:256k/20 --numjobs=2 --size=96M \
	--offset_increment=96M --cpus_allowed=0-1 --cpus_allowed_policy=split \
	--verify=crc32c --do_verify=1 --verify_fatal=1 --group_reporting=0
# a 32 MiB set read twice: the second pass comes from the cache (the first
# is one sequential stream: no cutoff for it)
azbusectl cache 1 --seq-cutoff 0 >/dev/null || die "azbusectl cache --seq-cutoff 0 failed"
run_fio --name=warm --filename="$dev" --direct=1 --ioengine=libaio --iodepth=8 \
	--rw=read --bs=64k --size=32M
reqs0=$(queue_requests 1 | awk '{ s += $1 } END { print s }')
hits0=$(cache_stat hits)
run_fio --name=hot --filename="$dev" --direct=1 --ioengine=libaio --iodepth=8 \
	--rw=randread --bs=4k --size=32M --number_ios=4096
hits=$(($(cache_stat hits) - hits0))
[ "$hits" -ge $((4096 * 9 / 10)) ] || die "only $hits of 4096 reads of a warm set hit the cache"
log "ok   fio verify on two queues; $hits of 4096 reads of a warm 32 MiB set were cache hits"

fio --name=switch --filename="$dev" --direct=1 --ioengine=libaio --iodepth=16 \
	--rw=randrw --bssplit=4k/50:64k/50 --size=128M --numjobs=2 --offset_increment=128M \
	--cpus_allowed=0-1 --cpus_allowed_policy=split --verify=crc32c --do_verify=1 \
	--verify_fatal=1 --eta=never --output=/tmp/cache-switch.log &
fio_pid=$!
for step in "mode writearound" "policy lru" "mode passthrough" "mode writethrough" \
	"policy s3fifo"; do
	sleep 1
	azbusectl cache 1 --${step% *} "${step#* }" >/dev/null || die "azbusectl cache 1 --$step failed"
done
ms=$(replace_worker 1 0)
wait_fio "$fio_pid" /tmp/cache-switch.log "across cache mode and policy changes and a worker kill"
[ "$(cache_stat mode)" = writethrough ] || die "mode did not come back to writethrough"
if azbusectl cache 1 --mode fast >/dev/null 2>&1; then
	die "azbusectl cache --mode fast was taken"
fi
[ "$(cache_stat recoveries)" = 0 ] || log "note: $(cache_stat recoveries) cache partition(s) rebuilt after the kill"
log "ok   fio verify across 5 mode/policy changes and a worker SIGKILL (new worker in $ms ms)"
remove_device 1

# --- scan resistance: a hot set through a scan of twice the cache -------------
# hot_after_scan POLICY: the share (percent) of an 8 MiB hot set, read three
# times, that a 32 MiB cache still holds after a 64 MiB scan read once (in
# random order: a sequential one would pass the cutoff and bypass the cache)
hot_after_scan() {
	local hits0 misses0 hits misses
	azbusectl cache 1 --policy "$1" >/dev/null || die "azbusectl cache --policy $1"
	fio --name=hot --filename="$dev" --direct=1 --ioengine=libaio --iodepth=16 --rw=randread \
		--bs=4k --offset=0 --size=8M --loops=3 >/dev/null || die "fio hot ($1)"
	fio --name=scan --filename="$dev" --direct=1 --ioengine=libaio --iodepth=16 --rw=randread \
		--bs=4k --offset=128M --size=64M >/dev/null || die "fio scan ($1)"
	hits0=$(cache_stat hits) misses0=$(cache_stat misses)
	fio --name=again --filename="$dev" --direct=1 --ioengine=libaio --iodepth=16 --rw=randread \
		--bs=4k --offset=0 --size=8M >/dev/null || die "fio hot again ($1)"
	hits=$(($(cache_stat hits) - hits0)) misses=$(($(cache_stat misses) - misses0))
	echo $((100 * hits / (hits + misses)))
}
dev=$(add_mem_device 1 256M --queues 2 --cache 32M)
s3=$(hot_after_scan s3fifo)
remove_device 1
dev=$(add_mem_device 1 256M --queues 2 --cache 32M --cache-policy lru)
lru=$(hot_after_scan lru)
remove_device 1
[ "$s3" -ge 90 ] || die "S3-FIFO kept only $s3% of the hot set through the scan"
[ "$lru" -lt "$s3" ] || die "LRU kept $lru% of the hot set, S3-FIFO $s3%: no difference shown"
log "ok   hot set kept through a scan of twice the cache: S3-FIFO $s3%, LRU $lru%"

# --- file engine: what went through the cache is in the file ------------------
img=/tmp/cache-file.img
truncate -s 64M "$img"
dev=$(azbusectl add 1 --engine=file --path "$img" --size 64M --cache 16M) ||
	die "file engine with --cache"
head -c 8M /dev/urandom >/tmp/cache-pattern
dd if=/tmp/cache-pattern of="$dev" bs=1M seek=4 oflag=direct conv=fsync status=none
cmp <(dd if="$dev" bs=1M skip=4 count=8 iflag=direct status=none) /tmp/cache-pattern ||
	die "file engine: data read back through the cache differs"
remove_device 1
cmp <(dd if="$img" bs=1M skip=4 count=8 status=none) /tmp/cache-pattern ||
	die "file engine: the file does not hold what was written through the cache"
rm -f "$img"
log "ok   file engine: written through the cache, in the file after removal"

# --- thin: no direct map, verify across a snapshot, check ----------------------
thin_pool_setup cache-thin 512
athin init --chunk-size 64k --shards 2 >/dev/null || die "init failed"
athin create vol1 --size 256M >/dev/null || die "create failed"
serve vol1 --cache 32M
if azbusectl info 1 | grep -q "direct-map"; then
	die "the module's direct map is on beside a cache"
fi
# (what it writes fits the cache: the verify's reads hit)
fio --name=thin-verify --filename=/dev/azbuse1 --direct=1 --ioengine=libaio --iodepth=16 \
	--rw=randwrite --bssplit=4k/50:64k/30:256k/20 --size=8M --numjobs=2 --offset_increment=64M \
	--cpus_allowed=0-1 --cpus_allowed_policy=split --verify=crc32c --do_verify=1 \
	--verify_fatal=1 --eta=never --output=/tmp/cache-thin.log &
fio_pid=$!
sleep 2
athin snapshot vol1 snap1 >/dev/null || die "snapshot under a cache failed"
wait_fio "$fio_pid" /tmp/cache-thin.log "on a thin volume with a cache, across a snapshot"
[ "$(cache_stat hits)" -gt 0 ] || die "the thin volume's cache had no hits"
azbusectl remove 1 >/dev/null
athin check >/tmp/cache-check.log 2>&1 || { cat /tmp/cache-check.log >&2; die "check"; }
log "ok   thin volume: no direct map, fio verify across a snapshot, check clean"
log "ok"
