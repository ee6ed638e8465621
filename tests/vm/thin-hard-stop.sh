#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# thin-hard-stop.sh: thin volumes across hard power-offs. Boots the VM several
# times on one sparse disk image (/dev/vda in the guest):
#
#   tests/vm/thin-hard-stop.sh            from the repository root, on the host
#
# Round 1 makes ext4 on /dev/vda with two thin pools on it (one device serves
# one pool): pool-raw with volume "raw", pool-fs with volume "fsvol" (ext4,
# served behind a 64 MiB write-back RAM cache: what its fsyncs covered must
# survive, the rest of the cache is lost with the power).
# Each round R (1..N) serves both volumes, takes a live snapshot of each (so
# that the round's overwrites copy on write), and runs two writers at once:
#   raw: 16 KiB blocks written in order from block 0 (buffered), every 4 KiB
#        page stamped with (round, block, page) and content derived from them;
#        an fdatasync every few blocks, then "SYNCED <n>" (blocks 0..n-1 are
#        durable) on stdout, the serial console that the host captures;
#   fs:  files of random size and content in ext4 (mounted with discard) on
#        fsvol, each fsynced with its directory, then "SYNCED <name> <sha256>";
# and after a random 2-8 s the guest powers itself off at once, with no sync
# (sysrq o): vm-run.sh exits 125 as no rc was written, which the host checks
# (with the guest's farewell line). The next boot mounts /dev/vda (journal
# replay), `azbuse-thin check`s both pools (clean), serves the volumes and
# checks what the previous round printed as SYNCED: raw blocks 0..n-1 hold
# that round's pattern, blocks an earlier round synced hold a pattern, every
# other page reads zeros or some round's pattern for exactly that place (no
# stale or misplaced data); fsvol mounts (journal replay), the files match,
# and after umount fsck -f -n is clean. The last boot only checks.
#
# Environment: AZBUSE_CRASH_ROUNDS (rounds, default 3), AZBUSE_BUILD_DIR
# (default ./build), AZBUSE_CRASH_KEEP=1 keeps the work directory (image,
# logs; kept anyway, without the image, on failure).
# Prints PASS/FAIL per round and "N passed, N failed"; exits 1 on failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
self=$here/thin-hard-stop.sh

BS=16384              # raw block
RAW_SIZE=128M         # the raw volume
FS_SIZE=256M          # the ext4 volume
MNT=/mnt/hs           # /dev/vda in the guest
FSMNT=/mnt/hs-fs      # fsvol in the guest

# ================================ in the guest ==================================
if [ "${1:-}" = --in-guest ]; then
	phase=$2   # round | final
	round=$3   # this round (final: N + 1)
	delay=${4:-0}
	bin=${AZBUSE_HS_BIN:?}
	ctl=$bin/azbusectl
	thin=$bin/azbuse-thin
	expect=$AZBUSE_VM_OUT/expect
	[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd

	say() { echo "[hard-stop r$round] [$(cut -d" " -f1 /proc/uptime)s] $*"; }
	fail() {
		echo "[hard-stop r$round] FAIL: $*"
		cp /run/azbuse/supervisor-*.log "$AZBUSE_VM_OUT/" 2>/dev/null || true
		exit 1
	}
	athin() { local p=$1; shift; "$thin" --pool "$MNT/$p" "$@"; }
	serve() { # ID POOL VOLUME [OPTIONS...]
		local id=$1 p=$2 vol=$3
		shift 3
		"$ctl" add "$id" --engine=thin --pool "$MNT/$p" --volume "$vol" "$@" >/dev/null ||
			fail "serving $p/$vol as /dev/azbuse$id failed"
		[ -b "/dev/azbuse$id" ] || fail "no /dev/azbuse$id"
	}
	check_pools() { # WHEN: both at once (the VM has two CPUs)
		local p rc=0
		for p in pool-raw pool-fs; do
			athin "$p" check >"/tmp/hs-check-$p.log" 2>&1 &
		done
		for p in pool-raw pool-fs; do
			wait -n || rc=1
		done
		for p in pool-raw pool-fs; do
			grep -q "^pool .*: clean" "/tmp/hs-check-$p.log" || { cat "/tmp/hs-check-$p.log"; rc=1; }
		done
		[ "$rc" = 0 ] || fail "azbuse-thin check $1"
		say "azbuse-thin check of both pools $1: clean"
	}

	insmod "$bin/azbuse.ko"
	mkdir -p "$MNT" "$FSMNT"
	if [ "$round" = 1 ]; then
		mkfs.ext4 -q -F /dev/vda
		mount /dev/vda "$MNT"
		athin pool-raw init --chunk-size 64k --shards 2 >/dev/null || fail "init pool-raw"
		athin pool-raw create raw --size "$RAW_SIZE" >/dev/null || fail "create raw"
		athin pool-fs init --chunk-size 64k --shards 2 >/dev/null || fail "init pool-fs"
		athin pool-fs create fsvol --size "$FS_SIZE" >/dev/null || fail "create fsvol"
		serve 1 pool-raw raw
		serve 2 pool-fs fsvol --cache 64M --cache-mode writeback
		mkfs.ext4 -q -E nodiscard /dev/azbuse2
		sync # the setup is not under test
		say "set up: ext4 on /dev/vda, pools with volumes raw ($RAW_SIZE) and fsvol ($FS_SIZE, ext4)"
	else
		mount /dev/vda "$MNT" || fail "mount /dev/vda"
		check_pools "after the hard stop"
		serve 1 pool-raw raw
		serve 2 pool-fs fsvol --cache 64M --cache-mode writeback
		# the raw volume against the previous round's SYNCED (in the
		# background, while the fs part runs)
		python3 - /dev/azbuse1 "$expect" $BS >/tmp/hs-raw.log 2>&1 <<'EOF' &
import hashlib, sys
dev, expect, bs = sys.argv[1], sys.argv[2], int(sys.argv[3])
prev_round, n, hi = 0, 0, 0
for line in open(expect):
    f = line.split()
    if f[0] == 'round': prev_round = int(f[1])
    elif f[0] == 'raw': n = int(f[1])
    elif f[0] == 'rawmax': hi = int(f[1])
PAGE, per = 4096, bs // 4096
ZERO, ZERO_MIB = bytes(PAGE), bytes(1 << 20)
def page(r, b, p):
    hdr = b"AZBHS %06d %010d %02d\n" % (r, b, p)
    return (hdr + hashlib.sha256(hdr).digest() * 128)[:PAGE]
bad, counts = [], {'exact': 0, 'older': 0, 'zero': 0}
with open(dev, 'rb', buffering=0) as d:
    b = 0
    while True:
        buf = d.read(1 << 20)
        if not buf:
            break
        if b >= hi and b >= n and buf == ZERO_MIB:  # the common case, fast
            counts['zero'] += len(buf) // PAGE
            b += len(buf) // bs
            continue
        for off in range(0, len(buf), bs):
            blk = buf[off:off + bs]
            for p in range(per):
                pg = blk[p * PAGE:(p + 1) * PAGE]
                what = None
                if pg == ZERO:
                    what = 'zero'
                elif pg.startswith(b"AZBHS "):
                    try:
                        r, bb, pp = int(pg[6:12]), int(pg[13:23]), int(pg[24:26])
                    except ValueError:
                        r = bb = pp = -1
                    if bb == b and pp == p and 1 <= r <= prev_round and pg == page(r, b, p):
                        what = 'exact' if r == prev_round else 'older'
                if what is None:
                    bad.append(f"block {b} page {p}: neither zeros nor a pattern of this place: {pg[:40]!r}")
                elif b < n and what != 'exact':
                    bad.append(f"block {b} page {p}: synced in round {prev_round} but reads {what}")
                elif b < hi and what == 'zero':
                    bad.append(f"block {b} page {p}: synced in an earlier round but reads zeros")
                else:
                    counts[what] += 1
            b += 1
for x in bad[:20]:
    print(x)
if bad:
    sys.exit(f"{len(bad)} bad pages")
print(f"[raw] blocks 0..{n - 1} hold round {prev_round}'s data; {counts['exact']} pages of round {prev_round}, {counts['older']} older, {counts['zero']} zero; nothing misplaced")
EOF
		raw_check=$!
		# ext4 on fsvol: journal replay, the synced files, fsck
		mount /dev/azbuse2 "$FSMNT" || fail "mount of fsvol failed"
		python3 - "$FSMNT" "$expect" <<'EOF' || fail "fsvol lost synced files"
import hashlib, os, sys
mnt, expect = sys.argv[1:3]
want = [l.split()[1:] for l in open(expect) if l.startswith('fs ')]
bad = 0
for name, sha in want:
    try:
        got = hashlib.sha256(open(os.path.join(mnt, name), 'rb').read()).hexdigest()
    except OSError as e:
        print(f"{name}: {e}"); bad += 1; continue
    if got != sha:
        print(f"{name}: sha256 {got}, synced {sha}"); bad += 1
if bad:
    sys.exit(1)
print(f"[fs] {len(want)} synced files match")
EOF
		umount "$FSMNT"
		fsck.ext4 -f -n /dev/azbuse2 >/tmp/hs-fsck.log 2>&1 || { cat /tmp/hs-fsck.log; fail "fsck of fsvol"; }
		rc=0
		wait "$raw_check" || rc=$?
		cat /tmp/hs-raw.log
		[ "$rc" = 0 ] || fail "the raw volume lost synced data"
		say "VERIFIED round $((round - 1)): fsck of fsvol clean"
	fi

	if [ "$phase" = final ]; then
		"$ctl" remove 1 >/dev/null || fail "remove 1"
		"$ctl" remove 2 >/dev/null || fail "remove 2"
		check_pools "at the end"
		umount "$MNT"
		rmmod azbuse
		say "done"
		exit 0
	fi

	# --- a snapshot of each volume, the writers, then the hard stop ---
	# Live snapshots first: every chunk written before them is shared, so
	# this round's overwrites copy on write, and a copy's mapping must not
	# become durable before its data.
	athin pool-raw snapshot raw "raw-s$round" >/dev/null || fail "live snapshot of raw"
	athin pool-fs snapshot fsvol "fsvol-s$round" >/dev/null || fail "live snapshot of fsvol"
	say "live snapshots raw-s$round and fsvol-s$round taken"
	mount -o discard /dev/azbuse2 "$FSMNT"
	find "$FSMNT" -mindepth 1 -maxdepth 1 -name 'r*' -exec rm -rf {} +
	python3 - /dev/azbuse1 "$round" $BS <<'EOF' &
import hashlib, os, random, sys
dev, rnd, bs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
PAGE = 4096
def page(r, b, p):
    hdr = b"AZBHS %06d %010d %02d\n" % (r, b, p)
    return (hdr + hashlib.sha256(hdr).digest() * 128)[:PAGE]
try:
    fd = os.open(dev, os.O_WRONLY)
    nblocks = os.lseek(fd, 0, os.SEEK_END) // bs
    rng, b = random.Random(), 0
    open('/tmp/hs-started-raw', 'w').close()
    while b < nblocks:
        for _ in range(rng.randint(2, 8)):
            if b == nblocks:
                break
            os.pwrite(fd, b"".join(page(rnd, b, p) for p in range(bs // PAGE)), b * bs)
            b += 1
        os.fdatasync(fd)
        os.write(1, b"SYNCED %d\n" % b)
    os.write(1, b"RAW-END\n")
except Exception as e:
    os.write(1, f"WRITER-ERROR raw: {e!r}\n".encode())
    sys.exit(1)
EOF
	python3 - "$FSMNT" "r$round" <<'EOF' &
import hashlib, os, random, sys
mnt, sub = sys.argv[1:3]
try:
    os.mkdir(os.path.join(mnt, sub))
    top = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(top)
    dfd = os.open(os.path.join(mnt, sub), os.O_RDONLY | os.O_DIRECTORY)
    rng, i = random.Random(), 0
    open('/tmp/hs-started-fs', 'w').close()
    while True:
        i += 1
        name = f"{sub}/f{i:05d}"
        size = rng.randint(1, 64 << 10) if rng.random() < 0.8 else rng.randint(64 << 10, 1 << 20)
        data = os.urandom(size)
        fd = os.open(os.path.join(mnt, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.fsync(dfd)
        os.write(1, f"SYNCED {name} {hashlib.sha256(data).hexdigest()}\n".encode())
except Exception as e:
    os.write(1, f"WRITER-ERROR fs: {e!r}\n".encode())
    sys.exit(1)
EOF
	# the delay counts from when both writers run (python starts slowly here)
	for ((i = 0; i < 600; i++)); do
		[ -e /tmp/hs-started-raw ] && [ -e /tmp/hs-started-fs ] && break
		sleep 0.1
	done
	if [ ! -e /tmp/hs-started-raw ] || [ ! -e /tmp/hs-started-fs ]; then
		fail "the writers did not start within 60 s"
	fi
	say "writers running; hard stop in ${delay}s"
	sleep "$delay"
	dmesg >"$AZBUSE_VM_OUT/dmesg-before-stop"
	echo "HARD-STOP round $round after ${delay}s"
	echo 1 >/proc/sys/kernel/sysrq
	echo o >/proc/sysrq-trigger
	sleep 120
	echo "[hard-stop r$round] FAIL: still running 120 s after sysrq o"
	exit 1
fi

# ================================ on the host ===================================
rounds=${AZBUSE_CRASH_ROUNDS:-3}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "thin-hard-stop.sh: AZBUSE_CRASH_ROUNDS wants a positive number" >&2; exit 2; }
build=${AZBUSE_BUILD_DIR:-$root/build}
build=$(cd "$build" 2>/dev/null && pwd) || { echo "thin-hard-stop.sh: no build directory" >&2; exit 2; }
for f in "$build/tools/azbusectl" "$build/tools/azbuse-thin" "$build/tools/libexec/azbuse-thin" \
	"$build/kmod/azbuse.ko"; do
	[ -f "$f" ] || { echo "thin-hard-stop.sh: $f is missing: build first" >&2; exit 2; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/azbuse-hard-stop.XXXXXX")
img=$work/disk.img
failed=1
finish() { # the image goes (unless AZBUSE_CRASH_KEEP=1), the logs stay on failure
	if [ "${AZBUSE_CRASH_KEEP:-0}" = 1 ]; then
		echo "thin-hard-stop.sh: work directory kept: $work"
	elif [ "$failed" -eq 0 ]; then
		rm -rf "$work"
	else
		rm -f "$img"
		echo "thin-hard-stop.sh: logs kept in $work"
	fi
}
trap finish EXIT
truncate -s 2G "$img"
# copies of the programs and of this script: a rebuild or an edit on the host
# during the run must not change them under the guest
mkdir -p "$work/bin/libexec"
cp "$build/tools/azbusectl" "$build/tools/azbuse-thin" "$build/kmod/azbuse.ko" "$self" "$work/bin/"
# the full azbuse-thin, which the front runs for everything but a served snapshot
cp "$build/tools/libexec/azbuse-thin" "$work/bin/libexec/"
self=$work/bin/thin-hard-stop.sh
export AZBUSE_HS_BIN=$work/bin
cd "$root"

passed=0
failed=0 # (1 until here: an early exit keeps the logs)
failures=()
result() { # PASS|FAIL TEXT
	echo "$1 $2"
	if [ "$1" = PASS ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failures+=("$2")
	fi
}

# boot PHASE ROUND [DELAY]: one VM on the image; output (minus the SYNCED
# lines) on the terminal, all of it in $work/vm-ROUND.log; sets $vm_rc
boot() {
	local out=$work/vm-$2
	mkdir -p "$out"
	[ -f "$out/expect" ] || : >"$out/expect"
	echo "--- boot $2 ($1${3:+, hard stop after $3 s})"
	vm_rc=0
	"$here/vm-run.sh" --timeout 900 --disk "$img" --out "$out" -- \
		"$self" --in-guest "$@" 2>&1 | tee "$work/vm-$2.log" | grep --line-buffered -v '^SYNCED ' || vm_rc=${PIPESTATUS[0]}
}

start=$SECONDS
rawmax=0
for ((r = 1; r <= rounds + 1; r++)); do
	# what the previous round printed as SYNCED, for this boot to check
	if [ "$r" -gt 1 ]; then
		prev=$work/vm-$((r - 1)).log
		n=$(grep -aE '^SYNCED [0-9]+$' "$prev" | awk '{ print $2 }' | sort -n | tail -1)
		n=${n:-0}
		[ "$n" -gt "$rawmax" ] && rawmax=$n
		mkdir -p "$work/vm-$r"
		{
			echo "round $((r - 1))"
			echo "raw $n"
			echo "rawmax $rawmax"
			grep -aE '^SYNCED [^ ]+ [0-9a-f]{64}$' "$prev" | sed 's/^SYNCED /fs /' || true
		} >"$work/vm-$r/expect"
	fi
	if [ "$r" -le "$rounds" ]; then
		delay=$((2 + RANDOM % 7))
		boot round "$r" "$delay"
		log=$work/vm-$r.log
		why=
		if [ "$vm_rc" != 125 ]; then
			why="vm-run.sh exited $vm_rc, not 125 (no rc: powered off mid-command)"
		elif ! grep -aq "^HARD-STOP round $r after" "$log"; then
			why="the guest did not reach the hard stop"
		elif ! grep -aq "before the command finished" "$log"; then
			why="vm-run.sh did not report the VM ending before the command"
		elif [ -f "$work/vm-$r/rc" ]; then
			why="the command wrote an rc: it was not hard-stopped"
		elif grep -aq "WRITER-ERROR" "$log"; then
			why="a writer failed: $(grep -a -m1 WRITER-ERROR "$log")"
		elif grep -aq '^\[hard-stop.*FAIL' "$log"; then
			why=$(grep -a -m1 '^\[hard-stop.*FAIL' "$log")
		elif ! "$here/check-dmesg.sh" "$work/vm-$r/dmesg-before-stop"; then
			why="kernel trouble in the guest's dmesg before the stop"
		fi
		if [ "$r" -gt 1 ] && ! grep -aq "VERIFIED round $((r - 1))" "$log"; then
			why="round $((r - 1))'s synced data did not verify${why:+; $why}"
		fi
		nraw=$(grep -acE '^SYNCED [0-9]+$' "$log" || true)
		nfs=$(grep -acE '^SYNCED [^ ]+ [0-9a-f]{64}$' "$log" || true)
		blocks=$(grep -aE '^SYNCED [0-9]+$' "$log" | awk '{ print $2 }' | sort -n | tail -1)
		if [ -n "$why" ]; then
			result FAIL "round $r: $why"
		else
			verified=
			[ "$r" -eq 1 ] || verified="; round $((r - 1)) verified before"
			result PASS "round $r: hard stop after ${delay}s; SYNCED raw ${blocks:-0} blocks ($nraw fdatasyncs), fs $nfs files$verified"
		fi
	else
		boot final "$r"
		log=$work/vm-$r.log
		if [ "$vm_rc" = 0 ] && grep -aq "VERIFIED round $((r - 1))" "$log"; then
			result PASS "final boot: round $((r - 1)) verified, pools clean"
		else
			result FAIL "final boot: exit $vm_rc$(grep -a -m1 '^\[hard-stop.*FAIL' "$log" | sed 's/^/: /')"
		fi
	fi
	# a round that could not set up or verify leaves nothing to build on
	[ "$failed" -eq 0 ] || break
done

echo "=== thin-hard-stop: $rounds rounds, $((SECONDS - start))s"
[ "$failed" -eq 0 ] || echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
