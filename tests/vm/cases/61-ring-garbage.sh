#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 61-ring-garbage: a malicious worker (tools/ring_garbage.c) serves a device
# under verified O_DIRECT I/O while writing garbage into its rings (bad
# cq_tails, random, stale, duplicate and foreign completions, scribbled
# header fields) and never completing two requests: every bad completion is
# rejected and counted exactly, good ones deliver the right data and errors,
# and removal fails the held requests with EIO in bounded time. Then a mem
# device still works. Replay with AZBUSE_GARBAGE_SEED=<seed printed>.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

garbage=$AZBUSE_TOOLS/azbuse-ring-garbage
[ -x "$garbage" ] || die "$garbage is missing: build the azbuse-ring-garbage target"

seed=${AZBUSE_GARBAGE_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
seconds=${AZBUSE_GARBAGE_SECONDS:-15}
start=$SECONDS
"$garbage" --seed "$seed" --seconds "$seconds" --dev-id 910 ||
	die "azbuse-ring-garbage failed (replay with AZBUSE_GARBAGE_SEED=$seed)"
log "ok   malicious worker with seed $seed, $((SECONDS - start)) s"
if [ -e /dev/azbuse910 ] || [ -e /dev/azbusec910 ]; then die "device 910 still has nodes"; fi
[ -z "$(device_ids)" ] || die "devices left: $(device_ids)"

# the module still works
module_still_works 1 "the malicious worker"
