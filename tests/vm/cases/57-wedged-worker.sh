#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 57-wedged-worker: a worker that is alive but gets nowhere (here: stopped
# with SIGSTOP) while requests wait: once a request has waited --io-timeout
# with nothing completed, the supervisor kills the worker, starts another,
# and the waiting requests complete, with their data.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

dev=$(add_mem_device 1 64M --queues 1 --io-timeout 1000)
dd if=/dev/urandom of=/tmp/wedge.pat bs=64k count=16 status=none
dd if=/tmp/wedge.pat of="$dev" bs=64k oflag=direct status=none
old=$(queue_counter 1 0 worker_pid)
kill -STOP "$old"
log "worker $old stopped"

start=$SECONDS
dd if="$dev" of=/tmp/wedge.back bs=64k count=16 iflag=direct status=none ||
	die "the read failed instead of waiting for a new worker"
took=$((SECONDS - start))
cmp /tmp/wedge.pat /tmp/wedge.back || die "the data read back differs"
new=$(queue_counter 1 0 worker_pid)
[ "$new" != "$old" ] && [ "$new" -gt 1 ] || die "the worker was not replaced ($old -> $new)"
[ "$took" -le 20 ] || die "the read waited ${took} s"
msg=$(grep -h "completed nothing" /run/azbuse/supervisor-*.log | tail -1) || msg="(not in the log)"
log "supervisor said: $msg"
log "ok   wedged worker $old replaced by $new; the waiting read completed after ${took} s"
remove_device 1
log "ok"
