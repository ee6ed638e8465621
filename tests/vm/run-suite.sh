#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# run-suite.sh: the VM integration suite. Runs INSIDE the guest, as root:
#
#   tests/vm/vm-run.sh --timeout 1500 -- tests/vm/run-suite.sh [CASE...]
#
# from the repository root. Inserts BUILD/kmod/azbuse.ko, runs every
# tests/vm/cases/NN-name.sh in order (or only the CASEs named: "10-ext4-mem",
# "10" or "ext4-mem"), each in its own bash with a time limit, with a clean
# dmesg that is checked afterwards (kernel trouble fails the case), and
# cleans up after each case (unmounts, removes devices, kills supervisors).
# Prints `PASS name (Ns)`, `FAIL name (Ns)` or `SKIP name` per case (exit
# status 77 skips), then "N passed, N failed[, N skipped]"; rmmod at the end
# counts as one more check. Exits 1 if anything failed.
#
# Environment: AZBUSE_BUILD_DIR (default ./build), AZBUSE_CASE_TIMEOUT
# (seconds per case, default 300). Cases get AZBUSE_CTL (azbusectl),
# AZBUSE_BUILD_DIR, AZBUSE_TOOLS (the helper programs) and AZBUSE_MODULE
# (default BUILD/kmod/azbuse.ko), run from the repository root and source
# tests/vm/cases/lib.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cases_dir=$here/cases

build=${AZBUSE_BUILD_DIR:-./build}
build=$(cd "$build" 2>/dev/null && pwd) || {
	echo "run-suite.sh: no build directory '${AZBUSE_BUILD_DIR:-./build}' (set AZBUSE_BUILD_DIR)" >&2
	exit 2
}
case_timeout=${AZBUSE_CASE_TIMEOUT:-300}
module=${AZBUSE_MODULE:-$build/kmod/azbuse.ko}
export AZBUSE_MODULE=$module
export AZBUSE_BUILD_DIR=$build
export AZBUSE_CTL=$build/tools/azbusectl
export AZBUSE_TOOLS=$build/tests

for f in "$module" "$AZBUSE_CTL"; do
	[ -e "$f" ] || { echo "run-suite.sh: $f is missing: build first" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "run-suite.sh: must run as root (in the VM)" >&2; exit 2; }
# the VM's devtmpfs has no /dev/fd, which bash's <(...) needs
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd

# --- which cases ---------------------------------------------------------------
mapfile -t all < <(find "$cases_dir" -maxdepth 1 -name '[0-9][0-9]-*.sh' -printf '%f\n' | LC_ALL=C sort)
selected=()
if [ $# -eq 0 ]; then
	selected=("${all[@]}")
else
	for want in "$@"; do
		want=${want##*/}
		want=${want%.sh}
		found=
		for c in "${all[@]}"; do
			name=${c%.sh}
			if [ "$name" = "$want" ] || [ "${name%%-*}" = "$want" ] || [ "${name#*-}" = "$want" ]; then
				selected+=("$c")
				found=1
			fi
		done
		[ -n "$found" ] || { echo "run-suite.sh: no case '$want' in $cases_dir" >&2; exit 2; }
	done
fi

# --- helpers -------------------------------------------------------------------
# shellcheck source-path=SCRIPTDIR source=cases/lib.sh
source "$cases_dir/lib.sh"
# shellcheck disable=SC2034 # the prefix of lib.sh's messages
case_name=run-suite

passed=0
failed=0
skipped=0
failures=()

report() { # STATUS NAME [SECONDS]
	echo "$1 $2${3:+ ($3s)}"
	case $1 in
	PASS) passed=$((passed + 1)) ;;
	FAIL) failed=$((failed + 1)); failures+=("$2") ;;
	SKIP) skipped=$((skipped + 1)) ;;
	esac
}

module_loaded() {
	[ -d /sys/module/azbuse ]
}

# --- run -----------------------------------------------------------------------
module_loaded && rmmod azbuse
insmod "$module"
suite_start=$SECONDS

for c in "${selected[@]}"; do
	name=${c%.sh}
	echo "=== $name"
	dmesg -C
	start=$SECONDS
	set +e
	(cd "$root" && exec timeout -k 10 "$case_timeout" bash "$cases_dir/$c")
	rc=$?
	set -e
	elapsed=$((SECONDS - start))
	[ "$rc" -ne 124 ] || echo "run-suite.sh: $name timed out after ${case_timeout}s" >&2

	# a case may leave the module unloaded (it must not, but recover)
	if ! module_loaded; then
		echo "run-suite.sh: $name left azbuse unloaded" >&2
		insmod "$module"
		case $rc in 0 | "$EXIT_SKIP") rc=1 ;; esac
	fi
	if [ "$rc" -ne 0 ] && [ "$rc" -ne "$EXIT_SKIP" ]; then
		cleanup_devices
	elif [ -n "$(device_ids)" ]; then
		echo "run-suite.sh: $name left devices behind: $(device_ids | tr '\n' ' ')" >&2
		cleanup_devices
		rc=1
	fi
	if ! "$here/check-dmesg.sh"; then
		echo "run-suite.sh: $name: kernel trouble in dmesg" >&2
		rc=1
	fi
	case $rc in
	0) report PASS "$name" "$elapsed" ;;
	"$EXIT_SKIP") report SKIP "$name" ;;
	*) report FAIL "$name" "$elapsed" ;;
	esac
done

echo "=== rmmod"
dmesg -C
cleanup_devices
if rmmod azbuse && "$here/check-dmesg.sh"; then
	report PASS rmmod
else
	report FAIL rmmod
fi

echo "total $((SECONDS - suite_start))s"
[ "$failed" -eq 0 ] || echo "failed: ${failures[*]}"
summary="$passed passed, $failed failed"
[ "$skipped" -eq 0 ] || summary+=", $skipped skipped"
echo "$summary"
[ "$failed" -eq 0 ]
