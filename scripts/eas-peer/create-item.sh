#!/usr/bin/env bash
# create-item.sh USER event   [UID] [SUMMARY]   a VEVENT in USER's personal calendar
# create-item.sh USER contact [UID] [FN]        a vCard 3.0 in USER's personal address book
# create-item.sh USER delete-event   UID        delete that event
# create-item.sh USER delete-contact UID        delete that contact
#
# Server-side calendar and contact changes for the integration tests, made
# over SOGo's CalDAV / CardDAV with curl (PUT / DELETE of
# /SOGo/dav/USER/Calendar/personal/UID.ics and .../Contacts/personal/UID.vcf,
# HTTP Basic with USER's password). Runs as any user.
#
# Prints one KEY=value per line:
#   event:   uid= summary= start= end=          (times in UTC, YYYYMMDDTHHMMSSZ)
#   contact: uid= summary= (the FN) email= tel=
#   delete-*: uid=
# The event lasts from 10:00 to 11:00 UTC tomorrow. Without UID a unique one
# is generated (UIDs are limited to A-Za-z0-9._-: they are also the file
# name); without SUMMARY a unique one too. An existing UID is replaced, i.e.
# the item is modified. Any HTTP status other than 201/204 (PUT) or 200/204
# (DELETE) is an error: exit 1 with the status and SOGo's message on stderr.
#
# SOGo keeps change times in whole seconds and hands them out as SyncKeys, so
# a change made in the same second as the newest change a client has already
# synced is never reported to it (README, quirk 15). To keep tests
# deterministic this script returns only once the second of its change is
# over (0-1 s). HALFKEY_ITEM_SETTLE=0 returns at once.
#
# Finding the peer: the state dir is HALFKEY_PEER_STATE, else the one holding
# $HALFKEY_TEST_OUTBOX (so sourcing peer.env is enough), else the default.
# The DAV root is HALFKEY_PEER_DAV_URL if set; else the TLS front when its
# nginx.conf proxies /SOGo; else sogod's own port from the state dir (today's
# up.sh only proxies the EAS path through nginx). Passwords come from
# HALFKEY_TEST_USER_A/PASS_A, HALFKEY_TEST_USER_B/PASS_B, then HALFKEY_PEER_USERS.
set -euo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
if [ -z "${HALFKEY_PEER_STATE:-}" ] && [ -n "${HALFKEY_TEST_OUTBOX:-}" ] &&
   [ -f "$(dirname -- "$HALFKEY_TEST_OUTBOX")/.halfkey-eas-peer" ]; then
  HALFKEY_PEER_STATE=$(dirname -- "$HALFKEY_TEST_OUTBOX")
fi
# shellcheck source=env.sh
. "$HERE/env.sh"
S=$HALFKEY_PEER_STATE

die() { printf 'create-item.sh: %s\n' "$1" >&2; exit "${2:-1}"; }
usage() {
  die "usage: create-item.sh USER event|contact [UID] [SUMMARY]
       create-item.sh USER delete-event|delete-contact UID" 2
}

if [ $# -lt 2 ] || [ $# -gt 4 ] || [ -z "$1" ]; then usage; fi
user=$1 kind=$2 uid=${3:-} summary=${4:-}
case $kind in
  event | contact) ;;
  delete-event | delete-contact) if [ $# != 3 ] || [ -z "$uid" ]; then usage; fi ;;
  *) usage ;;
esac
case $uid in
  *[!A-Za-z0-9._-]* | .*) die "UID '$uid' may only contain A-Za-z0-9._- and must not start with a dot" 2 ;;
esac
case $summary in
  *[[:cntrl:]]*) die "SUMMARY must be a single line without control characters" 2 ;;
esac

# ------------------------------------------------------------- credentials
pass=
if [ -n "${HALFKEY_TEST_USER_A:-}" ] && [ "$user" = "$HALFKEY_TEST_USER_A" ]; then pass=${HALFKEY_TEST_PASS_A:-}
elif [ -n "${HALFKEY_TEST_USER_B:-}" ] && [ "$user" = "$HALFKEY_TEST_USER_B" ]; then pass=${HALFKEY_TEST_PASS_B:-}
fi
[ -n "$pass" ] || pass=$(hk_password "$user") ||
  die "unknown user '$user' (known: $(hk_users_field 1 | paste -sd ' '); set HALFKEY_TEST_USER_A/PASS_A for others)" 2

# ------------------------------------------------------------- DAV root
CURL_TLS=()
if [ -n "${HALFKEY_PEER_DAV_URL:-}" ]; then
  dav=${HALFKEY_PEER_DAV_URL%/}
elif [ -f "$S/etc/nginx.conf" ] && grep -qE '^[[:space:]]*location[^{]*/SOGo' "$S/etc/nginx.conf"; then
  port=$(sed -n 's/^[[:space:]]*listen 127\.0\.0\.1:\([0-9][0-9]*\) ssl[ ;].*/\1/p' "$S/etc/nginx.conf" | head -n 1)
  dav="https://$HALFKEY_PEER_HOST:${port:-$HALFKEY_PEER_HTTPS_PORT}/SOGo/dav"
else
  [ -f "$S/sogo/defaults/sogod.plist" ] || die "no peer in $S (run up.sh, or set HALFKEY_PEER_STATE / HALFKEY_PEER_DAV_URL)"
  port=$(sed -n 's/^[[:space:]]*WOPort = "127\.0\.0\.1:\([0-9][0-9]*\)";.*/\1/p' "$S/sogo/defaults/sogod.plist" | head -n 1)
  dav="http://$HALFKEY_PEER_HOST:${port:-$HALFKEY_PEER_SOGO_PORT}/SOGo/dav"
fi
case $dav in
  https:*)
    ca=${HALFKEY_TEST_EAS_CA:-$S/tls/ca.crt}
    [ -r "$ca" ] || die "cannot read the CA certificate $ca"
    CURL_TLS=(--cacert "$ca") ;;
esac

# ------------------------------------------------------------- helpers
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# request METHOD URL OKCODES [BODY-FILE CONTENT-TYPE]: one DAV request; dies
# with the status and the server's message unless the status is in OKCODES.
request() {
  local method=$1 url=$2 ok=$3 code msg
  local args=(-sS --max-time 60 "${CURL_TLS[@]}" -u "$user:$pass" -X "$method"
              -o "$tmp/resp" -w '%{http_code}')
  if [ $# -ge 5 ]; then args+=(-H "Content-Type: $5" --data-binary @"$4"); fi
  code=$(curl "${args[@]}" "$url" 2>"$tmp/curl.err") || true
  case " $ok " in *" $code "*) return 0 ;; esac
  if [ -z "$code" ] || [ "$code" = 000 ]; then
    die "$method $url failed: $(tr '\n' ' ' < "$tmp/curl.err")"
  fi
  # SOGo's error bodies are small HTML/XML pages: keep their text
  msg=$(sed -e 's/<[^>]*>/ /g' "$tmp/resp" 2>/dev/null | tr -s ' \t\r\n' ' ' | cut -c 1-300)
  case $code in
    401) msg="wrong password for $user? $msg" ;;
    404) msg="no such item or collection. $msg" ;;
  esac
  die "$method $url answered HTTP $code: $msg"
}

# settle: return only once the wall-clock second of the change is over.
settle() {
  local s=${EPOCHREALTIME%.*}
  [ "${HALFKEY_ITEM_SETTLE:-1}" = 0 ] && return 0
  while [ "${EPOCHREALTIME%.*}" -le "$s" ]; do sleep 0.05; done
}

# text VALUE: VALUE escaped as an iCalendar / vCard TEXT value.
text() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/;/\\;/g' -e 's/,/\\,/g'; }

token="$(date -u +%Y%m%d%H%M%S)-$$-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
prodid='-//Halfkey//eas-peer create-item.sh//EN'

# ------------------------------------------------------------- the change
case $kind in
  event)
    uid=${uid:-halfkey-event-$token}
    summary=${summary:-Halfkey test event $token}
    day=$(date -u -d tomorrow +%Y%m%d)
    start=${day}T100000Z end=${day}T110000Z
    printf '%s\r\n' 'BEGIN:VCALENDAR' 'VERSION:2.0' "PRODID:$prodid" 'BEGIN:VEVENT' \
      "UID:$uid" "DTSTAMP:$(date -u +%Y%m%dT%H%M%SZ)" "DTSTART:$start" "DTEND:$end" \
      "SUMMARY:$(text "$summary")" 'END:VEVENT' 'END:VCALENDAR' > "$tmp/item"
    request PUT "$dav/$user/Calendar/personal/$uid.ics" '201 204' "$tmp/item" 'text/calendar; charset=utf-8'
    settle
    printf 'uid=%s\nsummary=%s\nstart=%s\nend=%s\n' "$uid" "$summary" "$start" "$end"
    ;;
  contact)
    uid=${uid:-halfkey-contact-$token}
    summary=${summary:-Halfkey Contact $token}
    # N = family;given: the last word of FN is the family name
    case $summary in
      *' '*) family=${summary##* } given=${summary% *} ;;
      *) family=$summary given= ;;
    esac
    email=$(printf '%s' "$uid" | tr '[:upper:]' '[:lower:]')@example.test
    tel="+1 555 01$(printf '%02d' $((RANDOM % 100)))"
    printf '%s\r\n' 'BEGIN:VCARD' 'VERSION:3.0' "PRODID:$prodid" "UID:$uid" \
      "FN:$(text "$summary")" "N:$(text "$family");$(text "$given");;;" \
      "EMAIL;TYPE=INTERNET,WORK:$email" "TEL;TYPE=WORK,VOICE:$tel" 'END:VCARD' > "$tmp/item"
    request PUT "$dav/$user/Contacts/personal/$uid.vcf" '201 204' "$tmp/item" 'text/vcard; charset=utf-8'
    settle
    printf 'uid=%s\nsummary=%s\nemail=%s\ntel=%s\n' "$uid" "$summary" "$email" "$tel"
    ;;
  delete-event)
    request DELETE "$dav/$user/Calendar/personal/$uid.ics" '200 204'
    settle
    printf 'uid=%s\n' "$uid"
    ;;
  delete-contact)
    request DELETE "$dav/$user/Contacts/personal/$uid.vcf" '200 204'
    settle
    printf 'uid=%s\n' "$uid"
    ;;
esac
