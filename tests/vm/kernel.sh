#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# kernel.sh: prepares a Debian kernel for the test VM without installing it.
#
#   tests/vm/kernel.sh [KVER]
#
# Downloads linux-image-KVER with `apt-get download`, extracts it with
# `dpkg-deb -x` into ${AZBUSE_VM_CACHE:-/var/cache/azbuse-vm}/KVER, runs
# depmod on the extracted tree and prints that directory. KVER defaults to
# the one whose headers tests/vm/headers.sh prepared (the newest 6.12), so the
# VM boots the kernel the module is built against (pass e.g. 6.1.0-56-amd64
# for 6.1, as run-6.1.sh does).
# The result holds boot/vmlinuz-KVER and
# lib/modules/KVER; a stamp file makes later runs instant.
set -euo pipefail

die() {
	echo "kernel.sh: $*" >&2
	exit 1
}

kver=${1:-}
if [ -z "$kver" ]; then
	# the kernel whose headers the module is built against: tests/vm/headers.sh's
	# newest 6.12+, else the newest installed
	hdr=$("$(dirname "$0")/headers.sh" --find 6.12 2>/dev/null) ||
		hdr=$(find /usr/src -maxdepth 1 -name 'linux-headers-*-amd64' | sort -V | tail -n 1)
	[ -n "$hdr" ] || die "no kernel headers: run tests/vm/install-deps.sh (or tests/vm/headers.sh --newest 6.12), or pass KVER"
	kver=${hdr##*/linux-headers-}
fi

cache=${AZBUSE_VM_CACHE:-/var/cache/azbuse-vm}
dir=$cache/$kver
stamp=$dir/.azbuse-kernel-ready

if [ -f "$stamp" ]; then
	echo "$dir"
	exit 0
fi

# shellcheck source=lib-download.sh
. "$(dirname "$0")/lib-download.sh"
download_begin "apt-get dpkg-deb depmod flock" "$kver" "$stamp" "$dir"

pkg=linux-image-$kver
echo "kernel.sh: downloading $pkg" >&2
if ! (cd "$tmp/deb" && apt-get download -q "$pkg" >&2); then
	die "'apt-get download $pkg' failed. If apt said it cannot locate the package, the package lists are probably stale (Debian keeps only the newest ABI of each kernel: see 'apt-cache search --names-only ^linux-image-' for what is there) or lack the suite that has it (bookworm-backports for 6.12, bookworm and bookworm-security for Debian 12's 6.1): run 'apt-get update' (or tests/vm/install-deps.sh) and try again."
fi
debs=("$tmp"/deb/*.deb)
[ -f "${debs[0]}" ] || die "apt-get download $pkg produced no .deb"

echo "kernel.sh: extracting ${debs[0]##*/}" >&2
dpkg-deb -x "${debs[0]}" "$tmp/root"

# Newer (merged-/usr) packages ship /usr/lib/modules; depmod -b wants lib/modules.
if [ ! -d "$tmp/root/lib/modules/$kver" ] && [ -d "$tmp/root/usr/lib/modules/$kver" ]; then
	mkdir -p "$tmp/root/lib/modules"
	mv "$tmp/root/usr/lib/modules/$kver" "$tmp/root/lib/modules/$kver"
fi
[ -f "$tmp/root/boot/vmlinuz-$kver" ] || die "$pkg has no boot/vmlinuz-$kver"
[ -d "$tmp/root/lib/modules/$kver" ] || die "$pkg has no lib/modules/$kver"
rm -rf "$tmp/root/usr/share"
rmdir "$tmp/root/usr" 2>/dev/null || true

depmod -b "$tmp/root" "$kver"

download_finish "$dir" "$stamp"
echo "$dir"
