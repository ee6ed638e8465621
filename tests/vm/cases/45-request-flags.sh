#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 45-request-flags: every request reaches the engine with its op and flags
# intact, checked against what the engine received (--trace): discard,
# write-zeroes with and without NOUNMAP, secure erase, FUA from O_DSYNC direct
# writes, FLUSH from fsync, RAHEAD from buffered reads, I/O priority classes,
# and the FLUSH + FUA write that a journal commit becomes.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

trace=/tmp/azbuse-trace.log
rm -f "$trace"
dev=$(add_mem_device 1 256M --queues 1 --trace "$trace")
log "device $dev, trace $trace"
MiB=$((1 << 20))

# since MARK ...: run the command, return the trace lines it produced
mark=0
since() {
	mark=$(wc -l <"$trace")
	"$@" >/dev/null 2>&1 || die "command failed: $*"
	sleep 0.2
	tail -n +"$((mark + 1))" "$trace"
}

# expect_line LINES REGEX WHAT
expect_line() {
	grep -Eq "$2" <<<"$1" || { echo "$1" | head -20 >&2; die "no request matching '$2' for $3"; }
	log "ok   $3"
}

out=$(since blkdiscard -o 0 -l $MiB "$dev")
expect_line "$out" "op=DISCARD offset=0 len=$MiB " "blkdiscard: DISCARD"

out=$(since blkdiscard -z -o $MiB -l $MiB "$dev")
expect_line "$out" "op=WRITE_ZEROES offset=$MiB len=$MiB flags=[^ ]*NOUNMAP" \
	"blkdiscard -z: WRITE_ZEROES with NOUNMAP"

out=$(since fallocate -p -o $((2 * MiB)) -l $MiB "$dev")
expect_line "$out" "op=WRITE_ZEROES offset=$((2 * MiB)) len=$MiB " "fallocate --punch-hole: WRITE_ZEROES"
grep "op=WRITE_ZEROES offset=$((2 * MiB)) " <<<"$out" | grep -q NOUNMAP &&
	die "fallocate --punch-hole: the WRITE_ZEROES must not carry NOUNMAP"
log "ok   fallocate --punch-hole: without NOUNMAP (the engine may unmap)"

out=$(since blkdiscard -s -o $((3 * MiB)) -l $MiB "$dev")
expect_line "$out" "op=SECURE_ERASE offset=$((3 * MiB)) len=$MiB " "blkdiscard -s: SECURE_ERASE"

out=$(since dd if=/dev/urandom of="$dev" bs=4k count=1 seek=1024 oflag=direct,dsync)
expect_line "$out" "op=WRITE offset=$((4 * MiB)) len=4096 flags=[^ ]*FUA" \
	"O_DIRECT|O_DSYNC write: WRITE with FUA"

out=$(since dd if=/dev/urandom of="$dev" bs=4k count=4 seek=2048 conv=fsync)
expect_line "$out" "op=WRITE offset=$((8 * MiB)) " "buffered write + fsync: the WRITE"
# the flush comes after the write it covers
grep -n "op=WRITE offset=$((8 * MiB)) " <<<"$out" | head -1 | cut -d: -f1 >/tmp/w.line
grep -n "op=FLUSH" <<<"$out" | tail -1 | cut -d: -f1 >/tmp/f.line
[ -s /tmp/f.line ] && [ "$(cat /tmp/f.line)" -gt "$(cat /tmp/w.line)" ] ||
	die "fsync: no FLUSH after the write"
log "ok   buffered write + fsync: FLUSH after the WRITE"

echo 3 >/proc/sys/vm/drop_caches
out=$(since dd if="$dev" of=/dev/null bs=4k count=256 skip=8192)
expect_line "$out" "op=READ .*flags=[^ ]*RAHEAD" "buffered sequential read: READ with RAHEAD"

out=$(since ionice -c1 -n3 dd if="$dev" of=/dev/null bs=4k count=1 skip=100 iflag=direct)
expect_line "$out" "op=READ offset=409600 .*ioprio=rt/3" "ionice -c1 -n3: ioprio rt/3"
out=$(since ionice -c2 -n5 dd if="$dev" of=/dev/null bs=4k count=1 skip=101 iflag=direct)
expect_line "$out" "op=READ offset=413696 .*ioprio=be/5" "ionice -c2 -n5: ioprio be/5"
out=$(since ionice -c3 dd if="$dev" of=/dev/null bs=4k count=1 skip=102 iflag=direct)
expect_line "$out" "op=READ offset=417792 .*ioprio=idle/" "ionice -c3: ioprio idle"

# a journal commit is a write with PREFLUSH|FUA: blk-mq sends the engine a
# FLUSH first, then the write with FUA (no write ever carries PREFLUSH)
mkfs.ext4 -q -F "$dev"
mkdir -p /mnt/flags
mount "$dev" /mnt/flags
out=$(since dd if=/dev/urandom of=/mnt/flags/f bs=4k count=8 conv=fsync)
expect_line "$out" "op=FLUSH" "ext4 fsync: FLUSH"
expect_line "$out" "op=WRITE .*flags=[^ ]*FUA" "ext4 journal commit: WRITE with FUA"
grep -E "op=(WRITE|READ) .*PREFLUSH" "$trace" && die "a data request carried PREFLUSH"
grep "op=FLUSH" "$trace" | grep -qv "offset=0 len=0 " && die "a FLUSH with an offset or length"
log "ok   PREFLUSH arrives only as a separate FLUSH (offset 0, length 0), never on a write"
umount /mnt/flags

remove_device 1
log "ok"
