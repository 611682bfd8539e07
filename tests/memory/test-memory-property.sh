#!/usr/bin/env bash
# test-memory-property.sh HALFKEYD HALFKEYCTL
#
# The memory property of DESIGN.md §3, end to end against the real
# ActiveSync peer: after an account is flushed, deleted or wiped, a dump of
# halfkeyd's whole memory holds no copy of its password or device key in any
# encoding in which they crossed a boundary; and at no time do the data
# directory (database, -wal, -shm, master keyring, journals), the daemon's
# log (level debug) or the audit trail hold them.
#
# Three runs, a fresh daemon and data directory each:
#   flush   halfkeyctl flush ACCOUNT
#   delete  DELETE /account with the device token
#   wipe    halfkeyctl wipe ACCOUNT
# Each run: start halfkeyd (plain HTTP on loopback, as scripts/demo.sh),
# POST /register with the test user's password and a fresh random device
# key, wait for the sync engine to fill the cache, POST /unlock, POST /ping,
# deliver a message and wait for the sync engine to fetch it; check that
# the scanner finds the password in the active relay's memory (it must: the
# relay syncs with it); then the action, a pause, and the dump: every range
# of /proc/PID/maps read through /proc/PID/mem, searched for every needle
# (tests/memory/memscan.py lists them). Zero hits required.
#
# Needs: root (reading /proc/PID/mem of a non-dumpable process takes
# CAP_SYS_PTRACE), python3, curl, and the mail server in HALFKEY_TEST_EAS_URL,
# HALFKEY_TEST_EAS_CA, HALFKEY_TEST_USER_A, HALFKEY_TEST_PASS_A,
# HALFKEY_TEST_DELIVER (`set -a; . /tmp/halfkey-eas-peer/peer.env; set +a`).
# Exits 77 (skipped) when one of these is missing, 1 on any failure, 0 when
# the property holds in all three runs.
#
#   HK_MEM_RUNS="flush wipe"   only these runs (default: flush delete wipe)
#   HK_MEM_KEEP=1              keep the work directory (logs, data) for inspection
#   HK_MEM_SETTLE=SECONDS      pause between the action and the dump (default 2)
#   HK_MEM_TLS=1               the device API over TLS (a throw-away certificate)
#                              instead of plain HTTP on loopback
#   HK_MEM_HTTP2=yes|no        mailserver.http2 for the daemon (default: the
#                              daemon's default); over HTTP/2 the scan also
#                              looks for the HPACK form of the Authorization
#                              value (memscan.py's needles)
set -eEuo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
scanner=$here/memscan.py
t0=$(date +%s.%N)

skip() { printf 'SKIP: %s\n' "$*"; exit 77; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}s')" "$1" "$(date +%s.%N)"; }
log() { printf '[%s +%s] %s\n' "$(date +%H:%M:%S)" "$(elapsed "$t0")" "$*"; }

if [ $# -ne 2 ]; then
	echo "usage: $0 HALFKEYD HALFKEYCTL" >&2
	exit 2
fi
halfkeyd=$1
halfkeyctl=$2
[ -x "$halfkeyd" ] || { echo "FAIL: $halfkeyd is not an executable" >&2; exit 1; }
[ -x "$halfkeyctl" ] || { echo "FAIL: $halfkeyctl is not an executable" >&2; exit 1; }

# ---- preconditions: skip, do not fail ------------------------------------
missing=
for v in HALFKEY_TEST_EAS_URL HALFKEY_TEST_EAS_CA HALFKEY_TEST_USER_A HALFKEY_TEST_PASS_A HALFKEY_TEST_DELIVER; do
	[ -n "${!v:-}" ] || missing="$missing $v"
done
[ -z "$missing" ] || skip "the mail server is not configured (unset:$missing); run" \
	"'set -a; . /tmp/halfkey-eas-peer/peer.env; set +a' first"
[ "$(id -u)" = 0 ] || skip "must run as root: reading /proc/PID/mem of the non-dumpable halfkeyd needs CAP_SYS_PTRACE"
capeff=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
(( (16#$capeff >> 19) & 1 )) || skip "root without CAP_SYS_PTRACE (CapEff $capeff): /proc/PID/mem of a non-dumpable process is closed"
command -v python3 >/dev/null || skip "python3 is not installed"
command -v curl >/dev/null || skip "curl is not installed"
[ -r "$HALFKEY_TEST_EAS_CA" ] || skip "HALFKEY_TEST_EAS_CA=$HALFKEY_TEST_EAS_CA is not readable"
[ -x "$HALFKEY_TEST_DELIVER" ] || skip "HALFKEY_TEST_DELIVER=$HALFKEY_TEST_DELIVER is not executable"

runs=${HK_MEM_RUNS:-flush delete wipe}
tls=${HK_MEM_TLS:-0}
settle=${HK_MEM_SETTLE:-2}
http2_line=
case "${HK_MEM_HTTP2:-}" in
"") ;;
yes | no) http2_line="http2 = $HK_MEM_HTTP2" ;;
*) echo "HK_MEM_HTTP2 must be yes or no" >&2; exit 2 ;;
esac
work=$(mktemp -d /tmp/hk-memtest-XXXXXX)
pid=
failures=()
summary=()

cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -CONT "$pid" 2>/dev/null || true
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	if [ "${HK_MEM_KEEP:-}" = 1 ] || [ ${#failures[@]} -gt 0 ]; then
		echo "work directory kept: $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
# any other command that fails stops the test, saying which
trap 'rc=$?; echo "FAIL (${run:-?} run): line $LINENO: \"$BASH_COMMAND\" failed (status $rc)" >&2; failures+=("line $LINENO"); exit 1' ERR

# The scanner is the only process given the secrets in its environment; the
# daemon is started with an empty one, so that nothing the test hands it
# holds a needle.
dk=$(python3 "$scanner" newkey) # a fresh device key for the whole test
ms() {
	HK_MEM_USER=$HALFKEY_TEST_USER_A HK_MEM_PASS=$HALFKEY_TEST_PASS_A HK_MEM_DK=$dk \
		python3 "$scanner" "$@"
}

fatal() { # a setup step failed: not the property, but the test cannot go on
	printf '\nFAIL (%s run, setup): %s\n' "${run:-?}" "$*"
	if [ -n "${logf:-}" ] && [ -f "$logf" ]; then
		echo "--- last lines of halfkeyd's log ($logf) ---"
		tail -n 40 "$logf"
	fi
	failures+=("$run: setup: $*")
	exit 1
}

ctl() { "$halfkeyctl" -s "$sock" --json "$@"; }
stat_of() { # stat_of FIELD: one number from halfkeyctl stats
	local out rc=0
	out=$(ctl stats 2>&1) || rc=$?
	if [ "$rc" != 0 ]; then
		echo "halfkeyctl --json stats failed (status $rc): $out" >&2
		echo -1
		return 1
	fi
	python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"][sys.argv[1]])' "$1" <<<"$out"
}
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }

# curl towards the device API (trusting the throw-away certificate with TLS)
dcurl() {
	if [ "$tls" = 1 ]; then curl --cacert "$work/tls/cert.pem" "$@"; else curl "$@"; fi
}

# post PATH [BODY_COMMAND...]: the HTTP status to stdout, the body to $work/resp
post() {
	local path=$1
	shift
	local auth=()
	[ -z "${token:-}" ] || auth=(-H "Authorization: Bearer $token")
	if [ $# -gt 0 ]; then
		"$@" | dcurl -sS -o "$work/resp" -w '%{http_code}' --max-time 90 -X POST \
			-H 'Content-Type: application/json' "${auth[@]}" --data-binary @- "$api$path"
	else
		dcurl -sS -o "$work/resp" -w '%{http_code}' --max-time 30 -X POST "${auth[@]}" "$api$path"
	fi
}

# check_files LABEL: the run's directory (data directory: database, -wal,
# -shm, master keyring, any journal; the log; the configuration) holds no needle
check_files() {
	if ! ms files "$run/$1/files" "$rundir"; then
		failures+=("$run: $1: a needle in the data directory or the log (see HIT lines above)")
		files_hits=$((files_hits + 1))
	fi
}

# check_ctl LABEL: the audit trail (and what else halfkeyctl shows) hold no needle
check_ctl() {
	local out=$work/ctl-$run-$1.json
	ctl audit --limit 1000 >"$out"
	ctl accounts >>"$out"
	ctl stats >>"$out"
	if ! ms stdin "$run/$1/audit+accounts+stats" <"$out"; then
		failures+=("$run: $1: a needle in the audit trail or halfkeyctl output (see HIT lines above)")
		files_hits=$((files_hits + 1))
	fi
}

start_daemon() {
	rundir=$work/$run
	mkdir -m 0700 "$rundir"
	data=$rundir/data
	sock=$rundir/control.sock
	logf=$rundir/halfkeyd.log
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	local listen="tls = no"
	api=http://127.0.0.1:$port
	if [ "$tls" = 1 ]; then
		api=https://127.0.0.1:$port
		listen="tls = yes
[tls]
certificate = $work/tls/cert.pem
key = $work/tls/key.pem"
	fi
	cat >"$rundir/halfkeyd.conf" <<CONF
[relay]
node_name = memtest
data_dir = $data
control_socket = $sock
user = ""
group = ""
[listen]
address = 127.0.0.1
port = $port
$listen
[mailserver]
ca_file = $HALFKEY_TEST_EAS_CA
allow = $HALFKEY_TEST_EAS_URL
ping_heartbeat = 60s
$http2_line
[log]
level = debug
CONF
	# an empty environment: not even the test's HALFKEY_TEST_PASS_A
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$halfkeyd" -c "$rundir/halfkeyd.conf" \
		</dev/null >"$logf" 2>&1 &
	pid=$!
	for _ in $(seq 1 100); do
		dcurl -sf -o /dev/null "$api/health" && [ -S "$sock" ] && break
		kill -0 "$pid" 2>/dev/null || fatal "halfkeyd exited at start"
		sleep 0.1
	done
	dcurl -sf -o /dev/null "$api/health" || fatal "halfkeyd does not answer /health on $api"
	[ "$(tr '\0' '\n' </proc/$pid/environ | grep -c .)" -le 1 ] ||
		fatal "halfkeyd's environment is not empty"
	log "halfkeyd pid $pid on $api, data in $data"
}

stop_daemon() {
	kill -TERM "$pid"
	local rc=0
	wait "$pid" || rc=$?
	pid=
	[ "$rc" = 0 ] || fatal "halfkeyd exited with status $rc on SIGTERM"
	log "halfkeyd stopped"
}

# wait_for CONDITION-COMMAND SECONDS: polls every 0.5 s
wait_for() {
	local deadline=$(( $(date +%s) + $2 ))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		if eval "$1"; then return 0; fi
		kill -0 "$pid" 2>/dev/null || fatal "halfkeyd died"
		sleep 0.5
	done
	return 1
}

# settle SECONDS LIMIT: waits until the cache's item count has not moved for
# SECONDS (the sync engine has drained the server and waits in its Ping);
# false after LIMIT seconds
settle() {
	local last=-2 n since deadline=$(( $(date +%s) + $2 ))
	since=$(date +%s)
	while [ "$(date +%s)" -lt "$deadline" ]; do
		kill -0 "$pid" 2>/dev/null || fatal "halfkeyd died"
		n=$(stat_of items) || n=-1
		if [ "$n" != "$last" ]; then
			last=$n
			since=$(date +%s)
		elif [ "$n" -ge 0 ] && [ $(( $(date +%s) - since )) -ge "$1" ]; then
			return 0
		fi
		sleep 0.5
	done
	return 1
}

# activate: register, sync, unlock, ping, deliver, fetch
activate() {
	local dev code items0 items1 lines0 woken
	dev="HKMEM$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
	token=
	code=$(post /register ms register-body "$HALFKEY_TEST_EAS_URL" "$dev") ||
		fatal "POST /register: curl failed"
	[ "$code" = 201 ] || fatal "POST /register answered $code: $(cat "$work/resp")"
	token=$(json_field token <"$work/resp")
	account=$(json_field account_id <"$work/resp")
	if [ -z "$token" ] || [ -z "$account" ]; then
		fatal "POST /register: no token or account_id in $(cat "$work/resp")"
	fi
	log "registered account $account (device $dev)"
	check_files after-register

	[ "$(stat_of unlocked)" -ge 1 ] || fatal "the account is not unlocked after /register"
	# the first sync: every folder, window by window, then a Ping
	settle 5 180 || fatal "the initial sync did not settle within 180 s"
	items0=$(stat_of items)
	log "initial sync done: $items0 item(s) in the sealed cache"

	code=$(post /unlock ms unlock-body) || fatal "POST /unlock: curl failed"
	[ "$code" = 200 ] || fatal "POST /unlock answered $code: $(cat "$work/resp")"
	code=$(post /ping) || fatal "POST /ping: curl failed"
	if [ "$code" != 200 ] || ! grep -q '"unlocked"' "$work/resp"; then
		fatal "POST /ping answered $code: $(cat "$work/resp")"
	fi
	log "unlocked again and pinged"

	lines0=$(wc -l <"$logf")
	"$HALFKEY_TEST_DELIVER" "$HALFKEY_TEST_USER_A" "Halfkey memory test $run $$" >/dev/null ||
		fatal "$HALFKEY_TEST_DELIVER failed"
	# shellcheck disable=SC2016 # wait_for evaluates it
	wait_for '[ "$(stat_of items)" -gt '"$items0"' ]' 150 ||
		fatal "the sync engine did not fetch the delivered message within 150 s (items stay $items0)"
	settle 3 60 || fatal "the sync after the delivery did not settle within 60 s"
	items1=$(stat_of items)
	woken=$(tail -n +"$((lines0 + 1))" "$logf" | grep -c -E 'Ping: http/[12] 200 status 2' || true)
	log "delivered a message; the sync engine fetched it ($items0 -> $items1 items; Pings woken by a change: $woken)"
	check_files active
	check_ctl active
}

# dump LABEL [--require-password]: the daemon stopped (SIGSTOP) for a
# consistent image while its memory is read
dump() {
	local rc=0
	kill -STOP "$pid"
	ms mem "$run/$1" "$pid" ${2:+"$2"} || rc=$?
	kill -CONT "$pid"
	return $rc
}

do_action() {
	local code
	case $run in
	flush)
		ctl flush "$account" >/dev/null || fatal "halfkeyctl flush $account failed"
		code=$(post /ping) || fatal "POST /ping: curl failed"
		if [ "$code" != 200 ] || ! grep -q '"locked"' "$work/resp"; then
			fatal "after the flush, POST /ping answered $code: $(cat "$work/resp") (want locked)"
		fi
		;;
	delete)
		code=$(dcurl -sS -o "$work/resp" -w '%{http_code}' -X DELETE \
			-H "Authorization: Bearer $token" "$api/account") || fatal "DELETE /account: curl failed"
		[ "$code" = 204 ] || fatal "DELETE /account answered $code: $(cat "$work/resp")"
		code=$(post /ping) || fatal "POST /ping: curl failed"
		[ "$code" = 401 ] || fatal "after the delete, POST /ping answered $code (want 401)"
		;;
	wipe)
		ctl wipe "$account" >/dev/null || fatal "halfkeyctl wipe $account failed"
		code=$(post /ping) || fatal "POST /ping: curl failed"
		if [ "$code" != 403 ] || ! grep -q 'urn:halfkey:wiped' "$work/resp"; then
			fatal "after the wipe, POST /ping answered $code: $(cat "$work/resp") (want 403 wiped)"
		fi
		;;
	*) fatal "unknown run '$run' (HK_MEM_RUNS: flush, delete, wipe)" ;;
	esac
	[ "$(stat_of unlocked)" = 0 ] || fatal "after the $run, stats still show an unlocked account"
}

if [ "$tls" = 1 ]; then
	command -v openssl >/dev/null || skip "HK_MEM_TLS=1 needs openssl"
	mkdir -m 0700 "$work/tls"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
		-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
		-keyout "$work/tls/key.pem" -out "$work/tls/cert.pem" 2>/dev/null
fi
log "halfkeyd: $halfkeyd"
log "device API: $([ "$tls" = 1 ] && echo "HTTPS (throw-away certificate)" || echo "plain HTTP on loopback")"
log "mail server: $HALFKEY_TEST_EAS_URL, user $HALFKEY_TEST_USER_A; work directory $work"
echo "needles (the encodings in which the password and the device key crossed a boundary):"
ms needles | sed 's/^/  /'

# The scanner's own checks, before any daemon: the body needles are exactly
# what the test sends, and every needle (the binary device key too) is found
# in a process that holds it, with reads of 4 MiB and of an odd 4099 bytes
# (needles straddling reads) giving the same counts.
run=selftest
ms register-body "$HALFKEY_TEST_EAS_URL" HKMEMSELFTEST |
	ms stdin selftest/register-body --expect password/raw,password/json-string,password/json-member,device-key/base64url-nopad,device-key/json-member >/dev/null ||
	fatal "the register body needles do not match the body the test sends"
ms unlock-body | ms stdin selftest/unlock-body --expect device-key/base64url-nopad,device-key/json-member >/dev/null ||
	fatal "the unlock body needles do not match the body the test sends"
coproc PROBE { ms probe; }
read -r probe_pid <&"${PROBE[0]}" # python's pid, not the coprocess shell's
c1=$(ms mem selftest/4MiB "$probe_pid" --expect-all | tail -n 1) ||
	{ echo "$c1"; fatal "the scanner does not find every needle in a process holding them"; }
c2=$(HK_MEM_CHUNK=4099 ms mem selftest/4099B "$probe_pid" --expect-all | tail -n 1) ||
	{ echo "$c2"; fatal "the scanner does not find every needle with 4099-byte reads"; }
probe_in=${PROBE[1]}
# shellcheck disable=SC2153 # set by coproc
probe_shell=$PROBE_PID
exec {probe_in}>&- # the probe exits when its stdin closes
wait "$probe_shell" || true
[ "${c1#* }" = "${c2#* }" ] || fatal "the counts depend on the read size: '$c1' vs '$c2'"
log "scanner self-test passed: every needle found in a probe process (counts $(echo "${c1#* }" | tr ' ' ,))"

for run in $runs; do
	echo
	echo "================ run: $run ================"
	r0=$(date +%s.%N)
	files_hits=0
	mem_result=ok
	start_daemon
	activate

	# the sanity check: the scanner must find the password in the active relay
	if ! dump active --require-password; then
		failures+=("$run: sanity: the password was not found in the active relay's memory: the scanner is broken")
		mem_result="scanner-broken"
	fi
	ta=$(date +%s.%N)
	do_action
	log "$run done; waiting ${settle}s"
	sleep "$settle"
	dump_rc=0
	dump "after-$run" || dump_rc=$?
	action_to_dump=$(elapsed "$ta") # action, settle pause and the whole dump
	if [ "$dump_rc" = 0 ]; then
		log "PASS [$run]: no copy of the password or device key in halfkeyd's memory after the $run"
	elif [ "$dump_rc" = 2 ]; then
		failures+=("$run: after the $run, halfkeyd's memory could not be read (see the memscan message above)")
		mem_result=scan-error
	else
		failures+=("$run: after the $run, halfkeyd's memory holds the password or device key (see the HIT lines of [$run/after-$run])")
		mem_result=FAIL
	fi
	check_files "after-$run"
	check_ctl "after-$run"
	# which HTTP the daemon spoke to the mail server (its debug log)
	proto=$(grep -oE 'eas [A-Za-z0-9]+ [A-Za-z]+: http/[12] ' "$logf" | grep -oE 'http/[12]' |
		sort -u | tr '\n' ' ' || true)
	stop_daemon
	check_files after-exit
	summary+=("$(printf '%-7s memory-after: %-14s files/log/audit checks with hits: %d   run time %s (action to end of dump %s)   mail server over: %s' \
		"$run" "$mem_result" "$files_hits" "$(elapsed "$r0")" "$action_to_dump" "${proto:-?}")")
done

# The peer's SOGo serves a Ping with one of its few workers until the
# heartbeat (60 s here) even after the client went away; a change ends it
# within seconds. Release the last run's orphaned Ping for the next client.
"$HALFKEY_TEST_DELIVER" "$HALFKEY_TEST_USER_A" "Halfkey memory test: end $$" >/dev/null ||
	log "note: the closing delivery failed (harmless)"

echo
echo "================ summary ================"
printf '%s\n' "${summary[@]}"
log "total time"
if [ ${#failures[@]} -gt 0 ]; then
	echo
	echo "FAIL: the memory property of DESIGN.md §3 does not hold:"
	printf '  - %s\n' "${failures[@]}"
	exit 1
fi
echo "PASS ($(echo "$runs" | tr " " ,)): no copy of the password or the device key is left in halfkeyd's memory, data directory, log or audit trail"
