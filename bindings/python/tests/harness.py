"""Connections for the asyncio tests: a server transport and a raw client socket."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any, List, Optional


class Recorder(asyncio.Protocol):
    """The server side's protocol: records what it is told."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.made: asyncio.Future = loop.create_future()
        self.lost: asyncio.Future = loop.create_future()
        self.received = bytearray()
        self.got_data = asyncio.Event()
        self.transport: Any = None
        self.pauses = 0
        self.resumes = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.made.set_result(transport)

    def data_received(self, data: bytes) -> None:
        self.received += data
        self.got_data.set()

    def pause_writing(self) -> None:
        self.pauses += 1

    def resume_writing(self) -> None:
        self.resumes += 1

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


class Pair:
    """A TCP connection on 127.0.0.1: ``transport`` (server side, asyncio or
    uvloop) and ``sock`` (client side, a plain non-blocking socket)."""

    server: Any
    proto: Recorder
    transport: Any
    sock: socket.socket

    @classmethod
    async def open(cls, rcvbuf: Optional[int] = None, ssl_server: Any = None) -> "Pair":
        loop = asyncio.get_running_loop()
        self = cls()
        self.proto = Recorder(loop)
        lsock = socket.create_server(("127.0.0.1", 0))
        addr = lsock.getsockname()
        self.server = await loop.create_server(lambda: self.proto, sock=lsock, ssl=ssl_server)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            set_cubic(s)
            if rcvbuf:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            s.setblocking(False)
            await loop.sock_connect(s, addr)
        except BaseException:
            s.close()
            raise
        self.sock = s
        if ssl_server is None:
            self.transport = await self.proto.made
        return self

    async def read_all(self, limit: Optional[int] = None) -> bytes:
        """Read the client side until EOF (or ``limit`` bytes)."""
        loop = asyncio.get_running_loop()
        out = bytearray()
        while limit is None or len(out) < limit:
            want = 1 << 20 if limit is None else min(1 << 20, limit - len(out))
            try:
                d = await loop.sock_recv(self.sock, want)
            except ConnectionError:
                break
            if not d:
                break
            out += d
        return bytes(out)

    def reset(self) -> None:
        """Close the client side with a RST (SO_LINGER 0)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    async def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        if self.sock.fileno() >= 0:
            self.sock.close()
        self.server.close()
        await self.server.wait_closed()
        if self.transport is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.proto.lost), 5)
            except asyncio.TimeoutError:
                pass
        # Let the loop run the transports' pending close callbacks.
        for _ in range(3):
            await asyncio.sleep(0)


def set_cubic(s: socket.socket) -> None:
    """TCP_CONGESTION cubic where the kernel allows it (benchmarks and tests
    should not depend on the machine's default)."""
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"cubic")
    except (OSError, AttributeError):
        pass


def exc_summary(e: BaseException) -> List[Any]:
    return [type(e).__name__, str(e)]
