#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# headers.sh: a Debian kernel's headers to build azbuse.ko against, without
# installing them.
#
#   tests/vm/headers.sh KVER          e.g. 6.12.95+deb12-amd64
#   tests/vm/headers.sh --newest SERIES   6.12 (bookworm-backports) or 6.1 (bookworm)
#   tests/vm/headers.sh --find SERIES     the newest already prepared, or exit 1
#
# Downloads linux-headers-KVER with the -common and linux-kbuild packages it
# depends on (`apt-get download`), extracts them with `dpkg-deb -x` into
# ${AZBUSE_VM_CACHE:-/var/cache/azbuse-vm}/headers-KVER and prints the kernel
# build directory there (KDIR for make -C). Installing the headers package
# instead would pull in the kernel image it depends on, and with it, from
# backports, newer system packages: the host's kernel and packages are left
# alone. A stamp file makes later runs instant.
set -euo pipefail

die() {
	echo "headers.sh: $*" >&2
	exit 1
}

cache=${AZBUSE_VM_CACHE:-/var/cache/azbuse-vm}

# kdir_of KVER: the build directory inside the prepared tree
kdir_of() { echo "$cache/headers-$1/usr/src/linux-headers-$1"; }

# newest_prepared SERIES: the newest KVER of SERIES already in the cache
newest_prepared() {
	local d best=
	for d in "$cache"/headers-"$1".*-amd64 "$cache"/headers-"$1"-*-amd64; do
		[ -f "$d/.azbuse-headers-ready" ] || continue
		d=${d##*/headers-}
		if [ -z "$best" ] || dpkg --compare-versions "$d" gt "$best"; then
			best=$d
		fi
	done
	[ -n "$best" ] && echo "$best"
}

# newest_available SERIES: the ABI the newest linux-headers-amd64 of SERIES
# depends on, e.g. 6.12.95+deb12-amd64 (from the package lists)
newest_available() {
	local v best=
	while read -r v; do
		case $v in "$1".*) ;; *) continue ;; esac
		if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; then
			best=$v
		fi
	done < <(apt-cache madison linux-headers-amd64 | awk -F'|' '{ gsub(/ /, "", $2); print $2 }')
	[ -n "$best" ] || return 1
	apt-cache show "linux-headers-amd64=$best" | sed -n 's/^Depends: //p' | tr ',' '\n' |
		grep -Eo 'linux-headers-[0-9][^ ]*-amd64' | sed 's/^linux-headers-//' | sort -V | tail -n 1 |
		grep .
}

case ${1:-} in
--find)
	kver=$(newest_prepared "${2:?--find SERIES}") || exit 1
	kdir_of "$kver"
	exit 0
	;;
--newest)
	kver=$(newest_available "${2:?--newest SERIES}") ||
		die "the package lists have no linux-headers-amd64 of $2 (bookworm-backports has 6.12, bookworm 6.1): run apt-get update"
	;;
'' | -*) die "usage: headers.sh KVER | --newest SERIES | --find SERIES" ;;
*) kver=$1 ;;
esac

dir=$cache/headers-$kver
stamp=$dir/.azbuse-headers-ready
if [ -f "$stamp" ]; then
	kdir_of "$kver"
	exit 0
fi
# shellcheck source=lib-download.sh
. "$(dirname "$0")/lib-download.sh"
download_begin "apt-get apt-cache dpkg-deb flock" "headers-$kver" "$stamp" "$(kdir_of "$kver")"

# the headers, and the -common and kbuild packages they use (not the image)
pkgs=("linux-headers-$kver")
while read -r dep; do
	pkgs+=("$dep")
done < <(apt-cache depends "linux-headers-$kver" 2>/dev/null |
	sed -n 's/^ *|\?Depends: //p' | grep -E '^linux-(headers-.*-common|kbuild-)' | sort -u)
[ ${#pkgs[@]} -ge 3 ] ||
	die "cannot find what linux-headers-$kver needs (${pkgs[*]}): is it in the package lists? (apt-get update)"
echo "headers.sh: downloading ${pkgs[*]}" >&2
(cd "$tmp/deb" && apt-get download -q "${pkgs[@]}" >&2) ||
	die "'apt-get download ${pkgs[*]}' failed (stale package lists? run apt-get update)"
for deb in "$tmp"/deb/*.deb; do
	dpkg-deb -x "$deb" "$tmp/root"
done

src=$tmp/root/usr/src/linux-headers-$kver
[ -f "$src/Makefile" ] || die "linux-headers-$kver has no Makefile"
# its Makefile names the -common one (and, since 6.13, itself as
# KBUILD_OUTPUT) by absolute path: point them here
sed -i "s|^include /usr/src/|include $dir/usr/src/|; s|^KBUILD_OUTPUT=/usr/src/|KBUILD_OUTPUT=$dir/usr/src/|" \
	"$src/Makefile"
[ -e "$src/scripts/Makefile.build" ] || die "scripts/ does not resolve (linux-kbuild missing?)"
rm -rf "$tmp/root/usr/share"

download_finish "$dir" "$stamp"
kdir_of "$kver"
