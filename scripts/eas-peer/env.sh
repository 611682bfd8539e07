# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# env.sh - settings of Halfkey's loopback EAS test peer. Sourced by up.sh,
# down.sh, deliver.sh and check.sh; never run on its own.
#
# Every value below is only a default: export the variable before calling a
# script to change it (e.g. HALFKEY_PEER_HTTPS_PORT=26443 ./up.sh). The port
# block 25xxx is deliberately different from the reference peer's 24xxx so
# both can run side by side; all ports stay below the ephemeral range.

: "${HALFKEY_PEER_STATE:=/tmp/halfkey-eas-peer}"

: "${HALFKEY_PEER_HTTPS_PORT:=25443}"      # nginx TLS front = the EAS endpoint
: "${HALFKEY_PEER_SOGO_PORT:=25080}"       # sogod, plain HTTP, only nginx talks to it
: "${HALFKEY_PEER_IMAP_PORT:=25143}"       # Dovecot IMAP, plaintext
: "${HALFKEY_PEER_LMTP_PORT:=25024}"       # Dovecot LMTP
: "${HALFKEY_PEER_SMTP_PORT:=25025}"       # smtp-sink: where sogod sends mail
: "${HALFKEY_PEER_PG_PORT:=25432}"         # private PostgreSQL cluster
: "${HALFKEY_PEER_MEMCACHED_PORT:=25211}"  # memcached for sogod

: "${HALFKEY_PEER_DOMAIN:=halfkey.test}"
# "login:password" words; the first two become user A and user B of the tests.
# Passwords must not contain spaces, colons or quotes.
: "${HALFKEY_PEER_USERS:=alice:alice-pw-1 bob:bob-pw-2}"

: "${HALFKEY_PEER_WORKERS:=32}"            # sogod workers = concurrent EAS requests (a Ping holds one, until its heartbeat even when the client went away)
: "${HALFKEY_PEER_SYNC_INTERVAL:=5}"       # SOGoInternalSyncInterval: Ping/Sync poll period, s
: "${HALFKEY_PEER_MAX_PING:=3540}"         # SOGoMaximumPingInterval, s
: "${HALFKEY_PEER_MAX_SYNC:=3540}"         # SOGoMaximumSyncInterval, s
: "${HALFKEY_PEER_HTTP2:=1}"                # 1: nginx offers HTTP/2 (ALPN h2) on the EAS endpoint, as most servers do; 0: HTTP/1.1 only
: "${HALFKEY_PEER_EAS_DEBUG:=YES}"         # SOGoEASDebugEnabled: every EAS request/response in log/sogo.log
: "${HALFKEY_PEER_KEEP_ON_FAILURE:=0}"     # 1: up.sh leaves daemons running when it fails
: "${HALFKEY_PEER_RESET:=0}"               # 1: up.sh wipes the state dir and starts from scratch

HALFKEY_PEER_HOST=127.0.0.1
HALFKEY_PEER_URL="https://$HALFKEY_PEER_HOST:$HALFKEY_PEER_HTTPS_PORT/Microsoft-Server-ActiveSync"
HALFKEY_PEER_MARKER=.halfkey-eas-peer      # up.sh's signature inside the state dir
HALFKEY_PEER_PYTHON=/usr/bin/python3       # Debian's, not whatever python3 is first in PATH

# The daemons, in start order; down.sh stops them in reverse.
HALFKEY_PEER_DAEMONS="postgres memcached dovecot smtp-sink sogod nginx"

hk_say() { printf '[eas-peer] %s\n' "$*" >&2; }

# hk_users_field N: login (N=1) or password (N=2) of each configured user, one per line.
hk_users_field() {
  local w
  for w in $HALFKEY_PEER_USERS; do
    if [ "$1" = 1 ]; then printf '%s\n' "${w%%:*}"; else printf '%s\n' "${w#*:}"; fi
  done
}

# hk_password LOGIN: prints the configured password, fails for an unknown login.
hk_password() {
  local w
  for w in $HALFKEY_PEER_USERS; do
    if [ "${w%%:*}" = "$1" ]; then printf '%s\n' "${w#*:}"; return 0; fi
  done
  return 1
}

# hk_starttime PID: the kernel start time of PID (clock ticks since boot,
# field 22 of /proc/PID/stat). Together with the PID it names one process.
hk_starttime() {
  local stat rest
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  rest=${stat##*) }                         # the command name may contain spaces
  # shellcheck disable=SC2086  # word splitting wanted
  set -- $rest                              # $1 = field 3 (state) ... $20 = field 22
  [ "$1" != Z ] || return 1                 # a zombie is as good as gone
  printf '%s\n' "${20}"
}

# hk_is PID STARTTIME: true while exactly that process is alive.
hk_is() {
  local now
  [ -n "${1:-}" ] && [ -n "${2:-}" ] || return 1
  now=$(hk_starttime "$1") || return 1
  [ "$now" = "$2" ]
}

# hk_record_file NAME: where up.sh keeps "PID STARTTIME" lines for daemon NAME.
hk_record_file() { printf '%s/procs/%s\n' "$HALFKEY_PEER_STATE" "$1"; }

# hk_running NAME: true if the first process recorded for NAME is still that process.
hk_running() {
  local f pid st
  f=$(hk_record_file "$1")
  [ -s "$f" ] || return 1
  read -r pid st _ < "$f" || return 1
  hk_is "$pid" "$st"
}

# hk_shq VALUE: VALUE as a word for `. file` in any POSIX sh. Plain values stay
# bare (easy for a C reader of KEY=value lines); others get single quotes.
hk_shq() {
  case $1 in
    '' | *[!A-Za-z0-9_./:@%+,=-]*)
      printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")" ;;
    *) printf '%s' "$1" ;;
  esac
}
