#!/usr/bin/env bash
# The demo command: installs what is missing (as root), builds, and runs
# the demo on a throw-away data directory.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/install-deps.sh" --run
build=${HK_BUILD_ROOT:-$root/build}/release
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target halfkey-demo >/dev/null
exec "$build/src/tools/halfkey-demo" "$@"
