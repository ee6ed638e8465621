#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench-rbd-host.sh: the rbd benchmark (tests/vm/bench-rbd.sh: azbuse-rbd,
# with the cache, rbd-nbd and krbd) against a Ceph cluster that runs on the
# host, natively, while the clients run in the test VM and reach it through
# QEMU's user network (vm-run.sh --net). In tests/vm/bench-rbd.sh's own
# setup the cluster runs in the VM beside the clients, and under emulation
# the OSD's CPU sets every figure; here the clients' own cost shows.
#
#   tests/bench-rbd-host.sh [SECONDS_PER_RUN] [IMAGE_MB]
#
# The cluster (tests/vm/ceph-cluster.sh) listens on the host's first global
# IPv4 address (CEPH_CLUSTER_ADDR to choose another), keeps its files in
# BUILD/ceph-host and is stopped at the end (BUILD: AZBUSE_BUILD_DIR, or
# build/, the build the VM runs). AZBUSE_* variables reach the
# guest (AZBUSE_RBD_DEVICES, AZBUSE_RBD_OPTS; AZBUSE_RBD_PROFILE=DIR: the
# profiles land in DIR/profile). Output: bench-rbd.sh's lines and table, on
# stdout.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
runtime=${1:-10}
mb=${2:-256}
# the build the VM runs (tests/vm/bench-rbd.sh takes AZBUSE_BUILD_DIR too):
# named here, so that a stale build/ is not measured by mistake
build=$(cd "${AZBUSE_BUILD_DIR:-build}" 2>/dev/null && pwd) || build=
dir=${build:-$top/build}/ceph-host

addr=${CEPH_CLUSTER_ADDR:-$(ip -4 -o addr show scope global | awk '{ sub("/.*", "", $4); print $4; exit }')}
[ -n "$addr" ] || {
	echo "bench-rbd-host.sh: the host has no global IPv4 address for the VM to reach (set CEPH_CLUSTER_ADDR)" >&2
	exit 2
}
if [ -z "$build" ] || [ ! -f "$build/kmod/azbuse.ko" ]; then
	echo "bench-rbd-host.sh: build first (no ${AZBUSE_BUILD_DIR:-build}/kmod/azbuse.ko)" >&2
	exit 2
fi
export AZBUSE_BUILD_DIR=$build
echo "bench-rbd-host.sh: the build in $build ($(stat -c %y "$build/tools/azbusectl" | cut -d. -f1))"

cleanup() { tests/vm/ceph-cluster.sh stop "$dir"; }
cleanup # a cluster left by an interrupted run holds the ports
trap cleanup EXIT
# (BlueStore needs room beside the data, see tests/vm/bench-rbd.sh, and
# its RocksDB grows with many rounds of 4k overwrites: with 1 GiB, BlueFS
# ran out of space in the third round of AZBUSE_RBD_REPEAT=3 and the OSD
# aborted. A sparse file on the host: 8 GiB costs what is written.)
store=$((mb * 8 > 8192 ? mb * 8 : 8192))
CEPH_CLUSTER_ADDR=$addr tests/vm/ceph-cluster.sh start "$dir" "$store" >/dev/null
echo "bench-rbd-host.sh: the cluster listens on $addr (host: $(nproc) cores)"
# the profiles go to the VM's output directory, shared with the host
vm_out=()
if [ -n "${AZBUSE_RBD_PROFILE:-}" ]; then
	mkdir -p "$AZBUSE_RBD_PROFILE"
	vm_out=(--out "$(cd "$AZBUSE_RBD_PROFILE" && pwd)")
	AZBUSE_RBD_PROFILE=${vm_out[1]}/profile
fi
AZBUSE_RBD_CONF=$dir/client.conf tests/vm/vm-run.sh --net --mem 3G --timeout 3000 "${vm_out[@]}" -- \
	tests/vm/bench-rbd.sh "$runtime" "$mb"
