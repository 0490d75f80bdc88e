"""Fixtures: a real sendfiled daemon, test files, event loops, leak checks."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import pytest

import sendfiled
import sendfiled.aio

HERE = Path(__file__).resolve().parent

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None


def find_in_build(rel: str) -> Optional[Path]:
    """build*/<rel> in a directory above the tests ("build" first)."""
    for d in [HERE, *HERE.parents]:
        builds = sorted((p for p in d.glob("build*") if p.is_dir()),
                        key=lambda p: (p.name != "build", p.name))
        for b in builds:
            if (b / rel).exists():
                return b / rel
    return None


def daemon_binary() -> Path:
    env = os.environ.get("SENDFILED_BIN")
    if env:
        return Path(env)
    found = find_in_build("daemon/sendfiled")
    if found is None:
        pytest.fail("the sendfiled daemon was not found: set SENDFILED_BIN or build it "
                    "(ninja -C build)")
    return found


def fd_set(pid: Optional[int] = None) -> set:
    d = f"/proc/{pid}/fd" if pid else "/proc/self/fd"
    out = set()
    for name in os.listdir(d):
        try:
            out.add((int(name), os.readlink(f"{d}/{name}")))
        except OSError:
            pass  # the listing's own descriptor, closed already
    return out


class Daemon:
    """A sendfiled process serving a socket in a temporary directory."""

    def __init__(self, binary: Path, directory: Path, *args: str) -> None:
        self.binary = binary
        self.dir = directory
        self.path = str(directory / "sendfiled.sock")
        self.args = list(args)
        self.proc: Optional[subprocess.Popen] = None
        self.log = directory / "daemon.log"

    def start(self) -> "Daemon":
        logf = open(self.log, "ab")
        try:
            # No control-listener check: it briefly holds two sockets, which
            # would disturb the exact descriptor counts the tests compare.
            self.proc = subprocess.Popen([str(self.binary), "--socket", self.path,
                                          "--control-probe-ms", "0", *self.args],
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         close_fds=True)
        finally:
            logf.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sendfiled exited: {self.log.read_text()}")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                s.connect(self.path)
                return self
            except OSError:
                time.sleep(0.02)
            finally:
                s.close()
        raise RuntimeError("sendfiled did not start")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def fds(self) -> set:
        return fd_set(self.pid)

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def wait_fd_count(self, n: int, timeout: float = 5.0) -> int:
        """Wait until the daemon holds n descriptors (it closes them a moment
        after the last reply); return the count seen last."""
        deadline = time.monotonic() + timeout
        while True:
            c = self.fd_count()
            if c == n or time.monotonic() > deadline:
                return c
            time.sleep(0.01)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stats(self) -> Optional[dict]:
        """The daemon's own counters (sendfilectl stats --json, over its
        control plane), or None where the tool is not available."""
        ctl = ctl_binary()
        if ctl is None:
            return None
        out = subprocess.run([str(ctl), "--socket", self.path, "stats", "--json"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            raise RuntimeError(f"sendfilectl stats failed: {out.stderr}")
        return json.loads(out.stdout)


def ctl_binary() -> Optional[Path]:
    env = os.environ.get("SENDFILED_CTL")
    if env:
        return Path(env) if Path(env).exists() else None
    if os.environ.get("SENDFILED_BIN"):
        p = Path(os.environ["SENDFILED_BIN"]).parent.parent / "tools" / "sendfilectl"
        return p if p.exists() else None
    return find_in_build("tools/sendfilectl")


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """The daemon shared by most tests; its socket is also $SENDFILED_SOCKET."""
    d = Daemon(daemon_binary(), tmp_path_factory.mktemp("daemon")).start()
    old = os.environ.get("SENDFILED_SOCKET")
    os.environ["SENDFILED_SOCKET"] = d.path
    yield d
    if old is None:
        os.environ.pop("SENDFILED_SOCKET", None)
    else:
        os.environ["SENDFILED_SOCKET"] = old
    assert d.alive(), f"the daemon died during the tests:\n{d.log.read_text()}"
    d.stop()


@pytest.fixture
def own_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """A factory of daemons private to one test (to stop, restart, configure)."""
    started: List[Daemon] = []

    def make(*args: str) -> Daemon:
        d = Daemon(daemon_binary(), tmp_path, *args).start()
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop(signal.SIGKILL)


# -- files ------------------------------------------------------------------

MiB = 1 << 20
GiB = 1 << 30
_BASE = random.Random(20240611).randbytes(MiB)


def block(i: int) -> bytes:
    """Block i of the test pattern: a pseudo-random MiB whose first 8 bytes
    are its index, so that no two blocks of a file are alike."""
    return i.to_bytes(8, "little") + _BASE[8:]


def expected(start: int, n: int) -> bytes:
    """The pattern's bytes [start, start + n)."""
    out = bytearray()
    pos = start
    end = start + n
    while pos < end:
        i, off = divmod(pos, MiB)
        take = min(MiB - off, end - pos)
        out += block(i)[off:off + take]
        pos += take
    return bytes(out)


class Verifier:
    """Checks a stream chunk by chunk against the pattern from ``start``."""

    def __init__(self, start: int = 0) -> None:
        self.pos = start
        self.start = start
        self._cache: Dict[int, bytes] = {}

    def _block(self, i: int) -> bytes:
        b = self._cache.get(i)
        if b is None:
            if len(self._cache) > 4:
                self._cache.clear()
            b = self._cache[i] = block(i)
        return b

    def feed(self, data: bytes) -> None:
        mv = memoryview(data)
        while mv:
            i, off = divmod(self.pos, MiB)
            take = min(MiB - off, len(mv))
            if mv[:take] != self._block(i)[off:off + take]:
                raise AssertionError(f"wrong bytes at offset {self.pos}")
            self.pos += take
            mv = mv[take:]

    @property
    def received(self) -> int:
        return self.pos - self.start


def write_pattern(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        n = 0
        i = 0
        while n < size:
            b = block(i)[:size - n]
            f.write(b)
            n += len(b)
            i += 1
    return path


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """small (1 MiB + 123 bytes), medium (64 MiB), empty, text."""
    d = tmp_path_factory.mktemp("files")
    out = {
        "small": write_pattern(d / "small.bin", MiB + 123),
        "medium": write_pattern(d / "medium.bin", 64 * MiB),
        "empty": write_pattern(d / "empty.bin", 0),
    }
    return out


@pytest.fixture(scope="session")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """1 GiB of the pattern, made once per test run (and left in the page cache)."""
    p = write_pattern(tmp_path_factory.mktemp("big") / "big.bin", GiB)
    yield p
    p.unlink()


# -- loops ------------------------------------------------------------------

LOOP_KINDS = ["asyncio", "uvloop"]


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "asyncio":
        return asyncio.new_event_loop()
    if kind == "uvloop":
        if uvloop is None:
            pytest.skip("uvloop is not installed")
        return uvloop.new_event_loop()
    raise ValueError(kind)


def run(kind: str, coro_fn: Callable, *args, install: bool = False, **install_kw):
    """Run coro_fn(*args) on a fresh loop of ``kind``, with the daemon
    installed into it or not, and close everything afterwards."""
    with asyncio.Runner(loop_factory=lambda: new_loop(kind)) as runner:
        loop = runner.get_loop()
        if install:
            sendfiled.aio.install(loop, **install_kw)
        try:
            return runner.run(coro_fn(*args))
        finally:
            if install:
                sendfiled.aio.uninstall(loop)


# -- leak checks ------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _process_wide_descriptors() -> None:
    """Let libuv make its process-wide descriptors (the signal pipe, made at
    the first loop with a signal handler) before any test counts them."""
    for kind in LOOP_KINDS:
        if kind == "uvloop" and uvloop is None:
            continue
        run(kind, asyncio.sleep, 0)


@pytest.fixture(autouse=True)
def no_fd_leak() -> Iterator[None]:
    """Every test ends with the descriptors it started with (wayland's habit)."""
    gc.collect()
    before = fd_set()
    yield
    deadline = time.monotonic() + 2
    while True:
        gc.collect()
        after = fd_set()
        if after == before or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    leaked = after - before
    assert not leaked, f"descriptors leaked: {sorted(leaked)}"
