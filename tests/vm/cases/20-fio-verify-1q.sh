#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 20-fio-verify-1q: fio random writes of 4k to 1M blocks with crc32c verify
# on a one-queue mem device: every block reads back as written.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio

dev=$(add_mem_device 1 512M --queues 1)
log "device $dev"

run_fio --name=verify-1q --filename="$dev" --direct=1 --ioengine=libaio --iodepth=16 \
	--rw=randwrite --bssplit=4k/30:16k/20:64k/20:256k/15:1m/15 --size=384M \
	--verify=crc32c --do_verify=1 --verify_fatal=1

mapfile -t reqs < <(queue_requests 1)
[ "${#reqs[@]}" -eq 1 ] || die "expected 1 queue, info shows ${#reqs[@]}"
[ "${reqs[0]}" -gt 0 ] || die "queue 0 served no requests"
log "requests per queue: ${reqs[*]}"
[ "$(queue_counter 1 0 rejected)" = 0 ] || die "completions were rejected"

remove_device 1
log "ok"
