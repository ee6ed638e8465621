#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 22-sharded: a mem device in sharded mode (--shards 2, 64 KiB chunks).
# fio trims and writes 4k to 1M blocks (each write preceded by a trim of
# its block) and verifies every block with crc32c; then discards and
# write-zeroes that cross chunk boundaries leave exactly their range zeroed.
# The trace shows that every request the engine got lies inside one chunk
# and reached the worker that owns that chunk (chunk % 2), that the module
# cut the crossing discards into parts, and that a FLUSH reached both shards.
# Last, shard workers are killed under load and fio still verifies.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio
require_cmd blkdiscard

chunk=$((64 * 1024))
trace=/tmp/azbuse-sharded-trace.log
rm -f "$trace"
dev=$(add_mem_device 1 256M --shards 2 --shard-chunk 64k --trace "$trace")
log "device $dev"
azbusectl info 1 | grep -q "^shards  *2, chunk 64.0 KiB" || die "info does not show 2 shards of 64K"
[ "$(cat /sys/block/azbuse1/queue/chunk_sectors)" = 128 ] || die "chunk_sectors is not 128"

run_fio --name=sharded-verify --filename="$dev" --direct=1 --ioengine=libaio --iodepth=16 \
	--rw=randtrimwrite --bssplit=4k/30:16k/20:64k/20:256k/15:1m/15 --size=128M \
	--numjobs=2 --offset_increment=128M \
	--verify=crc32c --do_verify=1 --verify_fatal=1

# a known pattern, then a discard and a write-zeroes that cross chunks
head -c 4M /dev/urandom >/tmp/sharded-pattern
dd if=/tmp/sharded-pattern of="$dev" bs=1M oflag=direct status=none
blkdiscard -o $((chunk - 4096)) -l $((3 * chunk + 8192)) "$dev"
blkdiscard -z -o $((8 * chunk + 12288)) -l $((2 * chunk)) "$dev"
sync
expect=/tmp/sharded-expect
cp /tmp/sharded-pattern "$expect"
dd if=/dev/zero of="$expect" bs=4096 seek=$(((chunk - 4096) / 4096)) \
	count=$(((3 * chunk + 8192) / 4096)) conv=notrunc status=none
dd if=/dev/zero of="$expect" bs=4096 seek=$(((8 * chunk + 12288) / 4096)) \
	count=$((2 * chunk / 4096)) conv=notrunc status=none
dd if="$dev" of=/tmp/sharded-read bs=1M count=4 iflag=direct status=none
cmp "$expect" /tmp/sharded-read || die "discard/write-zeroes across chunks: wrong data"

# a flush (fsync of the block device) goes to every shard
sync "$dev"

for q in 0 1; do
	[ "$(queue_counter 1 "$q" rejected)" = 0 ] || die "queue $q rejected completions"
	[ "$(queue_counter 1 "$q" requests)" -gt 0 ] || die "shard $q served nothing"
done

# a shard's worker killed under trim+write+verify load: its requests (and
# parts of cut requests) go to the new worker of the same shard
fio --name=sharded-crash --filename="$dev" --direct=1 --ioengine=libaio --iodepth=16 \
	--rw=randtrimwrite --bssplit=4k/40:64k/30:256k/30 --size=96M --numjobs=2 \
	--offset_increment=128M --verify=crc32c --do_verify=1 --verify_fatal=1 \
	>/tmp/fio-sharded-crash.log 2>&1 &
fio_pid=$!
for q in 1 0; do
	sleep 2
	replace_worker 1 "$q" >/dev/null
done
wait_fio "$fio_pid" /tmp/fio-sharded-crash.log "across shard worker crashes"
log "fio verify passed across 2 shard worker kills; re-posted: $(queue_counter 1 0 requeued) + $(queue_counter 1 1 requeued)"
remove_device 1

# every request within one chunk, on the shard that owns it
bad=$(awk -v chunk=$chunk '
	{
		q = ""; off = ""; len = ""; op = ""
		for (i = 1; i <= NF; i++) {
			split($i, kv, "=")
			if (kv[1] == "q") q = kv[2]
			else if (kv[1] == "offset") off = kv[2]
			else if (kv[1] == "len") len = kv[2]
			else if (kv[1] == "op") op = kv[2]
		}
		if (op == "FLUSH") { flushes[q]++; next }
		n++
		first = int(off / chunk); last = int((off + len - 1) / chunk)
		if (len == 0 || first != last || first % 2 != q) { print; bad++ }
	}
	END {
		if (n < 1000) print "only " n " requests traced"
		if (!flushes[0] || !flushes[1]) print "a FLUSH did not reach both shards"
	}' "$trace")
[ -z "$bad" ] || die "requests crossing a chunk or on the wrong shard: $(head -5 <<<"$bad")"
grep -q "op=DISCARD .*SHARD_PART" "$trace" || die "no discard was cut into parts"
# (6.12 splits write-zeroes at chunk boundaries itself; discards it does not)
grep -q "op=WRITE_ZEROES" "$trace" || die "no write-zeroes reached the engine"
log "$(wc -l <"$trace") requests traced, all inside one chunk on its shard"
log "ok"
