#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 66-sync-end: completion in the submitter's context. With --poll-us, a
# request that is alone on its ring while the worker polls is ended by its
# submitter in queue_rq (the sync_ends counter). Depth-1 reads and writes of
# mixed sizes verify, on the mem engine (user copy) and the file engine
# (kernel copy through the data slots); then workers are SIGKILLed during
# depth-1 verify, where submitters are waiting, and fio still passes.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio

fio_depth1() { # DEV SIZE NAME [FIO ARGS...]: depth-1 writes, then verify
	local dev=$1 size=$2 name=$3
	shift 3
	run_fio --name="$name" --filename="$dev" --direct=1 --ioengine=psync --rw=randwrite \
		--bssplit=4k/60:16k/20:128k/20 --size="$size" --verify=crc32c --do_verify=1 \
		--verify_fatal=1 "$@"
}

check_sync_ends() { # ID WHAT
	local ends
	ends=$(queue_counter "$1" 0 sync_ends)
	[ -n "$ends" ] || die "azbusectl info shows no sync_ends counter"
	[ "$ends" -gt 0 ] || die "$2: no request was ended by its submitter (sync_ends 0)"
	[ "$(queue_counter "$1" 0 rejected)" = 0 ] || die "$2: completions were rejected"
	log "ok   $2: $ends of $(queue_counter "$1" 0 requests) requests ended by their submitter"
}

# --- mem: user copy ---------------------------------------------------------------
dev=$(add_mem_device 1 64M --queues 1 --poll-us 500)
fio_depth1 "$dev" 24M sync-mem
check_sync_ends 1 "mem, depth 1"
remove_device 1

# --- file: the data slots ---------------------------------------------------------
img=$(mktemp /tmp/azbuse-sync-XXXXXX.img)
truncate -s 64M "$img"
dev=$(azbusectl add 1 --engine=file --path "$img" --size 64M --queues 1 --poll-us 500)
[ -b "$dev" ] || die "no file device"
fio_depth1 "$dev" 16M sync-file
check_sync_ends 1 "file, depth 1"
remove_device 1
rm -f "$img"

# --- worker kills while submitters wait -------------------------------------------
dev=$(add_mem_device 1 64M --queues 1 --poll-us 500)
fio --name=sync-crash --filename="$dev" --direct=1 --ioengine=psync --rw=randwrite \
	--bssplit=4k/60:64k/40 --size=32M --verify=crc32c --do_verify=1 --verify_fatal=1 \
	--loops=4 >/tmp/fio-sync-crash.log 2>&1 &
fio_pid=$!
killed=0
for round in 1 2 3; do
	sleep 2
	kill -0 "$fio_pid" 2>/dev/null || break
	replace_worker 1 0 >/dev/null
	killed=$((killed + 1))
done
wait_fio "$fio_pid" /tmp/fio-sync-crash.log "across worker kills"
[ "$killed" -ge 1 ] || die "fio ended before a worker could be killed"
check_sync_ends 1 "mem, depth 1, $killed worker kill(s)"
remove_device 1
log "ok"
