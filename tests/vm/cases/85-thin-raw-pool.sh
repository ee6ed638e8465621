#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 85-thin-raw-pool: a thin pool whose data lives on a raw block device
# (azbuse-thin init --data /dev/X, like dm-thin's data device). init refuses
# a relative path, a mounted device, something that is not a block device
# and a device that already holds a pool's data. The module serves reads
# and overwrites by remapping each bio onto the device (counted as DIRECT).
# A new chunk never shows the device's old bytes (the device is filled
# with 0xff before init, and nothing zeroes it: a chunk's mapping says which
# 4 KiB sub-blocks hold data): first partial writes (of 512 bytes too),
# writes after a discard, sub-blocks gained later and copies of partly
# written chunks read zeros around their data; a write into a chunk a
# snapshot shares is layered over it, reads right before and after the quiet
# device completes it, and the old chunk is freed with the snapshot. fio
# verify passes across live snapshots; a chunk
# freed by a discard is never handed out while a remapped write through its
# old mapping is in flight; a worker SIGKILL under fio verify loses
# nothing; the data survives the device's removal and a new daemon; a pool
# whose link leads to a device without its header is refused with a clear
# error; azbuse-thin check finds nothing wrong.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd fio
require_cmd python3
require_cmd blkdiscard

data=/dev/ram1
MIB=$((1024 * 1024))
thin_pool_setup thin-raw 512 2
# what was on the device before: never to be seen through a volume
tr '\0' '\377' </dev/zero | dd of="$data" bs=1M count=512 iflag=fullblock status=none 2>/dev/null || true

# expect_fail PATTERN CMD...: CMD fails and says PATTERN
expect_fail() {
	local pattern=$1 out
	shift
	if out=$("$@" 2>&1); then
		die "'$*' succeeded"
	fi
	grep -q "$pattern" <<<"$out" || die "'$*' said: $out (wanted: $pattern)"
}

# --- init: what it refuses, and the header it writes -------------------------------
expect_fail "absolute path" athin init --data ram1
expect_fail "mounted or in use" "$thin" --pool "$back/p2" init --data /dev/ram0
expect_fail "not a block device" "$thin" --pool "$back/p3" init --data /dev/null
athin init --data "$data" --chunk-size 64k --shards 2 >/tmp/raw-init.log || die "init --data failed"
grep -q "^data *$data" /tmp/raw-init.log || die "init did not say where the data goes"
[ "$(head -c 15 "$data")" = AZBUSE-THINDATA ] || die "no pool header on $data"
[ "$(readlink "$pool/shard-1/data")" = "$data" ] || die "shard 1's data does not lead to $data"
expect_fail "already holds an azbuse pool" "$thin" --pool "$back/p4" init --data "$data"
athin create vol1 --size 256M >/dev/null || die "create failed"
log "ok   init --data: refuses a relative path, a mounted device, a non-device and a claimed one"

# --- nothing of the device's old bytes shows -----------------------------------------
serve vol1
azbusectl info 1 | grep -q "direct-map" || die "no direct map on a raw pool"
python3 - /dev/azbuse1 <<'EOF' || die "a new chunk showed the device's old bytes"
import fcntl, mmap, os, struct, sys
CHUNK, BLKDISCARD = 64 << 10, 0x1277
fd = os.open(sys.argv[1], os.O_RDWR | os.O_DIRECT)
def check(off, what):
    got = mmap.mmap(-1, CHUNK)
    os.preadv(fd, [got], off - off % CHUNK)
    within = off % CHUNK
    if got[:within].count(0) != within or got[within + 4096:].count(0) != CHUNK - within - 4096:
        sys.exit(f"{what}: chunk at {off - within} has non-zero bytes around the 4 KiB written")
    if got[within:within + 4096] != b"\x5a" * 4096:
        sys.exit(f"{what}: the 4 KiB written at {off} read back wrong")
buf = mmap.mmap(-1, 4096)
buf.write(b"\x5a" * 4096)
offs = [i * (3 << 20) + (i % 16) * 4096 for i in range(80)]
for off in offs:
    os.pwrite(fd, buf, off)
for off in offs:
    check(off, "first write")
os.fsync(fd)
for off in offs:  # freed (zeroed) and written again
    fcntl.ioctl(fd, BLKDISCARD, struct.pack("QQ", off - off % CHUNK, CHUNK))
for off in offs:
    os.pwrite(fd, buf, off + 4096 if off % CHUNK < CHUNK - 8192 else off - 4096)
for off in offs:
    check(off + 4096 if off % CHUNK < CHUNK - 8192 else off - 4096, "write after discard")
whole = mmap.mmap(-1, 1 << 20)
for mib in range(1, 240, 3):  # never written: all zeros
    os.preadv(fd, [whole], mib << 20)
    if whole[:].count(0) != 1 << 20:
        sys.exit(f"never written MiB {mib} is not zeros")
EOF
log "ok   first writes and writes after a discard read zeros around them on a device full of 0xff"

# Sub-blocks: a 512-byte (logical block) write into a new chunk, a 4 KiB one beside it (the
# chunk gains a sub-block in place), a snapshot, then a copy-on-write of the
# partly written chunk: each time, the chunk reads its data and zeros.
cat >/tmp/raw-sub.py <<'EOF'
import mmap, os, sys
CHUNK = 64 << 10
fd = os.open("/dev/azbuse1", os.O_RDWR | os.O_DIRECT)
bases = [(3 * i + 2) << 20 for i in range(40)]  # MiBs the check above leaves alone
lbs = int(open("/sys/block/azbuse1/queue/logical_block_size").read())
writes = {"new": [(3 * 4096 + lbs, lbs, 0x11)], "grow": [(9 * 4096, 4096, 0x22)],
          "cow": [(12 * 4096, 4096, 0x33)]}
upto = ["new", "grow", "cow"][: ["new", "grow", "cow"].index(sys.argv[1]) + 1]
for base in bases:
    for off, n, byte in writes[sys.argv[1]]:
        buf = mmap.mmap(-1, 4096)
        buf.write(bytes([byte]) * n)
        os.pwritev(fd, [memoryview(buf)[:n]], base + off)
for base in bases:
    want = bytearray(CHUNK)
    for phase in upto:
        for off, n, byte in writes[phase]:
            want[off:off + n] = bytes([byte]) * n
    got = mmap.mmap(-1, CHUNK)
    os.preadv(fd, [got], base)
    if got[:] != bytes(want):
        bad = next(i for i in range(CHUNK) if got[i] != want[i])
        sys.exit(f"{sys.argv[1]}: chunk at {base} byte {bad} reads {got[bad]:#x}, not {want[bad]:#x}")
EOF
python3 /tmp/raw-sub.py new || die "a 512-byte first write did not read zeros around it"
python3 /tmp/raw-sub.py grow || die "a chunk that gained a sub-block read wrong"
athin snapshot vol1 psnap >/dev/null || die "snapshot psnap failed"
python3 /tmp/raw-sub.py cow || die "a copy-on-write of a partly written chunk read wrong"
athin delete psnap --yes >/dev/null || die "deleting psnap failed"
log "ok   512-byte first writes, sub-blocks gained in place and copies of partly written chunks read zeros around their data"
layered_cow_check vol1 241

# --- served by the module, remapped onto the device --------------------------------
run_fio --name=fill --filename=/dev/azbuse1 --rw=write --bs=1M --size=128M --direct=1 \
	--ioengine=libaio --iodepth=8
direct0=$(queue_sum direct)
for cpu in 0 1; do
	run_fio --name=read-cpu$cpu --filename=/dev/azbuse1 --rw=randread --bs=4k --size=128M \
		--direct=1 --ioengine=libaio --iodepth=16 --runtime=2 --time_based --cpus_allowed=$cpu
	run_fio --name=overwrite-cpu$cpu --filename=/dev/azbuse1 --rw=randwrite --bs=4k \
		--size=128M --direct=1 --ioengine=io_uring --iodepth=16 --runtime=2 --time_based \
		--cpus_allowed=$cpu
done
direct=$(($(queue_sum direct) - direct0))
[ "$direct" -gt 10000 ] || die "only $direct reads and overwrites were remapped by the module"
log "ok   $direct reads and overwrites remapped onto $data by the module"

# --- fio verify across live snapshots, a worker killed under it ----------------------
fio --name=verify --filename=/dev/azbuse1 --rw=randwrite --bssplit=4k/50:64k/30:256k/20 \
	--offset=128M --direct=1 --ioengine=libaio --iodepth=16 --numjobs=2 \
	--offset_increment=64M --size=64M --cpus_allowed=0-1 --cpus_allowed_policy=split \
	--verify=crc32c --do_verify=1 --verify_fatal=1 --eta=never --output=/tmp/raw-verify.log &
fio_pid=$!
for i in 1 2 3; do
	sleep 1
	athin snapshot vol1 "snap$i" >/dev/null || die "live snapshot $i failed"
done
ms=$(replace_worker 1 1)
wait_fio "$fio_pid" /tmp/raw-verify.log "across live snapshots and a worker kill"
log "ok   fio verify across 3 live snapshots and a worker SIGKILL (new worker in $ms ms)"
for i in 1 2 3; do
	athin delete "snap$i" --yes >/dev/null || die "deleting snapshot $i failed"
done

# --- no chunk reused while a remapped write through its old mapping is in flight ----
held_write_reuse_check /dev/azbuse1 8
log "ok   discards, reuse and read-back beside a held remapped writer of the discarded chunks"

# --- the data survives removal and a new daemon; check is clean ----------------------
dd if=/dev/urandom of=/tmp/raw-pattern bs=1M count=8 status=none
dd if=/tmp/raw-pattern of=/dev/azbuse1 bs=1M seek=100 oflag=direct conv=fsync status=none
azbusectl remove 1 >/dev/null
athin check >/tmp/raw-check.log 2>&1 || { cat /tmp/raw-check.log >&2; die "check after serving"; }
serve vol1
cmp <(dd if=/dev/azbuse1 bs=1M skip=100 count=8 iflag=direct status=none) /tmp/raw-pattern ||
	die "data written before the removal did not come back"
mkfs.ext4 -q -F /dev/azbuse1 && mkdir -p /mnt/raw-fs && mount /dev/azbuse1 /mnt/raw-fs ||
	die "mkfs/mount on a raw-pool volume failed"
write_random_files /mnt/raw-fs 20 32
sha256_record /mnt/raw-fs /tmp/raw-files.sum
umount /mnt/raw-fs
azbusectl remove 1 >/dev/null
serve vol1
mount /dev/azbuse1 /mnt/raw-fs || die "mount after re-serving failed"
sha256_verify /mnt/raw-fs /tmp/raw-files.sum || die "files changed across a new daemon"
umount /mnt/raw-fs
fsck.ext4 -fn /dev/azbuse1 >/dev/null 2>&1 || die "fsck found errors"
azbusectl remove 1 >/dev/null
athin check >/tmp/raw-check.log 2>&1 || { cat /tmp/raw-check.log >&2; die "check at the end"; }
log "ok   data, files and fsck intact across removal and a new daemon; check clean"

# --- a link to a device without the pool's header is refused -------------------------
dd if="$data" of=/tmp/raw-header bs=4k count=1 status=none
dd if=/dev/zero of="$data" bs=4k count=1 conv=fsync status=none
if azbusectl add 1 --engine=thin --pool "$pool" --volume vol1 >/tmp/raw-bad.log 2>&1; then
	die "a data device without the pool's header was served"
fi
grep -q "not this pool's data device" /tmp/raw-bad.log || { cat /tmp/raw-bad.log >&2; die "no clear error for a foreign data device"; }
dd if=/tmp/raw-header of="$data" bs=4k count=1 conv=fsync status=none
serve vol1
azbusectl remove 1 >/dev/null
log "ok   a device without the pool's header refused, served again once it is back"
log "ok"
