#!/usr/bin/env bash
# check-dmesg.sh: fails if a kernel log shows kernel trouble (oops, BUG,
# WARNING, lockdep, RCU, hung task, KASAN/UBSAN, list corruption, lockups...).
#
#   tests/vm/check-dmesg.sh [FILE]
#
# Reads FILE, or `dmesg` when no FILE is given (in the guest, e.g. between
# test cases; follow with `dmesg -C` to start the next case clean). Prints the
# offending lines, with a little context, to stderr and exits 1 if any;
# exits 0 if the log is clean.
set -euo pipefail

patterns=(
	'Oops'
	'BUG:'
	'WARNING:'
	'general protection fault'
	'possible circular locking'
	'possible recursive locking'
	'inconsistent lock state'
	'suspicious RCU usage'
	'INFO: task .* blocked for more than'
	'Call Trace:'
	'kernel BUG'
	'KASAN'
	'UBSAN'
	'refcount_t:'
	'list_add corruption'
	'list_del corruption'
	'soft lockup'
	'hard LOCKUP'
	'rcu_sched self-detected'
	'rcu: INFO'
)

if [ $# -gt 1 ]; then
	echo "usage: check-dmesg.sh [FILE]" >&2
	exit 2
fi
if [ $# -eq 1 ]; then
	[ -r "$1" ] || { echo "check-dmesg.sh: cannot read $1" >&2; exit 2; }
	log=$(cat -- "$1")
else
	log=$(dmesg)
fi

args=()
for p in "${patterns[@]}"; do
	args+=(-e "$p")
done
if hits=$(grep -n "${args[@]}" <<<"$log"); then
	echo "check-dmesg.sh: kernel trouble in ${1:-dmesg}:" >&2
	printf '  %s\n' "${hits//$'\n'/$'\n'  }" >&2
	echo "check-dmesg.sh: context of the first hit:" >&2
	first=${hits%%:*}
	sed -n "$((first > 5 ? first - 5 : 1)),$((first + 30))p" <<<"$log" | sed 's/^/  | /' >&2
	exit 1
fi
exit 0
