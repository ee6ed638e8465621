#!/usr/bin/env bash
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
dev=$(add_mem_device 1 64M --queues 1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c 8M /dev/urandom >"$work/in"
dd if="$work/in" of="$dev" bs=1M oflag=direct status=none || die "write to $dev failed"
dd if="$dev" of="$work/out" bs=1M count=8 iflag=direct status=none || die "read from $dev failed"
cmp "$work/in" "$work/out" || die "data read back from $dev differs"
[ "$(queue_counter 1 0 rejected)" = 0 ] || die "queue 0 of $dev rejected completions"
remove_device 1
[ -z "$(device_ids)" ] || die "devices left: $(device_ids)"
log "ok   a mem device still works after the malicious worker"
