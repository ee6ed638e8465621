#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 83-thin-restart-after-snapshot: a worker restarted after a live snapshot
# keeps working. The snapshot writes pool.db read-write; if the supervisor
# did that itself, RocksDB's background threads would start in it and a
# worker forked afterwards would inherit the thread pool without its threads:
# its shard's memtables would never be flushed and it would stop for good
# after some 20k new chunks. So: live snapshot, SIGKILL every worker, then
# the restarted workers must have RocksDB threads of their own and write
# 24k+ new chunks each with no request failing and no watchdog kill;
# azbuse-thin check stays clean. Also: the snapshot is written by the
# keeper, which azbuse-thin asks to let go of pool.db when it changes it. A
# snapshot that pool.db records but whose last step fails still holds the
# volume as it was.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio

rocksdb_threads() { cat /proc/"$1"/task/*/comm 2>/dev/null | grep -c '^rocksdb:' || true; }
# watchdog kills in every supervisor log so far (earlier cases' too)
watchdog_kills() { cat /run/azbuse/supervisor-*.log 2>/dev/null | grep -c 'killing it' || true; }
kills_before=$(watchdog_kills)

thin_pool_setup thin-restart 1024
athin init --chunk-size 64k --shards 2 >/dev/null || die "init failed"
athin create vol1 --size 8G >/dev/null || die "create failed"
azbusectl add 1 --engine=thin --pool "$pool" --volume vol1 >/dev/null || die "serving vol1 failed"

run_fio --name=before --filename=/dev/azbuse1 --rw=write --bs=64k --size=64M --direct=1 \
	--ioengine=libaio --iodepth=8
athin snapshot vol1 snap1 >/dev/null || die "live snapshot failed"

# The snapshot was written by the daemon's pool.db keeper, a child of the
# supervisor that keeps pool.db open; the supervisor itself has no RocksDB.
sup=$(supervisor_pids | head -1)
[ -n "$sup" ] || die "no supervisor"
[ "$(rocksdb_threads "$sup")" = 0 ] || die "the supervisor $sup runs RocksDB threads"
keeper=
for p in $(pgrep -P "$sup" || true); do
	worker_pids | grep -qx "$p" && continue
	[ "$(rocksdb_threads "$p")" -gt 0 ] && keeper=$p
done
[ -n "$keeper" ] || die "no pool.db keeper with RocksDB open under supervisor $sup"
# azbuse-thin changing pool.db meanwhile has the daemon let go of it (it
# would fail after 5 s of EBUSY otherwise); the next snapshot opens it again
t0=$(date +%s%N)
athin create vol2 --size 1G >/dev/null || die "create while the keeper holds pool.db failed"
log "create while served (keeper asked to let go of pool.db): $((($(date +%s%N) - t0) / 1000000)) ms"
athin snapshot vol1 snap2 >/dev/null || die "a live snapshot after the release failed"
athin delete snap2 --yes >/dev/null || die "delete of snap2 while served failed"

# A snapshot that pool.db records but whose last step fails (here: the data
# check after the commit, a shard's data file moved away) is reported as
# failed, yet the workers take its epoch: later writes do not reach it.
head -c 1M /dev/urandom >/tmp/restart-a.bin
head -c 1M /dev/urandom >/tmp/restart-b.bin
dd if=/tmp/restart-a.bin of=/dev/azbuse1 bs=1M oflag=direct status=none
mv "$pool/shard-1/data" "$pool/shard-1/data.away"
if athin snapshot vol1 snap3 >/tmp/restart-snap3.log 2>&1; then
	mv "$pool/shard-1/data.away" "$pool/shard-1/data"
	die "a snapshot whose data check failed was reported as taken"
fi
mv "$pool/shard-1/data.away" "$pool/shard-1/data"
grep -q "recorded all the same" /tmp/restart-snap3.log ||
	{ cat /tmp/restart-snap3.log >&2; die "the failed snapshot does not say it was recorded"; }
dd if=/tmp/restart-b.bin of=/dev/azbuse1 bs=1M oflag=direct status=none
azbusectl add 2 --engine=thin --pool "$pool" --volume snap3 >/dev/null || die "serving snap3 failed"
cmp <(dd if=/dev/azbuse2 bs=1M count=1 iflag=direct status=none) /tmp/restart-a.bin ||
	die "snapshot snap3 changed after it was taken: the workers kept the old epoch"
remove_device 2
athin delete snap3 --yes >/dev/null || die "delete of snap3 failed"
log "ok   a snapshot recorded although reported failed holds the volume as it was"

mapfile -t old < <(worker_pids)
for p in "${old[@]}"; do
	[ "$p" -gt 1 ] || die "a queue has no worker (${old[*]})"
	[ "$(rocksdb_threads "$p")" -gt 0 ] || die "worker $p has no RocksDB threads before the kill"
done
kill -KILL "${old[@]}"
wait_for 20 sh -c 'for p in $(azbusectl info 1 --json | grep -o "\"worker_pid\": [0-9]*" | awk "{ print \$2 }"); do
	[ "$p" -gt 1 ] || exit 1
	for o in '"${old[*]}"'; do [ "$p" != "$o" ] || exit 1; done
done' || die "the workers were not restarted"
sleep 0.5
for p in $(worker_pids); do
	n=$(rocksdb_threads "$p")
	log "restarted worker $p has $n RocksDB threads"
	[ "$n" -gt 0 ] || die "restarted worker $p has no RocksDB threads: its flushes would never run"
done

# 2 x 24576 new chunks (4k at the start of each 64k chunk), past the old stall
start=$SECONDS
run_fio --name=new-chunks --filename=/dev/azbuse1 --rw=write:60k --bs=4k --numjobs=2 \
	--size=1536M --offset=64M --offset_increment=1536M --direct=1 --ioengine=libaio --iodepth=32
log "49152 new chunks written in $((SECONDS - start)) s after the restart"
failed=$(($(queue_counter 1 0 failed) + $(queue_counter 1 1 failed)))
[ "$failed" = 0 ] || die "$failed request(s) failed"
if [ "$(watchdog_kills)" != "$kills_before" ]; then
	grep -h 'killing it' /run/azbuse/supervisor-*.log >&2
	die "the watchdog killed a worker that completed nothing"
fi

# A worker that cannot start (its shard's data gone for a while) is started
# again later and later, not at once: the restarts are not used up and the
# device is not given up; once the data is back, a worker serves it again.
restarts_of0() { cat /run/azbuse/supervisor-*.log | grep -c 'restarted worker for queue 0' || true; }
before=$(restarts_of0)
mv "$pool/shard-0/data" "$pool/shard-0/data.away"
kill -KILL "$(queue_counter 1 0 worker_pid)"
sleep 6
restarts=$(($(restarts_of0) - before))
mv "$pool/shard-0/data.away" "$pool/shard-0/data"
log "a worker that could not start for 6 s was started $restarts times"
[ "$restarts" -ge 2 ] || die "the worker was not started again ($restarts)"
[ "$restarts" -le 10 ] || die "the worker was started again $restarts times in 6 s: no delay"
[ -b /dev/azbuse1 ] || die "the device was given up"
both_attached() { [ "$(azbusectl info 1 --json | grep -c '"state": "attached"')" = 2 ]; }
wait_for 10 both_attached || die "queue 0 has no worker once its data is back"
dd if=/dev/azbuse1 of=/dev/null bs=64k count=16 iflag=direct status=none ||
	die "reading after the worker came back failed"
remove_device 1
athin check >/tmp/thin-restart-check.log 2>&1 || { cat /tmp/thin-restart-check.log >&2; die "azbuse-thin check found problems"; }
log "ok"
