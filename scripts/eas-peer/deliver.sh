#!/usr/bin/env bash
# deliver.sh USER [SUBJECT]   new text/plain message(s) in USER's INBOX
# deliver.sh USER -           the RFC 5322 message on stdin, saved as is
#
#   HALFKEY_DELIVER_COUNT=N   deliver N distinct messages in one go (one LMTP
#                             connection; 200 messages take well under a second).
#                             With N > 1 subjects get a " [i/N]" suffix.
#
# Prints "subject=..." and "message-id=..." for every message, in order.
# Works against the running peer: generated messages go over Dovecot's LMTP
# socket, stdin is stored with `doveadm save`; either way the mailbox's
# MODSEQ moves and a waiting EAS Ping notices within SOGoInternalSyncInterval.
# Run as root (or as a user that may use the peer's Dovecot sockets).
#
# The peer is found through HALFKEY_PEER_STATE, else through the state dir
# that holds $HALFKEY_TEST_OUTBOX (so sourcing peer.env is enough), else the
# default /tmp/halfkey-eas-peer.
set -euo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
if [ -z "${HALFKEY_PEER_STATE:-}" ] && [ -n "${HALFKEY_TEST_OUTBOX:-}" ] &&
   [ -f "$(dirname -- "$HALFKEY_TEST_OUTBOX")/.halfkey-eas-peer" ]; then
  HALFKEY_PEER_STATE=$(dirname -- "$HALFKEY_TEST_OUTBOX")
fi
# shellcheck source=env.sh
. "$HERE/env.sh"
S=$HALFKEY_PEER_STATE

die() { printf 'deliver.sh: %s\n' "$1" >&2; exit "${2:-1}"; }

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then die "usage: deliver.sh USER [SUBJECT|-]" 2; fi
user=$1 subject=${2:-}
count=${HALFKEY_DELIVER_COUNT:-1}
case $count in ''|*[!0-9]*|0) die "HALFKEY_DELIVER_COUNT must be a positive number, not '$count'" 2 ;; esac

if [ ! -f "$S/etc/dovecot.conf" ] || [ ! -S "$S/run/dovecot/lmtp" ]; then die "no running peer in $S (run up.sh)"; fi
cut -d: -f1 "$S/etc/users.passwd" | grep -qxF -- "$user" ||
  die "unknown user '$user' (known: $(cut -d: -f1 "$S/etc/users.passwd" | paste -sd ' '))" 2
# shellcheck source=/dev/null
. "$S/etc/peer.conf"     # the domain the peer was started with

if [ "$subject" = - ]; then
  [ "$count" = 1 ] || die "HALFKEY_DELIVER_COUNT does not apply to a message read from stdin" 2
  msg=$(mktemp)
  trap 'rm -f "$msg"' EXIT
  cat > "$msg"
  [ -s "$msg" ] || die "empty message on stdin" 2
  doveadm -c "$S/etc/dovecot.conf" save -u "$user" -m INBOX < "$msg"
  # first Subject / Message-ID header of the header block (continuation lines joined)
  awk '
    /^\r?$/ { exit }
    /^[ \t]/ { if (cur != "") val[cur] = val[cur] " " substr($0, 2); next }
    { cur = ""; n = index($0, ":"); if (n == 0) next
      name = tolower(substr($0, 1, n - 1))
      if ((name == "subject" || name == "message-id") && !(name in val)) {
        cur = name; v = substr($0, n + 1); sub(/^[ \t]+/, "", v); val[name] = v } }
    END { for (k in val) gsub(/\r/, "", val[k])
          printf "subject=%s\nmessage-id=%s\n", val["subject"], val["message-id"] }' "$msg"
  exit 0
fi

exec "$HALFKEY_PEER_PYTHON" - "$S/run/dovecot/lmtp" "$user" "$HALFKEY_PEER_DOMAIN" "$count" "$subject" <<'PY'
import email.utils, os, smtplib, sys, time

sock, user, domain, count, subject = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
token = f"{int(time.time())}.{os.getpid()}"
rcpt = f"{user}@{domain}"
sender = f"sender@{domain}"
out = []
conn = smtplib.LMTP(sock, timeout=60)
try:
    for i in range(1, count + 1):
        subj = subject or f"Halfkey test message {token}"
        if count > 1:
            subj += f" [{i}/{count}]"
        msgid = f"<halfkey-{token}.{i}@{domain}>"
        text = (
            f"From: Halfkey Test Sender <{sender}>\r\n"
            f"To: {user} <{rcpt}>\r\n"
            f"Subject: {subj}\r\n"
            f"Date: {email.utils.formatdate(localtime=False)}\r\n"
            f"Message-ID: {msgid}\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n"
            "\r\n"
            f"Hello {user},\r\n\r\nthis is Halfkey test message {i} of {count} ({token}).\r\n"
        )
        conn.sendmail(sender, [rcpt], text.encode("utf-8"))
        out.append(f"subject={subj}\nmessage-id={msgid}\n")
finally:
    try:
        conn.quit()
    except smtplib.SMTPException:
        pass
sys.stdout.write("".join(out))
PY
