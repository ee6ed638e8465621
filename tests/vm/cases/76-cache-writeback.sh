#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 76-cache-writeback: the RAM cache in write-back mode (azbusectl add
# --cache SIZE --cache-mode writeback). On a two-queue mem device: fio
# verify with mixed and unaligned sizes (writes kept dirty, reads through
# them, 512-byte writes into dirty blocks); a FLUSH writes every dirty block
# back (the engine has the data, nothing is dirty); written, flushed and
# then every worker SIGKILLed: nothing is lost (the dirty blocks written
# after the flush neither: the cache outlives its workers); the mode, the
# thresholds, the size and --flush change under a verifying fio, and leaving
# write-back empties the cache before the command returns; a sequential
# stream past the cutoff bypasses the cache; azbusectl info shows the
# cache's counters per queue. On the file
# engine: the whole daemon SIGKILLed and --recovered loses nothing that was
# flushed. On a thin volume (two shards, so write-backs reach their chunk's
# owner): ext4 + fsck, and a snapshot taken with dirty blocks in the cache
# holds them.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio
require_cmd python3

# cache_stat FIELD: a value from `azbusectl cache 1 --json`
cache_stat() {
	azbusectl cache 1 --json | python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# --- mem, two queues: verify, flush, every worker killed -----------------------
dev=$(add_mem_device 1 256M --queues 2 --cache 64M --cache-mode writeback)
[ "$(cache_stat mode)" = writeback ] || die "cache mode is $(cache_stat mode)"
run_fio --name=wb-verify --filename="$dev" --direct=1 --ioengine=libaio --iodepth=16 \
	--rw=randwrite --bssplit=512/10:4k/40:16k/20:64k/20:256k/10 --numjobs=2 --size=24M \
	--offset_increment=64M --cpus_allowed=0-1 --cpus_allowed_policy=split \
	--verify=crc32c --do_verify=1 --verify_fatal=1 --group_reporting=0
absorbed=$(cache_stat absorbed)
[ "$absorbed" -gt 0 ] || die "no write was kept dirty in write-back mode"
log "ok   fio verify with 512 B..256 KiB writes: $absorbed writes kept dirty, $(cache_stat dirty) blocks dirty"

head -c 16M /dev/urandom >/tmp/wb-a
head -c 4M /dev/urandom >/tmp/wb-b
dd if=/tmp/wb-a of="$dev" bs=1M seek=100 oflag=direct status=none
[ "$(cache_stat dirty)" -gt 0 ] || die "nothing dirty after a write"
python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDWR); os.fsync(fd)' "$dev"
dirty=$(cache_stat dirty)
[ "$dirty" = 0 ] || die "$dirty blocks still dirty after a FLUSH"
[ "$(cache_stat writebacks)" -gt 0 ] || die "a FLUSH wrote nothing back"
# (the engine has it: read it past the cache, from the mem engine's shared memory)
cmp <(dd if="$(ls /dev/shm/azbuse-mem-* | head -1)" bs=1M skip=100 count=16 status=none) /tmp/wb-a ||
	die "the engine does not hold what a FLUSH wrote back"
# dirty again, not flushed: the workers die, the cache keeps it
dd if=/tmp/wb-b of="$dev" bs=1M seek=120 oflag=direct status=none
[ "$(cache_stat dirty)" -gt 0 ] || die "nothing dirty after the second write"
ms0=$(replace_worker 1 0)
ms1=$(replace_worker 1 1)
cmp <(dd if="$dev" bs=1M skip=100 count=16 iflag=direct status=none) /tmp/wb-a ||
	die "flushed data lost after the workers were killed"
cmp <(dd if="$dev" bs=1M skip=120 count=4 iflag=direct status=none) /tmp/wb-b ||
	die "dirty data lost after the workers were killed"
log "ok   FLUSH wrote every dirty block back; both workers SIGKILLed (new in $ms0, $ms1 ms): nothing lost"

# --- the sequential cutoff; counters per queue in azbusectl info -------------
azbusectl cache 1 --seq-cutoff 1M >/dev/null || die "azbusectl cache --seq-cutoff 1M failed"
[ "$(cache_stat seq_cutoff)" = 1048576 ] || die "the cutoff is not 1 MiB"
bypassed0=$(cache_stat bypassed)
dd if="$dev" of=/dev/null bs=256k skip=512 count=64 iflag=direct status=none
bypassed=$(($(cache_stat bypassed) - bypassed0))
[ "$bypassed" -ge 56 ] || die "only $bypassed of 64 requests of a 16 MiB stream bypassed the cache"
azbusectl info 1 --json | python3 -c '
import json, sys
c = json.load(sys.stdin)["cache"]
qs = c["queues"]
assert len(qs) == 2, qs
assert sum(q["read_misses"] for q in qs) > 0, qs
assert sum(q["writebacks"] for q in qs) == c["writebacks"], c
' || die "azbusectl info --json has no right per-queue cache counters"
azbusectl info 1 | grep -q "^queue 1 read_hits" || die "azbusectl info shows no cache counters"
log "ok   a 16 MiB stream past a 1 MiB cutoff: $bypassed of 64 requests bypassed; per-queue counters in info"

# --- mode, thresholds and --flush under a verifying fio ------------------------
fio --name=wb-switch --filename="$dev" --direct=1 --ioengine=libaio --iodepth=16 \
	--rw=randrw --bssplit=4k/60:64k/40 --size=64M --numjobs=2 --offset_increment=128M \
	--cpus_allowed=0-1 --cpus_allowed_policy=split --verify=crc32c --do_verify=1 \
	--verify_fatal=1 --eta=never --output=/tmp/wb-switch.log &
fio_pid=$!
sleep 1
azbusectl cache 1 --dirty 5,20 >/dev/null || die "azbusectl cache --dirty 5,20 failed"
[ "$(cache_stat dirty_high)" = 20 ] || die "the high threshold is not 20"
sleep 1
azbusectl cache 1 --flush >/dev/null || die "azbusectl cache --flush failed"
azbusectl cache 1 --mode writethrough >/dev/null || die "leaving write-back failed"
dirty=$(cache_stat dirty)
[ "$dirty" = 0 ] || die "$dirty blocks dirty after leaving write-back"
sleep 1
azbusectl cache 1 --mode writeback >/dev/null || die "back to write-back failed"
sleep 1
azbusectl cache 1 --size 32M >/dev/null || die "shrinking the cache to 32 MiB failed"
[ "$(cache_stat slots)" = 8192 ] || die "the cache has $(cache_stat slots) slots at 32 MiB"
sleep 1
azbusectl cache 1 --size 64M >/dev/null || die "growing the cache back to 64 MiB failed"
[ "$(cache_stat slots)" = 16384 ] || die "the cache has $(cache_stat slots) slots at 64 MiB"
if azbusectl cache 1 --size 1G >/dev/null 2>&1; then
	die "growing the cache past what it was added with was taken"
fi
ms=$(replace_worker 1 1)
wait_fio "$fio_pid" /tmp/wb-switch.log "across write-back mode changes, --flush and a worker kill"
if azbusectl cache 1 --dirty 50,10 >/dev/null 2>&1; then
	die "--dirty 50,10 (low above high) was taken"
fi
log "ok   fio verify across --dirty, --flush, writeback -> writethrough (0 dirty) -> writeback, 64 -> 32 -> 64 MiB and a worker kill"
remove_device 1

# --- file engine: the whole daemon killed, what was flushed survives ---------
img=/tmp/wb-file.img
truncate -s 64M "$img"
dev=$(azbusectl add 1 --engine=file --path "$img" --size 64M --cache 32M --cache-mode writeback) ||
	die "file engine with a write-back cache"
dd if=/tmp/wb-a of="$dev" bs=1M seek=8 oflag=direct conv=fsync status=none
dd if=/tmp/wb-b of="$dev" bs=1M seek=40 oflag=direct status=none # (not flushed)
[ "$(cache_stat dirty)" -gt 0 ] || die "nothing dirty before the daemon kill"
sup=$(supervisor_pids | head -1)
kill -KILL -- "-$sup"
wait_for 5 sh -c "! kill -0 $sup 2>/dev/null" || die "the supervisor survived SIGKILL"
azbusectl add 1 --recover >/dev/null || die "--recover failed"
cmp <(dd if="$dev" bs=1M skip=8 count=16 iflag=direct status=none) /tmp/wb-a ||
	die "data flushed before the daemon was killed is lost"
# The recovered supervisor's cache (the module serves its hits) goes with it,
# as the first one's did: a read of a warm block then waits in the recovery
# window for the next supervisor, not served from the dead one's region.
dd if="$dev" of=/dev/null bs=4k skip=2048 count=1 iflag=direct status=none # (warm)
sup=$(supervisor_pids | head -1)
kill -KILL -- "-$sup"
wait_for 5 sh -c "! kill -0 $sup 2>/dev/null" || die "the recovered supervisor survived SIGKILL"
dd if="$dev" of=/tmp/wb-after bs=4k skip=2048 count=1 iflag=direct status=none &
dd_pid=$!
sleep 2
kill -0 "$dd_pid" 2>/dev/null ||
	die "a read was served from the cache of a recovered supervisor that died"
azbusectl add 1 --recover >/dev/null || die "the second --recover failed"
wait "$dd_pid" || die "the read that waited for the second --recover failed"
cmp /tmp/wb-after <(head -c 4k /tmp/wb-a) || die "the read that waited for --recover is wrong"
remove_device 1
cmp <(dd if="$img" bs=1M skip=8 count=16 status=none) /tmp/wb-a ||
	die "the file does not hold what was flushed"
rm -f "$img"
log "ok   file engine: daemon SIGKILLed with dirty blocks and --recovered; everything flushed is there; the recovered daemon's cache left with it"

# --- a removal writes back what the cache holds dirty (no FLUSH comes) ---------
truncate -s 64M "$img"
dev=$(azbusectl add 1 --engine=file --path "$img" --size 64M --cache 32M --cache-mode writeback) ||
	die "file engine with a write-back cache, again"
dd if=/tmp/wb-b of="$dev" bs=1M seek=40 oflag=direct status=none # (not flushed)
[ "$(cache_stat dirty)" -gt 0 ] || die "nothing dirty before the removal"
remove_device 1
cmp <(dd if="$img" bs=1M skip=40 count=4 status=none) /tmp/wb-b ||
	die "a removal lost what the write-back cache held dirty"
rm -f "$img"
log "ok   a removal writes back what the cache held dirty first"

# --- thin, two shards: ext4 + fsck, a snapshot holds the dirty blocks ----------
thin_pool_setup wb-thin 768
athin init --chunk-size 64k --shards 2 >/dev/null || die "init failed"
athin create vol1 --size 256M >/dev/null || die "create failed"
serve vol1 --cache 64M --cache-mode writeback
mnt=/mnt/wb-thin
mkfs.ext4 -q -F /dev/azbuse1
mkdir -p "$mnt"
mount /dev/azbuse1 "$mnt"
write_random_files "$mnt" 20 24
(cd "$mnt" && find . -type f -exec sha256sum {} + >/tmp/wb-thin.sums)
umount "$mnt"
fsck.ext4 -f -n /dev/azbuse1 >/dev/null || die "fsck found errors on the write-back thin volume"
mount /dev/azbuse1 "$mnt"
(cd "$mnt" && sha256sum -c --quiet /tmp/wb-thin.sums) || die "files differ after remount"
umount "$mnt"
log "ok   ext4 on a thin volume behind a write-back cache: fsck clean, files intact"
# out of write-back and back (every queue wrote back what was its), then a drain
dd if=/tmp/wb-b of=/dev/azbuse1 bs=1M seek=150 oflag=direct status=none
azbusectl cache 1 --mode writethrough >/dev/null || die "leaving write-back on thin failed"
[ "$(cache_stat dirty)" = 0 ] || die "dirty blocks left after leaving write-back on thin"
azbusectl cache 1 --mode writeback >/dev/null || die "back to write-back on thin failed"
dd if=/tmp/wb-b of=/dev/azbuse1 bs=1M seek=160 oflag=direct status=none
[ "$(cache_stat dirty)" -gt 0 ] || die "nothing dirty after going back to write-back"
start=$(date +%s%N)
timeout 10 "$AZBUSE_CTL" cache 1 --flush >/dev/null || die "--flush after a mode change failed"
[ "$(cache_stat dirty)" = 0 ] || die "dirty blocks left after --flush"
log "ok   thin: write-back -> writethrough -> write-back, then --flush in $((($(date +%s%N) - start) / 1000000)) ms"
dd if=/tmp/wb-a of=/dev/azbuse1 bs=1M seek=200 oflag=direct status=none
[ "$(cache_stat dirty)" -gt 0 ] || die "nothing dirty before the snapshot"
athin snapshot vol1 snap1 >/dev/null || die "snapshot with dirty blocks failed"
azbusectl remove 1 >/dev/null
serve snap1
cmp <(dd if=/dev/azbuse1 bs=1M skip=200 count=16 iflag=direct status=none) /tmp/wb-a ||
	die "the snapshot does not hold the writes that were dirty in the cache"
azbusectl remove 1 >/dev/null
athin check >/tmp/wb-check.log 2>&1 || { cat /tmp/wb-check.log >&2; die "check"; }
log "ok   a snapshot taken with dirty blocks in the cache holds them; check clean"
log "ok"
