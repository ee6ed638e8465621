#!/bin/busybox sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# initramfs-init.sh: /init of the test VM's initramfs (built by vm-run.sh, run
# by busybox sh as PID 1 inside the guest).
#
# Stage 1 (in the initramfs): loads the modules listed in /modules/order,
# mounts the output share (9p tag "azbuseout", read-write) and reads the run's
# settings from its .vm/config, mounts the host's root (9p tag "hostroot",
# read-only) under a tmpfs overlay at /newroot, sets up proc, sys, dev,
# dev/pts, dev/shm, tmp, run, debugfs, the output share at its host path and
# /lib/modules/KVER (bound to the extracted kernel's modules) there, then
# switch_roots to stage 2.
# Stage 2 (PID 1 in the new root, "init stage2"): mounts configfs, loads the
# requested modules, runs OUT/.vm/cmd.sh (the command, written by vm-run.sh),
# saves the guest's dmesg and the command's exit status to OUT/dmesg and
# OUT/rc, and powers off.
# shellcheck shell=sh
set -u

export PATH=/bin:/sbin:/usr/bin:/usr/sbin

poweroff_now() {
	sync
	poweroff -f
	echo o >/proc/sysrq-trigger
	sleep 10
}

fail() {
	echo "azbuse-vm init: $*" >&2
	poweroff_now
}

if [ "${1:-}" = stage2 ]; then
	/run/azbuse-vm/busybox mkdir -p /run/azbuse-vm/bin
	/run/azbuse-vm/busybox --install -s /run/azbuse-vm/bin
	export PATH=/run/azbuse-vm/bin
	# shellcheck disable=SC1091 # written by vm-run.sh
	. /run/azbuse-vm/config
	if /sbin/modprobe configfs 2>/dev/null; then
		mount -t configfs configfs /sys/kernel/config 2>/dev/null
	fi
	for mod in $LOAD_MODULES; do
		/sbin/modprobe "$mod" || fail "modprobe $mod failed"
	done
	if [ -n "${NET_ADDR:-}" ]; then # QEMU's user network (vm-run.sh --net)
		if ! ip link set eth0 up || ! ip addr add "$NET_ADDR" dev eth0 ||
			! ip route add default via 10.0.2.2; then
			fail "cannot set up eth0"
		fi
	fi

	# tells the host that the guest booted: a VM that dies before this
	# line (a crash while the kernel boots) may be started again
	: >"$OUT/.vm/started"
	/bin/bash "$OUT/.vm/cmd.sh" </dev/null
	rc=$?

	# rc last: its presence tells the host the run completed.
	dmesg >"$OUT/dmesg"
	echo "$rc" >"$OUT/rc"
	umount "$OUT"
	# Keep "reboot: Power down" off the console (the log was saved above).
	echo 0 >/proc/sys/kernel/printk
	poweroff_now
fi

/bin/busybox mkdir -p /proc /sys /dev /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# In case the initramfs has no dev/console node (built without root).
exec </dev/console >/dev/console 2>&1
# The serial console would turn every \n into \r\n in the output.
stty -F /dev/console -onlcr 2>/dev/null

while read -r mod; do
	insmod "/modules/$mod" || fail "insmod $mod failed"
done </modules/order

# The output share carries the per-run config and the command script.
mkdir -p /out
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 azbuseout /out ||
	fail "cannot mount the output share"
[ -f /out/.vm/config ] || fail "no .vm/config in the output share"
# Sets: OUT (host path of the share), KVER, KDIR (host path of the extracted
# kernel), VM_HOSTNAME, LOAD_MODULES (modules to modprobe before the command),
# NET_ADDR (eth0's address on QEMU's user network, or empty).
# shellcheck disable=SC1091 # written by vm-run.sh
. /out/.vm/config

mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro,cache=loose hostroot /lower ||
	fail "cannot mount the host root over 9p"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot ||
	fail "cannot mount the overlay root"

R=/newroot
for fs in /proc /sys /dev; do
	mount --move $fs $R$fs || fail "cannot move $fs into the new root"
done
# modprobe in the guest finds the extracted kernel's modules (bound before
# the tmpfs mounts below, which would hide a cache kept under /run).
mkdir -p "$R/lib/modules/$KVER"
mount --bind "$R$KDIR/lib/modules/$KVER" "$R/lib/modules/$KVER" ||
	fail "cannot bind $KDIR/lib/modules/$KVER"
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
# no tmpfs on /tmp: the overlay already makes it writable, and a tmpfs would
# hide a checkout or cache that the host keeps under /tmp
mount -t tmpfs -o mode=0755 tmpfs $R/run
mkdir -p "$R$OUT"
mount --move /out "$R$OUT" || fail "cannot move the output share to $OUT"
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null


ip link set lo up
hostname "$VM_HOSTNAME"

# Stage 2 runs as PID 1 in the new root (so that the kernel's own module
# requests, e.g. for a filesystem, find the real modprobe), from /run.
mkdir -p $R/run/azbuse-vm
cp /bin/busybox /init "$R$OUT/.vm/config" $R/run/azbuse-vm/
# shellcheck disable=SC2093 # exec only returns if switch_root fails
exec switch_root $R /run/azbuse-vm/busybox sh /run/azbuse-vm/init stage2
fail "switch_root failed"
