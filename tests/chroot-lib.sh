# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# chroot-lib.sh: a throw-away Debian root for tests that must start from a
# fresh machine (sourced, not run). The first use of a suite runs debootstrap
# (--variant=minbase) and keeps a tarball of the result in
# ${AZBUSE_VM_CACHE:-/var/cache/azbuse-vm}; every run unpacks a fresh copy
# from it, so nothing of one run reaches the next, and nothing is installed
# on the host. Packages downloaded inside are kept in the cache too (apt's
# archives), which only saves downloads.
#
#   chroot_make SUITE DIR   a fresh root of SUITE in DIR (made empty first)
#   chroot_run DIR CMD...   run CMD as root in it, with /proc, /dev and DNS
#   chroot_drop DIR         unmount what chroot_run mounted and delete DIR

chroot_cache=${AZBUSE_VM_CACHE:-/var/cache/azbuse-vm}
chroot_mirror=${AZBUSE_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# chroot_base SUITE: prints the cached tarball of SUITE, making it if needed
# (under a lock: two runs at once make it once).
chroot_base() {
	local suite=$1 tar=$chroot_cache/root-$1.tar tmp
	mkdir -p "$chroot_cache"
	(
		flock 8
		[ -s "$tar" ] && exit 0
		command -v debootstrap >/dev/null || { echo "chroot-lib: debootstrap is not installed" >&2; exit 1; }
		tmp=$(mktemp -d "$chroot_cache/.root-$suite.XXXXXX")
		trap 'rm -rf "$tmp"' EXIT
		echo "chroot-lib: debootstrap $suite (once; kept as $tar)" >&2
		debootstrap --variant=minbase "$suite" "$tmp/root" "$chroot_mirror" >"$tmp/log" 2>&1 ||
			{ tail -n 20 "$tmp/log" >&2; echo "chroot-lib: debootstrap $suite failed" >&2; exit 1; }
		rm -rf "$tmp/root/var/cache/apt/archives/"*.deb
		tar -C "$tmp/root" -cf "$tmp/root.tar" . && mv "$tmp/root.tar" "$tar"
	) 8>"$chroot_cache/.root-$suite.lock" || return 1
	echo "$tar"
}

chroot_make() {
	local suite=$1 dir=$2 tar
	tar=$(chroot_base "$suite") || return 1
	chroot_drop "$dir"
	mkdir -p "$dir"
	tar -C "$dir" -xf "$tar"
	# no service starts inside; apt talks to the same mirror
	printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
	chmod +x "$dir/usr/sbin/policy-rc.d"
	mkdir -p "$chroot_cache/apt-archives-$suite/partial"
}

chroot_run() {
	local dir=$1
	shift
	if ! mountpoint -q "$dir/proc"; then
		mount -t proc proc "$dir/proc"
		mount --bind /dev "$dir/dev"
		mount --bind "$chroot_cache/apt-archives-$(chroot_suite "$dir")" "$dir/var/cache/apt/archives"
	fi
	cp -L /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null || true
	chroot "$dir" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# chroot_suite DIR: the suite DIR was made from (its apt sources say)
chroot_suite() {
	sed -n 's/^deb [^ ]* \([^ ]*\) .*/\1/p' "$1/etc/apt/sources.list" | head -n 1
}

chroot_drop() {
	local dir=$1 m
	[ -d "$dir" ] || return 0
	for m in var/cache/apt/archives dev proc; do
		! mountpoint -q "$dir/$m" || umount -l "$dir/$m"
	done
	rm -rf --one-file-system "$dir"
}
