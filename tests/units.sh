#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# units.sh - what the boot and naming pieces can show without a kernel:
# azbuse-pool@.service passes `systemd-analyze verify` (its ExecStart pointed
# at this build's azbuse-thin), and the udev helper names a thin device
# POOL/VOLUME from a saved configuration and nothing else. The VM case
# 87-thin-activate-boot runs them for real (udevd, a reboot).
#   units.sh BUILD_DIR SOURCE_DIR
set -euo pipefail

BUILD=${1:?usage: units.sh BUILD_DIR SOURCE_DIR}
SRC=${2:?usage: units.sh BUILD_DIR SOURCE_DIR}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# --- the unit -----------------------------------------------------------------------
unit=$BUILD/tools/systemd/azbuse-pool@.service
[ -f "$unit" ] || fail "no $unit"
sed "s|^ExecStart=[^ ]*/azbuse-thin |ExecStart=$BUILD/tools/azbuse-thin |" "$unit" >"$WORK/azbuse-pool@.service"
ln -s azbuse-pool@.service "$WORK/azbuse-pool@var-lib-azbuse-pool.service"
if command -v systemd-analyze >/dev/null; then
	SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no \
		"$WORK/azbuse-pool@var-lib-azbuse-pool.service" >"$WORK/verify.log" 2>&1 ||
		{ cat "$WORK/verify.log" >&2; fail "systemd-analyze verify"; }
	[ ! -s "$WORK/verify.log" ] || { cat "$WORK/verify.log" >&2; fail "systemd-analyze verify complained"; }
	echo "units: azbuse-pool@.service verifies"
else
	echo "units: no systemd-analyze here; the unit is not verified"
fi

# --- the udev helper ----------------------------------------------------------------------
helper=$SRC/tools/udev/azbuse-udev-name
name_of() { AZBUSE_CONF_DIR=$WORK/run "$helper" "$1"; }
mkdir -p "$WORK/run"
printf 'engine=thin\nsize=1\noption=volume=vol1\noption=pool=/srv/pools/fast\n' >"$WORK/run/azbuse3.conf"
[ "$(name_of azbuse3)" = "AZBUSE_THIN_NAME=fast/vol1" ] || fail "thin device: '$(name_of azbuse3)'"
printf 'engine=thin\nsize=1\noption=volume=snap-1.a\n' >"$WORK/run/azbuse4.conf"
[ "$(name_of azbuse4)" = "AZBUSE_THIN_NAME=pool/snap-1.a" ] || fail "default pool: '$(name_of azbuse4)'"
printf 'engine=mem\nsize=1\n' >"$WORK/run/azbuse5.conf"
[ -z "$(name_of azbuse5)" ] || fail "a mem device was named"
[ -z "$(name_of azbuse6)" ] || fail "a device without a configuration was named"
printf 'engine=thin\nsize=1\noption=volume=x\noption=pool=/srv/a b/po ol\n' >"$WORK/run/azbuse7.conf"
[ -z "$(name_of azbuse7)" ] || fail "a pool name with spaces was used: '$(name_of azbuse7)'"
grep -q '@AZBUSE_LIBEXEC@/azbuse-udev-name %k' "$SRC/tools/udev/60-azbuse.rules.in" ||
	fail "the rule does not run the helper"
echo "units: the udev helper names thin devices POOL/VOLUME"
# --- man pages and completion ----------------------------------------------------------
for page in "$SRC"/docs/man/*.[0-9]; do
	if command -v groff >/dev/null; then
		groff -man -ww -z -Tutf8 "$page" 2>"$WORK/groff.log" || fail "groff cannot format $page"
		[ ! -s "$WORK/groff.log" ] || { cat "$WORK/groff.log" >&2; fail "groff warns about $page"; }
	fi
done
for f in "$SRC"/tools/completion/*; do
	bash -n "$f" || fail "$f is not valid bash"
	(
		# shellcheck disable=SC1090
		source "$f"
		complete -p "$(basename "$f")" >/dev/null
	) || fail "$f registers no completion for $(basename "$f")"
done
echo "units: man pages format cleanly; completions load"

# --- activate and deactivate, as far as no kernel goes --------------------------------------
thin() { AZBUSE_RUN_DIR=$WORK/run "$BUILD/tools/azbuse-thin" --pool "$WORK/pool" "$@"; }
expect_rc() {
	local want=$1 rc=0
	shift
	thin "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
	[ "$rc" = "$want" ] || { cat "$WORK/out" "$WORK/err" >&2; fail "azbuse-thin $* exited $rc, not $want"; }
}
expect_rc 0 init --shards 1
expect_rc 0 create vol1 --size 16M
expect_rc 2 activate
expect_rc 2 activate vol1 --all
expect_rc 2 activate vol1 --foreground
expect_rc 2 deactivate
expect_rc 1 activate nosuch
grep -q nosuch "$WORK/err" || fail "activate of a missing volume does not name it"
expect_rc 0 activate --all
grep -q "no volume of pool .* is recorded as active" "$WORK/out" || fail "activate --all of none"
expect_rc 0 deactivate vol1
grep -q "vol1 was not served" "$WORK/out" || fail "deactivate of a volume not served"
echo "units: activate and deactivate refuse bad usage and missing volumes"

# --- list as lvs does, sizes like 1.5G ---------------------------------------------------
expect_rc 0 create half --size 1.5G
expect_rc 0 list -o name,size,active --units m --noheadings --separator ,
grep -qx "half,1536.00m,no" "$WORK/out" || fail "list -o: $(cat "$WORK/out")"
expect_rc 0 list -o size --units b --noheadings
grep -qx "1610612736B" "$WORK/out" || fail "list --units b: $(cat "$WORK/out")"
expect_rc 2 list -o name,bogus
expect_rc 2 list --units x
expect_rc 2 create bad --size 1.3k
grep -q "not a size" "$WORK/err" || fail "create --size 1.3k: $(cat "$WORK/err")"
expect_rc 0 --json usage
grep -q '"mode": "ok"' "$WORK/out" || fail "usage --json: no mode ok: $(cat "$WORK/out")"
grep -q '"metadata_bytes": [1-9]' "$WORK/out" || fail "usage --json: no metadata bytes"
expect_rc 0 usage
grep -q "^mode  *ok" "$WORK/out" || fail "usage: no mode line: $(cat "$WORK/out")"
echo "units: list -o/--units/--noheadings/--separator, fractional sizes, usage's mode"
# --- versions agree ------------------------------------------------------------------------
project=$(sed -n 's/^project(azbuse VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
dkms=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$SRC/kmod/dkms.conf")
[ -n "$project" ] && [ "$project" = "$dkms" ] || fail "dkms.conf says $dkms, the project $project"
grep -q "azbuse/$project" "$SRC/README.md" || fail "the README's DKMS version is not $project"
echo "units: dkms.conf and the README carry the project's version ($project)"

# --- an engine links libazbuse, not the built-in engines' dependencies -----------------------
lib=$(ls "$BUILD"/engine/libazbuse.so.* 2>/dev/null | head -n 1)
[ -n "$lib" ] || fail "no libazbuse.so in $BUILD/engine"
needed=$(objdump -p "$lib" | awk '/NEEDED/ { print $2 }' | tr '\n' ' ')
case $needed in *rocksdb* | *uring* | *smartcols* | *systemd* | *json-c*) fail "libazbuse needs $needed" ;; esac
needed=$(objdump -p "$BUILD/engine/azbuse-example-engine" | awk '/NEEDED/ { print $2 }' | tr '\n' ' ')
case $needed in *rocksdb* | *uring*) fail "the example engine needs $needed" ;; esac
if nm -D --defined-only "$lib" | grep -Eq 'thin|rocksdb|azbuse_find_engine'; then
	fail "libazbuse exports the built-in engines"
fi
echo "units: libazbuse and the example engine need neither RocksDB nor liburing ($needed)"

# --- azbusectl refuses what it does not know, before touching the module ------------------
ctl_rc() {
	local want=$1 rc=0
	shift
	"$BUILD/tools/azbusectl" "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
	[ "$rc" = "$want" ] || { cat "$WORK/out" "$WORK/err" >&2; fail "azbusectl $* exited $rc, not $want"; }
}
ctl_rc 2 remove 3 --bogus
grep -q "unknown option --bogus" "$WORK/err" || fail "remove --bogus: $(cat "$WORK/err")"
ctl_rc 2 remove 3 --mode writeback
ctl_rc 2 remove 3 4
ctl_rc 2 remove
ctl_rc 2 info 3 --jsn
ctl_rc 2 cache 3 --mode
ctl_rc 0 list --help
"$BUILD/tools/azbusectl" version >"$WORK/out" 2>"$WORK/err" || true
grep -q "^azbusectl [0-9.]*, ABI [0-9]*" "$WORK/out" || fail "version: $(cat "$WORK/out" "$WORK/err")"
echo "units: azbusectl refuses unknown options, extra arguments and missing values"
# --- an out-of-tree engine, built against the installed package (pkg-config and CMake) -----
if [ -f "$BUILD/CMakeCache.txt" ] && command -v cmake >/dev/null; then
	DESTDIR=$WORK/root cmake --install "$BUILD" >"$WORK/install.log" 2>&1 ||
		{ cat "$WORK/install.log" >&2; fail "cmake --install into a DESTDIR"; }
	prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$BUILD/CMakeCache.txt")
	root=$WORK/root$prefix
	pc=$(find "$root" -name azbuse.pc | head -n 1)
	[ -n "$pc" ] || fail "no azbuse.pc installed"
	# shellcheck disable=SC2046
	cc -o "$WORK/engine-pc" "$SRC/engine/examples/example_engine.c" \
		$(PKG_CONFIG_PATH=${pc%/*} pkg-config --cflags --libs azbuse) ||
		fail "the example engine does not build with pkg-config --cflags --libs azbuse"
	objdump -p "$WORK/engine-pc" | grep -q 'NEEDED.*libazbuse' || fail "the engine does not link libazbuse"
	mkdir -p "$WORK/oot"
	printf '%s\n' 'cmake_minimum_required(VERSION 3.20)' 'project(oot C)' \
		'find_package(azbuse REQUIRED)' "add_executable(example $SRC/engine/examples/example_engine.c)" \
		'target_link_libraries(example PRIVATE azbuse::azbuse)' >"$WORK/oot/CMakeLists.txt"
	{ cmake -S "$WORK/oot" -B "$WORK/oot/b" -DCMAKE_PREFIX_PATH="$root" &&
		cmake --build "$WORK/oot/b"; } >"$WORK/oot.log" 2>&1 ||
		{ cat "$WORK/oot.log" >&2; fail "the example engine does not build with find_package(azbuse)"; }
	[ -f "$WORK/root/usr/src/azbuse-$project/dkms.conf" ] || [ ! -f "$BUILD/kmod/Makefile" ] ||
		fail "cmake --install put no module source for DKMS in /usr/src/azbuse-$project"
	echo "units: an engine builds against the installed package, with pkg-config and with find_package"
fi

# --- every file says its license -------------------------------------------------------------
if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
	missing=$(cd "$SRC" && git ls-files |
		grep -Ev '^(docs/bench/|COPYING|LICENSE$|README.md$|\.clang-format$|\.gitignore$)|(^|/)Cargo\.lock$|\.(png|json|log|md)$' |
		while read -r f; do head -n 3 "$f" | grep -q 'SPDX-License-Identifier' || echo "$f"; done)
	[ -z "$missing" ] || fail "files without an SPDX-License-Identifier line: $missing"
	echo "units: every file carries an SPDX license line"
	# the build (module included) writes only into its build directory: no
	# build product (what .gitignore ignores) in the source tree outside it
	written=$(cd "$SRC" && git status --porcelain --ignored | sed -n 's/^!! //p' |
		grep -v '^build[^/]*/' || true)
	case $BUILD in "$SRC"/*) written=$(grep -v "^${BUILD#"$SRC"/}/" <<<"$written" || true) ;; esac
	[ -z "$written" ] || fail "the build wrote into the source tree: $written (a make -C kmod of your own? make -C kmod clean)"
	echo "units: the build wrote nothing into the source tree"
else
	echo "units: not a git checkout: the license lines are not checked"
fi
echo "units: all passed"
