#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 64-memcg-charge: a device's rings and data slots are charged to the memory
# cgroup of the process that added it (the supervisor, which issues ADD):
# memory.current grows by at least the data area (nr_slots * slot_bytes)
# when `azbusectl add` runs inside a cgroup, and shrinks by as much when the
# device is removed.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

root_cg=/sys/fs/cgroup
if ! grep -q " $root_cg cgroup2 " /proc/mounts; then
	mount -t cgroup2 none "$root_cg" || skip "cannot mount cgroup2"
fi
grep -qw memory "$root_cg/cgroup.controllers" || skip "no memory controller"
echo +memory >"$root_cg/cgroup.subtree_control" || die "cannot enable the memory controller"
cg=$root_cg/azbuse-test-$$
mkdir "$cg"
trap 'rmdir "$cg" 2>/dev/null || true' EXIT

depth=64
max_io=$((1024 * 1024))
data=$((depth * max_io))
before=$(cat "$cg/memory.current")
# the supervisor (forked by azbusectl, so in the cgroup) issues ADD
dev=$(
	echo "$BASHPID" >"$cg/cgroup.procs"
	exec "$AZBUSE_CTL" add 1 --engine=mem --size 16M --queues 1 --depth $depth --max-io 1M
) || die "azbusectl add in the cgroup failed"
[ -b "$dev" ] || die "no block device $dev"
sup=$(supervisor_pids | head -1)
grep -qx "$sup" "$cg/cgroup.procs" || die "the supervisor $sup is not in $cg"
after=$(cat "$cg/memory.current")
grown=$((after - before))
log "memory.current grew by $((grown / 1024)) KiB; data area $((data / 1024)) KiB"
[ "$grown" -ge "$data" ] ||
	die "memory.current grew by $grown bytes, less than the data area's $data: ring memory is not charged"
log "ok   the data area is charged to the cgroup"

remove_device 1
wait_for 10 sh -c "[ \$(( $after - \$(cat $cg/memory.current) )) -ge $data ]" ||
	die "memory.current $(cat "$cg/memory.current") did not drop by $data after removal (was $after)"
log "ok   and uncharged at removal: memory.current $(cat "$cg/memory.current")"
wait_for 10 rmdir "$cg" || die "cannot remove $cg"
log "ok"
