#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench-rbd.sh: runs INSIDE the test VM. The rbd engine beside its peers on
# one Ceph cluster (tests/vm/ceph-cluster.sh, started here) and one image:
# rbd-nbd (librbd behind NBD) and krbd (the kernel's client, `rbd map`).
# fio (libaio, O_DIRECT, time-based) 4k random read and write at depth 1 and
# 32, and 1M sequential read and write at depth 8; each device writes the
# image whole once before it is measured. azbuse-rbd is the engine with
# everything through librbd (-o direct=off). azbuse-rbd-objects has its
# object path through librados (-o direct=on): a read or write within one
# RADOS object goes to it directly, past librbd's dispatch. azbuse-rbd-wire
# is the default, the object path over azbuse's own RADOS messenger (-o
# direct=wire, engine/rbd/osd_wire.c): no librados objecter or messenger
# threads on the data path. azbuse-rbd-cache is the default behind a RAM
# cache larger than the image (--cache, write-through): the image is read
# once more before it is measured, so the reads hit. Prints
# one line per run and a table with the ratios to rbd-nbd and krbd.
#
#   tests/vm/vm-run.sh --mem 3G -- tests/vm/bench-rbd.sh [SECONDS_PER_RUN] [IMAGE_MB]
#
# AZBUSE_RBD_DEVICES: which of them, in order (default "azbuse-rbd
# azbuse-rbd-objects azbuse-rbd-wire azbuse-rbd-cache rbd-nbd krbd"); AZBUSE_RBD_OPTS: more options for
# azbusectl add (e.g. --queues 1); AZBUSE_RBD_CONF: the ceph.conf of a
# cluster that runs elsewhere (tests/bench-rbd-host.sh: on the host, reached
# through vm-run.sh --net) instead of one started here; AZBUSE_RBD_PROFILE: a
# directory, where each device's 4k random read at depth 32 leaves a
# system-wide CPU profile (perf_end in lib-bench.sh: DEVICE.comm.txt, ...);
# AZBUSE_RBD_REPEAT=N: N rounds over the devices (each fills the image
# again), the tables giving each figure's median (the host's load moves
# single runs by a third here).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${AZBUSE_BUILD_DIR:-$top/build}
ctl=$build/tools/azbusectl
runtime=${1:-10}
mb=${2:-256}
dir=/run/azbuse-ceph-bench
. "$here/lib-bench.sh"

cleanup() {
	"$ctl" remove 3 --force >/dev/null 2>&1 || true
	rbd-nbd unmap /dev/nbd0 >/dev/null 2>&1 || true
	rbd unmap -o noudev /dev/rbd0 >/dev/null 2>&1 || true
	if [ -n "${AZBUSE_RBD_CONF:-}" ]; then
		rbd rm rbd/bench >/dev/null 2>&1 || true
	else
		"$here/ceph-cluster.sh" stop "$dir" || true
	fi
}
trap cleanup EXIT

lsmod | grep -q '^azbuse ' || insmod "${AZBUSE_MODULE:-$build/kmod/azbuse.ko}"
modprobe nbd nbds_max=1
modprobe rbd
start=$SECONDS
if [ -n "${AZBUSE_RBD_CONF:-}" ]; then
	conf=$AZBUSE_RBD_CONF
	echo "bench-rbd: the cluster of $conf"
else
	# (BlueStore needs room beside the data: a store much smaller than 1 GiB
	# fills up, and a full OSD blocks writes instead of failing them)
	store=$((mb * 3 > 1024 ? mb * 3 : 1024))
	conf=$("$here/ceph-cluster.sh" start "$dir" "$store")
	echo "bench-rbd: the cluster started in $((SECONDS - start)) s"
fi
export CEPH_CONF=$conf
rbd create --size "${mb}M" --image-feature layering rbd/bench

# cpu_sample FILE: the guest's CPU counters (/proc/stat's "cpu" line) at
# 1.5 s into a run (after fio's ramp) and 1.5 s before its end, into FILE.
cpu_sample() {
	local line
	sleep 1.5
	read -r line </proc/stat
	echo "$line" >"$1"
	sleep $((runtime - 1))
	read -r line </proc/stat
	echo "$line" >>"$1"
}

# run DEVICE JOB RW BS DEPTH: one fio run; prints "DEVICE JOB IOPS MB/s
# LAT_US CPU_US": CPU_US is the guest CPU time per I/O (all processes,
# kernel included: the client's whole cost, from cpu_sample's window).
run() {
	local out sampler
	cpu_sample /run/bench-rbd-cpu &
	sampler=$!
	out=$(fio --name=bench --filename="$1" --rw="$3" --bs="$4" --iodepth="$5" \
		--ioengine=libaio --direct=1 --numjobs=1 --time_based --runtime="$runtime" \
		--ramp_time=1 --norandommap --randrepeat=0 --output-format=terse \
		--terse-version=3) || { echo "bench-rbd: fio $2 on $1 failed" >&2; return 1; }
	wait "$sampler"
	awk -F';' -v dev="$dev" -v job="$2" -v rw="$3" -v cpus="$(nproc)" \
		-v s0="$(head -1 /run/bench-rbd-cpu)" -v s1="$(tail -1 /run/bench-rbd-cpu)" '
		function busy_share(   a, b, i, busy, all) { # of all CPUs, between the samples
			split(s0, a, " "); split(s1, b, " ")
			for (i = 2; i <= 9; i++) { all += b[i] - a[i]; if (i != 5 && i != 6) busy += b[i] - a[i] }
			return all ? busy / all : 0
		}
		$5 != 0 { print "fio error " $5 > "/dev/stderr"; exit 1 }
		{ iops = rw ~ /read/ ? $8 : $49; cpu_us = iops ? busy_share() * cpus * 1e6 / iops : 0 }
		rw ~ /read/ { printf "%s %s %d %.1f %.0f %.0f\n", dev, job, $8, $7 / 1024, $40, cpu_us; exit }
		{ printf "%s %s %d %.1f %.0f %.0f\n", dev, job, $49, $48 / 1024, $81, cpu_us; exit }' <<<"$out"
}

results=()
measure() { # DEVICE PATH [warm]
	local dev=$1 path=$2 line prof
	wait_for_dev "$path"
	fill_device "$path"
	[ "${3:-}" != warm ] || dd if="$path" of=/dev/null bs=64k iflag=direct status=none
	for spec in "randread-4k-qd1 randread 4k 1" "randwrite-4k-qd1 randwrite 4k 1" \
		"randread-4k-qd32 randread 4k 32" "randwrite-4k-qd32 randwrite 4k 32" \
		"read-1m-qd8 read 1m 8" "write-1m-qd8 write 1m 8"; do
		prof=
		[ -z "${AZBUSE_RBD_PROFILE:-}" ] || [ "${spec%% *}" != randread-4k-qd32 ] ||
			prof=$AZBUSE_RBD_PROFILE/$dev
		[ -z "$prof" ] || { mkdir -p "$AZBUSE_RBD_PROFILE" /run/bench-rbd-perf &&
			perf_begin /run/bench-rbd-perf; }
		# shellcheck disable=SC2086 # the spec's words are run's arguments
		line=$(run "$path" $spec)
		[ -z "$prof" ] || perf_end /run/bench-rbd-perf "$prof" \
			azbuse-engine-r,msgr-worker-0,msgr-worker-1,msgr-worker-2,io_context_pool,fn-radosclient,rbd_reader,rbd_writer
		echo "BENCH $line"
		results+=("$line")
	done
}

for round in $(seq "${AZBUSE_RBD_REPEAT:-1}"); do
	[ "${AZBUSE_RBD_REPEAT:-1}" = 1 ] || echo "bench-rbd: round $round"
	for d in ${AZBUSE_RBD_DEVICES:-azbuse-rbd azbuse-rbd-objects azbuse-rbd-wire azbuse-rbd-cache rbd-nbd krbd}; do
		case $d in
		azbuse-rbd)
			# shellcheck disable=SC2086 # options, word by word
			"$ctl" add 3 --engine=rbd --image rbd/bench --conf "$conf" -o direct=off \
				${AZBUSE_RBD_OPTS:-} >/dev/null
			measure azbuse-rbd /dev/azbuse3
			"$ctl" remove 3
			;;
		azbuse-rbd-objects)
			# shellcheck disable=SC2086 # options, word by word
			"$ctl" add 3 --engine=rbd --image rbd/bench --conf "$conf" -o direct=on \
				${AZBUSE_RBD_OPTS:-} >/dev/null
			measure azbuse-rbd-objects /dev/azbuse3
			"$ctl" remove 3
			;;
		azbuse-rbd-wire)
			# shellcheck disable=SC2086 # options, word by word
			"$ctl" add 3 --engine=rbd --image rbd/bench --conf "$conf" -o direct=wire \
				${AZBUSE_RBD_OPTS:-} >/dev/null
			measure azbuse-rbd-wire /dev/azbuse3
			"$ctl" remove 3
			;;
		azbuse-rbd-cache)
			# shellcheck disable=SC2086 # options, word by word
			"$ctl" add 3 --engine=rbd --image rbd/bench --conf "$conf" \
				--cache $((mb + mb / 4))M ${AZBUSE_RBD_OPTS:-} >/dev/null
			"$ctl" cache 3 --seq-cutoff 0 >/dev/null
			measure azbuse-rbd-cache /dev/azbuse3 warm
			"$ctl" remove 3
			;;
		rbd-nbd)
			nbd=$(rbd-nbd map rbd/bench)
			measure rbd-nbd "$nbd"
			rbd-nbd unmap "$nbd"
			;;
		krbd)
			# (the guest runs no udev: rbd must not wait for it; devtmpfs makes the node)
			krbd=$(rbd map -o noudev rbd/bench)
			measure krbd "$krbd"
			rbd unmap -o noudev "$krbd"
			;;
		*)
			echo "bench-rbd: no device $d (azbuse-rbd, azbuse-rbd-objects, azbuse-rbd-wire, azbuse-rbd-cache, rbd-nbd, krbd)" >&2
			exit 2
			;;
		esac
	done
done

# medians FIELD JOB: "DEVICE MEDIAN" of field FIELD (3: IOPS, 6: CPU per I/O) of JOB's runs
medians() {
	printf '%s\n' "${results[@]}" | awk -v f="$1" -v job="$2" '
		$2 == job { runs[$1] = runs[$1] " " $f }
		END {
			for (d in runs) {
				n = split(runs[d], v, " ")
				for (i = 2; i <= n; i++) # (insertion sort: a few rounds)
					for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
				print d, n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
			}
		}'
}

jobs="randread-4k-qd1 randwrite-4k-qd1 randread-4k-qd32 randwrite-4k-qd32 read-1m-qd8 write-1m-qd8"
echo
printf '| job | azbuse-rbd IOPS | object path IOPS | own messenger IOPS | +cache IOPS | rbd-nbd IOPS | krbd IOPS | ×rbd-nbd | ×krbd | object path ×rbd-nbd | own messenger ×rbd-nbd | own messenger ×krbd | +cache ×rbd-nbd |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
for job in $jobs; do
	medians 3 "$job" | awk -v job="$job" '
		{ iops[$1] = $2 }
		END {
			a = iops["azbuse-rbd"]; l = iops["azbuse-rbd-objects"]; c = iops["azbuse-rbd-cache"]
			w = iops["azbuse-rbd-wire"]; n = iops["rbd-nbd"]; k = iops["krbd"]
			printf "| %s | %d | %d | %d | %d | %d | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", job, a, l, w, c, n, k,
				n ? a / n : 0, k ? a / k : 0, n ? l / n : 0, n ? w / n : 0, k ? w / k : 0, n ? c / n : 0
		}'
done
echo
echo "guest CPU time per I/O, us (all of the guest's CPUs, kernel included):"
printf '| job | azbuse-rbd | object path | own messenger | +cache | rbd-nbd | krbd |\n|---|---:|---:|---:|---:|---:|---:|\n'
for job in $jobs; do
	medians 6 "$job" | awk -v job="$job" '
		{ us[$1] = $2 }
		END {
			printf "| %s | %d | %d | %d | %d | %d | %d |\n", job, us["azbuse-rbd"], us["azbuse-rbd-objects"],
				us["azbuse-rbd-wire"], us["azbuse-rbd-cache"], us["rbd-nbd"], us["krbd"]
		}'
done
