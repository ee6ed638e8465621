# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# lib.sh: helpers shared by the VM test cases (sourced, not run). The suite
# runner (run-suite.sh) sets AZBUSE_CTL, AZBUSE_BUILD_DIR and AZBUSE_TOOLS.

: "${AZBUSE_CTL:?run the cases through tests/vm/run-suite.sh}"
: "${AZBUSE_TOOLS:?run the cases through tests/vm/run-suite.sh}"

# The module under test (run-suite.sh exports it; default: the build's).
: "${AZBUSE_MODULE:=${AZBUSE_BUILD_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/build}/kmod/azbuse.ko}"

# Exit status that makes run-suite.sh report the case as skipped.
EXIT_SKIP=77

# The case's name, for messages.
case_name=$(basename "${BASH_SOURCE[1]:-$0}" .sh)

log() {
	echo "[$case_name] $*"
}

die() {
	echo "[$case_name] FAIL: $*" >&2
	exit 1
}

skip() {
	echo "[$case_name] SKIP: $*" >&2
	exit "$EXIT_SKIP"
}

# require_cmd CMD...: skip the case unless every CMD is installed.
require_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || skip "$c is not installed"
	done
}

# wait_for SECONDS CMD [ARGS...]: poll CMD every 0.1 s until it succeeds;
# fails if it has not within SECONDS.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.1
	done
}

# azbusectl ARGS...: the CLI under test.
azbusectl() {
	"$AZBUSE_CTL" "$@"
}

# device_ids: the ids of every azbuse device, one per line.
device_ids() {
	azbusectl list | awk 'NR > 1 { sub(/^azbuse/, "", $1); print $1 }'
}

# supervisor_pids: the supervisor pid of every azbuse device, one per line.
supervisor_pids() {
	azbusectl list --json | grep -o '"supervisor_pid": [0-9]*' | awk '$2 > 1 { print $2 }'
}

# add_mem_device ID|any SIZE [OPTIONS...]: add a mem-engine device, print
# its block device path.
add_mem_device() {
	local id=$1 size=$2 dev
	shift 2
	dev=$(azbusectl add "$id" --engine=mem --size "$size" "$@") ||
		die "azbusectl add $id --engine=mem --size $size $* failed"
	[ -b "$dev" ] || die "azbusectl add printed '$dev', which is not a block device"
	echo "$dev"
}

# remove_device ID: remove a device and check that its nodes are gone.
remove_device() {
	azbusectl remove "$1" || die "azbusectl remove $1 failed"
	wait_for 10 test ! -e "/dev/azbuse$1" || die "/dev/azbuse$1 still exists after remove"
	wait_for 10 test ! -e "/dev/azbusec$1" || die "/dev/azbusec$1 still exists after remove"
}

# cleanup_devices: unmount and remove every azbuse device, then kill any
# supervisor left behind. Safe to call when there is nothing to clean.
cleanup_devices() {
	local pids mnt id pid
	[ -e /dev/azbusectl ] || return 0
	pids=$(supervisor_pids || true)
	while read -r mnt; do
		[ -n "$mnt" ] && { umount "$mnt" || umount -l "$mnt"; }
	done < <(awk '$1 ~ /^\/dev\/azbuse[0-9]/ { print $2 }' /proc/mounts)
	for id in $(device_ids || true); do
		azbusectl remove "$id" --force >/dev/null || echo "cleanup: azbusectl remove $id failed" >&2
	done
	# processes still holding a device (e.g. an fio a failed case left running)
	for pid in $(find /proc/[0-9]*/fd -lname '/dev/azbuse*' 2>/dev/null | cut -d/ -f3 | sort -u); do
		if [ "$pid" -gt 1 ] && [ "$pid" != $$ ]; then
			kill -KILL "$pid" 2>/dev/null || echo "cleanup: $pid already gone" >&2
		fi
	done
	# a program that reopened a removed device's path may have created a file there
	find /dev -maxdepth 1 -name 'azbuse*' -type f -delete
	for pid in $pids; do
		kill -0 "$pid" 2>/dev/null || continue
		echo "cleanup: killing leftover supervisor $pid" >&2
		# a supervisor leads its own process group, with its workers
		if [ "$(ps -o pgid= -p "$pid" | tr -d ' ')" = "$pid" ]; then
			kill -KILL -- "-$pid" 2>/dev/null || true
		else
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
}

# write_random_files DIR COUNT TOTAL_MB: COUNT files of random sizes (at
# least 64 KiB each) from /dev/urandom, totalling TOTAL_MB MiB.
write_random_files() {
	local dir=$1 count=$2 total_kb=$(($3 * 1024)) i kb left
	left=$total_kb
	for ((i = 1; i <= count; i++)); do
		if [ "$i" -eq "$count" ]; then
			kb=$left
		else
			# random size around the mean, keeping enough for the rest
			kb=$((64 + RANDOM * 2 * (left / (count - i + 1)) / 32768))
			[ $((left - kb)) -ge $(((count - i) * 64)) ] || kb=64
		fi
		head -c "$((kb * 1024))" /dev/urandom >"$dir/file-$i" ||
			die "cannot write $dir/file-$i"
		left=$((left - kb))
	done
}

# sha256_record DIR OUT: checksums of every file under DIR, to OUT.
sha256_record() {
	(cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) >"$2"
}

# sha256_verify DIR SUMS: check the files under DIR against SUMS.
sha256_verify() {
	(cd "$1" && sha256sum --quiet --strict -c) <"$2"
}

# run_fio ARGS...: run fio with ARGS; fails (with its output) if fio exits
# non-zero, any job reports err=N != 0, or a verify failure is logged.
run_fio() {
	local out rc=0
	out=$(fio --output-format=normal "$@" 2>&1) || rc=$?
	if [ "$rc" -ne 0 ] || grep -Eq 'err= *[1-9]|verify: bad|verify failed|fio: .*error' <<<"$out"; then
		echo "$out" >&2
		die "fio failed (exit $rc)"
	fi
	grep -E '^ *(read|write): IOPS|err=' <<<"$out" | sed "s/^ */[$case_name] fio: /"
}

# wait_fio PID LOG WHAT: wait for a fio started in the background with its
# output in LOG; fails (showing LOG) if fio failed, a job reported an error
# or a block did not verify. WHAT says across what, for the message.
wait_fio() {
	local rc=0
	wait "$1" || rc=$?
	if [ "$rc" -ne 0 ] || grep -Eq 'err= *[1-9]|verify: bad|verify failed' "$2"; then
		cat "$2" >&2
		die "fio failed $3 (exit $rc)"
	fi
}

# replace_worker ID QUEUE: SIGKILL the worker of queue QUEUE of device ID and
# wait up to 10 s for the supervisor's new worker to attach; prints how many
# milliseconds that took.
replace_worker() {
	local id=$1 q=$2 pid start
	pid=$(queue_counter "$id" "$q" worker_pid)
	[ -n "$pid" ] && [ "$pid" -gt 1 ] || die "no worker on queue $q"
	start=$(date +%s%N)
	kill -KILL "$pid"
	wait_for 10 queue_worker_replaced "$id" "$q" "$pid" ||
		die "no new worker on queue $q within 10 s (killed $pid)"
	echo $((($(date +%s%N) - start) / 1000000))
}

# verify_across_worker_kill ID DEV LOG OLD AT_MIB: writes file OLD to DEV at
# AT_MIB MiB (past the first 128), then runs fio verify on DEV (two jobs of
# 64 MiB each, 4k to 256k writes, depth 16) while the worker of queue 1 of
# device ID is SIGKILLed; fails (showing LOG) if fio failed or a block did
# not verify, or if OLD no longer reads back; prints how many ms the new
# worker took to attach.
verify_across_worker_kill() {
	local id=$1 dev=$2 out=$3 old=$4 at=$5 pid ms mib
	mib=$(($(stat -c %s "$old") >> 20))
	dd if="$old" of="$dev" bs=1M seek="$at" oflag=direct status=none
	fio --output-format=normal --name=verify-kill --filename="$dev" --size=64M --direct=1 \
		--ioengine=libaio --iodepth=16 --numjobs=2 --offset_increment=64M --rw=randwrite \
		--bssplit=4k/50:64k/40:256k/10 --verify=crc32c --do_verify=1 --verify_fatal=1 \
		>"$out" 2>&1 &
	pid=$!
	sleep 2
	ms=$(replace_worker "$id" 1)
	wait_fio "$pid" "$out" "across a worker kill"
	cmp <(dd if="$dev" bs=1M skip="$at" count="$mib" iflag=direct status=none) "$old" ||
		die "data written before the worker kill changed"
	echo "$ms"
}

# queue_requests ID: the requests counter of each queue of device ID, one per line.
queue_requests() {
	azbusectl info "$1" --json | grep -o '"requests": [0-9]*' | awk '{ print $2 }'
}

# queue_counter ID QUEUE NAME: one field (a counter, "worker_pid", "state")
# of one queue, from info --json (one member per line).
queue_counter() {
	azbusectl info "$1" --json | awk -v q="$2" -v f="\"$3\":" '
		BEGIN { cur = "none" }
		$1 == "\"queue\":" { cur = $2; sub(/,$/, "", cur) }
		$1 == f && cur == q { v = $2; sub(/,$/, "", v); gsub(/"/, "", v); print v; exit }'
}

# queue_field_is ID QUEUE NAME VALUE: whether that field has that value now.
queue_field_is() {
	[ "$(queue_counter "$1" "$2" "$3")" = "$4" ]
}

# queue_worker_replaced ID QUEUE OLD_PID: whether a worker other than OLD_PID serves the queue.
queue_worker_replaced() {
	local p
	p=$(queue_counter "$1" "$2" worker_pid)
	[ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$3" ]
}

# module_still_works QUEUES WHAT: after abuse, a new mem device (id 1) takes
# 8 MiB of O_DIRECT I/O and reads it back intact with no completion rejected,
# and removing it leaves no device behind.
module_still_works() {
	local queues=$1 what=$2 dev work q
	dev=$(add_mem_device 1 64M --queues "$queues")
	work=$(mktemp -d)
	head -c 8M /dev/urandom >"$work/in"
	dd if="$work/in" of="$dev" bs=1M oflag=direct status=none || die "write to $dev failed"
	dd if="$dev" of="$work/out" bs=1M count=8 iflag=direct status=none ||
		die "read from $dev failed"
	cmp "$work/in" "$work/out" || die "data read back from $dev differs"
	rm -rf "$work"
	for ((q = 0; q < queues; q++)); do
		[ "$(queue_counter 1 "$q" rejected)" = 0 ] || die "queue $q of $dev rejected completions"
	done
	remove_device 1
	[ -z "$(device_ids)" ] || die "devices left: $(device_ids)"
	log "ok   a mem device still works after $what"
}

# held_write_reuse_check DEV SECONDS [kill-owner]: no chunk is handed out
# again while a write through its old mapping is in flight. CPU 1
# overwrites region X (160-176 MiB of DEV) at random, which the module
# serves from the direct map, each write held 1 s between its lookup and
# its data (the module's direct_write_delay_ms); for SECONDS, CPU 0 (worker
# 0, shard 0's owner) discards X's shard-0 stripes (1 MiB stripes, 2
# shards), which frees their chunks (past 64 frees, reusable at once),
# writes shard-0 stripes of region Y (200-208 MiB) afresh, which takes the
# lowest free chunks, waits for the held writes and reads Y back. A chunk
# handed out before the held writes ended would let them land in Y. Fails
# the case if one did.
# With kill-owner, shard 0's owner is SIGKILLed after each round's
# discards (its wait before reuse dies with it) and Y is written by the
# worker that replaces it. Four writers then overwrite X's shard-0 stripes
# only, one each, so that four writes looked up before the discards are
# held or queued behind each other (one kworker) for up to 4 s. For Y to
# take X's chunks, run it on a pool with no other free chunks.
held_write_reuse_check() {
	local dev=$1 seconds=$2 delay=/sys/module/azbuse/parameters/direct_write_delay_ms stale_pid
	local kill_owner=${3:-} writers=1 where=(--offset=160M --size=16M)
	[ -n "$kill_owner" ] && writers=4 where=(--offset=160M --size=1M --offset_increment=2M)
	dd if=/dev/zero of="$dev" bs=1M seek=160 count=16 oflag=direct status=none
	fio --name=stale --filename="$dev" --rw=randwrite --bs=4k "${where[@]}" --numjobs=$writers \
		--direct=1 --ioengine=psync --runtime=$((seconds * 3)) --time_based --cpus_allowed=1 \
		--eta=never --output=/tmp/held-write-stale.log &
	stale_pid=$!
	echo 1000 >"$delay"
	sleep 1
	if ! python3 - "$dev" "$seconds" "$writers" "$kill_owner" "$AZBUSE_CTL" <<'EOF'; then
import fcntl, mmap, os, re, signal, struct, subprocess, sys, time
os.sched_setaffinity(0, {0})
MIB, BLKDISCARD = 1 << 20, 0x1277
fd = os.open(sys.argv[1], os.O_RDWR | os.O_DIRECT)
writers, kill_owner, azbusectl = int(sys.argv[3]), sys.argv[4], sys.argv[5]
x_stripes = range(160, 176, 2)  # shard 0's stripes of X
y_stripes = range(200, 208, 2)  # and of Y

def owner_pid():
    out = subprocess.run([azbusectl, "info", "1", "--json"], check=True,
                         capture_output=True, text=True).stdout
    return int(re.findall(r'"worker_pid": (\d+)', out)[0])

def replace_owner():
    old, start = owner_pid(), time.monotonic()
    os.kill(old, signal.SIGKILL)
    while time.monotonic() < start + 10:
        pid = owner_pid()
        if pid > 1 and pid != old:
            print(f"owner replaced in {(time.monotonic() - start) * 1000:.0f} ms", file=sys.stderr)
            return
        time.sleep(0.05)
    sys.exit(f"no new worker on queue 0 within 10 s (killed {old})")

rounds, end = 0, time.monotonic() + int(sys.argv[2])
while time.monotonic() < end:
    for s in x_stripes:
        fcntl.ioctl(fd, BLKDISCARD, struct.pack("QQ", s * MIB, MIB))
    if kill_owner:
        replace_owner()
    want = {}
    for s in y_stripes:
        buf = mmap.mmap(-1, MIB)
        buf.write(os.urandom(MIB))
        os.pwrite(fd, buf, s * MIB)
        want[s] = bytes(buf)
    os.fsync(fd)
    time.sleep(writers + 0.5)  # every write held before the reuse has landed by now
    for s in y_stripes:
        got = mmap.mmap(-1, MIB)
        os.preadv(fd, [got], s * MIB)
        if bytes(got) != want[s]:
            bad = [i for i in range(0, MIB, 4096) if got[i:i + 4096] != want[s][i:i + 4096]]
            zeros = sum(got[i:i + 4096] == bytes(4096) for i in bad)
            sys.exit(f"round {rounds}: stripe {s} MiB changed at +{bad[0]} after it was "
                     f"written ({len(bad)} blocks of 4 KiB, {zeros} of them zeros)")
    for s in y_stripes:
        fcntl.ioctl(fd, BLKDISCARD, struct.pack("QQ", s * MIB, MIB))
    rounds += 1
print(f"{rounds} rounds")
EOF
		echo 0 >"$delay"
		die "a chunk was handed out while a write through its old mapping was in flight"
	fi
	echo 0 >"$delay"
	kill "$stale_pid" 2>/dev/null || true
	wait "$stale_pid" 2>/dev/null || true
}

# --- thin cases: a pool on an ext4 RAM disk ------------------------------------------
# thin_pool_setup NAME MIB [RAM_DISKS]: RAM_DISKS (default 1) brd disks of MIB
# MiB, ext4 on /dev/ram0 mounted at $back (/mnt/NAME-back); sets $thin (the
# tool) and $pool ($back/pool, not made yet). The EXIT trap undoes it all
# (thin_pool_cleanup), after the case's own thin_case_cleanup RC if it has one.
thin_pool_setup() {
	local last=$((${3:-1} - 1))
	thin="$AZBUSE_BUILD_DIR/tools/azbuse-thin"
	back=/mnt/$1-back
	pool=$back/pool
	trap thin_pool_cleanup EXIT
	modprobe brd rd_nr="${3:-1}" rd_size=$(($2 * 1024)) max_part=0
	wait_for 5 test -b /dev/ram$last || die "no /dev/ram$last"
	mkfs.ext4 -q -F /dev/ram0
	mkdir -p "$back"
	mount /dev/ram0 "$back"
}

thin_pool_cleanup() {
	local rc=$?
	# (a failing step of the case's cleanup must not stop the rest)
	if declare -F thin_case_cleanup >/dev/null && ! thin_case_cleanup "$rc"; then
		echo "the case's own cleanup failed" >&2
	fi
	echo 0 >/sys/module/azbuse/parameters/direct_write_delay_ms 2>/dev/null || true
	cleanup_devices
	mountpoint -q "$back" && umount "$back"
	modprobe -r brd 2>/dev/null || true
}

athin() { "$thin" --pool "$pool" "$@"; }

# serve VOLUME [OPTIONS...]: serve a volume or snapshot of $pool as /dev/azbuse1.
serve() {
	local vol=$1
	shift
	azbusectl add 1 --engine=thin --pool "$pool" --volume "$vol" "$@" >/dev/null ||
		die "azbusectl add --engine=thin --volume $vol failed"
	[ -b /dev/azbuse1 ] || die "/dev/azbuse1 missing after serving $vol"
}

# thin_status_sum FIELD: the sum over shards of a counter of device 1's "thin status"
thin_status_sum() {
	python3 - "$1" <<'EOF'
import re, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect("/run/azbuse/azbuse1.sock")
s.sendall(b"thin status\n")
total = 0
for line in s.makefile():
    m = re.search(sys.argv[1] + r" (\d+)", line)
    if line.startswith("shard ") and m:
        total += int(m.group(1))
print(total)
EOF
}

# layered_cow_check VOLUME MIB: copy-on-write by layering on /dev/azbuse1,
# which serves VOLUME of $pool (64 KiB chunks): 4 MiB at MIB MiB filled, a
# snapshot, then into each chunk a 4 KiB write and in every fourth a
# 512-byte one too (whose sub-block's rest comes from the old chunk). The
# volume reads old data with the writes over it at once, and again after
# a new daemon (which finds the chunks still layered in the metadata) has
# completed them when quiet (thin status); the snapshot still reads the old
# data; deleting it frees the old chunks (none would be while layered);
# check is clean. Leaves VOLUME served.
layered_cow_check() {
	local vol=$1 mib=$2 used0 used1 filled
	cat >/tmp/lcow.py <<'EOF'
import mmap, os, random, sys
CHUNK, MIB = 64 << 10, 1 << 20
dev, off, step = sys.argv[1], int(sys.argv[2]) * MIB, sys.argv[3]
size = 4 * MIB
fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
def read_all():
    got = mmap.mmap(-1, size)
    os.preadv(fd, [got], off)
    return bytes(got)
def compare(want, what):
    got = read_all()
    if got != want:
        bad = next(i for i in range(size) if got[i] != want[i])
        sys.exit(f"{what}: byte {bad} of the region reads {got[bad]:#x}, not {want[bad]:#x}")
if step == "fill":
    data = random.Random(7).randbytes(size)
    buf = mmap.mmap(-1, size)
    buf.write(data)
    os.pwritev(fd, [buf], off)
    open("/tmp/lcow-old", "wb").write(data)
elif step == "write":
    want = bytearray(open("/tmp/lcow-old", "rb").read())
    lbs = int(open("/sys/block/" + os.path.basename(dev) + "/queue/logical_block_size").read())
    for i in range(size // CHUNK):
        writes = [((i % 16) * 4096, 4096)]
        if i % 4 == 0:
            writes.append((((i + 5) % 16) * 4096 + 1024, lbs))
        for within, n in writes:
            buf = mmap.mmap(-1, 4096)
            buf.write(bytes([i + 1]) * n)
            os.pwritev(fd, [memoryview(buf)[:n]], off + i * CHUNK + within)
            want[i * CHUNK + within:i * CHUNK + within + n] = bytes([i + 1]) * n
    open("/tmp/lcow-new", "wb").write(want)
    compare(bytes(want), "just after the writes")
else:
    compare(open("/tmp/lcow-" + step, "rb").read(), "read again (" + step + ")")
EOF
	python3 /tmp/lcow.py /dev/azbuse1 "$mib" fill || die "layered CoW: fill failed"
	athin snapshot "$vol" lcsnap >/dev/null || die "layered CoW: snapshot failed"
	python3 /tmp/lcow.py /dev/azbuse1 "$mib" write || die "layered CoW: a written chunk read wrong"
	# a new daemon at once: it finds what was still layered in the metadata
	filled=$(thin_status_sum layered_filled)
	azbusectl remove 1 >/dev/null
	serve "$vol"
	python3 /tmp/lcow.py /dev/azbuse1 "$mib" new || die "layered CoW: read wrong in a new daemon"
	wait_for 10 test "$(thin_status_sum layered_waiting)$(thin_status_sum layered_scanning)" = 00 ||
		die "layered CoW: $(thin_status_sum layered_waiting) chunks still waiting to be completed"
	filled=$((filled + $(thin_status_sum layered_filled)))
	[ "$filled" -ge 64 ] || die "layered CoW: only $filled layered chunks completed"
	python3 /tmp/lcow.py /dev/azbuse1 "$mib" new || die "layered CoW: a completed chunk read wrong"
	azbusectl remove 1 >/dev/null
	serve lcsnap
	python3 /tmp/lcow.py /dev/azbuse1 "$mib" old || die "layered CoW: the snapshot changed"
	azbusectl remove 1 >/dev/null
	used0=$(athin usage --json | grep -o '"used_chunks": [0-9]*' | grep -o '[0-9]*$')
	athin delete lcsnap --yes >/dev/null || die "layered CoW: deleting the snapshot failed"
	used1=$(athin usage --json | grep -o '"used_chunks": [0-9]*' | grep -o '[0-9]*$')
	[ $((used0 - used1)) -ge 64 ] ||
		die "layered CoW: deleting the snapshot freed $((used0 - used1)) chunks, not 64"
	athin check >/tmp/lcow-check.log 2>&1 || { cat /tmp/lcow-check.log >&2; die "layered CoW: check"; }
	serve "$vol"
	python3 /tmp/lcow.py /dev/azbuse1 "$mib" new || die "layered CoW: the volume changed after the delete"
	log "ok   copy-on-write by layering: $filled layered chunks read right, were completed when quiet; the snapshot's delete freed $((used0 - used1)) chunks"
}

# queue_sum NAME: a counter of device 1 summed over its queues.
queue_sum() { azbusectl info 1 --json | grep -o "\"$1\": [0-9]*" | awk '{ s += $2 } END { print s + 0 }'; }

# worker_pids: the worker pid of every queue of device 1 (0: none).
worker_pids() { azbusectl info 1 --json | grep -o '"worker_pid": [0-9]*' | awk '{ print $2 }'; }

# sup_log_keep: the supervisors' last log lines, here and where the host sees them.
sup_log_keep() {
	local f
	for f in /run/azbuse/supervisor-*.log; do
		[ -f "$f" ] || continue
		echo "--- last lines of $f" >&2
		tail -n 20 "$f" >&2
		[ -z "${AZBUSE_VM_OUT:-}" ] || cp "$f" "$AZBUSE_VM_OUT/" || true
	done
}

# rbd_object_path_counts IMAGE: "READS WRITES HANDED_BACK", what the rbd
# engine's object path did for POOL/IMAGE, summed over the queues that
# logged their counts when they closed (since the VM booted).
rbd_object_path_counts() {
	cat /run/azbuse/supervisor-*.log 2>/dev/null |
		awk -v img="$1: object path: " 'index($0, img) {
			sub(/.*object path: /, ""); r += $1; w += $3; h += $5
		} END { print r + 0, w + 0, h + 0 }'
}

# rbd_recover_trial DEV MNT WORK: ext4 on DEV (an rbd device of id 1),
# mounted at MNT; fio verify on it while the whole daemon is SIGKILLed and
# taken over by `azbusectl add 1 --recover`. Dies if fio fails or the
# device comes back under another name.
rbd_recover_trial() {
	local dev=$1 mnt=$2 work=$3 fio_pid sup dev2
	mkfs.ext4 -q -F "$dev"
	mkdir -p "$mnt"
	mount "$dev" "$mnt"
	fio --name=recover --directory="$mnt" --ioengine=libaio --direct=1 --iodepth=8 --rw=randwrite \
		--bs=4k --size=16M --numjobs=2 --fsync=32 --verify=crc32c --do_verify=1 --verify_fatal=1 \
		--group_reporting >"$work/fio-recover.log" 2>&1 &
	fio_pid=$!
	sleep 3
	sup=$(supervisor_pids | head -1)
	[ -n "$sup" ] || die "no supervisor"
	kill -KILL -- "-$sup"
	wait_for 5 sh -c "! kill -0 $sup 2>/dev/null" || die "the supervisor survived SIGKILL"
	sleep 1
	dev2=$(azbusectl add 1 --recover) || die "azbusectl add 1 --recover failed"
	[ "$dev2" = "$dev" ] || die "--recover printed $dev2, not $dev"
	wait_fio "$fio_pid" "$work/fio-recover.log" "across the daemon's death and --recover"
	log "the daemon killed under fio on ext4, taken over by --recover: fio verified"
}

# rbd_osd_restart_trial DEV MNT WORK CONF: with DEV's ext4 mounted at MNT,
# fio verify while ceph_up's osd.0 is stopped and started again: I/O waits
# for it and no error reaches ext4; then unmounts, and fsck must be clean
# and the kernel must have logged no I/O error on DEV.
rbd_osd_restart_trial() {
	local dev=$1 mnt=$2 work=$3 conf=$4 fio_pid osd_pid
	fio --name=osd --directory="$mnt" --ioengine=libaio --direct=1 --iodepth=8 --rw=randwrite \
		--bs=4k --size=16M --numjobs=1 --fsync=16 --verify=crc32c --do_verify=1 --verify_fatal=1 \
		--time_based --runtime=25 --group_reporting >"$work/fio-osd.log" 2>&1 &
	fio_pid=$!
	sleep 4
	osd_pid=$(cat "$CEPH_DIR/osd.0.pid")
	kill "$osd_pid"
	wait_for 60 sh -c "! kill -0 $osd_pid 2>/dev/null" || die "osd.0 did not stop"
	sleep 3
	ceph-osd -c "$conf" -i 0 2>/dev/null || die "osd.0 did not start again"
	log "osd.0 restarted under fio"
	wait_fio "$fio_pid" "$work/fio-osd.log" "across an OSD restart"
	umount "$mnt"
	e2fsck -fn "$dev" >"$work/fsck.log" 2>&1 || { cat "$work/fsck.log" >&2; die "fsck found errors"; }
	dmesg | grep -q "I/O error, dev ${dev#/dev/}" && die "an I/O error reached the block layer"
	log "fio verified across the OSD restart; fsck clean; no I/O error"
}

# ceph_up: a Ceph cluster in this VM (tests/vm/ceph-cluster.sh, with cephx), started by
# the first case that needs it and shared by the later ones (one per boot:
# its start is slow under emulation); prints its ceph.conf. Skips the case
# if Ceph's daemons are not installed.
CEPH_DIR=/run/azbuse-ceph
ceph_up() {
	require_cmd ceph-mon ceph-mgr ceph-osd rbd
	if [ -f "$CEPH_DIR/mon.a.pid" ] && kill -0 "$(cat "$CEPH_DIR/mon.a.pid")" 2>/dev/null &&
		[ -f "$CEPH_DIR/ready" ]; then
		echo "$CEPH_DIR/ceph.conf"
		return 0
	fi
	local start=$SECONDS
	# (cephx, its service tickets short-lived: the clients renew them within a case)
	CEPH_CLUSTER_TICKET_TTL=60 "$(dirname "${BASH_SOURCE[0]}")/../ceph-cluster.sh" start "$CEPH_DIR" 1024 \
		>/dev/null 2>"$CEPH_DIR.log" ||
		{ cat "$CEPH_DIR.log" >&2; die "the Ceph cluster did not start"; }
	touch "$CEPH_DIR/ready"
	log "Ceph cluster (mon, mgr, osd.0 on BlueStore) started in $((SECONDS - start)) s" >&2
	echo "$CEPH_DIR/ceph.conf"
}
