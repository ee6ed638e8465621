# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# lib-download.sh: what kernel.sh and headers.sh share to download Debian
# packages into the VM cache and unpack them there, never installing them
# (sourced, not run). The caller defines die().
#
#   download_begin TOOLS LOCK STAMP RESULT
#       checks that each of TOOLS (a blank-separated list) is installed,
#       takes LOCK in the cache (concurrent runs prepare the same thing
#       once), and if STAMP exists prints RESULT and exits 0; otherwise makes
#       $tmp with deb/ (writable by apt's _apt user) and root/, removed on exit
#   download_finish DIR STAMP
#       puts $tmp/root in place as DIR and writes STAMP

download_begin() {
	local tool
	for tool in $1; do
		command -v "$tool" >/dev/null || die "$tool not found"
	done
	mkdir -p "$cache"
	exec 9>"$cache/.$2.lock"
	flock 9
	if [ -f "$3" ]; then
		echo "$4"
		exit 0
	fi
	tmp=$(mktemp -d "$cache/.$2.tmp.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	mkdir "$tmp/deb" "$tmp/root"
	# apt drops privileges to _apt while downloading: let it write there
	if id _apt >/dev/null 2>&1; then
		chmod 755 "$tmp"
		chown _apt "$tmp/deb"
	fi
}

download_finish() {
	rm -rf "$1"
	mv "$tmp/root" "$1"
	touch "$2"
}
