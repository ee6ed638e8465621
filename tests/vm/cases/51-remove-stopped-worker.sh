#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 51-remove-stopped-worker: remove a device while one of its workers is
# stopped with SIGSTOP and holds requests: the module gives up on it after
# the removal's stall timeout, fails those requests, and nothing hangs.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio

dev=$(add_mem_device 1 128M --queues 1)
worker=$(azbusectl info 1 --json | grep -o '"worker_pid": [0-9]*' | awk '{ print $2 }')
[ -n "$worker" ] && [ "$worker" -gt 1 ] || die "no worker pid in azbusectl info"
log "device $dev, worker $worker"

fio --name=load --filename="$dev" --direct=1 --ioengine=libaio --iodepth=8 --rw=randread \
	--bs=4k --time_based --runtime=60 --allow_file_create=0 >/tmp/fio-stop.log 2>&1 &
fio_pid=$!
sleep 2
kill -STOP "$worker"
sleep 1
inflight=$(queue_counter 1 0 inflight)
log "worker stopped with $inflight request(s) in flight"

start=$SECONDS
azbusectl remove 1 --force || die "remove with a stopped worker failed"
log "remove took $((SECONDS - start)) s"
[ $((SECONDS - start)) -le 30 ] || die "remove with a stopped worker took over 30 s"
wait_for 20 sh -c "! kill -0 $fio_pid 2>/dev/null" || die "fio still running after remove"
# the requests the stopped worker held failed: fio must have seen errors
if wait "$fio_pid"; then
	cat /tmp/fio-stop.log >&2
	die "fio saw no error although its requests were failed"
fi
log "fio: $(grep -m1 -o 'err=[^:]*' /tmp/fio-stop.log || echo 'exit status only')"
kill -CONT "$worker" 2>/dev/null || log "the stopped worker is already gone"
wait_for 10 sh -c "! kill -0 $worker 2>/dev/null" || die "the stopped worker did not exit after SIGCONT"
[ ! -e /dev/azbuse1 ] || die "/dev/azbuse1 still exists"
log "ok"
