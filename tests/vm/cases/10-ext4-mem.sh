#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 10-ext4-mem: ext4 on a mem-engine device (512M, 2 queues) keeps 200 MB of
# files intact: mkfs, mount, write 50 random files with recorded sha256s,
# sync, umount, fsck -f -n clean, remount, checksums match, umount, remove.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd mkfs.ext4 fsck.ext4

work=$(mktemp -d)
mnt=$work/mnt
mkdir "$mnt"
trap 'mountpoint -q "$mnt" && umount "$mnt"; rm -rf "$work"' EXIT

dev=$(add_mem_device 1 512M --queues 2)
log "device $dev"

mkfs.ext4 -q -F "$dev" || die "mkfs.ext4 $dev failed"
mount "$dev" "$mnt" || die "mount $dev failed"
log "writing 50 files, 200 MiB"
mkdir "$mnt/data"
write_random_files "$mnt/data" 50 200
sha256_record "$mnt/data" "$work/sums"
[ "$(wc -l <"$work/sums")" -eq 50 ] || die "expected 50 checksums"
used=$(du -sm "$mnt/data" | cut -f1)
[ "$used" -ge 200 ] || die "only $used MiB written"
sync
umount "$mnt"

if ! out=$(fsck.ext4 -f -n "$dev" 2>&1); then
	echo "$out" >&2
	die "fsck.ext4 -f -n $dev found problems"
fi
log "fsck: ${out##*$'\n'}"

# drop the page cache so that the checksums are computed from the device
echo 3 >/proc/sys/vm/drop_caches
mount "$dev" "$mnt" || die "remount $dev failed"
sha256_verify "$mnt/data" "$work/sums" || die "checksums differ after remount"
umount "$mnt"

remove_device 1
[ -z "$(device_ids)" ] || die "devices left after remove: $(device_ids)"
log "ok"
