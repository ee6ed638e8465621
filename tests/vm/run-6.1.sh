#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# run-6.1.sh: builds azbuse.ko for Debian 12's own 6.1 kernel and runs VM test
# cases on that kernel with that module, leaving BUILD/kmod (the 6.12 build) alone.
#
#   tests/vm/run-6.1.sh [--kver KVER] [--timeout SECS] [--out DIR]
#                       [--cpus N] [--mem SIZE] [--numa] [--build-only] [CASE...]
#
# from the repository root, after the userspace build (./build, or
# AZBUSE_BUILD_DIR). CASEs are run-suite.sh's (default: 05-smoke; "all" runs
# every case). --timeout, --out, --cpus, --mem and --numa go to vm-run.sh
# (default timeout here: 900 s). Steps:
#   1. copies kmod/ and include/ to BUILD/kmod-6.1/ and builds the module
#      there against KVER's headers, unpacked by tests/vm/headers.sh (KVER
#      defaults to the newest 6.1.0-*-amd64 there: install-deps.sh prepares it);
#   2. boots KVER with tests/vm/vm-run.sh (tests/vm/kernel.sh fetches the
#      matching linux-image) and, in the guest, runs run-suite.sh with the
#      6.1 module (AZBUSE_MODULE) and copies of BUILD's programs
#      (BUILD/kmod-6.1/userspace), so that
#      a rebuild on the host during the run does not pull them from under it.
# Exit status: run-suite.sh's, or vm-run.sh's (123 kernel trouble, 124
# timeout, 125 VM failure), or 2 if the module does not build.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

die() {
	echo "run-6.1.sh: $*" >&2
	exit 2
}

# --- in the guest ---------------------------------------------------------------
if [ "${1:-}" = --in-guest ]; then
	shift
	module=${AZBUSE_MODULE_61:?}
	[ -f "$module" ] || die "no $module in the guest"
	vermagic=$(modinfo -F vermagic "$module")
	[ "${vermagic%% *}" = "$(uname -r)" ] ||
		die "$module is built for ${vermagic%% *}, the guest runs $(uname -r)"
	export AZBUSE_MODULE=$module
	exec "$here/run-suite.sh" "$@"
fi

# --- on the host ------------------------------------------------------------------
usage() {
	sed -n '/^#   tests/,/^#  *\[--cpus/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
}

kver=
timeout_s=900
out=
build_only=0
vm_opts=()
while [ $# -gt 0 ]; do
	case $1 in
	--kver) kver=${2:?}; shift 2 ;;
	--timeout) timeout_s=${2:?}; shift 2 ;;
	--out) out=${2:?}; shift 2 ;;
	--cpus | --mem) vm_opts+=("$1" "${2:?}"); shift 2 ;;
	--numa) vm_opts+=(--numa); shift ;;
	--build-only) build_only=1; shift ;;
	-h | --help) usage ;;
	--) shift; break ;;
	-*) echo "run-6.1.sh: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
done
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(05-smoke)
[ "${cases[*]}" != all ] || cases=()

if [ -n "$kver" ]; then
	kdir=$("$here/headers.sh" "$kver") || die "no headers for $kver"
else
	kdir=$("$here/headers.sh" --find 6.1) ||
		die "no 6.1 headers: run tests/vm/install-deps.sh (or tests/vm/headers.sh --newest 6.1)"
	kver=${kdir##*/linux-headers-}
fi

build=${AZBUSE_BUILD_DIR:-$root/build}
build=$(cd "$build" 2>/dev/null && pwd) || die "no build directory '$build': build userspace first"
export AZBUSE_BUILD_DIR=$build

# A fresh copy each time: no stale objects, and BUILD/kmod is untouched.
mdir=$build/kmod-6.1
rm -rf "$mdir"
mkdir -p "$mdir/kmod" "$mdir/include"
cp "$root"/kmod/*.c "$root"/kmod/*.h "$root"/kmod/Kbuild "$mdir/kmod/"
cp -r "$root/include/." "$mdir/include/"
echo "run-6.1.sh: building azbuse.ko for $kver in $mdir/kmod" >&2
make -s -C "$kdir" M="$mdir/kmod" modules >&2 || die "the module does not build against $kdir"
module=$mdir/kmod/azbuse.ko
[ -f "$module" ] || die "the build made no $module"
echo "run-6.1.sh: built $module ($(modinfo -F vermagic "$module"))" >&2
[ "$build_only" = 0 ] || exit 0

# The guest runs the host's files live over 9p: a rebuild of azbusectl during
# the run makes it crash in the guest. Run copies of the userspace programs.
snap=$mdir/userspace
mkdir -p "$snap/tools" "$snap/tests"
[ -x "$build/tools/azbusectl" ] || die "no $build/tools/azbusectl: build userspace first"
cp "$build/tools/azbusectl" "$snap/tools/"
# azbuse-thin (the front and the full tool it runs), for the thin cases
if [ -x "$build/tools/azbuse-thin" ]; then
	mkdir -p "$snap/tools/libexec"
	cp "$build/tools/azbuse-thin" "$snap/tools/"
	[ ! -x "$build/tools/libexec/azbuse-thin" ] || cp "$build/tools/libexec/azbuse-thin" "$snap/tools/libexec/"
fi
find "$build/tests" -maxdepth 1 -type f -perm -u+x -exec cp {} "$snap/tests/" \; 2>/dev/null || true
export AZBUSE_BUILD_DIR=$snap

# vm-run.sh passes AZBUSE_* to the guest.
export AZBUSE_MODULE_61=$module
cd "$root"
[ -z "$out" ] || vm_opts+=(--out "$out")
exec "$here/vm-run.sh" --kver "$kver" --timeout "$timeout_s" "${vm_opts[@]}" -- \
	"$here/run-6.1.sh" --in-guest "${cases[@]}"
