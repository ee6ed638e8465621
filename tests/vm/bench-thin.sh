#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench-thin.sh: runs INSIDE the test VM. azbuse's thin engine beside the
# kernel's dm-thin, both on the same RAM-backed storage (brd), in this one VM
# run, with the ratios azbuse/dm-thin.
#
#   tests/vm/vm-run.sh --mem 6G --timeout 1500 -- tests/vm/bench-thin.sh [--only dm-thin|azbuse]
#
# Env: AZBUSE_BENCH_RUNTIME          seconds per time-based measurement (default 10)
#      AZBUSE_BUILD_DIR              where azbusectl and azbuse-thin are (default ./build)
#      AZBUSE_THIN_BENCH_MAPPED_GB   mapped GiB of the big memory point (default 100)
#      AZBUSE_THIN_BENCH_MAP_BUDGET_S seconds the mapping beyond 1 GiB may take
#                                    (default 600, 0: no limit); when it runs
#                                    out the memory is measured where it got
#      AZBUSE_THIN_BENCH_FIRST_CHUNKS chunks written by the first-write test (default 32768)
#      AZBUSE_THIN_BENCH_REGION_MB   volume of the fill/overwrite/read/snapshot/CoW
#                                    tests (default 1024)
#      AZBUSE_THIN_BENCH_SHARDS      shards of the azbuse pool (default 2)
#      AZBUSE_THIN_BENCH_ADD_OPTS    more `azbusectl add` options for the thin
#                                    device (e.g. "-o direct=0")
#      AZBUSE_THIN_BENCH_DATA        raw (default): the pool's data on a block
#                                    device, as dm-thin's; file: sparse files
#                                    on ext4
#      AZBUSE_THIN_BENCH_TESTS       which tests run (default "main first
#                                    mem"): main = fill, overwrite, read,
#                                    snapshot, CoW; first = first write; mem
#                                    = memory
#      AZBUSE_THIN_BENCH_REPEAT      times the first-write pair runs (default 1)
#      AZBUSE_THIN_BENCH_PROFILE     a directory: the first writes of azbuse
#                                    and dm-thin skip_block_zeroing run under
#                                    `perf record -a -g -e cpu-clock`, their
#                                    reports kept there
# Without azbuse-thin or the thin engine, only dm-thin is measured.
#
# Storage: every test starts from a fresh brd (rd_nr=1, same size every time,
# unloaded after the test, so RAM is given back) cut with dm-linear:
#   dm-thin: bt-meta (256 MiB) and bt-data (the rest) -> thin-pool, 64 KiB
#            blocks (data_block_size 128), one thin device;
#   azbuse:  ba-meta (256 MiB) -> ext4 -> pool directory (pool.db, the
#            shards' RocksDBs) and ba-data (the rest) -> init --data
#            /dev/mapper/ba-data --chunk-size 64k --shards 2
#            (AZBUSE_THIN_BENCH_SHARDS), one volume served as /dev/azbuse1;
#            with AZBUSE_THIN_BENCH_DATA=file: ba-back (all of it) -> ext4 ->
#            pool directory with the data in sparse files.
# Both sides thus see one dm-linear layer over the same brd.
#
# Measurements (fio 4k, iodepth 32, numjobs 2 with group_reporting, libaio,
# O_DIRECT):
#   firstwrite  4k writes each to a distinct, never written chunk: a random
#               sample of FIRST_CHUNKS chunks of a 4 GiB volume, replayed from
#               a shuffled fio iolog (size-based, not time-based: fio's own
#               random offsets with blockalign=64k turn off its random map and
#               would revisit chunks, and a time-based run would need an
#               unbounded amount of RAM on dm-thin, which zeroes 64 KiB per new
#               chunk). dm-thin with its default block zeroing, and again with
#               skip_block_zeroing (azbuse's fresh chunks read zeros: file
#               holes, or a data device's chunk with no valid sub-block).
#   fill        time to write the REGION volume sequentially once (fio bs=1M,
#               iodepth 32, one job, end_fsync=1, wall clock).
#   overwrite   time-based 4k randwrite over the filled volume.
#   randread    time-based 4k randread over it.
#   snapshot    time to snapshot the filled volume: azbuse-thin snapshot (the
#               daemon pauses the device) / dmsetup suspend, create_snap, resume.
#   cowwrite    after that snapshot, one 4k write to each chunk of the volume
#               in shuffled order (iolog replay): every write copies 64 KiB.
#               (fio 3.33 leaves the last iodepth-1 completions of a libaio
#               replay out of its stats, though it does them: ios= is 31 per
#               job short of the log, the same on both sides.)
#   memory      azbuse only: VmRSS (and RssAnon, Pss) summed over the
#               supervisor and its workers, for a 1 TiB volume with 0, 1 GiB
#               and MAPPED_GB GiB mapped. Chunks are mapped by writing 4 KiB at
#               the start of each 64 KiB chunk (fio rw=write:60k), then read
#               for RUNTIME seconds at random (so the metadata cache fills).
#               Only 1/16 of the mapped bytes is data, still too much for RAM
#               at 100 GiB: between mapping batches of 4 GiB the shard data
#               files are hole-punched, or the data device discarded past its
#               header (mappings stay, their data reads as
#               zeros; ext4 reuses the freed brd blocks). Checked against the
#               metadata RAM bound that azbuse-thin init reports: the VmRSS
#               growth from 0 GiB mapped (code, libraries and stacks are there
#               at 0 already; the per-process figures are printed too).
# Per measurement one machine-readable line:
#   BENCH dev=NAME rw=RW iops=N lat_us=N bs=4k iodepth=32 numjobs=2 ios=N runtime_ms=N
#   BENCH_TIME what=fill|snapshot dev=NAME ms=N
#   BENCH_TIME what=snapshot_in_daemon dev=azbuse-thin ms=N   (the supervisor's log)
#   BENCH_MEM dev=azbuse-thin volume_gb=1024 mapped_gb=N kb=VMRSS_SUM anon_kb=N pss_kb=N hwm_kb=N procs=N
#   BENCH_META_MEM mapped_gb=N shard K block_cache_kib=N pinned_kib=N memtables_kib=N table_readers_kib=N map_cache_kib=N
#   BENCH_MEM_PROC dev=azbuse-thin mapped_gb=N pid=N role=supervisor|worker kb=VMRSS anon_kb= file_kb= shmem_kb= pss_kb= hwm_kb=
# then a table with both sides, ratios and targets, RATIO lines, and WARNING
# lines if azbuse workers were killed by the supervisor's watchdog or requests
# timed out meanwhile (the supervisor logs go to $AZBUSE_VM_OUT/bench-thin-logs).
# The two sides take turns test by test. The guest's 2 vCPUs are emulated
# (TCG): anything else running on the host moves the figures.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib-bench.sh
. "$here/lib-bench.sh"
build=${AZBUSE_BUILD_DIR:-$top/build}
ctl=$build/tools/azbusectl
thin=$build/tools/azbuse-thin
runtime=${AZBUSE_BENCH_RUNTIME:-10}
mapped_gb=${AZBUSE_THIN_BENCH_MAPPED_GB:-100}
first_chunks=${AZBUSE_THIN_BENCH_FIRST_CHUNKS:-32768}
region_mb=${AZBUSE_THIN_BENCH_REGION_MB:-1024}
out=${AZBUSE_VM_OUT:-/tmp}
data_kind=${AZBUSE_THIN_BENCH_DATA:-raw}
case $data_kind in raw | file) ;; *) echo "bench-thin.sh: AZBUSE_THIN_BENCH_DATA=raw|file" >&2; exit 2 ;; esac

only=
while [ $# -gt 0 ]; do
	case $1 in
	--only) only=${2:?--only wants dm-thin or azbuse}; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) echo "bench-thin.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
case $only in '' | dm-thin | azbuse) ;; *) echo "bench-thin.sh: --only dm-thin|azbuse" >&2; exit 2 ;; esac

readonly CHUNK=65536 MIB=1048576 GIB=1073741824
readonly META_MB=256
first_vol_mb=4096
# Data space: the first-write test's chunks, or the filled volume plus its
# CoW copies, whichever is more, plus slack; never under 3 GiB (the memory
# test's ext4 holds one mapping batch of data and the shard DBs).
data_mb=$((first_chunks * CHUNK / MIB))
[ $((2 * region_mb)) -gt "$data_mb" ] && data_mb=$((2 * region_mb))
data_mb=$((data_mb + 512))
[ "$data_mb" -lt 3072 ] && data_mb=3072
brd_mb=$((META_MB + data_mb))
meta_sectors=$((META_MB * 2048))
data_sectors=$((data_mb * 2048))
map_batch_gb=4
map_budget_s=${AZBUSE_THIN_BENCH_MAP_BUDGET_S:-600}
mem_reached=1

mnt=/mnt/bench-thin
pool=$mnt/pool
logs=$(mktemp -d /tmp/bench-thin.XXXXXX)

say() { echo "bench-thin: $*"; }
die() {
	echo "bench-thin: $*" >&2
	exit 1
}
now_ns() { date +%s%N; }
ms_since() { echo $((($(now_ns) - $1) / 1000000)); }

# --- storage --------------------------------------------------------------------

storage_up() {
	modprobe brd rd_nr=1 rd_size=$((brd_mb * 1024)) max_part=0
	wait_for_dev /dev/ram0
}

storage_down() {
	local _
	for _ in $(seq 50); do
		lsmod | grep -q '^brd ' || return 0
		modprobe -r brd 2>/dev/null && return 0
		sleep 0.2
	done
	echo "bench-thin: cannot unload brd" >&2
	return 1
}

# dmthin_up ZEROING(1|0) VOLUME_MB: fresh pool and thin device 0 at $dev
dmthin_up() {
	local features="0"
	[ "$1" = 0 ] && features="1 skip_block_zeroing"
	storage_up
	dm_create bt-meta "0 $meta_sectors linear /dev/ram0 0"
	dm_create bt-data "0 $data_sectors linear /dev/ram0 $meta_sectors"
	dm_create bt-pool "0 $data_sectors thin-pool /dev/mapper/bt-meta /dev/mapper/bt-data 128 32768 $features"
	dmsetup message bt-pool 0 "create_thin 0"
	dm_create bt-thin "0 $(($2 * 2048)) thin /dev/mapper/bt-pool 0"
	dev=/dev/mapper/bt-thin
	wait_for_dev "$dev"
}

dmthin_down() {
	dm_remove bt-thin bt-pool bt-meta bt-data
	storage_down
}

# azbuse_up SIZE: fresh ext4 (and data device) on brd, pool, volume vol1 of
# SIZE served at $dev
azbuse_up() {
	local msg fs=/dev/mapper/ba-back data_opt=()
	storage_up
	if [ "$data_kind" = raw ]; then
		fs=/dev/mapper/ba-meta
		dm_create ba-meta "0 $meta_sectors linear /dev/ram0 0"
		dm_create ba-data "0 $data_sectors linear /dev/ram0 $meta_sectors"
		data_opt=(--data /dev/mapper/ba-data)
	else
		dm_create ba-back "0 $((meta_sectors + data_sectors)) linear /dev/ram0 0"
	fi
	# Inode tables and journal written now: no ext4lazyinit in the background.
	mkfs.ext4 -q -F -m 0 -i $MIB -E lazy_itable_init=0,lazy_journal_init=0 "$fs"
	mkdir -p "$mnt"
	mount "$fs" "$mnt"
	msg=$("$thin" --pool "$pool" --json init "${data_opt[@]}" --chunk-size 64k \
		--shards "${AZBUSE_THIN_BENCH_SHARDS:-2}") || die "azbuse-thin init failed"
	if [ -z "${init_json:-}" ]; then
		init_json=$msg
		echo "azbuse-thin init: $msg"
		ram_bound=$(grep -o '"meta_ram_bound_bytes": *[0-9]*' <<<"$msg" | awk '{ print $NF }')
	fi
	"$thin" --pool "$pool" create vol1 --size "$1" >/dev/null ||
		die "azbuse-thin create vol1 --size $1 failed"
	# shellcheck disable=SC2086 # options, split on purpose
	"$ctl" add 1 --engine=thin --pool "$pool" --volume vol1 ${AZBUSE_THIN_BENCH_ADD_OPTS:-} >/dev/null ||
		die "azbusectl add --engine=thin failed (supervisor log: $out/bench-thin-logs)"
	dev=/dev/azbuse1
	wait_for_dev "$dev"
}

azbuse_down() {
	"$ctl" remove 1 --force >/dev/null 2>&1 || true
	if mountpoint -q "$mnt"; then
		umount "$mnt"
	fi
	dm_remove ba-back ba-meta ba-data
	storage_down
}

save_logs() {
	local f
	for f in /run/azbuse/supervisor-*.log; do
		[ -f "$f" ] || continue
		mkdir -p "$out/bench-thin-logs"
		cp "$f" "$out/bench-thin-logs/"
	done
}

# check_phase NAME: notes watchdog kills of azbuse workers and request
# timeouts (supervisor logs, dmesg) that happened since the last call.
WARNINGS=()
seen_kills=0 seen_stuck=0 seen_timeouts=0
check_phase() {
	local kills stuck timeouts
	kills=$(cat /run/azbuse/supervisor-*.log 2>/dev/null | grep -c 'killing it' || true)
	stuck=$(cat /run/azbuse/supervisor-*.log 2>/dev/null | grep -c 'did not exit' || true)
	timeouts=$(dmesg | grep -c 'azbuse.*waited over' || true)
	if [ "$kills" -gt "$seen_kills" ] || [ "$stuck" -gt "$seen_stuck" ] ||
		[ "$timeouts" -gt "$seen_timeouts" ]; then
		WARNINGS+=("$1: $((kills - seen_kills)) azbuse worker(s) killed for completing nothing, $((stuck - seen_stuck)) time(s) workers did not exit on removal, $((timeouts - seen_timeouts)) request timeout message(s) in dmesg")
		say "WARNING: ${WARNINGS[-1]}"
	fi
	seen_kills=$kills seen_stuck=$stuck seen_timeouts=$timeouts
}

cleanup() {
	local rc=$?
	set +e
	[ "$rc" = 0 ] || echo "bench-thin: failed (exit $rc), cleaning up" >&2
	[ -x "$ctl" ] && "$ctl" remove 1 --force >/dev/null 2>&1
	save_logs
	mountpoint -q "$mnt" && umount "$mnt"
	dm_remove bt-thin bt-pool bt-meta bt-data ba-back ba-meta ba-data
	storage_down
	rm -rf "$logs"
	[ -z "$(ls "$out/bench-thin-logs" 2>/dev/null)" ] ||
		echo "bench-thin: supervisor logs copied to $out/bench-thin-logs" >&2
	return "$rc"
}
trap cleanup EXIT

# --- fio --------------------------------------------------------------------------

declare -A IOPS MS KB
MEM_POINTS=()

# fio_terse RW ARGS...: runs fio (4k, iodepth 32, libaio, direct, group
# reporting; the job options in ARGS), prints "IOPS LAT_US IOS RUNTIME_MS".
fio_terse() {
	local rw=$1 terse
	shift
	terse=$(fio --ioengine=libaio --direct=1 --iodepth=32 --bs=4k --rw="$rw" \
		--group_reporting --eta=never --output-format=terse --terse-version=3 "$@") || return 1
	# Terse v3: 5 error; read: 6 KiB, 8 iops, 9 runtime ms, 40 mean lat (us);
	# write: 47, 49, 50, 81.
	awk -F';' -v rw="$rw" '
		$5 != 0 { print "fio error " $5 > "/dev/stderr"; exit 1 }
		rw ~ /read/ { printf "%d %.2f %d %d\n", $8, $40, $6 / 4, $9; exit }
		{ printf "%d %.2f %d %d\n", $49, $81, $47 / 4, $50; exit }' <<<"$terse"
}

# record NAME RW "IOPS LAT IOS MS"
record() {
	local iops lat ios ms
	read -r iops lat ios ms <<<"$3"
	echo "BENCH dev=$1 rw=$2 iops=$iops lat_us=$lat bs=4k iodepth=32 numjobs=2 ios=$ios runtime_ms=$ms"
	IOPS[$1/$2]=$iops
}

# time-based random I/O over the first MB of $dev, two jobs
fio_timed() {
	local name=$1 rw=$2 mb=$3 res
	res=$(fio_terse "$rw" --name=bench --filename="$dev" --numjobs=2 \
		--size="${mb}M" --time_based --runtime="$runtime" --ramp_time=1 \
		--norandommap --randrepeat=0) || die "fio $rw on $name failed"
	record "$name" "$rw" "$res"
}

# make_logs PREFIX SPAN N: iologs PREFIX0, PREFIX1 writing 4 KiB at the start
# of N distinct chunks out of the first SPAN, in random order, half each.
make_logs() {
	local p=$1 span=$2 n=$3 j
	for j in 0 1; do
		printf 'fio version 2 iolog\ndev add\ndev open\n' >"$p$j"
	done
	shuf -i 0-$((span - 1)) -n "$n" | awk -v p="$p" -v c=$CHUNK \
		'{ printf "dev write %.0f 4096\n", $1 * c >> (p (NR % 2)) }'
	for j in 0 1; do
		echo "dev close" >>"$p$j"
	done
}

# fio_replay NAME RW PREFIX: replays the two iologs on $dev, one job each
fio_replay() {
	local res
	res=$(fio_terse write --replay_redirect="$dev" --replay_no_stall=1 \
		--name=j0 --read_iolog="${3}0" --name=j1 --read_iolog="${3}1") ||
		die "fio replay ($2) on $1 failed"
	record "$1" "$2" "$res"
}

record_time() {
	echo "BENCH_TIME what=$2 dev=$1 ms=$3"
	MS[$1/$2]=$3
}

# fill_timed NAME MB: sequential 1 MiB writes over the first MB, fsync at the end
fill_timed() {
	local t0
	t0=$(now_ns)
	fio --name=fill --filename="$dev" --rw=write --bs=1M --iodepth=32 --ioengine=libaio \
		--direct=1 --size="${2}M" --end_fsync=1 --eta=never --output=/dev/null ||
		die "fill of $1 failed"
	record_time "$1" fill "$(ms_since "$t0")"
}

# --- the tests -------------------------------------------------------------------

# main_tests NAME SNAPSHOT_FUNCTION: fill, overwrite, read, snapshot, CoW
main_tests() {
	local name=$1 t0
	fill_timed "$name" "$region_mb"
	fio_timed "$name" randwrite "$region_mb"
	fio_timed "$name" randread "$region_mb"
	t0=$(now_ns)
	"$2"
	record_time "$name" snapshot "$(ms_since "$t0")"
	fio_replay "$name" cowwrite "$logs/cow"
}

dmthin_snapshot() {
	dmsetup suspend bt-thin
	dmsetup message bt-pool 0 "create_snap 1 0"
	dmsetup resume bt-thin
}

azbuse_snapshot() {
	"$thin" --pool "$pool" snapshot vol1 snap1 >/dev/null || die "azbuse-thin snapshot failed"
}

# mem_sample MAPPED_GB: RSS of the supervisor and workers of /dev/azbuse1
mem_sample() {
	local info sup pids pid role rss=0 anon=0 pss=0 hwm=0 n=0 r a f sh h p
	info=$("$ctl" info 1 --json)
	sup=$(grep -o '"supervisor_pid": *[0-9]*' <<<"$info" | awk '{ print $NF }')
	pids=$(grep -o '"worker_pid": *[0-9]*' <<<"$info" | awk '{ print $NF }' | sort -un)
	for pid in $sup $pids; do
		if [ "$pid" -le 0 ] || [ ! -r "/proc/$pid/status" ]; then
			continue
		fi
		role=worker
		[ "$pid" = "$sup" ] && role=supervisor
		read -r r a f sh h <<<"$(awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 }
			/^RssFile:/ { f = $2 } /^RssShmem:/ { s = $2 } /^VmHWM:/ { h = $2 }
			END { print r + 0, a + 0, f + 0, s + 0, h + 0 }' "/proc/$pid/status")"
		p=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null || true)
		echo "BENCH_MEM_PROC dev=azbuse-thin mapped_gb=$1 pid=$pid role=$role kb=$r anon_kb=$a file_kb=$f shmem_kb=$sh pss_kb=${p:-0} hwm_kb=$h"
		n=$((n + 1)) rss=$((rss + r)) anon=$((anon + a)) pss=$((pss + ${p:-0})) hwm=$((hwm + h))
	done
	echo "BENCH_MEM dev=azbuse-thin volume_gb=1024 mapped_gb=$1 kb=$rss anon_kb=$anon pss_kb=$pss hwm_kb=$hwm procs=$n"
	KB[$1]="$rss $anon $pss $hwm"
	MEM_POINTS+=("$1")
	meta_mem "$1"
}

# meta_mem MAPPED_GB: each shard's metadata memory by RocksDB's count ("thin
# status" on the device's control socket)
meta_mem() {
	python3 - "$1" <<'EOF' || echo "bench-thin: no thin status from the daemon" >&2
import re, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect("/run/azbuse/azbuse1.sock")
s.sendall(b"thin status\n")
for line in s.makefile():
    if line.startswith("shard "):
        kv = re.sub(r"(\w+_kib) (\d+)", r"\1=\2", line.strip().replace(":", ""))
        print(f"BENCH_META_MEM mapped_gb={sys.argv[1]} {kv}")
EOF
}

# map_range FROM_GB TO_GB: maps every chunk in [FROM, TO) GiB with one 4 KiB write
map_range() {
	local half=$((($2 - $1) * GIB / 2))
	fio --name=map --filename="$dev" --rw=write:60k --bs=4k --iodepth=32 --ioengine=libaio \
		--direct=1 --numjobs=2 --offset=$(($1 * GIB)) --size=$half --offset_increment=$half \
		--eta=never --output=/dev/null || die "mapping ${1}-${2} GiB failed"
}

punch_data() {
	local f
	if [ "$data_kind" = raw ]; then # past the header: brd gives the pages back
		blkdiscard --offset $MIB /dev/mapper/ba-data
		return
	fi
	for f in "$pool"/shard-*/data; do
		fallocate --punch-hole --offset 0 --length "$(stat -c %s "$f")" "$f"
	done
}

# readback GB: random 4k reads over the first GB (metadata lookups)
readback() {
	fio --name=readback --filename="$dev" --rw=randread --bs=4k --iodepth=32 --ioengine=libaio \
		--direct=1 --numjobs=2 --size=$(($1 * GIB)) --time_based --runtime="$runtime" \
		--norandommap --randrepeat=0 --eta=never --output=/dev/null || die "readback failed"
}

mem_tests() {
	local at=1 to t0 budget_end
	azbuse_up 1T
	mem_sample 0
	t0=$(now_ns)
	map_range 0 1
	say "mapped 1 GiB in $(ms_since "$t0") ms"
	readback 1
	mem_sample 1
	if [ "$mapped_gb" -gt 1 ]; then
		t0=$(now_ns)
		budget_end=$(($(date +%s) + map_budget_s))
		while [ "$at" -lt "$mapped_gb" ]; do
			if [ "$map_budget_s" -gt 0 ] && [ "$(date +%s)" -ge "$budget_end" ]; then
				say "mapping budget of ${map_budget_s} s used up at $at GiB of $mapped_gb:" \
					"measuring there (AZBUSE_THIN_BENCH_MAP_BUDGET_S=0: no budget)"
				break
			fi
			to=$((at + map_batch_gb))
			[ "$to" -gt "$mapped_gb" ] && to=$mapped_gb
			map_range "$at" "$to"
			punch_data
			say "mapped $to GiB ($(ms_since "$t0") ms since 1 GiB)"
			at=$to
		done
		mem_reached=$at
		say "mapped $at GiB in $(ms_since "$t0") ms after the first 1 GiB"
		readback "$at"
		mem_sample "$at"
	fi
	"$thin" --pool "$pool" usage --json >"$logs/usage.json" 2>/dev/null && usage_json=$(cat "$logs/usage.json")
	azbuse_down
}

# --- run -------------------------------------------------------------------------

tests=" ${AZBUSE_THIN_BENCH_TESTS:-main first mem} "
repeat=${AZBUSE_THIN_BENCH_REPEAT:-1}
profile=${AZBUSE_THIN_BENCH_PROFILE:-}
want() { [[ $tests == *" $1 "* ]]; }

# a mapped chunk takes a whole chunk of a data device (of a sparse file only what was written)
want mem || mapped_gb=1
[ "$data_kind" = file ] || [ $((mapped_gb * 1024)) -le $((data_mb - 512)) ] ||
	die "$mapped_gb GiB mapped do not fit the ${data_mb} MiB data device: AZBUSE_THIN_BENCH_DATA=file"
mem_kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
[ "$mem_kb" -ge $((5 * 1024 * 1024)) ] ||
	die "needs about 5 GiB of guest RAM (have $((mem_kb / 1024)) MiB): vm-run.sh --mem 6G"

do_dm=1 do_az=1
[ "$only" = azbuse ] && do_dm=0
[ "$only" = dm-thin ] && do_az=0
if [ "$do_az" = 1 ]; then
	if [ ! -x "$thin" ] || ! "$ctl" engines 2>/dev/null | grep -qw thin; then
		[ "$only" = azbuse ] && die "no $thin or no thin engine in $ctl"
		say "no $thin or no thin engine in $ctl: measuring dm-thin only"
		do_az=0
	fi
fi

modprobe dm-thin-pool
if [ "$do_az" = 1 ]; then
	lsmod | grep -q '^azbuse ' || insmod "${AZBUSE_MODULE:-$build/kmod/azbuse.ko}"
	"$ctl" remove 1 --force >/dev/null 2>&1 || true
	rm -f /run/azbuse/supervisor-*.log
fi
lsmod | grep -q '^brd ' && die "brd is loaded already"

region_chunks=$((region_mb * MIB / CHUNK))
make_logs "$logs/cow" "$region_chunks" "$region_chunks"
make_logs "$logs/first" $((first_vol_mb * MIB / CHUNK)) "$first_chunks"
say "brd ${brd_mb} MiB (dm-thin: ${META_MB} MiB metadata + ${data_mb} MiB data; azbuse: the same" \
	"$([ "$data_kind" = raw ] && echo "(ext4 for the pool's DBs)" || echo "as ext4 with sparse data files"))," \
	"volume ${region_mb} MiB, first write: $first_chunks chunks of a ${first_vol_mb} MiB volume"

# dm-thin and azbuse take turns, test by test, so that a change in the
# host's load during the run falls on both sides alike.
if [ "$do_dm" = 1 ] && want main; then
	say "dm-thin: fill, overwrite, read, snapshot, CoW"
	dmthin_up 1 "$region_mb"
	main_tests dm-thin dmthin_snapshot
	dmthin_down
fi
if [ "$do_az" = 1 ] && want main; then
	say "azbuse: fill, overwrite, read, snapshot, CoW"
	azbuse_up "${region_mb}M"
	main_tests azbuse-thin azbuse_snapshot
	azbuse_down
	check_phase "azbuse fill/overwrite/read/snapshot/CoW"
	# the daemon's own time for the snapshot, from its log
	d=$(sed -n "s/.*control 'thin snapshot vol1 snap1': ok (\([0-9]*\) ms).*/\1/p" \
		/run/azbuse/supervisor-*.log 2>/dev/null | tail -n 1 || true)
	[ -z "$d" ] || record_time azbuse-thin snapshot_in_daemon "$d"
fi
if [ "$do_dm" = 1 ] && want first; then
	say "dm-thin: first write (block zeroing on, the default)"
	dmthin_up 1 "$first_vol_mb"
	fio_replay dm-thin firstwrite "$logs/first"
	dmthin_down
fi
# profiled_replay NAME: the first-write replay on $dev, under perf record
# when AZBUSE_THIN_BENCH_PROFILE names a directory (NAME.*.txt there)
profiled_replay() {
	[ -z "$profile" ] || { mkdir -p "$profile" && perf_begin "$logs"; }
	fio_replay "$1" firstwrite "$logs/first"
	[ -n "$profile" ] || return 0
	# the rings' counters (requests per syscall, wake-ups) over the run
	[ "$dev" != /dev/azbuse1 ] || "$ctl" info 1 --json >"$profile/$1.info.json" 2>&1 || true
	# azbuse's workers apart (dm-thin's kworker has no name of its own)
	perf_end "$logs" "$profile/$1" "$([ "$dev" != /dev/azbuse1 ] || echo azbusectl)"
}
for _ in $(seq "$repeat"); do
	if [ "$do_az" = 1 ] && want first; then
		say "azbuse: first write"
		azbuse_up "${first_vol_mb}M"
		profiled_replay azbuse-thin
		azbuse_down
		check_phase "azbuse first write"
	fi
	if [ "$do_dm" = 1 ] && want first; then
		say "dm-thin: first write (skip_block_zeroing)"
		dmthin_up 0 "$first_vol_mb"
		profiled_replay dm-thin-nozero
		dmthin_down
	fi
done
if [ "$do_az" = 1 ] && want mem; then
	say "azbuse: memory, 1 TiB volume, 1 and $mapped_gb GiB mapped"
	mem_tests
	check_phase "azbuse memory (mapping)"
fi
save_logs

# --- report -------------------------------------------------------------------------

# ratio A B: A / B with two decimals, "-" if either is missing
ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
# verdict RATIO OP TARGET
verdict() {
	awk -v r="$1" -v op="$2" -v t="$3" 'BEGIN {
		if (r == "-" || op == "-") { print "-"; exit }
		ok = op == ">=" ? r + 0 >= t : r + 0 <= t
		print ok ? "ok" : "MISSED" }'
}
row() { # LABEL KEY UNIT DMTHIN AZBUSE OP TARGET
	local r v
	r=$(ratio "$5" "$4")
	v=$(verdict "$r" "$6" "$7")
	printf '%-34s %12s %12s %10s %8s %7s\n' "$1" "${4:--}" "${5:--}" "$r" "$6 ${7:-}" "$v"
	echo "RATIO what=$2 unit=$3 dm_thin=${4:--} azbuse=${5:--} azbuse_vs_dm_thin=$r target=$6$7 verdict=$v" >>"$logs/ratios"
}

echo
: >"$logs/ratios"
printf '%-34s %12s %12s %10s %8s %7s\n' measurement dm-thin azbuse ratio target ""
row "first write 4k IOPS (zeroing)" firstwrite iops "${IOPS[dm-thin/firstwrite]:-}" "${IOPS[azbuse-thin/firstwrite]:-}" "-" ""
row "first write 4k IOPS (skip_zeroing)" firstwrite_skip_zeroing iops "${IOPS[dm-thin-nozero/firstwrite]:-}" "${IOPS[azbuse-thin/firstwrite]:-}" ">=" 1
row "overwrite 4k IOPS" overwrite iops "${IOPS[dm-thin/randwrite]:-}" "${IOPS[azbuse-thin/randwrite]:-}" ">=" 1
row "randread 4k IOPS" randread iops "${IOPS[dm-thin/randread]:-}" "${IOPS[azbuse-thin/randread]:-}" ">=" 1
row "CoW write 4k IOPS" cowwrite iops "${IOPS[dm-thin/cowwrite]:-}" "${IOPS[azbuse-thin/cowwrite]:-}" ">=" 2
row "snapshot ms" snapshot ms "${MS[dm-thin/snapshot]:-}" "${MS[azbuse-thin/snapshot]:-}" "<=" 1
row "fill ${region_mb} MiB ms (bs=1M, fsync)" fill ms "${MS[dm-thin/fill]:-}" "${MS[azbuse-thin/fill]:-}" "-" ""
echo "(ratio = azbuse / dm-thin; for ms lower is better)"
[ -z "${MS[azbuse-thin/snapshot_in_daemon]:-}" ] ||
	echo "(azbuse snapshot: ${MS[azbuse-thin/snapshot_in_daemon]} ms of it in the daemon, by its log)"
cat "$logs/ratios"

if [ "$do_az" = 1 ]; then
	echo
	echo "azbuse memory, 1 TiB volume (KiB summed over supervisor and workers):"
	printf '%-12s %10s %10s %10s %10s\n' mapped_GiB VmRSS RssAnon Pss VmHWM
	for k in "${MEM_POINTS[@]}"; do
		# shellcheck disable=SC2086 # split the record on purpose
		printf '%-12s %10s %10s %10s %10s\n' "$k" ${KB[$k]}
	done
	# The bound covers the metadata (caches, memtables); what a process
	# needs anyway (code, libraries, stacks) shows at 0 GiB mapped.
	read -r rss0 anon0 _ <<<"${KB[0]:-0 0}"
	read -r rssm anonm _ <<<"${KB[$mem_reached]:-0 0}"
	bound_kb=$((${ram_bound:-0} / 1024))
	growth=$((rssm - rss0))
	v=ok
	[ "$growth" -le "$bound_kb" ] || v=MISSED
	[ "$mem_reached" = "$mapped_gb" ] || echo "(asked for $mapped_gb GiB mapped, reached $mem_reached GiB in the mapping budget)"
	echo "metadata RAM bound (azbuse-thin init): $bound_kb KiB; VmRSS growth from 0 to $mem_reached GiB mapped: $growth KiB ($v)"
	echo "RATIO what=memory mapped_gb=$mem_reached rss_kb=$rssm rss0_kb=$rss0 anon_kb=$anonm anon0_kb=$anon0 growth_kb=$growth bound_kb=$bound_kb verdict=$v"
	[ -z "${usage_json:-}" ] || echo "azbuse-thin usage --json (after mapping): $usage_json"
fi
if [ ${#WARNINGS[@]} -gt 0 ]; then
	echo
	printf 'WARNING %s\n' "${WARNINGS[@]}"
	echo "(supervisor logs: $out/bench-thin-logs)"
fi
