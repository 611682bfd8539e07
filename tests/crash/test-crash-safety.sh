#!/usr/bin/env bash
# Crash safety of the relay: kill -9 halfkeyd at random moments during
# register, unlock, ping, delete, purge and background sync, restart it, and
# check the store and the accounts after every kill.
#
#   test-crash-safety.sh HALFKEYD HALFKEYCTL
#
# Needs a real ActiveSync server: HALFKEY_TEST_EAS_URL, HALFKEY_TEST_USER_A,
# HALFKEY_TEST_PASS_A, HALFKEY_TEST_USER_B, HALFKEY_TEST_PASS_B (and
# HALFKEY_TEST_EAS_CA for a private CA), e.g. the project's peer:
#   set -a; . /tmp/halfkey-eas-peer/peer.env; set +a
# Exits 77 (skipped) without them, or without curl, openssl or python3's
# sqlite3 module. Uses strace, where it works, for one kind of kill.
#
# The relay reaches the server through a pass-through of the test's own
# (crash-check.py easproxy, TLS with a throw-away certificate) that forwards
# everything but Ping, which it holds: a killed relay cannot end its Ping,
# and the server would keep a worker on it for the whole heartbeat; it also
# keeps at most 5 of the test's requests at the shared server at once.
#
# Each round:
#   1. halfkeyd runs on 127.0.0.1 (plain HTTP, a fresh free port) with its
#      data_dir in this test's temporary directory, flush_after = 1m.
#   2. crash-check.py plans the round: 1-3 registrations (user A or B, a
#      fresh random DeviceId and device key each), DELETE /account, /unlock
#      and /ping of accounts registered in earlier rounds, sometimes
#      `halfkeyctl purge`; each at a random offset (0-0.9 s). Registrations
#      and unlocks start background syncs against the mail server.
#   3. kill -9, at a moment chosen by the round's mode:
#        uniform     a timer, 0-1.5 s after the first request
#        reg-commit  0-3 ms after the relay logs the mail server's answer to
#                    a registration's FolderSync: sealing, the commit, the
#                    answer (the killer watches the daemon's log)
#        sync        0-4 ms after a large Sync response arrived: its parse
#                    and its one-transaction apply
#        purge       within the purge's expected duration after the relay
#                    logs the command (a few ms per due account)
#        store-io    halfkeyd runs under strace, which delivers SIGKILL on
#                    entry to the n-th pwrite64 or fdatasync of the database
#                    or its WAL: inside a commit, a checkpoint
#   4. with the daemon down, a copy of the database (+ WAL) is checked:
#      integrity_check, foreign_key_check, no half account, no orphan row,
#      and every account where the requests' answers say it must be
#      (crash-check.py explains the rules). A registration killed after its
#      commit is "adopted": its device row gets a token of the test's own so
#      that its unlock can be checked too.
#   5. restart; `halfkeyctl stats` must count what the offline check counted;
#      then /unlock: every account registered, touched or left uncertain by
#      the round and one recently active other (200), and the tokens of
#      accounts that went (401).
# At the end every live account must unlock and every gone token be
# refused; then a clean SIGTERM shutdown (exit 0: under ASan also no leak)
# and a last offline check. A sanitizer report in any log fails the test.
#
# Purge in a short test: flush_after = 1m (the minimum) and the test leaves
# most accounts alone after the round that registered them, so from about
# the 60th second on they come due; purge rounds wait for two or more.
#
# HK_CRASH_ROUNDS (default 100, at least 50 are run), HK_CRASH_BUDGET (soft
# limit in seconds on the rounds after the 50th, default 400),
# HK_CRASH_KEEP=1 keeps the work directory, HK_CRASH_MODE forces a mode.
set -u -o pipefail
export LC_ALL=C
umask 077

if [ $# -ne 2 ]; then
	echo "usage: $0 HALFKEYD HALFKEYCTL" >&2
	exit 2
fi
HALFKEYD=$1
HALFKEYCTL=$2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECK="$HERE/crash-check.py"

for v in HALFKEY_TEST_EAS_URL HALFKEY_TEST_USER_A HALFKEY_TEST_PASS_A \
	HALFKEY_TEST_USER_B HALFKEY_TEST_PASS_B; do
	if [ -z "${!v:-}" ]; then
		echo "SKIP: $v is not set (no ActiveSync server to test against)"
		exit 77
	fi
done
export HALFKEY_TEST_EAS_URL HALFKEY_TEST_USER_A HALFKEY_TEST_PASS_A \
	HALFKEY_TEST_USER_B HALFKEY_TEST_PASS_B
if ! command -v curl >/dev/null || ! command -v openssl >/dev/null ||
	! python3 -c 'import sqlite3' 2>/dev/null; then
	echo "SKIP: needs curl, openssl and python3 with its sqlite3 module"
	exit 77
fi

ROUNDS=${HK_CRASH_ROUNDS:-100}
MIN_ROUNDS=50
[ "$ROUNDS" -lt "$MIN_ROUNDS" ] && MIN_ROUNDS=$ROUNDS
BUDGET=${HK_CRASH_BUDGET:-400}

W=$(mktemp -d "${TMPDIR:-/tmp}/hk-crash-XXXXXX")
mkdir -p "$W/r"
PID=
DPID=
PROXY_PID=
FAILS=0
# shellcheck disable=SC2317 # (run by the trap)
cleanup() {
	[ -n "$DPID" ] && kill -9 "$DPID" 2>/dev/null
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -9 "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	if [ -n "$PROXY_PID" ]; then
		kill "$PROXY_PID" 2>/dev/null
		wait "$PROXY_PID" 2>/dev/null
	fi
	if [ "$FAILS" -eq 0 ] && [ "${HK_CRASH_KEEP:-0}" != 1 ]; then
		rm -rf "$W"
	else
		echo "work directory kept: $W"
	fi
}
trap cleanup EXIT

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
sleep_ms() { [ "$1" -gt 0 ] && sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; return 0; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rdir() { printf '%s/r/%03d' "$W" "$1"; }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }

SOCK="$W/control.sock"
PORT=
API=
# start_daemon LOGFILE [STRACE-INJECT]: a fresh port each time (the killed
# one's may linger). PID is what to wait for; DPID is halfkeyd itself (not
# the same under strace).
start_daemon() {
	PORT=$(free_port)
	API=http://127.0.0.1:$PORT
	cat >"$W/halfkeyd.conf" <<-CONF
	[relay]
	node_name = crashtest
	data_dir = $W/data
	control_socket = $SOCK
	user = ""
	group = ""
	[listen]
	address = 127.0.0.1
	port = $PORT
	tls = no
	[lifecycle]
	flush_after = 1m
	purge_every = 1h
	[limits]
	register_per_ip_per_minute = 100000
	device_requests_per_minute = 1000000
	max_connections = 4096
	[mailserver]
	ca_file = $W/ca-bundle.pem
	ping_heartbeat = 60s
	[log]
	level = debug
	CONF
	chmod 0644 "$W/halfkeyd.conf"
	if [ -n "${2:-}" ]; then
		# (in a subshell, so that bash does not report the kill)
		# shellcheck disable=SC2094 # (the log is only appended to)
		(
			strace -f -qq -y -o "$(dirname "$1")/strace.log" \
				-P "$W/data/halfkey.db" -P "$W/data/halfkey.db-wal" \
				-e trace=pwrite64,fdatasync,fsync -e inject="$2" \
				"$HALFKEYD" -c "$W/halfkeyd.conf" >>"$1" 2>&1
			exit $?
		) 2>/dev/null &
		PID=$!
		DPID=
	else
		"$HALFKEYD" -c "$W/halfkeyd.conf" >>"$1" 2>&1 &
		PID=$!
		DPID=$PID
	fi
	local i
	for i in $(seq 1 300); do
		if curl -sf -m 2 "$API/health" >/dev/null 2>&1; then
			if [ -z "$DPID" ]; then # subshell -> strace -> halfkeyd
				local s
				s=$(cat "/proc/$PID/task/$PID/children" 2>/dev/null)
				s=${s%% *}
				[ -n "$s" ] && DPID=$(cat "/proc/$s/task/$s/children" 2>/dev/null)
				DPID=${DPID%% *}
			fi
			[ -n "$DPID" ] && return 0
			echo "cannot find halfkeyd under strace (pid $PID)"
			return 1
		fi
		if ! kill -0 "$PID" 2>/dev/null; then
			wait "$PID"
			echo "halfkeyd exited ($?) at start; its log:"
			tail -n 30 "$1" | sed 's/^/  /'
			PID=
			return 1
		fi
		sleep 0.05
	done
	echo "halfkeyd did not answer /health within 15 s; its log:"
	tail -n 30 "$1" | sed 's/^/  /'
	return 1
}

sanitizer_check() {
	if grep -qE 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$1"; then
		fail "sanitizer report in $1:"
		grep -E -A20 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$1" | head -n 40
	fi
}

# run_op DIR 'NN kind offset dev token'
run_op() {
	local d=$1 i kind off dev tok http rc t0 t1
	read -r i kind off dev tok <<<"$2"
	sleep_ms "$off"
	t0=$(now_ms)
	case $kind in
	reg)
		http=$(curl -s -m 60 -o "$d/ops/$i.body" -w '%{http_code}' \
			-H 'Content-Type: application/json' --data-binary @"$d/ops/$i.req" \
			"$API/register")
		rc=$? ;;
	unlock)
		http=$(curl -s -m 60 -o "$d/ops/$i.body" -w '%{http_code}' \
			-H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
			--data-binary @"$d/ops/$i.req" "$API/unlock")
		rc=$? ;;
	ping)
		http=$(curl -s -m 60 -o "$d/ops/$i.body" -w '%{http_code}' -X POST \
			-H "Authorization: Bearer $tok" "$API/ping")
		rc=$? ;;
	del)
		http=$(curl -s -m 60 -o "$d/ops/$i.body" -w '%{http_code}' -X DELETE \
			-H "Authorization: Bearer $tok" "$API/account")
		rc=$? ;;
	purge)
		"$HALFKEYCTL" -s "$SOCK" --json purge >"$d/ops/$i.body" 2>"$d/ops/$i.err"
		rc=$?
		http=- ;;
	esac
	t1=$(now_ms)
	echo "$i $kind $dev $t0 $t1 $rc ${http:-000}" >"$d/ops/$i.ev"
}

# verify DIR: unlocks every "dev expect token key" line of DIR/verify.list
# (8 at a time), answers in DIR/verify.res
verify() {
	local d=$1 dev exp tok key vp=()
	: >"$d/verify.res"
	while read -r dev exp tok key; do
		(
			t0=$(now_ms)
			http=$(curl -s -m 30 -o /dev/null -w '%{http_code}' \
				-H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
				--data-binary "{\"device_key\":\"$key\"}" "$API/unlock")
			echo "$dev $exp ${http:-000} $t0 $(now_ms)" >"$d/verify.$dev"
		) &
		vp+=($!)
		if [ ${#vp[@]} -ge 8 ]; then
			wait "${vp[@]}"
			vp=()
		fi
	done <"$d/verify.list"
	[ ${#vp[@]} -gt 0 ] && wait "${vp[@]}"
	cat "$d"/verify.CK* >"$d/verify.res" 2>/dev/null
	rm -f "$d"/verify.CK*
}

T_START=$(now_ms)

# strace, where it works, injects kills inside the store's writes
HK_CRASH_STRACE=0
if command -v strace >/dev/null && strace -f -qq -o /dev/null -e trace=fsync true 2>/dev/null; then
	HK_CRASH_STRACE=1
fi
export HK_CRASH_STRACE

# The relay talks to the mail server through a pass-through that holds its
# Pings (crash-check.py easproxy): a killed relay's Ping would otherwise keep
# one of the shared server's workers busy for the whole heartbeat.
if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$W/proxy.key" -out "$W/proxy.crt" >"$W/openssl.log" 2>&1; then
	cat "$W/openssl.log"
	fail "cannot make the pass-through's certificate"
	exit 1
fi
cat "$W/proxy.crt" ${HALFKEY_TEST_EAS_CA:+"$HALFKEY_TEST_EAS_CA"} >"$W/ca-bundle.pem"
python3 "$CHECK" easproxy "$W" "$HALFKEY_TEST_EAS_URL" "${HALFKEY_TEST_EAS_CA:-}" \
	"$W/proxy.crt" "$W/proxy.key" >"$W/easproxy.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 1 200); do
	[ -e "$W/easproxy.port" ] && break
	sleep 0.02
done
[ -e "$W/easproxy.port" ] || { cat "$W/easproxy.log"; fail "the pass-through did not start"; exit 1; }
HK_CRASH_EAS_URL=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(("https", "127.0.0.1:" + sys.argv[2], p.path, "", "")))' \
	"$HALFKEY_TEST_EAS_URL" "$(cat "$W/easproxy.port")")
export HK_CRASH_EAS_URL
echo "crash-safety: work directory $W, up to $ROUNDS rounds against $HALFKEY_TEST_EAS_URL (via $HK_CRASH_EAS_URL)"
mkdir -p "$(rdir 1)"
start_daemon "$(rdir 1)/halfkeyd.log" || { FAILS=1; exit 1; }

r=1
while [ "$r" -le "$ROUNDS" ]; do
	d=$(rdir "$r")
	mkdir -p "$d/ops"
	plan=$(python3 "$CHECK" plan "$W" "$r") || { fail "plan $r"; break; }
	KILL_MS=0
	KILLER=timer
	INJECT=''
	OPS=()
	eval "$plan" # KILL_MS, KILLER, INJECT, OPS (and MODE, for the log)
	kpid=
	if [ "$KILLER" = strace ]; then
		# this round's daemon runs under strace, which kills it on entry to
		# the chosen write or sync of the database files
		kill -TERM "$PID"
		wait "$PID"
		rc=$?
		[ "$rc" -eq 0 ] || fail "halfkeyd exited $rc on SIGTERM (round $r)"
		start_daemon "$d/halfkeyd.log" "$INJECT" || { fail "start under strace"; break; }
	fi
	if [ "$KILLER" = log ]; then
		python3 "$CHECK" killer "$W" "$r" "$PID" &
		kpid=$!
		for _ in $(seq 1 500); do
			[ -e "$d/killer.ready" ] && break
			sleep 0.01
		done
	fi
	t_ops0=$(now_ms)
	pids=()
	for op in "${OPS[@]}"; do
		run_op "$d" "$op" &
		pids+=($!)
	done
	if [ "$KILLER" = timer ]; then
		sleep_ms "$KILL_MS"
		kill -9 "$PID"
	elif [ "$KILLER" = strace ]; then
		# the fallback when the n-th write never comes
		for _ in $(seq 1 $((KILL_MS / 20))); do
			kill -0 "$DPID" 2>/dev/null || break
			sleep 0.02
		done
		kill -9 "$DPID" 2>/dev/null
	fi
	wait "$PID" 2>/dev/null
	t_kill=$(now_ms)
	PID=
	DPID=
	[ -n "$kpid" ] && wait "$kpid"
	wait "${pids[@]}"
	echo "$t_ops0 $t_kill" >"$d/kill"
	sanitizer_check "$d/halfkeyd.log"

	python3 "$CHECK" check "$W" "$r" || FAILS=$((FAILS + 1))

	next=$((r + 1))
	nd=$(rdir "$next")
	[ "$r" -ge "$ROUNDS" ] && nd="$W/r/final"
	mkdir -p "$nd"
	if ! start_daemon "$nd/halfkeyd.log"; then
		fail "halfkeyd does not start again after the kill of round $r"
		break
	fi
	"$HALFKEYCTL" -s "$SOCK" --json stats >"$d/stats.json" 2>&1 ||
		fail "halfkeyctl stats after the restart of round $r: $(cat "$d/stats.json")"
	python3 "$CHECK" stats "$W" "$r" "$d/stats.json" || FAILS=$((FAILS + 1))
	verify "$d"
	python3 "$CHECK" verified "$W" "$r" || FAILS=$((FAILS + 1))

	elapsed=$((($(now_ms) - T_START) / 1000))
	if [ "$r" -ge "$MIN_ROUNDS" ] && [ "$elapsed" -ge "$BUDGET" ] && [ "$r" -lt "$ROUNDS" ]; then
		echo "time budget of ${BUDGET}s reached after $r rounds"
		mv "$nd" "$W/r/final"
		break
	fi
	r=$next
done

# The final sweep runs on the daemon started after the last kill. Its
# unlocks would start dozens of syncs at once: the pass-through goes first,
# so that they fail at connect instead of crowding the shared server.
if [ -n "$PROXY_PID" ]; then
	kill "$PROXY_PID" 2>/dev/null
	wait "$PROXY_PID" 2>/dev/null
	echo "Pings held by the pass-through (kept off the mail server): $(cat "$W/easproxy.held" 2>/dev/null || echo 0)"
	PROXY_PID=
fi
if [ -n "$PID" ]; then
	fd="$W/r/final"
	mkdir -p "$fd"
	python3 "$CHECK" final "$W"
	verify "$fd"
	python3 "$CHECK" verified "$W" final || FAILS=$((FAILS + 1))
	kill -TERM "$PID"
	wait "$PID"
	rc=$?
	PID=
	[ "$rc" -eq 0 ] || fail "halfkeyd exited $rc on SIGTERM"
	sanitizer_check "$fd/halfkeyd.log"
	python3 "$CHECK" final-check "$W" || FAILS=$((FAILS + 1))
fi

python3 "$CHECK" report "$W" || [ "$FAILS" -gt 0 ] || FAILS=1
echo "runtime: $((($(now_ms) - T_START) / 1000)) s"
if [ "$FAILS" -gt 0 ]; then
	echo "crash-safety: FAILED"
	exit 1
fi
echo "crash-safety: passed"
exit 0
