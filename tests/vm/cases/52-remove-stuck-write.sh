#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 52-remove-stuck-write: REMOVE gives up on a write its worker never
# completes although the worker completes everything else: del_gendisk
# writes the device's dirty page cache back first, with the disk still
# taking I/O, and waits for it; the module fails the workers' I/O once a
# request is older than remove_stuck_ms (3 s here), and REMOVE returns
# while a reader still reads (tools/stuck_write.c).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

tool=$AZBUSE_TOOLS/azbuse-stuck-write
param=/sys/module/azbuse/parameters/remove_stuck_ms
[ -x "$tool" ] || die "$tool is missing: build the azbuse-stuck-write target"
[ -w "$param" ] || die "the module has no remove_stuck_ms parameter"
old=$(cat "$param")
echo 3000 >"$param"
"$tool" --dev-id 922 --stuck-ms 3000 >/tmp/stuck-write.log 2>&1 &
pid=$!
# a module that never gives up hangs in REMOVE for as long as the reader
# reads: stop the reader (the tool's children) so that the case ends
if ! wait_for 40 sh -c "! kill -0 $pid 2>/dev/null"; then
	pkill -KILL -P "$pid" || true
	if ! wait_for 30 sh -c "! kill -0 $pid 2>/dev/null"; then
		cat /tmp/stuck-write.log >&2
		cat "/proc/$pid/stack" >&2 || true
		die "REMOVE still hangs with the reader stopped"
	fi
	echo "(the reader was stopped after 40 s)" >>/tmp/stuck-write.log
fi
rc=0
wait "$pid" || rc=$?
echo "$old" >"$param"
sed "s/^/[$case_name] /" /tmp/stuck-write.log
[ "$rc" = 0 ] || die "azbuse-stuck-write failed"
[ -z "$(device_ids)" ] || die "devices left: $(device_ids)"
log "ok"
