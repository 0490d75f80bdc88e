"""aiohttp's web.FileResponse, unmodified, offloads to the daemon after install().

A real HTTP client downloads a 1 GiB file, a 1 MiB file and an empty file,
whole and in ranges, byte-exact, on asyncio's loop and on uvloop; the
daemon's own counters (sendfilectl stats, over its control plane) and the
binding's (fed by the daemon's replies) show that every body went through the
daemon with sendfile(2).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import sendfiled
from conftest import GiB, LOOP_KINDS, MiB, Verifier, run, write_pattern

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402


@pytest.fixture(scope="module")
def mib_file(tmp_path_factory) -> Path:
    return write_pattern(tmp_path_factory.mktemp("mib") / "mib.bin", MiB)


def make_app(big: Path, mib: Path, empty: Path) -> web.Application:
    def handler(path: Path):
        async def handle(request: web.Request) -> web.FileResponse:
            return web.FileResponse(path)
        return handle

    app = web.Application()
    for name, path in (("big", big), ("mib", mib), ("empty", empty)):
        app.router.add_get(f"/{name}", handler(path))
    return app


class Server:
    def __init__(self, app: web.Application) -> None:
        self.runner = web.AppRunner(app)

    async def __aenter__(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()


async def download(client, url: str, start: int = 0, headers=None, status: int = 200) -> int:
    async with client.get(url, headers=headers or {}) as r:
        assert r.status == status, await r.text()
        v = Verifier(start)
        async for chunk in r.content.iter_chunked(1 << 20):
            v.feed(chunk)
        assert v.received == int(r.headers["Content-Length"])
        return v.received


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_file_response(kind, daemon, big_file, mib_file, files):
    r0 = 123_456_789

    async def main():
        async with Server(make_app(big_file, mib_file, files["empty"])) as base:
            async with aiohttp.ClientSession() as s:
                t0 = time.monotonic()
                assert await download(s, base + "/big") == GiB
                elapsed = time.monotonic() - t0
                assert await download(s, base + "/big", r0,
                                      {"Range": f"bytes={r0}-{r0 + 100_000_000 - 1}"},
                                      206) == 100_000_000
                assert await download(s, base + "/big", GiB - 1000,
                                      {"Range": "bytes=-1000"}, 206) == 1000
                assert await download(s, base + "/mib") == MiB
                assert await download(s, base + "/mib", 1000,
                                      {"Range": "bytes=1000-"}, 206) == MiB - 1000
                assert await download(s, base + "/empty") == 0
                return elapsed

    before = sendfiled.stats()
    dbefore = daemon.stats()
    elapsed = run(kind, main, install=True, path=daemon.path, require_daemon=True)
    after = sendfiled.stats()
    dafter = daemon.stats()
    body = GiB + 100_000_000 + 1000 + MiB + (MiB - 1000)
    if dbefore is not None:
        # The daemon's own counters, from its control plane: all but the
        # small ranges the library sent in the calling thread (the last
        # 1000 bytes).
        inline = after["inline"] - before["inline"]
        inline_bytes = after["inline_bytes"] - before["inline_bytes"]
        assert (inline, inline_bytes) == (1, 1000)
        assert dafter["bytes_sent"] - dbefore["bytes_sent"] == body - inline_bytes
        assert dafter["by_method"]["sendfile"] - dbefore["by_method"]["sendfile"] == 5 - inline
        assert dafter["by_status"]["ok"] - dbefore["by_status"]["ok"] == 5 - inline
    # Five bodies (aiohttp sends an empty body without loop.sendfile()),
    # every byte of them through the daemon, with sendfile(2).
    assert after["offloaded"] - before["offloaded"] == 5
    assert after["offloaded_bytes"] - before["offloaded_bytes"] == body
    assert after["methods"]["sendfile"] - before["methods"]["sendfile"] == 5
    for k in ("fallback_no_daemon", "fallback_tls", "fallback_transport",
              "fallback_not_regular", "fallback_limit", "errors"):
        assert after[k] == before[k], k
    print(f"\n{kind}: 1 GiB through aiohttp + the daemon in {elapsed:.2f} s")


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_client_goes_away_mid_download(kind, daemon, big_file, mib_file, files):
    """The peer leaving mid-transfer ends the daemon's transfer with an
    error; nothing leaks in either process and the server keeps serving."""
    daemon_fds = daemon.fds()

    async def main():
        loop = asyncio.get_running_loop()
        async with Server(make_app(big_file, mib_file, files["empty"])) as base:
            async with aiohttp.ClientSession() as s:
                r = await s.get(base + "/big")
                got = 0
                async for chunk in r.content.iter_chunked(1 << 20):
                    got += len(chunk)
                    if got >= 16 * MiB:
                        break
                r.close()  # drops the connection
            before = sendfiled.stats()
            for _ in range(500):
                if sendfiled.stats()["in_flight"] == 0:
                    break
                await asyncio.sleep(0.01)
            assert sendfiled.stats()["in_flight"] == 0
            async with aiohttp.ClientSession() as s:
                assert await download(s, base + "/mib") == MiB
            return before, loop

    s0 = sendfiled.stats()
    run(kind, main, install=True, path=daemon.path, require_daemon=True)
    s1 = sendfiled.stats()
    assert s1["errors"] - s0["errors"] == 1
    assert s1["offloaded"] - s0["offloaded"] == 2
    for _ in range(200):
        if daemon.fds() == daemon_fds:
            break
        time.sleep(0.01)
    assert daemon.fds() == daemon_fds


def test_uninstalled_uvloop_does_not_offload(daemon, mib_file, big_file, files):
    """The control: without install(), nothing reaches the daemon."""
    async def main():
        async with Server(make_app(big_file, mib_file, files["empty"])) as base:
            async with aiohttp.ClientSession() as s:
                assert await download(s, base + "/mib") == MiB

    before = sendfiled.stats()
    run("uvloop", main)
    assert sendfiled.stats()["offloaded"] == before["offloaded"]
