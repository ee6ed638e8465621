#!/usr/bin/env bash
# bench-matrix.sh: runs INSIDE the test VM (started by tests/bench.sh). Runs
# the same fio jobs on every device, one device at a time, and appends one
# JSON record per fio run (bench-record.py) to the raw file; the host turns
# them into the report (tests/bench-report.py).
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
#   AZBUSE_BENCH_RAW      where the records go (default $AZBUSE_VM_OUT/raw.jsonl)
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
MODULE=$top/kmod/azbuse.ko
SIZE_MB=${AZBUSE_BENCH_SIZE_MB:-512}
boot=${1:?usage: bench-matrix.sh BOOT}
runtime=${AZBUSE_BENCH_RUNTIME:-5}
repeats=${AZBUSE_BENCH_REPEATS:-3}
raw=${AZBUSE_BENCH_RAW:-${AZBUSE_VM_OUT:?not in the test VM (no AZBUSE_VM_OUT)}/raw.jsonl}
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
for t in fio python3 dmsetup; do
	command -v "$t" >/dev/null || { echo "bench: $t is missing: run tests/vm/install-deps.sh" >&2; exit 2; }
done
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
tmp=$(mktemp -d /tmp/bench.XXXXXX)
current=
# fio runs it (exec_prerun/postrun) in each job right before and after its
# I/O: one line per call, "SECONDS cpu ...", written at once (O_APPEND)
# shellcheck disable=SC2016 # expanded by the script, not here
printf '%s\n' '#!/bin/sh' 'line="$(date +%s.%N) $(grep "^cpu " /proc/stat)"' \
	'echo "$line" >>"$1"' >"$tmp/snap"
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
	python3 -c 'import json, sys; print(json.dumps({"type": "status", "boot": sys.argv[1],
		"device": sys.argv[2], "status": sys.argv[3], "message": sys.argv[4]}))' \
		"$boot" "$1" "$2" "$3" >>"$raw"
}
fail() { # DEVICE MESSAGE
	echo "bench: FAIL $1: $2" >&2
	failed[$1]="${failed[$1]:+${failed[$1]}; }$2"
}

# run_job DEVICE JOB REPEAT: one fio run on $DEV, recorded
run_job() {
	local spec rw bs qd nj t0 t1 az=()
	spec=$(job_spec "$2")
	read -r rw bs qd nj <<<"$spec"
	if [ -n "$AZ_ID" ]; then
		"$CTL" info "$AZ_ID" --json >"$tmp/az0" || return 1
		az=(--az0 "$tmp/az0" --az1 "$tmp/az1")
	fi
	: >"$tmp/pre"
	: >"$tmp/post"
	cp /proc/stat "$tmp/stat0"
	t0=$(date +%s.%N)
	fio --name=bench --filename="$DEV" --rw="$rw" --bs="$bs" --iodepth="$qd" \
		--numjobs="$nj" --ioengine=io_uring --direct=1 --size="${SIZE_MB}M" \
		--time_based --runtime="$runtime" --norandommap --randrepeat=0 \
		--group_reporting --eta=never --output-format=json --output="$tmp/fio.json" \
		--exec_prerun="$tmp/snap $tmp/pre" --exec_postrun="$tmp/snap $tmp/post" ||
		return 1
	t1=$(date +%s.%N)
	cp /proc/stat "$tmp/stat1"
	[ -z "$AZ_ID" ] || "$CTL" info "$AZ_ID" --json >"$tmp/az1" || return 1
	python3 "$here/bench-record.py" --fio "$tmp/fio.json" --pre "$tmp/pre" \
		--post "$tmp/post" --stat0 "$tmp/stat0" \
		--stat1 "$tmp/stat1" --elapsed "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
		"${az[@]}" --out "$raw" boot="$boot" device="$1" job="$2" repeat="$3" \
		rw="$rw" bs="$bs" iodepth="$qd" numjobs="$nj" runtime_s="$runtime" size_mb="$SIZE_MB"
}

python3 - "$boot" "$runtime" "$repeats" "$SIZE_MB" "${devices[*]}" "${jobs[*]}" >>"$raw" <<'EOF'
import json, os, platform, subprocess, sys, time
boot, runtime, repeats, size, devs, jobs = sys.argv[1:]
mem = [l for l in open("/proc/meminfo") if l.startswith("MemTotal")][0].split()[1]
print(json.dumps({"type": "meta", "boot": boot, "vcpus": os.cpu_count(),
	"mem_kib": int(mem), "kernel": platform.release(),
	"fio": subprocess.run(["fio", "--version"], capture_output=True, text=True).stdout.strip(),
	"runtime_s": int(runtime), "repeats": int(repeats), "size_mb": int(size),
	"devices": devs.split(), "jobs": jobs.split(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
EOF

echo "bench: $boot: $(nproc) vCPUs, ${#devices[@]} devices x ${#jobs[@]} jobs x $repeats repeats, ${runtime}s each, ${SIZE_MB} MiB"
for rep in $(seq "$repeats"); do
	for d in "${devices[@]}"; do
		if [ -n "${skipped[$d]:-}" ]; then
			continue
		fi
		if why=$(dev_skip "$d"); then
			skipped[$d]=$why
			echo "bench: SKIP $d: $why"
			continue
		fi
		echo "bench: [$rep/$repeats] $d"
		current=$d
		if ! dev_up "$d"; then
			fail "$d" "setup failed (repeat $rep)"
			dev_down "$d" >/dev/null 2>&1 || true
			current=
			continue
		fi
		if [ "$FILL" = 1 ]; then
			t0=$SECONDS
			if ! dd if=/dev/zero of="$DEV" bs=1M count="$SIZE_MB" oflag=direct status=none; then
				fail "$d" "writing it once failed (repeat $rep)"
			fi
			echo "bench: $d written once ($((SECONDS - t0)) s)"
		fi
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
echo "bench: $boot: $ok devices ok, $bad failed, $skip skipped"
[ "$bad" -eq 0 ]
