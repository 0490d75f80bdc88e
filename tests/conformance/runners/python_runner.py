"""The conformance runner of the Python binding (see ../README.md).

Each case goes through the public API: ``sendfiled.Client().sendfile()``, or,
for a cancel mid-transfer, ``sendfiled.aio.sock_sendfile()`` in a task that is
cancelled. It reports what it saw and judges nothing.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import socket
import sys
import threading
from typing import Any, Dict, Optional, Tuple

import sendfiled
import sendfiled.aio

TMP = os.environ.get("CONFORMANCE_TMP", "/tmp")
NA_DEST = ("the Python API takes sockets as destinations (socket.sendfile's and "
           "loop.sendfile's contract)")


def content(start: int, n: int) -> bytes:
    return bytes(((i * 31 + (i >> 12)) & 0xFF) for i in range(start, start + n))


def parse(line: str) -> Dict[str, Any]:
    k: Dict[str, Any] = dict(f.split("=", 1) for f in line.split())
    k.setdefault("op", "sendfile")
    for key in ("size", "offset", "at"):
        k[key] = int(k[key])
    k["count"] = None if k["count"] == "-" else int(k["count"])
    k["fallback"] = k["fallback"] == "1"
    return k


class Receiver(threading.Thread):
    def __init__(self, sock: socket.socket, k: Dict[str, Any],
                 reached: Optional[Any] = None) -> None:
        super().__init__(daemon=True)
        self.sock, self.k = sock, k
        self.hash = hashlib.sha256()
        self.len = 0
        self.on_reached = reached
        self.resume = threading.Event()

    def run(self) -> None:
        stop_at = self.k["action"] != "none"
        while True:
            want = 65536
            if stop_at:
                want = min(want, self.k["at"] - self.len)
            data = self.sock.recv(want)
            if not data:
                break
            self.hash.update(data)
            self.len += len(data)
            if stop_at and self.len == self.k["at"]:
                stop_at = False
                if self.k["action"] == "reset":
                    self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                         b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.sock.close()
                    return
                if self.on_reached:
                    self.on_reached()
                self.resume.wait()
        self.sock.close()


def make_source(k: Dict[str, Any]) -> Tuple[Any, Optional[threading.Thread]]:
    if k["source"] == "file":
        path = os.path.join(TMP, "src-" + k["name"])
        with open(path, "wb") as f:
            for start in range(0, k["size"], 1 << 20):
                f.write(content(start, min(1 << 20, k["size"] - start)))
        f = open(path, "rb", buffering=0)
        os.unlink(path)
        return f, None
    if k["source"] == "pipe":
        r, w = os.pipe()

        def fill() -> None:
            try:
                with open(w, "wb", buffering=0) as out:
                    out.write(content(0, k["size"]))
            except BrokenPipeError:
                pass

        t = threading.Thread(target=fill, daemon=True)
        t.start()
        return open(r, "rb", buffering=0), t
    return open(k["path"], "rb", buffering=0), None


def dest_pair(k: Dict[str, Any]) -> Tuple[socket.socket, socket.socket]:
    if k["dest"] == "unix":
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    lst = socket.create_server(("127.0.0.1", 0))
    dst = socket.create_connection(lst.getsockname())
    rcv, _ = lst.accept()
    lst.close()
    return dst, rcv


STATUS_OF = [
    (sendfiled.SendfileNotAvailableError, "not_available"),
    (sendfiled.TransferCancelledError, "cancelled"),
    (sendfiled.LimitError, "limit"),
    (sendfiled.ProtocolError, "protocol"),
    (sendfiled.ShuttingDownError, "shutting_down"),
    (sendfiled.DaemonUnavailableError, "daemon_unavailable"),
    (ConnectionError, "peer_closed"),
    (PermissionError, "permission_denied"),
    (ValueError, "invalid_argument"),
]


def status_of(e: BaseException) -> str:
    for cls, name in STATUS_OF:
        if isinstance(e, cls):
            return name
    return "io_error" if isinstance(e, OSError) else type(e).__name__


async def cancelled_transfer(dst: socket.socket, src: Any, k: Dict[str, Any],
                             rcv: Receiver) -> None:
    loop = asyncio.get_running_loop()
    reached = asyncio.Event()
    rcv.on_reached = lambda: loop.call_soon_threadsafe(reached.set)
    dst.setblocking(False)
    rcv.start()
    task = asyncio.ensure_future(sendfiled.aio.sock_sendfile(
        dst, src, k["offset"], k["count"], fallback=k["fallback"], require_daemon=True))
    await reached.wait()
    task.cancel()
    try:
        await task
    finally:
        sendfiled.aio.close()


def run_ping(client: sendfiled.Client, k: Dict[str, Any]) -> Dict[str, Any]:
    """A ping case: who answers, through Client.ping()."""
    rep: Dict[str, Any] = {"client": "python", "case": k["name"], "error": ""}
    try:
        info = client.ping(timeout=10)
    except Exception as e:  # noqa: BLE001 - every outcome is reported
        rep.update(status=status_of(e), error=f"{type(e).__name__}: {e}")
        return rep
    rep.update(status="ok", protocol_version=info.protocol_version,
               daemon_version=info.daemon_version, features=sorted(info.features))
    return rep


def run_case(client: sendfiled.Client, k: Dict[str, Any]) -> Dict[str, Any]:
    if k["op"] == "ping":
        return run_ping(client, k)
    rep: Dict[str, Any] = {"client": "python", "case": k["name"]}
    if k["dest"] not in ("tcp", "unix"):
        rep["na"] = NA_DEST
        return rep
    src, writer = make_source(k)
    dst, rcv_sock = dest_pair(k)
    rcv = Receiver(rcv_sock, k)
    before = sendfiled.stats()["methods"]
    rep.update(status="ok", final_offset=None, error="")
    try:
        if k["action"] == "cancel":
            asyncio.run(cancelled_transfer(dst, src, k, rcv))
            rep["bytes"] = None
        else:
            rcv.start()
            rep["bytes"] = client.sendfile(dst, src, k["offset"], k["count"],
                                           fallback=k["fallback"])
    except asyncio.CancelledError:
        rep["status"] = "cancelled"
        rep["bytes"] = None
    except Exception as e:  # noqa: BLE001 - every outcome is reported
        rep["status"] = status_of(e)
        rep["bytes"] = getattr(e, "bytes_sent", None)
        rep["final_offset"] = getattr(e, "final_offset", None)
        rep["error"] = f"{type(e).__name__}: {e}"
    try:
        pos: Optional[int] = os.lseek(src.fileno(), 0, os.SEEK_CUR)
    except OSError as e:
        pos = None if e.errno == errno.ESPIPE else -1
    if rep["bytes"] is None and pos is not None:
        # A cancelled task reports no count: the position tells it.
        rep["bytes"] = pos - k["offset"] if pos > 0 else 0
    after = sendfiled.stats()["methods"]
    used = [m for m in after if after[m] > before.get(m, 0) and m != "none"]
    rep["method"] = used[0] if used else None
    dst.close()
    rcv.resume.set()
    if rcv.is_alive() or rcv.ident is not None:
        rcv.join()
    src.close()
    if writer:
        writer.join()
    rep.update(position=pos, received_len=rcv.len, received_sha256=rcv.hash.hexdigest())
    return rep


def main() -> int:
    client = sendfiled.Client()
    try:
        for line in sys.stdin:
            if line.strip():
                print(json.dumps(run_case(client, parse(line))), flush=True)
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
