#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 50-remove-under-load: `azbusectl remove` while fio runs on the device is
# refused; `azbusectl remove --force` then returns promptly, fio ends with
# I/O errors instead of hanging, and the device number is free again.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio

dev=$(add_mem_device 1 256M --queues 2)
log "device $dev"

# writes: once the disk is gone its size is 0, so each write fails (ENOSPC)
# where a read would just see end-of-file; and fio must not create a
# regular file at the device's path when it reopens it
fio --name=load --filename="$dev" --direct=1 --ioengine=libaio --iodepth=16 --rw=randwrite \
	--bs=4k --numjobs=2 --time_based --runtime=60 --size=256M --allow_file_create=0 \
	>/tmp/fio-load.log 2>&1 &
fio_pid=$!
sleep 3
kill -0 "$fio_pid" || die "fio ended before the removal"

azbusectl remove 1 2>/dev/null && die "remove of a device fio has open succeeded without --force"
start=$SECONDS
azbusectl remove 1 --force || die "remove --force under load failed"
log "remove took $((SECONDS - start)) s"
[ $((SECONDS - start)) -le 20 ] || die "remove under load took over 20 s"

# fio must end on its own, with errors, long before its 60 s runtime
if ! wait_for 60 sh -c "! kill -0 $fio_pid 2>/dev/null"; then
	tail -20 /tmp/fio-load.log >&2
	ps -eo pid,stat,wchan:32,cmd | grep -E '[f]io' >&2
	for p in $(pgrep fio); do echo "== $p" >&2; cat /proc/"$p"/stack >&2 2>/dev/null || true; done
	kill -KILL "$fio_pid" 2>/dev/null
	die "fio still running 60 s after remove"
fi
rc=0
wait "$fio_pid" || rc=$?
[ "$rc" -ne 0 ] || die "fio reported success on a removed device"
log "fio exit $rc: $(grep -m1 -o 'err=[^:]*' /tmp/fio-load.log || echo 'no err= line')"

[ ! -e /dev/azbuse1 ] || die "/dev/azbuse1 still exists"
[ -z "$(device_ids)" ] || die "devices left: $(device_ids)"
dev=$(add_mem_device 1 64M)
dd if="$dev" of=/dev/null bs=4k count=1 iflag=direct status=none || die "id 1 unusable after removal"
remove_device 1
log "ok"
