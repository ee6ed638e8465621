#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# demo-guest.sh: the demo's part inside the VM (run by ../../demo.sh): a
# filesystem on a block device whose every request is served by a userspace
# process, then a thin volume with a snapshot, narrated in plain words.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ctl=${AZBUSE_BUILD_DIR:-$top/build}/tools/azbusectl
thin=${AZBUSE_BUILD_DIR:-$top/build}/tools/azbuse-thin
mnt=/mnt/azbuse-demo
pool=/tmp/azbuse-demo-pool

say() { printf '\n>> %s\n' "$*"; }
more() { printf '   %s\n' "$*"; }
cleanup() {
	mountpoint -q "$mnt" && umount "$mnt"
	[ -b /dev/azbuse1 ] && "$ctl" remove 1 --force
	return 0
}
trap cleanup EXIT

say "Loading the azbuse kernel module (kernel $(uname -r))."
insmod "${AZBUSE_BUILD_DIR:-$top/build}/kmod/azbuse.ko"

say "Creating /dev/azbuse1: a 1 GiB disk served from RAM by the userspace 'mem' engine,"
more "one worker process per CPU queue, requests passed through mmaped rings."
"$ctl" add 1 --engine=mem --size 1G

say "Making an ext4 filesystem on it and mounting it at $mnt."
mkfs.ext4 -q -F /dev/azbuse1
mkdir -p "$mnt"
mount /dev/azbuse1 "$mnt"

say "Writing 64 MiB of random data in 16 files, then flushing it to the device."
for i in $(seq 1 16); do
	head -c 4M /dev/urandom >"$mnt/file$i"
done
(cd "$mnt" && sha256sum file* >/tmp/demo.sha256)
sync

say "Unmounting (so nothing is read from the page cache), checking the filesystem,"
more "remounting and reading every file back."
umount "$mnt"
fsck.ext4 -f -n /dev/azbuse1 >/dev/null && echo "fsck: clean"
mount /dev/azbuse1 "$mnt"
if (cd "$mnt" && sha256sum --quiet -c /tmp/demo.sha256); then
	echo "all 16 files read back intact"
else
	echo "MISMATCH: data read back differs" >&2
	exit 1
fi
df -h "$mnt" | tail -1

say "What the device and its workers did (requests per syscall is the batching):"
"$ctl" info 1

umount "$mnt"
say "Removing the device: the workers finish, the supervisor exits."
"$ctl" remove 1
"$ctl" list

say "Thin provisioning: a pool in $pool (RocksDB metadata, sparse backing files),"
more "a 1 TiB volume served as /dev/azbuse1 by the 'thin' engine, one worker per shard."
"$thin" --pool "$pool" init
"$thin" --pool "$pool" create vol1 --size 1T
"$ctl" add 1 --engine=thin --pool "$pool" --volume vol1
# (a 1 TiB ext4 has a 1 GiB journal: let the kernel zero it lazily rather than
# write 1 GiB of zeros into the pool now)
mkfs.ext4 -q -E nodiscard,lazy_itable_init=1,lazy_journal_init=1 /dev/azbuse1
mount /dev/azbuse1 "$mnt"
head -c 32M /dev/urandom >"$mnt/before"
sync
say "A snapshot while the filesystem is mounted; then the volume changes."
"$thin" --pool "$pool" snapshot vol1 snap1
head -c 32M /dev/urandom >"$mnt/after"
rm "$mnt/before"
sync
"$thin" --pool "$pool" list
"$thin" --pool "$pool" usage
umount "$mnt"
"$ctl" remove 1
say "Serving the snapshot (read-only): it still has 'before' and not 'after'."
"$ctl" add 1 --engine=thin --pool "$pool" --volume snap1
mount -o ro,noload /dev/azbuse1 "$mnt"
ls -l "$mnt"
umount "$mnt"
"$ctl" remove 1
"$thin" --pool "$pool" check
trap - EXIT
rmmod azbuse
say "Done: filesystems lived on block devices whose storage engines run as userspace processes."
