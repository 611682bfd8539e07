#!/usr/bin/env bash
# down.sh [--only NAME] - stop the daemons that up.sh started, nothing else.
#
# Every daemon is known by the "PID STARTTIME" lines up.sh wrote to
# $HALFKEY_PEER_STATE/procs/NAME; a process is signalled only while its start
# time still matches (a recycled PID belongs to someone else). Mail, database,
# certificates and the outbox stay: up.sh starts again on them.
#
# The first line of procs/NAME is the daemon, further lines are the children
# it had when up.sh saw it ready. Children still alive after their parent
# has gone (an nginx worker whose master was SIGKILLed, say) get SIGKILL.
# sogod needs more care: its idle workers ignore SIGTERM. The watchdog gets
# SIGTERM, its workers (recorded ones plus its current children, all checked
# by start time) get SIGKILL right away.
set -euo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh
. "$HERE/env.sh"
S=$HALFKEY_PEER_STATE

only=
if [ "${1:-}" = --only ] && [ -n "${2:-}" ]; then only=$2
elif [ $# -gt 0 ]; then echo "usage: down.sh [--only NAME]" >&2; exit 2; fi

[ "$(id -u)" = 0 ] || { hk_say "down.sh must run as root"; exit 1; }
[ -d "$S/procs" ] || { hk_say "nothing recorded in $S"; exit 0; }
if [ "${HALFKEY_PEER_LOCKED:-0}" != 1 ]; then
  exec 9>"$S/.lock"
  flock -w 120 9 || { hk_say "$S/.lock is held by another up.sh/down.sh"; exit 1; }
fi

# gone_within SECONDS PID STARTTIME: waits for that process to end.
gone_within() {
  local limit=$(( ${EPOCHREALTIME/./} + $1 * 1000000 ))
  while hk_is "$2" "$3"; do
    [ "${EPOCHREALTIME/./}" -lt "$limit" ] || return 1
    sleep 0.1
  done
}

# children PID: "PID STARTTIME" of PID's current children.
children() {
  local c st
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    st=$(hk_starttime "$c") && echo "$c $st"
  done
  return 0
}

# kill_all SIGNAL LINES: signals each "PID STARTTIME" line that is still that process.
kill_all() {
  local p s
  while read -r p s; do
    [ -n "$p" ] || continue
    if hk_is "$p" "$s"; then kill -s "$1" "$p" 2>/dev/null || true; fi
  done <<< "$2"
}

stop() {   # NAME SIGNAL GRACE
  local name=$1 sig=$2 grace=$3 file pid st helpers p s
  file=$(hk_record_file "$name")
  [ -f "$file" ] || return 0
  read -r pid st < "$file" || true
  helpers=$(tail -n +2 "$file")      # children recorded at start (workers)
  if hk_is "$pid" "$st"; then
    helpers=$(printf '%s\n%s\n' "$helpers" "$(children "$pid")")
    hk_say "stopping $name (pid $pid, SIG$sig)"
    kill -s "$sig" "$pid" 2>/dev/null || true
    if [ "$name" = sogod ]; then
      sleep 0.3                       # a worker forked meanwhile is still its child
      helpers=$(printf '%s\n%s\n' "$helpers" "$(children "$pid")")
      kill_all KILL "$helpers"        # idle workers ignore SIGTERM
    fi
    if ! gone_within "$grace" "$pid" "$st"; then
      hk_say "$name (pid $pid) ignored SIG$sig for ${grace}s: SIGKILL"
      kill -s KILL "$pid" 2>/dev/null || true
      gone_within 5 "$pid" "$st" || hk_say "$name (pid $pid) is still there"
    fi
    # children normally leave with their parent; give them a moment
    while read -r p s; do
      [ -n "$p" ] || continue
      gone_within 2 "$p" "$s" || true
    done <<< "$helpers"
  fi
  # whatever is left (e.g. an nginx worker whose master was killed) goes now
  kill_all KILL "$helpers"
  while read -r p s; do
    [ -n "$p" ] || continue
    gone_within 5 "$p" "$s" || hk_say "$name: process $p is still there"
  done <<< "$helpers"
  rm -f "$file"
}

t0=${EPOCHREALTIME/./}
for name in nginx sogod smtp-sink dovecot memcached postgres; do
  [ -z "$only" ] || [ "$only" = "$name" ] || continue
  case $name in
    postgres) stop postgres INT 30 ;;      # "fast" shutdown: clean, no recovery next time
    nginx)    stop nginx TERM 10 ;;        # fast shutdown: waiting Pings are cut
    sogod)    stop sogod TERM 10 ;;
    *)        stop "$name" TERM 10 ;;
  esac
done
d=$(( ${EPOCHREALTIME/./} - t0 ))
if [ -z "$only" ]; then
  rm -f "$S/peer.env"                # the contract describes a running peer only
  hk_say "stopped in $((d / 1000000)).$((d / 100000 % 10))s; data kept in $S"
fi
