#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 05-smoke: a quick end-to-end check, meant to pass on every kernel azbuse
# builds for (Debian 12's 6.1 and bookworm-backports' 6.12): a 128M mem
# device with 2 queues shows the queue limits and features it was added with
# (what kmod/azbuse_compat.h sets up differently per kernel); ext4 keeps
# 16 MiB of files intact across sync, umount, fsck -f -n and a remount with
# a cold page cache; fio crc32c-verifies 32 MiB of mixed-size direct writes;
# the device goes away on remove. Takes a few seconds.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd mkfs.ext4 fsck.ext4 fio

work=$(mktemp -d)
mnt=$work/mnt
mkdir "$mnt"
trap 'mountpoint -q "$mnt" && umount "$mnt"; rm -rf "$work"' EXIT

log "kernel $(uname -r)"
t0=$SECONDS
dev=$(add_mem_device 1 128M --queues 2)
log "device $dev"

# --- the block layer sees what was asked for ---------------------------------
sys=/sys/block/${dev#/dev/}
q=$sys/queue
# expect NAME FILE VALUE: the sysfs attribute FILE must read VALUE
expect() {
	local got
	got=$(cat "$2") || die "cannot read $2"
	[ "$got" = "$3" ] || die "$1: $2 reads '$got', expected '$3'"
}
features=$(azbusectl info 1 --json | grep -o '"features": "[^"]*"' | cut -d'"' -f4)
has_feature() {
	[[ " $features " == *" $1 "* ]]
}
log "features: $features ($((SECONDS - t0))s so far)"
expect size "$sys/size" $((128 * 1024 * 1024 / 512))
nr_hw=$(find "$sys/mq" -mindepth 1 -maxdepth 1 | wc -l)
[ "$nr_hw" -eq 2 ] || die "hardware queues: $sys/mq has $nr_hw, expected 2"
expect "logical block size" "$q/logical_block_size" 512
expect "physical block size" "$q/physical_block_size" 512
expect "largest request (--max-io default 256k)" "$q/max_hw_sectors_kb" 256
expect "queue depth" "$q/nr_requests" 128
if has_feature rotational; then
	expect rotational "$q/rotational" 1
else
	expect rotational "$q/rotational" 0
fi
if has_feature write-cache; then
	expect "write cache" "$q/write_cache" "write back"
else
	expect "write cache" "$q/write_cache" "write through"
fi
if has_feature fua; then
	expect fua "$q/fua" 1
else
	expect fua "$q/fua" 0
fi
if has_feature discard; then
	[ "$(cat "$q/discard_max_hw_bytes")" -gt 0 ] || die "discard: discard_max_hw_bytes is 0"
	expect "discard granularity" "$q/discard_granularity" 512
else
	expect discard "$q/discard_max_hw_bytes" 0
fi
if has_feature write-zeroes; then
	[ "$(cat "$q/write_zeroes_max_bytes")" -gt 0 ] || die "write-zeroes: write_zeroes_max_bytes is 0"
else
	expect write-zeroes "$q/write_zeroes_max_bytes" 0
fi

# --- ext4: files survive umount, fsck and a cold remount ----------------------
# mkfs.ext4 discards the whole device first when it can
mkfs.ext4 -q -F "$dev" || die "mkfs.ext4 $dev failed"
mount "$dev" "$mnt" || die "mount $dev failed"
mkdir "$mnt/data"
write_random_files "$mnt/data" 16 16
sha256_record "$mnt/data" "$work/sums"
[ "$(wc -l <"$work/sums")" -eq 16 ] || die "expected 16 checksums"
sync
umount "$mnt"
if ! out=$(fsck.ext4 -f -n "$dev" 2>&1); then
	echo "$out" >&2
	die "fsck.ext4 -f -n $dev found problems"
fi
log "fsck: ${out##*$'\n'}"
# drop the page cache so that the checksums are computed from the device
echo 3 >/proc/sys/vm/drop_caches
mount "$dev" "$mnt" || die "remount $dev failed"
sha256_verify "$mnt/data" "$work/sums" || die "checksums differ after remount"
umount "$mnt"
log "ext4: 16 files, 16 MiB, checksums match ($((SECONDS - t0))s so far)"

# --- fio: every block reads back as written -----------------------------------
run_fio --name=smoke --filename="$dev" --direct=1 --ioengine=libaio --iodepth=16 \
	--rw=randwrite --bssplit=4k/40:64k/30:256k/30 --size=32M \
	--verify=crc32c --do_verify=1 --verify_fatal=1
[ "$(queue_counter 1 0 rejected)" = 0 ] || die "queue 0: completions were rejected"
[ "$(queue_counter 1 1 rejected)" = 0 ] || die "queue 1: completions were rejected"
log "fio: ok ($((SECONDS - t0))s so far)"

remove_device 1
[ -z "$(device_ids)" ] || die "devices left after remove: $(device_ids)"

# --- the module's refusals are explained: which field, which limit -----------------
cpus=$(nproc)
if azbusectl add 7 --engine=null --size 1G --queues $((cpus + 1)) >/dev/null 2>"$work/refused"; then
	die "a device with more queues than CPUs (not sharded) was added"
fi
grep -q "queues: the module takes at most one per CPU" "$work/refused" ||
	die "the refusal is not explained: $(cat "$work/refused")"
if azbusectl add 7 --engine=null --size 1G --shards 4 --depth 4096 >/dev/null 2>"$work/refused"; then
	die "4 shards x depth 4096 was added"
fi
grep -q "tags: a sharded device has at most 8192" "$work/refused" ||
	die "the refusal is not explained: $(cat "$work/refused")"
[ -z "$(device_ids)" ] || die "a refused add left a device: $(device_ids)"
log "refusals explained: $(sed 's/^azbuse: //' "$work/refused")"
log "ok"
