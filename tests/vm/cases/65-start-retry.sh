#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 65-start-retry: START again after add_disk failed. A null_blk disk named
# after the configfs directory "azbuse930" takes the name, so START of azbuse
# device 930 fails in add_disk (the kernel logs the duplicate sysfs name,
# with a stack dump, which is checked and cleared here). With the name free
# again, a second START must bring the disk up on a fresh gendisk (re-adding
# the gendisk whose add_disk failed is not allowed) without any kernel
# warning, and the disk must serve I/O.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

tool=$AZBUSE_TOOLS/azbuse-start-retry
[ -x "$tool" ] || die "$tool is missing: build the azbuse-start-retry target"
id=930
[ -d /sys/module/null_blk ] && skip "null_blk is loaded already"
modprobe null_blk nr_devices=0 || skip "no null_blk"
grep -q " /sys/kernel/config configfs " /proc/mounts || mount -t configfs none /sys/kernel/config
nb=/sys/kernel/config/nullb/azbuse$id
free_name() {
	if [ -d "$nb" ]; then
		echo 0 >"$nb/power"
		rmdir "$nb"
	fi
}
trap 'free_name 2>/dev/null; rmmod null_blk 2>/dev/null || true' EXIT
mkdir "$nb"
echo 1 >"$nb/power"
[ -e /sys/block/azbuse$id ] || skip "null_blk does not name its disk after its configfs directory"
log "null_blk holds the name azbuse$id"

between=/tmp/start-retry-between.sh
cat >"$between" <<EOS
#!/usr/bin/env bash
set -eu
dmesg >/tmp/start-retry-dmesg
# the failed add_disk: the duplicate name, and nothing worse
grep -q "cannot create duplicate filename.*azbuse$id" /tmp/start-retry-dmesg ||
	{ echo "no duplicate-name message in dmesg"; cat /tmp/start-retry-dmesg; exit 1; }
if grep -E 'WARNING:|BUG:|Oops|general protection|KASAN|refcount_t:' /tmp/start-retry-dmesg; then
	exit 1
fi
dmesg -C
echo 0 >$nb/power
rmdir $nb
EOS
chmod +x "$between"
"$tool" --dev-id $id --between "$between" || die "azbuse-start-retry failed"
[ -z "$(device_ids)" ] || die "devices left: $(device_ids)"
log "ok"
