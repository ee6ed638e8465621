#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 82-thin-full: a thin pool with a space limit (init --limit 64M) and a 1 GiB
# volume. Writing past the limit fails with ENOSPC (O_DIRECT dd, and a
# buffered dd's fsync); everything acknowledged before reads back intact and
# an allocated chunk can still be overwritten in place; `azbuse-thin usage`
# shows the pool full with the low-space warning; `azbuse-thin check` is
# clean. After blkdiscard of part of the volume the space is back: usage
# drops, the discarded range reads zeros, new writes succeed and read back,
# the rest is untouched, and check stays clean. Filled up again, the pool
# says so as dm-thin's status would (mode out-of-space, ENOSPC counted by the
# daemon and in azbusectl info's errors, the threshold crossing and the
# ENOSPC logged); `azbuse-thin set --limit` grows it while it is served, and
# the writes that failed then succeed.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd blkdiscard

dev=/dev/azbuse1
M=$((1 << 20))

thin_case_cleanup() { [ "$1" = 0 ] || sup_log_keep; }
usage_load() { # `azbuse-thin --json usage` into $usage
	usage=$(athin --json usage) || die "azbuse-thin --json usage failed"
}
usage_field() { # FIELD: one (number, boolean or word) field of the last usage_load
	grep -o "\"$1\": \"\?[0-9a-z.-]*" <<<"$usage" | sed 's/.*: "\?//'
}
# same MIB_FROM MIB_COUNT FILE FILE_MIB_FROM: the device's range equals the file's
same() {
	cmp <(dd if="$dev" bs=1M skip="$1" count="$2" iflag=direct status=none) \
		<(dd if="$3" bs=1M skip="$4" count="$2" status=none)
}
tlog() { log "[${SECONDS}s] $*"; }
check_clean() { # WHEN
	athin check >/tmp/thin-full-check.log 2>&1 || {
		cat /tmp/thin-full-check.log >&2
		die "azbuse-thin check found problems $1"
	}
}

thin_pool_setup thin-full 256

athin init --chunk-size 64k --shards 2 --limit 64M >/dev/null || die "init --limit 64M failed"
athin create vol1 --size 1G >/dev/null || die "create failed"
serve vol1
tlog "pool with a 64 MiB limit, 1 GiB volume served"
[ "$(blockdev --getsize64 "$dev")" = $((1024 * M)) ] || die "$dev is not 1 GiB"

# --- fill the pool ------------------------------------------------------------------
head -c 80M /dev/urandom >/tmp/thin-full-data
dd if=/tmp/thin-full-data of="$dev" bs=1M count=48 oflag=direct status=none ||
	die "writing 48 MiB (under the 64 MiB limit) failed"
usage_load
[ "$(usage_field low_space)" = false ] || die "low space reported at 48 of 64 MiB"
# on: O_DIRECT 1 MiB writes until the pool is full
rc=0
dd if=/tmp/thin-full-data of="$dev" bs=1M skip=48 seek=48 count=32 oflag=direct \
	2>/tmp/thin-full-dd.err || rc=$?
[ "$rc" -ne 0 ] || die "writing 80 MiB into a pool limited to 64 MiB succeeded"
grep -q "No space left on device" /tmp/thin-full-dd.err ||
	{ cat /tmp/thin-full-dd.err >&2; die "the write past the limit did not fail with ENOSPC"; }
acked=$(grep -o '^[0-9]* bytes' /tmp/thin-full-dd.err | awk '{ print $1 }')
[ -n "$acked" ] || { cat /tmp/thin-full-dd.err >&2; die "no byte count from dd"; }
acked_mib=$((48 + acked / M))
tlog "ok   O_DIRECT writes fail with ENOSPC after $acked_mib MiB: $(grep -m1 'No space' /tmp/thin-full-dd.err)"
if [ "$acked_mib" -lt 56 ] || [ "$acked_mib" -gt 64 ]; then
	die "the pool took $acked_mib MiB before ENOSPC, limit 64 MiB"
fi

# a buffered write and its fsync fail too (the error reaches fsync; as EIO:
# the block device's page cache writes back through buffer heads, which turn
# every write error into EIO)
rc=0
dd if=/dev/urandom of="$dev" bs=1M count=4 seek=700 conv=fsync 2>/tmp/thin-full-dd2.err || rc=$?
[ "$rc" -ne 0 ] || die "a buffered write + fsync into a full pool succeeded"
grep -Eq "No space left on device|Input/output error" /tmp/thin-full-dd2.err ||
	{ cat /tmp/thin-full-dd2.err >&2; die "the buffered write failed with neither ENOSPC nor EIO"; }
tlog "ok   buffered write + fsync into the full pool fails: $(grep -m1 'dd:' /tmp/thin-full-dd2.err)"

# what was acknowledged is intact; in-place overwrite still works when full
same 0 "$acked_mib" /tmp/thin-full-data 0 || die "data written before the pool filled changed"
dd if=/tmp/thin-full-data of="$dev" bs=1M skip=70 seek=10 count=2 oflag=direct status=none ||
	die "overwriting allocated chunks in a full pool failed"
same 10 2 /tmp/thin-full-data 70 || die "the in-place overwrite does not read back"
dd if=/tmp/thin-full-data of="$dev" bs=1M skip=10 seek=10 count=2 oflag=direct status=none ||
	die "overwriting allocated chunks in a full pool failed"
tlog "ok   acknowledged data reads back; allocated chunks can still be overwritten"

# --- usage shows the pool full --------------------------------------------------------
athin usage >/tmp/thin-full-usage.txt || die "azbuse-thin usage failed"
sed "s/^/[$case_name] usage: /" /tmp/thin-full-usage.txt
grep -q "^WARNING: pool .* is low on space" /tmp/thin-full-usage.txt || die "usage shows no low-space warning"
usage_load
[ "$(usage_field low_space)" = true ] || die "usage --json: low_space is not true"
[ "$(usage_field free_bytes)" = 0 ] || die "usage --json: free_bytes $(usage_field free_bytes), not 0"
used=$(usage_field used_bytes)
if [ "$used" -lt $((acked_mib * M)) ] || [ "$used" -gt $((64 * M)) ]; then
	die "usage --json: used_bytes $used, expected $acked_mib..64 MiB"
fi
remove_device 1
check_clean "with the pool full"
tlog "ok   usage: full, low-space warning; check clean"

# --- discard gives space back ---------------------------------------------------------
serve vol1
blkdiscard -o 0 -l $((32 * M)) "$dev" || die "blkdiscard failed"
usage_load
used2=$(usage_field used_bytes)
[ "$used2" -le $((used - 32 * M)) ] || die "blkdiscard of 32 MiB returned no space ($used -> $used2)"
[ "$(usage_field low_space)" = false ] || die "still low on space after the discard"
cmp -n $((32 * M)) "$dev" /dev/zero || die "the discarded range does not read zeros"
dd if=/tmp/thin-full-data of="$dev" bs=1M skip=56 seek=512 count=24 oflag=direct status=none ||
	die "writing after the discard failed"
same 512 24 /tmp/thin-full-data 56 || die "data written after the discard does not read back"
same 32 $((acked_mib - 32)) /tmp/thin-full-data 32 || die "data outside the discarded range changed"
tlog "ok   discard of 32 MiB: used $((used >> 20)) -> $((used2 >> 20)) MiB, 24 MiB written again"
remove_device 1
usage_load
check_clean "after the discard"
tlog "ok   $(usage_field use_percent)% used after the discard; check clean"

# --- full again, then grown while served ------------------------------------------------
serve vol1
rc=0
dd if=/tmp/thin-full-data of="$dev" bs=1M seek=600 count=64 oflag=direct 2>/tmp/thin-full-dd3.err || rc=$?
[ "$rc" -ne 0 ] || die "writing 64 MiB more into the limited pool succeeded"
usage_load
[ "$(usage_field mode)" = out-of-space ] || die "usage --json: mode $(usage_field mode), not out-of-space"
[ "$(usage_field enospc)" -ge 1 ] || die "usage --json: enospc $(usage_field enospc)"
athin usage | grep -q "^mode  *out-of-space" || die "usage does not say out-of-space"
errors=$(azbusectl info 1 --json | grep -o '"errors": [0-9]*' | awk '{ s += $2 } END { print s + 0 }')
[ "$errors" -ge 1 ] || die "azbusectl info counts no errors after ENOSPC"
grep -h "is out of space" /run/azbuse/supervisor-*.log | grep -q ENOSPC || die "no ENOSPC in the log"
grep -h "is low on space" /run/azbuse/supervisor-*.log | grep -q WARN || die "the low-space crossing is not logged"
tlog "ok   full again: mode out-of-space, $(usage_field enospc) ENOSPC counted, $errors errors in info, both logged"
athin set --limit 256M >/dev/null || die "set --limit 256M on a served pool failed"
dd if=/tmp/thin-full-data of="$dev" bs=1M seek=600 count=64 oflag=direct status=none ||
	die "writing after the limit was raised failed"
same 600 64 /tmp/thin-full-data 0 || die "data written after the limit was raised does not read back"
usage_load
[ "$(usage_field mode)" = ok ] || die "usage --json: mode $(usage_field mode) after growing, not ok"
[ "$(usage_field limit_bytes)" = $((256 * M)) ] || die "the limit is $(usage_field limit_bytes)"
grep -hq "settings now limit $((256 * M))" /run/azbuse/supervisor-*.log || die "the daemon did not take the new limit"
remove_device 1
check_clean "after growing the pool"
tlog "ok   set --limit 256M while served: the same writes succeed, mode ok; check clean"
[ "$(usage_field metadata_bytes)" -gt 0 ] || die "usage --json: no metadata_bytes"
mount -o remount,ro "$back"
usage_load
mount -o remount,rw "$back"
[ "$(usage_field mode)" = read-only ] || die "usage --json on a read-only filesystem: mode $(usage_field mode)"
tlog "ok   mode read-only while the pool's filesystem is; metadata $(usage_field metadata_bytes) bytes on disk"
log "ok"
