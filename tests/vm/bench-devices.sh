# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# bench-devices.sh: sets up and tears down each device that bench-matrix.sh
# measures, inside the test VM (sourced, not run). One device at a time:
#
#   dev_skip NAME   prints why NAME cannot be measured here and succeeds, or
#                   fails (prints nothing) when it can be
#   dev_up NAME     sets it up; sets DEV (block device to measure), FILL (1:
#                   write it once before measuring), AZ_ID (azbuse device id,
#                   empty for the others)
#   dev_down NAME   tears it down (also after a failed dev_up)
#
# Devices (SIZE_MB each, brd-backed unless said otherwise):
#   brd              /dev/ram0
#   null_blk         multiqueue, no IRQ (irqmode=0), no memory
#   loop             loop device, O_DIRECT, over a file on ext4 on brd
#   nbd              nbdkit memory over a Unix socket, nbd-client with one
#                    connection per vCPU
#   ublk-null        ublksrv's null target (250 GiB; fio uses SIZE_MB of it)
#   ublk-loop        ublksrv's loop target over a file on ext4 on brd
#                    (both only with ublksrv's `ublk`: $AZBUSE_UBLK or PATH)
#   dm-thin          pool on brd (64 MiB metadata), 64 KiB blocks, zeroing on
#   dm-thin-nozero   the same with skip_block_zeroing (only the fill differs:
#                    every block is provisioned before it is measured)
#   dm-cache         smq, writeback, 64 KiB blocks; origin, cache (as large as
#                    the origin) and metadata on brd
#   azbuse-null, azbuse-mem         engines null and mem
#   azbuse-mem-nopoll               mem with --poll-us 0 (no polling, no
#                                   completion in the submitter's context)
#   azbuse-null-q1|q2|q4...         the null engine with that many queues
#   azbuse-rust-ram  the Rust binding's RAM disk example (bindings/rust),
#                    to compare with azbuse-mem: both copy through the module
#   azbuse-file      file engine (-o direct=1) over a file on ext4 on brd
#   azbuse-thin      thin engine: pool on ext4 on brd (bench-thin.sh's way),
#                    64 KiB chunks, AZBUSE_BENCH_THIN_SHARDS shards (default 2)
#   azbuse-thin-raw, azbuse-thin-raw-q1|q2|q4...  the same with the data on
#                    a raw device (init --data; dm-linear on the brd beside
#                    the ext4 of the pool's DBs), with that many queues
#                    (shards)
# Needs: SIZE_MB, CTL (azbusectl), THIN (azbuse-thin), MODULE (azbuse.ko),
# RUST_RAMDISK (the Rust example's program).
# shellcheck disable=SC2034 # DEV, FILL and AZ_ID are for the caller

# (wait_for_dev, dm_create, dm_remove; $here: bench-matrix.sh's directory)
# shellcheck source-path=SCRIPTDIR source=lib-bench.sh
. "$here/lib-bench.sh"

BD_MNT=/mnt/bench-back
BD_NBD_SOCK=/run/bench-nbd.sock
BD_NBD_PID=/run/bench-nbd.pid

# bd_brd MB: one fresh brd of MB MiB at /dev/ram0
bd_brd() {
	lsmod | grep -q '^brd ' && { echo "bench: brd is loaded already" >&2; return 1; }
	modprobe brd rd_nr=1 rd_size=$(($1 * 1024)) max_part=0 && wait_for_dev /dev/ram0
}

bd_brd_down() {
	local _
	for _ in $(seq 50); do
		lsmod | grep -q '^brd ' || return 0
		modprobe -r brd 2>/dev/null && return 0
		sleep 0.2
	done
	echo "bench: cannot unload brd" >&2
	return 1
}

# bd_ext4 MB: ext4 on a fresh brd of MB MiB, mounted at $BD_MNT
bd_ext4() {
	bd_brd "$1" || return 1
	# inode tables and journal written now: no ext4lazyinit during the runs
	mkfs.ext4 -q -F -m 0 -E lazy_itable_init=0,lazy_journal_init=0 /dev/ram0 || return 1
	mkdir -p "$BD_MNT"
	mount /dev/ram0 "$BD_MNT"
}

bd_ext4_down() {
	if mountpoint -q "$BD_MNT"; then
		umount "$BD_MNT" || return 1
	fi
	bd_brd_down
}

bd_ublk_bin() {
	if [ -n "${AZBUSE_UBLK:-}" ]; then
		[ -x "$AZBUSE_UBLK" ] && echo "$AZBUSE_UBLK"
	else
		command -v ublk
	fi
}

bd_azbuse_start() { # ID CMD...: CMD (with AZBUSE_BENCH_ADD_OPTS) adds device ID; DEV and AZ_ID set
	local id=$1
	shift
	lsmod | grep -q '^azbuse ' || insmod "$MODULE" || return 1
	# shellcheck disable=SC2086 # extra options, split on purpose
	"$@" ${AZBUSE_BENCH_ADD_OPTS:-} >/dev/null || return 1
	AZ_ID=$id
	DEV=/dev/azbuse$id
	wait_for_dev "$DEV"
}

bd_azbuse_add() { # ID ARGS...: azbusectl add
	bd_azbuse_start "$1" "$CTL" add "$@"
}

dev_skip() {
	case $1 in
	azbuse-rust-ram)
		[ -x "$RUST_RAMDISK" ] && return 1
		echo "no $RUST_RAMDISK: build with Debian's cargo (apt-get install rustc cargo)"
		return 0
		;;
	ublk-*)
		if ! bd_ublk_bin >/dev/null; then
			echo "ublksrv's ublk binary not found (${AZBUSE_UBLK:+AZBUSE_UBLK=$AZBUSE_UBLK, }PATH=$PATH);" \
				"Debian 12 does not package it: apt-get install git libtool automake autoconf g++" \
				"pkg-config liburing-dev; git clone https://github.com/ublk-org/ublksrv; cd ublksrv;" \
				"git checkout v1.6 (later versions need liburing 2.4); autoreconf -i && ./configure" \
				"&& make; then AZBUSE_UBLK=\$PWD/ublk tests/bench.sh"
			return 0
		fi
		return 1
		;;
	esac
	return 1
}

dev_up() {
	local name=$1 mb=$SIZE_MB q
	DEV='' FILL=1 AZ_ID=''
	case $name in
	brd)
		bd_brd "$mb" && DEV=/dev/ram0
		;;
	null_blk)
		FILL=0
		modprobe null_blk nr_devices=1 queue_mode=2 irqmode=0 gb=$(((mb + 1023) / 1024)) bs=4096 &&
			wait_for_dev /dev/nullb0 && DEV=/dev/nullb0
		;;
	loop)
		bd_ext4 $((mb + 64)) && truncate -s "${mb}M" "$BD_MNT/disk.img" &&
			modprobe loop && DEV=$(losetup -f --show --direct-io=on "$BD_MNT/disk.img")
		;;
	nbd)
		modprobe nbd nbds_max=1 || return 1
		rm -f "$BD_NBD_SOCK"
		nbdkit --unix "$BD_NBD_SOCK" --pidfile "$BD_NBD_PID" memory "size=${mb}M" || return 1
		wait_for_dev /dev/nbd0 || return 1
		nbd-client -unix "$BD_NBD_SOCK" /dev/nbd0 -b 4096 -C "$(nproc)" >/dev/null &&
			DEV=/dev/nbd0
		;;
	ublk-null | ublk-loop)
		local ublk
		ublk=$(bd_ublk_bin) || return 1
		modprobe ublk_drv || return 1
		if [ "$name" = ublk-null ]; then
			FILL=0
			"$ublk" add -t null -n 0 -q "$(nproc)" -d 128 >/dev/null || return 1
		else
			bd_ext4 $((mb + 64)) && truncate -s "${mb}M" "$BD_MNT/disk.img" || return 1
			"$ublk" add -t loop -n 0 -q "$(nproc)" -d 128 -f "$BD_MNT/disk.img" >/dev/null || return 1
		fi
		wait_for_dev /dev/ublkb0 && DEV=/dev/ublkb0
		;;
	dm-thin | dm-thin-nozero)
		local meta=$((64 * 2048)) data=$(((mb + 64) * 2048)) features=0
		[ "$name" = dm-thin-nozero ] && features="1 skip_block_zeroing"
		modprobe dm-thin-pool && bd_brd $((mb + 128)) &&
			dm_create bb-tmeta "0 $meta linear /dev/ram0 0" &&
			dm_create bb-tdata "0 $data linear /dev/ram0 $meta" &&
			dm_create bb-pool "0 $data thin-pool /dev/mapper/bb-tmeta /dev/mapper/bb-tdata 128 1024 $features" &&
			dmsetup message bb-pool 0 "create_thin 0" &&
			dm_create bb-thin "0 $((mb * 2048)) thin /dev/mapper/bb-pool 0" &&
			DEV=/dev/mapper/bb-thin && wait_for_dev "$DEV"
		;;
	dm-cache)
		local meta=$((32 * 2048)) size=$((mb * 2048))
		modprobe dm-cache-smq && bd_brd $((2 * mb + 32)) &&
			dm_create bb-cmeta "0 $meta linear /dev/ram0 0" &&
			dm_create bb-cfast "0 $size linear /dev/ram0 $meta" &&
			dm_create bb-corig "0 $size linear /dev/ram0 $((meta + size))" &&
			dm_create bb-cache "0 $size cache /dev/mapper/bb-cmeta /dev/mapper/bb-cfast /dev/mapper/bb-corig 128 1 writeback smq 0" &&
			DEV=/dev/mapper/bb-cache && wait_for_dev "$DEV"
		;;
	azbuse-null | azbuse-null-q*)
		FILL=0
		q=${name#azbuse-null}
		q=${q#-q}
		bd_azbuse_add 1 --engine=null --size "${mb}M" ${q:+--queues "$q"}
		;;
	azbuse-mem)
		bd_azbuse_add 1 --engine=mem --size "${mb}M"
		;;
	azbuse-rust-ram)
		bd_azbuse_start 1 "$RUST_RAMDISK" 1 --size "${mb}M"
		;;
	azbuse-mem-nopoll)
		bd_azbuse_add 1 --engine=mem --size "${mb}M" --poll-us 0
		;;
	azbuse-file)
		bd_ext4 $((mb + 64)) &&
			bd_azbuse_add 1 --engine=file --path "$BD_MNT/disk.img" --size "${mb}M" -o direct=1
		;;
	azbuse-thin)
		# room for the data, RocksDB and the 64 MiB the engine keeps free
		bd_ext4 $((mb + 384)) || return 1
		"$THIN" --pool "$BD_MNT/pool" init --chunk-size 64k \
			--shards "${AZBUSE_BENCH_THIN_SHARDS:-2}" >/dev/null &&
			"$THIN" --pool "$BD_MNT/pool" create vol1 --size "${mb}M" >/dev/null &&
			bd_azbuse_add 1 --engine=thin --pool "$BD_MNT/pool" --volume vol1
		;;
	azbuse-thin-raw | azbuse-thin-raw-q*)
		q=${name#azbuse-thin-raw}
		q=${q#-q}
		# 256 MiB for the DBs, the data and 64 MiB to spare
		bd_brd $((mb + 256 + 64)) &&
			dm_create bb-ameta "0 $((256 * 2048)) linear /dev/ram0 0" &&
			dm_create bb-adata "0 $(((mb + 64) * 2048)) linear /dev/ram0 $((256 * 2048))" &&
			mkfs.ext4 -q -F -m 0 -E lazy_itable_init=0,lazy_journal_init=0 /dev/mapper/bb-ameta &&
			mkdir -p "$BD_MNT" && mount /dev/mapper/bb-ameta "$BD_MNT" &&
			"$THIN" --pool "$BD_MNT/pool" init --data /dev/mapper/bb-adata --chunk-size 64k \
				--shards "${q:-${AZBUSE_BENCH_THIN_SHARDS:-2}}" >/dev/null &&
			"$THIN" --pool "$BD_MNT/pool" create vol1 --size "${mb}M" >/dev/null &&
			bd_azbuse_add 1 --engine=thin --pool "$BD_MNT/pool" --volume vol1
		;;
	*)
		echo "bench: no device '$name'" >&2
		return 2
		;;
	esac
}

dev_down() {
	local name=$1 ublk
	case $name in
	brd) bd_brd_down ;;
	null_blk) modprobe -r null_blk ;;
	loop)
		[ -z "${DEV:-}" ] || losetup -d "$DEV"
		bd_ext4_down
		;;
	nbd)
		[ -b /dev/nbd0 ] && nbd-client -d /dev/nbd0 >/dev/null 2>&1
		# nbdkit leaves its socket behind when it is killed
		if [ -f "$BD_NBD_PID" ]; then
			local pid _
			pid=$(cat "$BD_NBD_PID")
			kill "$pid" 2>/dev/null
			for _ in $(seq 50); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
		fi
		rm -f "$BD_NBD_PID" "$BD_NBD_SOCK"
		modprobe -r nbd 2>/dev/null
		true
		;;
	ublk-*)
		ublk=$(bd_ublk_bin) && "$ublk" del -n 0 >/dev/null 2>&1
		[ "$name" = ublk-loop ] && bd_ext4_down
		modprobe -r ublk_drv 2>/dev/null
		true
		;;
	dm-thin | dm-thin-nozero)
		dm_remove bb-thin bb-pool bb-tmeta bb-tdata
		bd_brd_down
		;;
	dm-cache)
		dm_remove bb-cache bb-cmeta bb-cfast bb-corig
		bd_brd_down
		;;
	azbuse-*)
		"$CTL" remove 1 --force >/dev/null 2>&1
		case $name in
		azbuse-file | azbuse-thin) bd_ext4_down ;;
		azbuse-thin-raw*)
			if mountpoint -q "$BD_MNT"; then
				umount "$BD_MNT"
			fi
			dm_remove bb-ameta bb-adata
			bd_brd_down
			;;
		esac
		true
		;;
	esac
}
