#!/usr/bin/env bash
# The demo command: installs what is missing (as root), builds, then
#   1. walks through the credential lifecycle on a throw-away data directory
#      (halfkey-demo: keyring, sealing, store, flush, wrong key, purge);
#   2. brings up the project's ActiveSync server on loopback (unless
#      HALFKEY_TEST_EAS_URL & co. name another one), starts halfkeyd, and
#      drives its device API with curl: register with a wrong and a right
#      password, ping, unlock, delete - showing what is stored and what not.
# HALFKEY_DEMO_PART=1 runs only the first part (no server needed).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/install-deps.sh" --run
build=${HK_BUILD_ROOT:-$root/build}/release
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target halfkey-demo halfkeyd >/dev/null

echo "=== Part 1: the credential lifecycle (halfkey-demo) ==="
"$build/src/tools/halfkey-demo"
[ "${HALFKEY_DEMO_PART:-}" = 1 ] && exit 0

echo
echo "=== Part 2: halfkeyd against a real ActiveSync server ==="
if [ -z "${HALFKEY_TEST_EAS_URL:-}" ]; then
  "$root/scripts/eas-peer/up.sh" >/dev/null
  set -a
  # shellcheck disable=SC1091
  . "${HALFKEY_PEER_STATE:-/tmp/halfkey-eas-peer}/peer.env"
  set +a
fi
work=$(mktemp -d /tmp/halfkey-relay-demo-XXXXXX)
port=${HALFKEY_DEMO_PORT:-28443}
cat > "$work/halfkeyd.conf" <<CONF
[relay]
data_dir = $work/data
control_socket = $work/control.sock
user = ""
group = ""
[listen]
address = 127.0.0.1
port = $port
tls = no
[mailserver]
ping_heartbeat = 60s
${HALFKEY_TEST_EAS_CA:+ca_file = $HALFKEY_TEST_EAS_CA}
CONF
"$build/src/relay/halfkeyd" -c "$work/halfkeyd.conf" >"$work/halfkeyd.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
api=http://127.0.0.1:$port
for _ in $(seq 1 50); do curl -sf "$api/health" >/dev/null && break; sleep 0.1; done
echo "halfkeyd is up at $api (plain HTTP on loopback for the demo; TLS in production)"

show() { printf '\n$ %s\n' "$1"; }
key=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
dev="DEMO$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
body() { printf '{"server":"%s","username":"%s","password":"%s","device_id":"%s","device_type":"HalfkeyDemo","device_key":"%s"}' \
  "$HALFKEY_TEST_EAS_URL" "$HALFKEY_TEST_USER_A" "$1" "$dev" "$key"; }

show "POST /register with a wrong password"
curl -s -X POST "$api/register" -d "$(body wrong-password)"; echo
show "POST /register with the right password (the relay asks the mail server first)"
reply=$(curl -s -X POST "$api/register" -d "$(body "$HALFKEY_TEST_PASS_A")")
echo "$reply"
token=$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' <<<"$reply")
show "POST /ping (any authenticated request is activity)"
curl -s -X POST -H "Authorization: Bearer $token" "$api/ping"; echo
show "POST /unlock with a wrong device key"
curl -s -X POST -H "Authorization: Bearer $token" "$api/unlock" \
  -d '{"device_key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}'; echo
show "POST /unlock with the device's key"
curl -s -X POST -H "Authorization: Bearer $token" "$api/unlock" -d "{\"device_key\":\"$key\"}"; echo
echo
echo "What the data directory holds: the password in clear?"
for f in "$work"/data/*; do
  printf '  %-40s %s\n' "${f##*/}" "$(grep -c -a -F -- "$HALFKEY_TEST_PASS_A" "$f" || true) occurrence(s)"
done
show "DELETE /account"
curl -s -o /dev/null -w '%{http_code}\n' -X DELETE -H "Authorization: Bearer $token" "$api/account"
show "POST /ping after the delete"
curl -s -X POST -H "Authorization: Bearer $token" "$api/ping"; echo
echo
echo "halfkeyd's log ($work/halfkeyd.log):"
sed 's/^/  /' "$work/halfkeyd.log"
