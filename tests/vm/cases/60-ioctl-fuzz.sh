#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
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
module_still_works 2 "the fuzzing"
