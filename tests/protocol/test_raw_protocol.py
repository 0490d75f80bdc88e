#!/usr/bin/env python3
"""A client of the sendfiled data-plane protocol written from docs/PROTOCOL.md and
proto/sendfiled.proto alone, with the Python standard library only (the protobuf
encoding is done by hand), and a test suite that runs it against a real daemon.

The daemon is $SENDFILED_BIN, started on a socket in a temporary directory. Every
transfer goes to a real TCP loopback receiver (a thread) from a real file, pipe or
/proc file. After each case the source's file position is compared with the reply's
final_offset, and the daemon's descriptor count (/proc/PID/fd) must come back to
what it was before the case.

Output: one line per test, then "N passed, N failed"; the exit status is 1 when a
test failed.
"""

import array
import errno
import hashlib
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

MAX_RECORD = 4096

# ---------------------------------------------------------------------------
# Protobuf wire format, by hand
# ---------------------------------------------------------------------------

WT_VARINT, WT_I64, WT_LEN, WT_I32 = 0, 1, 2, 5
U64 = (1 << 64) - 1


def enc_varint(value):
    if value < 0:
        value += 1 << 64  # negative int32/int64: ten-byte two's complement
    if not 0 <= value <= U64:
        raise ValueError("varint out of range")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def dec_varint(buf, pos):
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & U64, pos
        shift += 7
        if shift >= 70:
            raise ValueError("varint longer than ten bytes")


def tag(num, wire_type):
    return enc_varint(num << 3 | wire_type)


def f_varint(num, value):
    return tag(num, WT_VARINT) + enc_varint(value)


def f_bytes(num, payload):
    return tag(num, WT_LEN) + enc_varint(len(payload)) + payload


def f_fixed64(num, value):
    return tag(num, WT_I64) + value.to_bytes(8, "little")


def f_fixed32(num, value):
    return tag(num, WT_I32) + value.to_bytes(4, "little")


def parse_fields(buf):
    """[(number, wire type, value)] of one message; ValueError when it does not parse."""
    pos = 0
    fields = []
    while pos < len(buf):
        key, pos = dec_varint(buf, pos)
        num, wire_type = key >> 3, key & 7
        if num == 0:
            raise ValueError("field number 0")
        if wire_type == WT_VARINT:
            value, pos = dec_varint(buf, pos)
        elif wire_type == WT_I64:
            if pos + 8 > len(buf):
                raise ValueError("truncated fixed64")
            value = int.from_bytes(buf[pos:pos + 8], "little")
            pos += 8
        elif wire_type == WT_LEN:
            length, pos = dec_varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated length-delimited field")
            value = bytes(buf[pos:pos + length])
            pos += length
        elif wire_type == WT_I32:
            if pos + 4 > len(buf):
                raise ValueError("truncated fixed32")
            value = int.from_bytes(buf[pos:pos + 4], "little")
            pos += 4
        else:
            raise ValueError(f"wire type {wire_type}")
        fields.append((num, wire_type, value))
    return fields


# --- sendfiled.v1 messages -------------------------------------------------

STATUS = ["OK", "NOT_AVAILABLE", "INVALID_ARGUMENT", "PEER_CLOSED", "IO_ERROR",
          "CANCELLED", "LIMIT", "PROTOCOL", "SHUTTING_DOWN", "PERMISSION_DENIED",
          "TIMED_OUT"]
(OK, NOT_AVAILABLE, INVALID_ARGUMENT, PEER_CLOSED, IO_ERROR, CANCELLED, LIMIT,
 PROTOCOL, SHUTTING_DOWN, PERMISSION_DENIED, TIMED_OUT) = range(11)
# Response.timeout: which limit ended a TIMED_OUT transfer.
TIMEOUT_NONE, TIMEOUT_DEADLINE, TIMEOUT_IDLE = range(3)
# Feature values, as a Ping's reply lists them.
FEATURE_DEADLINE, FEATURE_RATE_LIMIT, FEATURE_CLOSE_WHEN_DONE, FEATURE_IDLE_TIMEOUT = 1, 2, 3, 4
METHOD = ["METHOD_NONE", "METHOD_SENDFILE", "METHOD_SPLICE", "METHOD_READ_WRITE"]
METHOD_NONE, METHOD_SENDFILE, METHOD_SPLICE, METHOD_READ_WRITE = range(4)


def msg_sendfile(offset=None, count=None, fallback=None, extra=b""):
    """A Sendfile message: only the fields given are present."""
    out = b""
    if offset is not None:
        out += f_varint(1, offset)
    if count is not None:
        out += f_varint(2, count)
    if fallback is not None:
        out += f_varint(3, 1 if fallback else 0)
    return out + extra


def req_sendfile(rid, extra=b"", **kw):
    return f_varint(1, rid) + f_bytes(2, msg_sendfile(**kw)) + extra


def req_cancel(rid, target):
    return f_varint(1, rid) + f_bytes(3, f_varint(1, target))


def req_ping(rid):
    return f_varint(1, rid) + f_bytes(4, b"")


class PingInfo:
    """A Ping's reply's PingInfo: protocol_version, daemon_version, features."""

    def __init__(self, raw):
        self.protocol_version = 0
        self.daemon_version = ""
        self.features = []
        for num, wire_type, value in parse_fields(bytes(raw)):
            if num == 1 and wire_type == WT_VARINT:
                self.protocol_version = value
            elif num == 2 and wire_type == WT_LEN:
                self.daemon_version = value.decode("utf-8", "replace")
            elif num == 3 and wire_type == WT_VARINT:
                self.features.append(value)
            elif num == 3 and wire_type == WT_LEN:  # packed
                pos = 0
                while pos < len(value):
                    v, pos = dec_varint(value, pos)
                    self.features.append(v)


class Response:
    """A decoded Response; `present` holds the names of the fields on the wire."""

    NAMES = {1: "id", 2: "status", 3: "error", 4: "message", 5: "bytes_sent",
             6: "final_offset", 7: "method", 8: "short_source", 9: "ping",
             10: "timeout", 11: "transfer_id"}

    def __init__(self, raw):
        self.raw = bytes(raw)
        self.id = 0
        self.status = OK
        self.error = 0
        self.message = ""
        self.bytes_sent = 0
        self.final_offset = 0
        self.method = METHOD_NONE
        self.short_source = False
        self.timeout = TIMEOUT_NONE
        self.ping = None
        self.transfer_id = 0
        self.present = set()
        self.unknown = []
        for num, wire_type, value in parse_fields(self.raw):
            name = self.NAMES.get(num)
            expected = WT_LEN if num in (4, 9) else WT_VARINT
            if name is None or wire_type != expected:
                self.unknown.append((num, wire_type))
                continue
            self.present.add(name)
            if name == "error":  # int32: sign-extended to 64 bits on the wire
                value = value - (1 << 64) if value >= 1 << 63 else value
                value = ((value + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
            elif name == "message":
                value = value.decode("utf-8", "replace")
            elif name == "short_source":
                value = bool(value)
            elif name == "ping":
                value = PingInfo(value)
            setattr(self, name, value)  # last one wins, as protobuf says

    def __repr__(self):
        status = STATUS[self.status] if self.status < len(STATUS) else self.status
        method = METHOD[self.method] if self.method < len(METHOD) else self.method
        err = errno.errorcode.get(self.error, self.error)
        return (f"<id={self.id} {status} error={err} sent={self.bytes_sent} "
                f"final={self.final_offset} {method} short={self.short_source} "
                f"msg={self.message!r}>")


# ---------------------------------------------------------------------------
# Client connection
# ---------------------------------------------------------------------------

ALL_REPLIES = []


class Closed(Exception):
    pass


class Conn:
    """One data-plane connection. Replies are kept by id, in arrival order."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX,
                                  socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        self.sock.connect(path)
        self.replies = {}
        self.arrival = []
        self.eof = False
        self.stray_fds = 0

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, record, fds=()):
        anc = []
        if fds:
            anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
        return self.sock.sendmsg([record], anc)

    def pump(self, timeout):
        """Receive at most one record; False on timeout. Sets eof on end of file."""
        if self.eof:
            raise Closed("connection already closed by the daemon")
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return False
        try:
            data, anc, flags, _ = self.sock.recvmsg(
                MAX_RECORD, socket.CMSG_SPACE(16 * 4), socket.MSG_CMSG_CLOEXEC)
        except ConnectionResetError:
            data, anc, flags = b"", [], 0
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[:len(payload) - len(payload) % 4])
                for fd in fds:
                    os.close(fd)
                    self.stray_fds += 1
        if flags & socket.MSG_TRUNC:
            raise AssertionError("reply longer than 4096 bytes")
        if not data:
            self.eof = True
            return True
        resp = Response(data)
        ALL_REPLIES.append(resp)
        self.replies.setdefault(resp.id, []).append(resp)
        self.arrival.append(resp.id)
        return True

    def wait(self, rid, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not self.replies.get(rid):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no reply with id {rid} within {timeout} s")
            self.pump(left)
            if self.eof and not self.replies.get(rid):
                raise Closed(f"connection closed while waiting for id {rid}")
        return self.replies[rid].pop(0)

    def wait_eof(self, timeout=5.0):
        """True when the daemon closes the connection within timeout."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.pump(left)
        return True


# ---------------------------------------------------------------------------
# TCP loopback receivers
# ---------------------------------------------------------------------------

class Receiver(threading.Thread):
    """A TCP listener on 127.0.0.1 and one connected client socket, `dst`, to give
    to the daemon as destination. The thread reads everything until end of file,
    hashing it; with read=False it does not read until release() is called."""

    def __init__(self, read=True, small_buffers=False, keep=False):
        super().__init__(daemon=True)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if small_buffers:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.dst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if small_buffers:
            self.dst.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        self.dst.connect(self.listener.getsockname())
        self.go = threading.Event()
        if read:
            self.go.set()
        self.keep = keep
        self.data = bytearray()
        self.nbytes = 0
        self.sha = hashlib.sha256()
        self.error = None
        self.done = threading.Event()
        self.start()

    def release(self):
        self.go.set()

    def close_dst(self):
        self.dst.close()

    def run(self):
        try:
            conn, _ = self.listener.accept()
            self.listener.close()
            with conn:
                self.go.wait(30)
                conn.settimeout(8)
                while True:
                    chunk = conn.recv(1 << 20)
                    if not chunk:
                        break
                    self.nbytes += len(chunk)
                    self.sha.update(chunk)
                    if self.keep:
                        self.data += chunk
        except Exception as exc:  # reported by result()
            self.error = exc
        finally:
            self.done.set()

    def result(self, timeout=10.0):
        """(bytes received, sha256 hex) once the receiver saw end of file."""
        self.go.set()
        if not self.done.wait(timeout):
            raise AssertionError("receiver saw no end of file")
        if self.error:
            raise AssertionError(f"receiver failed: {self.error!r}")
        return self.nbytes, self.sha.hexdigest()


# ---------------------------------------------------------------------------
# The daemon
# ---------------------------------------------------------------------------

class Daemon:
    def __init__(self, binary, workdir, extra_args=()):
        os.makedirs(workdir, exist_ok=True)
        self.path = os.path.join(workdir, "sendfiled.sock")
        conf = os.path.join(workdir, "sendfiled.conf")
        with open(conf, "w"):
            pass
        self.log = open(os.path.join(workdir, "daemon.log"), "w+b")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SENDFILED_") and k not in ("LISTEN_FDS", "LISTEN_PID",
                                                               "NOTIFY_SOCKET")}
        self.proc = subprocess.Popen(
            [binary, "-c", conf, "-s", self.path, "--no-control", "--log-level", "info",
             *extra_args],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}: "
                                   f"{self.log_text()}")
            try:
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                probe.connect(self.path)
                probe.close()
                break
            except OSError:
                probe.close()
                if time.monotonic() > deadline:
                    raise RuntimeError("daemon socket never accepted a connection")
                time.sleep(0.02)
        self.baseline = None
        self.baseline = self.settle_fds(None)

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def settle_fds(self, want, timeout=3.0):
        """Wait until the daemon's descriptor count is `want` (or stable, when None)."""
        deadline = time.monotonic() + timeout
        last = self.fd_count()
        while time.monotonic() < deadline:
            time.sleep(0.02)
            now = self.fd_count()
            if want is None and now == last:
                return now
            if want is not None and now == want:
                return now
            last = now
        return last

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


# ---------------------------------------------------------------------------
# Test support
# ---------------------------------------------------------------------------

TESTS = []
NOTES = []
D = None          # the Daemon
TMP = None        # temporary directory


def test(fn):
    TESTS.append(fn)
    return fn


def note(text):
    NOTES.append(text)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def eq(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def name_of(status):
    return STATUS[status] if 0 <= status < len(STATUS) else str(status)


def expect(resp, status, error=None, what="reply"):
    if resp.status != status:
        raise AssertionError(f"{what}: status {name_of(resp.status)}, want "
                             f"{name_of(status)}: {resp!r}")
    if error is not None and resp.error != error:
        raise AssertionError(f"{what}: error {errno.errorcode.get(resp.error, resp.error)},"
                             f" want {errno.errorcode[error]}: {resp!r}")


def position(fd):
    return os.lseek(fd, 0, os.SEEK_CUR)


def check_position(fd, resp, offset, before, what="source position"):
    """Section 4: final_offset = offset + bytes_sent; the position is final_offset when
    bytes_sent > 0, untouched otherwise."""
    eq(resp.final_offset, offset + resp.bytes_sent, "final_offset = offset + bytes_sent")
    if resp.bytes_sent > 0:
        eq(position(fd), resp.final_offset, what + " = final_offset")
    else:
        eq(position(fd), before, what + " untouched")


def make_file(name, data=None, size=None):
    """A real file of `data`, or a sparse one of `size` zero bytes."""
    path = os.path.join(TMP, name)
    with open(path, "wb") as f:
        if data is not None:
            f.write(data)
        else:
            f.truncate(size)
    return path


def sha_of(data):
    return hashlib.sha256(data).hexdigest()


def sha_of_zeros(n):
    h = hashlib.sha256()
    block = bytes(1 << 20)
    while n:
        k = min(n, len(block))
        h.update(block[:k])
        n -= k
    return h.hexdigest()


def open_src(path):
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def file_transfer(data, rid=1, offset=None, count=None, fallback=None, preseek=777,
                  expect_status=OK, close_dst_early=True):
    """Send a file of `data` to a fresh receiver; check everything common to a
    successful transfer; return the reply and what the receiver got."""
    path = make_file(f"src-{rid}", data)
    fd = open_src(path)
    try:
        os.lseek(fd, preseek, os.SEEK_SET)
        rx = Receiver(keep=True)
        with Conn(D.path) as conn:
            conn.send(req_sendfile(rid, offset=offset, count=count, fallback=fallback),
                      [rx.dst.fileno(), fd])
            if close_dst_early:
                rx.close_dst()  # section 7: may close right after sendmsg
            resp = conn.wait(rid)
        if not close_dst_early:
            rx.close_dst()
        expect(resp, expect_status)
        n, digest = rx.result()
        off = offset or 0
        eq(n, resp.bytes_sent, "bytes received = bytes_sent")
        want = data[off:] if count is None else data[off:off + count]
        eq(digest, sha_of(want), "sha256 of received bytes")
        check_position(fd, resp, off, preseek)
        return resp
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

@test
def encoding_matches_document_examples():
    eq(req_sendfile(1).hex(" "), "08 01 12 00", "id 1 whole file")
    eq(req_sendfile(1, count=1048576).hex(" "), "08 01 12 04 10 80 80 40", "id 1 count 1M")
    eq(req_sendfile(7, offset=4096, count=1000, fallback=False).hex(" "),
       "08 07 12 08 08 80 20 10 e8 07 18 00", "id 7 offset/count/fallback")
    eq(req_cancel(2, 1).hex(" "), "08 02 1a 02 08 01", "cancel")
    eq(req_ping(3).hex(" "), "08 03 22 00", "ping")
    r = Response(bytes.fromhex("08 01 28 80 80 40 30 80 80 40 38 01"))
    eq((r.id, r.status, r.bytes_sent, r.final_offset, r.method),
       (1, OK, 1048576, 1048576, METHOD_SENDFILE), "example reply")
    r = Response(f_varint(1, 9) + f_varint(3, -1))
    eq(r.error, -1, "negative int32 decodes")
    for v in (0, 1, 127, 128, 300, 2**63 - 1, U64):
        eq(dec_varint(enc_varint(v), 0)[0], v, f"varint {v}")


@test
def ping():
    with Conn(D.path) as conn:
        conn.send(req_ping(3))
        resp = conn.wait(3)
    expect(resp, OK)
    eq(resp.error, 0, "error")
    check("method" not in resp.present or resp.method == METHOD_NONE,
          f"ping names no method: {resp!r}")
    # Who answered (field 9, PingInfo): protocol 1, a version string, and the
    # optional features it implements: all four.
    check(resp.ping is not None, f"ping info in the reply: {resp.raw.hex()}")
    eq(resp.ping.protocol_version, 1, "protocol_version")
    check(resp.ping.daemon_version != "", "daemon_version")
    eq(sorted(resp.ping.features),
       [FEATURE_DEADLINE, FEATURE_RATE_LIMIT, FEATURE_CLOSE_WHEN_DONE, FEATURE_IDLE_TIMEOUT],
       "features")


@test
def whole_file():
    data = os.urandom(5 * 1024 * 1024 + 12345)  # more than the 2M chunk size
    path = make_file("whole", data)
    fd = open_src(path)
    try:
        rx = Receiver()
        dst_flags = (os.get_blocking(rx.dst.fileno()), os.get_blocking(fd))
        with Conn(D.path) as conn:
            conn.send(req_sendfile(1), [rx.dst.fileno(), fd])
            resp = conn.wait(1)
        expect(resp, OK)
        eq((os.get_blocking(rx.dst.fileno()), os.get_blocking(fd)), dst_flags,
           "O_NONBLOCK of destination and source unchanged")
        rx.close_dst()
        n, digest = rx.result()
        eq(resp.bytes_sent, len(data), "bytes_sent")
        eq(n, len(data), "bytes received")
        eq(digest, sha_of(data), "sha256")
        eq(resp.method, METHOD_SENDFILE, "method")
        check(not resp.short_source, "short_source false")
        check_position(fd, resp, 0, 0)
    finally:
        os.close(fd)


@test
def offset_and_count():
    data = os.urandom(200000)
    resp = file_transfer(data, rid=2, offset=1000, count=50000)
    eq(resp.bytes_sent, 50000, "bytes_sent")
    eq(resp.final_offset, 51000, "final_offset")
    check(not resp.short_source, "short_source false")


@test
def count_past_eof():
    data = os.urandom(100000)
    resp = file_transfer(data, rid=3, offset=99900, count=1000)
    eq(resp.bytes_sent, 100, "bytes_sent")
    check(resp.short_source, f"short_source true: {resp!r}")


@test
def offset_past_eof():
    data = os.urandom(4096)
    for rid, off, count in ((4, 4096, None), (5, 10000, None), (6, 10000, 10)):
        resp = file_transfer(data, rid=rid, offset=off, count=count, preseek=123)
        eq(resp.bytes_sent, 0, f"offset {off}: bytes_sent")
        eq(resp.final_offset, off, f"offset {off}: final_offset")
        note(f"offset {off} >= size 4096, count {count}: reply {resp!r} "
             f"(fields present: {sorted(resp.present)})")


@test
def empty_file():
    resp = file_transfer(b"", rid=7, preseek=0)
    eq(resp.bytes_sent, 0, "bytes_sent")
    eq(resp.final_offset, 0, "final_offset")
    note(f"empty file, count absent: {resp!r}")


@test
def pipe_source_splice():
    data = os.urandom(1024 * 1024 + 7)
    for rid, count, want_short in ((8, None, False), (9, len(data) + 5000, True)):
        r, w = os.pipe2(os.O_CLOEXEC)

        def writer():
            try:
                with open(w, "wb", buffering=0) as f:
                    f.write(data)
            except BrokenPipeError:
                pass
        wt = threading.Thread(target=writer, daemon=True)
        wt.start()
        rx = Receiver()
        with Conn(D.path) as conn:
            conn.send(req_sendfile(rid, count=count), [rx.dst.fileno(), r])
            os.close(r)
            rx.close_dst()
            resp = conn.wait(rid)
        wt.join(5)
        expect(resp, OK)
        n, digest = rx.result()
        eq(resp.bytes_sent, len(data), "bytes_sent")
        eq(n, len(data), "bytes received")
        eq(digest, sha_of(data), "sha256")
        eq(resp.method, METHOD_SPLICE, "method")
        eq(resp.final_offset, resp.bytes_sent, "final_offset = 0 + bytes_sent")
        eq(resp.short_source, want_short, f"short_source with count {count}")


@test
def pipe_source_with_offset_is_espipe():
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        os.write(w, b"x" * 100)
        rx = Receiver()
        with Conn(D.path) as conn:
            conn.send(req_sendfile(10, offset=5), [rx.dst.fileno(), r])
            resp = conn.wait(10)
        expect(resp, INVALID_ARGUMENT, errno.ESPIPE)
        eq(resp.bytes_sent, 0, "bytes_sent")
        eq(len(os.read(r, 1000)), 100, "pipe untouched")
        rx.close_dst()
        eq(rx.result()[0], 0, "bytes received")
    finally:
        os.close(r)
        os.close(w)


def proc_source():
    """A /proc file of stable content that sendfile(2) cannot read on this kernel."""
    for path in ("/proc/self/cmdline", "/proc/self/environ", "/proc/self/comm"):
        a, b = socket.socketpair()
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.sendfile(a.fileno(), fd, 0, 4096)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                os.lseek(fd, 0, os.SEEK_SET)
                content = b""
                while chunk := os.read(fd, 65536):
                    content += chunk
                if content:
                    return path, fd, content
        finally:
            a.close()
            b.close()
        os.close(fd)
    raise AssertionError("no /proc file refuses sendfile(2) on this kernel")


@test
def proc_file_with_fallback():
    path, fd, content = proc_source()
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        rx = Receiver(keep=True)
        with Conn(D.path) as conn:
            conn.send(req_sendfile(11), [rx.dst.fileno(), fd])  # fallback absent: true
            resp = conn.wait(11)
        rx.close_dst()
        expect(resp, OK)
        eq(resp.method, METHOD_READ_WRITE, f"method for {path}")
        n, _ = rx.result()
        eq(bytes(rx.data), content, f"received {path}")
        eq(resp.bytes_sent, len(content), "bytes_sent")
        check_position(fd, resp, 0, 0)
    finally:
        os.close(fd)


@test
def proc_file_without_fallback():
    path, fd, content = proc_source()
    try:
        os.lseek(fd, 3, os.SEEK_SET)
        rx = Receiver()
        with Conn(D.path) as conn:
            conn.send(req_sendfile(12, fallback=False), [rx.dst.fileno(), fd])
            resp = conn.wait(12)
        rx.close_dst()
        expect(resp, NOT_AVAILABLE, errno.EINVAL)
        eq(resp.bytes_sent, 0, "bytes_sent")
        eq(position(fd), 3, "position untouched")
        eq(rx.result()[0], 0, "bytes received")
        note(f"{path} fallback=false: {resp!r}")
    finally:
        os.close(fd)


@test
def several_in_flight_replies_by_id():
    big = 24 * 1024 * 1024
    big_path = make_file("big-inflight", size=big)
    big_fd = open_src(big_path)
    smalls = [os.urandom(30000 + 1000 * i) for i in range(4)]
    fds = [open_src(make_file(f"small-{i}", d)) for i, d in enumerate(smalls)]
    try:
        slow = Receiver(read=False, small_buffers=True)
        rxs = [Receiver() for _ in smalls]
        with Conn(D.path) as conn:
            # The slow one first, then the others without waiting in between.
            conn.send(req_sendfile(100), [slow.dst.fileno(), big_fd])
            for i, (rx, fd) in enumerate(zip(rxs, fds)):
                conn.send(req_sendfile(101 + i, offset=i), [rx.dst.fileno(), fd])
                rx.close_dst()
            slow.close_dst()
            got = {}
            for i in range(len(smalls)):
                got[101 + i] = conn.wait(101 + i)
            check(not conn.replies.get(100),
                  "the stalled transfer is still in flight after the small ones")
            slow.release()
            got[100] = conn.wait(100, timeout=15)
            arrival = list(conn.arrival)
        eq(arrival[-1], 100, "the first request is answered last")
        eq(sorted(arrival), [100, 101, 102, 103, 104], "one reply per request")
        for i, d in enumerate(smalls):
            resp = got[101 + i]
            expect(resp, OK, what=f"id {101 + i}")
            eq(resp.bytes_sent, len(d) - i, f"id {101 + i} bytes_sent")
            n, digest = rxs[i].result()
            eq(digest, sha_of(d[i:]), f"id {101 + i} sha256")
            check_position(fds[i], resp, i, 0)
        expect(got[100], OK, what="id 100")
        eq(got[100].bytes_sent, big, "id 100 bytes_sent")
        n, digest = slow.result()
        eq(digest, sha_of_zeros(big), "id 100 sha256")
        check_position(big_fd, got[100], 0, 0)
    finally:
        os.close(big_fd)
        for fd in fds:
            os.close(fd)


@test
def cancel_in_flight():
    size = 64 * 1024 * 1024
    fd = open_src(make_file("big-cancel", size=size))
    try:
        rx = Receiver(read=False, small_buffers=True)
        with Conn(D.path) as conn:
            conn.send(req_sendfile(20, offset=4096), [rx.dst.fileno(), fd])
            time.sleep(0.3)  # let it fill the socket buffers and stall
            check(not conn.pump(0), "no reply while the receiver does not read")
            conn.send(req_cancel(21, 20))
            target = conn.wait(20)
            cancel = conn.wait(21)
            arrival = list(conn.arrival)
        note(f"cancel: replies arrived in order {arrival}; target {target!r}; "
             f"cancel {cancel!r}")
        expect(target, CANCELLED, errno.ECANCELED, "target")
        expect(cancel, OK, what="cancel")
        eq(cancel.error, 0, "cancel error")
        check(0 < target.bytes_sent < size - 4096,
              f"some but not all bytes sent: {target.bytes_sent}")
        check_position(fd, target, 4096, 0)
        rx.close_dst()
        n, _ = rx.result()
        eq(n, target.bytes_sent, "bytes received = bytes_sent of the cancelled transfer")
    finally:
        os.close(fd)


@test
def cancel_not_in_flight():
    data = os.urandom(1000)
    fd = open_src(make_file("cancel-done", data))
    try:
        rx = Receiver()
        with Conn(D.path) as conn:
            conn.send(req_cancel(22, 9999))  # never sent
            unknown = conn.wait(22)
            conn.send(req_sendfile(23), [rx.dst.fileno(), fd])
            done = conn.wait(23)
            conn.send(req_cancel(24, 23))  # already answered
            finished = conn.wait(24)
        rx.close_dst()
        expect(unknown, INVALID_ARGUMENT, errno.ENOENT, "cancel of an unknown id")
        expect(done, OK, what="sendfile")
        expect(finished, INVALID_ARGUMENT, errno.ENOENT, "cancel of a finished request")
        eq(rx.result()[0], 1000, "bytes received")
        check_position(fd, done, 0, 0)
    finally:
        os.close(fd)


@test
def count_zero_is_invalid():
    fd = open_src(make_file("count0", b"hello"))
    try:
        os.lseek(fd, 2, os.SEEK_SET)
        rx = Receiver()
        with Conn(D.path) as conn:
            conn.send(req_sendfile(30, count=0), [rx.dst.fileno(), fd])
            resp = conn.wait(30)
        rx.close_dst()
        expect(resp, INVALID_ARGUMENT, errno.EINVAL)
        eq(resp.bytes_sent, 0, "bytes_sent")
        eq(position(fd), 2, "position untouched")
        eq(rx.result()[0], 0, "bytes received")
    finally:
        os.close(fd)


@test
def limits_refused():
    """Limits the daemon will not take: a deadline or idle timeout beyond its
    maximum (one day by default), a rate above 2^40 B/s, a burst without a
    rate. Nothing is sent."""
    fd = open_src(make_file("limits-bad", b"hello"))
    try:
        with Conn(D.path) as conn:
            for rid, extra, err in ((31, f_varint(4, 0xFFFFFFFF), errno.EINVAL),
                                    (32, f_varint(7, 24 * 3600 * 1000 + 1), errno.EINVAL),
                                    (33, f_varint(5, (1 << 40) + 1), errno.EINVAL),
                                    (35, f_varint(8, 4096), errno.EINVAL)):
                rx = Receiver()
                conn.send(f_varint(1, rid) + f_bytes(2, extra), [rx.dst.fileno(), fd])
                resp = conn.wait(rid)
                rx.close_dst()
                expect(resp, INVALID_ARGUMENT, err, f"field in request {rid}")
                check(resp.message != "", f"a message says why: {resp!r}")
                eq(rx.result()[0], 0, "bytes received")
            # Reserved fields present with their zero value are allowed.
            rx = Receiver()
            zeros = f_varint(4, 0) + f_varint(5, 0) + f_varint(6, 0)
            conn.send(f_varint(1, 34) + f_bytes(2, zeros), [rx.dst.fileno(), fd])
            resp = conn.wait(34)
            rx.close_dst()
        expect(resp, OK, what="optional fields set to 0/false")
        eq(rx.result()[0], 5, "bytes received")
        check_position(fd, resp, 0, 0)
    finally:
        os.close(fd)


@test
def handoff():
    # close_when_done (field 6): the reply comes once the daemon holds the
    # descriptors, OK with nothing sent yet and the transfer's id (field 11);
    # the transfer goes on after the client closed everything, and with
    # shutdown_write (field 9) the receiver reads end of file while the
    # client's own copy of the socket is still open.
    data = os.urandom(3 * 1024 * 1024 + 7)
    fd = open_src(make_file("handoff", data))
    try:
        rx = Receiver(read=False)
        with Conn(D.path) as conn:
            conn.send(f_varint(1, 41) + f_bytes(2, f_varint(6, 1) + f_varint(9, 1)),
                      [rx.dst.fileno(), fd])
            resp = conn.wait(41)
        expect(resp, OK, what="hand-off taken")
        eq(resp.bytes_sent, 0, "bytes_sent of a hand-off's reply")
        check("transfer_id" in resp.present and resp.transfer_id > 0,
              f"transfer_id in the reply: {resp!r}")
        rx.release()
        n, digest = rx.result(30)  # rx.dst is still open here: the end is the shutdown's
        eq(n, len(data), "bytes received")
        eq(digest, hashlib.sha256(data).hexdigest(), "sha256 received")
        rx.close_dst()
        # shutdown_write without close_when_done is refused; nothing sent.
        rx = Receiver()
        with Conn(D.path) as conn:
            conn.send(f_varint(1, 42) + f_bytes(2, f_varint(9, 1)), [rx.dst.fileno(), fd])
            resp = conn.wait(42)
        rx.close_dst()
        expect(resp, INVALID_ARGUMENT, errno.EINVAL, "shutdown_write alone")
        eq(rx.result()[0], 0, "bytes received")
    finally:
        os.close(fd)


@test
def idle_timeout():
    """A receiver that stops reading: TIMED_OUT, ETIMEDOUT, timeout = IDLE, the bytes
    that left (what the receiver reads once it drains) and the position there."""
    data = os.urandom(48 * 1024 * 1024)
    fd = open_src(make_file("idle", data))
    try:
        rx = Receiver(read=False)
        with Conn(D.path) as conn:
            conn.send(f_varint(1, 40) + f_bytes(2, msg_sendfile(offset=1000,
                                                                extra=f_varint(7, 300))),
                      [rx.dst.fileno(), fd])
            resp = conn.wait(40, timeout=30)
        rx.close_dst()
        expect(resp, TIMED_OUT, errno.ETIMEDOUT)
        eq(resp.timeout, TIMEOUT_IDLE, "timeout")
        check(0 < resp.bytes_sent < len(data) - 1000, f"some bytes sent: {resp!r}")
        check_position(fd, resp, 1000, 0)
        n, digest = rx.result()
        eq(n, resp.bytes_sent, "bytes received")
        eq(digest, hashlib.sha256(data[1000:1000 + n]).hexdigest(), "bytes received (sha256)")
    finally:
        os.close(fd)


@test
def deadline_and_rate():
    """A rate-limited transfer (64 KiB/s after a 64 KiB burst) ends at its deadline:
    TIMED_OUT, timeout = DEADLINE; the burst went out, the rest at the rate."""
    data = os.urandom(4 * 1024 * 1024)
    fd = open_src(make_file("deadline", data))
    try:
        rx = Receiver()
        extra = f_varint(4, 500) + f_varint(5, 64 * 1024) + f_varint(8, 64 * 1024)
        with Conn(D.path) as conn:
            conn.send(f_varint(1, 41) + f_bytes(2, msg_sendfile(extra=extra)),
                      [rx.dst.fileno(), fd])
            resp = conn.wait(41, timeout=30)
        rx.close_dst()
        expect(resp, TIMED_OUT, errno.ETIMEDOUT)
        eq(resp.timeout, TIMEOUT_DEADLINE, "timeout")
        check(64 * 1024 <= resp.bytes_sent < len(data), f"the burst and then some: {resp!r}")
        check_position(fd, resp, 0, 0)
        n, digest = rx.result()
        eq(n, resp.bytes_sent, "bytes received")
        eq(digest, hashlib.sha256(data[:n]).hexdigest(), "bytes received (sha256)")
    finally:
        os.close(fd)


@test
def error_table_descriptors():
    fd = open_src(make_file("errtab", b"hello"))
    wfd = os.open(os.path.join(TMP, "errtab"), os.O_WRONLY | os.O_CLOEXEC)
    dfd = os.open(TMP, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.connect(("127.0.0.1", 9))
    try:
        with Conn(D.path) as conn:
            cases = [
                ("source open write-only", None, wfd, errno.EBADF),
                ("source a directory", None, dfd, errno.EISDIR),
                ("destination a UDP socket", udp.fileno(), fd, errno.EINVAL),
                ("destination open read-only", fd, fd, errno.EBADF),
            ]
            for rid, (what, dst, src, err) in enumerate(cases, 40):
                rx = Receiver()
                conn.send(req_sendfile(rid), [dst if dst is not None else rx.dst.fileno(), src])
                resp = conn.wait(rid)
                rx.close_dst()
                expect(resp, INVALID_ARGUMENT, err, what)
                eq(resp.bytes_sent, 0, what + ": bytes_sent")
                eq(rx.result()[0], 0, what + ": bytes received")
            rx = Receiver()
            conn.send(req_sendfile(51, offset=1 << 63), [rx.dst.fileno(), fd])
            resp = conn.wait(51)
            rx.close_dst()
            expect(resp, INVALID_ARGUMENT, errno.EINVAL, "offset 2^63")
            rx.result()
            rx = Receiver()
            conn.send(req_sendfile(52, offset=(1 << 63) - 10, count=11),
                      [rx.dst.fileno(), fd])
            resp = conn.wait(52)
            rx.close_dst()
            expect(resp, INVALID_ARGUMENT, errno.EOVERFLOW, "offset + count > 2^63 - 1")
            rx.result()
        eq(position(fd), 0, "position untouched")
    finally:
        os.close(fd)
        os.close(wfd)
        os.close(dfd)
        udp.close()


@test
def wrong_number_of_descriptors():
    fd = open_src(make_file("nfds", b"hello world"))
    try:
        with Conn(D.path) as conn:
            rx = Receiver()
            cases = [
                ("Sendfile with none", 60, req_sendfile(60), []),
                ("Sendfile with one", 61, req_sendfile(61), [rx.dst.fileno()]),
                ("Sendfile with three", 62, req_sendfile(62), [rx.dst.fileno(), fd, fd]),
                ("Ping with one", 63, req_ping(63), [fd]),
                ("Cancel with two", 64, req_cancel(64, 1), [rx.dst.fileno(), fd]),
            ]
            for what, rid, record, fds in cases:
                conn.send(record, fds)
                resp = conn.wait(rid)
                expect(resp, PROTOCOL, errno.EBADMSG, what)
                eq(resp.bytes_sent, 0, what + ": bytes_sent")
            conn.send(req_ping(65))
            expect(conn.wait(65), OK, what="ping after the PROTOCOL replies")
        rx.close_dst()
        eq(rx.result()[0], 0, "bytes received")
        eq(position(fd), 0, "position untouched")
    finally:
        os.close(fd)


@test
def unknown_fields_ignored():
    data = os.urandom(70000)
    fd = open_src(make_file("unknown", data))
    try:
        sf_extra = (f_varint(100, 12345) + f_bytes(101, b"future") + f_fixed32(102, 7)
                    + f_fixed64(103, 9))
        req_extra = f_varint(100, 1) + f_bytes(101, b"\x01\x02\x03") + f_fixed64(102, 5)
        rx = Receiver()
        record = (f_bytes(100, b"before the id") + f_varint(1, 70)
                  + f_bytes(2, msg_sendfile(offset=10, count=5000, extra=sf_extra))
                  + req_extra)
        with Conn(D.path) as conn:
            conn.send(record, [rx.dst.fileno(), fd])
            resp = conn.wait(70)
            conn.send(req_ping(71) + f_varint(100, 3))
            ping_resp = conn.wait(71)
        rx.close_dst()
        expect(resp, OK)
        expect(ping_resp, OK, what="ping with an unknown field")
        eq(resp.bytes_sent, 5000, "bytes_sent")
        n, digest = rx.result()
        eq(digest, sha_of(data[10:5010]), "sha256")
        check_position(fd, resp, 10, 0)
    finally:
        os.close(fd)


@test
def garbage_with_readable_id():
    fd = open_src(make_file("garbage", b"hello"))
    try:
        with Conn(D.path) as conn:
            rx = Receiver()
            cases = [
                ("Sendfile length past the record", f_varint(1, 80) + b"\x12\x05\x01", 80),
                ("truncated tag after the id", f_varint(1, 81) + b"\xff", 81),
                ("wire type 7 after the id", f_varint(1, 82) + b"\x0f\x00", 82),
                ("garbage inside Sendfile, id after it",
                 f_bytes(2, b"\xff\xff\xff") + f_varint(1, 83), 83),
                ("Sendfile encoded as a varint", f_varint(1, 84) + f_varint(2, 5), 84),
            ]
            for what, record, rid in cases:
                conn.send(record, [rx.dst.fileno(), fd])
                resp = conn.wait(rid)
                expect(resp, PROTOCOL, errno.EBADMSG, what)
                eq(resp.bytes_sent, 0, what + ": bytes_sent")
            conn.send(req_ping(85))
            expect(conn.wait(85), OK, what="ping after the garbage")
        rx.close_dst()
        eq(rx.result()[0], 0, "bytes received")
        eq(position(fd), 0, "position untouched")
    finally:
        os.close(fd)


@test
def oversized_record():
    with Conn(D.path) as conn:
        record = req_ping(90) + f_bytes(100, b"x" * 5000)
        conn.send(record)
        try:
            resp = conn.wait(90, timeout=3)
        except Closed:
            raise AssertionError("connection closed instead of a PROTOCOL/EMSGSIZE reply")
        expect(resp, PROTOCOL, errno.EMSGSIZE)
        conn.send(req_ping(91))
        expect(conn.wait(91), OK, what="ping after the oversized record")


@test
def garbage_without_id_closes():
    fd = open_src(make_file("noid", b"hello"))
    try:
        for what, record in (("truncated varint", b"\xff\xff\xff"),
                             ("field number 0", b"\x00\x01"),
                             ("id with the wrong wire type", f_bytes(1, b"ab") + b"\xff")):
            rx = Receiver()
            with Conn(D.path) as conn:
                conn.send(record, [rx.dst.fileno(), fd])
                check(conn.wait_eof(3), f"{what}: connection closed")
                eq(conn.arrival, [], f"{what}: no reply")
            rx.close_dst()
            eq(rx.result()[0], 0, "bytes received")
        eq(position(fd), 0, "position untouched")
    finally:
        os.close(fd)


@test
def valid_record_without_id():
    # The document says "Always set id" but not what the daemon does with a record
    # that parses and has none: observed here, reported as a note.
    with Conn(D.path) as conn:
        conn.send(f_bytes(4, b""))
        deadline = time.monotonic() + 2
        while not conn.eof and not conn.arrival and time.monotonic() < deadline:
            conn.pump(deadline - time.monotonic())
        got = [r for rs in conn.replies.values() for r in rs]
        note(f"Ping without id: replies {got!r}, connection closed: {conn.eof}")
        if not conn.eof:
            conn.send(req_ping(92))
            expect(conn.wait(92), OK, what="ping afterwards")


@test
def zero_length_record_closes():
    with Conn(D.path) as conn:
        conn.send(b"")
        check(conn.wait_eof(3), "connection closed after a zero-length record")
        eq(conn.arrival, [], "no reply")


@test
def close_with_transfer_in_flight():
    size = 64 * 1024 * 1024
    fd = open_src(make_file("big-close", size=size))
    try:
        rx = Receiver(read=False, small_buffers=True)
        with Conn(D.path) as conn:
            conn.send(req_sendfile(95), [rx.dst.fileno(), fd])
            time.sleep(0.3)
            check(not conn.pump(0), "no reply while the receiver does not read")
        # Closed: the transfer is cancelled, its position still updated.
        eq(D.settle_fds(D.baseline), D.baseline, "daemon descriptors after the close")
        rx.close_dst()
        n, _ = rx.result()
        check(0 < n < size, f"some but not all bytes sent: {n}")
        eq(position(fd), n, "position = bytes received")
    finally:
        os.close(fd)


@test
def cancel_nonblocking_destination():
    size = 64 * 1024 * 1024
    fd = open_src(make_file("big-cancel-nb", size=size))
    try:
        rx = Receiver(read=False, small_buffers=True)
        rx.dst.setblocking(False)
        with Conn(D.path) as conn:
            conn.send(req_sendfile(26), [rx.dst.fileno(), fd])
            time.sleep(0.3)
            check(not conn.pump(0), "no reply while the receiver does not read")
            conn.send(req_cancel(27, 26))
            target = conn.wait(26)
            cancel = conn.wait(27)
            arrival = list(conn.arrival)
        note(f"cancel, non-blocking destination: replies arrived in order {arrival}")
        expect(target, CANCELLED, errno.ECANCELED, "target")
        expect(cancel, OK, what="cancel")
        check(0 < target.bytes_sent < size, f"some but not all sent: {target.bytes_sent}")
        check_position(fd, target, 0, 0)
        eq(os.get_blocking(rx.dst.fileno()), False, "destination still O_NONBLOCK")
        rx.close_dst()
        eq(rx.result()[0], target.bytes_sent, "bytes received = bytes_sent")
    finally:
        os.close(fd)


@test
def too_many_descriptors_for_the_control_buffer():
    fd = open_src(make_file("manyfds", b"hello"))
    try:
        rx = Receiver()
        with Conn(D.path) as conn:
            conn.send(req_sendfile(96), [rx.dst.fileno()] + [fd] * 200)
            resp = conn.wait(96)
            expect(resp, PROTOCOL, errno.EBADMSG)
            conn.send(req_ping(97))
            expect(conn.wait(97), OK, what="ping afterwards")
        rx.close_dst()
        eq(rx.result()[0], 0, "bytes received")
        eq(position(fd), 0, "position untouched")
    finally:
        os.close(fd)


@test
def credentials_control_message():
    # Section 2: "No other control message may be attached (do not set SO_PASSCRED on
    # the socket)". What the daemon does with one is observed and reported.
    fd = open_src(make_file("creds", b"hello"))
    try:
        ucred = struct.pack("3i", os.getpid(), os.getuid(), os.getgid())
        creds = (socket.SOL_SOCKET, socket.SCM_CREDENTIALS, ucred)
        with Conn(D.path) as conn:
            conn.sock.sendmsg([req_ping(98)], [creds])
            ping_resp = conn.wait(98)
            rx = Receiver()
            conn.sock.sendmsg([req_sendfile(99)], [
                (socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [rx.dst.fileno(), fd])),
                creds])
            sf_resp = conn.wait(99)
            rx.close_dst()
            rx.result()
        note(f"explicit SCM_CREDENTIALS with a Ping: {ping_resp!r}; with a Sendfile: "
             f"{sf_resp!r}")
        with Conn(D.path) as conn:
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            conn.send(req_ping(100))
            ping_resp = conn.wait(100)
            rx = Receiver()
            conn.send(req_sendfile(101), [rx.dst.fileno(), fd])
            sf_resp = conn.wait(101)
            rx.close_dst()
            rx.result()
        note(f"SO_PASSCRED on the client socket, Ping: {ping_resp!r}; Sendfile: {sf_resp!r}")
        if sf_resp.bytes_sent:
            os.lseek(fd, 0, os.SEEK_SET)
    finally:
        os.close(fd)


@test
def explicit_id_zero():
    with Conn(D.path) as conn:
        conn.send(f_varint(1, 0) + f_bytes(4, b""))
        deadline = time.monotonic() + 2
        while not conn.eof and not conn.arrival and time.monotonic() < deadline:
            conn.pump(deadline - time.monotonic())
        got = [r for rs in conn.replies.values() for r in rs]
        note(f"Ping with id 0 present: replies {got!r}, connection closed: {conn.eof}")
        for r in got:  # provoked here: not held against the "no id 0" check below
            ALL_REPLIES.remove(r)


def refused_child(path, uid):
    """Connect as `uid` in a forked child; (first reply, next record) it received."""
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # child: plain system calls only, then _exit
        status = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.settimeout(5)
            s.connect(path)
            first = s.recv(MAX_RECORD)
            second = s.recv(MAX_RECORD)
            os.write(w, struct.pack("<II", len(first), len(second)) + first + second)
            status = 0
        except BaseException as exc:
            try:
                os.write(w, repr(exc).encode())
            except OSError:
                pass
        os._exit(status)
    os.close(w)
    out = b""
    while chunk := os.read(r, 65536):
        out += chunk
    os.close(r)
    _, st = os.waitpid(pid, 0)
    check(os.waitstatus_to_exitcode(st) == 0, f"child failed: {out!r}")
    n1, n2 = struct.unpack("<II", out[:8])
    return Response(out[8:8 + n1]), out[8 + n1:8 + n1 + n2]


@test
def allow_list_refusal():
    # Root is always allowed, so when running as root the refused client is a child
    # running as nobody (uid 65534), on a socket it may open.
    workdir = os.path.join(TMP, "allow")
    os.makedirs(workdir)
    os.chmod(TMP, 0o711)
    os.chmod(workdir, 0o711)
    root = os.getuid() == 0
    other = "1" if root else str(os.getuid() + 1)
    d = Daemon(os.environ["SENDFILED_BIN"], workdir,
               ["--allow-uid", other, "--socket-mode", "0666"])
    try:
        if root:
            with Conn(d.path) as conn:
                conn.send(req_ping(1))
                expect(conn.wait(1), OK, what="root is always allowed")
            resp, second = refused_child(d.path, 65534)
            eq(second, b"", "end of file after the refusal")
        else:
            with Conn(d.path) as conn:
                conn.pump(5)
                check(conn.arrival, "a reply")
                resp = conn.replies[conn.arrival[0]][0]
                check(conn.wait_eof(3), "connection closed after the refusal")
        eq(resp.id, 0, "refusal id")
        expect(resp, PERMISSION_DENIED, errno.EACCES, "refusal")
    finally:
        eq(d.stop(), 0, "daemon exit status")


def refused_sender(path, uid, daemon_pid, records):
    """Connect as `uid` in a forked child and send `records` (each with two
    descriptors) before the daemon has even accepted (it is stopped with
    SIGSTOP meanwhile); then read. Returns what the child's first two reads
    gave: a reply, end of file (b""), or the name of the error."""
    r, w = os.pipe2(os.O_CLOEXEC)
    sent_r, sent_w = os.pipe2(os.O_CLOEXEC)
    os.kill(daemon_pid, signal.SIGSTOP)
    try:
        pid = os.fork()
        if pid == 0:  # child: plain system calls only, then _exit
            status = 1
            try:
                os.close(r)
                os.close(sent_r)
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                s.settimeout(10)
                s.connect(path)
                a, b = os.pipe2(os.O_CLOEXEC)
                anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [b, a]))]
                for rec in records:
                    s.sendmsg([rec], anc)
                os.write(sent_w, b"s")
                out = []
                for _ in range(2):
                    try:
                        out.append(b"R" + s.recv(MAX_RECORD))
                    except OSError as exc:
                        out.append(b"E" + errno.errorcode.get(exc.errno, "?").encode())
                os.write(w, b"".join(struct.pack("<I", len(x)) + x for x in out))
                status = 0
            except BaseException as exc:
                try:
                    os.write(w, repr(exc).encode())
                except OSError:
                    pass
            os._exit(status)
        os.close(w)
        os.close(sent_w)
        check(os.read(sent_r, 1) == b"s", "the refused child sent its records")
    finally:
        os.kill(daemon_pid, signal.SIGCONT)
    os.close(sent_r)
    out = b""
    while chunk := os.read(r, 65536):
        out += chunk
    os.close(r)
    _, st = os.waitpid(pid, 0)
    check(os.waitstatus_to_exitcode(st) == 0, f"child failed: {out!r}")
    got = []
    while out:
        (n,) = struct.unpack("<I", out[:4])
        item, out = out[4:4 + n], out[4 + n:]
        got.append(Response(item[1:]) if item[:1] == b"R" and len(item) > 1
                   else (b"" if item == b"R" else item[1:].decode()))
    return got


@test
def allow_list_refusal_of_an_early_sender():
    # A refused client that sends before it reads (with descriptors) still reads
    # the refusal first, then end of file, never ECONNRESET; the daemon keeps
    # none of what it sent. As root, the refused client is a child running as
    # nobody; otherwise the test cannot be refused by uid and is skipped.
    if os.getuid() != 0:
        note("allow-list refusal of an early sender: needs root to run as another uid")
        return
    workdir = os.path.join(TMP, "allow-early")
    os.makedirs(workdir)
    os.chmod(TMP, 0o711)
    os.chmod(workdir, 0o711)
    d = Daemon(os.environ["SENDFILED_BIN"], workdir,
               ["--allow-uid", "1", "--socket-mode", "0666"])
    try:
        got = refused_sender(d.path, 65534, d.proc.pid,
                             [req_ping(1), req_sendfile(2), req_ping(3)])
        eq(len(got), 2, "two reads")
        check(isinstance(got[0], Response), f"the refusal first, got {got[0]!r}")
        eq(got[0].id, 0, "refusal id")
        expect(got[0], PERMISSION_DENIED, errno.EACCES, "refusal")
        eq(got[1], b"", "end of file after the refusal")
        eq(d.settle_fds(d.baseline), d.baseline, "daemon descriptors after the refusal")
    finally:
        eq(d.stop(), 0, "daemon exit status")


@test
def limits_and_shutdown():
    d = Daemon(os.environ["SENDFILED_BIN"], os.path.join(TMP, "limits"),
               ["--max-connections", "2", "--max-in-flight", "2",
                "--max-in-flight-per-uid", "3", "--drain-timeout", "1500"])
    big = 16 * 1024 * 1024
    fd_a = open_src(make_file("limits-a", size=big))
    fd_b = open_src(make_file("limits-b", size=big))
    fd_c = open_src(make_file("limits-c", size=big))
    fd_s = open_src(make_file("limits-small", b"small"))
    conns = []
    try:
        c1 = Conn(d.path)
        conns.append(c1)
        c1.send(req_ping(1))
        expect(c1.wait(1), OK, what="conn 1 ping")
        c2 = Conn(d.path)
        conns.append(c2)
        c2.send(req_ping(1))
        expect(c2.wait(1), OK, what="conn 2 ping")
        # Third connection: accepted and closed at once, without a reply.
        c3 = Conn(d.path)
        conns.append(c3)
        check(c3.wait_eof(3), "connection past the limit is closed")
        eq(c3.arrival, [], "no reply past the connection limit")
        try:
            c3.send(req_ping(1))
            send_err = "none"
        except OSError as exc:
            send_err = errno.errorcode.get(exc.errno, exc.errno)
        note(f"send on a connection closed for the connection limit: error {send_err}")
        check(send_err in ("EPIPE", "ECONNRESET"), f"EPIPE on a send, got {send_err}")

        rx_a = Receiver(read=False, small_buffers=True)
        rx_b = Receiver(read=False, small_buffers=True)
        rx_c = Receiver(read=False, small_buffers=True)
        rx_x = Receiver()
        c1.send(req_sendfile(10), [rx_a.dst.fileno(), fd_a])
        c1.send(req_sendfile(11), [rx_b.dst.fileno(), fd_b])
        c1.send(req_sendfile(12), [rx_x.dst.fileno(), fd_s])
        expect(c1.wait(12), LIMIT, errno.EBUSY, "third in flight on one connection")
        c1.send(req_ping(13))
        expect(c1.wait(13), OK, what="ping at the in-flight limit")
        c2.send(req_sendfile(20), [rx_c.dst.fileno(), fd_c])
        c2.send(req_sendfile(21), [rx_x.dst.fileno(), fd_s])
        expect(c2.wait(21), LIMIT, errno.EUSERS, "fourth in flight for this uid")
        rx_x.close_dst()
        eq(rx_x.result()[0], 0, "refused requests sent nothing")
        eq(position(fd_s), 0, "position untouched")
        time.sleep(0.2)
        check(not c1.replies.get(10) and not c1.replies.get(11) and not c2.replies.get(20),
              "stalled transfers still in flight")

        d.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        rx_y = Receiver()
        c1.send(req_sendfile(14), [rx_y.dst.fileno(), fd_s])
        expect(c1.wait(14), SHUTTING_DOWN, errno.ESHUTDOWN, "Sendfile during shutdown")
        rx_y.close_dst()
        eq(rx_y.result()[0], 0, "nothing sent during shutdown")
        c1.send(req_ping(15))
        try:
            ping_resp = c1.wait(15, timeout=1)
        except (AssertionError, Closed) as exc:
            ping_resp = f"no reply ({exc})"
        note(f"Ping while draining: {ping_resp!r}")
        rx_a.release()
        a = c1.wait(10, timeout=5)
        expect(a, OK, what="transfer let finish during the drain")
        eq(a.bytes_sent, big, "drained transfer bytes_sent")
        check_position(fd_a, a, 0, 0)
        b = c1.wait(11, timeout=5)
        c = c2.wait(20, timeout=5)
        for what, r, fd, rx in (("conn 1", b, fd_b, rx_b), ("conn 2", c, fd_c, rx_c)):
            expect(r, CANCELLED, errno.ECANCELED, what + " after the drain timeout")
            check(0 < r.bytes_sent < big, f"{what}: some bytes sent: {r.bytes_sent}")
            check_position(fd, r, 0, 0)
        check(c1.wait_eof(5) and c2.wait_eof(5), "connections closed at the end")
        for rx, want in ((rx_a, big), (rx_b, b.bytes_sent), (rx_c, c.bytes_sent)):
            rx.close_dst()
            eq(rx.result()[0], want, "bytes received")
        d.proc.wait(10)
    finally:
        for c in conns:
            c.close()
        for fd in (fd_a, fd_b, fd_c, fd_s):
            os.close(fd)
        rc = d.stop()
    eq(rc, 0, "daemon exit status after SIGTERM")


@test
def shutdown_answers_unread_requests():
    # Requests the daemon has not read yet when it is told to stop: each gets
    # exactly one reply. The daemon is stopped (SIGSTOP) while they are sent,
    # so that on SIGCONT it finds more records than it reads per wake-up
    # (64) and the SIGTERM behind them: the first ones are served, every
    # later one is answered SHUTTING_DOWN with nothing sent, in order.
    n = 100
    d = Daemon(os.environ["SENDFILED_BIN"], os.path.join(TMP, "unread"))
    data = os.urandom(4096)
    fd = open_src(make_file("unread-src", data))
    rx = Receiver()
    try:
        with Conn(d.path) as conn:
            conn.send(req_ping(1000))
            expect(conn.wait(1000), OK, what="ping before the stop")
            os.kill(d.proc.pid, signal.SIGSTOP)
            try:
                # Stopped for real before the first record arrives.
                for _ in range(500):
                    with open(f"/proc/{d.proc.pid}/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] == "T":
                            break
                    time.sleep(0.01)
                else:
                    raise AssertionError("the daemon did not stop")
                for rid in range(1, n + 1):
                    conn.send(req_sendfile(rid, offset=0, count=4096), [rx.dst.fileno(), fd])
                os.kill(d.proc.pid, signal.SIGTERM)
            finally:
                os.kill(d.proc.pid, signal.SIGCONT)
            check(conn.wait_eof(10), "connection closed at the end")
            eq(sorted(r for r in conn.arrival if r != 1000), list(range(1, n + 1)),
               "one reply per request")
            served = [rid for rid in range(1, n + 1) if conn.replies[rid][0].status == OK]
            refused = [rid for rid in range(1, n + 1) if rid not in served]
            note(f"{len(served)} served, {len(refused)} refused by the stopping daemon")
            check(served and refused, "some served, the rest refused")
            eq(served, list(range(1, len(served) + 1)), "the first ones served")
            for rid in served:
                expect(conn.replies[rid][0], OK, what=f"request {rid}")
                eq(conn.replies[rid][0].bytes_sent, 4096, f"request {rid} bytes_sent")
            for rid in refused:
                expect(conn.replies[rid][0], SHUTTING_DOWN, errno.ESHUTDOWN, f"request {rid}")
                eq(conn.replies[rid][0].bytes_sent, 0, f"request {rid} bytes_sent")
            eq(conn.stray_fds, 0, "no descriptors in replies")
        eq(position(fd), 4096, "position set by the served ones")
        rx.close_dst()
        eq(rx.result()[0], 4096 * len(served), "bytes received")
    finally:
        os.close(fd)
        eq(d.stop(), 0, "daemon exit status")


@test
def other_destinations_and_sources():
    data = os.urandom(300000)
    src_path = make_file("other-src", data)
    fd = open_src(src_path)
    try:
        with Conn(D.path) as conn:
            # Destination: a regular file.
            out_path = os.path.join(TMP, "other-out")
            out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC)
            conn.send(req_sendfile(110), [out, fd])
            resp = conn.wait(110)
            os.close(out)
            expect(resp, OK, what="regular file destination")
            with open(out_path, "rb") as f:
                eq(sha_of(f.read()), sha_of(data), "regular file destination content")
            check_position(fd, resp, 0, 0)
            note(f"regular file destination: method {METHOD[resp.method]}")
            os.lseek(fd, 0, os.SEEK_SET)

            # Destination: an O_APPEND file; zero-copy refused without fallback.
            app = os.open(out_path, os.O_WRONLY | os.O_APPEND | os.O_TRUNC | os.O_CLOEXEC)
            conn.send(req_sendfile(111, count=1000, fallback=False), [app, fd])
            resp = conn.wait(111)
            expect(resp, NOT_AVAILABLE, errno.EINVAL, "O_APPEND destination, no fallback")
            eq(position(fd), 0, "position untouched")
            conn.send(req_sendfile(112, count=1000), [app, fd])
            resp = conn.wait(112)
            os.close(app)
            expect(resp, OK, what="O_APPEND destination with fallback")
            eq(resp.method, METHOD_READ_WRITE, "O_APPEND destination method")
            check_position(fd, resp, 0, 0)
            with open(out_path, "rb") as f:
                eq(f.read(), data[:1000], "O_APPEND destination content")
            os.lseek(fd, 0, os.SEEK_SET)

            # Destination: a pipe, read by a thread.
            pr, pw = os.pipe2(os.O_CLOEXEC)
            got = bytearray()

            def drain():
                while chunk := os.read(pr, 65536):
                    got.extend(chunk)
            t = threading.Thread(target=drain, daemon=True)
            t.start()
            conn.send(req_sendfile(113, offset=7), [pw, fd])
            os.close(pw)
            resp = conn.wait(113)
            t.join(5)
            os.close(pr)
            expect(resp, OK, what="pipe destination")
            eq(bytes(got), data[7:], "pipe destination content")
            check_position(fd, resp, 7, 0)
            note(f"pipe destination: method {METHOD[resp.method]}")
            os.lseek(fd, 0, os.SEEK_SET)

            # Destination: a character device.
            null = os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)
            conn.send(req_sendfile(114), [null, fd])
            os.close(null)
            resp = conn.wait(114)
            expect(resp, OK, what="/dev/null destination")
            eq(resp.bytes_sent, len(data), "/dev/null bytes_sent")
            check_position(fd, resp, 0, 0)
            os.lseek(fd, 0, os.SEEK_SET)

            # Source: a SOCK_STREAM socket, fed by a thread.
            feed_a, feed_b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

            def feed():
                feed_a.sendall(data)
                feed_a.close()
            t = threading.Thread(target=feed, daemon=True)
            t.start()
            rx = Receiver()
            conn.send(req_sendfile(115), [rx.dst.fileno(), feed_b.fileno()])
            feed_b.close()
            rx.close_dst()
            resp = conn.wait(115)
            t.join(5)
            expect(resp, OK, what="socket source")
            eq(resp.method, METHOD_SPLICE, "socket source method")
            n, digest = rx.result()
            eq(digest, sha_of(data), "socket source content")

            # Source: O_PATH is EBADF.
            opath = os.open(src_path, os.O_PATH | os.O_CLOEXEC)
            rx = Receiver()
            conn.send(req_sendfile(116), [rx.dst.fileno(), opath])
            os.close(opath)
            resp = conn.wait(116)
            rx.close_dst()
            expect(resp, INVALID_ARGUMENT, errno.EBADF, "O_PATH source")
            rx.result()

            # offset 2^63 - 1 is allowed (and past the end of the file).
            rx = Receiver()
            conn.send(req_sendfile(117, offset=(1 << 63) - 1), [rx.dst.fileno(), fd])
            resp = conn.wait(117)
            rx.close_dst()
            expect(resp, OK, what="offset 2^63 - 1")
            eq(resp.bytes_sent, 0, "offset 2^63 - 1 bytes_sent")
            rx.result()
        eq(position(fd), 0, "position")
    finally:
        os.close(fd)


@test
def peer_closed_mid_transfer():
    size = 64 * 1024 * 1024
    fd = open_src(make_file("big-peer", size=size))
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    dst = socket.create_connection(listener.getsockname())
    peer, _ = listener.accept()
    listener.close()
    try:
        with Conn(D.path) as conn:
            conn.send(req_sendfile(120, offset=100), [dst.fileno(), fd])
            dst.close()
            time.sleep(0.3)
            check(not conn.pump(0), "no reply while the receiver does not read")
            peer.recv(1000)
            # Closing with unread data resets the connection.
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            peer.close()
            resp = conn.wait(120, timeout=5)
        expect(resp, PEER_CLOSED)
        check(resp.error in (errno.EPIPE, errno.ECONNRESET),
              f"error EPIPE or ECONNRESET: {resp!r}")
        check(0 < resp.bytes_sent < size, f"some bytes sent: {resp!r}")
        check_position(fd, resp, 100, 0)
        note(f"peer reset mid-transfer: {resp!r}")
    finally:
        os.close(fd)
        peer.close()


@test
def request_without_a_known_op():
    with Conn(D.path) as conn:
        # A future operation (field 5) is an unknown field to this daemon: the request
        # then has no op it knows; the status table says EOPNOTSUPP.
        conn.send(f_varint(1, 130) + f_bytes(5, b""))
        future = conn.wait(130)
        conn.send(f_varint(1, 131))  # no op at all
        none = conn.wait(131)
        # Two members of the oneof: protobuf keeps the last one (here the Ping).
        conn.send(f_varint(1, 132) + f_bytes(2, b"") + f_bytes(4, b""))
        both = conn.wait(132)
        conn.send(req_ping(133))
        expect(conn.wait(133), OK, what="ping afterwards")
    note(f"unknown op field 5: {future!r}; no op: {none!r}; "
         f"Sendfile then Ping in one record, no descriptors: {both!r}")
    expect(future, INVALID_ARGUMENT, errno.EOPNOTSUPP, "unknown operation")
    check(none.status in (INVALID_ARGUMENT, PROTOCOL), f"no op refused: {none!r}")


@test
def reused_id_cancel():
    size = 64 * 1024 * 1024
    fds = [open_src(make_file(f"dup-{i}", size=size)) for i in range(2)]
    try:
        rxs = [Receiver(read=False, small_buffers=True) for _ in fds]
        with Conn(D.path) as conn:
            for rx, fd in zip(rxs, fds):
                conn.send(req_sendfile(140), [rx.dst.fileno(), fd])
                rx.close_dst()
            time.sleep(0.3)
            conn.send(req_cancel(141, 140))
            first = conn.wait(140)
            cancel = conn.wait(141)
            expect(cancel, OK, what="cancel")
            expect(first, CANCELLED, errno.ECANCELED, "one of the two")
            check(not conn.replies.get(140), "only one of the two was cancelled")
            # Which one? The cancelled one's position moved; the other is in flight and
            # owns its position, so only the receivers may be looked at.
            time.sleep(0.1)
            which = [i for i, fd in enumerate(fds) if position(fd) == first.final_offset]
            note(f"Cancel of an id used by two transfers in flight stopped "
                 f"transfer #{which} (0 = sent first)")
            rxs[0].release()
            rxs[1].release()
            second = conn.wait(140, timeout=10)
        expect(second, OK, what="the other one")
        eq(second.bytes_sent, size, "the other one's bytes_sent")
        for rx in rxs:
            rx.result()
    finally:
        for fd in fds:
            os.close(fd)


@test
def replies_carry_bytes_sent_and_final_offset():
    # Section 5: "bytes_sent and final_offset are always present in a daemon's replies".
    missing = [r for r in ALL_REPLIES
               if not {"bytes_sent", "final_offset"} <= r.present]
    check(ALL_REPLIES, "replies were collected")
    check(not missing, f"{len(missing)} of {len(ALL_REPLIES)} replies lack them, "
                       f"e.g. {missing[:3]!r} fields {[sorted(r.present) for r in missing[:3]]}")
    check(all(r.id != 0 for r in ALL_REPLIES), "no reply with id 0")
    bad = [r for r in ALL_REPLIES if r.unknown]
    check(not bad, f"replies with fields outside the schema: {bad[:3]!r}")
    long_msgs = [r for r in ALL_REPLIES if len(r.message.encode()) > 255]
    check(not long_msgs, f"message longer than 255 bytes: {long_msgs[:1]!r}")


# ---------------------------------------------------------------------------

def main():
    global D, TMP
    binary = os.environ.get("SENDFILED_BIN")
    if not binary:
        print("SENDFILED_BIN is not set", file=sys.stderr)
        return 2
    TMP = tempfile.mkdtemp(prefix="sfd-raw-")
    passed = failed = 0
    try:
        D = Daemon(binary, TMP)
        for fn in TESTS:
            name = fn.__name__.replace("_", "-")
            start = time.monotonic()
            try:
                fn()
                if D.proc.poll() is not None:
                    raise AssertionError(f"daemon exited with {D.proc.returncode}")
                now = D.settle_fds(D.baseline)
                eq(now, D.baseline, "daemon descriptor count back to its baseline")
            except Exception as exc:
                failed += 1
                detail = str(exc) if isinstance(exc, AssertionError) else \
                    "".join(traceback.format_exception_only(type(exc), exc)).strip()
                print(f"FAIL {name}: {detail}", flush=True)
                if not isinstance(exc, AssertionError):
                    traceback.print_exc()
                # Start the next test from where the daemon is now.
                D.baseline = D.settle_fds(None)
            else:
                passed += 1
                print(f"ok   {name} ({time.monotonic() - start:.2f} s)", flush=True)
        for text in NOTES:
            print(f"note: {text}")
        rc = D.stop()
        if rc != 0:
            print(f"FAIL daemon-exit: status {rc} after SIGTERM")
            failed += 1
        if failed:
            print("--- daemon log ---")
            print(D.log_text() if not D.log.closed else
                  open(os.path.join(TMP, "daemon.log"), errors="replace").read())
    finally:
        if D and D.proc.poll() is None:
            D.proc.kill()
            D.proc.wait()
        shutil.rmtree(TMP, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
