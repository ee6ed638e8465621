#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench-cache.sh: runs INSIDE the test VM. The RAM cache tier in front of a
# thin volume whose pool is on a slow disk, beside the same volume without
# it, dm-cache over the same slow disk, and the mem engine, in one VM run.
#
#   tests/vm/vm-run.sh --mem 6G --timeout 2400 -- tests/vm/bench-cache.sh
#
# Env: AZBUSE_BENCH_RUNTIME   seconds per time-based measurement (default 10)
#      AZBUSE_BUILD_DIR       where azbusectl and azbuse-thin are (default ./build)
#      AZBUSE_CACHE_BENCH_DELAY_MS  dm-delay's delay (default 4: this kernel
#                             counts in 4 ms ticks)
#
# Storage: a fresh brd for each subject, cut with dm-linear; the slow disk
# is dm-delay (every read, write and flush delayed DELAY ms) over 768 MiB of it.
#   thin, thin+cache: ext4 on the slow disk holds the pool (pool.db, the
#       shards' RocksDBs, sparse data files; 64 KiB chunks, 2 shards), one
#       512 MiB volume served with 2 queues; thin+cache adds --cache 256M
#       --cache-mode writeback (S3-FIFO).
#   dm-cache: smq, writeback, 64 KiB blocks, the slow disk as its origin and
#       256 MiB of the brd as its cache (16 MiB metadata), default settings.
#   mem: the mem engine, 512 MiB, 2 queues (what a RAM disk costs here).
# Each subject: the hot set (the first 128 MiB) is read twice at random
# (size-based: every block, twice) to warm it, then fio 4k, libaio,
# O_DIRECT, on the hot set, time-based RUNTIME s:
#   randread   iodepth 32, 2 jobs: IOPS, and the hit ratio over the run
#              (azbuse: hits / (hits + misses) from azbusectl cache; dm-cache:
#              read hits / (read hits + read misses) from dmsetup status)
#   lat1       randread iodepth 1, 1 job: mean latency in us
#   mix7030    randrw 70% reads, iodepth 32, 2 jobs: IOPS; the bytes fio
#              wrote, and the bytes that reached the slow disk during the run
#              and until it had no writes for 2 s (its /sys/block stat), and
#              for thin+cache the cleaner's write-backs (4 KiB each) in that time
#              (default thresholds 10%,40%: the cleaner starts once 40% of the
#              cache is dirty, and writes back in turns without requests
#              until 80% is)
#   mixbig     thin+cache and dm-cache: the same mix on a 224 MiB set (7/8
#              of the caches), where the cleaner has to work; the same figures
# Lines: BENCH dev=NAME test=T iops=N lat_us=N [hit=R] [wrote_mib=N disk_mib=N cleaner_mib=N]
# then a table, RATIO lines and the targets of the issue.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib-bench.sh
. "$here/lib-bench.sh"
build=${AZBUSE_BUILD_DIR:-$top/build}
ctl=$build/tools/azbusectl
thin=$build/tools/azbuse-thin
runtime=${AZBUSE_BENCH_RUNTIME:-10}
delay_ms=${AZBUSE_CACHE_BENCH_DELAY_MS:-4}
readonly SLOW_MB=768 FAST_MB=256 META_MB=16 VOL_MB=512 HOT_MB=128 BIG_MB=224
mnt=/mnt/bench-cache
pool=$mnt/pool
declare -A R

say() { echo "bench-cache: $*"; }
die() {
	echo "bench-cache: $*" >&2
	exit 1
}

# slow_up: a fresh brd; /dev/mapper/cb-slow is the slow disk, cb-cmeta and
# cb-cfast the rest (dm-cache's).
slow_up() {
	local slow=$((SLOW_MB * 2048)) meta=$((META_MB * 2048)) fast=$((FAST_MB * 2048))
	modprobe brd rd_nr=1 rd_size=$(((SLOW_MB + META_MB + FAST_MB) * 1024)) max_part=0
	wait_for_dev /dev/ram0
	dm_create cb-orig "0 $slow linear /dev/ram0 0"
	dm_create cb-slow "0 $slow delay /dev/mapper/cb-orig 0 $delay_ms"
	dm_create cb-cmeta "0 $meta linear /dev/ram0 $slow"
	dm_create cb-cfast "0 $fast linear /dev/ram0 $((slow + meta))"
	wait_for_dev /dev/mapper/cb-slow
}

slow_down() {
	local _
	dm_remove cb-cache cb-slow cb-orig cb-cmeta cb-cfast
	for _ in $(seq 50); do
		lsmod | grep -q '^brd ' || return 0
		modprobe -r brd 2>/dev/null && return 0
		sleep 0.2
	done
	die "cannot unload brd"
}

# Sectors written to the slow disk so far.
slow_written() {
	dmsetup info cb-slow >/dev/null 2>&1 || { echo 0; return; }
	awk '{ print $7 }' "/sys/block/dm-$(dmsetup info -c --noheadings -o minor cb-slow | tr -d ' ')/stat"
}

cache_field() {
	"$ctl" cache 1 --json | python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# dm-cache's status: read hits and misses
dmcache_reads() {
	dmsetup status cb-cache | awk '{ print $8, $9 }'
}

# fio_json JOB-OPTIONS...: runs fio on $dev (the hot set), prints "IOPS LAT_US WRITE_KIB"
run_fio() {
	fio --name=b --filename="$dev" --ioengine=libaio --direct=1 --bs=4k --size="${size_mb:-$HOT_MB}M" \
		--randrepeat=0 --norandommap --group_reporting --output-format=json "$@" |
		python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
r, w = j["read"], j["write"]
ios = r["total_ios"] + w["total_ios"]
lat = (r["lat_ns"]["mean"] * r["total_ios"] + w["lat_ns"]["mean"] * w["total_ios"]) / max(ios, 1)
print("%d %.1f %d" % (r["iops"] + w["iops"], lat / 1000, w["io_kbytes"]))'
}

# settle: wait until the slow disk takes no more writes for 2 s (at most 30 s):
# what a cache's cleaner writes after the load counts too.
settle() {
	local last now quiet=0 _
	last=$(slow_written)
	for _ in $(seq 30); do
		sleep 1
		now=$(slow_written)
		if [ "$now" = "$last" ]; then
			quiet=$((quiet + 1))
			[ "$quiet" -ge 2 ] && return 0
		else
			quiet=0
		fi
		last=$now
	done
}

warm() {
	local pass
	for pass in 1 2; do
		fio --name=warm --filename="$dev" --ioengine=libaio --direct=1 --bs=4k \
			--size=${HOT_MB}M --rw=randread --iodepth=32 --numjobs=1 >/dev/null ||
			die "warming $1 failed"
	done
}

# measure NAME: the three runs on $dev
measure() {
	local name=$1 res iops lat wkib hit="" h0 m0 h1 m1
	say "$name: warming the ${HOT_MB} MiB hot set"
	warm "$name"
	case $name in
	thin+cache) h0=$(cache_field hits) m0=$(cache_field misses) ;;
	dm-cache) read -r h0 m0 <<<"$(dmcache_reads)" ;;
	esac
	res=$(run_fio --rw=randread --iodepth=32 --numjobs=2 --time_based --runtime="$runtime")
	read -r iops lat wkib <<<"$res"
	case $name in
	thin+cache) h1=$(cache_field hits) m1=$(cache_field misses) ;;
	dm-cache) read -r h1 m1 <<<"$(dmcache_reads)" ;;
	esac
	[ -n "${h0:-}" ] && hit=$(awk -v h=$((h1 - h0)) -v m=$((m1 - m0)) 'BEGIN { printf "%.3f", h + m ? h / (h + m) : 0 }')
	echo "BENCH dev=$name test=randread iops=$iops lat_us=$lat${hit:+ hit=$hit}"
	R[$name,randread]=$iops
	R[$name,hit]=${hit:--}
	res=$(run_fio --rw=randread --iodepth=1 --numjobs=1 --time_based --runtime="$runtime")
	read -r iops lat wkib <<<"$res"
	echo "BENCH dev=$name test=lat1 iops=$iops lat_us=$lat"
	R[$name,lat1]=$lat
	mix "$name" mix7030 $HOT_MB
	[ "$name" = mem ] || [ "$name" = thin ] && return 0
	# the same mix on a set of 7/8 of the cache: its cleaner has to work
	mix "$name" mixbig $BIG_MB
}

# mix NAME TEST SET_MB: 70/30 on the first SET_MB of $dev, then what reached
# the slow disk (and the cleaner) until it settled; results in R[NAME,TEST,*]
mix() {
	local name=$1 test=$2 res iops lat wkib w0 w1 c0=0 c1=0
	w0=$(slow_written)
	[ "$name" = thin+cache ] && c0=$(cache_field writebacks)
	res=$(size_mb=$3 run_fio --rw=randrw --rwmixread=70 --iodepth=32 --numjobs=2 \
		--time_based --runtime="$runtime")
	read -r iops lat wkib <<<"$res"
	settle
	w1=$(slow_written)
	[ "$name" = thin+cache ] && c1=$(cache_field writebacks)
	R[$name,$test,iops]=$iops
	R[$name,$test,wrote]=$((wkib / 1024))
	R[$name,$test,disk]=$(((w1 - w0) / 2048))
	R[$name,$test,cleaner]=$(((c1 - c0) * 4 / 1024))
	echo "BENCH dev=$name test=$test iops=$iops lat_us=$lat wrote_mib=${R[$name,$test,wrote]}" \
		"disk_mib=${R[$name,$test,disk]} cleaner_mib=${R[$name,$test,cleaner]}"
}

thin_subject() {
	local name=$1
	shift
	slow_up
	mkfs.ext4 -q -F /dev/mapper/cb-slow
	mkdir -p "$mnt"
	mount /dev/mapper/cb-slow "$mnt"
	"$thin" --pool "$pool" init --chunk-size 64k --shards 2 >/dev/null
	"$thin" --pool "$pool" create vol --size ${VOL_MB}M >/dev/null
	"$ctl" add 1 --engine=thin --pool "$pool" --volume vol "$@" >/dev/null ||
		die "cannot serve the volume ($name)"
	dev=/dev/azbuse1
	# the hot set written once (a thin volume reads unwritten chunks as zeros)
	dd if=/dev/urandom of="$dev" bs=1M count=$HOT_MB oflag=direct conv=fsync status=none
	[ "$name" = thin+cache ] && "$ctl" cache 1 --flush >/dev/null
	measure "$name"
	"$ctl" remove 1 >/dev/null
	umount "$mnt"
	slow_down
}

dmcache_subject() {
	modprobe dm-cache-smq
	slow_up
	dd if=/dev/zero of=/dev/mapper/cb-cmeta bs=1M count=1 oflag=direct status=none
	dm_create cb-cache "0 $((SLOW_MB * 2048)) cache /dev/mapper/cb-cmeta /dev/mapper/cb-cfast /dev/mapper/cb-slow 128 1 writeback smq 0"
	dev=/dev/mapper/cb-cache
	wait_for_dev "$dev"
	dd if=/dev/urandom of="$dev" bs=1M count=$HOT_MB oflag=direct conv=fsync status=none
	measure dm-cache
	slow_down
}

mem_subject() {
	dev=$("$ctl" add 1 --engine=mem --size ${VOL_MB}M --queues 2) || die "cannot add a mem device"
	dd if=/dev/urandom of="$dev" bs=1M count=$HOT_MB oflag=direct status=none
	measure mem
	"$ctl" remove 1 >/dev/null
}

lsmod | grep -q '^azbuse ' || insmod "${AZBUSE_MODULE:-$build/kmod/azbuse.ko}"
modprobe dm-delay
say "slow disk: dm-delay ${delay_ms} ms over brd; hot set ${HOT_MB} MiB; caches ${FAST_MB} MiB; ${runtime} s per run"
thin_subject thin
thin_subject thin+cache --cache ${FAST_MB}M --cache-mode writeback
dmcache_subject
mem_subject

printf '\n%-11s %12s %8s %12s %12s %10s %10s %10s\n' device randread hit lat1_us mix7030 wrote_mib disk_mib cleaner
for d in thin thin+cache dm-cache mem; do
	printf '%-11s %12s %8s %12s %12s %10s %10s %10s\n' "$d" "${R[$d,randread]}" "${R[$d,hit]}" \
		"${R[$d,lat1]}" "${R[$d,mix7030,iops]}" "${R[$d,mix7030,wrote]}" \
		"${R[$d,mix7030,disk]}" "${R[$d,mix7030,cleaner]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo
echo "RATIO randread thin+cache/dm-cache $(ratio "${R[thin+cache,randread]}" "${R[dm-cache,randread]}") (target >= 1)"
echo "RATIO randread thin+cache/mem $(ratio "${R[thin+cache,randread]}" "${R[mem,randread]}") (target >= 0.8)"
echo "RATIO lat1 thin/thin+cache $(ratio "${R[thin,lat1]}" "${R[thin+cache,lat1]}") (target >= 20: depth-1 latency that many times better)"
echo "RATIO mix7030 thin+cache/dm-cache $(ratio "${R[thin+cache,mix7030,iops]}" "${R[dm-cache,mix7030,iops]}") (target >= 1)"
echo "RATIO cleaner/written thin+cache $(ratio "${R[thin+cache,mix7030,cleaner]}" "${R[thin+cache,mix7030,wrote]}") (target <= 1.5)"
echo "RATIO disk/written dm-cache $(ratio "${R[dm-cache,mix7030,disk]}" "${R[dm-cache,mix7030,wrote]}") (for comparison)"
echo "RATIO mixbig thin+cache/dm-cache $(ratio "${R[thin+cache,mixbig,iops]}" "${R[dm-cache,mixbig,iops]}") (a ${BIG_MB} MiB set: ${R[thin+cache,mixbig,iops]} vs ${R[dm-cache,mixbig,iops]} IOPS)"
echo "RATIO mixbig cleaner/written thin+cache $(ratio "${R[thin+cache,mixbig,cleaner]}" "${R[thin+cache,mixbig,wrote]}") (target <= 1.5; ${R[thin+cache,mixbig,cleaner]} of ${R[thin+cache,mixbig,wrote]} MiB)"
echo "RATIO mixbig disk/written dm-cache $(ratio "${R[dm-cache,mixbig,disk]}" "${R[dm-cache,mixbig,wrote]}") (for comparison; ${R[dm-cache,mixbig,disk]} of ${R[dm-cache,mixbig,wrote]} MiB)"
