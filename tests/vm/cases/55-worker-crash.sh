#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 55-worker-crash: SIGKILL workers while fio writes and verifies: the
# supervisor starts a new worker, which attaches to the same queue and gets
# the queue's in-flight requests again; fio ends without an error and every
# block verifies. Then the recovery window: with no worker coming back, the
# queue's requests fail with EIO after --recovery-timeout and new ones fail
# at once, until a worker attaches again.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio

worker_of() { # ID QUEUE
	queue_counter "$1" "$2" worker_pid
}

# --- part 1: crashes under load are invisible to the application ------------
dev=$(add_mem_device 1 256M --queues 2)
log "device $dev"
fio --name=crash --filename="$dev" --direct=1 --ioengine=libaio --iodepth=16 --rw=randwrite \
	--bssplit=4k/50:64k/30:256k/20 --numjobs=2 --size=96M --offset_increment=128M \
	--verify=crc32c --do_verify=1 --verify_fatal=1 --loops=4 --group_reporting \
	>/tmp/fio-crash.log 2>&1 &
fio_pid=$!
killed=0
for round in 1 2 3 4; do
	sleep 2
	kill -0 "$fio_pid" 2>/dev/null || break
	q=$((round % 2))
	pid=$(worker_of 1 "$q")
	# the stall: until a new worker has attached to the queue
	ms=$(replace_worker 1 "$q")
	killed=$((killed + 1))
	log "killed worker $pid (queue $q): new worker after $ms ms"
done
wait_fio "$fio_pid" /tmp/fio-crash.log "across worker crashes"
[ "$killed" -ge 2 ] || die "fio ended before two workers could be killed"
requeued=$(($(queue_counter 1 0 requeued) + $(queue_counter 1 1 requeued)))
log "ok   fio verify passed across $killed worker kills; $requeued request(s) re-posted"
remove_device 1

# --- part 2: the recovery window -----------------------------------------------
dev=$(add_mem_device 1 64M --queues 1 --recovery-timeout 2000)
sup=$(supervisor_pids | head -1)
kill -STOP "$sup" # no restart
pid=$(worker_of 1 0)
kill -KILL "$pid"
start=$SECONDS
if dd if="$dev" of=/dev/null bs=4k count=1 iflag=direct status=none 2>/dev/null; then
	kill -CONT "$sup"
	die "a read succeeded with no worker"
fi
took=$((SECONDS - start))
log "ok   a read with no worker failed after ${took} s (window 2 s)"
[ "$took" -le 10 ] || { kill -CONT "$sup"; die "the read took ${took} s to fail"; }
start=$SECONDS
dd if="$dev" of=/dev/null bs=4k count=1 iflag=direct status=none 2>/dev/null &&
	{ kill -CONT "$sup"; die "a read succeeded on a failed queue"; }
[ $((SECONDS - start)) -le 1 ] || { kill -CONT "$sup"; die "a failed queue did not fail fast"; }
log "ok   then new requests fail at once"
kill -CONT "$sup"
wait_for 10 sh -c "[ \"\$($AZBUSE_CTL info 1 --json | grep -o '\"worker_pid\": [0-9]*' | grep -o '[0-9]*\$')\" -gt 0 ]" ||
	die "the supervisor did not restart the worker"
dd if="$dev" of=/dev/null bs=4k count=1 iflag=direct status=none || die "no I/O after a worker came back"
log "ok   a new worker brings the queue back"
remove_device 1
log "ok"
