"""A transfer's limits: deadline, idle timeout, rate limit (sendfiled.Client and
sendfiled.aio), against a real daemon and real receivers."""

from __future__ import annotations

import asyncio
import errno
import time

import pytest

import sendfiled
import sendfiled.aio as aio
from conftest import LOOP_KINDS, MiB, Verifier, expected, run
from harness import Pair
from test_client import Peer


@pytest.fixture
def client(daemon):
    with sendfiled.Client(daemon.path) as c:
        yield c


def test_idle_timeout_raises_with_bytes_sent(client, files, daemon):
    """A peer that stops reading: TransferTimeoutError, limit "idle", the bytes
    that left, which the peer then reads; the position is there."""
    dstats = daemon.stats()
    peer = Peer(rcvbuf=64 * 1024, read=False)
    with open(files["medium"], "rb") as f:
        with pytest.raises(sendfiled.TransferTimeoutError) as ei:
            client.sendfile(peer.client, f, 100, idle_timeout=0.3)
        e = ei.value
        assert isinstance(e, TimeoutError)
        assert e.errno == errno.ETIMEDOUT
        assert e.limit == "idle"
        assert 0 < e.bytes_sent < 64 * MiB - 100
        assert f.tell() == 100 + e.bytes_sent == e.final_offset
    v = Verifier(start=100)
    v.feed(peer.finish())
    assert v.received == e.bytes_sent
    if dstats is not None:
        now = daemon.stats()
        assert now["by_status"]["timed_out"] == dstats["by_status"]["timed_out"] + 1


def test_deadline_raises(client, files):
    peer = Peer(rcvbuf=64 * 1024, read=False)
    with open(files["medium"], "rb") as f:
        with pytest.raises(sendfiled.TransferTimeoutError) as ei:
            client.sendfile(peer.client, f, deadline=0.3, idle_timeout=60)
        assert ei.value.limit == "deadline"
        sent = ei.value.bytes_sent
        assert f.tell() == sent
    v = Verifier()
    v.feed(peer.finish())
    assert v.received == sent


def test_rate_limit(client, files):
    """3 MiB at 1 MiB/s after a 1 MiB burst cannot take less than 2 s: assert
    1.5 s. The bytes are right."""
    peer = Peer()
    with open(files["medium"], "rb") as f:
        t0 = time.monotonic()
        n = client.sendfile(peer.client, f, 0, 4 * MiB, rate_limit=MiB, rate_limit_after=MiB)
        assert time.monotonic() - t0 >= 1.5
        assert n == 4 * MiB
        assert f.tell() == 4 * MiB
    assert peer.finish() == expected(0, 4 * MiB)


@pytest.mark.parametrize("kw,exc", [
    ({"deadline": 0}, ValueError),
    ({"deadline": -1}, ValueError),
    ({"deadline": "1"}, TypeError),
    ({"idle_timeout": 2**32}, ValueError),
    ({"rate_limit": 0}, ValueError),
    ({"rate_limit": 1.5}, TypeError),
    ({"rate_limit_after": 10}, ValueError),
])
def test_bad_limits(client, files, kw, exc):
    peer = Peer()
    with open(files["small"], "rb") as f:
        with pytest.raises(exc):
            client.sendfile(peer.client, f, **kw)
        assert f.tell() == 0
    assert peer.finish() == b""


def test_limit_beyond_the_daemons_maximum(client, files):
    peer = Peer()
    with open(files["small"], "rb") as f:
        with pytest.raises(ValueError) as ei:
            client.sendfile(peer.client, f, deadline=2 * 24 * 3600)
        assert "deadline" in str(ei.value)
        assert f.tell() == 0
    assert peer.finish() == b""


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_aio_idle_timeout(kind, daemon, files):
    async def main():
        pair = await Pair.open(rcvbuf=64 * 1024)
        try:
            with open(files["medium"], "rb") as f:
                with pytest.raises(sendfiled.TransferTimeoutError) as ei:
                    await aio.sendfile(pair.transport, f, 0, idle_timeout=0.3)
                assert ei.value.limit == "idle"
                sent = ei.value.bytes_sent
                assert 0 < sent == f.tell()
            pair.transport.close()
            v = Verifier()
            v.feed(await pair.read_all())
            assert v.received == sent
        finally:
            await pair.close()

    run(kind, main, install=True, path=daemon.path, require_daemon=True)


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_aio_rate_limit(kind, daemon, files):
    async def main():
        pair = await Pair.open()
        try:
            reader = asyncio.ensure_future(pair.read_all(2 * MiB))
            with open(files["medium"], "rb") as f:
                t0 = time.monotonic()
                n = await aio.sendfile(pair.transport, f, 0, 2 * MiB, rate_limit=MiB)
                assert time.monotonic() - t0 >= 1.2
                assert n == 2 * MiB
            assert await reader == expected(0, 2 * MiB)
        finally:
            await pair.close()

    run(kind, main, install=True, path=daemon.path, require_daemon=True)
