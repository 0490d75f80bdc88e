"""Handing a transport's socket to the daemon, and taking it back.

asyncio's loop.sendfile() pauses reading and waits for the transport's write
buffer to empty before it writes to the socket itself, and restores both
afterwards; the daemon writes to the socket instead, so the same must happen
around its transfer. asyncio's own transports are handled as asyncio's
_sendfile_native() does; other loops' (uvloop's) through a stand-in protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import weakref
from typing import Any, AsyncIterator, Optional

try:
    from asyncio import constants as _constants
    _TRY_NATIVE: Any = _constants._SendfileMode.TRY_NATIVE
except (ImportError, AttributeError):  # pragma: no cover
    _TRY_NATIVE = None

__all__ = ["is_tls", "can_hand_over", "handed_over"]


class _DrainWaiter(asyncio.Protocol):
    """Stands in for the transport's protocol until its write buffer is empty.

    For transports without asyncio's private _make_empty_waiter() (uvloop's):
    with the write buffer limits at 0, the transport calls resume_writing()
    once everything is flushed to the kernel. A resume_writing() without a
    pause_writing() before it means the real protocol was paused: it gets its
    resume_writing() when restored, as asyncio's _SendfileFallbackProtocol does.
    """

    def __init__(self, transport: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._proto = transport.get_protocol()
        self._fut: "asyncio.Future[None]" = loop.create_future()
        self._paused_here = False
        self._resume_proto = False
        self._limits = transport.get_write_buffer_limits()
        transport.set_protocol(self)
        transport.set_write_buffer_limits(high=0, low=0)

    def pause_writing(self) -> None:
        self._paused_here = True

    def resume_writing(self) -> None:
        if not self._paused_here:
            self._resume_proto = True
        self._paused_here = False
        if not self._fut.done():
            self._fut.set_result(None)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if not self._fut.done():
            self._fut.set_exception(
                ConnectionError("Connection is closed by peer") if exc is None else exc)
        self._proto.connection_lost(exc)

    def data_received(self, data: bytes) -> None:  # pragma: no cover
        raise RuntimeError("Invalid state: reading should be paused")

    def eof_received(self) -> None:  # pragma: no cover
        raise RuntimeError("Invalid state: reading should be paused")

    async def wait(self) -> None:
        if self._transport.get_write_buffer_size() == 0:
            return
        if self._transport.is_closing() and not self._fut.done():
            raise ConnectionError("Connection is closed by peer")
        await self._fut

    def restore(self) -> None:
        t = self._transport
        t.set_protocol(self._proto)
        low, high = self._limits
        t.set_write_buffer_limits(high=high, low=low)
        if self._fut.done() and not self._fut.cancelled():
            self._fut.exception()  # retrieved
        if self._resume_proto:
            self._proto.resume_writing()


def is_tls(transport: Any) -> bool:
    return (transport.get_extra_info("sslcontext") is not None or
            transport.get_extra_info("ssl_object") is not None)


_GENERIC_METHODS = ("pause_reading", "resume_reading", "is_reading", "get_write_buffer_size",
                    "get_write_buffer_limits", "set_write_buffer_limits", "get_protocol",
                    "set_protocol")


def can_hand_over(loop: asyncio.AbstractEventLoop, transport: Any, sock: Any) -> bool:
    """Whether this transport's socket may be handed to the daemon."""
    mode = getattr(transport, "_sendfile_compatible", None)
    if mode is not None:
        # asyncio's own transports say: only TRY_NATIVE ones have a socket
        # that sendfile(2) may write to directly.
        return mode is _TRY_NATIVE
    if isinstance(loop, asyncio.BaseEventLoop):
        return False  # asyncio itself refuses such transports
    # Another loop's (uvloop's) transports: a stream socket, flow control.
    try:
        stream = sock.type == socket.SOCK_STREAM
    except (AttributeError, OSError):
        return False
    return stream and all(hasattr(transport, m) for m in _GENERIC_METHODS)


@contextlib.asynccontextmanager
async def handed_over(loop: asyncio.AbstractEventLoop, transport: Any) -> AsyncIterator[None]:
    """Pause reading, wait for the write buffer to empty; restore afterwards.

    asyncio's _SelectorSocketTransport is handled as asyncio's own
    _sendfile_native() does (its empty waiter also makes transport.write()
    raise "unable to write; sendfile is in progress" meanwhile); any other
    transport with flow control through a stand-in protocol.
    """
    if hasattr(transport, "_make_empty_waiter") and hasattr(loop, "_transports"):
        fd = transport._sock_fd
        registered = loop._transports.get(fd) is transport
        if registered:
            del loop._transports[fd]
        resume_reading = transport.is_reading()
        transport.pause_reading()
        try:
            # Raises "Empty waiter is already set" during another sendfile.
            waiter = transport._make_empty_waiter()
            try:
                await waiter
                yield
            finally:
                transport._reset_empty_waiter()
        finally:
            if resume_reading:
                transport.resume_reading()
            if registered:
                loop._transports[fd] = transport
        return

    # One sendfile at a time per transport, as asyncio's empty waiter enforces.
    if transport in _busy:
        raise RuntimeError("Empty waiter is already set")
    _busy.add(transport)
    resume_reading = transport.is_reading()
    transport.pause_reading()
    try:
        if transport.get_write_buffer_size():
            drain = _DrainWaiter(transport, loop)
            try:
                await drain.wait()
            finally:
                drain.restore()
        yield
    finally:
        _busy.discard(transport)
        if resume_reading and not transport.is_closing():
            transport.resume_reading()


#: Transports (not asyncio's own) handed over to the daemon right now.
_busy: "weakref.WeakSet[Any]" = weakref.WeakSet()
