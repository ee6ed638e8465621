#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 31-remove-in-use: `azbusectl remove` refuses a device that is mounted or
# held open by a process (as dmsetup remove does) and leaves it serving;
# --force removes it anyway; once nothing uses it, remove works; `remove
# --all` removes what it may and says which it could not.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd mkfs.ext4

mnt=/mnt/azbuse-in-use
dev=$(add_mem_device 1 64M --queues 1)
mkfs.ext4 -q -F "$dev"
mkdir -p "$mnt"
mount "$dev" "$mnt"
echo kept >"$mnt/file"

# mounted: refused, with where it is mounted, and the device goes on serving
if azbusectl remove 1 2>/tmp/remove-err; then
	die "remove of a mounted device succeeded"
fi
grep -q "in use (/dev/azbuse1 on $mnt)" /tmp/remove-err || die "no mount point in: $(cat /tmp/remove-err)"
grep -q -- "--force" /tmp/remove-err || die "the refusal does not mention --force: $(cat /tmp/remove-err)"
[ -b "$dev" ] || die "$dev is gone after a refused remove"
sync
[ "$(cat "$mnt/file")" = kept ] || die "the file reads wrong after a refused remove"
dd if=/dev/zero of="$mnt/more" bs=1M count=4 conv=fsync status=none || die "writes fail after a refused remove"
umount "$mnt"
log "ok   a mounted device is refused and keeps serving"

# open by a process (no mount): refused; closed: removed
exec 3<"$dev"
azbusectl remove 1 2>/dev/null && die "remove of an open device succeeded"
exec 3<&-
remove_device 1
log "ok   an open device is refused; closed, it is removed"

# --force: removed although open; the holder's I/O fails from then on
dev=$(add_mem_device 1 64M --queues 1)
exec 3<"$dev"
azbusectl remove 1 --force || die "remove --force of an open device failed"
wait_for 10 test ! -e /dev/azbuse1 || die "/dev/azbuse1 still exists after remove --force"
dd if=/dev/fd/3 of=/dev/null bs=4k count=1 iflag=direct status=none 2>/dev/null &&
	die "a read through the removed device's old fd succeeded"
exec 3<&-
log "ok   --force removes an open device; its holder gets I/O errors"

# --all: removes the unused ones, refuses the open one, exits 1
add_mem_device 2 16M --queues 1 >/dev/null
add_mem_device 3 16M --queues 1 >/dev/null
exec 3</dev/azbuse3
azbusectl remove --all 2>/tmp/remove-err && die "remove --all with a device open exited 0"
grep -q "azbuse3 is in use" /tmp/remove-err || die "remove --all did not name the open device: $(cat /tmp/remove-err)"
wait_for 10 test ! -e /dev/azbuse2 || die "remove --all left the unused /dev/azbuse2"
[ -b /dev/azbuse3 ] || die "remove --all removed the open /dev/azbuse3"
exec 3<&-
azbusectl remove --all || die "remove --all failed with nothing open"
[ -z "$(azbusectl list --json | grep -o '"id": [0-9]*' || true)" ] || die "devices left after remove --all"
log "ok   remove --all removes what is unused and names what is not"
