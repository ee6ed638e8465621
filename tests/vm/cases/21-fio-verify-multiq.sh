#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 21-fio-verify-multiq: two fio jobs (one per CPU, each on its own 192M range)
# write 4k to 1M blocks with crc32c verify on a two-queue mem device; every
# block reads back as written, and both queues carry requests.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio

dev=$(add_mem_device 1 512M --queues 2)
log "device $dev"

cpus=$(nproc)
pin=()
[ "$cpus" -lt 2 ] || pin=(--cpus_allowed=0-1 --cpus_allowed_policy=split)
run_fio --name=verify-multiq --filename="$dev" --direct=1 --ioengine=libaio --iodepth=16 \
	--rw=randwrite --bssplit=4k/30:16k/20:64k/20:256k/15:1m/15 \
	--numjobs=2 --size=192M --offset_increment=192M "${pin[@]}" \
	--verify=crc32c --do_verify=1 --verify_fatal=1 --group_reporting=0

mapfile -t reqs < <(queue_requests 1)
[ "${#reqs[@]}" -eq 2 ] || die "expected 2 queues, info shows ${#reqs[@]}"
log "requests per queue: ${reqs[*]}"
if [ "$cpus" -ge 2 ] && { [ "${reqs[0]}" -eq 0 ] || [ "${reqs[1]}" -eq 0 ]; }; then
	die "a queue served no requests: ${reqs[*]}"
fi
for q in 0 1; do
	[ "$(queue_counter 1 "$q" rejected)" = 0 ] || die "queue $q rejected completions"
done

remove_device 1
log "ok"
