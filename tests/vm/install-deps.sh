#!/usr/bin/env bash
# install-deps.sh: installs, on a Debian 12 host, everything azbuse needs to build
# and to run its tests (userspace build deps, QEMU, Debian's 6.12 kernel headers
# from bookworm-backports, and Debian 12's own 6.1 kernel headers, the newest
# linux-headers-6.1.0-N-amd64, for tests/vm/run-6.1.sh). With --if-needed it
# does nothing when all of it is already there; otherwise it runs apt-get
# update and installs what is missing.
set -euo pipefail

packages=(
	build-essential cmake pkg-config clang-format
	libjemalloc-dev libnuma-dev librocksdb-dev libcmocka-dev liburing-dev libsmartcols-dev
	qemu-system-x86 busybox-static kmod cpio xz-utils zstd
	fio e2fsprogs util-linux procps numactl
	# tests/bench.sh: fio's JSON is read with python3; gnuplot draws the
	# chart; the peers it measures: nbd (nbdkit memory, nbd-client), dm-thin
	# and dm-cache (dmsetup)
	python3 gnuplot-nox nbdkit nbd-client dmsetup
)
backports_packages=(linux-headers-amd64)

all_installed() {
	local p
	for p in "${packages[@]}" "${backports_packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 1
	done
	# the headers must be the 6.12 ones from backports, not Debian 12's 6.1
	compgen -G '/usr/src/linux-headers-6.1[2-9]*-amd64' >/dev/null || return 1
	# and Debian 12's 6.1 ones too (any ABI: no package lists needed here)
	dpkg-query -W -f='${Status} ${Package}\n' 'linux-headers-6.1.0-*-amd64' 2>/dev/null |
		grep -Eq '^install ok installed linux-headers-6\.1\.0-[0-9]+-amd64$' || return 1
	compgen -G '/usr/src/linux-headers-6.1.0-*-amd64' >/dev/null || return 1
	dpkg-query -W -f='${Status}' libsystemd-dev 2>/dev/null | grep -q 'install ok installed'
}

# headers_61_package: Debian 12's current 6.1 headers package, e.g.
# linux-headers-6.1.0-56-amd64: what the highest 6.1 version of the
# linux-headers-amd64 metapackage (bookworm or bookworm-security; backports
# has 6.12) depends on. Fails if the package lists have none.
headers_61_package() {
	local v best=
	while read -r v; do
		case $v in 6.1.*) ;; *) continue ;; esac
		if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; then
			best=$v
		fi
	done < <(apt-cache madison linux-headers-amd64 | awk -F'|' '{ gsub(/ /, "", $2); print $2 }')
	[ -n "$best" ] || return 1
	apt-cache show "linux-headers-amd64=$best" | sed -n 's/^Depends: //p' |
		grep -Eo 'linux-headers-6\.1\.0-[0-9]+-amd64' | sort -V | tail -n 1 | grep .
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
if ! headers_61=$(headers_61_package); then
	echo "install-deps.sh: the package lists have no 6.1 linux-headers-amd64 (is bookworm itself in the apt sources?)" >&2
	exit 1
fi
apt-get install -y -q --no-install-recommends "$headers_61"
# sd_notify for the boot unit (azbuse-thin activate): the headers of the
# libsystemd0 installed (bookworm's or, if something pulled it in, backports'),
# so that nothing of systemd is upgraded for it
apt-get install -y -q --no-install-recommends \
	"libsystemd-dev=$(dpkg-query -W -f='${Version}' libsystemd0)"
