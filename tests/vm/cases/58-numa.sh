#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 58-numa: with two NUMA nodes, each worker runs only on its queue's node's
# CPUs and allocates its memory from that node: its Cpus_allowed_list and
# Mems policy (/proc/PID/status, numa_maps) and where its ring and data pages
# are; a device's RAM cache is interleaved over the nodes of its queues.
# Skipped unless the VM has two nodes (tests/vm/vm-run.sh --numa).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

nodes=$(find /sys/devices/system/node -maxdepth 1 -name 'node[0-9]*' | wc -l)
[ "$nodes" -ge 2 ] || skip "needs two NUMA nodes (vm-run.sh --numa)"

dev=$(add_mem_device 1 128M --queues 2)
dd if=/dev/urandom of="$dev" bs=64k count=256 oflag=direct status=none
for q in 0 1; do
	pid=$(queue_counter 1 "$q" worker_pid)
	[ -n "$pid" ] && [ "$pid" -gt 1 ] || die "no worker on queue $q"
	# the CPUs blk-mq maps to this queue, and their node
	cpus=$(cat "/sys/block/azbuse1/mq/$q/cpu_list" | tr -d ' ')
	first=${cpus%%[,-]*}
	node=$(find /sys/devices/system/cpu/cpu"$first" -maxdepth 1 -name 'node*' -printf '%f\n' | tr -dc 0-9)
	node_cpus=$(cat "/sys/devices/system/node/node$node/cpulist")
	allowed=$(awk '/^Cpus_allowed_list/ { print $2 }' "/proc/$pid/status")
	log "queue $q: cpus $cpus on node $node ($node_cpus); worker $pid allowed on $allowed"
	[ "$allowed" = "$node_cpus" ] || die "worker $pid may run on $allowed, not only node $node's $node_cpus"
	# memory: the worker's policy prefers its node, and the ring/data pages
	# the module allocated for the queue are on it
	grep -q "prefer:$node" "/proc/$pid/numa_maps" ||
		die "worker $pid's memory policy does not prefer node $node"
	ring_line=$(grep 'azbusec1' "/proc/$pid/numa_maps" | head -1)
	log "  numa_maps: $ring_line"
	if grep -Eq " N[0-9]+=" <<<"$ring_line"; then
		grep -q " N$node=" <<<"$ring_line" || die "queue $q's ring pages are not on node $node"
		grep -Eo " N[0-9]+=" <<<"$ring_line" | grep -vq " N$node=" &&
			die "queue $q's ring pages are on another node too"
	fi
done
remove_device 1

# the RAM cache: with one queue per node, its region is interleaved over both
# nodes (one queue on one node: there)
dev=$(add_mem_device 1 64M --queues 2 --cache 32M)
sup=$(supervisor_pids | head -1)
cache_line=$(grep -E 'interleave:0-1|bind:[0-9]' "/proc/$sup/numa_maps" | grep -v azbuse | head -1 || true)
[ -n "$cache_line" ] || grep -h cache /run/azbuse/supervisor-*.log >&2 || true
log "cache numa_maps: ${cache_line:-none}"
q0=$(tr -d ' ' </sys/block/azbuse1/mq/0/cpu_list)
q1=$(tr -d ' ' </sys/block/azbuse1/mq/1/cpu_list)
log "queue 0 cpus $q0, queue 1 cpus $q1"
grep -q 'interleave:0-1' <<<"$cache_line" ||
	die "the cache of a device whose queues span both nodes is not interleaved over them"
remove_device 1
log "ok"
