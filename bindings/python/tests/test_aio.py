"""sendfiled.aio: install/uninstall, fallbacks, cancellation, concurrency, leaks."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import ssl
from pathlib import Path

import pytest

import sendfiled
import sendfiled.aio as aio
from conftest import LOOP_KINDS, MiB, Verifier, expected, new_loop, run
from harness import Pair

HERE = Path(__file__).resolve().parent
SMALL = MiB + 123


def delta(before: dict, after: dict, key: str) -> int:
    return after[key] - before[key]


async def send_small(files, **kw) -> int:
    loop = asyncio.get_running_loop()
    pair = await Pair.open()
    try:
        reader = asyncio.ensure_future(pair.read_all())
        with open(files["small"], "rb") as f:
            n = await loop.sendfile(pair.transport, f, **kw)
            assert f.tell() == SMALL
        pair.transport.close()
        assert await reader == expected(0, SMALL)
        return n
    finally:
        await pair.close()


# -- install ------------------------------------------------------------------


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_install_uninstall(kind, daemon, files):
    loop = new_loop(kind)
    try:
        cls_sendfile = type(loop).sendfile
        aio.install(loop, path=daemon.path)
        assert aio.installed(loop)
        assert "sendfile" in vars(loop) and "sock_sendfile" in vars(loop)
        before = sendfiled.stats()
        assert loop.run_until_complete(send_small(files)) == SMALL
        assert delta(before, sendfiled.stats(), "offloaded") == 1
        assert aio.connected(loop)
        fds = daemon.fd_count()
        aio.uninstall(loop)
        assert not aio.installed(loop)
        assert "sendfile" not in vars(loop) and "close" not in vars(loop)
        assert type(loop).sendfile is cls_sendfile
        # The daemon closes its end of our connection.
        assert daemon.wait_fd_count(fds - 1) == fds - 1
    finally:
        loop.close()


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_module_functions_without_install(kind, daemon, files):
    async def main():
        loop = asyncio.get_running_loop()
        pair = await Pair.open()
        try:
            reader = asyncio.ensure_future(pair.read_all())
            with open(files["small"], "rb") as f:
                n = await aio.sendfile(pair.transport, f, 10, 1000)
                assert (n, f.tell()) == (1000, 1010)
                # sock_sendfile on a socket of the same kind
                n = await aio.sock_sendfile(pair.transport.get_extra_info("socket"), f, 0, 5)
                assert (n, f.tell()) == (5, 5)
            pair.transport.close()
            assert await reader == expected(10, 1000) + expected(0, 5)
        finally:
            await pair.close()
            aio.close(loop)
        assert not aio.connected(loop)

    before = sendfiled.stats()
    run(kind, main)
    assert delta(before, sendfiled.stats(), "offloaded") == 2


def test_loop_factory(daemon, files):
    before = sendfiled.stats()
    with asyncio.Runner(loop_factory=aio.loop_factory(path=daemon.path)) as r:
        assert r.run(send_small(files)) == SMALL
        assert aio.installed(r.get_loop())
    assert delta(before, sendfiled.stats(), "offloaded") == 1


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_loop_close_releases_connection(kind, daemon, files):
    loop = new_loop(kind)
    aio.install(loop, path=daemon.path)
    fds = daemon.fd_count()
    loop.run_until_complete(send_small(files))
    assert daemon.wait_fd_count(fds + 1) == fds + 1
    loop.close()
    assert daemon.wait_fd_count(fds) == fds


# -- the transport hand-over --------------------------------------------------


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_write_buffer_drained_first(kind, daemon, files):
    """Data buffered in the transport goes out before the file, in order."""

    async def main():
        loop = asyncio.get_running_loop()
        pair = await Pair.open(rcvbuf=128 * 1024)
        try:
            t = pair.transport
            t.write(b"A" * (16 * MiB))
            assert t.get_write_buffer_size() > 0  # the drain is really exercised
            reader = asyncio.ensure_future(pair.read_all())
            with open(files["small"], "rb") as f:
                assert await loop.sendfile(t, f) == SMALL
            t.write(b"Z")
            t.close()
            data = await reader
            assert data == b"A" * (16 * MiB) + expected(0, SMALL) + b"Z"
            # The protocol's flow control is left as it was.
            assert pair.proto.pauses == pair.proto.resumes
        finally:
            await pair.close()

    run(kind, main, install=True, path=daemon.path, require_daemon=True)


def test_write_during_sendfile_refused_like_asyncio(daemon, files):
    async def main():
        loop = asyncio.get_running_loop()
        pair = await Pair.open(rcvbuf=64 * 1024)
        try:
            reader = asyncio.ensure_future(pair.read_all())
            with open(files["medium"], "rb") as f:
                task = asyncio.ensure_future(loop.sendfile(pair.transport, f))
                await asyncio.sleep(0.05)
                with pytest.raises(RuntimeError, match="unable to write; sendfile is in progress"):
                    pair.transport.write(b"x")
                assert await task == 64 * MiB
            pair.transport.close()
            assert len(await reader) == 64 * MiB
        finally:
            await pair.close()

    run("asyncio", main, install=True, path=daemon.path, require_daemon=True)


# -- concurrency --------------------------------------------------------------


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_many_in_flight_one_connection(kind, daemon, files):
    """Many transfers at once from one loop share one daemon connection."""
    N = 64
    SIZE = 4 * MiB

    async def main():
        loop = asyncio.get_running_loop()
        # Earlier tests' connections are closed; the daemon notices a moment
        # later.
        for _ in range(100):
            ds = daemon.stats()
            if ds is None or ds["connections"] == 0:
                break
            await asyncio.sleep(0.01)
        fds0 = daemon.fd_count()
        pairs = [await Pair.open(rcvbuf=64 * 1024) for _ in range(N)]
        f = open(files["medium"], "rb")
        fs = [open(files["medium"], "rb") for _ in range(N)]
        try:
            # Nobody reads yet: every transfer stays in flight.
            tasks = [asyncio.ensure_future(loop.sendfile(p.transport, fi, i * 4096, SIZE))
                     for i, (p, fi) in enumerate(zip(pairs, fs))]
            # Generous: a loaded machine takes its time to start them all.
            for _ in range(3000):
                await asyncio.sleep(0.01)
                if sendfiled.stats()["in_flight"] == N:
                    break
            assert sendfiled.stats()["in_flight"] == N
            # Sent is not yet read: the daemon may still be reading the
            # last of them.
            for _ in range(3000):
                ds = daemon.stats()
                if ds is None or ds["in_flight"] == N:
                    break
                await asyncio.sleep(0.01)
            if ds is not None:
                # The daemon's view: one connection carries all of them.
                assert ds["connections"] == 1
                assert ds["in_flight"] == N
            else:
                # One connection, plus the two descriptors of each transfer.
                assert daemon.fd_count() == fds0 + 1 + 2 * N
            readers = [asyncio.ensure_future(p.read_all(SIZE)) for p in pairs]
            assert await asyncio.gather(*tasks) == [SIZE] * N
            for i, (r, fi) in enumerate(zip(readers, fs)):
                assert await r == expected(i * 4096, SIZE)
                assert fi.tell() == i * 4096 + SIZE
            assert aio.connected(loop)
        finally:
            f.close()
            for fi in fs:
                fi.close()
            for p in pairs:
                await p.close()

    before = sendfiled.stats()
    run(kind, main, install=True, path=daemon.path, require_daemon=True)
    assert delta(before, sendfiled.stats(), "offloaded") == N


# -- cancellation -------------------------------------------------------------


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_cancel_settles_position(kind, daemon, files):
    """Cancelling the awaiting task stops the daemon's transfer; the file
    position is then exactly what the peer receives, and nothing leaks."""
    daemon_fds = daemon.fds()
    dstats = daemon.stats()

    async def main():
        loop = asyncio.get_running_loop()
        pair = await Pair.open(rcvbuf=64 * 1024)
        try:
            v = Verifier(start=100)
            with open(files["medium"], "rb") as f:
                task = asyncio.ensure_future(loop.sendfile(pair.transport, f, 100))
                # Read slowly until the transfer is well under way.
                while v.received < 2 * MiB:
                    v.feed(await loop.sock_recv(pair.sock, 65536))
                assert not task.done()
                before = sendfiled.stats()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                after = sendfiled.stats()
                assert delta(before, after, "cancelled") == 1
                assert after["in_flight"] == 0
                tell = f.tell()
                assert os.lseek(f.fileno(), 0, os.SEEK_CUR) == tell
                if dstats is not None:
                    # The daemon's side: the transfer is over, and cancelled.
                    now = daemon.stats()
                    assert now["in_flight"] == 0
                    assert now["by_status"]["cancelled"] == dstats["by_status"]["cancelled"] + 1
            # The transport is usable again: close it, and the peer gets
            # everything that was sent, then EOF.
            assert pair.transport.is_reading()
            pair.transport.close()
            while True:
                d = await loop.sock_recv(pair.sock, 1 << 20)
                if not d:
                    break
                v.feed(d)
            assert 2 * MiB <= tell - 100 < 64 * MiB - 100
            assert v.received == tell - 100
        finally:
            await pair.close()

    run(kind, main, install=True, path=daemon.path, require_daemon=True)
    # The daemon holds exactly what it held before (our connection is gone).
    for _ in range(200):
        if daemon.fds() == daemon_fds:
            break
        import time
        time.sleep(0.01)
    assert daemon.fds() == daemon_fds


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_cancel_twice_still_waits(kind, daemon, files):
    async def main():
        loop = asyncio.get_running_loop()
        pair = await Pair.open(rcvbuf=64 * 1024)
        try:
            with open(files["medium"], "rb") as f:
                task = asyncio.ensure_future(loop.sendfile(pair.transport, f))
                await loop.sock_recv(pair.sock, 65536)
                task.cancel()
                await asyncio.sleep(0)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert f.tell() > 0
                assert sendfiled.stats()["in_flight"] == 0
        finally:
            await pair.close()

    run(kind, main, install=True, path=daemon.path, require_daemon=True)


# -- without the daemon -------------------------------------------------------


def test_no_daemon_falls_back_and_warns_once(tmp_path, files, caplog):
    missing = str(tmp_path / "nobody.sock")
    before = sendfiled.stats()
    caplog.set_level(logging.WARNING, logger="sendfiled")

    async def main():
        assert await send_small(files) == SMALL  # asyncio's own sendfile
        assert await send_small(files) == SMALL

    run("asyncio", main, install=True, path=missing, retry_interval=0)
    after = sendfiled.stats()
    assert delta(before, after, "fallback_no_daemon") == 2
    assert delta(before, after, "offloaded") == 0
    assert missing in after["last_error"]
    warnings = [r for r in caplog.records if r.name == "sendfiled"]
    assert len(warnings) == 1, warnings
    assert missing in warnings[0].getMessage()
    # Formatted the usual way, the logger's name is said once.
    line = logging.Formatter(logging.BASIC_FORMAT).format(warnings[0])
    assert line.startswith("WARNING:sendfiled:") and line.count("sendfiled:") == 1, line


def test_no_daemon_uvloop_uses_its_own(tmp_path, files):
    """uvloop has no sendfile of its own: callers get its NotImplementedError,
    which frameworks (aiohttp) answer with their own copy loop."""
    async def main():
        with pytest.raises(NotImplementedError):
            await send_small(files)

    run("uvloop", main, install=True, path=str(tmp_path / "nobody.sock"))


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_require_daemon(kind, tmp_path, files):
    missing = str(tmp_path / "nobody.sock")

    async def main():
        with pytest.raises(sendfiled.DaemonUnavailableError) as ei:
            await send_small(files)
        assert ei.value.errno == 2 and ei.value.path == missing
        assert missing in str(ei.value)

    run(kind, main, install=True, path=missing, require_daemon=True)


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_daemon_restart(kind, own_daemon, files):
    d = own_daemon()

    async def main():
        loop = asyncio.get_running_loop()
        s0 = sendfiled.stats()
        assert await send_small(files) == SMALL
        d.stop()
        await asyncio.sleep(0.1)  # the loop sees the connection end
        assert not aio.connected(loop)
        if kind == "asyncio":
            assert await send_small(files) == SMALL  # in-process
        d.start()
        assert await send_small(files) == SMALL  # reconnected
        s1 = sendfiled.stats()
        assert delta(s0, s1, "offloaded") == 2
        assert delta(s0, s1, "fallback_no_daemon") == (1 if kind == "asyncio" else 0)

    run(kind, main, install=True, path=d.path, retry_interval=0)


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_daemon_killed_mid_transfer(kind, own_daemon, files):
    d = own_daemon()

    async def main():
        loop = asyncio.get_running_loop()
        pair = await Pair.open(rcvbuf=64 * 1024)
        try:
            with open(files["medium"], "rb") as f:
                task = asyncio.ensure_future(loop.sendfile(pair.transport, f))
                await loop.sock_recv(pair.sock, 65536)
                d.proc.send_signal(signal.SIGKILL)
                with pytest.raises(sendfiled.DaemonUnavailableError):
                    await task
                assert sendfiled.stats()["in_flight"] == 0
        finally:
            await pair.close()

    run(kind, main, install=True, path=d.path)


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_daemon_killed_mid_transfer_outcome_unknown(kind, own_daemon, files):
    """SIGKILL with the aio client's sendfile in flight: OutcomeUnknownError;
    the file position, the error's bytes_sent and what the receiver got agree;
    nothing leaks (the autouse fixture checks the descriptors)."""
    d = own_daemon()
    off = 4096

    async def main():
        loop = asyncio.get_running_loop()
        pair = await Pair.open(rcvbuf=64 * 1024)
        try:
            with open(files["medium"], "rb") as f:
                task = asyncio.ensure_future(loop.sendfile(pair.transport, f, off))
                first = await loop.sock_recv(pair.sock, 65536)
                assert first
                d.proc.send_signal(signal.SIGKILL)
                with pytest.raises(sendfiled.OutcomeUnknownError) as ei:
                    await task
                e = ei.value
                assert e.errno == errno.ECONNRESET
                assert "outcome unknown" in str(e)
                pair.transport.close()
                rest = await pair.read_all()
                got = first + rest
                assert 0 < len(got) < os.path.getsize(files["medium"]) - off
                assert f.tell() == off + len(got)
                assert os.lseek(f.fileno(), 0, os.SEEK_CUR) == off + len(got)
                assert e.bytes_sent == len(got)
                assert got == expected(off, len(got))
                assert sendfiled.stats()["in_flight"] == 0
                assert not aio.connected(loop)
        finally:
            await pair.close()

    run(kind, main, install=True, path=d.path)


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_ping(kind, daemon, files):
    """await aio.ping(): who answers, while a transfer is in flight on the
    loop's own connection; that transfer still completes with its bytes."""

    async def main():
        loop = asyncio.get_running_loop()
        pair = await Pair.open(rcvbuf=64 * 1024)
        try:
            with open(files["medium"], "rb") as f:
                task = asyncio.ensure_future(loop.sendfile(pair.transport, f))
                first = await loop.sock_recv(pair.sock, 65536)
                info = await aio.ping(timeout=10)
                assert isinstance(info, sendfiled.PingInfo)
                assert info.protocol_version == 1
                assert info.daemon_version
                with sendfiled.Client(daemon.path) as c:
                    assert c.ping() == info
                assert not task.done()
                reader = asyncio.ensure_future(pair.read_all())
                n = await task
                pair.transport.close()
                size = os.path.getsize(files["medium"])
                assert n == size
                assert first + await reader == expected(0, size)
        finally:
            await pair.close()

    run(kind, main, install=True, path=daemon.path)


def test_limit_falls_back_or_raises(own_daemon, files):
    d = own_daemon("--max-in-flight", "1")

    async def slow_and_fast(require: bool):
        loop = asyncio.get_running_loop()
        aio.install(loop, path=d.path, require_daemon=require)
        a = await Pair.open(rcvbuf=64 * 1024)
        try:
            with open(files["medium"], "rb") as f:
                task = asyncio.ensure_future(loop.sendfile(a.transport, f))
                await loop.sock_recv(a.sock, 65536)
                before = sendfiled.stats()
                if require:
                    with pytest.raises(sendfiled.LimitError) as ei:
                        await send_small(files)
                    assert ei.value.bytes_sent == 0
                else:
                    assert await send_small(files) == SMALL
                    assert delta(before, sendfiled.stats(), "fallback_limit") == 1
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
        finally:
            await a.close()

    run("asyncio", slow_and_fast, False)
    run("asyncio", slow_and_fast, True)


# -- TLS ----------------------------------------------------------------------


def _tls_contexts():
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(HERE / "tls-cert.pem", HERE / "tls-key.pem")
    client = ssl.create_default_context(cafile=str(HERE / "tls-cert.pem"))
    return server, client


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_tls_never_reaches_the_daemon(kind, daemon, files):
    server_ctx, client_ctx = _tls_contexts()

    async def main():
        loop = asyncio.get_running_loop()
        got = loop.create_future()

        async def handle(reader, writer):
            try:
                with open(files["small"], "rb") as f:
                    try:
                        n = await loop.sendfile(writer.transport, f, 5)
                        got.set_result((n, f.tell()))
                    except Exception as e:
                        got.set_result(e)
                try:
                    with open(files["small"], "rb") as f:
                        await loop.sendfile(writer.transport, f, fallback=False)
                except BaseException as e:
                    got2.set_result(e)
            finally:
                writer.close()

        got2 = loop.create_future()
        srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        port = srv.sockets[0].getsockname()[1]
        before = sendfiled.stats()
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
                                              server_hostname="localhost")
        data = await r.read()
        w.close()
        res = await got
        e2 = await got2
        srv.close()
        await srv.wait_closed()
        after = sendfiled.stats()
        assert delta(before, after, "offloaded") == 0
        assert delta(before, after, "fallback_tls") == 2
        if kind == "asyncio":
            assert res == (SMALL - 5, SMALL)
            assert data == expected(5, SMALL - 5)
            # asyncio's own answer for fallback=False on a TLS transport
            assert isinstance(e2, RuntimeError)
            assert str(e2).startswith("fallback is disabled and native sendfile is not "
                                      "supported for transport")
        else:
            assert isinstance(res, NotImplementedError)  # uvloop's own answer
            assert isinstance(e2, NotImplementedError)

    run(kind, main, install=True, path=daemon.path, require_daemon=True)


def test_proc_file_uses_daemon_copy(daemon):
    async def main():
        loop = asyncio.get_running_loop()
        pair = await Pair.open()
        try:
            reader = asyncio.ensure_future(pair.read_all())
            with open("/proc/self/status", "rb") as f:
                assert await loop.sendfile(pair.transport, f, 0, 10) == 10
            pair.transport.close()
            assert await reader == open("/proc/self/status", "rb").read()[:10]
        finally:
            await pair.close()

    before = sendfiled.stats()
    run("asyncio", main, install=True, path=daemon.path, require_daemon=True)
    after = sendfiled.stats()
    assert after["methods"]["read_write"] - before["methods"]["read_write"] == 1


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_daemon_stopping(kind, own_daemon, files):
    """SIGTERM: the transfer in flight still completes through the stopping
    daemon; a new request (answered SHUTTING_DOWN, nothing sent) is tried on
    a new connection, and with no daemon listening runs in-process."""
    d = own_daemon("--drain-timeout", "20000")

    async def main():
        loop = asyncio.get_running_loop()
        a = await Pair.open(rcvbuf=64 * 1024)
        try:
            with open(files["medium"], "rb") as f:
                task = asyncio.ensure_future(loop.sendfile(a.transport, f, 7))
                v = Verifier(7)
                v.feed(await loop.sock_recv(a.sock, 65536))
                d.proc.send_signal(signal.SIGTERM)
                for _ in range(500):
                    if not os.path.exists(d.path):
                        break
                    await asyncio.sleep(0.01)
                before = sendfiled.stats()
                if kind == "asyncio":
                    assert await send_small(files) == SMALL
                else:
                    with pytest.raises(NotImplementedError):  # uvloop's own
                        await send_small(files)
                after = sendfiled.stats()
                assert after["offloaded"] == before["offloaded"]
                assert (delta(before, after, "fallback_limit") +
                        delta(before, after, "fallback_no_daemon")) == 1
                while v.pos < 64 * MiB:
                    v.feed(await loop.sock_recv(a.sock, 1 << 20))
                assert await task == 64 * MiB - 7
                assert f.tell() == 64 * MiB
        finally:
            await a.close()

    run(kind, main, install=True, path=d.path, retry_interval=0)
    d.proc.wait(10)


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_datagram_transport_left_to_the_loop(kind, daemon, files):
    async def main():
        loop = asyncio.get_running_loop()
        t, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                   local_addr=("127.0.0.1", 0))
        try:
            with open(files["small"], "rb") as f:
                if kind == "asyncio":
                    with pytest.raises(RuntimeError, match="sendfile is not supported for "
                                                           "transport"):
                        await loop.sendfile(t, f)
                else:
                    with pytest.raises(NotImplementedError):
                        await loop.sendfile(t, f)
        finally:
            t.close()
            await asyncio.sleep(0)

    before = sendfiled.stats()
    run(kind, main, install=True, path=daemon.path)
    assert delta(before, sendfiled.stats(), "fallback_transport") == 1


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_one_sendfile_at_a_time_per_transport(kind, daemon, files):
    async def main():
        loop = asyncio.get_running_loop()
        pair = await Pair.open(rcvbuf=64 * 1024)
        try:
            reader = asyncio.ensure_future(pair.read_all())
            with open(files["medium"], "rb") as f, open(files["small"], "rb") as g:
                first = asyncio.ensure_future(loop.sendfile(pair.transport, f))
                await asyncio.sleep(0.01)
                with pytest.raises(RuntimeError, match="Empty waiter is already set"):
                    await loop.sendfile(pair.transport, g)
                assert await first == 64 * MiB
            pair.transport.close()
            assert len(await reader) == 64 * MiB
        finally:
            await pair.close()

    run(kind, main, install=True, path=daemon.path, require_daemon=True)


# -- the in-caller path -------------------------------------------------------


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_small_range_sent_in_caller(kind, daemon, files):
    """loop.sendfile() of a few KiB: the library sends it from the loop's
    thread, its completion comes through dispatch like the daemon's; the
    peer's bytes, the return value and the position are the same."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for offset, count in ((0, 4096), (MiB + 23, None)):
            pair = await Pair.open()
            try:
                reader = asyncio.ensure_future(pair.read_all())
                with open(files["small"], "rb") as f:
                    n = await loop.sendfile(pair.transport, f, offset, count)
                    want = count if count is not None else SMALL - offset
                    assert n == want
                    assert f.tell() == offset + want
                pair.transport.close()
                assert await reader == expected(offset, want)
            finally:
                await pair.close()

    before = sendfiled.stats()
    dbefore = daemon.stats()
    run(kind, main, install=True, path=daemon.path, require_daemon=True)
    after = sendfiled.stats()
    assert delta(before, after, "offloaded") == 2
    assert delta(before, after, "inline") == 2
    assert delta(before, after, "inline_bytes") == 4096 + SMALL - MiB - 23
    assert after["in_flight"] == 0
    if dbefore is not None:
        assert daemon.stats()["requests"] == dbefore["requests"]


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_inline_max_zero_asks_daemon(kind, daemon, files):
    """install(inline_max=0): every range goes to the daemon."""
    loop = new_loop(kind)
    try:
        aio.install(loop, path=daemon.path, require_daemon=True, inline_max=0)
        before, dbefore = sendfiled.stats(), daemon.stats()

        async def main() -> None:
            pair = await Pair.open()
            try:
                reader = asyncio.ensure_future(pair.read_all())
                with open(files["small"], "rb") as f:
                    assert await loop.sendfile(pair.transport, f, 0, 4096) == 4096
                    assert f.tell() == 4096
                pair.transport.close()
                assert await reader == expected(0, 4096)
            finally:
                await pair.close()

        loop.run_until_complete(main())
        after = sendfiled.stats()
        assert delta(before, after, "offloaded") == 1
        assert delta(before, after, "inline") == 0
        if dbefore is not None:
            assert daemon.stats()["requests"] == dbefore["requests"] + 1
        with pytest.raises(ValueError):
            aio.install(loop, inline_max=-1)
    finally:
        aio.uninstall(loop)
        loop.close()
