#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 71-example-engine: the shipped example engine (engine/examples/), built as a
# user builds it, serves one RAM disk from two queues: fio verify with two
# jobs passes across a SIGKILL of a worker (its replacement finds the data,
# which lives in memory the supervisor mapped before forking), and data
# written before the kill reads back after it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio

example=$AZBUSE_BUILD_DIR/engine/azbuse-example-engine
[ -x "$example" ] || die "no $example"
dev=/dev/azbuse1
"$example" 1 --size 256M --queues 2 >/dev/null || die "the example engine did not start"
[ -b "$dev" ] || die "$dev missing"
[ "$(azbusectl info 1 --json | grep -o '"queues": [0-9]*' | grep -o '[0-9]*$')" = 2 ] ||
	die "the example device does not have 2 queues"

head -c 32M /dev/urandom >/tmp/example-data
ms=$(verify_across_worker_kill 1 "$dev" /tmp/example-fio.log /tmp/example-data 200)
log "two queues, one disk: fio verify and old data intact across a worker kill (new worker in $ms ms)"
remove_device 1
log "ok"
