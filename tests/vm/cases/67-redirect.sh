#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 67-redirect: a sharded device routed by queue (AZBUSE_F_ROUTE_QUEUE) gives
# each read and write to the ring of the queue it was submitted on, and a
# worker hands a request to another ring with AZBUSE_CQE_F_REDIRECT: a raw
# worker on ring 0 redirects everything to ring 1, blocks written and read
# on CPU 0 come back intact, and redirects to the worker's own ring, to a
# ring that does not exist, back and forth past AZBUSE_MAX_REDIRECTS or on an
# unsharded device fail their request with EIO (tools/redirect.c). Then the
# mem engine sharded in 2 with --route queue passes fio verify.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio

tool=$AZBUSE_TOOLS/azbuse-redirect
[ -x "$tool" ] || die "$tool is missing: build the azbuse-redirect target"
rc=0
"$tool" --dev-id 921 || rc=$?
[ "$rc" = 77 ] && skip "fewer than 2 CPUs"
[ "$rc" = 0 ] || die "azbuse-redirect failed"
[ -z "$(device_ids)" ] || die "devices left: $(device_ids)"

dev=$(add_mem_device 1 128M --shards 2 --shard-chunk 64k --route queue)
features=$(azbusectl info 1 --json | grep -o '"features": "[^"]*"')
[[ $features == *route-queue* ]] || die "no route-queue in $features"
run_fio --name=route-queue --filename="$dev" --direct=1 --ioengine=libaio --iodepth=16 \
	--rw=randwrite --bssplit=4k/50:64k/50 --numjobs=2 --size=48M --offset_increment=64M \
	--verify=crc32c --do_verify=1 --verify_fatal=1 --group_reporting
[ "$(queue_counter 1 0 rejected)" = 0 ] && [ "$(queue_counter 1 1 rejected)" = 0 ] ||
	die "completions were rejected"
remove_device 1
if azbusectl add 1 --engine=mem --size 16M --route queue 2>/tmp/route.err; then
	remove_device 1
	die "--route queue without --shards was accepted"
fi
grep -q "needs a sharded device" /tmp/route.err || die "unclear refusal: $(cat /tmp/route.err)"
log "ok"
