#!/usr/bin/env bash
# demo-guest.sh: the demo's part inside the VM (run by ../../demo.sh): a
# filesystem on a block device whose every request is served by a userspace
# process, narrated in plain words.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ctl=${AZBUSE_BUILD_DIR:-$top/build}/tools/azbusectl
mnt=/mnt/azbuse-demo

say() { printf '\n>> %s\n' "$*"; }
more() { printf '   %s\n' "$*"; }
cleanup() {
	mountpoint -q "$mnt" && umount "$mnt"
	[ -b /dev/azbuse1 ] && "$ctl" remove 1
	return 0
}
trap cleanup EXIT

say "Loading the azbuse kernel module (kernel $(uname -r))."
insmod "$top/kmod/azbuse.ko"

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
trap - EXIT
rmmod azbuse
say "Done: a filesystem lived on a block device served entirely by userspace processes."
