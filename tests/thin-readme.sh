#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# thin-readme.sh - the README's thin commands exactly as written, in that
# order, against the default pool location (/var/lib/azbuse/pool) on a fresh
# machine: run in a private mount namespace whose /var/lib and /run are empty
# tmpfs mounts, so nothing of the host's is seen or touched. The device steps
# (create --activate, activate, deactivate) need the kernel module: VM case
# 87-thin-activate-boot runs them.
#   thin-readme.sh PATH/TO/azbuse-thin
set -euo pipefail

THIN=$(realpath "${1:?usage: thin-readme.sh PATH/TO/azbuse-thin}")

if [ "${AZBUSE_SCRATCH_ROOT:-}" != 1 ]; then
	if ! unshare -m true 2>/dev/null; then
		echo "thin-readme.sh: SKIP: cannot make a mount namespace (needs root)" >&2
		exit 77
	fi
	exec unshare -m env AZBUSE_SCRATCH_ROOT=1 "$0" "$THIN"
fi

# From here on: a private mount namespace. Nothing below reaches the host.
mount --make-rprivate /
mount -t tmpfs scratch-var-lib /var/lib
mount -t tmpfs scratch-run /run
unset AZBUSE_THIN_POOL AZBUSE_RUN_DIR

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

run() {
	echo "+ azbuse-thin $*"
	"$THIN" "$@" || fail "azbuse-thin $* exited $?"
}

[ ! -e /var/lib/azbuse ] || fail "the scratch /var/lib is not empty"
run init
[ -d /var/lib/azbuse/pool ] || fail "init made no /var/lib/azbuse/pool"
mode=$(stat -c %a /var/lib/azbuse/pool)
[ "$mode" = 700 ] || fail "the pool directory has mode $mode, expected 700 (it holds every volume's data)"
mode=$(stat -c %a /var/lib/azbuse)
[ "$mode" = 755 ] || fail "/var/lib/azbuse has mode $mode, expected 755"
run create vol1 --size 1T
run snapshot vol1 snap1
run clone snap1 vol2
out=$("$THIN" list) || fail "azbuse-thin list failed"
echo "$out"
for name in vol1 snap1 vol2; do
	grep -qw "$name" <<<"$out" || fail "list does not show $name"
done
run info vol1
run usage
run check
echo "thin-readme: ok"
