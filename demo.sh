#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# demo.sh: the azbuse demo, on a fresh Debian 12 machine as root. Installs what
# is missing, builds azbuse, boots Debian's 6.12 kernel in QEMU (this machine's
# own kernel is not touched), and there creates /dev/azbuse1 on the mem engine,
# makes an ext4 filesystem, writes and reads files, then serves a thin volume
# and snapshots it while mounted, and says what happened.
set -euo pipefail
cd "$(dirname "$0")"

echo "azbuse demo: installing what is missing (first run only) and building..."
tests/vm/install-deps.sh --if-needed
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
echo "azbuse demo: booting Debian's 6.12 kernel in QEMU..."
exec tests/vm/vm-run.sh --timeout 600 -- tests/vm/demo-guest.sh
