#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench-matrix.sh: runs INSIDE the test VM (started by tests/bench.sh). Runs
# the same fio jobs on every device, one device at a time, and leaves what
# each fio run measured in the output directory; the host turns that into
# records (tests/bench-record.py says what is where) and the report
# (tests/bench-report.py). Nothing here needs python: it starts slowly in
# the emulated guest.
#
#   tests/vm/vm-run.sh --mem 3G -- tests/vm/bench-matrix.sh BOOT
#
# BOOT names this VM run in the records (tests/bench.sh: "main", "scaling").
# Env (tests/bench.sh sets them from its options):
#   AZBUSE_BENCH_DEVICES  devices, in order (bench-devices.sh lists them)
#   AZBUSE_BENCH_JOBS     jobs (below), default all
#   AZBUSE_BENCH_RUNTIME  seconds per fio run (default 5)
#   AZBUSE_BENCH_REPEATS  runs of each job on each device (default 3); every
#                         repeat sets every device up again, in turn, so a
#                         change in the host's load falls on all of them
#   AZBUSE_BENCH_SIZE_MB  device size and fio's range (default 512)
#   AZBUSE_BENCH_RAW      output directory (default $AZBUSE_VM_OUT)
#   AZBUSE_BUILD_DIR      build directory (default ./build)
# Jobs (fio, io_uring, O_DIRECT, time-based, over the first SIZE_MB):
#   randread-4k-qd1         randwrite-4k-qd1          4k random, depth 1, 1 job
#   randread-4k-qd32        randwrite-4k-qd32         depth 32, 1 job
#   randread-4k-qd32-percpu randwrite-4k-qd32-percpu  depth 32, one job per vCPU
#   read-128k-qd8  write-128k-qd8  read-1m-qd8  write-1m-qd8   sequential, 1 job
# Devices that need writing (FILL=1) are written once with dd before their
# jobs. Exit status 1 if any device failed to set up or any fio run failed;
# a device that cannot exist here (ublk without ublksrv) is skipped, not failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$(cd "${AZBUSE_BUILD_DIR:-$top/build}" && pwd)
CTL=$build/tools/azbusectl
THIN=$build/tools/azbuse-thin
MODULE=${AZBUSE_MODULE:-$build/kmod/azbuse.ko}
RUST_RAMDISK=$build/bindings/rust/target/release/examples/azbuse-ramdisk
SIZE_MB=${AZBUSE_BENCH_SIZE_MB:-512}
boot=${1:?usage: bench-matrix.sh BOOT}
runtime=${AZBUSE_BENCH_RUNTIME:-5}
repeats=${AZBUSE_BENCH_REPEATS:-3}
raw=${AZBUSE_BENCH_RAW:-${AZBUSE_VM_OUT:?not in the test VM (no AZBUSE_VM_OUT)}}
all_jobs="randread-4k-qd1 randwrite-4k-qd1 randread-4k-qd32 randwrite-4k-qd32
	randread-4k-qd32-percpu randwrite-4k-qd32-percpu read-128k-qd8 write-128k-qd8
	read-1m-qd8 write-1m-qd8"
# lists: words separated by blanks, newlines or commas
words() { tr ',\n\t' '   ' <<<"$1"; }
read -r -a devices <<<"$(words "${AZBUSE_BENCH_DEVICES:?no devices}")"
read -r -a jobs <<<"$(words "${AZBUSE_BENCH_JOBS:-$all_jobs}")"
# shellcheck source-path=SCRIPTDIR source=bench-devices.sh
. "$here/bench-devices.sh"

# job_spec JOB: prints "RW BS IODEPTH NUMJOBS"
job_spec() {
	local rw bs qd nj=1
	case $1 in
	rand*-4k-qd*) rw=${1%%-*} bs=4k ;;
	read-* | write-*) rw=${1%%-*} bs=${1#*-} bs=${bs%%-*} ;;
	*) return 1 ;;
	esac
	qd=${1#*-qd}
	qd=${qd%%-*}
	case $1 in *-percpu) nj=$(nproc) ;; esac
	[[ $qd =~ ^[0-9]+$ ]] || return 1
	echo "$rw $bs $qd $nj"
}

for j in "${jobs[@]}"; do
	job_spec "$j" >/dev/null || { echo "bench: unknown job '$j' (jobs: $(words "$all_jobs"))" >&2; exit 2; }
done
for t in fio dmsetup; do
	command -v "$t" >/dev/null || { echo "bench: $t is missing: run tests/vm/install-deps.sh" >&2; exit 2; }
done
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
tmp=$(mktemp -d /tmp/bench.XXXXXX)
current=
# fio runs it (exec_prerun/postrun) in each job right before and after its
# I/O: one line per call, "SECONDS cpu ...", written at once (O_APPEND).
# Shell builtins only: a process started after the I/O would count in it.
# shellcheck disable=SC2016 # expanded by the script, not here
printf '%s\n' '#!/bin/bash' 'read -r line </proc/stat' \
	'echo "$EPOCHREALTIME $line" >>"$1"' >"$tmp/snap"
chmod +x "$tmp/snap"
# fio also leaves the command's output in ./NAME.prerun.txt
cd "$tmp"

cleanup() {
	local rc=$?
	set +e
	[ -z "$current" ] || dev_down "$current" >/dev/null 2>&1
	rm -rf "$tmp"
	return "$rc"
}
trap cleanup EXIT

declare -A failed skipped
status() { # DEVICE STATUS MESSAGE
	printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$raw/status"
}
fail() { # DEVICE MESSAGE
	echo "bench: FAIL $1: $2" >&2
	failed[$1]="${failed[$1]:+${failed[$1]}; }$2"
}

# run_job DEVICE JOB REPEAT: one fio run on $DEV, its files in $raw/runs/NNNN
nrun=0
run_job() {
	local spec rw bs qd nj t0 t1 d
	spec=$(job_spec "$2")
	read -r rw bs qd nj <<<"$spec"
	nrun=$((nrun + 1))
	d=$raw/runs/$(printf %04d "$nrun")
	mkdir -p "$d"
	printf '%s\n' "device=$1" "job=$2" "repeat=$3" "rw=$rw" "bs=$bs" "iodepth=$qd" \
		"numjobs=$nj" "runtime_s=$runtime" "size_mb=$SIZE_MB" "vcpus=$(nproc)" >"$d/args"
	[ -z "$AZ_ID" ] || "$CTL" info "$AZ_ID" --json >"$d/az0" || return 1
	cp /proc/stat "$d/stat0"
	t0=$(date +%s.%N)
	fio --name=bench --filename="$DEV" --rw="$rw" --bs="$bs" --iodepth="$qd" \
		--numjobs="$nj" --ioengine=io_uring --direct=1 --size="${SIZE_MB}M" \
		--time_based --runtime="$runtime" --norandommap --randrepeat=0 \
		--lat_percentiles=1 --group_reporting --eta=never --output-format=json --output="$d/fio.json" \
		--exec_prerun="$tmp/snap $d/pre" --exec_postrun="$tmp/snap $d/post" ||
		return 1
	t1=$(date +%s.%N)
	cp /proc/stat "$d/stat1"
	[ -z "$AZ_ID" ] || "$CTL" info "$AZ_ID" --json >"$d/az1" || return 1
	echo "elapsed_whole_fio_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" >>"$d/args"
	say "$1 $2 #$3: $(fio_summary "$d/fio.json" "$rw")"
}

# fio_summary FIO.json RW: "N IOPS" from fio's JSON (for the console only)
fio_summary() {
	local side=read
	[[ $2 == *write* ]] && side="write"
	awk -v side="\"$side\"" '$1 == side { in_side = 1 }
		in_side && $1 == "\"iops\"" { sub(/,$/, "", $3); printf "%.0f IOPS\n", $3; exit }' "$1"
}

say() { echo "bench: [+$((SECONDS - start_s))s] $*"; }

start_s=$SECONDS
rm -rf "$raw/runs" "$raw/status" "$raw/meta"
printf '%s\n' "boot=$boot" "vcpus=$(nproc)" \
	"mem_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)" "kernel=$(uname -r)" \
	"fio=$(fio --version)" "runtime_s=$runtime" "repeats=$repeats" "size_mb=$SIZE_MB" \
	"devices=${devices[*]}" "jobs=${jobs[*]}" "started=$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$raw/meta"

echo "bench: $boot: $(nproc) vCPUs, ${#devices[@]} devices x ${#jobs[@]} jobs x $repeats repeats, ${runtime}s each, ${SIZE_MB} MiB"
for rep in $(seq "$repeats"); do
	for d in "${devices[@]}"; do
		if [ -n "${skipped[$d]:-}" ] || [ -n "${failed[$d]:-}" ]; then
			continue
		fi
		if why=$(dev_skip "$d"); then
			skipped[$d]=$why
			say "SKIP $d: $why"
			continue
		fi
		say "repeat $rep/$repeats: $d"
		current=$d
		t0=$SECONDS
		if ! dev_up "$d"; then
			fail "$d" "setup failed (repeat $rep)"
			dev_down "$d" >/dev/null 2>&1 || true
			current=
			continue
		fi
		if [ "$FILL" = 1 ]; then
			if ! dd if=/dev/zero of="$DEV" bs=1M count="$SIZE_MB" oflag=direct status=none; then
				fail "$d" "writing it once failed (repeat $rep)"
			fi
		fi
		say "$d set up$([ "$FILL" = 0 ] || echo " and written once") ($((SECONDS - t0)) s)"
		for j in "${jobs[@]}"; do
			[ -z "${failed[$d]:-}" ] || break
			run_job "$d" "$j" "$rep" || fail "$d" "fio $j failed (repeat $rep)"
		done
		dev_down "$d" || fail "$d" "teardown failed (repeat $rep)"
		current=
	done
done

ok=0 bad=0 skip=0
for d in "${devices[@]}"; do
	if [ -n "${skipped[$d]:-}" ]; then
		status "$d" skip "${skipped[$d]}"
		skip=$((skip + 1))
	elif [ -n "${failed[$d]:-}" ]; then
		status "$d" fail "${failed[$d]}"
		bad=$((bad + 1))
	else
		status "$d" ok ""
		ok=$((ok + 1))
	fi
done
say "$boot: $ok devices ok, $bad failed, $skip skipped"
[ "$bad" -eq 0 ]
