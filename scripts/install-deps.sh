#!/usr/bin/env bash
# Installs what Halfkey needs to build and test, from Debian's packages.
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh --run    only what building and running needs
# Must run as root (apt-get). Quiet when everything is already there.
set -euo pipefail

BUILD_PKGS=(build-essential cmake pkg-config git ca-certificates
  libssl-dev libsodium-dev libsqlite3-dev libcurl4-openssl-dev libevent-dev
  libwbxml2-dev libxml2-dev libjansson-dev libpq-dev libnghttp2-dev sqlite3 curl openssl)
TEST_PKGS=(clang libclang-rt-dev valgrind libwbxml2-utils python3 procps iproute2)

want=("${BUILD_PKGS[@]}")
[ "${1:-}" = "--run" ] || want+=("${TEST_PKGS[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root to install them" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
