#!/usr/bin/env bash
# Checks read `expect DESCRIPTION eval '...'`: single quotes on purpose, and
# helpers are only called through expect.
# shellcheck disable=SC2016,SC2317
# check.sh - smoke check of the running peer with real EAS round trips over TLS.
#
# Reads the contract ($HALFKEY_PEER_STATE/peer.env, or the file named by
# HALFKEY_PEER_ENV_FILE) and talks WBXML to the endpoint with curl, encoding
# requests with xml2wbxml and decoding answers with wbxml2xml (libwbxml2-utils):
# OPTIONS, wrong password, Provision, FolderSync (with and without DeviceId),
# Sync from SyncKey 0 to the welcome message, Ping woken by a delivery,
# SendMail from user A to user B (outbox + B's INBOX, over EAS and IMAP), and
# an event and a contact made over CalDAV/CardDAV by $HALFKEY_TEST_CREATE_ITEM
# (create-item.sh) that must come through Sync, and go again as a Delete.
# Each run uses a fresh DeviceId; every request/response pair is kept in
# $HALFKEY_PEER_STATE/check/<run>/. Needs root only for deliver.sh.
# Last line: "eas-peer check: N passed, M failed"; exit status 1 on failures.
set -euo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh
. "$HERE/env.sh"
S=$HALFKEY_PEER_STATE
ENV_FILE=${HALFKEY_PEER_ENV_FILE:-$S/peer.env}
AS_VERSION=${HALFKEY_CHECK_AS_VERSION:-14.1}

PASSED=0 FAILED=0
ok()  { PASSED=$((PASSED + 1)); printf 'ok    %s\n' "$*"; }
nok() { FAILED=$((FAILED + 1)); printf 'FAIL  %s\n' "$*"; }
expect() {   # DESCRIPTION COMMAND... : one check
  local what=$1; shift
  if "$@"; then ok "$what"; else nok "$what"; fi
}
finish() {
  [ -z "${RUN:-}" ] || echo "requests and responses: $RUN"
  echo "eas-peer check: $PASSED passed, $FAILED failed"
  [ "$FAILED" = 0 ] && exit 0
  exit 1
}

for tool in curl xml2wbxml wbxml2xml base64; do
  command -v "$tool" >/dev/null || { nok "$tool is installed"; finish; }
done
[ -s "$ENV_FILE" ] || { nok "$ENV_FILE exists (is the peer up? run up.sh)"; finish; }
# shellcheck source=/dev/null
. "$ENV_FILE"
export HALFKEY_TEST_OUTBOX             # lets deliver.sh find this peer's state dir
UA=$HALFKEY_TEST_USER_A PA=$HALFKEY_TEST_PASS_A
UB=$HALFKEY_TEST_USER_B PB=$HALFKEY_TEST_PASS_B
DEVICE="HKCHECK$(od -An -N5 -tx1 /dev/urandom | tr -d ' \n' | tr 'a-f' 'A-F')"
RUN=$S/check/$(date +%Y%m%d-%H%M%S)-$DEVICE
mkdir -p "$RUN"
N=0

# ---------------------------------------------------------------- helpers
# eas USER PASS CMD [TIMEOUT] < XML-BODY
#   POSTs the body (WBXML-encoded) and sets HTTP (status), SECS (duration)
#   and XML (decoded response file, "" for an empty body).
#   NO_DEVICE=1 leaves DeviceId/DeviceType out of the query string.
eas() {
  local user=$1 pass=$2 cmd=$3 limit=${4:-60} base query out
  N=$((N + 1))
  base=$RUN/$(printf '%02d' "$N")-$cmd-$user
  {
    echo '<?xml version="1.0" encoding="utf-8"?>'
    echo '<!DOCTYPE ActiveSync PUBLIC "-//MICROSOFT//DTD ActiveSync//EN" "http://www.microsoft.com/">'
    cat
  } > "$base.req.xml"
  HTTP=000 SECS=0 XML=
  if ! xml2wbxml -n -a -v 1.3 -o "$base.req.wbxml" "$base.req.xml" >"$base.err" 2>&1; then
    echo "  (xml2wbxml failed: $(tr '\n' ' ' < "$base.err"))"
    return 0
  fi
  query="Cmd=$cmd&User=$user"
  [ "${NO_DEVICE:-0}" = 1 ] || query="$query&DeviceId=$DEVICE&DeviceType=HalfkeyCheck"
  out=$(curl -sS --cacert "$HALFKEY_TEST_EAS_CA" --max-time "$limit" -u "$user:$pass" \
          -H "MS-ASProtocolVersion: $AS_VERSION" -H 'Content-Type: application/vnd.ms-sync.wbxml' \
          --data-binary @"$base.req.wbxml" -D "$base.resp.headers" -o "$base.resp.wbxml" \
          -w '%{http_code} %{time_total}' "$HALFKEY_TEST_EAS_URL?$query" 2>>"$base.err") || true
  HTTP=${out%% *} SECS=${out#* }
  if [ -s "$base.resp.wbxml" ] && [ "$HTTP" = 200 ] &&
     wbxml2xml -l ACTIVESYNC -o "$base.resp.xml" "$base.resp.wbxml" >>"$base.err" 2>&1; then
    XML=$base.resp.xml
  fi
}

options() {   # USER PASS -> HTTP, HEADERS (file)
  N=$((N + 1))
  HEADERS=$RUN/$(printf '%02d' "$N")-OPTIONS-$1.headers
  HTTP=$(curl -sS --cacert "$HALFKEY_TEST_EAS_CA" --max-time 20 -u "$1:$2" -X OPTIONS \
           -D "$HEADERS" -o /dev/null -w '%{http_code}' "$HALFKEY_TEST_EAS_URL" 2>/dev/null) || true
}

header() { tr -d '\r' < "$2" | sed -n "s/^$1:[[:space:]]*//Ip" | head -n 1; }
val()    { [ -n "${2:-}" ] || return 0; sed -n "s|.*<$1>\\([^<]*\\)</$1>.*|\\1|p" "$2" | head -n 1; }
tally()  { if [ -n "${2:-}" ]; then grep -c "<$1>" "$2" || true; else echo 0; fi; }
has()    { [ -n "${2:-}" ] && grep -qF -- "$1" "$2"; }
quietly() { "$@" >/dev/null; }
listed() {   # CSV ITEM...: every ITEM is one of the comma-separated words
  local item
  for item in "${@:2}"; do grep -qE "(^|,)$item(,|\$)" <<< "$1" || return 1; done
}
within() { awk -v s="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(s >= lo && s < hi) }'; }

folder_of_type() {   # TYPE FILE: ServerId of the first FolderSync <Add> of that Type
  [ -n "${2:-}" ] || return 0
  awk -v want="$1" '
    /<Add>/      { id = ""; type = "" }
    /<ServerId>/ { id = $0; sub(/.*<ServerId>/, "", id); sub(/<\/ServerId>.*/, "", id) }
    /<Type>/     { type = $0; sub(/.*<Type>/, "", type); sub(/<\/Type>.*/, "", type) }
    /<\/Add>/    { if (type == want) { print id; exit } }' "$2"
}

# sync_body SYNCKEY COLLECTION [CLASS [FILTERTYPE]]: CLASS is only sent below
# EAS 14.0 (Collection/Class was dropped from requests there); FILTERTYPE 0 = all.
sync_body() {
  printf '<Sync xmlns="AirSync:"><Collections><Collection>'
  case ${3:-}:$AS_VERSION in
    :*|*:1[4-9].*) ;;
    *) printf '<Class>%s</Class>' "$3" ;;
  esac
  printf '<SyncKey>%s</SyncKey><CollectionId>%s</CollectionId>' "$1" "$2"
  if [ "$1" != 0 ]; then
    printf '<DeletesAsMoves>1</DeletesAsMoves><GetChanges>1</GetChanges><WindowSize>100</WindowSize>'
    printf '<Options><FilterType>%s</FilterType><BodyPreference xmlns="AirSyncBase:"><Type>1</Type>' "${4:-0}"
    printf '<TruncationSize>8192</TruncationSize></BodyPreference></Options>'
  fi
  printf '</Collection></Collections></Sync>\n'
}

# sync_all USER PASS COLLECTION KEY: Syncs until nothing more is available.
# Sets KEY (latest SyncKey), SEEN (all responses concatenated), ADDS, STATUS.
sync_all() {
  local user=$1 pass=$2 coll=$3 k
  KEY=$4 ADDS=0 STATUS='' SEEN=$RUN/seen-$user-$N.xml
  : > "$SEEN"
  for _ in $(seq 1 30); do
    eas "$user" "$pass" Sync < <(sync_body "$KEY" "$coll")
    [ "$HTTP" = 200 ] || { STATUS="HTTP $HTTP"; return 0; }
    [ -n "$XML" ] || return 0                    # 14.x: an empty body means "no changes"
    cat "$XML" >> "$SEEN"
    STATUS=$(val Status "$XML")
    k=$(val SyncKey "$XML"); [ -z "$k" ] || KEY=$k
    ADDS=$((ADDS + $(tally Add "$XML")))
    [ "$STATUS" = 1 ] || return 0
    # more to come: MoreAvailable, or the extra round SOGo wants after Adds
    has '<MoreAvailable' "$XML" || [ "$(tally Add "$XML")" -gt 0 ] || return 0
  done
}

# item_block KIND TAG VALUE FILE: the first <KIND>...</KIND> command (Add,
# Change, Delete) of a Sync response that has an element TAG (any namespace)
# with exactly VALUE, or with ServerId VALUE when TAG is ServerId.
item_block() {
  [ -n "${4:-}" ] || return 0
  awk -v kind="$1" -v tag="$2" -v want="$3" '
    $0 ~ "<" kind ">"   { buf = ""; inside = 1; hit = 0 }
    inside              { buf = buf $0 "\n"
                          v = $0
                          if (sub("^[[:space:]]*<" tag "( [^>]*)?>", "", v) && sub("</" tag ">[[:space:]]*$", "", v) && v == want) hit = 1 }
    $0 ~ "</" kind ">"  { inside = 0; if (hit) { printf "%s", buf; exit } }' "$4"
}
# field TAG TEXT: the value of element TAG (any namespace) in TEXT
field() { sed -n "s|.*<$1\( [^>]*\)\{0,1\}>\([^<]*\)</$1>.*|\2|p" <<< "$2" | head -n 1; }
# item_out KEY TEXT: value of a KEY=value line printed by the create-item command
item_out() { sed -n "s/^$1=//p" <<< "$2" | head -n 1; }

imap_search() {   # USER PASS SUBJECT-TOKEN -> UIDs in INBOX (empty if none)
  curl -s --max-time 20 -u "$1:$2" "$HALFKEY_TEST_IMAP_URL/INBOX" -X "UID SEARCH SUBJECT \"$3\"" 2>/dev/null |
    sed -n 's/^\* SEARCH *//p' | tr -d '\r'
}

echo "eas-peer check of $HALFKEY_TEST_EAS_URL as $UA and $UB (DeviceId $DEVICE, EAS $AS_VERSION)"

# ---------------------------------------------------------------- OPTIONS, auth
options "$UA" "$PA"
expect "OPTIONS as $UA answers 200 (got $HTTP)" [ "$HTTP" = 200 ]
versions=$(header MS-ASProtocolVersions "$HEADERS")
expect "MS-ASProtocolVersions contains 14.1 ('$versions')" grep -qE '(^|,)14\.1(,|$)' <<< "$versions"
commands=$(header MS-ASProtocolCommands "$HEADERS")
expect "MS-ASProtocolCommands lists FolderSync, Sync, Ping and SendMail" listed "$commands" FolderSync Sync Ping SendMail
options "$UA" "not-$PA"
expect "OPTIONS with a wrong password answers 401 (got $HTTP)" [ "$HTTP" = 401 ]
eas "$UA" "not-$PA" FolderSync <<< '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>'
expect "FolderSync with a wrong password answers 401 (got $HTTP)" [ "$HTTP" = 401 ]

# ---------------------------------------------------------------- Provision
eas "$UA" "$PA" Provision <<< '<Provision xmlns="Provision:"><Policies><Policy><PolicyType>MS-EAS-Provisioning-WBXML</PolicyType></Policy></Policies></Provision>'
expect "Provision answers 200 with Status 1 (got $HTTP, '$(val Status "$XML")')" \
  eval '[ "$HTTP" = 200 ] && [ "$(val Status "$XML")" = 1 ]'

# ---------------------------------------------------------------- FolderSync
NO_DEVICE=1 eas "$UA" "$PA" FolderSync <<< '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>'
expect "FolderSync without DeviceId is refused (HTTP $HTTP)" [ "$HTTP" != 200 ]
eas "$UA" "$PA" FolderSync <<< '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>'
FOLDERS=$XML
expect "FolderSync answers 200 with Status 1 (got $HTTP, '$(val Status "$FOLDERS")')" \
  eval '[ "$HTTP" = 200 ] && [ "$(val Status "$FOLDERS")" = 1 ]'
INBOX_A=$(folder_of_type 2 "$FOLDERS")
expect "FolderSync lists an Inbox, Type 2 ('$INBOX_A')" [ -n "$INBOX_A" ]
for t in 3:Drafts 4:Trash 5:Sent; do
  expect "FolderSync lists ${t#*:}, Type ${t%%:*}" [ -n "$(folder_of_type "${t%%:*}" "$FOLDERS")" ]
done
[ -n "$INBOX_A" ] || finish

# ---------------------------------------------------------------- Sync
TOKEN1=check-$DEVICE-sync
expect "deliver.sh $UA '... $TOKEN1'" quietly "$HERE/deliver.sh" "$UA" "eas-peer check $TOKEN1"
eas "$UA" "$PA" Sync < <(sync_body 0 "$INBOX_A")
KEY=$(val SyncKey "$XML")
expect "Sync with SyncKey 0 answers Status 1 and a new SyncKey ('$KEY')" \
  eval '[ "$HTTP" = 200 ] && [ "$(val Status "$XML")" = 1 ] && [ -n "$KEY" ]'
sync_all "$UA" "$PA" "$INBOX_A" "$KEY"
expect "Sync fetches messages ($ADDS Adds, last SyncKey '$KEY')" [ "$ADDS" -ge 2 ]
expect "... among them the welcome message" has "Welcome to the Halfkey EAS peer, $UA" "$SEEN"
expect "... and the message delivered just before ($TOKEN1), with a body" \
  eval 'has "$TOKEN1" "$SEEN" && has "<Data>" "$SEEN"'
eas "$UA" "$PA" Sync < <(sync_body "$KEY" "$INBOX_A")
expect "Sync when up to date answers 200 with an empty body (got $HTTP${XML:+ and a body})" \
  eval '[ "$HTTP" = 200 ] && [ -z "$XML" ]'

# ---------------------------------------------------------------- Ping
TOKEN2=check-$DEVICE-ping
( sleep 2; "$HERE/deliver.sh" "$UA" "eas-peer check $TOKEN2" >/dev/null ) &
deliverer=$!
eas "$UA" "$PA" Ping 120 <<< "<Ping xmlns=\"Ping:\"><HeartbeatInterval>60</HeartbeatInterval><Folders><Folder><Id>$INBOX_A</Id><Class>Email</Class></Folder></Folders></Ping>"
wait "$deliverer" || true
expect "Ping woken by a delivery answers Status 2 (got HTTP $HTTP, '$(val Status "$XML")' after ${SECS}s)" \
  eval '[ "$HTTP" = 200 ] && [ "$(val Status "$XML")" = 2 ]'
expect "Ping names the Inbox and came back after the delivery, before the heartbeat" \
  eval '[ "$(val Folder "$XML")" = "$INBOX_A" ] && within "$SECS" 1.5 60'
sync_all "$UA" "$PA" "$INBOX_A" "$KEY"
expect "the Sync after the Ping fetches the new message ($TOKEN2) and only that ($ADDS Adds)" \
  eval 'has "$TOKEN2" "$SEEN" && [ "$ADDS" = 1 ]'

# ---------------------------------------------------------------- SendMail
TOKEN3=check-$DEVICE-sendmail
MIME=$(printf '%s\r\n' "From: $UA <$HALFKEY_TEST_ADDR_A>" "To: $UB <$HALFKEY_TEST_ADDR_B>" \
         "Subject: eas-peer check $TOKEN3" "Message-ID: <$TOKEN3@halfkey.check>" \
         "MIME-Version: 1.0" "Content-Type: text/plain; charset=utf-8" "" \
         "Hello $UB, this came through EAS SendMail ($TOKEN3)." | base64 -w 0)
eas "$UA" "$PA" SendMail <<< "<SendMail xmlns=\"ComposeMail:\"><ClientId>$TOKEN3</ClientId><SaveInSentItems/><MIME>$MIME</MIME></SendMail>"
expect "SendMail answers 200 with an empty body (got $HTTP${XML:+, Status $(val Status "$XML")})" \
  eval '[ "$HTTP" = 200 ] && [ -z "$XML" ]'
sent=
for _ in $(seq 1 50); do
  sent=$(grep -lF -- "$TOKEN3" "$HALFKEY_TEST_OUTBOX"/*.eml 2>/dev/null | head -n 1) || true
  [ -z "$sent" ] || break
  sleep 0.2
done
expect "the sent message is in the outbox (${sent:-nothing})" [ -n "$sent" ]
expect "... with $HALFKEY_TEST_ADDR_B as envelope recipient" \
  eval '[ -n "$sent" ] && grep -qx "rcpt-to=$HALFKEY_TEST_ADDR_B" "${sent%.eml}.envelope"'
uids=
for _ in $(seq 1 25); do
  uids=$(imap_search "$UB" "$PB" "$TOKEN3")
  [ -z "$uids" ] || break
  sleep 0.2
done
expect "IMAP: it is in $UB's INBOX (UID ${uids:-none})" [ -n "$uids" ]
eas "$UB" "$PB" FolderSync <<< '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>'
INBOX_B=$(folder_of_type 2 "$XML")
eas "$UB" "$PB" Sync < <(sync_body 0 "${INBOX_B:-none}")
sync_all "$UB" "$PB" "${INBOX_B:-none}" "$(val SyncKey "$XML")"
expect "EAS: $UB's Sync fetches it" has "$TOKEN3" "$SEEN"

# ---------------------------------------------------------------- IMAP side
examine=$(curl -s --max-time 20 -u "$UA:$PA" "$HALFKEY_TEST_IMAP_URL/" -X 'EXAMINE INBOX' 2>/dev/null || true)
expect "IMAP: $UA's INBOX reports HIGHESTMODSEQ (modseq tracking on)" grep -q 'HIGHESTMODSEQ' <<< "$examine"

# ---------------------------------------------------------------- calendar and contacts
# Server-side changes come from $HALFKEY_TEST_CREATE_ITEM (create-item.sh):
# each item must reach EAS through Sync with the fields that were set, and
# its deletion must come back as a Delete of the same ServerId.
CREATE_ITEM=${HALFKEY_TEST_CREATE_ITEM:-$HERE/create-item.sh}
# KIND TYPE CLASS FILTERTYPE TAG (TAG: the element that carries SUMMARY).
# The calendar gets FilterType 4 (two weeks back) like a phone would send; a
# future event must come through anyway. Contacts get 0: SOGo returns no
# contacts at all for FilterType 1-7 (README, quirk 14).
for spec in "event 8 Calendar 4 Subject" "contact 9 Contacts 0 FileAs"; do
  read -r kind type class filter tag <<< "$spec"
  COLL=$(folder_of_type "$type" "$FOLDERS")
  expect "FolderSync lists a $class folder, Type $type ('$COLL')" [ -n "$COLL" ]
  [ -n "$COLL" ] || continue
  case $kind in
    event) want="eas-peer check $DEVICE event" ;;
    *) want="Check $DEVICE" ;;
  esac
  created=$("$CREATE_ITEM" "$UA" "$kind" "check-$DEVICE-$kind" "$want" 2>"$RUN/create-$kind.err") || true
  printf '%s\n' "$created" > "$RUN/create-$kind.out"
  uid=$(item_out uid "$created") summary=$(item_out summary "$created")
  expect "create-item $UA $kind prints uid= and summary= ('$uid', '$summary')$(
           [ -s "$RUN/create-$kind.err" ] && printf ' [%s]' "$(tr '\n' ' ' < "$RUN/create-$kind.err")")" \
    eval '[ -n "$uid" ] && [ "$summary" = "$want" ]'
  [ -n "$uid" ] || continue

  eas "$UA" "$PA" Sync < <(sync_body 0 "$COLL" "$class")
  KEY=$(val SyncKey "$XML")
  expect "$class Sync with SyncKey 0 answers Status 1 and a new SyncKey ('$KEY')" \
    eval '[ "$HTTP" = 200 ] && [ "$(val Status "$XML")" = 1 ] && [ -n "$KEY" ]'
  eas "$UA" "$PA" Sync < <(sync_body "$KEY" "$COLL" "$class" "$filter")
  ADDED=$(item_block Add "$tag" "$summary" "$XML")
  SID=$(field ServerId "$ADDED")
  expect "$class Sync (FilterType $filter) returns an Add with $tag '$summary' (ServerId '$SID', $(tally Add "$XML") Adds)" \
    eval '[ "$(val Status "$XML")" = 1 ] && [ -n "$SID" ]'
  KEY=$(val SyncKey "$XML")
  if [ "$kind" = event ]; then
    start=$(item_out start "$created") end=$(item_out end "$created")
    got="$(field StartTime "$ADDED")-$(field EndTime "$ADDED")"
    expect "... with StartTime-EndTime $got (${start:-any}-${end:-any})" \
      eval '[[ $got = ${start:-2?????????????Z}-${end:-2?????????????Z} ]]'
    expect "... and UID '$(field UID "$ADDED")'" eval '[ "$(field UID "$ADDED")" = "$uid" ]'
  else
    email=$(item_out email "$created")
    got=$(field Email1Address "$ADDED")
    expect "... with Email1Address '$got' (${email:-any})" \
      eval '[ -n "$got" ] && [[ $got = *"${email:-@}"* ]]'
    tel=$(item_out tel "$created")
    got=$(field BusinessPhoneNumber "$ADDED")
    expect "... and BusinessPhoneNumber '$got' (${tel:-any})" \
      eval '[ -n "$got" ] && { [ -z "$tel" ] || [ "$got" = "$tel" ]; }'
  fi
  eas "$UA" "$PA" Sync < <(sync_body "$KEY" "$COLL" "$class" "$filter")
  expect "the next $class Sync answers 200 with an empty body, no extra round (got $HTTP${XML:+ and a body})" \
    eval '[ "$HTTP" = 200 ] && [ -z "$XML" ]'

  deleted=$("$CREATE_ITEM" "$UA" "delete-$kind" "$uid" 2>"$RUN/delete-$kind.err") || true
  expect "create-item $UA delete-$kind $uid ($(item_out uid "$deleted")$(tr '\n' ' ' < "$RUN/delete-$kind.err"))" \
    eval '[ "$(item_out uid "$deleted")" = "$uid" ]'
  eas "$UA" "$PA" Sync < <(sync_body "$KEY" "$COLL" "$class" "$filter")
  expect "the $class Sync after the deletion returns a Delete of ServerId '$SID' and nothing else ($(tally Delete "$XML") Deletes, $(tally Add "$XML") Adds)" \
    eval '[ "$(val Status "$XML")" = 1 ] && [ -n "$(item_block Delete ServerId "$SID" "$XML")" ] &&
          [ "$(tally Delete "$XML")" = 1 ] && [ "$(tally Add "$XML")" = 0 ]'
done

finish
