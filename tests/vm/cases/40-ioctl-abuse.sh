#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 40-ioctl-abuse: malformed, misencoded and unprivileged ioctls, bad user
# pointers and mmaps, and a worker writing garbage into its rings all get the
# documented errors (garbage completions are counted as rejected), see
# tools/ioctl_abuse.c; azbusectl without CAP_SYS_ADMIN is refused; and the
# module still serves a mem device normally afterwards.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

abuse=$AZBUSE_TOOLS/azbuse-ioctl-abuse
[ -x "$abuse" ] || die "$abuse is missing: build the azbuse-ioctl-abuse target"

"$abuse" 900 || die "azbuse-ioctl-abuse reported failures"

dev=$(add_mem_device 1 64M --queues 2)
log "device $dev"

# uid 0 without capabilities: azbusectl cannot open the devices
nocaps=(setpriv --inh-caps=-all --bounding-set=-all --)
if out=$("${nocaps[@]}" "$AZBUSE_CTL" list 2>&1); then
	die "azbusectl list worked without CAP_SYS_ADMIN: $out"
fi
grep -q 'Operation not permitted' <<<"$out" || die "azbusectl list without caps: $out"
if out=$("${nocaps[@]}" dd if=/dev/azbusec1 of=/dev/null count=1 2>&1); then
	die "opening /dev/azbusec1 worked without CAP_SYS_ADMIN"
fi
grep -q 'Operation not permitted' <<<"$out" || die "open /dev/azbusec1 without caps: $out"
log "ok   no capabilities: azbusectl and /dev/azbusec1 are refused (EPERM)"

remove_device 1

# the module still works
module_still_works 2 "the abuse"
