#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 81-thin-crash: daemon crashes under an fsync-heavy workload on a thin volume.
# ext4 (mounted with discard) on a thin volume of a pool on ext4 on brd; a
# writer creates files of random size and content, fsyncs each (and its
# directory), sometimes rewrites or deletes one, and logs each file's sha256
# once its fsync returned (in /tmp, outside the volume). Meanwhile every
# worker of the device is SIGKILLed at once, several times at random moments
# (the supervisor restarts them); then the supervisor and its workers are
# killed together and `azbusectl add 1 --recover` takes the device over while
# the filesystem stays mounted, and the new supervisor's workers are killed
# once more. The writer sees no error throughout, no
# request fails and the kernel logs no I/O error. Then:
# umount, `azbuse-thin check` with the device removed is clean, served again
# fsck -f -n is clean, and every logged file holds its last logged content.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd python3

fs=/mnt/thin-crash-fs
wlog=/tmp/thin-crash-writes.log
stop=/tmp/thin-crash-stop
writer=

thin_case_cleanup() { # RC
	[ "$1" = 0 ] || sup_log_keep
	[ -z "$writer" ] || kill -KILL "$writer" 2>/dev/null || true
	if mountpoint -q "$fs"; then umount "$fs"; fi
}

writer_alive() {
	kill -0 "$writer" 2>/dev/null || { cat /tmp/thin-crash-writer.err >&2; die "the writer ended early"; }
}
tlog() { log "[${SECONDS}s] $*"; }
ms_since() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", (e - s) * 1000 }'; }

thin_pool_setup thin-crash 512
mkdir -p "$fs"

athin init --chunk-size 64k --shards 2 >/dev/null || die "init failed"
athin create vol1 --size 256M >/dev/null || die "create failed"
# requests wait for the new daemon up to 60 s (the --recover part below)
serve vol1 --recovery-timeout 60000
mkfs.ext4 -q -E nodiscard /dev/azbuse1
mount -o discard /dev/azbuse1 "$fs"
mkdir "$fs/w"
tlog "ext4 on the thin volume"

# --- the writer -----------------------------------------------------------------
rm -f "$stop" "$wlog"
python3 - "$fs/w" "$wlog" "$stop" >/tmp/thin-crash-writer.out 2>/tmp/thin-crash-writer.err <<'EOF' &
import hashlib, os, random, sys
d, logpath, stop = sys.argv[1:4]
rng = random.Random()
log = open(logpath, 'w')
dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
live, n, ops = [], 0, {'new': 0, 'rewrite': 0, 'delete': 0}
while not os.path.exists(stop):
    r = rng.random()
    if live and r < 0.1:
        name = live.pop(rng.randrange(len(live)))
        os.unlink(os.path.join(d, name))
        os.fsync(dfd)
        log.write(f"D {name}\n")
        ops['delete'] += 1
    else:
        if live and r < 0.3:
            name = rng.choice(live)
            ops['rewrite'] += 1
        else:
            n += 1
            name = f"f{n:05d}"
            live.append(name)
            ops['new'] += 1
        # random size, often not a multiple of the block size; a few large
        size = rng.randint(1, 64 << 10) if rng.random() < 0.8 else rng.randint(64 << 10, 1 << 20)
        data = os.urandom(size)
        fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.fsync(dfd)
        log.write(f"W {name} {hashlib.sha256(data).hexdigest()}\n")
    log.flush()
    # keep the filesystem from filling: discards give chunks back
    if len(live) > 200:
        name = live.pop(0)
        os.unlink(os.path.join(d, name))
        os.fsync(dfd)
        log.write(f"D {name}\n")
        log.flush()
        ops['delete'] += 1
print(f"{ops['new']} new, {ops['rewrite']} rewritten, {ops['delete']} deleted, {len(live)} kept")
EOF
writer=$!
sleep 1
writer_alive

# --- SIGKILL every worker at once, several times ----------------------------------
kills=0
for round in 1 2 3; do
	sleep "$((RANDOM % 2)).$((RANDOM % 10))"
	writer_alive
	mapfile -t old < <(worker_pids)
	[ "${#old[@]}" -ge 2 ] || die "expected 2 workers, got: ${old[*]}"
	for p in "${old[@]}"; do
		[ "$p" -gt 1 ] || die "a queue has no worker before kill round $round (${old[*]})"
	done
	start=$(date +%s.%N)
	kill -KILL "${old[@]}"
	kills=$((kills + ${#old[@]}))
	# back when every queue has a worker that is none of the killed ones
	# shellcheck disable=SC2016 # expanded by the inner sh
	wait_for 30 sh -c '
		for p in $('"$AZBUSE_CTL"' info 1 --json | grep -o "\"worker_pid\": [0-9]*" | grep -o "[0-9]*$"); do
			[ "$p" -gt 1 ] || exit 1
			for o in '"${old[*]}"'; do [ "$p" != "$o" ] || exit 1; done
		done' || die "the workers were not all restarted within 30 s (round $round)"
	tlog "round $round: killed workers ${old[*]}; all back after $(ms_since "$start") ms: $(worker_pids | tr '\n' ' ')"
done
sleep 1
writer_alive
files_before=$(grep -c '^W' "$wlog" || true)

# --- SIGKILL the supervisor with its workers; --recover with ext4 mounted ------------
sup=$(supervisor_pids | head -1)
[ -n "$sup" ] || die "no supervisor"
[ "$(ps -o pgid= -p "$sup" | tr -d ' ')" = "$sup" ] || die "supervisor $sup does not lead its process group"
kill -KILL -- "-$sup"
wait_for 10 sh -c "! kill -0 $sup 2>/dev/null" || die "the supervisor survived SIGKILL"
tlog "killed supervisor $sup and its workers"
sleep 1
writer_alive
start=$(date +%s.%N)
dev=$(azbusectl add 1 --recover) || die "azbusectl add 1 --recover failed"
[ "$dev" = /dev/azbuse1 ] || die "--recover printed '$dev'"
tlog "recovered in $(ms_since "$start") ms by supervisor $(supervisor_pids | head -1)"
sleep "$((1 + RANDOM % 2))"
writer_alive
# one more worker kill under the new supervisor
mapfile -t old < <(worker_pids)
kill -KILL "${old[@]}"
kills=$((kills + ${#old[@]}))
# shellcheck disable=SC2016
wait_for 30 sh -c '
	for p in $('"$AZBUSE_CTL"' info 1 --json | grep -o "\"worker_pid\": [0-9]*" | grep -o "[0-9]*$"); do
		[ "$p" -gt 1 ] || exit 1
		for o in '"${old[*]}"'; do [ "$p" != "$o" ] || exit 1; done
	done' || die "the new supervisor did not restart its workers"
tlog "killed workers ${old[*]} of the new supervisor; all back: $(worker_pids | tr '\n' ' ')"
sleep 1

touch "$stop"
rc=0
wait "$writer" || rc=$?
writer=
if [ "$rc" -ne 0 ]; then
	cat /tmp/thin-crash-writer.err >&2
	die "the writer failed across the crashes (exit $rc)"
fi
files_after=$(grep -c '^W' "$wlog" || true)
[ "$files_after" -gt "$files_before" ] || die "the writer wrote nothing after the --recover"
requeued=$(($(queue_counter 1 0 requeued) + $(queue_counter 1 1 requeued)))
failed=$(($(queue_counter 1 0 failed) + $(queue_counter 1 1 failed)))
tlog "writer: $(cat /tmp/thin-crash-writer.out) ($files_after fsynced writes, $files_before before the supervisor kill); $kills workers killed; $requeued request(s) re-posted to new workers"
[ "$failed" = 0 ] || die "$failed request(s) failed"
if dmesg | grep -E "I/O error|EXT4-fs (error|warning)|Buffer I/O" >&2; then
	die "I/O errors in the kernel log"
fi

# --- afterwards: the pool's metadata, the filesystem, the files ---------------------
umount "$fs"
remove_device 1
athin check >/tmp/thin-crash-check.log 2>&1 || { cat /tmp/thin-crash-check.log >&2; die "azbuse-thin check found problems"; }
serve vol1
fsck.ext4 -f -n /dev/azbuse1 >/tmp/thin-crash-fsck.log 2>&1 || { cat /tmp/thin-crash-fsck.log >&2; die "fsck after the crashes"; }
tlog "check and fsck clean"
mount -o ro /dev/azbuse1 "$fs"
python3 - "$fs/w" "$wlog" <<'EOF' || die "files do not match what was fsynced"
import hashlib, os, sys
d, logpath = sys.argv[1:3]
want = {}
for line in open(logpath):
    f = line.split()
    if f[0] == 'W':
        want[f[1]] = f[2]
    else:
        want.pop(f[1], None)
bad = 0
for name, sha in sorted(want.items()):
    try:
        got = hashlib.sha256(open(os.path.join(d, name), 'rb').read()).hexdigest()
    except OSError as e:
        print(f"{name}: {e}", file=sys.stderr); bad += 1; continue
    if got != sha:
        print(f"{name}: sha256 {got}, fsynced {sha}", file=sys.stderr); bad += 1
extra = set(os.listdir(d)) - set(want)
for name in sorted(extra):
    print(f"{name}: exists but was deleted", file=sys.stderr); bad += 1
if bad:
    sys.exit(1)
print(f"{len(want)} files match")
EOF
umount "$fs"
remove_device 1
log "ok"
