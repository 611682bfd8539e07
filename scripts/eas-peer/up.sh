#!/usr/bin/env bash
# up.sh - start Halfkey's loopback Exchange ActiveSync test peer.
#
#   nginx (TLS, 127.0.0.1:$HALFKEY_PEER_HTTPS_PORT)
#     -> sogod + sogo-activesync -> Dovecot IMAP  (mail, users from a passwd file)
#                                -> PostgreSQL    (SOGo's tables + the user table)
#                                -> memcached
#                                -> smtp-sink     (outgoing mail -> outbox + LMTP)
#
# Run as root. Installs missing Debian packages (their system services stay
# off), then starts private instances of all daemons as plain background
# processes; everything they write lives in $HALFKEY_PEER_STATE. When all
# recorded daemons are alive and the endpoint answers, it only prints the
# summary. On failure it stops whatever is recorded (unless
# HALFKEY_PEER_KEEP_ON_FAILURE=1). HALFKEY_PEER_RESET=1 wipes the state first.
# The test contract is written to $HALFKEY_PEER_STATE/peer.env.
set -euo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh
. "$HERE/env.sh"
S=$HALFKEY_PEER_STATE
cd /      # the daemons must not inherit a working directory they cannot read

T0=${EPOCHREALTIME/./}
since() { local d=$(( ${EPOCHREALTIME/./} - T0 )); printf '%d.%d' $((d / 1000000)) $((d / 100000 % 10)); }
step() { hk_say "[$(since)s] $*"; }
fail() { hk_say "ERROR: $*"; exit 1; }

PACKAGES=(sogo sogo-activesync dovecot-imapd dovecot-lmtpd memcached nginx postgresql
          python3 libwbxml2-utils curl openssl ca-certificates procps iproute2 util-linux)

# ---------------------------------------------------------------- safety first
[ "$(id -u)" = 0 ] || fail "up.sh must run as root"
case $S in
  /?*/?*) ;;
  *) fail "HALFKEY_PEER_STATE='$S' must be an absolute path at least two levels deep" ;;
esac
if [ -d "$S" ] && [ ! -f "$S/$HALFKEY_PEER_MARKER" ] && [ -n "$(ls -A "$S")" ]; then
  fail "$S exists, is not empty and was not made by up.sh (no $HALFKEY_PEER_MARKER); pick another HALFKEY_PEER_STATE"
fi
install -d -m 755 "$S"
exec 9>"$S/.lock"
flock -w 600 9 || fail "another up.sh/down.sh holds $S/.lock"
export HALFKEY_PEER_LOCKED=1          # down.sh runs under our lock
[ -f "$S/$HALFKEY_PEER_MARKER" ] || echo "state of Halfkey's EAS test peer (scripts/eas-peer/up.sh)" > "$S/$HALFKEY_PEER_MARKER"

mapfile -t LOGINS < <(hk_users_field 1)
[ "${#LOGINS[@]}" -ge 2 ] || fail "HALFKEY_PEER_USERS needs at least two login:password words"
USER_A=${LOGINS[0]}; PASS_A=$(hk_password "$USER_A")
USER_B=${LOGINS[1]}; PASS_B=$(hk_password "$USER_B")
CA=$S/tls/ca.crt

endpoint_code() {   # authenticated OPTIONS through TLS, prints the HTTP status
  curl -s -o /dev/null -w '%{http_code}' --max-time "${1:-10}" --cacert "$CA" \
    -u "$USER_A:$PASS_A" -X OPTIONS "$HALFKEY_PEER_URL" 2>/dev/null || true
}

summary() {
  local u
  cat <<EOF
Halfkey EAS peer is up (state $S)
  endpoint  $HALFKEY_PEER_URL   (Basic auth, EAS up to 14.1)
  CA        $CA
  users     $(for u in "${LOGINS[@]}"; do printf '%s/%s ' "$u" "$(hk_password "$u")"; done)(@$HALFKEY_PEER_DOMAIN)
  IMAP      imap://127.0.0.1:$HALFKEY_PEER_IMAP_PORT  (same logins, no TLS)
  deliver   $HERE/deliver.sh USER [SUBJECT|-]
  outbox    $S/outbox  (everything sogod sends)
  contract  . $S/peer.env
  logs      $S/log/     stop: $HERE/down.sh
EOF
}

# ------------------------------------------------------------- fast path
all_recorded_running() {
  local d
  for d in $HALFKEY_PEER_DAEMONS; do hk_running "$d" || return 1; done
}
if [ "$HALFKEY_PEER_RESET" != 1 ] && [ -s "$S/peer.env" ] && all_recorded_running \
   && [ "$(endpoint_code 10)" = 200 ]; then
  step "already running"
  summary
  exit 0
fi

# ------------------------------------------------------------- cleanup on failure
OWN_POLICY_RC=
on_exit() {
  local rc=$?
  if [ -n "$OWN_POLICY_RC" ]; then rm -f /usr/sbin/policy-rc.d; fi
  if [ "$rc" != 0 ]; then
    if [ "$HALFKEY_PEER_KEEP_ON_FAILURE" = 1 ]; then
      hk_say "failed (rc=$rc); HALFKEY_PEER_KEEP_ON_FAILURE=1 leaves the daemons running; logs in $S/log/"
    else
      hk_say "failed (rc=$rc); stopping what was started; logs in $S/log/"
      "$HERE/down.sh" >&2 || true
    fi
  fi
}
trap on_exit EXIT

# ------------------------------------------------------------- packages
missing_packages() {
  local p st
  declare -A have=()
  while read -r st p; do [ "$st" = ii ] && have[$p]=1; done < <(
    dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${PACKAGES[@]}" 2>/dev/null || true)
  for p in "${PACKAGES[@]}"; do [ -n "${have[$p]:-}" ] || printf '%s\n' "$p"; done
}
mapfile -t MISSING < <(missing_packages)
if [ "${#MISSING[@]}" -gt 0 ]; then
  step "installing ${MISSING[*]}"
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    # Debian's maintainer scripts ask policy-rc.d before starting a service;
    # 101 = "not allowed". Only ours is removed again afterwards.
    printf '#!/bin/sh\n# temporary, from Halfkey scripts/eas-peer/up.sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    OWN_POLICY_RC=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$S/apt.log" 2>&1 || { tail -n 20 "$S/apt.log" >&2; fail "apt-get update failed"; }
  apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold \
    "${MISSING[@]}" >>"$S/apt.log" 2>&1 || { tail -n 20 "$S/apt.log" >&2; fail "apt-get install failed"; }
  if [ -n "$OWN_POLICY_RC" ]; then rm -f /usr/sbin/policy-rc.d; OWN_POLICY_RC=; fi
  step "packages installed"
fi
PGBIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
[ -x "$PGBIN/postgres" ] || fail "no PostgreSQL server binaries under /usr/lib/postgresql"
PYTHON_EXE=$(readlink -f "$HALFKEY_PEER_PYTHON")
MAIL_UID=$(id -u mail); MAIL_GID=$(id -g mail)

# ------------------------------------------------------------- stop / wipe
if [ -n "$(ls -A "$S/procs" 2>/dev/null)" ]; then
  step "not (fully) running: stopping the recorded daemons first"
  "$HERE/down.sh" >&2
fi
if [ "$HALFKEY_PEER_RESET" = 1 ]; then
  step "HALFKEY_PEER_RESET=1: wiping $S"
  find "$S" -mindepth 1 -maxdepth 1 ! -name .lock ! -name "$HALFKEY_PEER_MARKER" -exec rm -rf -- {} +
fi

for port in "$HALFKEY_PEER_HTTPS_PORT" "$HALFKEY_PEER_SOGO_PORT" "$HALFKEY_PEER_IMAP_PORT" \
            "$HALFKEY_PEER_LMTP_PORT" "$HALFKEY_PEER_SMTP_PORT" "$HALFKEY_PEER_PG_PORT" \
            "$HALFKEY_PEER_MEMCACHED_PORT"; do
  if [ -n "$(ss -Hltn "sport = :$port")" ]; then
    ss -Hltnp "sport = :$port" >&2 || true
    fail "port $port is already taken; set HALFKEY_PEER_*_PORT to move the peer"
  fi
done

# ------------------------------------------------------------- layout
rm -f "$S/peer.env"            # written again once the endpoint answers
install -d -m 755 "$S/etc" "$S/log" "$S/procs" "$S/run" "$S/tls"
install -d -o postgres -g postgres -m 755 "$S/run/pg"
install -d -o sogo -g sogo -m 755 "$S/sogo" "$S/sogo/defaults" "$S/sogo/home" "$S/sogo/spool" "$S/outbox"
install -d -o mail -g mail -m 755 "$S/mail"
install -d -o www-data -g www-data -m 700 "$S/run/nginx"
install -d -m 755 "$S/dovecot"
for f in postgres.log sogo.log; do
  touch "$S/log/$f"
done
chown postgres: "$S/log/postgres.log"; chown sogo: "$S/log/sogo.log"

# launch NAME USER LOG CMD...: runs CMD in the background in a session of its
# own (no controlling terminal, no SIGHUP from ours), as USER, stdio to LOG,
# without our lock (fd 9: a daemon holding it would block every later run),
# and records "PID STARTTIME" in procs/NAME. PID is CMD's own pid: setsid and
# setpriv exec, they do not fork.
launch() {
  local name=$1 user=$2 log=$3 pid st
  shift 3
  if [ "$user" = root ]; then
    setsid "$@" </dev/null >>"$log" 2>&1 9>&- &
  else
    setsid setpriv --reuid="$user" --regid="$user" --init-groups -- "$@" </dev/null >>"$log" 2>&1 9>&- &
  fi
  pid=$!
  st=$(hk_starttime "$pid") || fail "$name exited at once (see $log)"
  echo "$pid $st" > "$(hk_record_file "$name")"
}

# await SECONDS WHAT NAME CMD...: retries CMD until it succeeds; gives up when
# time runs out or when daemon NAME (if not '-') has died meanwhile.
await() {
  local limit=$(( ${EPOCHREALTIME/./} + $1 * 1000000 )) what=$2 name=$3
  shift 3
  until "$@" >/dev/null 2>&1; do
    if [ "$name" != - ] && ! hk_running "$name"; then fail "$name died while waiting for $what (see $S/log/)"; fi
    [ "${EPOCHREALTIME/./}" -lt "$limit" ] || fail "gave up waiting for $what (see $S/log/)"
    sleep 0.1
  done
}

# expect_exe NAME PATH: the recorded process really is PATH (guards against surprises).
# setsid/setpriv exec the daemon, but only after they start: until then the
# pid still shows them, so wait (bounded) for the exec to happen.
expect_exe() {
  local pid i
  read -r pid _ < "$(hk_record_file "$1")"
  for i in $(seq 1 50); do
    [ "$(readlink "/proc/$pid/exe")" = "$2" ] && return 0
    sleep 0.05
  done
  fail "$1: pid $pid is $(readlink "/proc/$pid/exe"), expected $2"
}

# record_children NAME: appends "PID STARTTIME" of the daemon's current
# children (sogod's and nginx's workers...) to procs/NAME for down.sh.
record_children() {
  local file pid c st
  file=$(hk_record_file "$1")
  read -r pid _ < "$file"
  for c in $(ps -o pid= --ppid "$pid"); do
    if st=$(hk_starttime "$c"); then echo "$c $st" >> "$file"; fi
  done
}

listening() { [ -n "$(ss -Hltn "sport = :$1")" ]; }

# clear_stale_pidfile FILE EXE: a pid file left by a killed daemon blocks the
# next start. Remove it unless its pid is still that daemon (then refuse).
clear_stale_pidfile() {
  local pid
  [ -f "$1" ] || return 0
  read -r pid < "$1" || true
  if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$2" ]; then
    fail "$2 (pid $pid) still runs on $S but is not recorded; stop it first"
  fi
  rm -f "$1"
}

# ------------------------------------------------------------- TLS
tls_ok() {
  [ -s "$S/tls/server.crt" ] && [ -s "$S/tls/server.key" ] && [ -s "$CA" ] &&
    openssl verify -CAfile "$CA" "$S/tls/server.crt" >/dev/null 2>&1 &&
    openssl x509 -in "$S/tls/server.crt" -noout -checkend 86400 >/dev/null
}
if ! tls_ok; then
  step "creating a private CA and a server certificate (127.0.0.1, localhost)"
  (
    cd "$S/tls"
    umask 077
    rm -f ./*
    openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
      -subj "/O=Halfkey/CN=Halfkey EAS peer test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/O=Halfkey/CN=127.0.0.1" \
      -keyout server.key -out server.csr 2>/dev/null
    cat > server.ext <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
EOF
    openssl x509 -req -sha256 -days 825 -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -extfile server.ext -out server.crt 2>/dev/null
    chmod 644 ca.crt server.crt
  )
  tls_ok || fail "certificate generation failed"
fi

# ------------------------------------------------------------- PostgreSQL
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$HALFKEY_PEER_PG_PORT")
export PGOPTIONS='-c client_min_messages=warning'
if [ ! -s "$S/pg/PG_VERSION" ]; then
  step "initdb"
  rm -rf "$S/pg"
  install -d -o postgres -g postgres -m 700 "$S/pg"
  setpriv --reuid=postgres --regid=postgres --init-groups -- \
    "$PGBIN/initdb" -D "$S/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
    >"$S/log/initdb.log" 2>&1 || fail "initdb failed (see $S/log/initdb.log)"
fi
clear_stale_pidfile "$S/pg/postmaster.pid" "$PGBIN/postgres"
step "PostgreSQL on 127.0.0.1:$HALFKEY_PEER_PG_PORT"
# fsync off: this database is disposable test state, speed matters more
launch postgres postgres "$S/log/postgres.log" "$PGBIN/postgres" -D "$S/pg" \
  -h 127.0.0.1 -p "$HALFKEY_PEER_PG_PORT" -k "$S/run/pg" \
  -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200
await 60 "PostgreSQL" postgres "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$HALFKEY_PEER_PG_PORT"
expect_exe postgres "$PGBIN/postgres"

sql() { "${PSQL[@]}" -U "${SQL_AS:-sogo}" -d "${SQL_DB:-sogo}" "$@"; }
if [ -z "$(SQL_AS=postgres SQL_DB=postgres sql -tA -c "SELECT 1 FROM pg_roles WHERE rolname = 'sogo'")" ]; then
  SQL_AS=postgres SQL_DB=postgres sql -c "CREATE ROLE sogo LOGIN PASSWORD 'sogo'"
  SQL_AS=postgres SQL_DB=postgres sql -c "CREATE DATABASE sogo OWNER sogo"
fi
# SOGo's SQL user source: c_uid/c_name/c_password/c_cn/mail are the columns it expects
sql -c "CREATE TABLE IF NOT EXISTS halfkey_users (
          c_uid text PRIMARY KEY, c_name text NOT NULL, c_password text NOT NULL,
          c_cn text, mail text)"
{
  echo 'BEGIN;'
  echo 'DELETE FROM halfkey_users;'
  for u in "${LOGINS[@]}"; do
    printf "INSERT INTO halfkey_users VALUES ('%s', '%s', '%s', '%s', '%s@%s');\n" \
      "$u" "$u" "$(hk_password "$u")" "$u" "$u" "$HALFKEY_PEER_DOMAIN"
  done
  echo 'COMMIT;'
} | sql

# ------------------------------------------------------------- memcached
step "memcached on 127.0.0.1:$HALFKEY_PEER_MEMCACHED_PORT"
launch memcached memcache "$S/log/memcached.log" /usr/bin/memcached \
  -l 127.0.0.1 -p "$HALFKEY_PEER_MEMCACHED_PORT" -U 0 -m 64 -c 1024
await 20 "memcached" memcached listening "$HALFKEY_PEER_MEMCACHED_PORT"

# ------------------------------------------------------------- Dovecot
# passwd-file: user:{PLAIN}password:uid:gid::home:: serves as passdb and userdb,
# so LMTP refuses unknown recipients instead of inventing mailboxes.
for u in "${LOGINS[@]}"; do
  printf '%s:{PLAIN}%s:%s:%s::%s/mail/%s::\n' "$u" "$(hk_password "$u")" "$MAIL_UID" "$MAIL_GID" "$S" "$u"
done > "$S/etc/users.passwd.new"
chgrp dovecot "$S/etc/users.passwd.new"; chmod 640 "$S/etc/users.passwd.new"
mv -f "$S/etc/users.passwd.new" "$S/etc/users.passwd"

# Quirk 10 of the reference README: SOGo reads a folder's state from the
# HIGHESTMODSEQ of a plain IMAP SELECT, which Dovecot only reports for
# mailboxes whose modseq tracking has been switched on (normally by a
# CONDSTORE client). This hook runs as the mail user before every IMAP
# session and switches tracking on, once, for each mailbox it has not seen yet
# (remembered by mailbox GUID). A mailbox created over EAS or IMAP is covered
# from the next IMAP login on, i.e. from the next EAS request.
sed "s|@DOVECOT_CONF@|$S/etc/dovecot.conf|" > "$S/etc/modseq-hook.sh" <<'HOOK'
#!/bin/sh
# generated by Halfkey scripts/eas-peer/up.sh; run by Dovecot's script-login
# as the mail user (USER and HOME set) right before an IMAP session starts.
PATH=/usr/bin:/bin:/usr/sbin:/sbin; export PATH    # script-login passes none
doveadm_() { doveadm -c '@DOVECOT_CONF@' -o stats_writer_socket_path= "$@"; }
SEEN=$HOME/.halfkey-modseq-on
TAB=$(printf '\t')
touch "$SEEN"
# doveadm orders the columns as it likes: find them by their header names
doveadm_ -f tab mailbox status 'guid highestmodseq' '*' 2>/dev/null |
awk -F '\t' -v seen="$SEEN" '
  BEGIN { while ((getline g < seen) > 0) done[g] = 1 }
  NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
  !($col["guid"] in done) { print $col["guid"] "\t" ($col["highestmodseq"] + 1) "\t" $col["mailbox"] }' |
while IFS=$TAB read -r guid next box; do
  doveadm_ mailbox update --min-highest-modseq "$next" "$box" 2>/dev/null &&
    echo "$guid" >> "$SEEN"
done
exec "$@"
HOOK
chmod 755 "$S/etc/modseq-hook.sh"

cat > "$S/etc/dovecot.conf" <<EOF
# Dovecot of Halfkey's EAS test peer - generated by up.sh on every start
instance_name = halfkey-eas-peer
base_dir = $S/run/dovecot
state_dir = $S/dovecot
log_path = $S/log/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_format = %Ln
mail_location = maildir:~/Maildir
mail_fsync = never
mailbox_list_index = yes
first_valid_uid = $MAIL_UID
last_valid_uid = $MAIL_UID

passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%Ln $S/etc/users.passwd
}
userdb {
  driver = passwd-file
  args = username_format=%Ln $S/etc/users.passwd
}

namespace inbox {
  inbox = yes
  separator = /
  mailbox Drafts {
    special_use = \\Drafts
  }
  mailbox Sent {
    special_use = \\Sent
  }
  mailbox Trash {
    special_use = \\Trash
  }
  mailbox Junk {
    special_use = \\Junk
  }
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $HALFKEY_PEER_IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $HALFKEY_PEER_LMTP_PORT
  }
}
service imap {
  executable = imap halfkey-modseq
}
service halfkey-modseq {
  executable = script-login -d $S/etc/modseq-hook.sh
  unix_listener halfkey-modseq {
  }
}
protocol imap {
  # sogod keeps one connection per worker, the tests open more
  mail_max_userip_connections = 400
}
protocol lmtp {
  postmaster_address = postmaster@$HALFKEY_PEER_DOMAIN
}
EOF
doveconf -c "$S/etc/dovecot.conf" -n >/dev/null 2>"$S/log/doveconf.err" ||
  fail "Dovecot rejects its configuration: $(cat "$S/log/doveconf.err")"
clear_stale_pidfile "$S/run/dovecot/master.pid" /usr/sbin/dovecot
step "Dovecot: IMAP 127.0.0.1:$HALFKEY_PEER_IMAP_PORT, LMTP 127.0.0.1:$HALFKEY_PEER_LMTP_PORT"
launch dovecot root "$S/log/dovecot.stderr" /usr/sbin/dovecot -F -c "$S/etc/dovecot.conf"
await 20 "Dovecot IMAP" dovecot listening "$HALFKEY_PEER_IMAP_PORT"
await 20 "Dovecot LMTP" dovecot test -S "$S/run/dovecot/lmtp"
expect_exe dovecot /usr/sbin/dovecot

# What deliver.sh and check.sh need to know about the running peer.
printf 'HALFKEY_PEER_DOMAIN=%s\n' "$(hk_shq "$HALFKEY_PEER_DOMAIN")" > "$S/etc/peer.conf"

DOVEADM=(doveadm -c "$S/etc/dovecot.conf")
for u in "${LOGINS[@]}"; do
  if [ ! -f "$S/mail/$u.seeded" ]; then
    step "seeding $u: Drafts Sent Trash Junk + a welcome message"
    for box in Drafts Sent Trash Junk; do
      "${DOVEADM[@]}" mailbox status -u "$u" guid "$box" >/dev/null 2>&1 ||
        "${DOVEADM[@]}" mailbox create -u "$u" -s "$box"
    done
    HALFKEY_PEER_STATE=$S "$HERE/deliver.sh" "$u" "Welcome to the Halfkey EAS peer, $u" >/dev/null ||
      fail "could not deliver the welcome message to $u"
    touch "$S/mail/$u.seeded"
  fi
  # one IMAP login runs the modseq hook over all of the user's mailboxes
  examine=$(curl -s --max-time 20 -u "$u:$(hk_password "$u")" \
    "imap://127.0.0.1:$HALFKEY_PEER_IMAP_PORT/" -X 'EXAMINE INBOX') ||
    fail "IMAP login as $u failed (see $S/log/dovecot.log)"
  case $examine in
    *HIGHESTMODSEQ*) ;;
    *) fail "INBOX of $u reports no HIGHESTMODSEQ after the modseq hook (see $S/log/dovecot.log)" ;;
  esac
done

# ------------------------------------------------------------- SMTP sink
install -m 755 "$HERE/smtp-sink" "$S/etc/smtp-sink"
step "smtp-sink on 127.0.0.1:$HALFKEY_PEER_SMTP_PORT"
launch smtp-sink sogo "$S/log/smtp-sink.log" "$HALFKEY_PEER_PYTHON" "$S/etc/smtp-sink" \
  --port "$HALFKEY_PEER_SMTP_PORT" --outbox "$S/outbox" --domain "$HALFKEY_PEER_DOMAIN" \
  --lmtp "127.0.0.1:$HALFKEY_PEER_LMTP_PORT"
await 20 "smtp-sink" smtp-sink listening "$HALFKEY_PEER_SMTP_PORT"
expect_exe smtp-sink "$PYTHON_EXE"

# ------------------------------------------------------------- sogod
# sogod reads its defaults from a GNUstep "user defaults" directory; pointing
# GNUSTEP_CONFIG_FILE at our own GNUstep.conf moves that directory into the
# state dir. /etc/sogo/sogo.conf is still read, our keys override it.
{
  grep -v '^GNUSTEP_USER_' /etc/GNUstep/GNUstep.conf || true
  echo "GNUSTEP_USER_DIR=$S/sogo/home"
  echo "GNUSTEP_USER_DEFAULTS_DIR=$S/sogo/defaults"
  echo "GNUSTEP_USER_CONFIG_FILE=$S/sogo/home/.GNUstep.conf"
} > "$S/sogo/GNUstep.conf"
DB="postgresql://sogo:sogo@127.0.0.1:$HALFKEY_PEER_PG_PORT/sogo"
cat > "$S/sogo/defaults/sogod.plist" <<EOF
{
  /* Halfkey EAS peer - generated by up.sh on every start */
  WOPort = "127.0.0.1:$HALFKEY_PEER_SOGO_PORT";
  WOWorkersCount = $HALFKEY_PEER_WORKERS;
  WOLogFile = "$S/log/sogo.log";
  WOPidFile = "$S/sogo/sogod.pid";   /* written by sogod itself; we use procs/sogod */
  WOWatchDogRequestTimeout = 65;   /* minutes; above the longest Ping */
  SxVMemLimit = 512;

  SOGoProfileURL = "$DB/sogo_user_profile";
  OCSFolderInfoURL = "$DB/sogo_folder_info";
  OCSSessionsFolderURL = "$DB/sogo_sessions_folder";
  OCSEMailAlarmsFolderURL = "$DB/sogo_alarms_folder";
  SOGoUserSources = ({
    type = sql;
    id = halfkey;
    viewURL = "$DB/halfkey_users";
    canAuthenticate = YES;
    isAddressBook = NO;
    userPasswordAlgorithm = plain;
  });

  SOGoMailDomain = "$HALFKEY_PEER_DOMAIN";
  SOGoIMAPServer = "imap://127.0.0.1:$HALFKEY_PEER_IMAP_PORT";
  SOGoMailSpoolPath = "$S/sogo/spool";
  SOGoMailingMechanism = smtp;
  SOGoSMTPServer = "smtp://127.0.0.1:$HALFKEY_PEER_SMTP_PORT";
  SOGoDraftsFolderName = Drafts;
  SOGoSentFolderName = Sent;
  SOGoTrashFolderName = Trash;
  SOGoJunkFolderName = Junk;
  SOGoSieveScriptsEnabled = NO;
  SOGoVacationEnabled = NO;
  SOGoForwardEnabled = NO;
  SOGoMailAuxiliaryUserAccountsEnabled = NO;
  SOGoAppointmentSendEMailNotifications = NO;
  SOGoPasswordChangeEnabled = NO;
  SOGoMemcachedHost = "127.0.0.1:$HALFKEY_PEER_MEMCACHED_PORT";
  SOGoTimeZone = UTC;
  SOGoLanguage = English;

  SOGoInternalSyncInterval = $HALFKEY_PEER_SYNC_INTERVAL;
  SOGoMaximumPingInterval = $HALFKEY_PEER_MAX_PING;
  SOGoMaximumSyncInterval = $HALFKEY_PEER_MAX_SYNC;
  SOGoEASDebugEnabled = $HALFKEY_PEER_EAS_DEBUG;
}
EOF
chown -R sogo: "$S/sogo"

sogod_answers() {   # sogod itself, without nginx: 401 = up and asking for credentials
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X OPTIONS \
        "http://127.0.0.1:$HALFKEY_PEER_SOGO_PORT/SOGo/Microsoft-Server-ActiveSync")" = 401 ]
}
start_sogod() {     # extra sogod arguments...
  rm -f "$S/sogo/sogod.pid"
  launch sogod sogo "$S/log/sogod.stderr" env HOME="$S/sogo/home" \
    GNUSTEP_CONFIG_FILE="$S/sogo/GNUstep.conf" /usr/sbin/sogod -WONoDetach YES "$@"
  await 90 "sogod on 127.0.0.1:$HALFKEY_PEER_SOGO_PORT" sogod sogod_answers
  expect_exe sogod /usr/sbin/sogod
  record_children sogod
}
sogo_tables_exist() {
  [ "$(sql -tA -c "SELECT count(*) FROM pg_tables WHERE tablename IN
         ('sogo_user_profile', 'sogo_folder_info', 'sogo_sessions_folder')")" = 3 ]
}
if ! sogo_tables_exist; then
  # Each sogod worker creates missing tables as it starts; several fresh
  # workers would race on the empty database, so one worker goes first.
  step "sogod, first start: one worker creates SOGo's tables"
  start_sogod -WOWorkersCount 1
  await 30 "SOGo's tables" - sogo_tables_exist
  "$HERE/down.sh" --only sogod >&2
fi
step "sogod on 127.0.0.1:$HALFKEY_PEER_SOGO_PORT ($HALFKEY_PEER_WORKERS workers)"
start_sogod

# ------------------------------------------------------------- nginx
# HTTP/2 (ALPN h2) as most servers offer it, or HTTP/1.1 only
h2=
if [ "$HALFKEY_PEER_HTTP2" = 1 ]; then h2=' http2'; fi
cat > "$S/etc/nginx.conf" <<EOF
# nginx of Halfkey's EAS test peer - generated by up.sh on every start
user www-data www-data;
worker_processes 1;
pid $S/run/nginx.pid;
error_log $S/log/nginx-error.log notice;
events {
  worker_connections 256;
}
http {
  access_log $S/log/nginx-access.log;
  client_body_temp_path $S/run/nginx/body;
  proxy_temp_path $S/run/nginx/proxy;
  fastcgi_temp_path $S/run/nginx/fastcgi;
  uwsgi_temp_path $S/run/nginx/uwsgi;
  scgi_temp_path $S/run/nginx/scgi;
  server {
    listen 127.0.0.1:$HALFKEY_PEER_HTTPS_PORT ssl$h2;
    server_name 127.0.0.1 localhost;
    ssl_certificate $S/tls/server.crt;
    ssl_certificate_key $S/tls/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    client_max_body_size 50m;
    # a Ping may wait up to SOGoMaximumPingInterval ($HALFKEY_PEER_MAX_PING s)
    proxy_read_timeout 3660s;
    proxy_send_timeout 3660s;
    # SOPE builds absolute URLs from these
    proxy_set_header Host \$http_host;
    proxy_set_header x-webobjects-server-protocol HTTP/1.0;
    proxy_set_header x-webobjects-server-name \$server_name;
    proxy_set_header x-webobjects-server-port \$server_port;
    proxy_set_header x-webobjects-server-url https://\$http_host;
    proxy_set_header x-webobjects-remote-host \$remote_addr;
    location ^~ /Microsoft-Server-ActiveSync {
      proxy_pass http://127.0.0.1:$HALFKEY_PEER_SOGO_PORT/SOGo/Microsoft-Server-ActiveSync;
    }
    # CalDAV/CardDAV, for create-item.sh (tests make events and contacts)
    location ^~ /SOGo/dav/ {
      proxy_pass http://127.0.0.1:$HALFKEY_PEER_SOGO_PORT/SOGo/dav/;
    }
    location / {
      return 404;
    }
  }
}
EOF
nginx -t -q -c "$S/etc/nginx.conf" -e "$S/log/nginx-error.log" 2>"$S/log/nginx-t.err" ||
  fail "nginx rejects its configuration: $(cat "$S/log/nginx-t.err")"
step "nginx (TLS) on 127.0.0.1:$HALFKEY_PEER_HTTPS_PORT"
launch nginx root "$S/log/nginx.stderr" /usr/sbin/nginx -c "$S/etc/nginx.conf" \
  -e "$S/log/nginx-error.log" -g 'daemon off;'
expect_exe nginx /usr/sbin/nginx

endpoint_ready() { [ "$(endpoint_code 10)" = 200 ]; }
await 60 "an authenticated OPTIONS through TLS to answer 200" nginx endpoint_ready
for d in postgres memcached dovecot smtp-sink nginx; do record_children "$d"; done

# peer.env is the contract with the tests: only a peer that answers has one.
{
  printf 'HALFKEY_TEST_EAS_URL=%s\n' "$(hk_shq "$HALFKEY_PEER_URL")"
  printf 'HALFKEY_TEST_EAS_CA=%s\n' "$(hk_shq "$CA")"
  printf 'HALFKEY_TEST_USER_A=%s\n' "$(hk_shq "$USER_A")"
  printf 'HALFKEY_TEST_PASS_A=%s\n' "$(hk_shq "$PASS_A")"
  printf 'HALFKEY_TEST_ADDR_A=%s\n' "$(hk_shq "$USER_A@$HALFKEY_PEER_DOMAIN")"
  printf 'HALFKEY_TEST_USER_B=%s\n' "$(hk_shq "$USER_B")"
  printf 'HALFKEY_TEST_PASS_B=%s\n' "$(hk_shq "$PASS_B")"
  printf 'HALFKEY_TEST_ADDR_B=%s\n' "$(hk_shq "$USER_B@$HALFKEY_PEER_DOMAIN")"
  printf 'HALFKEY_TEST_DELIVER=%s\n' "$(hk_shq "$HERE/deliver.sh")"
  printf 'HALFKEY_TEST_CREATE_ITEM=%s\n' "$(hk_shq "$HERE/create-item.sh")"
  printf 'HALFKEY_TEST_IMAP_URL=%s\n' "$(hk_shq "imap://127.0.0.1:$HALFKEY_PEER_IMAP_PORT")"
  printf 'HALFKEY_TEST_OUTBOX=%s\n' "$(hk_shq "$S/outbox")"
} > "$S/peer.env.new"
chmod 644 "$S/peer.env.new"
mv -f "$S/peer.env.new" "$S/peer.env"
step "ready"
summary
