#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# fresh-install.sh: the README's "Building and installing" lines on a fresh
# Debian 12, as a newcomer would run them: in a throw-away bookworm root
# (tests/chroot-lib.sh) it installs the packages of the README's apt-get
# line, builds this source tree with the README's cmake lines, installs it,
# builds the example engine out of tree against the installed package (with
# pkg-config and with CMake's find_package; it must link neither RocksDB nor
# liburing), and runs the README's first thin commands at the pool's default
# location. The module is not built (the chroot has no kernel of its own:
# -DAZBUSE_BUILD_KMOD=OFF); the VM suite builds and tests it.
#
#   tests/fresh-install.sh [SRC]      (SRC: default, this checkout)
#
# As root (debootstrap, chroot). Prints "fresh-install: ok" or the failing
# step with its log; exit status 0 or 1.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "${1:-$here/..}" && pwd)
# shellcheck source=chroot-lib.sh
. "$here/chroot-lib.sh"

root=$chroot_cache/fresh-install.$$
log=$chroot_cache/fresh-install.log
trap 'chroot_drop "$root"' EXIT
: >"$log"

fail() {
	echo "fresh-install: FAIL: $*" >&2
	tail -n 30 "$log" | sed 's/^/    /' >&2
	echo "fresh-install: (whole log: $log)" >&2
	exit 1
}

# inside CMD...: run a shell command line in the root, its output to the log
inside() {
	echo "+ $*" >>"$log"
	chroot_run "$root" bash -euo pipefail -c "$*" >>"$log" 2>&1
}

# The packages the README tells a newcomer to install: its apt-get line,
# continued over comment lines, less the running kernel's headers.
packages=$(sed -n '/# or: apt-get install/,/linux-headers/p' "$src/README.md" |
	sed 's/.*apt-get install//; s/^ *#//; s/\\$//' | tr ' ' '\n' |
	grep -E '^[a-z0-9][a-z0-9.+-]+$' | grep -v '^linux-headers' | sort -u | tr '\n' ' ')
[ -n "$packages" ] || fail "no apt-get line found in README.md"
echo "fresh-install: README's packages: $packages"

start=$SECONDS
chroot_make bookworm "$root" || fail "no bookworm root"
echo "fresh-install: a fresh bookworm root in $((SECONDS - start)) s"

# the source as a checkout holds it, without build directories
mkdir -p "$root/src"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$src" && git ls-files -z --cached --others --exclude-standard |
		tar --null -T - -cf -) | tar -C "$root/src" -xf -
else
	tar -C "$src" --exclude='./build*' -cf - . | tar -C "$root/src" -xf -
fi

inside "apt-get update -q" || fail "apt-get update"
# shellcheck disable=SC2086
inside "apt-get install -y -q $packages" || fail "apt-get install of the README's packages"
echo "fresh-install: the README's packages installed ($((SECONDS - start)) s)"

inside "cd /src && cmake -B build -DAZBUSE_BUILD_KMOD=OFF && cmake --build build -j$(nproc)" ||
	fail "the README's cmake lines do not build the tree"
inside "cd /src && cmake --install build" || fail "cmake --install"
echo "fresh-install: built and installed ($((SECONDS - start)) s)"

# an engine written out of tree, against the installed package only
inside "cp /src/engine/examples/example_engine.c /tmp/ && cd /tmp &&
	cc -o engine-pc example_engine.c \$(pkg-config --cflags --libs azbuse) &&
	! ldd engine-pc | grep -E 'librocksdb|liburing' &&
	ldd engine-pc | grep -q libazbuse && ./engine-pc --help >/dev/null" ||
	fail "the example engine does not build with pkg-config, or links RocksDB or liburing"
inside "mkdir -p /tmp/oot && cd /tmp/oot && cp /tmp/example_engine.c . &&
	printf '%s\n' 'cmake_minimum_required(VERSION 3.20)' 'project(oot C)' \
		'find_package(azbuse REQUIRED)' 'add_executable(engine example_engine.c)' \
		'target_link_libraries(engine PRIVATE azbuse::azbuse)' >CMakeLists.txt &&
	cmake -B b && cmake --build b && ./b/engine --help >/dev/null" ||
	fail "the example engine does not build with find_package(azbuse)"
echo "fresh-install: an engine builds against the installed package (pkg-config, find_package)"

# the tools run, and the README's thin commands work at the default pool
# (create without --activate: the chroot has no module)
inside "azbusectl --help >/dev/null && azbusectl engines &&
	test -f /usr/local/share/man/man8/azbusectl.8 && test -f /usr/local/share/man/man3/libazbuse.3" ||
	fail "azbusectl does not run, or its man pages are missing"
inside "azbuse-thin init && azbuse-thin create vol1 --size 1T && azbuse-thin snapshot vol1 snap1 &&
	azbuse-thin clone snap1 vol2 && azbuse-thin list && azbuse-thin --json usage" ||
	fail "the README's thin commands (init, create, snapshot, clone) at the default pool"
echo "fresh-install: ok ($((SECONDS - start)) s)"
