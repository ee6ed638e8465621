#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# run-all.sh: every azbuse test, on a fresh Debian 12 machine as root.
# Installs what is missing, builds, runs the unit tests (also under ASan and
# UBSan; the Rust binding's with cargo), builds and installs the tree in a
# fresh Debian 12 root as the README says (tests/fresh-install.sh), builds
# the module against the newest kernel headers Debian ships
# (tests/kmod-newest.sh), then boots the 6.12 kernel in QEMU and runs the VM
# suite against the real module, and the benchmark in its short mode
# (tests/bench.sh --short).
# Ends with one line: "N passed, N failed".
#
#   tests/run-all.sh            everything
#   tests/run-all.sh --unit     unit tests only (no VM)
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
unit_only=0
[ "${1:-}" = "--unit" ] && unit_only=1

step() { printf '\n== %s\n' "$*"; }

# run_logged LOG CMD...: runs CMD with its output on the terminal and in LOG;
# sets $rc to its exit status instead of stopping the script.
rc=0
run_logged() {
	local log=$1
	shift
	rc=0
	"$@" 2>&1 | tee "$log" || rc=$?
}

passed=0
failed=0
failed_steps=() # "TITLE|LOG" of each step with a failure, for the summary
count_ctest() { # LOG: adds ctest's "N tests failed out of M" to the totals
	local line total bad
	line=$(grep -E 'tests? failed out of' "$1" | tail -1)
	[ -n "$line" ] || { failed=$((failed + 1)); failed_steps+=("$2|$1"); return; }
	bad=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
	total=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
	passed=$((passed + total - bad))
	failed=$((failed + bad))
	[ "$bad" = 0 ] || failed_steps+=("$2|$1")
}

# run_vm_suite TITLE LOG [VM-OPTIONS...] [-- CASES...]: one VM boot running
# run-suite.sh; adds its summary line to the totals (a VM that failed counts
# as a failure even if every case passed).
run_vm_suite() {
	local title=$1 log=$2 line vm_failed=0
	local vm_opts=() cases=()
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		vm_opts+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift && cases=("$@")
	step "$title"
	if [ "${vm_opts[0]:-}" = --runner ]; then
		# a script that boots its own VM (run-6.1.sh) and takes the case names
		run_logged "$log" "${vm_opts[1]}" "${cases[@]}"
	else
		run_logged "$log" tests/vm/vm-run.sh --timeout 2400 "${vm_opts[@]}" -- \
			tests/vm/run-suite.sh "${cases[@]}"
	fi
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1) || line=
	if [ -n "$line" ]; then
		passed=$((passed + $(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line")))
		vm_failed=$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")
	fi
	if [ "$rc" -ne 0 ] && [ "$vm_failed" -eq 0 ]; then
		echo "run-all.sh: the VM run failed (exit $rc)" >&2
		vm_failed=1
	fi
	failed=$((failed + vm_failed))
	[ "$vm_failed" = 0 ] || failed_steps+=("$title|$log")
}

# run_check TITLE LOG CMD...: one check of its own (a script): passes on exit
# 0, is reported as skipped on 77 (something outside the project, such as
# Debian's archive, was not there), fails otherwise.
run_check() {
	local title=$1 log=$2
	shift 2
	step "$title"
	run_logged "$log" "$@"
	case $rc in
	0) passed=$((passed + 1)) ;;
	77) echo "run-all.sh: skipped: $title" ;;
	*)
		failed=$((failed + 1))
		failed_steps+=("$title|$log")
		;;
	esac
}

step "dependencies"
tests/vm/install-deps.sh --if-needed

step "build (userspace + azbuse.ko)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"

step "unit tests"
run_logged build/ctest.log ctest --test-dir build --output-on-failure
count_ctest build/ctest.log "unit tests"

step "unit tests under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Sanitize -DAZBUSE_BUILD_KMOD=OFF >/dev/null
cmake --build build-sanitize -j"$(nproc)"
run_logged build-sanitize/ctest.log ctest --test-dir build-sanitize --output-on-failure
count_ctest build-sanitize/ctest.log "unit tests under ASan + UBSan"

if [ "$unit_only" = 0 ]; then
	run_check "a fresh Debian 12 root: the README's install lines, an engine built against the package" \
		build/fresh-install.log tests/fresh-install.sh
	run_check "azbuse.ko against the newest kernel headers Debian ships (sid)" \
		build/kmod-newest.log tests/kmod-newest.sh
	run_check "azbuse.ko against the release candidate in Debian's experimental" \
		build/kmod-experimental.log tests/kmod-newest.sh --suite experimental
	run_vm_suite "VM suite (Debian 6.12 kernel in QEMU)" build/vm-suite.log
	run_vm_suite "NUMA (two emulated nodes)" build/vm-numa.log --numa -- 58-numa
	run_vm_suite "Debian 12's own 6.1 kernel: smoke test" build/vm-6.1.log \
		--runner tests/vm/run-6.1.sh -- 05-smoke 22-sharded
	run_vm_suite "thin volumes across hard power-offs (one VM boot per round)" \
		build/vm-thin-hard-stop.log --runner tests/vm/thin-hard-stop.sh
	# every benchmark device set up and measured briefly, so the benchmark
	# cannot rot: one result per device ("skipped" for ublk without ublksrv)
	run_vm_suite "benchmark, short (every device, two VM boots)" build/bench-short.log \
		--runner tests/bench.sh -- --short --no-build
fi

# What failed, at the end where a CI log's tail shows it: each failing step's
# FAIL lines and kernel-trouble or VM lines, and where its whole log is.
if [ "${#failed_steps[@]}" -gt 0 ]; then
	echo
	echo "== what failed"
	for f in "${failed_steps[@]}"; do
		echo "-- ${f%%|*} (log: ${f#*|})"
		grep -aE '^(FAIL|not ok)|[Ff]ailed|kernel trouble|WARNING:|BUG:|Oops|vm-run\.sh:|run-all\.sh:' "${f#*|}" |
			grep -avE '^[0-9]+ passed, ' | head -n 25 | sed 's/^/   /' || true
	done
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
