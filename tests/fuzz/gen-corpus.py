#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>).

The seeds are protobuf records written out by hand (no protobuf runtime needed):
valid encodings of every operation and field, and the malformed shapes a decoder
must survive. Run it again after changing proto/sendfiled.proto; files found by
the fuzzer (named by their hash) live beside these and are left alone.

    tests/fuzz/gen-corpus.py [OUTDIR]
"""
import os
import sys

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5


def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wtype):
    return varint(field << 3 | wtype)


def vfield(field, v):
    return key(field, VARINT) + varint(v)


def lfield(field, payload):
    return key(field, LEN) + varint(len(payload)) + payload


# Request: id=1, sendfile=2, cancel=3, ping=4.
# Sendfile: offset=1, count=2, fallback=3, deadline_ms=4, rate_limit_bps=5,
#           close_when_done=6.  Cancel: target=1.
def sendfile(**f):
    names = ["offset", "count", "fallback", "deadline_ms", "rate_limit_bps", "close_when_done"]
    return b"".join(vfield(names.index(n) + 1, v) for n, v in f.items())


def request(rid, op=None, body=b""):
    out = vfield(1, rid) if rid is not None else b""
    if op is not None:
        out += lfield({"sendfile": 2, "cancel": 3, "ping": 4}[op], body)
    return out


UNKNOWN = (vfield(15, 150) + key(9, I64) + bytes(range(8)) + lfield(100, b"abc")
           + key(10, I32) + b"\x01\x02\x03\x04")

REQUESTS = {
    "sendfile-full": request(1, "sendfile", sendfile(offset=4096, count=65536, fallback=0)),
    "sendfile-to-eof": request(2, "sendfile"),
    "sendfile-fallback-true": request(3, "sendfile", sendfile(fallback=1)),
    "sendfile-count-zero": request(4, "sendfile", sendfile(count=0)),
    "sendfile-offset-2-63": request(5, "sendfile", sendfile(offset=1 << 63)),
    "sendfile-end-overflows": request((1 << 64) - 1, "sendfile",
                                      sendfile(offset=(1 << 63) - 1, count=1)),
    "sendfile-count-max": request(6, "sendfile", sendfile(count=(1 << 64) - 1)),
    "sendfile-reserved": request(7, "sendfile",
                                 sendfile(deadline_ms=100, rate_limit_bps=1000,
                                          close_when_done=1)),
    "sendfile-reserved-zero": request(8, "sendfile",
                                      sendfile(deadline_ms=0, rate_limit_bps=0,
                                               close_when_done=0)),
    "cancel": request(9, "cancel", vfield(1, 8)),
    "ping": request(10, "ping"),
    "ping-no-id": request(None, "ping"),
    "empty": b"",
    "unknown-fields": vfield(1, 11) + UNKNOWN + lfield(2, sendfile(offset=1) + UNKNOWN),
    "unknown-op": vfield(1, 12) + lfield(20, b""),
    "oneof-last-wins": request(13, "sendfile", sendfile(count=5)) + lfield(4, b"")
    + lfield(3, vfield(1, 2)),
    "id-twice": vfield(1, 1) + vfield(1, 2) + lfield(4, b""),
    "huge-field-number": vfield(1, 14) + key((1 << 29) - 1, VARINT) + b"\x01",
    "field-number-too-big": vfield(1, 15) + varint(1 << 32 | 0) + b"\x01",
    "field-number-zero": b"\x00\x01" + vfield(1, 16),
    "truncated-varint": b"\x08\xff\xff",
    "truncated-key": b"\x08\x01\x92",
    "eleven-byte-varint": b"\x08" + b"\xff" * 10 + b"\x01",
    "overlong-length": vfield(1, 17) + key(2, LEN) + b"\xff\xff\xff\xff\x0f",
    "length-past-end": vfield(1, 18) + key(2, LEN) + b"\x05\x08",
    "nested-garbage": vfield(1, 19) + lfield(2, b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),
    "nested-wrong-type": vfield(1, 20) + lfield(2, lfield(1, b"x")),
    "id-wrong-type": lfield(1, b"\x01\x02") + lfield(4, b""),
    "group": vfield(1, 21) + key(5, SGROUP) + vfield(1, 1) + key(5, EGROUP),
    "wire-type-7": vfield(1, 22) + bytes([2 << 3 | 7]) + b"\x00",
    "deep-nesting": vfield(1, 23) + lfield(2, lfield(2, lfield(2, lfield(2, b"")))),
}

# Response: id=1, status=2, error=3, message=4, bytes_sent=5, final_offset=6,
#           method=7, short_source=8.
def response(**f):
    order = ["id", "status", "error", "message", "bytes_sent", "final_offset", "method",
             "short_source"]
    out = b""
    for n, v in f.items():
        field = order.index(n) + 1
        out += lfield(field, v) if isinstance(v, bytes) else vfield(field, v)
    return out


RESPONSES = {
    "ok-full": response(id=1, status=0, bytes_sent=1 << 20, final_offset=(1 << 20) + 4096,
                        method=1),
    "ok-short-source": response(id=2, bytes_sent=100, final_offset=100, method=1,
                                short_source=1),
    "peer-closed": response(id=3, status=3, error=32,
                            message=b"the destination's peer closed the connection",
                            bytes_sent=65536, final_offset=65536, method=1),
    "not-available": response(id=4, status=1, error=22, message=b"no zero-copy method"),
    "empty": b"",
    "message-long": response(id=5, status=4, message=b"m" * 1000),
    "message-255": response(id=6, message=b"q" * 255),
    "message-nul": response(id=7, message=b"abc\x00def"),
    "message-utf8-at-limit": response(id=8, message=b"a" * 254 + "\u00e9\u00e9".encode()),
    "message-invalid-utf8": response(id=9, message=b"\xff\xfe\xc3"),
    "error-negative": response(id=10, status=4, error=(1 << 64) - 1),
    "status-unknown": response(id=11, status=99, method=42),
    "max-values": response(id=(1 << 64) - 1, bytes_sent=(1 << 64) - 1,
                           final_offset=(1 << 64) - 1, short_source=(1 << 64) - 1),
    "duplicate-fields": response(id=1, status=4) + vfield(1, 2) + vfield(2, 0),
    "unknown-fields": response(id=12) + UNKNOWN,
    "huge-field-number": response(id=13) + key((1 << 29) - 1, LEN) + b"\x00",
    "truncated-varint": b"\x08\x80\x80",
    "overlong-length": response(id=14) + key(4, LEN) + b"\xff\xff\xff\xff\x0f",
    "length-past-end": response(id=15) + key(4, LEN) + b"\x10abc",
    "status-wrong-type": response(id=16) + lfield(2, b"\x00"),
    "eleven-byte-varint": b"\x28" + b"\x80" * 10 + b"\x01",
    "wire-type-6": response(id=17) + bytes([3 << 3 | 6]),
}


# fuzz-fdmsg's input (see fuzz-fdmsg.c): flags (1 MSG_TRUNC, 2 MSG_CTRUNC),
# data length, cut (>= 192: cut the control buffer by cut & 63 bytes), then
# per control message kind (0-2 SCM_RIGHTS, 3 SCM_CREDENTIALS, 4 SOL_SOCKET of
# type "slots", 5 another level), slots, cmsg_len mode (< 128 exact, < 192
# short by mode & 63, < 255 long by mode & 63, 255 absurd).
def fdmsg(flags=0, n=20, cut=0, *cmsgs):
    return bytes([flags, n, cut]) + b"".join(bytes(c) for c in cmsgs)


FDMSG = {
    "eof": fdmsg(0, 0),
    "data-only": fdmsg(0, 20),
    "two-fds": fdmsg(0, 20, 0, (0, 2, 0)),
    "one-fd": fdmsg(0, 20, 0, (0, 1, 0)),
    "three-fds": fdmsg(0, 20, 0, (0, 3, 0)),
    "many-fds": fdmsg(0, 20, 0, (0, 23, 0)),
    "fds-no-data": fdmsg(0, 0, 0, (0, 2, 0)),
    "empty-rights": fdmsg(0, 20, 0, (0, 0, 0)),
    "two-rights": fdmsg(0, 20, 0, (0, 1, 0), (1, 1, 0)),
    "credentials": fdmsg(0, 20, 0, (3, 0, 0)),
    "rights-and-credentials": fdmsg(0, 20, 0, (0, 2, 0), (3, 0, 0)),
    "unknown-type": fdmsg(0, 20, 0, (4, 7, 0)),
    "other-level": fdmsg(0, 20, 0, (5, 2, 0)),
    "ctrunc": fdmsg(2, 20, 0, (0, 2, 0)),
    "trunc": fdmsg(1, 80, 0, (0, 2, 0)),
    "ctrunc-cut": fdmsg(2, 20, 200, (0, 16, 0)),
    "short-len": fdmsg(0, 20, 0, (0, 2, 130)),
    "len-below-header": fdmsg(0, 20, 0, (0, 0, 140)),
    "long-len": fdmsg(0, 20, 0, (0, 2, 200)),
    "absurd-len": fdmsg(0, 20, 0, (0, 2, 255)),
    "cut-mid-header": fdmsg(0, 20, 250, (0, 2, 0), (0, 0, 0)),
}


# Control requests (proto/control.proto): ControlRequest's oneof op.
CTL = {
    "status": lfield(1, b""),
    "stats": lfield(2, b""),
    "list": lfield(3, b""),
    "cancel-live": lfield(4, vfield(1, 2)),
    "cancel-unknown": lfield(4, vfield(1, 99)),
    "cancel-no-id": lfield(4, b""),
    "drain": lfield(5, b""),
    "log-level-debug": lfield(6, lfield(1, b"debug")),
    "log-level-number": lfield(6, lfield(1, b"3")),
    "log-level-bad": lfield(6, lfield(1, b"loud")),
    "log-level-missing": lfield(6, b""),
    "limits": lfield(7, b""),
    "empty": b"",
    "unknown-op": lfield(8, b""),
    "two-ops": lfield(1, b"") + lfield(4, vfield(1, 1)),
    "truncated": lfield(4, vfield(1, 2))[:-1],
    "wrong-wire-type": vfield(1, 1),
}


# Configuration files (docs/sendfiled.conf.5).
CONF = {
    "full": b"""# every key
socket = /run/sendfiled/sendfiled.sock
socket_mode = 0660
socket_group = 0
control_socket = /run/sendfiled/control.sock
events_socket = /run/sendfiled/events.sock
control_mode = 0600
control_probe_ms = 1000
max_connections = 256
max_in_flight = 1024
max_in_flight_per_uid = 4096
chunk_size = 2M
drain_timeout_ms = 10000
workers = 8
allow_uids = 0 1000
allow_gids = 0, 100
log_level = info
""",
    "comments": b"# only comments\n\n   # indented\nworkers = 2 # trailing\n",
    "crlf": b"workers = 3\r\nlog_level = debug\r\n",
    "names": b"allow_uids = root\nallow_gids = root\nsocket_group = root\n",
    "errors": b"workers\n= 4\nWorkers = 4\nmax-connections = 1\nchunk_size = 1K\n"
              b"socket_mode = 0999\nworkers = -1\nlog_level = loud\n",
    "sizes": b"chunk_size = 4096\nchunk_size = 1G\nchunk_size = 18446744073709551616\n",
    "nul-byte": b"workers = 4\x00\nworkers = 5\n",
    "no-newline": b"max_connections = 1",
    "empty-values": b"socket_group =\ncontrol_socket =\nallow_uids =\n",
    "long-path": b"socket = /" + b"a" * 200 + b"\n",
    # Printed back as "socket = #sock", which reads as an empty value.
    "path-starting-with-hash": b"socket =#sock\n",
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    targets = (("request", REQUESTS), ("response", RESPONSES), ("fdmsg", FDMSG), ("ctl", CTL),
               ("conf", CONF))
    for sub, seeds in targets:
        d = os.path.join(outdir, sub)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, "seed-" + name), "wb") as f:
                f.write(data)
    print(", ".join(f"{len(seeds)} {sub}" for sub, seeds in targets) + f" seeds in {outdir}")


if __name__ == "__main__":
    main()
