#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 87-thin-activate-boot: LVM-like names and activation, and a reboot. With
# udevd running and the project's rule, `azbuse-thin create --activate` and
# `activate` serve volumes as /dev/azbuse/POOL/VOLUME; `deactivate` removes
# the device and the name and records the volume inactive. Then a reboot, as
# far as a VM case can have one: the whole daemon is SIGKILLed, every device
# removed and /run/azbuse emptied; what azbuse-pool@.service runs
# (`azbuse-thin activate --all --foreground`) brings back exactly the
# volumes recorded active, under their names, tells systemd (NOTIFY_SOCKET)
# that they are ready, and the filesystem on them is intact. SIGTERM to that
# daemon (systemctl stop) removes the devices.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd udevadm
require_cmd python3
udevd=/lib/systemd/systemd-udevd
[ -x "$udevd" ] || skip "no systemd-udevd"

fs=/mnt/ab-fs
rules=/run/udev/rules.d/60-azbuse.rules
src_dir=$(cd "$(dirname "$0")/../../.." && pwd)
thin_case_cleanup() {
	[ "$1" = 0 ] || { sup_log_keep; cat /tmp/ab-daemon.log >&2 2>/dev/null || true; }
	if mountpoint -q "$fs"; then umount -l "$fs"; fi
	[ -z "${boot_pid:-}" ] || kill -TERM "$boot_pid" 2>/dev/null || true
	[ -z "${notify_pid:-}" ] || kill "$notify_pid" 2>/dev/null || true
	udevadm control --exit 2>/dev/null || true
	rm -f "$rules"
}
thin_pool_setup ab 600
mkdir -p "$fs"

# udevd with the project's rule, its helper taken from the source tree
mkdir -p /run/udev/rules.d
sed "s|@AZBUSE_LIBEXEC@|$src_dir/tools/udev|" "$src_dir/tools/udev/60-azbuse.rules.in" >"$rules"
"$udevd" --daemon
udevadm settle -t 10 || true

athin init --shards 2 >/dev/null || die "init failed"
link() { echo "/dev/azbuse/pool/$1"; }
daemon_of() { azbusectl info "$1" --json | grep -o '"supervisor_pid": [0-9]*' | grep -o '[0-9]*$'; }
dev_of_link() { basename "$(readlink -f "$(link "$1")")"; }

# --- names and activation ----------------------------------------------------------
athin create vol1 --size 256M --activate >/tmp/ab-act.log || die "create --activate failed"
grep -q "vol1 activated on /dev/azbuse" /tmp/ab-act.log || die "create --activate said: $(cat /tmp/ab-act.log)"
wait_for 10 test -b "$(link vol1)" || die "no $(link vol1)"
mkfs.ext4 -q -E nodiscard "$(link vol1)"
mount "$(link vol1)" "$fs"
mkdir "$fs/files"
write_random_files "$fs/files" 10 32
sha256_record "$fs/files" /tmp/ab-files.sha
sync -f "$fs"
athin create vol2 --size 64M --activate >/dev/null || die "create vol2 --activate failed"
athin snapshot vol1 snap1 >/dev/null || die "snapshot failed"
athin activate snap1 >/dev/null || die "activate snap1 failed"
for v in vol1 vol2 snap1; do
	wait_for 10 test -b "$(link $v)" || die "no $(link $v)"
done
d1=$(dev_of_link vol1)
[ "$(daemon_of "${d1#azbuse}")" = "$(daemon_of "$(dev_of_link snap1 | sed 's/azbuse//')")" ] ||
	die "vol1 and snap1 are served by different daemons"
athin activate vol1 | grep -q "already served" || die "activate of a served volume"
athin deactivate vol2 >/dev/null || die "deactivate vol2 failed"
wait_for 10 sh -c "! test -e $(link vol2)" || die "$(link vol2) still there after deactivate"
if athin deactivate vol1 >/dev/null 2>&1; then die "deactivate of a mounted volume"; fi
test -b "$(link vol1)" || die "a refused deactivate removed vol1's device"
log "create --activate, activate, deactivate and /dev/azbuse/pool/VOLUME names: ok"

# --- a reboot: the daemon killed, the devices and /run gone --------------------------------
daemon=$(daemon_of "${d1#azbuse}")
kill -KILL "$daemon"
pkill -KILL -f "azbusectl add .*--pool $pool" || true
umount -l "$fs"
azbusectl remove --all --force >/dev/null || die "remove --all --force failed"
rm -f /run/azbuse/*.conf /run/azbuse/*.sock
udevadm settle -t 10 || true
[ ! -e "$(link vol1)" ] || die "$(link vol1) outlived its device"

# what the unit runs, with systemd's notification socket
python3 - /run/ab-notify.sock >/tmp/ab-notify.log <<'EOF' &
import os, socket, sys
path = sys.argv[1]
if os.path.exists(path):
    os.unlink(path)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
while True:
    msg = s.recv(4096).decode()
    print(msg.replace("\n", " "), flush=True)
EOF
notify_pid=$!
wait_for 5 test -S /run/ab-notify.sock || die "no notify socket"
start=$(date +%s%N)
NOTIFY_SOCKET=/run/ab-notify.sock "$thin" --pool "$pool" activate --all --foreground \
	>/tmp/ab-daemon.log 2>&1 &
boot_pid=$!
wait_for 60 grep -q "READY=1" /tmp/ab-notify.log || die "no READY=1 from the boot activation"
ms=$((($(date +%s%N) - start) / 1000000))
grep -q "MAINPID=$boot_pid" /tmp/ab-notify.log || die "READY=1 names another main pid: $(cat /tmp/ab-notify.log)"
for v in vol1 snap1; do
	wait_for 10 test -b "$(link $v)" || die "$(link $v) not back after the reboot"
done
[ ! -e "$(link vol2)" ] || die "vol2 (deactivated) came back at boot"
[ "$(daemon_of "$(dev_of_link vol1 | sed 's/azbuse//')")" = "$boot_pid" ] ||
	die "the boot's foreground process is not the daemon"
grep -Eq '^[0-9-]+ [0-9:.]+ INFO  azbuse[0-9]+: serving' /tmp/ab-daemon.log ||
	die "the daemon's log has no timestamps and levels: $(head -3 /tmp/ab-daemon.log)"
log "reboot: vol1 and snap1 back under their names in $ms ms, READY=1 sent, vol2 stays off"

fsck.ext4 -f -p "$(link vol1)" >/tmp/ab-fsck.log 2>&1 || true
fsck.ext4 -f -n "$(link vol1)" >/tmp/ab-fsck.log 2>&1 || { cat /tmp/ab-fsck.log >&2; die "fsck after the reboot"; }
mount "$(link vol1)" "$fs"
sha256_verify "$fs/files" /tmp/ab-files.sha || die "files lost in the reboot"
umount "$fs"
log "the filesystem on vol1 is intact after the reboot"

# systemctl stop: SIGTERM to the daemon removes its devices
kill -TERM "$boot_pid"
wait_for 30 sh -c "! kill -0 $boot_pid 2>/dev/null" || die "the daemon did not stop on SIGTERM"
boot_pid=
[ -z "$(device_ids)" ] || die "devices left after the daemon stopped: $(device_ids)"
udevadm settle -t 10 || true
[ ! -e "$(link vol1)" ] || die "$(link vol1) left after the daemon stopped"
log "SIGTERM removed the devices and their names"
