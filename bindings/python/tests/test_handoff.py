"""Client.handoff(): the daemon takes a download and the caller moves on."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sendfiled
from conftest import MiB, write_pattern

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"


def pair():
    """A connected TCP pair on loopback: (the end handed off, the receiver's)."""
    lsock = socket.create_server(("127.0.0.1", 0))
    a = socket.create_connection(lsock.getsockname())
    b, _ = lsock.accept()
    lsock.close()
    return a, b


def read_all(s: socket.socket, timeout: float = 60.0) -> bytes:
    s.settimeout(timeout)
    out = bytearray()
    while True:
        d = s.recv(1 << 20)
        if not d:
            return bytes(out)
        out += d


def test_handoff_then_leave(daemon, tmp_path):
    """The id comes back before the receiver read anything; the caller closes
    its socket, file and client; the receiver gets every byte and EOF."""
    path = write_pattern(tmp_path / "h1", 24 * MiB + 5)
    want = hashlib.sha256(path.read_bytes()).hexdigest()
    before = daemon.stats()
    a, b = pair()
    with sendfiled.Client(daemon.path) as c, open(path, "rb") as f:
        tid = c.handoff(a, f)
        assert isinstance(tid, int) and tid > 0
    a.close()
    got = read_all(b)
    b.close()
    assert len(got) == 24 * MiB + 5
    assert hashlib.sha256(got).hexdigest() == want
    if before is not None:
        deadline = time.monotonic() + 30
        while True:
            after = daemon.stats()["handoffs"]
            if after["completed"] > before["handoffs"]["completed"] or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert after["taken"] == before["handoffs"]["taken"] + 1
        assert after["completed"] == before["handoffs"]["completed"] + 1


def test_shutdown_ends_the_stream_while_caller_holds_socket(daemon, tmp_path):
    path = write_pattern(tmp_path / "h2", 3 * MiB + 1)
    a, b = pair()
    with sendfiled.Client(daemon.path) as c, open(path, "rb") as f:
        c.handoff(a, f, 100, shutdown=True)
        got = read_all(b)  # `a` is still open: the end can only be the shutdown
        assert f.tell() == 3 * MiB + 1  # the position, as for any transfer
    assert got == path.read_bytes()[100:]
    a.close()
    b.close()


def test_refusals(daemon, tmp_path, own_daemon):
    path = write_pattern(tmp_path / "h3", 8 * MiB)
    r, w = os.pipe()
    try:
        with sendfiled.Client(daemon.path) as c, open(path, "rb") as f:
            with pytest.raises(ValueError):
                c.handoff(socket.socket(), f, -1)
            # shutdown needs a socket: the daemon says ENOTSOCK, nothing taken.
            with pytest.raises(OSError) as e:
                c.handoff(_PipeSock(w), f, shutdown=True)
            assert e.value.errno == errno.ENOTSOCK
    finally:
        os.close(r)
        os.close(w)
    # Past the daemon's cap: LimitError (EBUSY), nothing taken.
    d = own_daemon("--max-handoffs", "1")
    a1, b1 = pair()
    a2, b2 = pair()
    with sendfiled.Client(d.path) as c, open(path, "rb") as f:
        c.handoff(a1, f)
        with pytest.raises(sendfiled.LimitError) as e:
            c.handoff(a2, f)
        assert e.value.errno == errno.EBUSY
    a1.close()
    a2.close()
    assert read_all(b2) == b""  # the daemon kept no copy of the refused one
    assert len(read_all(b1)) == 8 * MiB
    b1.close()
    b2.close()


class _PipeSock(socket.socket):
    """A stream "socket" object over a pipe's descriptor, to pass a
    non-socket destination through the socket-typed API."""

    def __init__(self, fd: int) -> None:  # noqa: D107
        super().__init__(socket.AF_INET, socket.SOCK_STREAM)
        self._pipe = fd

    def fileno(self) -> int:
        return self._pipe


def _http_get(port: int, path: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return s


def _split(resp: bytes):
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return lines[0], headers, body


@pytest.mark.skipif(sys.platform != "linux", reason="Linux only")
def test_gunicorn_sync_worker_hands_off(daemon, tmp_path):
    """examples/gunicorn_handoff.py under gunicorn with one sync worker: while
    a client that does not read holds a large download, a second request is
    served by the same worker; both bodies are exact; the daemon ends with
    the descriptors it started with."""
    pytest.importorskip("gunicorn")
    root = tmp_path / "www"
    root.mkdir()
    big = write_pattern(root / "big.bin", 64 * MiB + 3)
    small = write_pattern(root / "small.bin", 5 * MiB + 1)
    baseline = daemon.fd_count()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = dict(os.environ, HANDOFF_ROOT=str(root), SENDFILED_SOCKET=daemon.path)
    log = open(tmp_path / "gunicorn.log", "wb")
    gun = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "1", "-k", "sync",
                            "-b", f"127.0.0.1:{port}", "--chdir", str(EXAMPLES),
                            "gunicorn_handoff:app"], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                assert gun.poll() is None, (tmp_path / "gunicorn.log").read_text()
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.05)
        slow = _http_get(port, "/big.bin")
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        # Wait until the first response has started (its headers came):
        # the worker has handed it off; the client reads nothing more now.
        slow.settimeout(30)
        first = slow.recv(4096)
        assert first.startswith(b"HTTP/1.1 200"), first
        fast = _http_get(port, "/small.bin")
        status2, h2, body2 = _split(read_all(fast))
        fast.close()
        assert status2.startswith("HTTP/1.1 200"), status2
        assert int(h2["content-length"]) == len(body2)
        assert hashlib.sha256(body2).hexdigest() == hashlib.sha256(small.read_bytes()).hexdigest()
        # The slow download is still under way, in the daemon: nothing but
        # its first bytes were read, and the file does not fit in the
        # socket buffers.
        stats = daemon.stats()
        if stats is not None:
            assert stats["handoffs"]["in_flight"] == 1
        rest = read_all(slow)
        slow.close()
        status1, h1, body1 = _split(first + rest)
        assert status1.startswith("HTTP/1.1 200"), status1
        assert h1["x-worker-pid"] == h2["x-worker-pid"]
        assert int(h1["content-length"]) == len(body1)
        assert hashlib.sha256(body1).hexdigest() == hashlib.sha256(big.read_bytes()).hexdigest()
    finally:
        gun.terminate()
        gun.wait(30)
        log.close()
    # The worker's own connection to the daemon went with it.
    assert daemon.wait_fd_count(baseline, 10) == baseline


def test_drain_waits_for_handoffs(own_daemon, tmp_path):
    """SIGTERM with a hand-off in flight, its client gone: the daemon lets it
    finish (within its drain timeout) before it exits, with status 0."""
    import signal
    import threading

    d = own_daemon("--drain-timeout", "60000")
    path = write_pattern(tmp_path / "h4", 32 * MiB)
    a, b = pair()
    with sendfiled.Client(d.path) as c, open(path, "rb") as f:
        c.handoff(a, f, shutdown=True)
    a.close()
    d.proc.send_signal(signal.SIGTERM)
    got = []
    t = threading.Thread(target=lambda: got.append(read_all(b)))
    t.start()
    t.join(60)
    b.close()
    assert got and hashlib.sha256(got[0]).hexdigest() == \
        hashlib.sha256(path.read_bytes()).hexdigest()
    assert d.proc.wait(30) == 0
