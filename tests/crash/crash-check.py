#!/usr/bin/env python3
"""Bookkeeping and checks for test-crash-safety.sh.

The shell script runs halfkeyd, fires the operations and kills the daemon;
this helper plans each round, checks the store after each kill (with the
daemon down), and keeps the ledger of every account the test created:

  ledger.json  accounts keyed by EAS DeviceId (fresh and random per
               registration), each with its user, device key, device token
               (once known), account id, status (pending / live / gone) and
               bounds on its last activity; plus per-round statistics.

Subcommands (all take the work directory first):

  plan W ROUND              choose the round's operations and kill moment;
                            prints shell assignments, writes request bodies
  check W ROUND             after the kill: store consistency + every
                            account where it must be; adopts registrations
                            that committed without an answer; writes the
                            unlock list to verify after the restart
  stats W ROUND FILE        the restarted daemon's `halfkeyctl --json stats`
                            must count what the offline check counted
  verified W ROUND          the unlock answers after the restart
  final W                   the unlock list of the final sweep (every live
                            account: 200, every gone one: 401)
  final-check W             offline check after the clean shutdown
  report W                  the summary
  killer W ROUND PID        kills PID when the round's trigger line shows
                            up in the daemon's log (log-triggered modes)
  easproxy W URL CA CRT KEY the pass-through to the mail server that holds
                            Pings (see cmd_easproxy)

Activity and purge. The relay stamps last_activity_ms on register, unlock
and ping; `purge` deletes accounts whose last activity is older than
flush_after (60 s in the test). For each account the ledger keeps la_lo
(a time its activity is known to have reached: the start of a request that
was answered) and la_hi (the latest moment any request that reached the
daemon could have stamped: its answer or the kill). A purge that ran
somewhere in [p_start, p_end] *must* have deleted an account with
la_hi < p_start - F, *cannot* have deleted one with la_lo >= p_end - F
(counting only touches answered before p_start), and may have done either
in between.
"""

import base64
import hashlib
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import sys
import time
import datetime

FLUSH_MS = 60_000       # lifecycle.flush_after in the test's config
MARGIN_MS = 20          # clock rounding slack for the purge bounds
DEVICE_TYPE = "CrashTest"


def now_ms():
    return time.time_ns() // 1_000_000


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64u_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


# ---- ledger ---------------------------------------------------------------

def ledger_path(w):
    return os.path.join(w, "ledger.json")


def load(w):
    p = ledger_path(w)
    if not os.path.exists(p):
        return {"accounts": {}, "rounds": [], "reg_lat": [], "purge_per_acct": [],
                "verify": {"ok": 0, "expect200": 0, "expect401": 0}, "adopted": 0,
                "failures": []}
    with open(p) as f:
        return json.load(f)


def save(w, led):
    tmp = ledger_path(w) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(led, f)
    os.replace(tmp, ledger_path(w))


def rdir(w, r):
    return os.path.join(w, "r", "%03d" % int(r) if str(r).isdigit() else str(r))


# ---- plan -----------------------------------------------------------------

def cmd_plan(w, r):
    led = load(w)
    rng = random.Random()
    d = rdir(w, r)
    os.makedirs(os.path.join(d, "ops"), exist_ok=True)
    now = now_ms()
    accts = led["accounts"]
    live = [a for a in accts.values() if a["status"] == "live" and a["token"]]
    eligible = [a for a in live if a["la_hi"] < now - FLUSH_MS - 1000]

    lat = led["reg_lat"][-30:]
    est_reg = statistics.median(lat) if lat else 200
    per = led["purge_per_acct"][-20:]
    est_per = statistics.median(per) if per else 15

    strace = os.environ.get("HK_CRASH_STRACE") == "1"
    if len(eligible) >= 2 and rng.random() < 0.5:
        mode = "purge"
    elif strace and rng.random() < 0.25:
        mode = "store-io"
    else:
        mode = rng.choices(["uniform", "reg-commit", "sync"], [0.45, 0.30, 0.25])[0]
    forced = os.environ.get("HK_CRASH_MODE")  # for debugging the test itself
    if forced and (forced != "purge" or eligible) and (forced != "store-io" or strace):
        mode = forced

    ops = []
    nreg = rng.choice([1, 2, 2, 3])
    for i in range(nreg):
        off = 0 if (mode == "reg-commit" and i == 0) else rng.randint(0, 300)
        ops.append({"kind": "reg", "off": off, "dev": "CK" + os.urandom(6).hex(),
                    "user": rng.choice("AB"), "key": b64u(os.urandom(32))})
    # existing accounts: deletes, unlocks and pings on distinct accounts;
    # unlocks and pings mostly of recently active ones, so that the others
    # age towards the purge (an activity that races a purge now and then)
    pool = live[:]
    rng.shuffle(pool)
    if pool and rng.random() < 0.6:
        a = pool.pop()
        ops.append({"kind": "del", "off": rng.randint(0, 700), "dev": a["dev"]})

    def pick():
        young = [a for a in pool if a["la_hi"] > now - 40_000]
        src = young if young and rng.random() < 0.85 else pool
        if not src:
            return None
        a = rng.choice(src)
        pool.remove(a)
        return a
    for _ in range(rng.choice([0, 1, 1, 2])):
        a = pick()
        if a:
            ops.append({"kind": "unlock", "off": rng.randint(0, 700), "dev": a["dev"]})
    if rng.random() < 0.3:
        a = pick()
        if a:
            ops.append({"kind": "ping", "off": rng.randint(0, 700), "dev": a["dev"]})
    # uniform: a timer. The others: the killer watches the daemon's log
    # for the moment named below and kills trigger_us later.
    trigger = None
    trigger_us = 0
    kill = 0
    inject = ""
    if mode == "store-io":
        # strace delivers SIGKILL on entry to the n-th write or sync of the
        # database or its WAL: inside a commit, a WAL frame, a checkpoint
        if rng.random() < 0.65:
            inject = "pwrite64:signal=KILL:when=%d" % rng.randint(1, 160)
        else:
            inject = "fdatasync,fsync:signal=KILL:when=%d" % rng.randint(1, 14)
        kill = 4500  # fallback
        if eligible and rng.random() < 0.5:
            ops.append({"kind": "purge", "off": rng.randint(0, 600)})
    elif mode == "purge":
        ops.append({"kind": "purge", "off": 0})
        trigger = r"control: uid \d+ pid \d+: purge"
        # (a few ms per account here: an fsync'd transaction each)
        trigger_us = rng.randint(0, int((est_per * len(eligible) * 1.1 + 1) * 1000))
        kill = 3000  # fallback
    else:
        # (rarely: let due accounts pile up for the purge rounds)
        if rng.random() < (0.25 if eligible else 0.15):
            ops.append({"kind": "purge", "off": rng.randint(0, 900)})
        if mode == "uniform":
            kill = rng.randint(0, 1500)
        elif mode == "reg-commit":
            # the mail server has accepted the password: the relay seals,
            # commits (fsync), answers - a window of a few ms
            devs = [op["dev"] for op in ops if op["kind"] == "reg"]
            trigger = r"eas (%s) FolderSync: http" % "|".join(devs)
            # (it takes about 1 ms here: mostly before and during, some after)
            trigger_us = (rng.randint(0, 800) if rng.random() < 0.7
                          else rng.randint(800, 3000))
            kill = 3000
        else:
            # a large Sync response has arrived: parse + apply in one transaction
            trigger = r"eas CK\w+ Sync: http/\d 200 .*, ([4-9]\d{3}|\d{5,}) bytes\)"
            trigger_us = rng.randint(0, 4000)
            kill = 4500

    lines = ["MODE=%s" % mode, "KILL_MS=%d" % kill,
             "KILLER=%s" % ("log" if trigger else "strace" if inject else "timer"),
             "INJECT='%s'" % inject, "OPS=("]
    for i, op in enumerate(ops):
        k = op["kind"]
        body = ""
        tok = "-"
        if k == "reg":
            u = op["user"]
            body = json.dumps({
                "server": os.environ["HK_CRASH_EAS_URL"],
                "username": os.environ["HALFKEY_TEST_USER_" + u],
                "password": os.environ["HALFKEY_TEST_PASS_" + u],
                "device_id": op["dev"], "device_type": DEVICE_TYPE,
                "device_key": op["key"]})
            accts[op["dev"]] = {
                "dev": op["dev"], "user": os.environ["HALFKEY_TEST_USER_" + u],
                "key": op["key"], "token": None, "account_id": None,
                "status": "pending", "la_lo": 0, "la_hi": 0, "reg_round": int(r),
                "gone_round": None, "gone_how": None, "adopted": False}
        elif k in ("unlock", "ping", "del"):
            a = accts[op["dev"]]
            tok = a["token"]
            if k == "unlock":
                body = json.dumps({"device_key": a["key"]})
        if body:
            with open(os.path.join(d, "ops", "%02d.req" % i), "w") as f:
                f.write(body)
        lines.append("  '%02d %s %d %s %s'" % (i, k, op["off"], op.get("dev", "-"), tok))
    lines.append(")")
    with open(os.path.join(d, "plan.json"), "w") as f:
        json.dump({"mode": mode, "kill_ms": kill, "ops": ops, "trigger": trigger,
                   "inject": inject,
                   "trigger_us": trigger_us,
                   "eligible_at_plan": len(eligible), "est_reg": est_reg,
                   "est_purge_per_acct": est_per}, f)
    save(w, led)
    print("\n".join(lines))


# ---- the log-triggered killer ---------------------------------------------

def cmd_killer(w, r, pid):
    """Watches the round's daemon log from its current end; when a line
    matches the plan's trigger, waits trigger_us and sends SIGKILL. Kills at
    the plan's fallback time when nothing matched. Creates 'killer.ready'
    once it is watching."""
    d = rdir(w, r)
    with open(os.path.join(d, "plan.json")) as f:
        plan = json.load(f)
    rx = re.compile(plan["trigger"])
    f = open(os.path.join(d, "halfkeyd.log"), "r", errors="replace")
    f.seek(0, 2)
    open(os.path.join(d, "killer.ready"), "w").close()
    start = time.monotonic()
    deadline = start + plan["kill_ms"] / 1000.0
    buf = ""
    hit = None
    while hit is None:
        chunk = f.read()
        if chunk:
            buf += chunk
            lines = buf.split("\n")
            buf = lines.pop()
            for line in lines:
                if rx.search(line):
                    hit = line
                    break
        if hit is None:
            if time.monotonic() >= deadline:
                hit = ""
                break
            time.sleep(0.0002)
    t_hit = time.monotonic()
    if hit:
        end = t_hit + plan["trigger_us"] / 1e6
        while True:  # busy wait: sleep() would overshoot a window of a few ms
            left = end - time.monotonic()
            if left <= 0:
                break
            if left > 0.002:
                time.sleep(left - 0.002)
    try:
        os.kill(int(pid), 9)
    except ProcessLookupError:
        pass
    t_kill = time.monotonic()
    with open(os.path.join(d, "killinfo.json"), "w") as out:
        json.dump({"trigger_line": hit, "fired": bool(hit),
                   "delay_us": int((t_kill - t_hit) * 1e6) if hit else None}, out)
    return 0


# ---- the ActiveSync pass-through that holds Pings ------------------------------

def cmd_easproxy(w, upstream, cafile, certfile, keyfile):
    """HTTPS on 127.0.0.1 (a free port, written to W/easproxy.port): forwards
    every request to the real ActiveSync server, except Ping, which it holds
    until the relay goes away. A killed relay cannot end its Ping, and the
    server would keep one of its few workers on it for the whole heartbeat
    (SOGo: up to 15 min): a few dozen kills would stall the shared server."""
    import http.client
    import http.server
    import select
    import ssl
    import threading
    import urllib.parse

    up = urllib.parse.urlsplit(upstream)
    up_ctx = ssl.create_default_context(cafile=cafile or None)
    held = [0]
    lock = threading.Lock()
    # at most 5 of the test's requests at the server at once: it is shared,
    # and SOGo has few workers
    upstream_slots = threading.BoundedSemaphore(5)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            self.request.do_handshake()
            super().setup()

        def log_message(self, fmt, *args):
            pass

        def forward(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else None
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            if q.get("Cmd", [""])[0].lower() == "ping":
                with lock:
                    held[0] += 1
                self.close_connection = True
                deadline = time.monotonic() + 900
                while time.monotonic() < deadline:
                    r, _, _ = select.select([self.connection], [], [], 1.0)
                    if r:
                        try:
                            if not self.connection.recv(1):
                                return
                        except (OSError, ValueError):
                            return
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in (
                "host", "connection", "keep-alive", "proxy-connection", "transfer-encoding",
                "content-length")}
            try:
                with upstream_slots:
                    c = http.client.HTTPSConnection(up.hostname, up.port or 443,
                                                    context=up_ctx, timeout=120)
                    c.request(self.command, self.path, body=body, headers=headers)
                    resp = c.getresponse()
                    data = resp.read()
                    c.close()
            except (OSError, http.client.HTTPException) as e:
                self.send_error(502, "upstream: %s" % e)
                return
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length",
                                     "keep-alive"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_GET = do_OPTIONS = forward

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self):
            sock, addr = self.socket.accept()
            return ctx.wrap_socket(sock, server_side=True,
                                   do_handshake_on_connect=False), addr

        def handle_error(self, request, client_address):
            pass

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    srv = Server(("127.0.0.1", 0), Handler)
    with open(os.path.join(w, "easproxy.port.tmp"), "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(os.path.join(w, "easproxy.port.tmp"), os.path.join(w, "easproxy.port"))

    def report_held():
        while True:
            time.sleep(1)
            with lock:
                n = held[0]
            with open(os.path.join(w, "easproxy.held"), "w") as f:
                f.write(str(n))

    threading.Thread(target=report_held, daemon=True).start()
    srv.serve_forever()
    return 0


# ---- offline store check --------------------------------------------------

def snapshot(w, r):
    """Copies the database and its WAL (not the -shm) and opens the copy, so
    that SQLite's crash recovery runs on the copy and the restarted daemon
    finds the files exactly as the kill left them."""
    d = rdir(w, r)
    snap = os.path.join(d, "snap")
    os.makedirs(snap, exist_ok=True)
    src = os.path.join(w, "data", "halfkey.db")
    for sfx in ("", "-wal"):
        if os.path.exists(src + sfx):
            shutil.copyfile(src + sfx, os.path.join(snap, "halfkey.db" + sfx))
    return sqlite3.connect(os.path.join(snap, "halfkey.db")), snap


def store_check(conn, fails):
    """The consistency rules that hold whatever the ledger says."""
    q = lambda sql, *a: conn.execute(sql, a).fetchall()
    ic = q("PRAGMA integrity_check")
    if ic != [("ok",)]:
        fails.append("integrity_check: %r" % ic[:5])
    fk = q("PRAGMA foreign_key_check")
    if fk:
        fails.append("foreign_key_check: %r" % fk[:5])
    checks = [
        ("account without a device",
         "SELECT id FROM accounts a WHERE NOT EXISTS"
         " (SELECT 1 FROM devices d WHERE d.account_id = a.id)"),
        ("live device without an envelope",
         "SELECT d.id FROM devices d JOIN accounts a ON a.id = d.account_id"
         " WHERE a.state <> 'wiped' AND NOT EXISTS"
         " (SELECT 1 FROM envelopes e WHERE e.device_id = d.id)"),
        ("wiped account with an envelope or live device",
         "SELECT a.id FROM accounts a WHERE a.state = 'wiped' AND EXISTS"
         " (SELECT 1 FROM devices d LEFT JOIN envelopes e ON e.device_id = d.id"
         "  WHERE d.account_id = a.id AND (e.device_id IS NOT NULL OR d.tombstoned_ms IS NULL))"),
        ("account with an unknown state",
         "SELECT id, state FROM accounts WHERE state NOT IN"
         " ('active', 'flushed', 'reregister_needed', 'wiped')"),
        ("account without its register audit row",
         "SELECT id FROM accounts a WHERE NOT EXISTS"
         " (SELECT 1 FROM audit u WHERE u.event = 'register' AND u.account_id = a.id)"),
        ("empty envelope",
         "SELECT device_id FROM envelopes WHERE length(credential) = 0"
         " OR length(wrapped_dek) = 0 OR key_id <> 1"),
        ("orphan device",
         "SELECT id FROM devices d WHERE NOT EXISTS"
         " (SELECT 1 FROM accounts a WHERE a.id = d.account_id)"),
        ("orphan envelope",
         "SELECT device_id FROM envelopes e WHERE NOT EXISTS"
         " (SELECT 1 FROM devices d WHERE d.id = e.device_id)"),
        ("orphan collection",
         "SELECT account_id, collection_id FROM collections c WHERE NOT EXISTS"
         " (SELECT 1 FROM accounts a WHERE a.id = c.account_id)"),
        ("orphan item",
         "SELECT account_id, collection_id, item_id FROM items i WHERE NOT EXISTS"
         " (SELECT 1 FROM collections c WHERE c.account_id = i.account_id"
         "  AND c.collection_id = i.collection_id)"),
        ("orphan push subscription",
         "SELECT id FROM push_subscriptions p WHERE NOT EXISTS"
         " (SELECT 1 FROM accounts a WHERE a.id = p.account_id)"),
        ("orphan lease",
         "SELECT account_id FROM leases l WHERE NOT EXISTS"
         " (SELECT 1 FROM accounts a WHERE a.id = l.account_id)"),
    ]
    for what, sql in checks:
        rows = q(sql)
        if rows:
            fails.append("%s: %r" % (what, rows[:5]))
    lens = q("SELECT DISTINCT length(wrapped_dek) FROM envelopes")
    if len(lens) > 1:
        fails.append("wrapped data keys of different lengths: %r" % lens)
    counts = {}
    for t, k in (("accounts", "accounts"), ("devices", "devices"), ("envelopes", "envelopes"),
                 ("collections", "collections"), ("items", "items"),
                 ("push_subscriptions", "push_subs"), ("leases", "leases")):
        counts[k] = q("SELECT count(*) FROM " + t)[0][0]
    return counts


def db_view(conn):
    accounts = {row[0]: {"username": row[1], "state": row[2]} for row in
                conn.execute("SELECT id, username, state FROM accounts")}
    devices = {}
    for row in conn.execute("SELECT id, account_id, eas_device_id, token_hash FROM devices"):
        devices.setdefault(row[2], []).append(
            {"id": row[0], "account_id": row[1], "token_hash": bytes(row[3])})
    audit = conn.execute("SELECT id, time_ms, event, account_id, device FROM audit"
                         " ORDER BY id").fetchall()
    return accounts, devices, audit


# ---- events ---------------------------------------------------------------

def read_events(d):
    """ops/NN.ev: 'NN kind dev t0 t1 curl_rc http'."""
    evs = {}
    opsd = os.path.join(d, "ops")
    for name in sorted(os.listdir(opsd)):
        if not name.endswith(".ev"):
            continue
        with open(os.path.join(opsd, name)) as f:
            parts = f.read().split()
        i, kind, dev, t0, t1, rc, http = parts[:7]
        body = ""
        bp = os.path.join(opsd, i + ".body")
        if os.path.exists(bp):
            with open(bp, errors="replace") as f:
                body = f.read()
        evs[i] = {"i": i, "kind": kind, "dev": dev, "t0": int(t0), "t1": int(t1),
                  "rc": int(rc), "http": http, "body": body}
    return evs


def answered(ev):
    if ev["kind"] == "purge":
        return ev["rc"] == 0
    return ev["rc"] == 0 and ev["http"] not in ("000", "", "-")


def reached(ev, t_kill):
    """False when the request surely never reached the daemon."""
    if ev["kind"] == "purge":
        return ev["rc"] in (0, 1) or ev["t0"] < t_kill
    return ev["rc"] != 7  # curl: could not connect


LOG_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z (\w+): (.*)$")


def read_log(d):
    out = []
    p = os.path.join(d, "halfkeyd.log")
    if not os.path.exists(p):
        return out
    with open(p, errors="replace") as f:
        for line in f:
            m = LOG_RE.match(line.rstrip("\n"))
            if not m:
                continue
            t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
                tzinfo=datetime.timezone.utc)
            out.append((int(t.timestamp() * 1000), m.group(2), m.group(3)))
    return out


# ---- check ----------------------------------------------------------------

def cmd_check(w, r):
    led = load(w)
    d = rdir(w, r)
    fails = []
    with open(os.path.join(d, "kill")) as f:
        t_ops0, t_kill = (int(x) for x in f.read().split()[:2])
    with open(os.path.join(d, "plan.json")) as f:
        plan = json.load(f)
    evs = read_events(d)
    log = read_log(d)
    conn, snap = snapshot(w, r)
    counts = store_check(conn, fails)
    accounts, devices, audit = db_view(conn)
    conn.close()
    accts = led["accounts"]
    rs = {"round": int(r), "mode": plan["mode"], "kill_planned": plan["kill_ms"],
          "kill_actual": t_kill - t_ops0, "reg": [], "purge": None, "del": [],
          "counts": counts}

    def present_of(a):
        if a["account_id"]:
            return a["account_id"] in accounts
        return a["dev"] in devices

    def token_ok(a):
        if not a["token"]:
            return True
        th = hashlib.sha256(b64u_dec(a["token"])).digest()
        return any(dv["token_hash"] == th and dv["account_id"] == a["account_id"]
                   for dv in devices.get(a["dev"], []))

    # Unknown accounts: everything in the store must be the test's.
    for eas, dvs in devices.items():
        if eas not in accts:
            fails.append("store holds a device the test never registered: %s" % eas)
    known_ids = {a["account_id"] for a in accts.values() if a["account_id"]}
    for aid in accounts:
        if aid not in known_ids and not any(
                dv["account_id"] == aid for dvs in devices.values() for dv in dvs):
            fails.append("store holds an unknown account %s" % aid)

    by_dev = {}
    for ev in evs.values():
        if ev["dev"] != "-":
            by_dev.setdefault(ev["dev"], []).append(ev)
    purge = next((e for e in evs.values() if e["kind"] == "purge"), None)

    # ---- the purge
    p_sent = purge is not None and reached(purge, t_kill)
    p_ans = p_sent and answered(purge)
    p_start = purge["t0"] if purge else 0
    p_end = (purge["t1"] if p_ans else t_kill) if purge else 0
    p_n = None
    if purge is not None and purge["rc"] == 1:
        fails.append("halfkeyctl purge failed: %s" % purge["body"].strip())
    if p_ans:
        m = re.search(r"(\d+) account\(s\) purged", purge["body"])
        if not m:
            fails.append("halfkeyctl purge: unexpected answer %r" % purge["body"])
        else:
            p_n = int(m.group(1))
    purge_audit = [row for row in audit if row[2] == "purge" and purge is not None
                   and p_start - 5 <= row[1] <= p_end + 5]
    purged_ids = {row[3] for row in purge_audit}
    if p_n is not None and p_n != len(purge_audit):
        fails.append("purge answered %d purged but the audit holds %d purge rows"
                     % (p_n, len(purge_audit)))

    verify = []  # (dev, expect)
    definite_left = 0
    definite_total = 0

    # ---- accounts that were live before this round
    for a in accts.values():
        if a["status"] != "live":
            continue
        mine = by_dev.get(a["dev"], [])
        la_lo_p = a["la_lo"]
        la_hi = a["la_hi"]
        touched = False
        delete = "no"
        for ev in mine:
            if not reached(ev, t_kill):
                continue
            touched = True
            end = min(ev["t1"], t_kill)
            if ev["kind"] in ("unlock", "ping"):
                la_hi = max(la_hi, end)
                if ev["http"] == "200" and p_sent and ev["t1"] < p_start:
                    la_lo_p = max(la_lo_p, ev["t0"])
            elif ev["kind"] == "del":
                if ev["http"] == "204":
                    delete = "yes"
                elif not answered(ev):
                    delete = "maybe"
        pcls = "no"
        if p_sent:
            if la_hi < p_start - FLUSH_MS - MARGIN_MS:
                pcls = "definite" if p_ans else "maybe"
                definite_total += 1
            elif la_lo_p >= p_end - FLUSH_MS + MARGIN_MS:
                pcls = "no"
            else:
                pcls = "maybe"
        for ev in mine:
            if ev["kind"] == "del" and answered(ev) and ev["http"] != "204":
                if pcls == "no":
                    fails.append("DELETE of live account %s (%s) answered %s"
                                 % (a["account_id"], a["dev"], ev["http"]))
            if ev["kind"] in ("unlock", "ping") and answered(ev) and ev["http"] != "200":
                if pcls == "no" and delete == "no":
                    fails.append("%s of live account %s (%s) answered %s"
                                 % (ev["kind"], a["account_id"], a["dev"], ev["http"]))
        must_gone = delete == "yes" or pcls == "definite"
        must_present = delete == "no" and pcls == "no"
        present = present_of(a)
        if pcls != "no" and la_hi < p_start - FLUSH_MS - MARGIN_MS and present:
            definite_left += 1
        if present and must_gone:
            fails.append("account %s (%s) still in the store after %s" % (
                a["account_id"], a["dev"], "DELETE 204" if delete == "yes"
                else "a purge that answered (inactive since %d ms before it)"
                % (p_start - la_hi)))
        if not present and must_present:
            fails.append("account %s (%s, registered round %d) is gone: no delete or purge"
                         " could have taken it" % (a["account_id"], a["dev"], a["reg_round"]))
        if present:
            if not token_ok(a):
                fails.append("account %s (%s): its device row or token hash changed"
                             % (a["account_id"], a["dev"]))
            a["la_hi"] = la_hi
            for ev in mine:
                if ev["kind"] in ("unlock", "ping") and ev["http"] == "200":
                    a["la_lo"] = max(a["la_lo"], ev["t0"])
            if touched or pcls == "maybe" or delete == "maybe":
                verify.append((a["dev"], 200))
        else:
            how = [row[2] for row in audit if row[3] == a["account_id"]
                   and row[2] in ("delete", "purge")]
            if not how:
                fails.append("account %s (%s) vanished without a delete or purge audit row"
                             % (a["account_id"], a["dev"]))
            a["status"] = "gone"
            a["gone_round"] = int(r)
            a["gone_how"] = how[-1] if how else "?"
            verify.append((a["dev"], 401))
        for ev in mine:
            if ev["kind"] == "del":
                rs["del"].append("204" if ev["http"] == "204" else
                                 "not-sent" if not reached(ev, t_kill) else
                                 ("killed-gone" if not present else "killed-present")
                                 if not answered(ev) else "answered-" + ev["http"])

    # ---- registrations of this round
    for ev in evs.values():
        if ev["kind"] != "reg":
            continue
        a = accts[ev["dev"]]
        dvs = devices.get(a["dev"], [])
        present = bool(dvs)
        if answered(ev) and ev["http"] == "201":
            try:
                body = json.loads(ev["body"])
                a["token"] = body["token"]
                a["account_id"] = body["account_id"]
            except (ValueError, KeyError):
                fails.append("register %s: 201 without token: %r" % (a["dev"], ev["body"]))
                a["status"] = "gone"
                continue
            led["reg_lat"].append(ev["t1"] - ev["t0"])
            cat = "201"
            if not present_of(a):
                fails.append("register %s answered 201 (account %s) but the account is not"
                             " in the store" % (a["dev"], a["account_id"]))
                a["status"] = "gone"
            else:
                if accounts[a["account_id"]]["username"] != a["user"]:
                    fails.append("account %s: wrong username" % a["account_id"])
                if not token_ok(a):
                    fails.append("account %s: device/token hash missing" % a["account_id"])
                a["status"] = "live"
                a["la_lo"] = ev["t0"]
                a["la_hi"] = ev["t1"]
                verify.append((a["dev"], 200))
        elif not reached(ev, t_kill) or answered(ev):
            cat = "not-sent" if not reached(ev, t_kill) else "answered-" + ev["http"]
            if present:
                fails.append("register %s %s, yet the store holds it (account %s)"
                             % (a["dev"], "never reached the relay" if cat == "not-sent"
                                else "answered " + ev["http"], dvs[0]["account_id"]))
            a["status"] = "gone"
            a["gone_how"] = "never"
        else:
            # killed with the request in flight: absent, or whole and unlockable
            reached_verify = any(("eas %s FolderSync" % a["dev"]) in l[2] for l in log)
            if present:
                cat = "killed-after-commit"
                if len(dvs) != 1:
                    fails.append("register %s: %d devices" % (a["dev"], len(dvs)))
                a["account_id"] = dvs[0]["account_id"]
                a["status"] = "adopt"
                a["la_lo"] = ev["t0"]
                a["la_hi"] = t_kill
            else:
                cat = ("killed-before-commit" if reached_verify
                       else "killed-in-mail-round-trip")
                a["status"] = "gone"
                a["gone_how"] = "never"
        rs["reg"].append(cat)

    # ---- accounts already gone must stay gone
    for a in accts.values():
        if a["status"] == "gone" and a["gone_round"] != int(r) and a["gone_how"] != "never":
            if a["account_id"] in accounts or a["dev"] in devices:
                fails.append("account %s (%s), gone since round %s, is back"
                             % (a["account_id"], a["dev"], a["gone_round"]))

    # ---- adoption: registrations that committed without an answer. Their
    # token was never seen, so give the device row a token of our own (the
    # vault binds the envelope to the account id, server, user and salt, not
    # to the token) and prove the envelope opens with the device key.
    adopt = [a for a in accts.values() if a["status"] == "adopt"]
    if adopt and not fails:
        db = sqlite3.connect(os.path.join(w, "data", "halfkey.db"))
        for a in adopt:
            tok = os.urandom(32)
            cur = db.execute("UPDATE devices SET token_hash = ? WHERE eas_device_id = ?"
                             " AND account_id = ?",
                             (hashlib.sha256(tok).digest(), a["dev"], a["account_id"]))
            if cur.rowcount != 1:
                fails.append("adopt %s: %d rows" % (a["dev"], cur.rowcount))
            a["token"] = b64u(tok)
            a["status"] = "live"
            a["adopted"] = True
            led["adopted"] += 1
            verify.append((a["dev"], 200))
        db.commit()
        db.close()
    for a in adopt:
        if a["status"] == "adopt":
            a["status"] = "live"

    # ---- verification sample: one other live account, recently active (the
    # others are left to age towards the purge; each account is unlocked
    # after the round that registered it, after every round that touched it,
    # and in the final sweep)
    others = [a for a in accts.values() if a["status"] == "live" and a["token"]
              and a["la_hi"] > t_kill - 30_000
              and a["dev"] not in {v[0] for v in verify}]
    for a in random.sample(others, min(1, len(others))):
        verify.append((a["dev"], 200))

    # ---- what the kill hit
    if purge is not None:
        if not p_sent:
            rs["purge"] = "not-sent"
        elif p_ans:
            rs["purge"] = "answered-%s" % p_n
            # how long the relay took per account, from its own log
            t_cmd = [l[0] for l in log if re.search(r"control: uid \d+ pid \d+: purge", l[2])]
            t_done = [l[0] for l in log if "inactive account(s) removed" in l[2]]
            if p_n and t_cmd and t_done:
                led["purge_per_acct"].append(max(1, t_done[-1] - t_cmd[-1]) / p_n)
        elif definite_total == 0 and not purge_audit:
            rs["purge"] = "killed-nothing-to-purge"
        elif not purge_audit:
            rs["purge"] = "killed-before-first-delete"
        elif definite_left:
            rs["purge"] = "killed-mid-purge"
        else:
            rs["purge"] = "killed-after-last-delete"
        rs["purge_candidates"] = definite_total
        rs["purge_deleted"] = len(purge_audit)
    sync_lines = [l for l in log if re.match(r"eas CK\w+ (Sync|FolderSync|Ping)", l[2])
                  or "cache changed" in l[2]]
    rs["sync_msgs"] = len(sync_lines)
    rs["sync_applied"] = sum(1 for l in log if "cache changed" in l[2])
    big = [l for l in log if re.match(r"eas CK\w+ Sync: http/\d 200", l[2])
           and re.search(r"(\d+) bytes\)", l[2])
           and int(re.search(r"(\d+) bytes\)", l[2]).group(1)) > 4000]
    rs["kill_after_sync_response_ms"] = min(
        [t_kill - l[0] for l in big if l[0] <= t_kill] or [None], key=lambda x: x or 1e18)
    ki = os.path.join(d, "killinfo.json")
    if os.path.exists(ki):
        with open(ki) as f:
            kinfo = json.load(f)
        rs["trigger_fired"] = kinfo["fired"]
        rs["trigger_delay_us"] = kinfo["delay_us"]
        if kinfo["fired"] and plan["mode"] == "sync":
            # did the apply of that Sync response finish before the kill?
            m = re.search(r"eas (CK\w+) Sync", kinfo["trigger_line"])
            acct = None
            if m and m.group(1) in devices:
                acct = devices[m.group(1)][0]["account_id"]
            elif m and accts.get(m.group(1)):
                acct = accts[m.group(1)]["account_id"]
            with open(os.path.join(d, "halfkeyd.log"), errors="replace") as f:
                raw = f.read().split("\n")
            after = raw[raw.index(kinfo["trigger_line"]) + 1:] \
                if kinfo["trigger_line"] in raw else []
            done = any(acct and ("account %s: cache changed" % acct) in l for l in after)
            rs["sync_apply"] = "applied-before-kill" if done else "killed-before-apply-done"
    sp = os.path.join(d, "strace.log")
    if os.path.exists(sp):
        with open(sp, errors="replace") as f:
            st_lines = [l for l in f.read().split("\n") if l.strip()]
        killed = [l for l in st_lines if "= ?" in l or "<unfinished" in l]
        rs["inject"] = plan["inject"]
        if killed and any("killed by SIGKILL" in l for l in st_lines):
            m = re.search(r"(\w+)\(\d+<[^>]*?(halfkey\.db(-wal)?)>", killed[-1])
            rs["io_hit"] = "%s %s" % (m.group(1), m.group(2)) if m else killed[-1][:80]
        else:
            rs["io_hit"] = "timer"
    rs["sessions"] = len({m.group(1) for l in log
                          for m in [re.match(r"sync (a\w+):", l[2])] if m})
    rs["store_errors"] = [l[2] for l in log if l[1] in ("err", "crit", "alert", "emerg")
                          or "sync stopped" in l[2]]

    with open(os.path.join(d, "verify.list"), "w") as f:
        for dev, exp in verify:
            a = accts[dev]
            f.write("%s %d %s %s\n" % (dev, exp, a["token"], a["key"]))
    with open(os.path.join(d, "counts.json"), "w") as f:
        json.dump(counts, f)
    rs["fails"] = fails
    led["rounds"].append(rs)
    led["failures"] += ["round %s: %s" % (r, x) for x in fails]
    save(w, led)
    if not fails:
        shutil.rmtree(snap, ignore_errors=True)
    n_live = sum(1 for a in accts.values() if a["status"] == "live")
    print("round %3s %-10s kill %4d ms  reg %-40s purge %-28s live %3d  %s" % (
        r, plan["mode"], t_kill - t_ops0, ",".join(rs["reg"]), rs["purge"] or "-", n_live,
        "OK" if not fails else "FAIL"))
    for x in fails:
        print("FAIL round %s: %s" % (r, x))
    return 1 if fails else 0


def cmd_stats(w, r, path):
    d = rdir(w, r)
    with open(os.path.join(d, "counts.json")) as f:
        counts = json.load(f)
    try:
        with open(path) as f:
            st = json.loads(f.read().splitlines()[0])["stats"]
    except (ValueError, KeyError, IndexError, OSError) as e:
        print("FAIL round %s: halfkeyctl stats unreadable: %s" % (r, e))
        return 1
    bad = {k: (v, st.get(k)) for k, v in counts.items() if st.get(k) != v}
    if bad:
        msg = "restarted relay counts differ from the offline check: %r" % bad
        led = load(w)
        led["failures"].append("round %s: %s" % (r, msg))
        save(w, led)
        print("FAIL round %s: %s" % (r, msg))
        return 1
    return 0


def cmd_verified(w, r):
    """verify.res: 'dev expect http t0 t1'."""
    led = load(w)
    d = rdir(w, r)
    fails = []
    with open(os.path.join(d, "verify.res")) as f:
        for line in f:
            dev, exp, http, t0, t1 = line.split()
            a = led["accounts"][dev]
            led["verify"]["expect" + exp] += 1
            if http != exp:
                fails.append("unlock of %s account %s (%s, registered round %d%s) after the"
                             " restart answered %s, want %s" % (
                                 a["status"], a["account_id"], dev, a["reg_round"],
                                 ", adopted" if a["adopted"] else "", http, exp))
            else:
                led["verify"]["ok"] += 1
            if http == "200":
                a["la_lo"] = max(a["la_lo"], int(t0))
                a["la_hi"] = max(a["la_hi"], int(t1))
            elif http != "401":
                a["la_hi"] = max(a["la_hi"], int(t1))
    led["failures"] += ["round %s: %s" % (r, x) for x in fails]
    save(w, led)
    for x in fails:
        print("FAIL round %s: %s" % (r, x))
    return 1 if fails else 0


def cmd_final(w):
    led = load(w)
    d = rdir(w, "final")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "verify.list"), "w") as f:
        for a in led["accounts"].values():
            if a["token"] and a["status"] in ("live", "gone"):
                f.write("%s %d %s %s\n" % (a["dev"], 200 if a["status"] == "live" else 401,
                                           a["token"], a["key"]))
    return 0


def cmd_final_check(w):
    led = load(w)
    fails = []
    d = rdir(w, "final")
    db = os.path.join(w, "data", "halfkey.db")
    conn = sqlite3.connect(db)
    store_check(conn, fails)
    accounts, devices, audit = db_view(conn)
    conn.close()
    live = [a for a in led["accounts"].values() if a["status"] == "live"]
    for a in live:
        if a["account_id"] not in accounts:
            fails.append("final: live account %s (%s) missing" % (a["account_id"], a["dev"]))
    if len(accounts) != len(live):
        fails.append("final: %d accounts in the store, %d live in the ledger"
                     % (len(accounts), len(live)))
    led["failures"] += ["final: %s" % x for x in fails]
    save(w, led)
    for x in fails:
        print("FAIL final: %s" % x)
    return 1 if fails else 0


def cmd_report(w):
    led = load(w)
    rounds = led["rounds"]
    accts = led["accounts"].values()

    def tally(xs):
        out = {}
        for x in xs:
            out[x] = out.get(x, 0) + 1
        return ", ".join("%s %d" % kv for kv in sorted(out.items(), key=lambda kv: -kv[1]))

    print("== crash-safety summary ==")
    print("kill/restart rounds: %d" % len(rounds))
    print("kill modes: %s" % tally(r["mode"] for r in rounds))
    ks = sorted(r["kill_actual"] for r in rounds)
    if ks:
        print("kill delay after the round's first request (ms): min %d, median %d, max %d"
              % (ks[0], ks[len(ks) // 2], ks[-1]))
        buckets = [0, 100, 250, 500, 1000, 1500, 2000, 3000]
        hist = []
        for lo, hi in zip(buckets, buckets[1:]):
            hist.append("%d-%d: %d" % (lo, hi, sum(1 for k in ks if lo <= k < hi)))
        print("  histogram: " + ", ".join(hist))
    print("registrations: %s" % tally(c for r in rounds for c in r["reg"]))
    print("purges: %s" % tally(r["purge"] for r in rounds if r["purge"]))
    pd = sum(r.get("purge_deleted", 0) for r in rounds)
    print("  accounts deleted by purge: %d" % pd)
    print("deletes: %s" % tally(c for r in rounds for c in r["del"]))
    print("accounts: %d registered attempts, %d live at the end, %d gone (%s), %d adopted"
          " (committed, answer lost)" % (
              len(led["accounts"]), sum(1 for a in accts if a["status"] == "live"),
              sum(1 for a in accts if a["status"] == "gone" and a["gone_how"] != "never"),
              tally(a["gone_how"] for a in accts if a["status"] == "gone"
                    and a["gone_how"] != "never"), led["adopted"]))
    sy = [r for r in rounds if r.get("sessions")]
    near = [r for r in rounds if r.get("kill_after_sync_response_ms") is not None
            and r["kill_after_sync_response_ms"] < 100]
    print("sync: %d rounds with sync sessions running at the kill (%d sessions), %d Sync"
          " batches applied, %d kills < 100 ms after a large Sync response arrived" % (
              len(sy), sum(r["sessions"] for r in rounds),
              sum(r["sync_applied"] for r in rounds), len(near)))
    trig = [r for r in rounds if "trigger_fired" in r]
    if trig:
        print("log-triggered kills: %d (%d fired on their trigger, %d fell back to the timer);"
              " delay after the trigger line (us): %s" % (
                  len(trig), sum(1 for r in trig if r["trigger_fired"]),
                  sum(1 for r in trig if not r["trigger_fired"]),
                  ", ".join("%s %s" % (r["mode"], r["trigger_delay_us"]) for r in trig
                            if r["trigger_fired"])[:600]))
    io = [r for r in rounds if "io_hit" in r]
    if io:
        print("store-io kills (SIGKILL injected by strace on entry to a database write or"
              " sync): %d: %s" % (len(io), tally(r["io_hit"] for r in io)))
    print("sync-triggered kills: %s" % tally(r["sync_apply"] for r in rounds
                                             if "sync_apply" in r))
    print("unlocks after restarts: %d checked (%d expecting 200, %d expecting 401), %d as"
          " expected" % (led["verify"]["expect200"] + led["verify"]["expect401"],
                         led["verify"]["expect200"], led["verify"]["expect401"],
                         led["verify"]["ok"]))
    errs = [e for r in rounds for e in r.get("store_errors", [])]
    if errs:
        print("relay errors logged (%d), first ones:" % len(errs))
        for e in errs[:8]:
            print("  " + e)
    n201 = sum(1 for r in rounds for c in r["reg"] if c == "201")
    if len(rounds) >= 20 and n201 < 10:
        led["failures"].append("only %d registrations answered 201: the mail server did not"
                               " take registrations, so little was tested" % n201)
    if led["failures"]:
        print("FAILURES (%d):" % len(led["failures"]))
        for x in led["failures"]:
            print("  " + x)
    return 1 if led["failures"] else 0


def main():
    cmd, w = sys.argv[1], sys.argv[2]
    if cmd == "plan":
        cmd_plan(w, sys.argv[3])
        return 0
    if cmd == "easproxy":
        return cmd_easproxy(w, *sys.argv[3:7])
    if cmd == "killer":
        return cmd_killer(w, sys.argv[3], sys.argv[4])
    if cmd == "check":
        return cmd_check(w, sys.argv[3])
    if cmd == "stats":
        return cmd_stats(w, sys.argv[3], sys.argv[4])
    if cmd == "verified":
        return cmd_verified(w, sys.argv[3])
    if cmd == "final":
        return cmd_final(w)
    if cmd == "final-check":
        return cmd_final_check(w)
    if cmd == "report":
        return cmd_report(w)
    print("unknown command " + cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
