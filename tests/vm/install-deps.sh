#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# install-deps.sh: installs, on a Debian 12 host, everything azbuse needs to build
# and to run its tests (userspace build deps, QEMU), and prepares the kernel
# headers the module is built against, unpacked into the VM cache by
# tests/vm/headers.sh, not installed: Debian's 6.12 from bookworm-backports
# and Debian 12's own 6.1 (for tests/vm/run-6.1.sh). Installing a headers
# package would install its kernel image too, and from backports newer
# system packages. With --if-needed it does nothing when all of it is
# already there; otherwise it runs apt-get update and installs what is missing.
set -euo pipefail

packages=(
	build-essential cmake pkg-config clang-format
	libjemalloc-dev libnuma-dev librocksdb-dev libcmocka-dev liburing-dev libsmartcols-dev libjson-c-dev libssl-dev
	# the Rust binding (bindings/rust): Debian's rustc and cargo, no crates registry
	rustc cargo
	# tests/fresh-install.sh and tests/kmod-newest.sh: throw-away Debian roots
	debootstrap
	qemu-system-x86 busybox-static kmod cpio xz-utils zstd
	fio e2fsprogs util-linux procps numactl
	# what the kernel's kbuild tools (in the unpacked headers) use; pahole
	# (dwarves) writes a module's BTF where the headers ship a vmlinux
	# (Debian's 6.12 from 6.12.95 on), and the build fails without it
	libelf1 libssl3 zlib1g dwarves
	# tests/bench.sh: fio's JSON is read with python3; gnuplot draws the
	# chart; the peers it measures: nbd (nbdkit memory, nbd-client), dm-thin
	# and dm-cache (dmsetup)
	python3 gnuplot-nox nbdkit nbd-client dmsetup
	# the rbd engine (librbd) and the Ceph cluster its VM cases start, with
	# its peers rbd-nbd and krbd (rbd map)
	librbd-dev ceph-mon ceph-mgr ceph-osd ceph-common rbd-nbd uuid-runtime
)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

all_installed() {
	local p
	for p in "${packages[@]}" libsystemd-dev; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 1
	done
	# the 6.12 headers (backports) and Debian 12's 6.1 ones, unpacked
	"$here/headers.sh" --find 6.12 >/dev/null && "$here/headers.sh" --find 6.1 >/dev/null
}

if [ "${1:-}" = "--if-needed" ] && all_installed; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps.sh: run as root (it uses apt-get)" >&2
	exit 1
fi

if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	echo "deb http://deb.debian.org/debian bookworm-backports main" \
		>/etc/apt/sources.list.d/azbuse-bookworm-backports.list
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${packages[@]}"
"$here/headers.sh" --newest 6.12 >/dev/null
"$here/headers.sh" --newest 6.1 >/dev/null
# sd_notify for the boot unit (azbuse-thin activate): the headers of the
# libsystemd0 installed (bookworm's or, if something pulled it in, backports'),
# so that nothing of systemd is upgraded for it
apt-get install -y -q --no-install-recommends \
	"libsystemd-dev=$(dpkg-query -W -f='${Version}' libsystemd0)"
