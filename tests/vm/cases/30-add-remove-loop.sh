#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 30-add-remove-loop: 50 rounds of add / 4k direct read / remove, alternating
# an explicit id and "any"; each time the block and char nodes appear and
# vanish and `azbusectl list` ends up empty. Then the module unloads and
# loads again (left loaded for the next cases).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

# milliseconds since the epoch
now_ms() {
	local t=${EPOCHREALTIME/./}
	echo $((t / 1000))
}

rounds=50
add_ms=0
remove_ms=0
for ((i = 1; i <= rounds; i++)); do
	t0=$(now_ms)
	if ((i % 2)); then
		want=$((i % 8 + 1))
		dev=$(add_mem_device "$want" 16M --queues 1)
		[ "$dev" = "/dev/azbuse$want" ] || die "round $i: add $want made $dev"
	else
		dev=$(add_mem_device any 16M --queues 1)
		# nothing else exists, so "any" takes the lowest id
		[ "$dev" = /dev/azbuse0 ] || die "round $i: add any made $dev, not /dev/azbuse0"
	fi
	add_ms=$((add_ms + $(now_ms) - t0))
	id=${dev#/dev/azbuse}
	[ -c "/dev/azbusec$id" ] || die "round $i: /dev/azbusec$id missing"
	dd if="$dev" of=/dev/null bs=4k count=1 iflag=direct status=none ||
		die "round $i: 4k direct read from $dev failed"
	[ "$(device_ids)" = "$id" ] || die "round $i: list shows '$(device_ids)', want $id"
	t2=$(now_ms)
	remove_device "$id"
	remove_ms=$((remove_ms + $(now_ms) - t2))
	[ -z "$(device_ids)" ] || die "round $i: list not empty after remove: $(device_ids)"
	((i % 10)) || log "$i rounds done"
done
log "average add $((add_ms / rounds)) ms, remove $((remove_ms / rounds)) ms"

rmmod azbuse || die "rmmod azbuse failed after $rounds add/remove rounds"
[ ! -e /dev/azbusectl ] || die "/dev/azbusectl still exists after rmmod"
insmod "$AZBUSE_MODULE" || die "insmod $AZBUSE_MODULE failed"
wait_for 5 test -c /dev/azbusectl || die "/dev/azbusectl missing after insmod"
azbusectl version >/dev/null || die "azbusectl version failed after reload"
log "ok"
