"""Exceptions, and the mapping from the daemon's statuses to them.

Every exception raised for a daemon reply carries the outcome as attributes:
``bytes_sent``, ``final_offset``, ``status``, ``method`` (a name such as
"sendfile") and ``result`` (the full :class:`sendfiled.Result`). For
exceptions that Python itself defines (BrokenPipeError, ValueError, ...) the
attributes are set on the instance.
"""

from __future__ import annotations

import asyncio
import errno as _errno
import os
from typing import Optional

from . import _lib

__all__ = [
    "SendfileNotAvailableError",
    "DaemonUnavailableError",
    "ShuttingDownError",
    "OutcomeUnknownError",
    "LimitError",
    "ProtocolError",
    "TransferCancelledError",
    "PeerClosedError",
    "TransferTimeoutError",
    "error_from_result",
]


class SendfileNotAvailableError(asyncio.SendfileNotAvailableError):
    """No zero-copy method applies and fallback was not allowed; nothing was sent.

    A subclass of :class:`asyncio.SendfileNotAvailableError`, so code written
    for asyncio's ``loop.sendfile(..., fallback=False)`` catches it unchanged.
    """

    bytes_sent: int = 0
    final_offset: Optional[int] = None
    status: Optional[int] = None
    method: Optional[str] = None
    result: Optional[_lib.Result] = None


class DaemonUnavailableError(OSError):
    """The daemon could not be reached (not running, refused, went away).

    ``errno`` is the cause (ENOENT, ECONNREFUSED, ECONNRESET, EACCES, ...);
    ``path`` the data socket tried, when known.
    """

    bytes_sent: int = 0
    path: Optional[str] = None


#: libsendfiled's -SFD_EOUTCOME_UNKNOWN: not an errno.
SFD_EOUTCOME_UNKNOWN = 4096


class OutcomeUnknownError(DaemonUnavailableError):
    """The connection to the daemon was lost (it was killed, or crashed) while
    the transfer was in flight: no reply will come.

    The daemon may have sent part of the range; the file position says how
    much (offset + bytes that left), and ``bytes_sent`` is derived from it.
    Sending the rest from there is safe; sending the whole range again is
    not. ``errno`` is ECONNRESET.
    """


class ShuttingDownError(DaemonUnavailableError):
    """The daemon is stopping and takes no new transfers (nothing was sent)."""


class LimitError(OSError):
    """A limit of the daemon was reached (requests in flight, descriptors,
    memory); nothing was sent. Retry later. ``errno`` tells which (EBUSY,
    EUSERS, EMFILE, ENOMEM)."""


class ProtocolError(OSError):
    """The daemon could not parse the request (a bug in the library or a
    version mismatch)."""


class TransferCancelledError(OSError):
    """The daemon cancelled the transfer on its own (it was shutting down).

    A cancellation requested by the caller (a cancelled asyncio task) raises
    :class:`asyncio.CancelledError` instead.
    """


class TransferTimeoutError(TimeoutError):
    """The daemon ended the transfer at the deadline or idle timeout the call
    asked for. ``limit`` says which: "deadline" or "idle"; ``bytes_sent`` how
    much left before (the file position is offset + bytes_sent). ``errno`` is
    ETIMEDOUT.

    The caller's own ``timeout=`` raises a plain :class:`TimeoutError`.
    """

    limit: Optional[str] = None


class PeerClosedError(ConnectionError):
    """The destination's peer went away mid-transfer with an errno that
    Python does not map to a ConnectionError subclass (ENOTCONN, ETIMEDOUT,
    EHOSTUNREACH, ENETUNREACH). EPIPE, ECONNRESET and ECONNABORTED raise
    BrokenPipeError, ConnectionResetError and ConnectionAbortedError."""


def _attach(exc: BaseException, res: Optional[_lib.Result]) -> BaseException:
    exc.bytes_sent = res.bytes_sent if res else 0  # type: ignore[attr-defined]
    exc.final_offset = res.final_offset if res else None  # type: ignore[attr-defined]
    exc.status = res.status if res else None  # type: ignore[attr-defined]
    exc.method = res.method_name if res else None  # type: ignore[attr-defined]
    exc.result = res  # type: ignore[attr-defined]
    return exc


def _oserror(err: int, msg: str) -> OSError:
    # OSError(errno, ...) picks the matching subclass (BrokenPipeError, ...).
    return OSError(err, msg)


def error_from_result(res: _lib.Result, lib: Optional[_lib.Library] = None) -> BaseException:
    """The exception for a reply whose status is not OK."""
    st = res.status
    err = res.error
    msg = res.message or (os.strerror(err) if err else "")
    exc: BaseException
    if st == _lib.STATUS_NOT_AVAILABLE:
        exc = SendfileNotAvailableError(msg or "no zero-copy method for this socket and file")
    elif st == _lib.STATUS_PEER_CLOSED:
        err = err or _errno.EPIPE
        if err in (_errno.EPIPE, _errno.ECONNRESET, _errno.ECONNABORTED):
            exc = _oserror(err, msg or os.strerror(err))
        else:
            exc = PeerClosedError(err, msg or os.strerror(err))
    elif st == _lib.STATUS_INVALID_ARGUMENT:
        if err in (0, _errno.EINVAL, _errno.EOVERFLOW):
            exc = ValueError(msg or "invalid argument")
            exc.errno = err or _errno.EINVAL  # type: ignore[attr-defined]
        else:
            exc = _oserror(err, msg or os.strerror(err))
    elif st == _lib.STATUS_IO_ERROR:
        err = err or _errno.EIO
        exc = _oserror(err, msg or os.strerror(err))
    elif st == _lib.STATUS_CANCELLED:
        err = err or _errno.ECANCELED
        exc = TransferCancelledError(err, msg or os.strerror(err))
    elif st == _lib.STATUS_LIMIT:
        err = err or _errno.EBUSY
        exc = LimitError(err, msg or os.strerror(err))
    elif st == _lib.STATUS_PROTOCOL:
        err = err or _errno.EBADMSG
        exc = ProtocolError(err, msg or os.strerror(err))
    elif st == _lib.STATUS_SHUTTING_DOWN:
        err = err or _errno.ESHUTDOWN
        exc = ShuttingDownError(err, msg or "the daemon is shutting down")
    elif st == _lib.STATUS_TIMED_OUT:
        err = err or _errno.ETIMEDOUT
        exc = TransferTimeoutError(err, msg or "the transfer's limit passed")
        exc.limit = res.timeout
    elif st == _lib.STATUS_PERMISSION_DENIED:
        err = err or _errno.EACCES
        exc = PermissionError(err, msg or "the daemon does not serve this user")
    else:
        name = lib.status_name(st) if lib else str(st)
        err = err or _errno.EIO
        exc = OSError(err, f"unexpected status {name}: {msg}")
    return _attach(exc, res)


def unavailable(err: int, path: Optional[str], what: str = "cannot reach the daemon"
                ) -> DaemonUnavailableError:
    """A DaemonUnavailableError for a negative or positive errno."""
    err = abs(err)
    where = f" at {path}" if path else ""
    exc: DaemonUnavailableError
    if err == SFD_EOUTCOME_UNKNOWN:
        exc = OutcomeUnknownError(_errno.ECONNRESET,
                                  f"{what}{where}: outcome unknown: see the file position")
    else:
        exc = DaemonUnavailableError(err, f"{what}{where}: {os.strerror(err)}")
    exc.path = path
    exc.bytes_sent = 0
    return exc
