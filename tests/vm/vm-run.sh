#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# vm-run.sh: runs a command as root inside a throw-away QEMU VM that boots
# Debian's kernel (the one matching the installed headers) on the host's root
# filesystem, shared read-only over 9p under a tmpfs overlay.
#
#   tests/vm/vm-run.sh [--kver KVER] [--mem 2G] [--cpus 2] [--numa]
#                      [--timeout SECS] [--disk IMG]... [--net] [--out DIR]
#                      [--no-dmesg-check] -- COMMAND [ARGS...]
#
# COMMAND runs in the same working directory as on the host (writes there land
# in the overlay and are lost), with stdin from /dev/null and its output on
# this script's stdout (serial console). Host variables named AZBUSE_* are
# passed to it; it also gets AZBUSE_VM=1 and AZBUSE_VM_OUT=DIR, the output
# directory, shared read-write with the host (use it to keep artifacts).
# `modprobe` works in the guest (brd, null_blk, nbd, ...).
#
#   --kver KVER      kernel to boot (default: the one tests/vm/headers.sh prepared headers of)
#   --mem SIZE       guest memory, QEMU syntax (default 2G)
#   --cpus N         vCPUs (default 2)
#   --numa           two NUMA nodes (one socket each), CPUs and memory split evenly
#   --timeout SECS   kill the VM after SECS seconds (default 1800)
#   --disk IMG       attach IMG (raw) as a virtio disk: /dev/vda, then /dev/vdb...
#   --net            a network card on QEMU's user network: the guest is
#                    10.0.2.15/24 on eth0, and reaches the host's addresses
#                    (and the host's loopback at 10.0.2.2) through QEMU
#   --out DIR        output directory (default: a fresh temporary one, removed
#                    after a successful run); gets rc, dmesg and .vm/
#   --no-dmesg-check do not fail on kernel warnings in the guest's dmesg
#
# Exit status: COMMAND's, unless the VM itself failed:
#   123  the guest's dmesg shows kernel trouble (see check-dmesg.sh)
#   124  the VM timed out
#   125  the VM could not be started or died before COMMAND finished
# The cache (kernels, initramfs) lives in ${AZBUSE_VM_CACHE:-/var/cache/azbuse-vm}.
set -euo pipefail

readonly EXIT_KERNEL=123 EXIT_TIMEOUT=124 EXIT_HARNESS=125
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() {
	echo "vm-run.sh: $*" >&2
	exit "$EXIT_HARNESS"
}

usage() {
	sed -n '/^#   tests/,/^#   --no-dmesg/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit "$EXIT_HARNESS"
}

kver=
mem=2G
cpus=2
numa=0
timeout_s=1800
out=
dmesg_check=1
disks=()
net=0
while [ $# -gt 0 ]; do
	case $1 in
	--kver) kver=${2:?}; shift 2 ;;
	--mem) mem=${2:?}; shift 2 ;;
	--cpus) cpus=${2:?}; shift 2 ;;
	--numa) numa=1; shift ;;
	--timeout) timeout_s=${2:?}; shift 2 ;;
	--disk) disks+=("${2:?}"); shift 2 ;;
	--net) net=1; shift ;;
	--out) out=${2:?}; shift 2 ;;
	--no-dmesg-check) dmesg_check=0; shift ;;
	--) shift; break ;;
	-h | --help) usage ;;
	*) echo "vm-run.sh: unknown option $1" >&2; usage ;;
	esac
done
[ $# -gt 0 ] || usage

[[ $cpus =~ ^[1-9][0-9]*$ ]] || die "--cpus wants a positive number, not '$cpus'"
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || die "--timeout wants seconds, not '$timeout_s'"
case $mem in
*[Gg]) mem_mb=$((${mem%[Gg]} * 1024)) ;;
*[Mm]) mem_mb=${mem%[Mm]} ;;
*) mem_mb=$mem ;;
esac
[[ $mem_mb =~ ^[1-9][0-9]*$ ]] || die "--mem wants e.g. 2G or 1536M, not '$mem'"
if [ "$numa" = 1 ]; then
	[ $((cpus % 2)) = 0 ] || die "--numa needs an even --cpus"
	mem_mb=$((mem_mb / 2 * 2))
fi
for d in "${disks[@]}"; do
	[ -f "$d" ] || [ -b "$d" ] || die "--disk $d: no such file"
done
for tool in qemu-system-x86_64 busybox cpio gzip xz modprobe sha256sum timeout; do
	command -v "$tool" >/dev/null || die "$tool not found: run tests/vm/install-deps.sh"
done
busybox=$(command -v busybox)

# --- kernel -----------------------------------------------------------------
kdir=$("$here/kernel.sh" ${kver:+"$kver"}) || die "kernel.sh failed"
kver=${kdir##*/}
vmlinuz=$kdir/boot/vmlinuz-$kver
cache=$(dirname "$kdir")

# --- initramfs (cached by content) --------------------------------------------
# Modules needed to mount the root, with their dependencies, in load order.
# Built-in ones are skipped; on 6.1 this pulls in virtio_pci and fscache too.
mapfile -t mods < <(modprobe -d "$kdir" -S "$kver" --show-depends -a \
	virtio_pci 9pnet_virtio 9p overlay | awk '$1 == "insmod" && !seen[$2]++ { print $2 }')
[ ${#mods[@]} -gt 0 ] || die "cannot resolve the 9p/overlay modules of $kver in $kdir"
hash=$({
	sha256sum "$here/initramfs-init.sh" "$busybox" "${mods[@]}"
	echo "$kver"
} | sha256sum | cut -c1-16)
initrd=$cache/initramfs/$kver-$hash.cpio.gz
if [ ! -f "$initrd" ]; then
	mkdir -p "$cache/initramfs"
	stage=$(mktemp -d)
	trap 'rm -rf "$stage"' EXIT
	mkdir -p "$stage"/{bin,dev,modules}
	cp "$busybox" "$stage/bin/busybox"
	install -m 0755 "$here/initramfs-init.sh" "$stage/init"
	mknod "$stage/dev/console" c 5 1 2>/dev/null || true
	for m in "${mods[@]}"; do
		name=${m##*/}
		case $name in
		*.ko.xz) xz -dc "$m" >"$stage/modules/${name%.xz}" ;;
		*.ko.zst) zstd -qdc "$m" >"$stage/modules/${name%.zst}" ;;
		*.ko.gz) gzip -dc "$m" >"$stage/modules/${name%.gz}" ;;
		*.ko) cp "$m" "$stage/modules/$name" ;;
		*) die "unexpected module file $m" ;;
		esac
		name=${name%.xz}
		name=${name%.zst}
		echo "${name%.gz}" >>"$stage/modules/order"
	done
	(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
		gzip -1 >"$initrd.tmp.$$"
	mv "$initrd.tmp.$$" "$initrd"
	# Drop initramfs images of this kernel built from older inputs.
	find "$cache/initramfs" -name "$kver-*.cpio.gz" ! -name "${initrd##*/}" -delete
	rm -rf "$stage"
	trap - EXIT
fi

# --- output directory and command script --------------------------------------
keep_out=1
if [ -z "$out" ]; then
	out=$(mktemp -d /tmp/azbuse-vm.XXXXXX)
	keep_out=0
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
cwd=$(pwd)
for p in "$out" "$kdir"; do
	[[ $p != *[[:space:]\'\"\\]* ]] || die "path '$p' must not contain spaces or quotes"
done
rm -rf "$out/rc" "$out/dmesg" "$out/.vm"
mkdir "$out/.vm"

modules_to_load=
[ ${#disks[@]} -eq 0 ] || modules_to_load=virtio_blk
net_addr=
if [ "$net" = 1 ]; then
	modules_to_load="$modules_to_load virtio_net"
	net_addr=10.0.2.15/24
fi
cat >"$out/.vm/config" <<EOF
OUT='$out'
KVER='$kver'
KDIR='$kdir'
VM_HOSTNAME=azbuse-vm
LOAD_MODULES='$modules_to_load'
NET_ADDR='$net_addr'
EOF

{
	echo "# vm-run.sh: the command to run in the guest"
	echo "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	echo "export HOME=/root LANG=C.UTF-8 TERM=dumb AZBUSE_VM=1"
	printf 'export AZBUSE_VM_OUT=%q\n' "$out"
	while IFS= read -r var; do
		case $var in AZBUSE_VM | AZBUSE_VM_OUT) continue ;; esac
		printf 'export %s=%q\n' "$var" "${!var}"
	done < <(compgen -e | grep '^AZBUSE_' || true)
	printf 'cd -- %q || exit 125\n' "$cwd"
	printf 'exec'
	printf ' %q' "$@"
	printf '\n'
} >"$out/.vm/cmd.sh"

# --- QEMU ---------------------------------------------------------------------
# tsc=reliable: under TCG the clocksource watchdog, seeing the emulator's
# timing, marks the TSC unstable at random; the kernel then patches its
# sched_clock static branch while other vCPUs run it, and TCG's
# cross-modified code ends in an int3 Oops (seen in CI: sched_clock_tick,
# __sched_clock_work). The emulated TSC is monotonic and shared by the vCPUs.
# shellcheck disable=SC2054 # commas belong to QEMU option values
qemu=(qemu-system-x86_64
	-machine q35 -cpu max -accel tcg,thread=multi
	-m "${mem_mb}M"
	-nodefaults -no-reboot -display none -serial stdio
	-kernel "$vmlinuz" -initrd "$initrd"
	-append "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init tsc=reliable"
	-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
	-virtfs "local,path=$out,mount_tag=azbuseout,security_model=none,multidevs=remap")
if [ "$numa" = 1 ]; then
	half=$((mem_mb / 2))
	n0=$((cpus / 2))
	# One socket per node: CPUs sharing a cache across nodes make the guest
	# kernel warn (topology_sane).
	qemu+=(-smp "$cpus,sockets=2,cores=$n0,threads=1"
		-object "memory-backend-ram,id=mem0,size=${half}M"
		-object "memory-backend-ram,id=mem1,size=${half}M"
		-numa "node,nodeid=0,cpus=0-$((n0 - 1)),memdev=mem0"
		-numa "node,nodeid=1,cpus=$n0-$((cpus - 1)),memdev=mem1")
else
	qemu+=(-smp "$cpus")
fi
for d in "${disks[@]}"; do
	qemu+=(-drive "file=$d,if=virtio,format=raw")
done
# shellcheck disable=SC2054 # the comma belongs to the option's value
[ "$net" = 0 ] || qemu+=(-nic user,model=virtio-net-pci)

# A VM that dies while its kernel boots, before the command starts (rarely,
# TCG trips over the kernel patching its own code: "Oops: int3" in early
# boot), is booted again, at most twice. Nothing of the command ran then.
for boot in 1 2 3; do
	rm -f "$out/.vm/started"
	start=$(date +%s)
	set +e
	# No stdin for QEMU: CI has none, and a tty must not be put into raw mode.
	timeout --foreground -k 10 "$timeout_s" "${qemu[@]}" </dev/null
	qemu_rc=$?
	set -e
	elapsed=$(($(date +%s) - start))
	[ -f "$out/.vm/started" ] || [ -f "$out/rc" ] || [ "$qemu_rc" = 124 ] ||
		[ "$qemu_rc" = 137 ] || [ "$boot" = 3 ] || {
		echo "vm-run.sh: the VM died while booting (QEMU exit status $qemu_rc, boot $boot of 3): booting again" >&2
		continue
	}
	break
done

if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
	echo "vm-run.sh: the VM timed out after ${timeout_s}s and was killed (output kept in $out)" >&2
	exit "$EXIT_TIMEOUT"
fi
if [ ! -f "$out/rc" ]; then
	echo "vm-run.sh: the VM ended (QEMU exit status $qemu_rc, after ${elapsed}s) before the command finished: kernel panic or failed boot, see the console output above (output kept in $out)" >&2
	exit "$EXIT_HARNESS"
fi
rc=$(cat "$out/rc")
if [ "$dmesg_check" = 1 ] && ! "$here/check-dmesg.sh" "$out/dmesg"; then
	echo "vm-run.sh: kernel trouble in the guest's dmesg (command exit status $rc; full log: $out/dmesg)" >&2
	exit "$EXIT_KERNEL"
fi
if [ "$keep_out" = 0 ] && [ "$rc" = 0 ]; then
	rm -rf "$out"
fi
exit "$rc"
