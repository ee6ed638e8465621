#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# kmod-newest.sh: builds azbuse.ko against the newest kernel whose headers
# Debian ships, with the compiler that kernel was built with. The VM suite
# boots 6.12 and 6.1; a newer kernel's headers need a newer toolchain than
# Debian 12's (its kbuild programs link a newer glibc, its config names
# gcc-16), so the build runs in a throw-away root of that suite
# (tests/chroot-lib.sh), nothing installed on the host.
#
#   tests/kmod-newest.sh [--suite SUITE] [--kver KVER]
#
# SUITE: sid (default: Debian's newest released kernel) or experimental (its
# release candidates). KVER: a linux-headers-KVER package (default: the
# newest -amd64 one SUITE has). The module must build without a warning.
# Prints "kmod-newest: built against KVER (gcc ...)"; exit status 0, 1 if the
# module does not build, 77 (skipped) if SUITE's headers cannot be installed
# (a network or archive problem, not the module's).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/.." && pwd)
# shellcheck source=chroot-lib.sh
. "$here/chroot-lib.sh"

suite=sid
kver=
while [ $# -gt 0 ]; do
	case $1 in
	--suite) suite=${2:?}; shift 2 ;;
	--kver) kver=${2:?}; shift 2 ;;
	*) echo "usage: kmod-newest.sh [--suite sid|experimental] [--kver KVER]" >&2; exit 2 ;;
	esac
done

root=$chroot_cache/kmod-newest.$$
log=$chroot_cache/kmod-newest.log
trap 'chroot_drop "$root"' EXIT
: >"$log"

inside() {
	echo "+ $*" >>"$log"
	chroot_run "$root" bash -euo pipefail -c "$*" >>"$log" 2>&1
}

skip() {
	echo "kmod-newest: SKIP: $* (log: $log)" >&2
	tail -n 15 "$log" | sed 's/^/    /' >&2
	exit 77
}

start=$SECONDS
chroot_make sid "$root" || skip "no sid root (debootstrap)"
apt_opts=
if [ "$suite" = experimental ]; then
	echo "deb $chroot_mirror experimental main" >>"$root/etc/apt/sources.list"
	apt_opts="-t experimental"
fi
# Signatures are checked; an expired Valid-Until is not fatal: a mirror
# frozen in time (as this project's CI reaches) still serves sid's last state.
echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99azbuse-frozen-mirror"
inside "apt-get update -q" || skip "apt-get update"
if [ -z "$kver" ]; then
	kver=$(chroot_run "$root" bash -c "apt-cache $apt_opts search --names-only '^linux-headers-[0-9].*-amd64\$'" |
		awk '{ print $1 }' | grep -Ev -- '-(cloud|rt)-amd64$' | sed 's/^linux-headers-//' | sort -V | tail -n 1)
	[ -n "$kver" ] || skip "no linux-headers-*-amd64 in $suite"
fi
inside "apt-get install -y -q --no-install-recommends $apt_opts make kmod linux-headers-$kver" ||
	skip "linux-headers-$kver does not install from $suite"
echo "kmod-newest: $suite's linux-headers-$kver installed ($((SECONDS - start)) s)"

mkdir -p "$root/src"
cp -r "$src/kmod" "$src/include" "$root/src/"
rm -f "$root"/src/kmod/*.o "$root"/src/kmod/*.ko
kdir=/usr/src/linux-headers-$kver
if ! inside "make -C $kdir M=/src/kmod modules 2>&1 | tee /tmp/build.log && test -f /src/kmod/azbuse.ko"; then
	grep -E 'error|warning' "$log" | head -n 20 >&2
	echo "kmod-newest: FAIL: azbuse.ko does not build against $kver (log: $log)" >&2
	exit 1
fi
if grep -q 'warning:' "$root/tmp/build.log"; then
	grep -A3 'warning:' "$root/tmp/build.log" | head -n 30 >&2
	echo "kmod-newest: FAIL: warnings building against $kver (log: $log)" >&2
	exit 1
fi
gcc=$(chroot_run "$root" bash -c "sed -n 's/^CONFIG_CC_VERSION_TEXT=\"\\(.*\\)\"/\\1/p' $kdir/.config")
vermagic=$(chroot_run "$root" modinfo -F vermagic /src/kmod/azbuse.ko 2>/dev/null ||
	strings "$root/src/kmod/azbuse.ko" | sed -n 's/^vermagic=//p')
echo "kmod-newest: built against $kver ($vermagic; $gcc) in $((SECONDS - start)) s"
