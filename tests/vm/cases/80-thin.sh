#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 80-thin: the thin engine on a pool on ext4 (on brd). ext4 on a thin volume
# survives umount, fsck and remount; fio verify passes; a snapshot taken
# while a writer runs holds exactly what was acknowledged before it (blocks
# written before it read new, blocks written after it read old) and stays so
# while the volume is overwritten (copy-on-write); the snapshot is served
# read-only; a clone of it diverges without touching it; deleting the
# snapshot and fstrim on the volume give space back (usage shows it, and the
# backing files' allocated blocks shrink); azbuse-thin check stays clean.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio
require_cmd python3

fs=/mnt/thin-fs
thin_case_cleanup() { if mountpoint -q "$fs"; then umount "$fs"; fi; }
thin_pool_setup thin 1200
mkdir -p "$fs"
pool_used() { athin --json usage | python3 -c 'import json,sys; print(json.load(sys.stdin)["used_bytes"])'; }
backing_kib() { du -k -c "$pool"/shard-*/data | tail -1 | cut -f1; }

athin init --chunk-size 64k --shards 2 >/dev/null || die "init failed"
athin create vol1 --size 512M >/dev/null || die "create failed"
[ "$(pool_used)" = 0 ] || die "a new pool uses space"

# --- ext4 and fio verify on a thin volume ---------------------------------------
serve vol1
azbusectl info 1 | grep -q "^shards  *2" || die "the thin device is not sharded in 2"
mkfs.ext4 -q -E nodiscard /dev/azbuse1
mount /dev/azbuse1 "$fs"
mkdir "$fs/files"
write_random_files "$fs/files" 20 48
sha256_record "$fs/files" /tmp/thin-files.sha
umount "$fs"
fsck.ext4 -f -n /dev/azbuse1 >/tmp/thin-fsck.log 2>&1 || { cat /tmp/thin-fsck.log >&2; die "fsck after writing"; }
mount /dev/azbuse1 "$fs"
sha256_verify "$fs/files" /tmp/thin-files.sha || die "files changed across remount"
run_fio --name=thin-verify --filename="$fs/fio.dat" --size=96M --direct=1 --ioengine=libaio \
	--iodepth=16 --rw=randwrite --bssplit=4k/40:64k/30:256k/20:1m/10 \
	--verify=crc32c --do_verify=1 --verify_fatal=1
rm "$fs/fio.dat"
umount "$fs"
log "ext4 and fio verify on vol1: ok; pool uses $(($(pool_used) >> 20)) MiB"

# --- a snapshot while a writer runs -------------------------------------------
# raw region past the filesystem's end would be simplest, but ext4 owns the
# whole volume: use a second volume for the raw check
azbusectl remove 1 >/dev/null
athin create raw1 --size 64M >/dev/null
serve raw1
head -c 64M /dev/urandom >/tmp/thin-old
dd if=/tmp/thin-old of=/dev/azbuse1 bs=1M oflag=direct status=none
head -c 64M /dev/urandom >/tmp/thin-new
# the writer: 64 KiB blocks in random order, each logged when acknowledged
python3 - /dev/azbuse1 /tmp/thin-new /tmp/thin-writes <<'EOF' &
import mmap, os, random, sys, time
dev, src, log = sys.argv[1:4]
fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
data = open(src, 'rb').read()
buf = mmap.mmap(-1, 65536)
blocks = list(range(len(data) // 65536))
random.shuffle(blocks)
with open(log, 'w') as out:
    for b in blocks:
        start = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        buf[:] = data[b * 65536:(b + 1) * 65536]
        os.pwrite(fd, buf, b * 65536)
        end = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        out.write(f"{b} {start} {end}\n")
        out.flush()
        time.sleep(0.002)
EOF
writer=$!
# the snapshot once the writer is well under way (a fixed delay is not enough on a busy machine)
wait_for 60 sh -c '[ "$(wc -l </tmp/thin-writes 2>/dev/null || echo 0)" -ge 100 ]' ||
	die "the writer did not get going"
snap_start=$(python3 -c 'import time; print(time.clock_gettime_ns(time.CLOCK_MONOTONIC))')
athin snapshot raw1 snap-live || die "live snapshot failed"
snap_end=$(python3 -c 'import time; print(time.clock_gettime_ns(time.CLOCK_MONOTONIC))')
wait "$writer" || die "the writer failed"
log "live snapshot took $(((snap_end - snap_start) / 1000000)) ms"
cmp /tmp/thin-new /dev/azbuse1 || die "raw1 does not hold what the writer wrote"
azbusectl remove 1 >/dev/null
serve snap-live
azbusectl info 1 | grep -q "read-only" || die "the snapshot is not served read-only"
dd if=/dev/azbuse1 of=/tmp/thin-snap bs=1M iflag=direct status=none
dd if=/dev/zero of=/dev/azbuse1 bs=4k count=1 oflag=direct status=none 2>/dev/null &&
	die "a write to the snapshot succeeded"
azbusectl remove 1 >/dev/null
python3 - /tmp/thin-old /tmp/thin-new /tmp/thin-snap /tmp/thin-writes "$snap_start" "$snap_end" <<'EOF' ||
import sys
old, new, snap = (open(p, 'rb').read() for p in sys.argv[1:4])
t0, t1 = int(sys.argv[5]), int(sys.argv[6])
before = after = during = 0
for line in open(sys.argv[4]):
    b, start, end = map(int, line.split())
    got = snap[b * 65536:(b + 1) * 65536]
    if end < t0:
        before += 1
        if got != new[b * 65536:(b + 1) * 65536]:
            sys.exit(f"block {b} was acknowledged before the snapshot but the snapshot has the old data")
    elif start > t1:
        after += 1
        if got != old[b * 65536:(b + 1) * 65536]:
            sys.exit(f"block {b} was written after the snapshot but the snapshot has the new data")
    else:
        during += 1
        if got not in (old[b * 65536:(b + 1) * 65536], new[b * 65536:(b + 1) * 65536]):
            sys.exit(f"block {b} (written during the snapshot) is neither old nor new")
if before == 0 or after == 0:
    sys.exit(f"the writer did not straddle the snapshot ({before} before, {after} after)")
print(f"snapshot: {before} blocks acknowledged before it hold new data, {after} written after hold old, {during} during")
EOF
	die "the live snapshot does not match the point it was taken"

# --- a clone diverges; the snapshot does not ------------------------------------
athin clone snap-live clone1 >/dev/null || die "clone failed"
serve clone1
cmp /tmp/thin-snap /dev/azbuse1 || die "a fresh clone differs from its snapshot"
dd if=/dev/urandom of=/dev/azbuse1 bs=64k count=8 seek=3 oflag=direct status=none
azbusectl remove 1 >/dev/null
serve snap-live
cmp /tmp/thin-snap /dev/azbuse1 || die "writing the clone changed the snapshot"
azbusectl remove 1 >/dev/null

# --- space comes back: delete the snapshot, fstrim the filesystem ----------------
serve vol1
mount /dev/azbuse1 "$fs"
sha256_verify "$fs/files" /tmp/thin-files.sha || die "vol1's files changed"
athin snapshot vol1 snap-fs || die "snapshot of the mounted volume failed"
# overwrite files in place: their old chunks are then the snapshot's alone
for f in "$fs"/files/file-{1..6}; do
	head -c "$(stat -c %s "$f")" /dev/urandom | dd of="$f" conv=notrunc,fsync status=none
done
rm -rf "$fs/files"
sync
used_snap=$(pool_used)
umount "$fs"
azbusectl remove 1 >/dev/null
athin delete snap-fs --yes >/dev/null || die "delete snap-fs failed"
used_after_delete=$(pool_used)
[ "$used_after_delete" -lt "$used_snap" ] ||
	die "deleting the snapshot returned no space ($used_snap -> $used_after_delete)"
serve vol1
mount /dev/azbuse1 "$fs"
kib_before=$(backing_kib)
used_before=$(pool_used)
fstrim -v "$fs"
umount "$fs"
azbusectl remove 1 >/dev/null
used_trim=$(pool_used)
kib_trim=$(backing_kib)
[ "$used_trim" -lt "$used_before" ] || die "fstrim returned no space ($used_before -> $used_trim)"
[ "$kib_trim" -lt "$kib_before" ] || die "backing files did not shrink ($kib_before -> $kib_trim KiB)"
log "space: snapshot delete $((used_snap >> 20)) -> $((used_after_delete >> 20)) MiB; fstrim $((used_before >> 20)) -> $((used_trim >> 20)) MiB, backing files $kib_before -> $kib_trim KiB"

# a write into a chunk a snapshot shares: layered, then completed (file pool)
athin create lc1 --size 16M >/dev/null || die "create lc1 failed"
serve lc1
layered_cow_check lc1 4
azbusectl remove 1 >/dev/null
athin delete lc1 --yes >/dev/null || die "delete lc1 failed"

athin check || die "azbuse-thin check found problems"
serve vol1
fsck.ext4 -f -n /dev/azbuse1 >/tmp/thin-fsck.log 2>&1 || { cat /tmp/thin-fsck.log >&2; die "fsck at the end"; }
azbusectl remove 1 >/dev/null
log "ok"
