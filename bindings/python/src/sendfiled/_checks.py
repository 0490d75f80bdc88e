"""Argument checks shared with asyncio, so that errors match it exactly.

asyncio's own functions are reused when the running Python has them (they do
not use their ``self``), so the exception types and messages are the ones of
the installed asyncio, whatever its version. The copies below are only for a
Python that lacks them.
"""

from __future__ import annotations

import io
import os
import socket
import stat
from typing import Any, Optional, Tuple

from asyncio import base_events as _base_events

from . import _errors, _stats

_asyncio_check_params: Any = getattr(_base_events.BaseEventLoop, "_check_sendfile_params", None)
_asyncio_check_ssl: Any = getattr(_base_events, "_check_ssl_socket", None)

try:
    import ssl as _ssl
except ImportError:  # pragma: no cover
    _ssl = None  # type: ignore[assignment]


def check_ssl_socket(sock: Any) -> None:
    """TypeError for an ssl.SSLSocket, as asyncio's sock_sendfile() raises."""
    if _asyncio_check_ssl is not None:
        _asyncio_check_ssl(sock)
        return
    if _ssl is not None and isinstance(sock, _ssl.SSLSocket):  # pragma: no cover
        raise TypeError("Socket cannot be of type SSLSocket")


def check_sendfile_params(sock: Any, file: Any, offset: Any, count: Any) -> None:
    """asyncio's checks of sock_sendfile()'s arguments, same types and messages."""
    if _asyncio_check_params is not None:
        _asyncio_check_params(None, sock, file, offset, count)
        return
    if 'b' not in getattr(file, 'mode', 'b'):  # pragma: no cover
        raise ValueError("file should be opened in binary mode")
    if not sock.type == socket.SOCK_STREAM:  # pragma: no cover
        raise ValueError("only SOCK_STREAM type sockets are supported")
    if count is not None:  # pragma: no cover
        if not isinstance(count, int):
            raise TypeError(
                "count must be a positive integer (got {!r})".format(count))
        if count <= 0:
            raise ValueError(
                "count must be a positive integer (got {!r})".format(count))
    if not isinstance(offset, int):  # pragma: no cover
        raise TypeError(
            "offset must be a non-negative integer (got {!r})".format(offset))
    if offset < 0:  # pragma: no cover
        raise ValueError(
            "offset must be a non-negative integer (got {!r})".format(offset))


#: The largest offset, and offset + count, the daemon accepts (off_t).
OFF_MAX = (1 << 63) - 1


def wire_range(offset: int, count: Optional[int]) -> Tuple[int, int]:
    """(offset, count) for the C call, where count 0 means "to end of file".

    An offset or a count beyond 2^63 - 1 raises OverflowError, as
    os.sendfile() (asyncio's native path) does. A range reaching past 2^63 - 1
    is clamped: no file extends that far, and a count past the end of the
    file sends what there is.
    """
    if offset > OFF_MAX:
        raise OverflowError("Python int too large to convert to C long")
    if not count:
        return offset, 0
    if count > OFF_MAX:
        raise OverflowError("Python int too large to convert to C ssize_t")
    return offset, min(count, OFF_MAX - offset) or 0


def source_fd(file: Any) -> Optional[Tuple[int, Optional[int]]]:
    """(descriptor, size) of a file object, or None when it has no usable
    descriptor (asyncio's "not a regular file" cases). The size is None for
    a pipe or socket: its st_size says nothing about what it will give, so
    such a source is never taken for an empty file."""
    try:
        fileno = file.fileno()
    except (AttributeError, io.UnsupportedOperation):
        return None
    try:
        st = os.fstat(fileno)
    except OSError:
        return None
    return fileno, st.st_size if stat.S_ISREG(st.st_mode) else None


#: check_source()'s answer for a file object without a usable descriptor,
#: with fallback allowed: the caller sends it in-process.
NOT_A_FILE = -1


def check_source(sock: Any, file: Any, offset: int, count: Optional[int],
                 fallback: bool) -> int:
    """The checks Client.sendfile() and aio's sock_sendfile() share before
    they ask the daemon: asyncio's argument checks (same types and
    messages), then the source.

    Return: the source's descriptor, or NOT_A_FILE (counted as an
    in-process fallback). A regular file of size 0 still goes to the daemon:
    st_size 0 does not mean empty (/proc files have data behind it), and the
    daemon reads to the real end. Raises SendfileNotAvailableError for a file object
    without a descriptor when ``fallback`` is false.
    """
    check_ssl_socket(sock)
    check_sendfile_params(sock, file, offset, count)
    src = source_fd(file)
    if src is None:
        if not fallback:
            raise _errors.SendfileNotAvailableError("not a regular file")
        _stats.bump("fallback_not_regular")
        return NOT_A_FILE
    return src[0]


def settle_position(file: Any, bytes_sent: int, final_offset: int) -> None:
    """Make the file object's position agree with what the daemon set.

    The daemon has already moved the shared position to ``final_offset``
    when it sent anything; seeking the object to the same place drops a
    buffered reader's stale read-ahead, as asyncio's fallback does. Nothing
    is done when nothing was sent (the position is then untouched).
    """
    if bytes_sent <= 0 or not hasattr(file, "seek"):
        return
    # An unbuffered file object keeps no position of its own: the
    # descriptor's is already right, and two more syscalls would only cost
    # time (they matter for the small ranges sent in the calling thread).
    if type(file) is io.FileIO:
        return
    seekable = getattr(file, "seekable", None)
    try:
        if seekable is not None and not seekable():
            return
    except ValueError:  # closed
        return
    # A buffered reader caches the raw position; tell() refreshes it, so
    # that the seek below drops the stale read-ahead instead of moving
    # inside it (CPython's BufferedReader.seek() would otherwise trust the
    # cached position the daemon has made wrong).
    file.tell()
    file.seek(final_offset)


#: The longest deadline or idle timeout the wire can carry (milliseconds in 32 bits).
_MAX_MS = 2**32 - 1


def _ms(name: str, seconds: Any) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(seconds).__name__}")
    if not seconds > 0:
        raise ValueError(f"{name} must be positive, got {seconds!r}")
    # Rounded up: a limit never ends a transfer sooner than asked.
    ms = -(-int(seconds * 1_000_000) // 1000)
    if ms > _MAX_MS:
        raise ValueError(f"{name} must be at most {_MAX_MS / 1000:.0f} seconds")
    return max(1, ms)


def _bytes(name: str, n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name} must be an int, not {type(n).__name__}")
    if n <= 0 or n >= 2**64:
        raise ValueError(f"{name} must be a positive 64-bit integer, got {n!r}")
    return n


def limits(deadline: Any, idle_timeout: Any, rate_limit: Any, rate_limit_after: Any
           ) -> Optional[Any]:
    """struct sfd_options for the limits given (seconds, bytes/s, bytes), or None
    when there are none. TypeError/ValueError for bad values."""
    from . import _lib

    if deadline is None and idle_timeout is None and rate_limit is None and \
            rate_limit_after is None:
        return None
    o = _lib.Options()
    if deadline is not None:
        o.deadline_ms = _ms("deadline", deadline)
    if idle_timeout is not None:
        o.idle_timeout_ms = _ms("idle_timeout", idle_timeout)
    if rate_limit is not None:
        o.rate_limit_bps = _bytes("rate_limit", rate_limit)
    if rate_limit_after is not None:
        if rate_limit is None:
            raise ValueError("rate_limit_after needs rate_limit")
        o.rate_limit_after = _bytes("rate_limit_after", rate_limit_after)
    return o
