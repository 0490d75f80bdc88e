"""The blocking API: sendfiled.Client().sendfile() against socket.sendfile()."""

from __future__ import annotations

import ctypes.util
import errno
import io
import os
import socket
import struct
import threading
import time

import pytest

import sendfiled
from sendfiled import _lib
from conftest import MiB, Verifier, expected

SMALL = MiB + 123


class Peer:
    """A TCP connection; the far end reads everything in a thread."""

    def __init__(self, rcvbuf: int = 0, read: bool = True) -> None:
        lsock = socket.create_server(("127.0.0.1", 0))
        self.client = socket.create_connection(lsock.getsockname())
        self.server, _ = lsock.accept()
        lsock.close()
        if rcvbuf:
            self.server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.data = bytearray()
        self.thread = None
        if read:
            self.start()

    def start(self) -> None:
        self.thread = threading.Thread(target=self._read)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                d = self.server.recv(1 << 20)
            except OSError:
                return
            if not d:
                return
            self.data += d

    def finish(self) -> bytes:
        self.client.shutdown(socket.SHUT_WR)
        if self.thread is None:
            self.start()
        self.thread.join()
        self.client.close()
        self.server.close()
        return bytes(self.data)


@pytest.fixture
def client(daemon):
    with sendfiled.Client(daemon.path) as c:
        yield c


CASES = [
    (0, None),
    (1000, None),
    (1000, 5000),
    (SMALL - 100, 1000),
    (SMALL + 10, None),
]


@pytest.mark.parametrize("offset,count", CASES)
def test_agrees_with_socket_sendfile(client, files, offset, count):
    outcomes = []
    for impl in ("socket", "daemon"):
        peer = Peer()
        with open(files["small"], "rb") as f:
            f.seek(3)
            if impl == "socket":
                n = peer.client.sendfile(f, offset, count)
            else:
                n = client.sendfile(peer.client, f, offset, count)
            outcomes.append((n, f.tell(), peer.finish()))
    assert outcomes[0] == outcomes[1]
    n, tell, data = outcomes[1]
    assert data == expected(offset, n)


def test_large(client, files):
    peer = Peer()
    with open(files["medium"], "rb") as f:
        assert client.sendfile(peer.client, f) == 64 * MiB
        assert f.tell() == 64 * MiB
    assert peer.finish() == expected(0, 64 * MiB)


def test_buffered_reader_position(client, files):
    """A buffered file object's read-ahead is dropped: reading continues at
    the new position."""
    peer = Peer()
    with open(files["small"], "rb") as f:
        assert f.read(10) == expected(0, 10)  # fills the buffer
        assert client.sendfile(peer.client, f, 100, 50) == 50
        assert f.tell() == 150
        assert f.read(10) == expected(150, 10)
    peer.finish()


@pytest.mark.parametrize("args,exc,msg", [
    ((0, 0), ValueError, "count must be a positive integer (got 0)"),
    ((0, 2.5), TypeError, "count must be a positive integer (got 2.5)"),
    ((-1, None), ValueError, "offset must be a non-negative integer (got -1)"),
    ((None, None), TypeError, "offset must be a non-negative integer (got None)"),
])
def test_bad_arguments(client, files, args, exc, msg):
    peer = Peer()
    with open(files["small"], "rb") as f:
        with pytest.raises(exc) as ei:
            client.sendfile(peer.client, f, *args)
        assert str(ei.value) == msg
        assert f.tell() == 0
    assert peer.finish() == b""


def test_text_file_and_datagram_socket(client, files):
    peer = Peer()
    with open(files["small"], "r") as f:
        with pytest.raises(ValueError, match="file should be opened in binary mode"):
            client.sendfile(peer.client, f)
    peer.finish()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, open(files["small"], "rb") as f:
        with pytest.raises(ValueError, match="only SOCK_STREAM type sockets are supported"):
            client.sendfile(s, f)


def test_not_a_regular_file(client):
    peer = Peer()
    b = io.BytesIO(expected(0, 10000))
    assert client.sendfile(peer.client, b, 100, 1000) == 1000
    assert b.tell() == 1100
    with pytest.raises(sendfiled.SendfileNotAvailableError, match="not a regular file"):
        client.sendfile(peer.client, io.BytesIO(b"x"), fallback=False)
    assert peer.finish() == expected(100, 1000)


def test_no_fallback_not_available(client):
    """fallback=False where only a copy would do: NOT_AVAILABLE, nothing sent,
    position untouched; with fallback the daemon copies."""
    peer = Peer()
    with open("/proc/self/status", "rb") as f:
        with pytest.raises(sendfiled.SendfileNotAvailableError) as ei:
            client.sendfile(peer.client, f, 0, 20, fallback=False)
        assert isinstance(ei.value, __import__("asyncio").SendfileNotAvailableError)
        assert ei.value.bytes_sent == 0 and f.tell() == 0
        before = sendfiled.stats()
        assert client.sendfile(peer.client, f, 0, 20) == 20
        assert f.tell() == 20
        assert sendfiled.stats()["methods"]["read_write"] == before["methods"]["read_write"] + 1
    assert peer.finish() == open("/proc/self/status", "rb").read()[:20]


def test_pipe_source_splices(client):
    peer = Peer()
    r, w = socket.socketpair()
    w.sendall(b"abc" * 1000)
    w.close()
    with r.makefile("rb") as f:
        before = sendfiled.stats()
        assert client.sendfile(peer.client, f, 0, 3000) == 3000
        assert sendfiled.stats()["methods"]["splice"] == before["methods"]["splice"] + 1
    r.close()
    assert peer.finish() == b"abc" * 1000


def test_pipe_source_without_count_sends_to_its_end(client):
    # A pipe's st_size is 0: it must not be taken for an empty file.
    peer = Peer()
    r, w = socket.socketpair()
    w.sendall(b"xyz" * 1000)
    w.close()
    with r.makefile("rb") as f:
        assert client.sendfile(peer.client, f) == 3000
    r.close()
    assert peer.finish() == b"xyz" * 1000


def test_peer_reset(client, files):
    peer = Peer(rcvbuf=64 * 1024, read=False)
    done = threading.Event()

    def reset_soon():
        got = 0
        while got < 256 * 1024:
            got += len(peer.server.recv(65536))
        peer.server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.server.close()
        done.set()

    t = threading.Thread(target=reset_soon)
    t.start()
    with open(files["medium"], "rb") as f:
        with pytest.raises(ConnectionError) as ei:
            client.sendfile(peer.client, f, 10)
        t.join()
        e = ei.value
        assert isinstance(e, (BrokenPipeError, ConnectionResetError))
        assert e.errno in (errno.EPIPE, errno.ECONNRESET)
        assert e.bytes_sent > 0
        assert f.tell() == 10 + e.bytes_sent == e.final_offset
        assert e.method == "sendfile"
    peer.client.close()


def test_timeout_cancels_and_settles(client, files):
    peer = Peer(rcvbuf=64 * 1024, read=False)
    with open(files["medium"], "rb") as f:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError) as ei:
            client.sendfile(peer.client, f, 0, timeout=0.2)
        assert time.monotonic() - t0 < 5
        tell = f.tell()
        assert 0 < tell < 64 * MiB
        assert ei.value.bytes_sent == tell
    v = Verifier()
    peer.start()
    v.feed(peer.finish())
    assert v.received == tell


def test_threads_share_a_client(client, files):
    errors = []

    def work(i):
        try:
            for _ in range(5):
                peer = Peer()
                with open(files["small"], "rb") as f:
                    assert client.sendfile(peer.client, f, i, 1000) == 1000
                assert peer.finish() == expected(i, 1000)
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors


def test_close(daemon, files):
    fds = daemon.fd_count()
    c = sendfiled.Client(daemon.path)
    assert c.connected
    assert daemon.wait_fd_count(fds + 1) == fds + 1
    c.close()
    c.close()
    assert not c.connected
    with pytest.raises(ValueError, match="closed"):
        with open(files["small"], "rb") as f:
            c.sendfile(socket.socket(), f)
    assert daemon.wait_fd_count(fds) == fds


def test_default_path_from_environment(daemon):
    # The shared test daemon is $SENDFILED_SOCKET.
    with sendfiled.Client() as c:
        assert c.connected
        assert c.library.default_socket_path() == daemon.path


# -- without the daemon ---------------------------------------------------------


def test_unavailable(tmp_path, files):
    missing = str(tmp_path / "none.sock")
    with pytest.raises(sendfiled.DaemonUnavailableError) as ei:
        sendfiled.Client(missing)
    assert ei.value.errno == errno.ENOENT
    assert missing in str(ei.value)
    assert isinstance(ei.value, OSError)


def test_local_fallback(tmp_path, files):
    missing = str(tmp_path / "none.sock")
    before = sendfiled.stats()
    with sendfiled.Client(missing, local_fallback=True) as c:
        assert not c.connected
        peer = Peer()
        with open(files["small"], "rb") as f:
            assert c.sendfile(peer.client, f, 1, 100) == 100
            assert f.tell() == 101
        assert peer.finish() == expected(1, 100)
    after = sendfiled.stats()
    assert after["fallback_no_daemon"] == before["fallback_no_daemon"] + 1
    assert missing in after["last_error"]


def test_reconnects_after_restart(own_daemon, files):
    d = own_daemon()
    with sendfiled.Client(d.path) as c:
        peer = Peer()
        with open(files["small"], "rb") as f:
            assert c.sendfile(peer.client, f, 0, 10) == 10
        d.stop()
        with open(files["small"], "rb") as f:
            with pytest.raises(sendfiled.DaemonUnavailableError):
                c.sendfile(peer.client, f, 0, 10)
        d.start()
        with open(files["small"], "rb") as f:
            assert c.sendfile(peer.client, f, 0, 10) == 10
        assert peer.finish() == expected(0, 10) * 2


def _queued(sock: socket.socket) -> int:
    import fcntl
    import termios
    buf = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return int(struct.unpack("i", buf)[0])


def test_daemon_killed_mid_transfer(own_daemon, files):
    """SIGKILL mid-transfer: OutcomeUnknownError, and the file position is
    exactly the offset plus the bytes the receiver got."""
    import signal
    d = own_daemon()
    off = 4096
    with sendfiled.Client(d.path) as c, open(files["medium"], "rb") as f:
        peer = Peer(read=False)
        caught: list = []

        def call() -> None:
            try:
                c.sendfile(peer.client, f, off)
            except BaseException as e:  # noqa: B902 - looked at below
                caught.append(e)

        t = threading.Thread(target=call)
        t.start()
        deadline = time.monotonic() + 10
        while _queued(peer.server) < 64 * 1024:
            assert time.monotonic() < deadline, "the transfer did not start"
            time.sleep(0.01)
        d.stop(signal.SIGKILL)
        t.join(30)
        assert not t.is_alive()
        assert len(caught) == 1
        e = caught[0]
        assert isinstance(e, sendfiled.OutcomeUnknownError), repr(e)
        assert isinstance(e, sendfiled.DaemonUnavailableError)
        assert e.errno == errno.ECONNRESET
        data = peer.finish()
        assert 0 < len(data) < os.path.getsize(files["medium"]) - off
        assert os.lseek(f.fileno(), 0, os.SEEK_CUR) == off + len(data)
        assert e.bytes_sent == len(data)
        assert data == expected(off, len(data))


# -- ping -----------------------------------------------------------------------


def _varint(b: bytes, i: int) -> tuple:
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, i


def raw_ping(path: str) -> tuple:
    """A Ping in the documented bytes (id 3) on a connection of its own, and
    the reply's PingInfo decoded here: (daemon_version, feature values), the
    daemon's own word with no library in between."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.connect(path)
        s.send(b"\x08\x03\x22\x00")
        rec = s.recv(4096)
    version, features = None, set()
    i = 0
    while i < len(rec):
        key, i = _varint(rec, i)
        if key & 7 == 0:
            _, i = _varint(rec, i)
            continue
        assert key & 7 == 2, key
        n, i = _varint(rec, i)
        body, i = rec[i:i + n], i + n
        if key >> 3 != 9:
            continue
        j = 0
        while j < len(body):
            k, j = _varint(body, j)
            if k & 7 == 0:
                v, j = _varint(body, j)
                if k >> 3 == 3:
                    features.add(v)
                continue
            m, j = _varint(body, j)
            field, j = body[j:j + m], j + m
            if k >> 3 == 2:
                version = field.decode()
            elif k >> 3 == 3:  # packed
                q = 0
                while q < len(field):
                    v, q = _varint(field, q)
                    features.add(v)
    return version, features


def daemon_version_printed() -> str:
    import subprocess
    from conftest import daemon_binary
    out = subprocess.run([str(daemon_binary()), "--version"], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out.startswith("sendfiled "), out
    return out[len("sendfiled "):]


def test_ping_says_who_answers(client, daemon, files):
    info = client.ping()
    assert isinstance(info, sendfiled.PingInfo)
    assert info.protocol_version == 1
    assert info.daemon_version == daemon_version_printed()
    assert isinstance(info.features, frozenset)
    # Exactly the features the daemon lists that this package knows, whichever
    # they are today.
    version, said = raw_ping(daemon.path)
    assert version == info.daemon_version
    assert info.features == {_lib.FEATURE_NAMES[v] for v in said if v in _lib.FEATURE_NAMES}
    assert info.features <= {"deadline", "rate_limit", "close_when_done", "idle_timeout"}
    # The client goes on sending, and says the same again.
    peer = Peer()
    with open(files["small"], "rb") as f:
        assert client.sendfile(peer.client, f) == SMALL
    assert client.ping(timeout=10) == info
    assert peer.finish() == expected(0, SMALL)


def test_ping_after_restart_and_without_daemon(own_daemon):
    d = own_daemon()
    with sendfiled.Client(d.path) as c:
        assert c.ping().protocol_version == 1
        d.stop()
        with pytest.raises(sendfiled.DaemonUnavailableError):
            c.ping()
        d.start()
        assert c.ping().protocol_version == 1
    # local_fallback cannot answer a ping.
    d.stop()
    with sendfiled.Client(d.path, local_fallback=True) as c:
        with pytest.raises(sendfiled.DaemonUnavailableError):
            c.ping()


def test_ping_with_a_library_without_it(daemon):
    lib = _lib.Library(sendfiled.Client(daemon.path).library.path)
    lib.ping = None  # as a library older than sfd_client_ping() loads
    with sendfiled.Client(daemon.path, lib=lib) as c:
        with pytest.raises(NotImplementedError, match="sfd_client_ping"):
            c.ping()
        # Everything else still works.
        assert c.connected


# -- the library ----------------------------------------------------------------


def test_library_not_found_lists_every_place(monkeypatch, tmp_path):
    monkeypatch.setattr(_lib, "_default", None)
    monkeypatch.delenv("SENDFILED_LIB", raising=False)
    monkeypatch.setattr(_lib, "_build_tree_candidates", lambda: [])
    monkeypatch.setattr(_lib, "_recorded_libdirs", lambda: [str(tmp_path / "prefix-lib")])
    # pkg-config then searches only an empty directory.
    monkeypatch.setenv("PKG_CONFIG_LIBDIR", str(tmp_path))
    monkeypatch.delenv("PKG_CONFIG_PATH", raising=False)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    monkeypatch.setattr(_lib, "SONAME", "libsendfiled-absent.so.0")
    with pytest.raises(sendfiled.LibraryNotFoundError) as ei:
        sendfiled.load_library()
    text = str(ei.value)
    for place in ("$SENDFILED_LIB", "build*/client-lib/libsendfiled.so",
                  str(tmp_path / "prefix-lib" / "libsendfiled-absent.so.0"),
                  "pkg-config --variable=libdir sendfiled",
                  'find_library("sendfiled")', "libsendfiled-absent.so.0"):
        assert place in text, text
    assert len(ei.value.tried) == 6


def _only_installed(monkeypatch, tmp_path):
    """The library the tests use, as if installed in its directory and found
    only by the lookup of installed copies. Returns that directory."""
    libdir = os.path.dirname(sendfiled.load_library().path)
    assert os.path.exists(os.path.join(libdir, _lib.SONAME))
    monkeypatch.setattr(_lib, "_default", None)
    monkeypatch.delenv("SENDFILED_LIB", raising=False)
    monkeypatch.setattr(_lib, "_build_tree_candidates", lambda: [])
    monkeypatch.setenv("PKG_CONFIG_LIBDIR", str(tmp_path))
    monkeypatch.delenv("PKG_CONFIG_PATH", raising=False)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    return libdir


def test_library_from_install_dir_recorded_by_pip(monkeypatch, tmp_path):
    libdir = _only_installed(monkeypatch, tmp_path)
    monkeypatch.setattr(_lib, "_recorded_libdirs",
                        lambda: [str(tmp_path / "gone"), libdir])
    assert sendfiled.load_library().path == os.path.join(libdir, _lib.SONAME)


def test_library_from_pkg_config(monkeypatch, tmp_path):
    libdir = _only_installed(monkeypatch, tmp_path)
    monkeypatch.setattr(_lib, "_recorded_libdirs", lambda: [])
    (tmp_path / "sendfiled.pc").write_text(
        f"libdir={libdir}\nName: sendfiled\nDescription: test\nVersion: 0.1.0\n"
        "Libs: -L${libdir} -lsendfiled\n")
    if not _lib.shutil.which("pkg-config"):
        pytest.skip("pkg-config is not installed")
    assert sendfiled.load_library().path == os.path.join(libdir, _lib.SONAME)


def test_library_env_and_explicit(monkeypatch, tmp_path):
    good = sendfiled.load_library().path
    monkeypatch.setattr(_lib, "_default", None)
    monkeypatch.setenv("SENDFILED_LIB", str(tmp_path / "nope.so"))
    with pytest.raises(sendfiled.LibraryNotFoundError, match="nope.so"):
        sendfiled.load_library()
    with pytest.raises(sendfiled.LibraryNotFoundError, match="nope.so"):
        sendfiled.Client(lib=tmp_path / "nope.so")
    monkeypatch.setenv("SENDFILED_LIB", good)
    assert sendfiled.load_library().path == good
    lib = sendfiled.load_library(good)
    assert isinstance(lib, sendfiled.Library)
