#!/usr/bin/env bash
# 60-ioctl-fuzz: a seeded fuzzer (tools/fuzz_ioctl.c) makes 100,000 random
# ioctls, mmaps and ring scribbles on /dev/azbusectl and a device's
# /dev/azbusec<N>: every outcome must be an errno the command can give, the
# fuzzer must not crash or hang, no device may be left behind and Slab and
# VmallocUsed must not grow; then a mem device still works. Replay a failure
# with AZBUSE_FUZZ_SEED=<seed printed> (and AZBUSE_FUZZ_CALLS).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

fuzz=$AZBUSE_TOOLS/azbuse-fuzz-ioctl
[ -x "$fuzz" ] || die "$fuzz is missing: build the azbuse-fuzz-ioctl target"
[ -z "$(device_ids)" ] || die "devices exist before the fuzzing: $(device_ids)"

seed=${AZBUSE_FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
calls=${AZBUSE_FUZZ_CALLS:-100000}
start=$SECONDS
"$fuzz" --seed "$seed" --calls "$calls" --timeout 100 ||
	die "azbuse-fuzz-ioctl failed (replay with AZBUSE_FUZZ_SEED=$seed AZBUSE_FUZZ_CALLS=$calls)"
log "ok   $calls calls with seed $seed in $((SECONDS - start)) s"
[ -z "$(device_ids)" ] || die "devices left after the fuzzing: $(device_ids)"
log "ok   no device left"

# the module still works
dev=$(add_mem_device 1 64M --queues 2)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c 8M /dev/urandom >"$work/in"
dd if="$work/in" of="$dev" bs=1M oflag=direct status=none || die "write to $dev failed"
dd if="$dev" of="$work/out" bs=1M count=8 iflag=direct status=none || die "read from $dev failed"
cmp "$work/in" "$work/out" || die "data read back from $dev differs"
for q in 0 1; do
	[ "$(queue_counter 1 "$q" rejected)" = 0 ] || die "queue $q of $dev rejected completions"
done
remove_device 1
[ -z "$(device_ids)" ] || die "devices left: $(device_ids)"
log "ok   a mem device still works after the fuzzing"
