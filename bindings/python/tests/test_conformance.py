"""Conformance: loop.sendfile() and loop.sock_sendfile() through the daemon
behave as asyncio's own.

Every scenario runs three ways: asyncio's own implementation on asyncio's
loop (the reference), and the daemon installed into asyncio's loop and into
uvloop. Each run is checked against the scenario's expectations, and each
daemon run is also compared with the reference run: same return value or
same exception type and message, same file position afterwards, same bytes
received by the peer, reading resumed alike.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import pytest

import sendfiled
import sendfiled.aio
from conftest import MiB, expected, run
from harness import Pair

SMALL = MiB + 123
IMPLS = ["asyncio-native", "asyncio-daemon", "uvloop-daemon"]


@dataclass
class Outcome:
    result: Any = None  # an int, or the exception raised
    tell: Optional[int] = None
    data: bytes = b""
    reading: Optional[bool] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def exc(self) -> Optional[BaseException]:
        return self.result if isinstance(self.result, BaseException) else None


async def transfer(file: Any, offset: Any = 0, count: Any = None, *, fallback: bool = True,
                   pre: bytes = b"", post: bytes = b"", before: Optional[Callable] = None,
                   rcvbuf: Optional[int] = None) -> Outcome:
    """loop.sendfile() on a fresh connection, with ``pre`` written before and
    ``post`` after; the peer reads everything until the server closes."""
    loop = asyncio.get_running_loop()
    pair = await Pair.open(rcvbuf=rcvbuf)
    try:
        reader = asyncio.ensure_future(pair.read_all())
        t = pair.transport
        if pre:
            t.write(pre)
        if before is not None:
            before(pair)
        out = Outcome()
        try:
            out.result = await loop.sendfile(t, file, offset, count, fallback=fallback)
        except (Exception, asyncio.CancelledError) as e:  # noqa: B014
            out.result = e
        try:
            out.tell = file.tell()
        except (ValueError, OSError):
            pass
        out.reading = t.is_reading() if not t.is_closing() else None
        if post and not t.is_closing():
            t.write(post)
        t.close()
        out.data = await reader
        return out
    finally:
        await pair.close()


# -- scenarios ----------------------------------------------------------------


@dataclass
class Scenario:
    fn: Callable[[Dict[str, Path]], Any]
    check: Callable[[Outcome, str], None]
    offloads: int = 1  # requests the daemon answers in a daemon run
    # Compare exceptions by this base class rather than by type and message
    # (when the errno or the message depends on timing or on who explains).
    exc_base: Optional[type] = None
    compare_tell: bool = True
    compare_with_native: Callable[[str], bool] = lambda kind: True


def ok(n: int, tell: int, data: Optional[bytes] = None) -> Callable[[Outcome, str], None]:
    def check(o: Outcome, kind: str) -> None:
        assert o.result == n, o.result
        assert o.tell == tell
        if data is not None:
            assert o.data == data
        assert o.reading is True

    return check


def raises(exc_type: type, message: Optional[str] = None, tell: int = 0
           ) -> Callable[[Outcome, str], None]:
    def check(o: Outcome, kind: str) -> None:
        assert isinstance(o.result, exc_type), repr(o.result)
        if message is not None:
            assert str(o.result) == message
        assert o.tell == tell
        assert o.data == b""

    return check


def _open(files: Dict[str, Path], name: str = "small", mode: str = "rb") -> Any:
    return open(files[name], mode)


async def s_whole(files):
    with _open(files) as f:
        return await transfer(f)


async def s_offset(files):
    with _open(files) as f:
        return await transfer(f, 1000)


async def s_offset_count(files):
    with _open(files) as f:
        return await transfer(f, 1000, 5000)


async def s_count_past_eof(files):
    with _open(files) as f:
        return await transfer(f, SMALL - 100, 1000)


async def s_offset_past_eof(files):
    with _open(files) as f:
        f.seek(7)
        return await transfer(f, SMALL + 10)


async def s_position_elsewhere(files):
    # The position before the call does not matter: offset does.
    with _open(files) as f:
        f.seek(99999)
        return await transfer(f, 10, 20)


async def s_count_huge(files):
    with _open(files) as f:
        return await transfer(f, 100, 1 << 62)


async def s_count_overflow(files):
    with _open(files) as f:
        return await transfer(f, 0, 1 << 63)


async def s_offset_overflow(files):
    with _open(files) as f:
        return await transfer(f, 1 << 63)


async def s_empty(files):
    with _open(files, "empty") as f:
        return await transfer(f)


async def s_empty_with_count(files):
    with _open(files, "empty") as f:
        return await transfer(f, 0, 10)


async def s_count_zero(files):
    with _open(files) as f:
        return await transfer(f, 0, 0)


async def s_count_negative(files):
    with _open(files) as f:
        return await transfer(f, 0, -5)


async def s_count_float(files):
    with _open(files) as f:
        return await transfer(f, 0, 1.5)


async def s_offset_negative(files):
    with _open(files) as f:
        return await transfer(f, -1)


async def s_offset_str(files):
    with _open(files) as f:
        return await transfer(f, "10")


async def s_text_mode(files):
    with _open(files, mode="r") as f:
        return await transfer(f)


async def s_pre_post(files):
    # 8 MiB written first cannot all fit in the socket: the transport's
    # buffer must drain before the daemon writes.
    with _open(files) as f:
        return await transfer(f, 5, None, pre=b"<" * (8 * MiB), post=b">" * 1000)


async def s_closing(files):
    with _open(files) as f:
        return await transfer(f, before=lambda pair: pair.transport.close())


async def s_bytesio(files):
    f = io.BytesIO(expected(0, 100000))
    return await transfer(f, 10, 5000)


async def s_bytesio_no_fallback(files):
    f = io.BytesIO(expected(0, 100000))
    return await transfer(f, 10, 5000, fallback=False)


async def s_regular_no_fallback(files):
    with _open(files) as f:
        return await transfer(f, 0, None, fallback=False)


async def s_proc_file(files):
    # No sendfile(2) from this file: asyncio copies in-process, the daemon
    # copies in the daemon (method read_write). Its first 20 bytes (the
    # process name) do not change while the test runs.
    with open("/proc/self/status", "rb") as f:
        o = await transfer(f, 0, 20)
        o.extra["expect"] = open("/proc/self/status", "rb").read()[:20]
        return o


async def s_proc_file_no_fallback(files):
    with open("/proc/self/status", "rb") as f:
        return await transfer(f, 0, 20, fallback=False)


async def s_peer_reset(files):
    """The peer resets the connection mid-transfer."""
    loop = asyncio.get_running_loop()
    pair = await Pair.open(rcvbuf=64 * 1024)
    try:
        t = pair.transport

        async def peer():
            got = 0
            while got < 256 * 1024:
                d = await loop.sock_recv(pair.sock, 65536)
                if not d:
                    break
                got += len(d)
            pair.reset()

        ptask = asyncio.ensure_future(peer())
        out = Outcome()
        with _open(files, "medium") as f:
            try:
                out.result = await loop.sendfile(t, f, 100)
            except Exception as e:
                out.result = e
            out.tell = f.tell()
        await ptask
        t.close()
        return out
    finally:
        await pair.close()


async def s_resume_reading(files):
    """Data the peer sends during the transfer reaches the protocol after it."""
    loop = asyncio.get_running_loop()
    pair = await Pair.open()
    try:
        t = pair.transport
        reader = asyncio.ensure_future(pair.read_all(SMALL))
        await loop.sock_sendall(pair.sock, b"ping")
        out = Outcome()
        with _open(files) as f:
            out.result = await loop.sendfile(t, f)
            out.tell = f.tell()
        out.reading = t.is_reading()
        out.data = await reader
        await asyncio.wait_for(pair.proto.got_data.wait(), 5)
        out.extra["received"] = bytes(pair.proto.received)
        return out
    finally:
        await pair.close()


def check_bytesio(o: Outcome, kind: str) -> None:
    if kind == "uvloop-daemon":
        # Not for the daemon (no descriptor): uvloop's own loop.sendfile
        # runs, and uvloop has none.
        assert isinstance(o.result, NotImplementedError)
        return
    assert o.result == 5000
    assert o.tell == 5010
    assert o.data == expected(10, 5000)


def check_peer_reset(o: Outcome, kind: str) -> None:
    assert isinstance(o.result, ConnectionError), repr(o.result)
    assert o.tell > 100
    if kind.endswith("daemon"):
        # The position is what the daemon sent, which the exception tells.
        assert o.tell == 100 + o.result.bytes_sent
        assert o.result.final_offset == o.tell


def check_proc(o: Outcome, kind: str) -> None:
    assert o.result == 20
    assert o.tell == 20
    assert o.data == o.extra["expect"]


def check_proc_no_fallback(o: Outcome, kind: str) -> None:
    assert isinstance(o.result, asyncio.SendfileNotAvailableError), repr(o.result)
    assert o.tell == 0
    assert o.data == b""
    assert o.reading is True


def check_resume(o: Outcome, kind: str) -> None:
    assert o.result == SMALL and o.tell == SMALL
    assert o.reading is True
    assert o.data == expected(0, SMALL)
    assert o.extra["received"] == b"ping"


SCENARIOS: Dict[str, Scenario] = {
    "whole": Scenario(s_whole, ok(SMALL, SMALL, expected(0, SMALL))),
    "offset": Scenario(s_offset, ok(SMALL - 1000, SMALL, expected(1000, SMALL - 1000))),
    "offset_count": Scenario(s_offset_count, ok(5000, 6000, expected(1000, 5000))),
    "count_past_eof": Scenario(s_count_past_eof, ok(100, SMALL, expected(SMALL - 100, 100))),
    "offset_past_eof": Scenario(s_offset_past_eof, ok(0, 7, b"")),
    "position_elsewhere": Scenario(s_position_elsewhere, ok(20, 30, expected(10, 20))),
    "count_huge": Scenario(s_count_huge, ok(SMALL - 100, SMALL, expected(100, SMALL - 100))),
    "count_overflow": Scenario(s_count_overflow, raises(
        OverflowError, "Python int too large to convert to C ssize_t"), offloads=0),
    "offset_overflow": Scenario(s_offset_overflow, raises(
        OverflowError, "Python int too large to convert to C long"), offloads=0),
    # Size 0 is not proof of emptiness (/proc files): the daemon is asked.
    "empty": Scenario(s_empty, ok(0, 0, b"")),
    "empty_with_count": Scenario(s_empty_with_count, ok(0, 0, b"")),
    "count_zero": Scenario(s_count_zero, raises(ValueError, "count must be a positive integer "
                                                "(got 0)"), offloads=0),
    "count_negative": Scenario(s_count_negative, raises(
        ValueError, "count must be a positive integer (got -5)"), offloads=0),
    "count_float": Scenario(s_count_float, raises(
        TypeError, "count must be a positive integer (got 1.5)"), offloads=0),
    "offset_negative": Scenario(s_offset_negative, raises(
        ValueError, "offset must be a non-negative integer (got -1)"), offloads=0),
    "offset_str": Scenario(s_offset_str, raises(
        TypeError, "offset must be a non-negative integer (got '10')"), offloads=0),
    "text_mode": Scenario(s_text_mode, raises(
        ValueError, "file should be opened in binary mode"), offloads=0),
    "pre_post": Scenario(s_pre_post, ok(SMALL - 5, SMALL, b"<" * (8 * MiB) +
                                        expected(5, SMALL - 5) + b">" * 1000)),
    "closing": Scenario(s_closing, raises(RuntimeError, "Transport is closing"), offloads=0),
    "bytesio": Scenario(s_bytesio, check_bytesio, offloads=0,
                        compare_with_native=lambda kind: kind != "uvloop-daemon"),
    "bytesio_no_fallback": Scenario(s_bytesio_no_fallback, raises(
        asyncio.SendfileNotAvailableError, "not a regular file"), offloads=0),
    "regular_no_fallback": Scenario(s_regular_no_fallback, ok(SMALL, SMALL, expected(0, SMALL))),
    "proc_file": Scenario(s_proc_file, check_proc),
    "proc_file_no_fallback": Scenario(s_proc_file_no_fallback, check_proc_no_fallback,
                                      exc_base=asyncio.SendfileNotAvailableError),
    "peer_reset": Scenario(s_peer_reset, check_peer_reset, exc_base=ConnectionError,
                           compare_tell=False),
    "resume_reading": Scenario(s_resume_reading, check_resume),
}


def agree(ref: Outcome, got: Outcome, sc: Scenario) -> None:
    """The daemon's run agrees with asyncio's own."""
    if ref.exc is not None:
        if sc.exc_base is None:
            assert isinstance(got.result, type(ref.exc)), (repr(ref.result), repr(got.result))
            assert str(got.result) == str(ref.result)
        else:
            # For instance, which errno a reset peer shows first (ECONNRESET
            # or EPIPE) is a matter of timing; both are ConnectionErrors.
            assert isinstance(ref.exc, sc.exc_base)
            assert isinstance(got.result, sc.exc_base), repr(got.result)
        if sc.compare_tell:
            assert got.tell == ref.tell
    else:
        assert got.result == ref.result
        assert got.tell == ref.tell
    assert got.data == ref.data
    assert got.reading == ref.reading
    assert got.extra == ref.extra


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_loop_sendfile(name: str, impl: str, daemon, files) -> None:
    sc = SCENARIOS[name]
    kind, how = impl.split("-")
    before = sendfiled.stats()
    got = run(kind, sc.fn, files, install=(how == "daemon"), path=daemon.path,
              require_daemon=True)
    after = sendfiled.stats()
    sc.check(got, impl)
    if how == "native":
        assert after["offloaded"] == before["offloaded"]
        return
    assert after["offloaded"] - before["offloaded"] == sc.offloads
    assert after["in_flight"] == 0
    if sc.compare_with_native(impl):
        ref = run("asyncio", sc.fn, files)
        agree(ref, got, sc)


# -- sock_sendfile ------------------------------------------------------------


async def sock_transfer(file: Any, offset: Any = 0, count: Any = None, *, fallback: bool = True,
                        sock_type: int = socket.SOCK_STREAM, wrap: Any = None,
                        blocking: bool = False, debug: bool = False) -> Outcome:
    """loop.sock_sendfile() from the server's accepted socket."""
    loop = asyncio.get_running_loop()
    out = Outcome()
    if sock_type != socket.SOCK_STREAM:
        with socket.socket(socket.AF_INET, sock_type) as s:
            s.setblocking(False)
            try:
                out.result = await loop.sock_sendfile(s, file, offset, count, fallback=fallback)
            except Exception as e:
                out.result = e
            out.tell = file.tell()
            return out
    lsock = socket.create_server(("127.0.0.1", 0))
    c = socket.socket()
    try:
        c.setblocking(False)
        await loop.sock_connect(c, lsock.getsockname())
        s, _ = lsock.accept()
        with s:
            s.setblocking(blocking)
            target: Any = s
            if wrap is not None:
                target = wrap(s)
            reader = asyncio.ensure_future(_recv_all(loop, c))
            loop.set_debug(debug)
            try:
                out.result = await loop.sock_sendfile(target, file, offset, count,
                                                      fallback=fallback)
            except Exception as e:
                out.result = e
            finally:
                loop.set_debug(False)
            out.tell = file.tell()
            if target is not s:
                target.close()  # a duplicate of s
            s.shutdown(socket.SHUT_WR)
            out.data = await reader
        return out
    finally:
        c.close()
        lsock.close()


async def _recv_all(loop: asyncio.AbstractEventLoop, c: socket.socket) -> bytes:
    out = bytearray()
    while True:
        d = await loop.sock_recv(c, 1 << 20)
        if not d:
            return bytes(out)
        out += d


def _tls_wrap(s: socket.socket) -> ssl.SSLSocket:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(socket.socket(fileno=os.dup(s.fileno())),
                           do_handshake_on_connect=False)


async def k_whole(files):
    with _open(files) as f:
        return await sock_transfer(f)


async def k_offset_count(files):
    with _open(files) as f:
        return await sock_transfer(f, 3, 70000)


async def k_medium(files):
    with _open(files, "medium") as f:
        return await sock_transfer(f, MiB)


async def k_count_zero(files):
    with _open(files) as f:
        return await sock_transfer(f, 0, 0)


async def k_udp(files):
    with _open(files) as f:
        return await sock_transfer(f, sock_type=socket.SOCK_DGRAM)


async def k_ssl_socket(files):
    with _open(files) as f:
        return await sock_transfer(f, wrap=_tls_wrap)


async def k_blocking_debug(files):
    with _open(files) as f:
        return await sock_transfer(f, blocking=True, debug=True)


async def k_empty(files):
    with _open(files, "empty") as f:
        return await sock_transfer(f)


async def k_bytesio_no_fallback(files):
    return await sock_transfer(io.BytesIO(b"x" * 1000), fallback=False)


def check_k_medium(o: Outcome, kind: str) -> None:
    assert o.result == 63 * MiB and o.tell == 64 * MiB
    assert o.data == expected(MiB, 63 * MiB)


def check_k_plain(n: int, tell: int, data: bytes) -> Callable[[Outcome, str], None]:
    def check(o: Outcome, kind: str) -> None:
        assert o.result == n, repr(o.result)
        assert o.tell == tell
        assert o.data == data
    return check


def check_k_exc(t: type, msg: str, data: Optional[bytes] = b"") -> Callable[[Outcome, str], None]:
    def check(o: Outcome, kind: str) -> None:
        assert isinstance(o.result, t), repr(o.result)
        assert str(o.result) == msg
        assert o.data == data or data is None
    return check


SOCK_SCENARIOS: Dict[str, Scenario] = {
    "whole": Scenario(k_whole, check_k_plain(SMALL, SMALL, expected(0, SMALL))),
    "offset_count": Scenario(k_offset_count, check_k_plain(70000, 70003, expected(3, 70000))),
    "medium": Scenario(k_medium, check_k_medium),
    # Size 0 is not proof of emptiness (/proc files): the daemon is asked.
    "empty": Scenario(k_empty, check_k_plain(0, 0, b"")),
    "count_zero": Scenario(k_count_zero, check_k_exc(
        ValueError, "count must be a positive integer (got 0)"), offloads=0),
    "udp": Scenario(k_udp, check_k_exc(
        ValueError, "only SOCK_STREAM type sockets are supported", None), offloads=0),
    "ssl_socket": Scenario(k_ssl_socket, check_k_exc(
        TypeError, "Socket cannot be of type SSLSocket"), offloads=0),
    "blocking_debug": Scenario(k_blocking_debug, check_k_exc(
        ValueError, "the socket must be non-blocking"), offloads=0),
    "bytesio_no_fallback": Scenario(k_bytesio_no_fallback, check_k_exc(
        asyncio.SendfileNotAvailableError, "not a regular file"), offloads=0),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", list(SOCK_SCENARIOS))
def test_sock_sendfile(name: str, impl: str, daemon, files) -> None:
    sc = SOCK_SCENARIOS[name]
    kind, how = impl.split("-")
    before = sendfiled.stats()
    got = run(kind, sc.fn, files, install=(how == "daemon"), path=daemon.path,
              require_daemon=True)
    after = sendfiled.stats()
    sc.check(got, impl)
    if how == "native":
        assert after["offloaded"] == before["offloaded"]
        return
    assert after["offloaded"] - before["offloaded"] == sc.offloads
    ref = run("asyncio", sc.fn, files)
    agree_sock(ref, got)


def agree_sock(ref: Outcome, got: Outcome) -> None:
    if ref.exc is not None:
        assert isinstance(got.result, type(ref.exc)), (repr(ref.result), repr(got.result))
        assert str(got.result) == str(ref.result)
    else:
        assert got.result == ref.result
    assert got.tell == ref.tell
    assert got.data == ref.data
