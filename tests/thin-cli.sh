#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# thin-cli.sh - azbuse-thin on temporary pools, on the host (no kernel
# needed): help and usage errors, every command's normal path and JSON, name
# checks, a corrupt pool, a pool held by another process, and a pool served
# by a (fake) daemon that answers the control socket.
#   thin-cli.sh PATH/TO/azbuse-thin
set -euo pipefail

THIN=${1:?usage: thin-cli.sh PATH/TO/azbuse-thin}
WORK=$(mktemp -d)
BG_PIDS=()

cleanup() {
	local pid
	for pid in ${BG_PIDS[@]+"${BG_PIDS[@]}"}; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

export AZBUSE_THIN_POOL=$WORK/pool
export AZBUSE_RUN_DIR=$WORK/run # saved device configs and control sockets (fake ones here)
mkdir -p "$AZBUSE_RUN_DIR"
OUT=$WORK/out
ERR=$WORK/err
PY=$(python3 -c 'import sys; print(sys.executable)') # the interpreter itself, not a slow shim
CASE=""

fail() {
	echo "FAIL [$CASE]: $*" >&2
	echo "--- stdout:" >&2
	cat "$OUT" >&2 || true
	echo "--- stderr:" >&2
	cat "$ERR" >&2 || true
	exit 1
}

# expect RC CMD...: run azbuse-thin, check its exit code; output in $OUT/$ERR.
expect() {
	local want=$1 rc=0
	shift
	"$THIN" "$@" >"$OUT" 2>"$ERR" || rc=$?
	[ "$rc" -eq "$want" ] || fail "azbuse-thin $* exited $rc, expected $want"
	if [ "$rc" -eq 1 ] && [ "$(wc -l <"$ERR")" -ne 1 ]; then
		fail "azbuse-thin $* failed without one line on stderr saying why"
	fi
	if [ "$rc" -eq 2 ] && [ ! -s "$ERR" ]; then
		fail "azbuse-thin $* refused its arguments without saying why"
	fi
}

# json EXPR: evaluate a Python expression on the JSON in $OUT (as d).
json() {
	"$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"$OUT" "$1" || fail "stdout is not the JSON expected for $1"
}

json_is() {
	local got
	got=$(json "$1")
	[ "$got" = "$2" ] || fail "$1 is '$got', expected '$2'"
}

out_has() {
	grep -q -- "$1" "$OUT" || fail "stdout lacks '$1'"
}

err_has() {
	grep -q -- "$1" "$ERR" || fail "stderr lacks '$1'"
}

CASE="help"
expect 0 --help
out_has "usage: azbuse-thin"
for cmd in init create list info snapshot clone rollback delete resize usage check gc; do
	expect 0 "$cmd" --help
	out_has "usage: azbuse-thin .* $cmd"
	expect 0 --json "$cmd" -h
done

CASE="bad usage"
expect 2
expect 2 frobnicate
expect 2 --frob list
expect 2 list --frob
expect 2 list extra
expect 2 create
expect 2 create vol1
expect 2 create vol1 --size
expect 2 create vol1 --size lots
expect 2 create vol1 --size 1000
expect 2 create vol1 --size 0
expect 2 info
expect 2 snapshot vol1
expect 2 clone s1
expect 2 rollback vol1
expect 2 resize vol1
expect 2 delete a b
expect 2 list --mapped=yes
expect 2 --pool
expect 2 init --chunk-size 3k
expect 2 init --chunk-size 2M
expect 2 init --shards 0
expect 2 init --shards 65
expect 2 init --low-space 101
expect 2 init --limit 1k
expect 2 init --map-cache 1k
expect 2 init --meta-cache huge
[ ! -e "$WORK/pool" ] || fail "a failed init left $WORK/pool behind"

CASE="names"
expect 2 create .hidden --size 1M
err_has "invalid volume name"
expect 2 create "a/b" --size 1M
expect 2 create "$(printf 'x%.0s' {1..64})" --size 1M
expect 2 create "sp ace" --size 1M
expect 2 snapshot vol1 "bad*name"
expect 2 clone "bad/snap" c1
expect 2 delete "-x"
expect 2 info ""

CASE="no pool"
expect 1 list
err_has "no pool at $WORK/pool"
expect 1 check
expect 1 delete vol1 --yes
expect 1 usage

CASE="init"
expect 0 --json init --chunk-size 128k --shards 3 --limit 1G --low-space 80%
json_is 'd["chunk_size"]' 131072
json_is 'd["shards"]' 3
json_is 'd["limit_bytes"]' 1073741824
json_is 'd["low_space_percent"]' 80
json_is 'd["stripe_size"]' 1048576
json_is 'd["meta_cache_bytes"]' $((8 << 20))
json_is 'd["meta_ram_bound_bytes"] >= 3 * (d["meta_cache_bytes"] + d["map_cache_bytes"])' True
expect 1 init
err_has "already holds a pool"
# an init that fails midway takes back what it made and says why
mkdir -p "$WORK/pool3/shard-1"
expect 1 --pool "$WORK/pool3" init --shards 2
err_has "shard-1"
[ ! -e "$WORK/pool3/shard-0" ] || fail "a failed init left shard-0 behind"
[ ! -e "$WORK/pool3/pool.db" ] || fail "a failed init left pool.db behind"
rmdir "$WORK/pool3/shard-1"
# shards without pool.db (an init that was killed) are not taken for a pool
mkdir -p "$WORK/pool3/shard-0"
expect 1 --pool "$WORK/pool3" init
err_has "holds shards but no pool.db"
rmdir "$WORK/pool3/shard-0"
expect 0 --pool "$WORK/pool3" init --shards 2
expect 0 --pool "$WORK/pool3" check
expect 0 --pool "$WORK/pool2" init --map-cache 0
out_has "metadata RAM"
out_has "chunk size *64.0 KiB"
out_has "map cache *none"

CASE="check fresh"
expect 0 check
out_has "pool $WORK/pool: clean, 0 volumes, 0 chunks mapped"

CASE="create"
expect 0 create vol1 --size 1G
out_has "created volume vol1"
expect 0 create vol2 --size=512M --json
json_is 'd["name"]' vol2
json_is 'd["kind"]' volume
json_is 'd["size_bytes"]' 536870912
json_is 'd["parent"]' None
expect 1 create vol1 --size 1G
err_has '"vol1" already exists'

CASE="snapshot and clone"
expect 0 snapshot vol1 s1
out_has "created snapshot s1 of vol1"
expect 0 --json snapshot s1 s1b
json_is 'd["kind"]' snapshot
json_is 'd["parent"]' s1
expect 0 clone s1 c1 --json
json_is 'd["kind"]' clone
json_is 'd["parent"]' s1
json_is 'd["size_bytes"]' 1073741824
expect 1 clone vol1 c2
err_has "not a snapshot"
expect 1 snapshot nosuch s9
err_has "nosuch"
expect 1 snapshot vol1 vol2
err_has '"vol2" already exists'

CASE="list"
expect 0 list
out_has "^NAME *KIND *SIZE *PARENT *CREATED"
out_has "^c1 *clone *1.0 GiB *s1"
out_has "^vol2 *volume *512.0 MiB *-"
expect 0 list --json
json_is 'len(d)' 5
json_is '[v["name"] for v in d]' "['c1', 's1', 's1b', 'vol1', 'vol2']"
json_is 'd[0]["mapped_bytes"]' None
expect 0 list --mapped --json
json_is 'sum(v["mapped_bytes"] for v in d)' 0
expect 0 list --mapped
out_has "MAPPED"

CASE="info"
expect 0 info vol1
out_has "^kind *volume"
out_has "^mapped *0 B"
out_has "^exclusive"
expect 0 info s1 --json
json_is 'd["kind"]' snapshot
json_is 'd["parent"]' vol1
json_is 'd["mapped_bytes"]' 0
json_is 'd["exclusive_bytes"]' 0
json_is 'd["shared_bytes"]' 0
json_is 'd["ns"] > 0' True
json_is 'd["epoch"]' 1
json_is 'd["served_by"]' None
expect 1 info nosuch
err_has 'no volume or snapshot named "nosuch"'

CASE="resize"
expect 0 resize vol1 --size 2G --json --yes
json_is 'd["old_size_bytes"]' 1073741824
json_is 'd["size_bytes"]' 2147483648
json_is 'd["gc"]' none
expect 0 resize vol1 --size 256M --yes
out_has "resized vol1 from 2.0 GiB to 256.0 MiB"
out_has "freed 0 B"
expect 1 resize s1 --size 1G --yes
err_has "read-only"
expect 1 resize nosuch --size 1G --yes

CASE="rollback"
expect 0 rollback vol1 s1 --json --yes
json_is 'd["size_bytes"]' 1073741824
json_is 'd["gc"]' "done"
json_is 'd["freed_bytes"]' 0
expect 1 rollback vol2 s1 --yes
err_has "not of the lineage"
expect 1 rollback s1 s1b --yes
expect 1 rollback vol1 nosuch --yes

CASE="confirmation"
# no terminal and no --yes: refused before anything changes
expect 0 create doomed --size 64M
expect 0 snapshot doomed doomed-s
expect 1 delete doomed
err_has "delete volume doomed (64.0 MiB) and what only it holds: not confirmed (no terminal to ask on); add --yes"
expect 1 rollback doomed doomed-s
err_has "add --yes"
expect 1 resize doomed --size 32M
err_has "shrink doomed from 64.0 MiB to 32.0 MiB"
expect 0 resize doomed --size 128M # growing loses nothing: no question
expect 0 info doomed --json
json_is 'd["size_bytes"]' 134217728
# on a terminal (script(1) gives one): "n" keeps it, "y" deletes it
tty_thin() { # ANSWER ARGS...: azbuse-thin on a pty, ANSWER typed at its question
	local answer=$1 cmd rc=0
	shift
	printf -v cmd '%q ' "$THIN" "$@"
	printf '%s\n' "$answer" | script -qec "$cmd" /dev/null >"$OUT" 2>&1 || rc=$?
	return "$rc"
}
tty_thin n delete doomed && fail "delete answered 'n' on a terminal succeeded"
grep -q "delete volume doomed (128 MiB) and what only it holds? \[y/N\]" "$OUT" ||
	grep -q "delete volume doomed .* and what only it holds? \[y/N\]" "$OUT" ||
	fail "no question on the terminal"
expect 0 info doomed
tty_thin y rollback doomed doomed-s || fail "rollback answered 'y' on a terminal failed"
expect 0 info doomed --json
json_is 'd["size_bytes"]' 67108864
tty_thin yes delete doomed || fail "delete answered 'yes' on a terminal failed"
expect 1 info doomed
expect 0 delete doomed-s --yes

CASE="delete"
expect 0 delete s1b --yes
out_has "deleted snapshot s1b"
out_has "freed"
expect 0 --json delete c1 --yes
json_is 'd["deleted"]' c1
json_is 'd["kind"]' clone
json_is 'd["gc"]' "done"
expect 1 delete c1 --yes
err_has 'no volume or snapshot named "c1"'
expect 0 gc --json
json_is 'd["gc"]' "done"

CASE="check after changes"
expect 0 check
out_has "clean, 3 volumes, 0 chunks mapped"
expect 0 check --json
json_is 'd["clean"]' True
json_is 'd["volumes"]' 3
json_is 'd["problems"]' '[]'

CASE="usage"
expect 0 usage
out_has "^used *0 B (0 chunks of 128.0 KiB)"
out_has "limit 1.0 GiB"
out_has "warn at 80% use"
grep -q WARNING "$OUT" && fail "an empty pool warns of low space"
expect 0 usage --json
json_is 'd["used_bytes"]' 0
json_is 'd["limit_bytes"]' 1073741824
json_is 'd["free_bytes"] <= 1073741824 and d["free_bytes"] <= d["fs_free_bytes"]' True
json_is 'd["low_space_percent"]' 80
json_is 'd["low_space"]' False

expect 0 --pool "$WORK/pool2" usage --json
json_is 'd["limit_bytes"]' 0
json_is 'd["free_bytes"] == max(0, d["fs_free_bytes"] - (64 << 20))' True

CASE="busy pool.db"
# another process has pool.db open (RocksDB's lock) for 1.5 s: reads go
# alongside it, changes wait for it
"$PY" -c 'import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)
open(sys.argv[2], "w").close()
time.sleep(1.5)' "$WORK/pool/pool.db/LOCK" "$WORK/locked" &
BG_PIDS+=($!)
for _ in $(seq 100); do
	[ -e "$WORK/locked" ] && break
	sleep 0.05
done
[ -e "$WORK/locked" ] || fail "could not lock pool.db"
expect 0 list
expect 0 create busy --size 1M
if kill -0 "${BG_PIDS[-1]}" 2>/dev/null; then
	fail "create did not wait for pool.db to be free"
fi
wait "${BG_PIDS[-1]}"
unset 'BG_PIDS[-1]'
expect 0 delete busy --yes

CASE="corrupt pool"
cp -a "$WORK/pool2" "$WORK/bad"
expect 0 --pool "$WORK/bad" create v --size 1M
echo "garbage" >"$WORK/bad/pool.db/CURRENT"
for cmd in list "info v" usage "delete v --yes" "create w --size 1M" "snapshot v s"; do
	# shellcheck disable=SC2086
	expect 1 --pool "$WORK/bad" $cmd
	err_has "pool $WORK/bad"
	err_has "corrupt"
done
expect 1 --pool "$WORK/bad" check
out_has "pool $WORK/bad: pool.db: .*corrupt"
out_has "pool $WORK/bad: 1 problem, 0 volumes"
err_has "1 problem found"
expect 1 --pool "$WORK/bad" check --json
json_is 'd["clean"]' False
json_is 'len(d["problems"])' 1

CASE="held pool"
# what `flock DIR/daemon.lock sleep 60` does, with the lock in the process we kill
(flock 9 && exec sleep 60) 9>"$WORK/pool/daemon.lock" &
BG_PIDS+=($!)
for _ in $(seq 50); do
	flock -n "$WORK/pool/daemon.lock" true || break
	sleep 0.1
done
# (each refusal waits 2 s for a device of the holder to show up)
expect 1 delete vol1 --yes
err_has "pool $WORK/pool is in use by another process"
err_has "cannot be told whether vol1 is being served"
expect 1 snapshot vol1 s2
err_has "a snapshot taken now could be inconsistent"
expect 1 check
err_has "stop it to check"
# reading works alongside the holder (read-only opens)
expect 0 info vol1 --json
json_is 'd["mapped_bytes"]' 0
json_is 'd["served_by"]' None
expect 0 usage --json
json_is 'd["used_bytes"]' 0
expect 0 list --mapped
expect 0 list
expect 0 create vol3 --size 1M
expect 0 snapshot s1 s1c
expect 0 clone s1 c3
kill "${BG_PIDS[-1]}"
wait "${BG_PIDS[-1]}" 2>/dev/null || true
unset 'BG_PIDS[-1]'
expect 0 delete c3 --yes
expect 0 check

CASE="served pool"
if [ -e /dev/azbusectl ]; then
	echo "thin-cli: /dev/azbusectl exists; skipping the fake-daemon cases (real devices are listed instead)"
else
	# A fake daemon: holds the pool, saves a config saying it serves vol1 as
	# azbuse7, answers "thin gc" with OK, refuses snapshots named refuse*,
	# and takes others with azbuse-thin itself while it lets go of the pool.
	"$PY" - "$WORK/pool" "$AZBUSE_RUN_DIR" "$WORK/requests" "$THIN" <<-'EOF' &
		import fcntl, os, socket, subprocess, sys
		pool, run, log, thin = sys.argv[1:5]
		fd = os.open(pool + "/daemon.lock", os.O_RDWR | os.O_CREAT, 0o644)
		def hold():
		    fcntl.flock(fd, fcntl.LOCK_EX)
		    os.ftruncate(fd, 0)
		    os.write(fd, b"%d\n" % os.getpid())
		def snapshot(src, name):
		    if name.startswith("refuse"):
		        return b"ERR snapshot refused by the test daemon\n"
		    fcntl.flock(fd, fcntl.LOCK_UN)
		    env = dict(os.environ, AZBUSE_RUN_DIR=run + "/none")
		    p = subprocess.run([thin, "--pool", pool, "snapshot", src, name], env=env,
		                       capture_output=True)
		    hold()
		    if p.returncode:
		        return b"ERR " + p.stderr.strip().replace(b"\n", b" ") + b"\n"
		    return b"snapshot %s of %s taken (test)\nOK\n" % (name.encode(), src.encode())
		hold()
		with open(run + "/azbuse7.conf", "w") as f:
		    f.write("engine=thin\nsize=1073741824\noption=volume=vol1\noption=pool=%s\n" % pool)
		srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
		srv.bind(run + "/azbuse7.sock")
		srv.listen(4)
		open(run + "/ready", "w").close()
		while True:
		    conn, _ = srv.accept()
		    req = b""
		    while not req.endswith(b"\n"):
		        chunk = conn.recv(256)
		        if not chunk:
		            break
		        req += chunk
		    with open(log, "a") as f:
		        f.write(req.decode())
		    words = req.decode().split()
		    if words == ["thin", "gc"]:
		        conn.sendall(b"gc: 2 shards collected\nOK\n")
		    elif len(words) == 4 and words[:2] == ["thin", "snapshot"]:
		        conn.sendall(snapshot(words[2], words[3]))
		    else:
		        conn.sendall(b"ERR unknown request\n")
		    conn.close()
	EOF
	BG_PIDS+=($!)
	DAEMON=${BG_PIDS[-1]}
	for _ in $(seq 100); do
		[ -e "$AZBUSE_RUN_DIR/ready" ] && break
		sleep 0.05
	done
	[ -e "$AZBUSE_RUN_DIR/ready" ] || fail "the fake daemon did not start"

	expect 1 delete vol1 --yes
	err_has "vol1 is being served by azbuse device /dev/azbuse7 (pid $DAEMON); remove the device first"
	expect 1 rollback vol1 s1 --yes
	err_has "vol1 is being served by azbuse device /dev/azbuse7"
	expect 1 resize vol1 --size 2G --yes
	err_has "remove the device first"
	expect 1 check
	err_has "in use by azbuse device /dev/azbuse7 (pid $DAEMON); stop it to check"
	expect 0 list
	out_has "DEVICE"
	out_has "^vol1 .*/dev/azbuse7"
	expect 0 list --json
	json_is '[v["name"] for v in d if v["served_by"]]' "['vol1']"
	json_is '[v["served_by"]["pid"] for v in d if v["served_by"]]' "[$DAEMON]"
	expect 0 info vol1
	out_has "^served by */dev/azbuse7 (pid $DAEMON)"
	out_has "^mapped *0 B"
	expect 0 info vol1 --json
	json_is 'd["served_by"]["device"]' /dev/azbuse7
	json_is 'd["mapped_bytes"]' 0
	expect 0 usage
	out_has "^served by *azbuse device /dev/azbuse7 (pid $DAEMON)"
	expect 0 usage --json
	json_is 'd["served_by"]' "['/dev/azbuse7']"

	# the snapshot of the served volume goes to the daemon (which refuses here)
	expect 1 snapshot vol1 refused1
	err_has "/dev/azbuse7 (serving vol1) could not snapshot it: snapshot refused by the test daemon"
	grep -qx "thin snapshot vol1 refused1" "$WORK/requests" || fail "no snapshot request sent"
	expect 0 snapshot vol1 s2
	out_has "snapshot s2 of vol1 taken (test)"
	out_has "created snapshot s2 of vol1"
	out_has "taken by /dev/azbuse7"
	expect 0 snapshot vol1 s4 --json
	json_is 'd["name"]' s4
	json_is 'd["parent"]' vol1
	json_is 'd["taken_by"]' /dev/azbuse7
	json_is 'd["daemon_output"]' "['snapshot s4 of vol1 taken (test)']"
	expect 1 snapshot vol1 s4
	err_has '"s4" already exists'
	expect 0 delete s4 --yes
	# other volumes are changed directly; the daemon collects the garbage
	expect 0 snapshot vol2 s3
	out_has "created snapshot s3 of vol2"
	expect 0 resize vol2 --size 1G --yes
	expect 0 delete s3 --json --yes
	json_is 'd["gc"]' daemon
	json_is 'd["daemon_output"]' "['gc: 2 shards collected']"
	expect 0 delete vol3 --yes
	out_has "gc: 2 shards collected"
	out_has "space reclaimed by /dev/azbuse7"
	grep -qx "thin gc" "$WORK/requests" || fail "no gc request sent"
	expect 0 gc
	out_has "gc: 2 shards collected"

	# every device of the pool counts (a daemon serves up to 64): 20 more
	for i in $(seq 20 39); do
		printf 'engine=thin\nsize=1073741824\noption=volume=many%s\noption=pool=%s\n' \
			"$i" "$WORK/pool" >"$AZBUSE_RUN_DIR/azbuse$i.conf"
	done
	for i in $(seq 20 39); do
		expect 1 delete "many$i" --yes
		err_has "many$i is being served by azbuse device /dev/azbuse$i"
	done
	# more than that: whether a volume is served cannot be told, nothing changes
	for i in $(seq 40 99); do
		printf 'engine=thin\nsize=1073741824\noption=volume=many%s\noption=pool=%s\n' \
			"$i" "$WORK/pool" >"$AZBUSE_RUN_DIR/azbuse$i.conf"
	done
	expect 1 resize vol2 --size 2G --yes
	err_has "it cannot be told whether vol2 is being served"
	rm -f "$AZBUSE_RUN_DIR"/azbuse[2-9][0-9].conf

	# a daemon that cannot be reached: the change is made, GC is deferred
	rm -f "$AZBUSE_RUN_DIR/azbuse7.sock"
	expect 0 resize vol2 --size 512M --yes
	err_has "space will be reclaimed when the pool is next opened"
	expect 1 gc

	kill "$DAEMON"
	wait "$DAEMON" 2>/dev/null || true
	unset 'BG_PIDS[-1]'
	expect 0 gc
	expect 0 check
	out_has "clean"
fi

if [ -n "${THIN_CLI_KEEP:-}" ]; then # keep the pools to look at
	trap - EXIT
	echo "thin-cli: kept $WORK"
fi
echo "thin-cli: all passed"
