#!/usr/bin/env python3
"""memscan.py: the needle scanner of tests/memory/test-memory-property.sh.

DESIGN.md section 3: after a flush, delete or wipe, a dump of halfkeyd's
whole memory holds no copy of the account's password or device key in any
encoding in which they crossed a boundary, and the data directory, the log
and the database never hold them.

The secrets come from the environment of *this* process only (never from
the daemon's, which the test starts with an empty environment):
  HK_MEM_USER   the mail username
  HK_MEM_PASS   the mail password
  HK_MEM_DK     the device key, base64url without padding (43 characters)

Commands:
  memscan.py newkey                 a random 32-byte device key (base64url, no padding)
  memscan.py needles                the needles' names and lengths (never their bytes)
  memscan.py register-body SERVER DEVICE_ID
                                    the /register body, exactly as the test sends it
  memscan.py unlock-body            the /unlock body
  memscan.py mem LABEL PID [--require-password | --expect-all]
                                    dumps /proc/PID/mem over every range of
                                    /proc/PID/maps and counts every needle
                                    (--require-password: the raw password must
                                    be there; --expect-all: every needle must)
  memscan.py probe                  a process holding every needle (for --expect-all)
  memscan.py files LABEL PATH...    counts every needle in files (directories: recursively)
  memscan.py stdin LABEL [--expect NAME,...]
                                    counts every needle in what arrives on stdin
                                    (--expect: these needles must be there)

The HPACK needles (what libnghttp2 puts in its frame buffer when curl sends
the mail server's requests over HTTP/2) are computed with the system's
libnghttp2 (libnghttp2.so.14, a dependency of libcurl) through ctypes; the
scanner dies (exit 2) when it cannot load or use it.

Exit status: 0 no needle found (with --require-password: the raw password
was found and nothing else is checked; with --expect-all: every needle was
found), 1 needles found, each hit printed with its encoding and where it
is (or, for the checks above, not found where they must be), 2 usage or
scan error.
Hits are printed with their surroundings, the needle itself masked: the
test's output never spells a secret.
"""
import base64
import ctypes
import json
import os
import re
import secrets
import sys

# read size; HK_MEM_CHUNK (bytes) lets the self-test make needles straddle reads
CHUNK = int(os.environ.get("HK_MEM_CHUNK", 4 << 20))


def die(msg, code=2):
    print(f"memscan: {msg}", file=sys.stderr)
    sys.exit(code)


def env(name):
    v = os.environ.get(name)
    if not v:
        die(f"{name} is not set")
    return v


def dk_bytes():
    s = env("HK_MEM_DK")
    raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    if len(raw) != 32:
        die("HK_MEM_DK is not 32 bytes in base64url")
    return raw


def json_str(s):
    # what the test puts in the request body (see register_body)
    return json.dumps(s, ensure_ascii=False)


def register_body(server, device_id):
    pw = env("HK_MEM_PASS")
    return ('{"server":%s,"username":%s,"password":%s,"device_id":%s,'
            '"device_type":"HalfkeyMemTest","device_key":%s}' % (
                json_str(server), json_str(env("HK_MEM_USER")), json_str(pw),
                json_str(device_id), json_str(env("HK_MEM_DK"))))


def unlock_body():
    return '{"device_key":%s}' % json_str(env("HK_MEM_DK"))


def b64_variants(raw):
    std = base64.b64encode(raw)
    url = base64.urlsafe_b64encode(raw)
    return [("base64", std), ("base64-nopad", std.rstrip(b"=")),
            ("base64url", url), ("base64url-nopad", url.rstrip(b"="))]


# ---- HPACK (RFC 7541), as libnghttp2 encodes curl's HTTP/2 request headers

HPACK_AUTHORIZATION = 23  # RFC 7541 Appendix A: static table index of "authorization"
NGHTTP2_NV_FLAG_NO_INDEX = 0x01
NGHTTP2_HD_INFLATE_FINAL = 0x01
NGHTTP2_HD_INFLATE_EMIT = 0x02


class NghttpNv(ctypes.Structure):
    """nghttp2_nv of <nghttp2/nghttp2.h> (1.52): uint8_t *name; uint8_t
    *value; size_t namelen; size_t valuelen; uint8_t flags."""
    _fields_ = [("name", ctypes.c_void_p), ("value", ctypes.c_void_p),
                ("namelen", ctypes.c_size_t), ("valuelen", ctypes.c_size_t),
                ("flags", ctypes.c_uint8)]


_nghttp2 = None


def nghttp2():
    """The system's libnghttp2, loaded once, with the HPACK functions'
    prototypes declared."""
    global _nghttp2
    if _nghttp2 is not None:
        return _nghttp2
    errors = []
    for soname in ("libnghttp2.so.14", "libnghttp2.so"):
        try:
            lib = ctypes.CDLL(soname)
            break
        except OSError as e:
            errors.append(str(e))
    else:
        die("cannot load libnghttp2 for the HPACK needles (the form of the password "
            "in curl's HTTP/2 frames): " + "; ".join(errors))
    vp, sz, ss = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_ssize_t
    nvp = ctypes.POINTER(NghttpNv)
    protos = {
        "nghttp2_hd_deflate_new": (ctypes.c_int, [ctypes.POINTER(vp), sz]),
        "nghttp2_hd_deflate_bound": (sz, [vp, nvp, sz]),
        "nghttp2_hd_deflate_hd": (ss, [vp, vp, sz, nvp, sz]),
        "nghttp2_hd_deflate_del": (None, [vp]),
        "nghttp2_hd_inflate_new": (ctypes.c_int, [ctypes.POINTER(vp)]),
        "nghttp2_hd_inflate_hd2": (ss, [vp, nvp, ctypes.POINTER(ctypes.c_int), vp, sz, ctypes.c_int]),
        "nghttp2_hd_inflate_end_headers": (ctypes.c_int, [vp]),
        "nghttp2_hd_inflate_del": (None, [vp]),
    }
    for fname, (res, args) in protos.items():
        try:
            f = getattr(lib, fname)
        except AttributeError:
            die(f"libnghttp2 has no {fname}: cannot compute the HPACK needles")
        f.restype, f.argtypes = res, args
    _nghttp2 = lib
    return lib


def hpack_deflate(name, value, flags=0):
    """The header block in which a fresh libnghttp2 deflater (dynamic table
    4096 bytes, as in an HTTP/2 session) encodes the one header name: value."""
    lib = nghttp2()
    d = ctypes.c_void_p()
    if lib.nghttp2_hd_deflate_new(ctypes.byref(d), 4096) != 0 or not d:
        die("nghttp2_hd_deflate_new failed: cannot compute the HPACK needles")
    try:
        nb = ctypes.create_string_buffer(name, len(name))
        vb = ctypes.create_string_buffer(value, len(value))
        nv = NghttpNv(ctypes.cast(nb, ctypes.c_void_p), ctypes.cast(vb, ctypes.c_void_p),
                      len(name), len(value), flags)
        size = lib.nghttp2_hd_deflate_bound(d, ctypes.byref(nv), 1)
        buf = ctypes.create_string_buffer(size)
        n = lib.nghttp2_hd_deflate_hd(d, buf, size, ctypes.byref(nv), 1)
        if n <= 0:
            die(f"nghttp2_hd_deflate_hd failed ({n}): cannot compute the HPACK needles")
        return buf.raw[:n]
    finally:
        lib.nghttp2_hd_deflate_del(d)


def hpack_inflate(block):
    """The (name, value) pairs of a header block, decoded by a fresh
    libnghttp2 inflater."""
    lib = nghttp2()
    d = ctypes.c_void_p()
    if lib.nghttp2_hd_inflate_new(ctypes.byref(d)) != 0 or not d:
        die("nghttp2_hd_inflate_new failed: cannot check the HPACK needles")
    out = []
    try:
        buf = ctypes.create_string_buffer(block, len(block))
        pos = 0
        while True:
            nv, fl = NghttpNv(), ctypes.c_int(0)
            n = lib.nghttp2_hd_inflate_hd2(d, ctypes.byref(nv), ctypes.byref(fl),
                                           ctypes.addressof(buf) + pos, len(block) - pos, 1)
            if n < 0:
                die(f"nghttp2_hd_inflate_hd2 failed ({n}): the HPACK needles are wrong")
            pos += n
            if fl.value & NGHTTP2_HD_INFLATE_EMIT:
                out.append((ctypes.string_at(nv.name, nv.namelen),
                            ctypes.string_at(nv.value, nv.valuelen)))
            if fl.value & NGHTTP2_HD_INFLATE_FINAL:
                break
            if not fl.value & NGHTTP2_HD_INFLATE_EMIT and pos == len(block):
                die("nghttp2_hd_inflate_hd2: header block ends early: the HPACK needles are wrong")
        lib.nghttp2_hd_inflate_end_headers(d)
    finally:
        lib.nghttp2_hd_inflate_del(d)
    return out


def hpack_int(block, i, prefix):
    """RFC 7541 5.1: the integer with a prefix-bit prefix at block[i];
    (value, index after it)."""
    if i >= len(block):
        die("HPACK: header block truncated in an integer")
    mask = (1 << prefix) - 1
    v = block[i] & mask
    i += 1
    if v < mask:
        return v, i
    shift = 0
    while True:
        if i >= len(block):
            die("HPACK: header block truncated in an integer")
        b = block[i]
        i += 1
        v += (b & 0x7f) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def hpack_value_literal(block):
    """RFC 7541 6.1-6.3: the header block holds exactly one literal header
    field whose name is static entry 23 ("authorization"); its value's
    string literal (5.2) as (huffman, bytes, representation)."""
    i = 0
    while i < len(block) and block[i] & 0xe0 == 0x20:
        _, i = hpack_int(block, i, 5)  # 6.3 dynamic table size update
    if i >= len(block):
        die("HPACK: no header field in the block")
    b = block[i]
    if b & 0x80:
        die("HPACK: authorization came out as an indexed field (6.1), not a literal")
    if b & 0x40:
        kind, prefix = "with incremental indexing", 6
    elif b & 0x10:
        kind, prefix = "never indexed", 4
    else:
        kind, prefix = "without indexing", 4
    idx, i = hpack_int(block, i, prefix)
    if idx != HPACK_AUTHORIZATION:
        die(f"HPACK: literal field ({kind}) with name index {idx}, "
            f"not {HPACK_AUTHORIZATION} (authorization)")
    if i >= len(block):
        die("HPACK: header block truncated before the value")
    huffman = bool(block[i] & 0x80)
    n, i = hpack_int(block, i, 7)
    if i + n != len(block):
        die(f"HPACK: value literal of {n} bytes at {i} does not end the {len(block)}-byte block")
    return huffman, block[i:], kind


def huffman_bits(s):
    """The length in bits of the Huffman code (RFC 7541 Appendix B) of s,
    from libnghttp2 itself: s repeated 8 times is coded in exactly 8x as
    many bits, a whole number of bytes without EOS padding (libnghttp2
    picks Huffman whenever it is the shorter, which it is for every s used
    here)."""
    huffman, v, _ = hpack_value_literal(hpack_deflate(b"authorization", s * 8))
    if not huffman:
        die("HPACK: libnghttp2 did not Huffman-code a string it must: cannot place the interior slice")
    return len(v)


def bit_field(data, a, b):
    """Bits [a, b) of data, most significant bit first, as an int."""
    return (int.from_bytes(data, "big") >> (8 * len(data) - b)) & ((1 << (b - a)) - 1)


def hpack_needles(basic):
    """The HPACK forms of the value "Basic " + basic (base64 of
    user:password) that curl hands libnghttp2 as the authorization header
    of an HTTP/2 request: the value's string literal bytes as libnghttp2
    encodes them, and a byte-aligned slice of them that lies within the
    base64 part. [] when libnghttp2 sends the value raw (H bit 0): then its
    bytes are "Basic ..." (password/basic-value) already."""
    value = b"Basic " + basic
    block = hpack_deflate(b"authorization", value)
    # cheap sanity check: libnghttp2's own inflater gives the header back
    if hpack_inflate(block) != [(b"authorization", value)]:
        die("HPACK: the deflated authorization header does not inflate back to itself")
    huffman, lit, _ = hpack_value_literal(block)
    # with NGHTTP2_NV_FLAG_NO_INDEX: the same bytes, as libnghttp2 never
    # indexes authorization anyway (a literal never indexed, 0x1f 0x08);
    # a needle of its own only should that ever change
    huffman_ni, lit_ni, _ = hpack_value_literal(
        hpack_deflate(b"authorization", value, NGHTTP2_NV_FLAG_NO_INDEX))
    if not huffman:
        return []  # raw: the bytes are "Basic ..." (password/basic-value)
    # H bit 1: the bytes are the Huffman code of "Basic <base64>" (EOS-padded)
    n = [("password/hpack(basic-value)", lit)]
    if lit_ni != lit and huffman_ni:
        n.append(("password/hpack(basic-value,no-index)", lit_ni))
    # The interior slice: the Huffman code of "Basic " ends mid-byte (33
    # bits), so the base64 part starts at a bit offset; from the first byte
    # that starts within it to the last full byte before the '=' padding
    # and the EOS padding.
    core = basic.rstrip(b"=")
    npad = len(basic) - len(core)
    pre_bits, eq_bits, all_bits = huffman_bits(b"Basic "), huffman_bits(b"="), huffman_bits(value)
    core_end = all_bits - npad * eq_bits
    # the bit boundaries are right: the code starts with that of "Basic ",
    # ends with that of the padding, then EOS padding (all ones)
    pre_code = hpack_value_literal(hpack_deflate(b"authorization", b"Basic " * 8))[1]
    eq_code = hpack_value_literal(hpack_deflate(b"authorization", b"=" * 8))[1]
    if ((all_bits + 7) // 8 != len(lit)
            or bit_field(lit, 0, pre_bits) != bit_field(pre_code, 0, pre_bits)
            or bit_field(lit, core_end, all_bits) != bit_field(eq_code, 0, npad * eq_bits)
            or bit_field(lit, all_bits, 8 * len(lit)) != (1 << (8 * len(lit) - all_bits)) - 1):
        die("HPACK: the Huffman code of the authorization value does not split as expected")
    interior = lit[(pre_bits + 7) // 8:core_end // 8]
    if len(interior) >= 16:
        n.append(("password/hpack-interior", interior))
    return n


def needles():
    """(name, bytes) for every encoding in which a secret crossed a boundary."""
    user = env("HK_MEM_USER").encode()
    pw = env("HK_MEM_PASS").encode()
    dk = dk_bytes()
    n = [("password/raw", pw)]
    n += [("password/" + k, v) for k, v in b64_variants(pw)]
    js = json_str(env("HK_MEM_PASS")).encode()
    n.append(("password/json-string", js))  # with its quotes, as in the body
    n.append(("password/json-member", b'"password":' + js))
    ascii_js = json.dumps(env("HK_MEM_PASS")).encode()
    if ascii_js != js:
        n.append(("password/json-string-ascii", ascii_js))
    userpw = user + b":" + pw
    n.append(("password/user:password", userpw))
    basic = base64.b64encode(userpw)
    n.append(("password/basic-b64(user:password)", basic))
    n.append(("password/basic-value", b"Basic " + basic))
    n.append(("password/authorization-line", b"Authorization: Basic " + basic))
    n += hpack_needles(basic)  # the same header in curl's HTTP/2 frames
    n.append(("device-key/raw", dk))
    n += [("device-key/" + k, v) for k, v in b64_variants(dk)]
    dk_sent = env("HK_MEM_DK").encode()
    n.append(("device-key/json-member", b'"device_key":' + json_str(env("HK_MEM_DK")).encode()))
    if dk_sent not in [v for _, v in b64_variants(dk)]:
        n.append(("device-key/as-sent", dk_sent))
    n.append(("device-key/hex", dk.hex().encode()))
    n.append(("device-key/HEX", dk.hex().upper().encode()))
    for name, v in n:
        if len(v) < 8:
            die(f"needle {name} is shorter than 8 bytes: accidental matches are possible")
    return n


class Counter:
    def __init__(self, label):
        self.label = label
        self.needles = needles()
        self.maxlen = max(len(v) for _, v in self.needles)
        self.counts = {name: 0 for name, _ in self.needles}
        self.hits = []  # (name, where, context)

    def scan(self, data, base, where, skip_end=0):
        """Counts every occurrence (overlapping ones too) in data, whose
        first byte is at address/offset base; occurrences that end within
        data[:skip_end] were counted with the previous chunk."""
        for name, v in self.needles:
            i = data.find(v)
            while i >= 0:
                if i + len(v) > skip_end:
                    self.counts[name] += 1
                    self.hits.append((name, where(base + i), context(data, i, len(v))))
                i = data.find(v, i + 1)

    def report(self, table=True, contexts=True, out=sys.stdout):
        """The count of every needle (always when table, else only when
        something was found), then every hit with where it is."""
        total = sum(self.counts.values())
        if not table and total == 0:
            print(f"[{self.label}] 0 hits for all {len(self.needles)} needles", file=out)
            return 0
        print(f"[{self.label}] needle counts ({total} hit(s) in all):", file=out)
        w = max(len(k) for k in self.counts)
        for name, _ in self.needles:
            print(f"  {name:<{w}}  {self.counts[name]}", file=out)
        if not contexts:
            # the expected copies of an active relay: per mapping, which needles
            groups = {}
            for name, where, _ in self.hits:
                m = where.split(" in ", 1)[1][:-1] if " in " in where else where  # drop "...)"
                groups.setdefault(m, []).append(name)
            for m, names in groups.items():
                kinds = sorted(set(n.split("/", 1)[1] for n in names))
                print(f"  {len(names)} hit(s) in {m}: {', '.join(kinds)}", file=out)
            return total
        shown = 0
        for name, where, ctx in self.hits:
            if shown == 200:
                print(f"  ... {len(self.hits) - shown} more hit(s)", file=out)
                break
            print(f"  HIT [{self.label}] {name} at {where}", file=out)
            print(f"      context: {ctx}", file=out)
            shown += 1
        return total


def context(data, i, n, radius=48):
    a, b = max(0, i - radius), min(len(data), i + n + radius)
    def esc(bs):
        return "".join(chr(c) if 32 <= c < 127 and c != 92 else f"\\x{c:02x}" for c in bs)
    return esc(data[a:i]) + "<NEEDLE>" + esc(data[i + n:b])


def hint(parsed, k):
    """What a mapping probably is, to say where a copy lives."""
    start, end, perms, path = parsed[k]
    if path == "[heap]":
        return " = glibc malloc's main arena"
    if path == "[stack]":
        return " = the main thread's stack"
    if path != "[anon]":
        return ""
    prev = parsed[k - 1] if k > 0 else None
    nxt = parsed[k + 1] if k + 1 < len(parsed) else None
    guard_before = prev is not None and prev[1] == start and prev[2].startswith("---")
    guard_after = nxt is not None and nxt[0] == end and nxt[2].startswith("---")
    if guard_before and guard_after:
        if end - start >= 1 << 20:
            return " = between guard pages, large: OpenSSL's secure heap (secret_new)"
        return " = between guard pages: a sodium_malloc block (secret_new_isolated)"
    if prev is not None and prev[1] == start and prev[3] not in ("[anon]", "[heap]") \
            and prev[3].startswith("/") and "w" in prev[2]:
        return f" = .bss of {os.path.basename(prev[3])}"
    if guard_before and end - start >= 1 << 20:
        return " = after a guard page: a thread stack"
    if perms.startswith("---"):
        return " = inaccessible (guard or reserved)"
    return " = anonymous: large malloc blocks (mmap), a thread arena, or a library's own mapping"


MAPS_RE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) (\S+) (\d+)\s*(.*)$")


def scan_mem(label, pid, mode):
    c = Counter(label)
    try:
        with open(f"/proc/{pid}/maps") as f:
            maps = f.read().splitlines()
    except OSError as e:
        die(f"cannot read /proc/{pid}/maps: {e}")
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    except OSError as e:
        die(f"cannot open /proc/{pid}/mem: {e} (needs root / CAP_SYS_PTRACE)")
    ranges = read_bytes = 0
    skipped = []
    heap_read = False
    ov = c.maxlen - 1
    parsed = []
    for line in maps:
        m = MAPS_RE.match(line)
        if m:
            parsed.append((int(m.group(1), 16), int(m.group(2), 16), m.group(3),
                           m.group(7) or "[anon]"))
    for k, (start, end, perms, path) in enumerate(parsed):
        if start >= 1 << 63 or path in ("[vvar]", "[vvar_vclock]", "[vsyscall]"):
            skipped.append(f"{start:x}-{end:x} {perms} {path} (kernel page)")
            continue
        desc = f"{start:x}-{end:x} {perms} {path}{hint(parsed, k)}"

        def where(addr, desc=desc, start=start):
            return f"0x{addr:x} (+0x{addr - start:x} in {desc})"

        ranges += 1
        pos, tail, ok = start, b"", True
        while pos < end:
            n = min(CHUNK, end - pos)
            try:
                chunk = os.pread(fd, n, pos)
            except OSError as e:
                # PROT_NONE without VM_MAYREAD, a range that went away meanwhile
                skipped.append(f"{desc} at +0x{pos - start:x}: {e.strerror}")
                ok = False
                break
            if not chunk:
                skipped.append(f"{desc} at +0x{pos - start:x}: short read")
                ok = False
                break
            data = tail + chunk
            c.scan(data, pos - len(tail), where, len(tail))
            read_bytes += len(chunk)
            tail = data[-ov:] if ov > 0 else b""
            pos += len(chunk)
        if ok and path == "[heap]":
            heap_read = True
    os.close(fd)
    print(f"[{label}] pid {pid}: {ranges} range(s), {read_bytes} bytes read, "
          f"{len(skipped)} range(s) skipped")
    for s in skipped:
        print(f"  skipped: {s}")
    if read_bytes == 0 or not heap_read:
        die(f"[{label}] the scan read nothing usable (heap read: {heap_read}): the scanner is broken")
    # while active the copies are expected: where they are, not what is around them
    total = c.report(table=mode != "selftest", contexts=mode == "after")
    if mode == "selftest":
        missing = [name for name, _ in c.needles if c.counts[name] == 0]
        if missing:
            print(f"FAIL [{label}]: the scanner does not find these needles in a process "
                  f"that holds them: {', '.join(missing)}: the scanner is broken")
            return 1
        print(f"[{label}] " + " ".join(f"{c.counts[n]}" for n, _ in c.needles))
        return 0
    if mode == "active":
        if c.counts["password/raw"] == 0:
            print(f"FAIL [{label}]: the password is NOT in the memory of the active relay, "
                  "which is syncing with it: the scanner is broken")
            return 1
        print(f"[{label}] sanity check passed: the active relay's memory holds the password "
              f"({c.counts['password/raw']} raw copies); the scanner works")
        return 0
    if total:
        print(f"FAIL [{label}]: {total} copy(ies) of the password or device key in halfkeyd's memory")
        return 1
    return 0


def scan_files(label, paths):
    c = Counter(label)
    files = []
    for p in paths:
        if os.path.isdir(p):
            for root, _, names in os.walk(p):
                files += [os.path.join(root, n) for n in sorted(names)]
        elif os.path.exists(p):
            files.append(p)
    nbytes = 0
    for f in files:
        if not os.path.isfile(f):
            continue  # sockets and the like
        try:
            with open(f, "rb") as fh:
                data = fh.read()
        except OSError as e:
            die(f"cannot read {f}: {e}")
        nbytes += len(data)
        c.scan(data, 0, lambda off, f=f: f"{f} offset {off}")
    print(f"[{label}] {len(files)} file(s), {nbytes} bytes: "
          + ", ".join(os.path.basename(f) for f in files))
    total = c.report(table=False)
    if total:
        print(f"FAIL [{label}]: {total} copy(ies) of the password or device key in files")
        return 1
    return 0


def scan_stdin(label, expect=None):
    c = Counter(label)
    data = sys.stdin.buffer.read()
    c.scan(data, 0, lambda off: f"stdin offset {off}")
    print(f"[{label}] {len(data)} bytes")
    if expect is not None:
        unknown = [n for n in expect if n not in c.counts]
        if unknown:
            die(f"unknown needle(s): {', '.join(unknown)}")
        missing = [n for n in expect if c.counts[n] == 0]
        if missing:
            print(f"FAIL [{label}]: not found: {', '.join(missing)}: the needles do not "
                  "match what the test sends")
            return 1
        print(f"[{label}] found as expected: "
              + ", ".join(f"{n} {c.counts[n]}" for n in expect))
        return 0
    total = c.report(table=False)
    if total:
        print(f"FAIL [{label}]: {total} copy(ies) of the password or device key")
        return 1
    return 0


def probe():
    """The scanner's positive control: a process that holds every needle,
    each once in a 9 MiB buffer (its own mapping, so reads of it are
    chunked) at scattered offsets; prints its pid, then waits for stdin to
    close."""
    buf = bytearray(9 << 20)
    pos = 1000
    for i, (_, v) in enumerate(needles()):
        buf[pos:pos + len(v)] = v
        pos += len(v) + 4093 + 977 * i  # scattered, straddling any page or read size
    assert pos < len(buf)
    print(os.getpid(), flush=True)
    sys.stdin.read()
    return 0 if buf else 1


def main(argv):
    if len(argv) < 2:
        die("usage: see the top of memscan.py")
    cmd = argv[1]
    if cmd == "newkey" and len(argv) == 2:
        print(base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode())
        return 0
    if cmd == "register-body" and len(argv) == 4:
        sys.stdout.write(register_body(argv[2], argv[3]))
        return 0
    if cmd == "unlock-body" and len(argv) == 2:
        sys.stdout.write(unlock_body())
        return 0
    if cmd == "needles" and len(argv) == 2:
        for name, v in needles():
            print(f"{name} {len(v)} bytes")
        return 0
    if cmd == "mem" and len(argv) in (4, 5):
        modes = {None: "after", "--require-password": "active", "--expect-all": "selftest"}
        opt = argv[4] if len(argv) == 5 else None
        if opt not in modes:
            die("usage: mem LABEL PID [--require-password | --expect-all]")
        return scan_mem(argv[2], int(argv[3]), modes[opt])
    if cmd == "probe" and len(argv) == 2:
        return probe()
    if cmd == "files" and len(argv) >= 3:
        return scan_files(argv[2], argv[3:])
    if cmd == "stdin" and len(argv) == 3:
        return scan_stdin(argv[2])
    if cmd == "stdin" and len(argv) == 5 and argv[3] == "--expect":
        return scan_stdin(argv[2], argv[4].split(","))
    die("usage: see the top of memscan.py")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
