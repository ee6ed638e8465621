#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# check-dmesg.sh: fails if a kernel log shows kernel trouble (oops, BUG,
# WARNING, lockdep, RCU, hung task, KASAN/UBSAN, list corruption, lockups...).
#
#   tests/vm/check-dmesg.sh [FILE]
#
# Reads FILE, or `dmesg` when no FILE is given (in the guest, e.g. between
# test cases; follow with `dmesg -C` to start the next case clean). Prints the
# offending lines, with a little context, to stderr and exits 1 if any;
# exits 0 if the log is clean.
#
# One report is not counted: the WARNING in the x86 #DB handler
# (traps.c, exc_debug_kernel) for a single-step trap in kernel mode. The
# kernel never sets EFLAGS.TF on itself; the handler's own comment says the
# known way to get there is QEMU leaking #DB into the guest. Seen under TCG
# in a plain `mount` of the VM's virtio disk, with an impossible EFLAGS
# (0x823cdb02: reserved bits set) in the trapped frame: the emulator's
# fault, not the kernel's. That report, from its "cut here" line to its
# "end trace" line, is printed as a note and left out of the check.
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

# drop_emulator_db: the log without QEMU's leaked-#DB reports (see above)
drop_emulator_db() {
	awk '
	function flush() { for (i = 1; i <= n; i++) print held[i]; n = 0 }
	/------------\[ cut here \]------------/ { flush(); held[++n] = $0; next }
	n == 1 && /WARNING: .* at arch\/x86\/kernel\/traps\.c:[0-9]+ (noist_)?exc_debug(_kernel)?\+/ {
		skip = 1; n = 0; print "EMULATOR-DB " $0 > "/dev/stderr"; next
	}
	skip { if (/---\[ end trace/) skip = 0; next }
	{ if (n) { held[++n] = $0; if (n > 2) flush() } else print }
	END { flush() }'
}
if grep -q 'traps\.c:[0-9]* \(noist_\)\{0,1\}exc_debug' <<<"$log"; then
	notes=$(mktemp)
	log=$(drop_emulator_db <<<"$log" 2>"$notes") || true
	sed 's/^EMULATOR-DB /check-dmesg.sh: note: not counted (QEMU leaked a single-step #DB into the guest kernel): /' \
		"$notes" >&2
	rm -f "$notes"
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
