#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# ceph-cluster.sh: a single-machine Ceph cluster for the rbd engine's tests,
# from Debian's packages: one monitor, one manager and one OSD on loopback,
# the OSD's BlueStore in a file of DIR (it survives a restart of the OSD,
# which memstore would not), cephx or no authentication, one replica. Made to
# start fast (under QEMU's emulation too): no erasure-code plugins (jerasure
# probes SIMD the emulated CPU lacks), no manager modules but what a pool
# needs, few threads, a small store.
#
#   tests/vm/ceph-cluster.sh start DIR [STORE_MB]   start it; prints DIR/ceph.conf
#   tests/vm/ceph-cluster.sh stop DIR               stop its daemons, remove DIR
#
# CEPH_CLUSTER_ADDR: the IPv4 address the daemons listen on (default
# 127.0.0.1). Another one (the host's, for the test VM's clients through
# QEMU's user network) lets clients of other machines in; they use
# DIR/client.conf (the monitor's address and client.admin's key, nothing of
# DIR).
#
# CEPH_CLUSTER_AUTH: cephx (default: what a real cluster runs; every
# daemon and client.admin have keys in DIR/keyring, and service tickets
# live CEPH_CLUSTER_TICKET_TTL seconds, default 3600, so that a test can
# see clients renew them) or none.
#
# start creates the pool "rbd" (rbd pool init) and returns once a test image
# can be written; the clients use `-c DIR/ceph.conf` (or CEPH_CONF). Prints
# how long each step took to stderr. Exit status 0, or 1 with the daemons'
# logs' tails.
set -euo pipefail

die() {
	echo "ceph-cluster.sh: $*" >&2
	[ -z "${dir:-}" ] || tail -n 20 "$dir"/*.log 2>/dev/null >&2 || true
	exit 1
}

cmd=${1:?usage: ceph-cluster.sh start|stop DIR [STORE_MB]}
dir=${2:?usage: ceph-cluster.sh start|stop DIR [STORE_MB]}
store_mb=${3:-1024}
conf=$dir/ceph.conf
addr=${CEPH_CLUSTER_ADDR:-127.0.0.1}
auth=${CEPH_CLUSTER_AUTH:-cephx}
ticket_ttl=${CEPH_CLUSTER_TICKET_TTL:-3600}
[[ $auth = cephx || $auth = none ]] || die "CEPH_CLUSTER_AUTH: cephx or none, not $auth"
[[ $ticket_ttl =~ ^[1-9][0-9]*$ ]] || die "CEPH_CLUSTER_TICKET_TTL: not a number of seconds: $ticket_ttl"
[[ $addr =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "CEPH_CLUSTER_ADDR: not an IPv4 address: $addr"

stop() {
	local pidf pid _
	for pidf in "$dir"/*.pid; do
		[ -f "$pidf" ] || continue
		pid=$(cat "$pidf")
		kill "$pid" 2>/dev/null || continue
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true # (it did not stop within 10 s)
	done
	rm -rf "$dir"
}

if [ "$cmd" = stop ]; then
	stop
	exit 0
fi
[ "$cmd" = start ] || die "unknown command $cmd"
for tool in ceph-mon ceph-mgr ceph-osd ceph monmaptool ceph-authtool rbd uuidgen; do
	command -v "$tool" >/dev/null || die "$tool is missing: apt-get install ceph-mon ceph-mgr ceph-osd ceph-common"
done

start=$SECONDS
elapsed() { echo "ceph-cluster.sh: $* ($((SECONDS - start)) s)" >&2; }

rm -rf "$dir"
mkdir -p "$dir/mon.a" "$dir/mgr.x" "$dir/osd.0"
fsid=$(uuidgen)
cat >"$conf" <<CONF
[global]
fsid = $fsid
mon host = v2:$addr:3300,v1:$addr:6789
public network = $addr/32
ms bind ipv6 = false
auth cluster required = $auth
auth service required = $auth
auth client required = $auth
auth allow insecure global id reclaim = false
auth service ticket ttl = $ticket_ttl
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd objectstore = bluestore
bluestore block create = true
bluestore block size = $((store_mb << 20))
bluestore block db create = false
bluestore block wal create = false
bluestore cache size = 67108864
bluestore fsck on mkfs = false
bluestore fsck on mount = false
osd erasure code plugins =
erasure code dir = $dir/no-ec-plugins
osd op num shards = 1
osd op num threads per shard = 2
osd max object name len = 256
osd max object namespace len = 64
mgr initial modules =
run dir = $dir
pid file = $dir/\$name.pid
log file = $dir/\$name.log
keyring = $dir/keyring
debug ms = 0
[mon.a]
mon data = $dir/mon.a
admin socket = $dir/mon.a.asok
[mgr.x]
mgr data = $dir/mgr.x
admin socket = $dir/mgr.x.asok
[osd.0]
osd data = $dir/osd.0
admin socket = $dir/osd.0.asok
[client]
# many clients at once (every queue of every device): no admin socket each
admin socket =
CONF
mkdir -p "$dir/no-ec-plugins"
# every daemon's key and client.admin's, imported by the monitor's mkfs
ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$dir/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
	--cap mgr 'allow *' >/dev/null
ceph-authtool "$dir/keyring" --gen-key -n mgr.x --cap mon 'allow profile mgr' --cap osd 'allow *' \
	>/dev/null
ceph-authtool "$dir/keyring" --gen-key -n osd.0 --cap mon 'allow profile osd' \
	--cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
cat >"$dir/client.conf" <<CONF
[global]
fsid = $fsid
mon host = v2:$addr:3300,v1:$addr:6789
auth cluster required = $auth
auth service required = $auth
auth client required = $auth
key = $(ceph-authtool "$dir/keyring" -n client.admin -p)
ms bind ipv6 = false
log file =
admin socket =
CONF
monmaptool --create --fsid "$fsid" --addv a "[v2:$addr:3300,v1:$addr:6789]" "$dir/monmap" >/dev/null
ceph-mon -c "$conf" -i a --mkfs --monmap "$dir/monmap" --keyring "$dir/keyring" ||
	die "ceph-mon --mkfs failed"
ceph-mon -c "$conf" -i a || die "ceph-mon did not start"
timeout 120 ceph -c "$conf" mon stat >/dev/null || die "the monitor does not answer"
elapsed "monitor up"

ceph-mgr -c "$conf" -i x || die "ceph-mgr did not start"

uuid=$(uuidgen)
id=$(timeout 60 ceph -c "$conf" osd new "$uuid") || die "ceph osd new failed"
[ "$id" = 0 ] || die "the new OSD is osd.$id, not osd.0"
ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$uuid" >"$dir/osd-mkfs.log" 2>&1 ||
	die "ceph-osd --mkfs failed"
ceph-osd -c "$conf" -i 0 || die "ceph-osd did not start"
for _ in $(seq 600); do
	ceph -c "$conf" osd stat 2>/dev/null | grep -q '1 up' && break
	sleep 0.5
done
ceph -c "$conf" osd stat | grep -q '1 up' || die "osd.0 is not up after 300 s"
elapsed "osd.0 up"

timeout 120 ceph -c "$conf" osd pool create rbd 8 8 >/dev/null 2>&1 || die "cannot create pool rbd"
timeout 120 rbd -c "$conf" pool init rbd || die "rbd pool init failed"
timeout 120 rbd -c "$conf" create --size 4M --image-feature layering rbd/ready-check ||
	die "cannot create an image"
timeout 120 rbd -c "$conf" bench --io-type write --io-total 1M rbd/ready-check >/dev/null ||
	die "cannot write to an image"
rbd -c "$conf" rm rbd/ready-check >/dev/null 2>&1
elapsed "pool rbd ready"
echo "$conf"
