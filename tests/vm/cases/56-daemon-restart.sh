#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 56-daemon-restart: SIGKILL the supervisor and all its workers while ext4 is
# mounted on the device and fio writes to it: I/O waits; `azbusectl add 1
# --recover` starts a new daemon that takes the device over with the engine
# and options it was added with; the filesystem stays mounted, fio finishes
# and verifies, and fsck is clean afterwards. With only the supervisor
# killed, its workers go on serving, and --recover replaces them.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio

mnt=/mnt/azbuse-restart
dev=$(add_mem_device 1 384M --queues 2 --recovery-timeout 60000)
mkfs.ext4 -q -F "$dev"
mkdir -p "$mnt"
mount "$dev" "$mnt"
trap 'umount "$mnt" 2>/dev/null; true' EXIT
log "ext4 on $dev at $mnt"

fio --name=restart --directory="$mnt" --ioengine=libaio --direct=1 --iodepth=8 --rw=randwrite \
	--bs=4k --size=24M --numjobs=2 --fsync=32 --verify=crc32c --do_verify=1 --verify_fatal=1 \
	--group_reporting >/tmp/fio-restart.log 2>&1 &
fio_pid=$!
sleep 3
kill -0 "$fio_pid" 2>/dev/null || die "fio ended too early"

sup=$(supervisor_pids | head -1)
[ -n "$sup" ] || die "no supervisor"
kill -KILL -- "-$sup" # the supervisor leads the process group of its workers
wait_for 5 sh -c "! kill -0 $sup 2>/dev/null" || die "the supervisor survived SIGKILL"
log "killed supervisor $sup and its workers"
sleep 2
kill -0 "$fio_pid" 2>/dev/null || die "fio ended while no daemon served the device"
[ "$(queue_counter 1 0 worker_pid)" = 0 ] || die "a worker is still attached"

start=$(date +%s.%N)
dev2=$(azbusectl add 1 --recover) || die "azbusectl add 1 --recover failed"
[ "$dev2" = "$dev" ] || die "--recover printed $dev2, not $dev"
log "recovered in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", (e - s) * 1000 }') ms by supervisor $(supervisor_pids | head -1)"

wait_fio "$fio_pid" /tmp/fio-restart.log "across the daemon restart"
log "ok   fio finished and verified across the restart"
requeued=$(($(queue_counter 1 0 requeued) + $(queue_counter 1 1 requeued)))
log "requests re-posted to the new workers: $requeued"
umount "$mnt"
trap - EXIT
fsck.ext4 -f -n "$dev" >/dev/null || die "fsck found errors after the restart"
log "ok   fsck clean"

# a --recover while a daemon serves the device is refused and harms nothing
if azbusectl add 1 --recover 2>/tmp/recover-refused.log; then
	die "a second --recover of a served device succeeded"
fi
log "ok   refused: $(cat /tmp/recover-refused.log)"
ls /dev/shm/azbuse-mem-* >/dev/null 2>&1 || die "the refused --recover destroyed the device's memory"
mount "$dev" "$mnt"
[ -n "$(ls "$mnt")" ] || die "the filesystem is empty after the refused --recover"
umount "$mnt"

# only the supervisor killed: its workers go on serving; --recover stops them
# and starts its own, with the filesystem mounted and written meanwhile
mount "$dev" "$mnt"
trap 'umount "$mnt" 2>/dev/null; true' EXIT
sup=$(supervisor_pids | head -1)
mapfile -t orphans < <(worker_pids)
kill -KILL "$sup"
wait_for 5 sh -c "! kill -0 $sup 2>/dev/null" || die "the supervisor survived SIGKILL"
dd if=/dev/urandom of="$mnt/after-sup" bs=1M count=2 conv=fsync status=none ||
	die "the orphaned workers did not serve"
azbusectl add 1 --recover >/dev/null || die "--recover with the old workers still serving failed"
sleep 3
[ -b "$dev" ] || die "$dev is gone after the --recover"
for p in "${orphans[@]}"; do
	if kill -0 "$p" 2>/dev/null; then die "the dead supervisor's worker $p still runs"; fi
done
for p in $(worker_pids); do
	[ "$p" -gt 1 ] || die "a queue has no worker after the --recover"
done
dd if=/dev/urandom of="$mnt/after-recover" bs=1M count=2 conv=fsync status=none ||
	die "writing after the --recover failed"
umount "$mnt"
trap - EXIT
fsck.ext4 -f -n "$dev" >/dev/null || die "fsck found errors after the supervisor-only restart"
log "ok   only the supervisor killed: --recover stopped its workers and serves"

# a device whose daemon is dead can still be removed, and leaves nothing behind
kill -KILL -- "-$(supervisor_pids | head -1)"
sleep 1
azbusectl remove 1 || die "remove of a device without a daemon failed"
[ ! -e /run/azbuse/azbuse1.conf ] || die "the saved configuration was left behind"
ls /dev/shm/azbuse-mem-* 2>/dev/null && die "the mem engine's shared memory was left behind"
log "ok"
