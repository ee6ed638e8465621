#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 63-shard-part-refused: in sharded mode a request cut into parts (a discard
# crossing a chunk, a FLUSH sent to every shard) fails with EIO when a later
# part is refused because its shard has FAILED (no worker within the
# recovery window), instead of ending with success after the first part.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd blkdiscard

chunk=$((64 * 1024))
dev=$(add_mem_device 1 64M --shards 2 --shard-chunk 64k --recovery-timeout 1500)
log "device $dev"
[ "$(cat /sys/block/azbuse1/queue/write_cache)" = "write back" ] ||
	die "no volatile write cache: a FLUSH would not reach the shards"
[ "$(cat /sys/block/azbuse1/queue/discard_max_bytes)" -gt 0 ] || die "no discard"

queue_state() { # QUEUE
	queue_counter 1 "$1" state
}

sup=$(supervisor_pids | head -1)
[ -n "$sup" ] || die "no supervisor"
kill -STOP "$sup" # no restart of the worker
trap 'kill -CONT "$sup" 2>/dev/null || true' EXIT
kill -KILL "$(queue_counter 1 1 worker_pid)"
wait_for 15 queue_field_is 1 1 state failed ||
	die "shard 1 is not failed after the recovery window (state $(queue_state 1))"
log "shard 1 failed, shard 0 $(queue_state 0)"

# shard 0 alone still works
blkdiscard -f -o 0 -l 8192 "$dev" || die "a discard inside shard 0 failed"
dd if=/dev/zero of="$dev" bs=4k count=1 oflag=direct status=none || die "a write to shard 0 failed"
log "ok   I/O inside shard 0 still works"

# a discard from chunk 0 (shard 0) into chunk 1 (shard 1): the second part is refused
bad=0
if blkdiscard -f -o $((chunk - 4096)) -l 8192 "$dev" 2>/tmp/shard-refused-discard.err; then
	log "FAIL a discard across shards 0 and 1 succeeded with shard 1 failed"
	bad=1
elif ! grep -q "Input/output error" /tmp/shard-refused-discard.err; then
	log "FAIL the discard failed otherwise: $(cat /tmp/shard-refused-discard.err)"
	bad=1
else
	log "ok   a discard across the failed shard fails with EIO"
fi

# a write to shard 0, then the FLUSH of fsync: its part for shard 1 is refused
if dd if=/dev/zero of="$dev" bs=4k count=1 oflag=direct conv=fsync status=none 2>/tmp/shard-refused-flush.err; then
	log "FAIL an fsync (FLUSH to every shard) succeeded with shard 1 failed"
	bad=1
elif ! grep -q "Input/output error" /tmp/shard-refused-flush.err; then
	log "FAIL the fsync failed otherwise: $(cat /tmp/shard-refused-flush.err)"
	bad=1
else
	log "ok   an fsync'ed write fails with EIO"
fi
[ "$bad" = 0 ] || die "a request cut into parts succeeded without its refused part"
[ "$(queue_counter 1 1 failed)" -ge 2 ] || die "shard 1 counts $(queue_counter 1 1 failed) failed requests"

kill -CONT "$sup"
trap - EXIT
wait_for 15 queue_field_is 1 1 state attached ||
	die "shard 1 got no new worker"
blkdiscard -f -o $((chunk - 4096)) -l 8192 "$dev" || die "the discard fails with shard 1 back"
dd if=/dev/zero of="$dev" bs=4k count=1 oflag=direct conv=fsync status=none || die "fsync fails with shard 1 back"
log "ok   with a new worker on shard 1, both succeed again"
remove_device 1
log "ok"
