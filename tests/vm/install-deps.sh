#!/usr/bin/env bash
# install-deps.sh: installs, on a Debian 12 host, everything azbuse needs to build
# and to run its tests (userspace build deps, QEMU, Debian's 6.12 kernel headers
# from bookworm-backports). With --if-needed it does nothing when all of it is
# already there; otherwise it runs apt-get update and installs what is missing.
set -euo pipefail

packages=(
	build-essential cmake pkg-config clang-format
	libjemalloc-dev libnuma-dev librocksdb-dev libcmocka-dev liburing-dev
	qemu-system-x86 busybox-static kmod cpio xz-utils zstd
	fio e2fsprogs util-linux procps numactl
)
backports_packages=(linux-headers-amd64)

all_installed() {
	local p
	for p in "${packages[@]}" "${backports_packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 1
	done
	# the headers must be the 6.12 ones from backports, not Debian 12's 6.1
	compgen -G '/usr/src/linux-headers-6.1[2-9]*-amd64' >/dev/null
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
apt-get install -y -q --no-install-recommends -t bookworm-backports "${backports_packages[@]}"
