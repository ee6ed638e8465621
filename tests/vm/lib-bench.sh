#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# lib-bench.sh: fio helpers for block-device benchmarks in the test VM, sourced
# by bench-baseline.sh and by the azbuse benchmarks.
#
#   . tests/vm/lib-bench.sh
#   bench_device NAME PATH    # 4k randread + randwrite on PATH, prints BENCH lines
#   bench_table               # table of everything measured so far
#   wait_for_dev PATH         # a block device node within 10 s, or 1
#   dm_create NAME TABLE / dm_remove NAME...   # device-mapper devices and their nodes
#   perf_begin WORKDIR / perf_end WORKDIR OUT COMMS  # a system-wide CPU profile
#
# Each measurement is fio, 4 KiB random I/O, iodepth 32, libaio, O_DIRECT, one
# job, time-based: ${AZBUSE_BENCH_RUNTIME:-10} seconds (plus 1 s ramp-up).
# Per measurement it prints one machine-readable line:
#   BENCH dev=NAME rw=randread iops=12345 lat_us=2.59 bs=4k iodepth=32 runtime=10
# bench_device WRITES to PATH: only give it scratch devices.

BENCH_RUNTIME=${AZBUSE_BENCH_RUNTIME:-10}
BENCH_RESULTS=()

# bench_fio PATH RW: runs one fio job, prints "IOPS LAT_US" (mean total latency).
bench_fio() {
	local path=$1 rw=$2 terse
	terse=$(fio --name=bench --filename="$path" --rw="$rw" --bs=4k \
		--iodepth=32 --ioengine=libaio --direct=1 --numjobs=1 \
		--time_based --runtime="$BENCH_RUNTIME" --ramp_time=1 \
		--norandommap --randrepeat=0 --group_reporting \
		--output-format=terse --terse-version=3) || return 1
	# Terse v3: field 5 error, 8/40 read iops/mean lat (us), 49/81 write ones.
	awk -F';' -v rw="$rw" '
		$5 != 0 { print "fio error " $5 > "/dev/stderr"; exit 1 }
		rw ~ /read/ { printf "%d %.2f\n", $8, $40; exit }
		{ printf "%d %.2f\n", $49, $81; exit }' <<<"$terse"
}

# bench_device NAME PATH: measures 4k randread and randwrite on PATH.
bench_device() {
	local name=$1 path=$2 rw res iops lat
	if [ ! -b "$path" ]; then
		echo "bench_device: $path is not a block device" >&2
		return 1
	fi
	for rw in randread randwrite; do
		res=$(bench_fio "$path" "$rw") || {
			echo "bench_device: fio $rw on $path failed" >&2
			return 1
		}
		read -r iops lat <<<"$res"
		echo "BENCH dev=$name rw=$rw iops=$iops lat_us=$lat bs=4k iodepth=32 runtime=$BENCH_RUNTIME"
		BENCH_RESULTS+=("$name $rw $iops $lat")
	done
}

# fill_device PATH: writes the whole device once, so that RAM-backed devices
# (brd, azbuse mem) are measured in steady state rather than while they
# allocate a page on first touch.
fill_device() {
	local mib=$(($(blockdev --getsize64 "$1") >> 20))
	dd if=/dev/zero of="$1" bs=1M count="$mib" oflag=direct status=none
}

# bench_table: prints the results of every bench_device call so far.
bench_table() {
	local r
	printf '%-12s %-10s %10s %10s\n' device rw iops lat_us
	for r in "${BENCH_RESULTS[@]}"; do
		# shellcheck disable=SC2086 # split the record on purpose
		printf '%-12s %-10s %10s %10s\n' $r
	done
}

# wait_for_dev PATH: waits up to 10 s for a block device node; 1 (and says
# so) if it does not appear.
wait_for_dev() {
	local _
	for _ in $(seq 100); do
		[ -b "$1" ] && return 0
		sleep 0.1
	done
	echo "$(basename "$0"): $1 did not appear" >&2
	return 1
}

# dm_create NAME TABLE: a device-mapper device, and its /dev/mapper node
# (the guest runs no udev, and dmsetup leaves /dev/mapper alone).
dm_create() {
	dmsetup create "$1" --table "$2"
	dmsetup mknodes "$1"
}

# dm_remove NAME...: removes them (retrying a while if busy) and their nodes.
dm_remove() {
	local name _
	for name; do
		if dmsetup info "$name" >/dev/null 2>&1; then
			for _ in $(seq 50); do
				dmsetup remove "$name" 2>/dev/null && break
				sleep 0.2
			done
		fi
		rm -f "/dev/mapper/$name"
	done
}

# perf_begin WORKDIR: starts `perf record -a -g -e cpu-clock` into WORKDIR
# (the guest's RAM: a shared directory, 9p, would slow the guest down more
# than perf does) and returns once it samples. perf starts disabled and is
# enabled once it is ready (its start-up takes seconds under emulation):
# its ack says it is sampling.
perf_begin() {
	command -v perf >/dev/null || {
		echo "no perf for the profile: apt-get install linux-perf" >&2
		return 1
	}
	mkfifo "$1/perf.ctl" "$1/perf.ack"
	perf record -a -g -e cpu-clock -D -1 --control "fifo:$1/perf.ctl,$1/perf.ack" \
		-o "$1/perf.data" >/dev/null 2>&1 &
	PERF_PID=$!
	exec 8<>"$1/perf.ctl" 9<>"$1/perf.ack"
	echo enable >&8
	read -r -t 300 -u 9 _ || echo "perf did not start sampling" >&2
}

# perf_end WORKDIR OUT COMMS: stops it and writes OUT.self.txt (by process,
# object and symbol), OUT.comm.txt (by process and object), OUT.children.txt
# (symbols with what they call) and OUT.server.txt (the same for the
# processes named in COMMS, comma-separated; none if COMMS is empty).
perf_end() {
	local data=$1/perf.data
	kill -INT "$PERF_PID"
	wait "$PERF_PID" || true
	exec 8>&- 9>&-
	rm -f "$1/perf.ctl" "$1/perf.ack"
	perf report -i "$data" --no-children --sort comm,dso,sym -g none --percent-limit 0.3 \
		--stdio 2>/dev/null >"$2.self.txt" || true
	perf report -i "$data" --no-children --sort comm,dso -g none \
		--stdio 2>/dev/null >"$2.comm.txt" || true
	perf report -i "$data" --children --sort sym -g none --percent-limit 2 \
		--stdio 2>/dev/null >"$2.children.txt" || true
	[ -z "$3" ] || perf report -i "$data" --comms "$3" --children --sort sym -g none \
		--percent-limit 0.5 --stdio 2>/dev/null >"$2.server.txt" || true
	rm -f "$data"
}
