#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 86-thin-pool-daemon: one daemon serves every device of a pool. vol1 is
# served and written (ext4, fio verify); a snapshot of it, a clone of the
# snapshot and a second volume are added while it is, and join the same
# daemon (each shard still has one writer process: the workers are shared);
# all are written (or read) at once, with fio verify on each writable one and
# the snapshot's files checked; a shared worker is SIGKILLed under that load;
# removing one device leaves the others serving; delete, rollback and resize
# work on volumes not served while others are, and refuse served ones; the
# pool checks clean and fsck passes at the end.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio
require_cmd fsfreeze

fs=/mnt/pd-fs
snapfs=/mnt/pd-snap
thin_case_cleanup() {
	local m
	[ "$1" = 0 ] || sup_log_keep
	pkill -KILL fio 2>/dev/null || true
	sleep 0.5
	for m in "$snapfs" "$fs"; do
		if mountpoint -q "$m"; then umount "$m"; fi
	done
}
thin_pool_setup pd 1400
mkdir -p "$fs" "$snapfs"

athin init --chunk-size 64k --shards 2 >/dev/null || die "init failed"
athin create vol1 --size 384M >/dev/null || die "create vol1 failed"
athin create vol2 --size 128M >/dev/null || die "create vol2 failed"
athin create spare --size 64M >/dev/null || die "create spare failed"

# daemon_of ID: the pid of the supervisor that serves /dev/azbuseID
daemon_of() { azbusectl info "$1" --json | grep -o '"supervisor_pid": [0-9]*' | grep -o '[0-9]*$'; }
add_vol() { # add_vol ID VOLUME
	azbusectl add "$1" --engine=thin --pool "$pool" --volume "$2" >/dev/null ||
		die "azbusectl add $1 --volume $2 failed"
	[ -b "/dev/azbuse$1" ] || die "/dev/azbuse$1 missing after adding $2"
}

# --- vol1 served and written ------------------------------------------------------
add_vol 1 vol1
daemon=$(daemon_of 1)
mkfs.ext4 -q -E nodiscard /dev/azbuse1
mount /dev/azbuse1 "$fs"
mkdir "$fs/files"
write_random_files "$fs/files" 12 40
sha256_record "$fs/files" /tmp/pd-files.sha
# a consistent snapshot of the mounted filesystem
fsfreeze -f "$fs"
athin snapshot vol1 snap1 >/dev/null || { fsfreeze -u "$fs"; die "snapshot failed"; }
fsfreeze -u "$fs"

# fio verify on vol1's filesystem while the other devices join
fio --output-format=normal --name=pd-vol1 --filename="$fs/fio.dat" --size=64M --direct=1 \
	--ioengine=libaio --iodepth=8 --rw=randwrite --bs=4k --verify=crc32c --do_verify=1 \
	--verify_fatal=1 --time_based --runtime=25 --verify_backlog=512 >/tmp/pd-fio1.log 2>&1 &
fio1=$!
sleep 2

# --- the snapshot, a clone of it and a second volume join the daemon ---------------
add_vol 2 snap1
athin clone snap1 clone1 >/dev/null || die "clone of a served snapshot failed"
add_vol 3 clone1
add_vol 4 vol2
for id in 2 3 4; do
	[ "$(daemon_of $id)" = "$daemon" ] ||
		die "azbuse$id is served by pid $(daemon_of $id), not the pool's daemon $daemon"
done
# each queue's worker serves every device of the pool: one pid per queue
for q in 0 1; do
	pids=$(for id in 1 2 3 4; do queue_counter "$id" "$q" worker_pid; done | sort -u | wc -l)
	[ "$pids" = 1 ] || die "queue $q has $pids different workers over the pool's devices"
done
azbusectl list | grep -Eq "^azbuse2 .* thin +snap1 +$daemon\$" ||
	die "azbusectl list does not show azbuse2 serving snap1: $(azbusectl list)"
log "vol1, snap1, clone1 and vol2 served by one daemon ($daemon), one worker per shard"

# the snapshot holds the files as they were when it was taken
mount -o ro,noload /dev/azbuse2 "$snapfs" || die "cannot mount the snapshot"
sha256_verify "$snapfs/files" /tmp/pd-files.sha || die "the snapshot's files differ"
blockdev --getro /dev/azbuse2 | grep -qx 1 || die "the snapshot is not read-only"

# fio verify on vol2 and on the clone (raw), beside vol1's
fio --output-format=normal --name=pd-vol2 --filename=/dev/azbuse4 --size=96M --direct=1 \
	--ioengine=libaio --iodepth=16 --rw=randwrite --bssplit=4k/50:64k/40:1m/10 \
	--verify=crc32c --do_verify=1 --verify_fatal=1 >/tmp/pd-fio2.log 2>&1 &
fio2=$!
fio --output-format=normal --name=pd-clone --filename=/dev/azbuse3 --offset=256M --size=64M \
	--direct=1 --ioengine=libaio --iodepth=8 --rw=randwrite --bs=16k --verify=crc32c \
	--do_verify=1 --verify_fatal=1 >/tmp/pd-fio3.log 2>&1 &
fio3=$!
sleep 3
# a worker shared by all four devices dies under that load
ms=$(replace_worker 1 0)
log "the shared worker of queue 0 replaced in $ms ms under load on four devices"
wait_fio "$fio2" /tmp/pd-fio2.log "on vol2"
wait_fio "$fio3" /tmp/pd-fio3.log "on clone1"
sha256_verify "$snapfs/files" /tmp/pd-files.sha || die "the snapshot's files changed"
umount "$snapfs"

# --- one device goes, the others go on ----------------------------------------------
azbusectl remove 4 >/dev/null || die "remove of azbuse4 failed"
[ ! -e /dev/azbuse4 ] || die "/dev/azbuse4 still there"
kill -0 "$daemon" || die "the daemon exited with the first device removed"
dd if=/dev/azbuse3 of=/dev/null bs=1M count=16 iflag=direct status=none ||
	die "clone1 unreadable after vol2's device went"
wait_fio "$fio1" /tmp/pd-fio1.log "on vol1 (while devices joined and left)"
log "azbuse4 removed; vol1, snap1 and clone1 still served"

# --- pool changes beside served volumes ----------------------------------------------
athin resize spare --size 96M >/dev/null || die "resize of an unserved volume failed"
athin snapshot spare spare-s >/dev/null || die "snapshot of an unserved volume failed"
athin rollback spare spare-s --yes >/dev/null || die "rollback of an unserved volume failed"
athin delete vol2 --yes >/dev/null || die "delete of a volume no longer served failed"
if athin delete clone1 --yes >/dev/null 2>&1; then die "a served clone was deleted"; fi
if athin rollback vol1 snap1 --yes >/dev/null 2>&1; then die "a served volume was rolled back"; fi
if athin delete snap1 --yes >/dev/null 2>&1; then die "a served snapshot was deleted"; fi
log "resize, snapshot, rollback, delete of unserved volumes work; served ones are refused"

# the devices added after the restart of a worker still write and read back
python3 - <<'EOF' || die "clone1 lost a write"
import mmap, os
fd = os.open("/dev/azbuse3", os.O_RDWR | os.O_DIRECT)
buf = mmap.mmap(-1, 65536)
buf.write(os.urandom(65536))
os.pwrite(fd, buf, 300 << 20)
os.fsync(fd)
back = mmap.mmap(-1, 65536)
os.preadv(fd, [back], 300 << 20)
assert back[:] == buf[:]
EOF

rm "$fs/fio.dat"
umount "$fs"
fsck.ext4 -f -n /dev/azbuse1 >/tmp/pd-fsck.log 2>&1 || { cat /tmp/pd-fsck.log >&2; die "fsck of vol1"; }
azbusectl remove --all >/dev/null || die "remove --all failed"
wait_for 10 sh -c "! kill -0 $daemon 2>/dev/null" || die "the daemon did not exit with its last device"
athin check >/tmp/pd-check.log 2>&1 || { cat /tmp/pd-check.log >&2; die "pool check"; }
log "fsck and pool check clean; the daemon exited with its last device"
