#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 62-repost-write-data: a WRITE re-posted after its worker died carries the
# writer's data. A raw worker (tools/repost_write.c) takes a WRITE,
# scribbles over its data slot and exits without completing it; the next
# worker must find the writer's data in the slot, and what reaches the
# device (and reads back) is what the writer wrote.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

tool=$AZBUSE_TOOLS/azbuse-repost-write
[ -x "$tool" ] || die "$tool is missing: build the azbuse-repost-write target"
"$tool" --dev-id 920 || die "azbuse-repost-write failed"
[ -z "$(device_ids)" ] || die "devices left: $(device_ids)"
log "ok"
