#!/usr/bin/env bash
# install-deps.sh: installs, on a Debian 12 host, everything azbuse needs to build
# and to run its tests (userspace build deps, QEMU, Debian's 6.12 kernel headers
# from bookworm-backports). Idempotent: a second run installs nothing new.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps.sh: run as root (it uses apt-get)" >&2
	exit 1
fi

backports=/etc/apt/sources.list.d/azbuse-bookworm-backports.list
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	echo "deb http://deb.debian.org/debian bookworm-backports main" >"$backports"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
	build-essential cmake pkg-config clang-format \
	libjemalloc-dev libnuma-dev librocksdb-dev libcmocka-dev \
	qemu-system-x86 busybox-static kmod cpio xz-utils zstd \
	fio e2fsprogs util-linux procps numactl
apt-get install -y -q --no-install-recommends -t bookworm-backports \
	linux-headers-amd64
