"""The blocking client: one daemon connection, socket.sendfile()'s contract."""

from __future__ import annotations

import ctypes
import errno as _errno
import logging
import os
import socket
import threading
from typing import Any, Optional, Set, Union

from . import _checks, _errors, _lib, _stats

__all__ = ["Client"]

log = logging.getLogger("sendfiled")

#: Errors after which a client's connection is unusable (see sfd_client_dispatch()).
DEAD_CONNECTION = (_errno.ECONNRESET, _errno.EPIPE, _errno.EACCES, _errno.EBADMSG,
                   _errno.ENOTCONN, _errno.ESHUTDOWN, _errors.SFD_EOUTCOME_UNKNOWN)

PathArg = Union[str, bytes, "os.PathLike[str]", None]
LibArg = Union[_lib.Library, str, "os.PathLike[str]", None]


def _encode_path(path: PathArg) -> Optional[bytes]:
    if path is None:
        return None
    return os.fsencode(path)


def open_raw(lib: _lib.Library, path: PathArg) -> ctypes.c_void_p:
    """sfd_client_open(), raising DaemonUnavailableError."""
    c = ctypes.c_void_p()
    r = lib.open(_encode_path(path), ctypes.byref(c))
    if r < 0:
        shown = os.fsdecode(path) if path is not None else _default_path(lib)
        raise _errors.unavailable(r, shown)
    return c


def _default_path(lib: _lib.Library) -> Optional[str]:
    try:
        return lib.default_socket_path()
    except OSError:
        return None


def _tell(fd: int) -> Optional[int]:
    try:
        return os.lseek(fd, 0, os.SEEK_CUR)
    except OSError:
        return None


class Client:
    """A connection to the daemon, for blocking code.

    ``Client(path=None)`` connects to ``path`` or the default data socket
    ($SENDFILED_SOCKET, else $XDG_RUNTIME_DIR/sendfiled/sendfiled.sock, else
    /run/sendfiled/sendfiled.sock). ``lib`` picks the library (a path or a
    :class:`sendfiled.Library`); see :func:`sendfiled.load_library`.

    When the daemon cannot be reached the constructor raises
    :class:`DaemonUnavailableError`, unless ``local_fallback`` is true: then
    :meth:`sendfile` sends in this process with :meth:`socket.socket.sendfile`
    while the daemon is away, and tries to reconnect at each call.

    A client may be shared by threads: calls on it are serialised.
    """

    def __init__(self, path: PathArg = None, *, lib: LibArg = None,
                 local_fallback: bool = False) -> None:
        self._lib = _lib.resolve(lib)
        self.path: Optional[str] = os.fsdecode(path) if path is not None else None
        self.local_fallback = local_fallback
        self._lock = threading.Lock()
        self._c: Optional[ctypes.c_void_p] = None
        self._closed = False
        try:
            self._c = open_raw(self._lib, path)
        except _errors.DaemonUnavailableError as e:
            if not local_fallback:
                raise
            self._note_unavailable(e)

    # -- lifetime -----------------------------------------------------------

    def close(self) -> None:
        """Close the connection. Idempotent. Transfers of other threads still
        waiting on this client are cancelled by the daemon."""
        with self._lock:
            self._closed = True
            self._drop()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        c = getattr(self, "_c", None)
        if c is not None:
            self._lib.free(c)
            self._c = None

    @property
    def connected(self) -> bool:
        """Whether the client holds a connection to the daemon now."""
        return self._c is not None

    @property
    def library(self) -> _lib.Library:
        return self._lib

    def _drop(self) -> None:
        if self._c is not None:
            self._lib.free(self._c)
            self._c = None

    def _note_unavailable(self, e: BaseException) -> None:
        _stats.set_last_error(str(e))
        _warn_once(e)

    def _ensure(self) -> Optional[ctypes.c_void_p]:
        if self._closed:
            raise ValueError("I/O operation on closed sendfiled.Client")
        if self._c is None:
            try:
                self._c = open_raw(self._lib, self.path)
            except _errors.DaemonUnavailableError as e:
                if not self.local_fallback:
                    raise
                self._note_unavailable(e)
                return None
            daemon_reached()
        return self._c

    # -- the operation ------------------------------------------------------

    def sendfile(self, sock: socket.socket, file: Any, offset: int = 0,
                 count: Optional[int] = None, *, fallback: bool = True,
                 timeout: Optional[float] = None) -> int:
        """Send ``file`` to ``sock`` through the daemon and return the bytes sent.

        The contract of :meth:`socket.socket.sendfile`: ``offset`` is where to
        start, ``count`` how many bytes (None: to end of file), ``file`` a
        binary file object. The file position is ``offset + bytes_sent``
        afterwards whenever anything was sent, also when an exception is
        raised (its ``bytes_sent`` attribute says how much went out).

        ``fallback=False`` refuses the daemon's user-space copy: when neither
        sendfile(2) nor splice(2) applies, :class:`SendfileNotAvailableError`
        is raised and nothing is sent. A file object without a descriptor
        (io.BytesIO) is sent in-process with ``fallback=True``, and raises
        SendfileNotAvailableError otherwise.

        ``timeout`` (seconds) bounds the wait; on expiry the transfer is
        cancelled, its position settled, and :class:`TimeoutError` raised.

        Blocking and non-blocking sockets both work: the daemon never blocks
        on them and never changes their flags.

        Exceptions: ValueError/TypeError for bad arguments (asyncio's checks
        and messages); BrokenPipeError, ConnectionResetError or another
        ConnectionError when the peer went away; OSError for I/O errors;
        :class:`LimitError`, :class:`TransferCancelledError`,
        :class:`DaemonUnavailableError`.
        """
        fileno = _checks.check_source(sock, file, offset, count, fallback)
        if fileno == _checks.NOT_A_FILE:
            return _send_by_copy(sock, file, offset, count)
        flags = 0 if fallback else _lib.SFD_NO_FALLBACK
        woff, wcount = _checks.wire_range(offset, count)
        if count and not wcount:
            return 0  # offset is OFF_MAX: nothing can be there
        timeout_ms = -1 if timeout is None else min(max(0, int(timeout * 1000)), 2**31 - 1)
        res = _lib._CResult()
        with self._lock:
            c = self._ensure()
            if c is None:
                _stats.bump("fallback_no_daemon")
                return socket.socket.sendfile(sock, file, offset, count)
            before = _tell(fileno)
            _stats.bump("in_flight")
            try:
                r = self._lib.sendfile(c, sock.fileno(), fileno, woff, wcount, flags,
                                       timeout_ms, ctypes.byref(res))
            finally:
                _stats.bump("in_flight", -1)
            if r < 0 and -r in DEAD_CONNECTION:
                self._drop()
        if r < 0:
            return self._raise_call_error(-r, file, fileno, offset, before)
        result = _lib.Result(res)
        if (self.local_fallback and result.bytes_sent == 0 and
                result.status in (_lib.STATUS_LIMIT, _lib.STATUS_SHUTTING_DOWN)):
            # Declined, nothing sent: served here instead.
            _stats.bump("fallback_limit")
            return socket.socket.sendfile(sock, file, offset, count)
        _stats.completed(result.method_name, result.bytes_sent,
                         result.status != _lib.STATUS_OK,
                         result.status == _lib.STATUS_CANCELLED)
        _checks.settle_position(file, result.bytes_sent, result.final_offset)
        if result.status == _lib.STATUS_OK:
            return result.bytes_sent
        raise _errors.error_from_result(result, self._lib)

    def ping(self, *, timeout: Optional[float] = None) -> _lib.PingInfo:
        """Ask the daemon whether it is alive, and who it is.

        Returns a :class:`sendfiled.PingInfo`: ``protocol_version``,
        ``daemon_version`` and ``features``, a frozenset of the optional
        features the daemon implements (``"deadline" in info.features``).
        Ask before using one: a daemon without it refuses the request.

        Like :meth:`sendfile`, a ping after a daemon restart is made on a new
        connection. ``local_fallback`` does not apply: with no daemon,
        :class:`DaemonUnavailableError` is raised. ``timeout`` (seconds)
        bounds the wait (:class:`TimeoutError`). A library older than
        ``sfd_client_ping()`` raises :class:`NotImplementedError`.
        """
        if self._lib.ping is None:
            raise NotImplementedError(f"{self._lib.path} has no sfd_client_ping(): "
                                      "libsendfiled 0.3 or later is needed for ping()")
        timeout_ms = -1 if timeout is None else min(max(0, int(timeout * 1000)), 2**31 - 1)
        info = _lib._CPingInfo()
        with self._lock:
            if self._closed:
                raise ValueError("I/O operation on closed sendfiled.Client")
            if self._c is None:
                self._c = open_raw(self._lib, self.path)
                daemon_reached()
            r = self._lib.ping(self._c, timeout_ms, ctypes.byref(info))
            if r < 0 and -r in DEAD_CONNECTION:
                self._drop()
        if r == -_errno.ETIMEDOUT:
            raise TimeoutError(_errno.ETIMEDOUT, "the daemon did not answer the ping in time")
        if r < 0 and -r in DEAD_CONNECTION:
            raise _errors.unavailable(-r, self.path or _default_path(self._lib),
                                      "lost the connection to the daemon")
        if r < 0:
            raise OSError(-r, os.strerror(-r))
        return _lib.PingInfo._from_c(info)

    def _raise_call_error(self, err: int, file: Any, fileno: int, offset: int,
                          before: Optional[int]) -> int:
        # The library could not report an outcome. What was sent is only
        # known from the file position, which the daemon has settled.
        after = _tell(fileno)
        sent = 0
        if after is not None and before is not None and after != before:
            sent = max(0, after - offset)
        _checks.settle_position(file, sent, offset + sent)
        exc: OSError
        if err == _errno.ETIMEDOUT:
            exc = TimeoutError(err, "timed out")
        elif err in DEAD_CONNECTION:
            exc = _errors.unavailable(err, self.path or _default_path(self._lib),
                                      "lost the connection to the daemon")
            _stats.set_last_error(str(exc))
        elif err == _errno.EBADF:
            exc = OSError(err, "bad file descriptor")
        else:
            exc = OSError(err, os.strerror(err))
        exc.bytes_sent = sent  # type: ignore[attr-defined]
        raise exc


def _send_by_copy(sock: socket.socket, file: Any, offset: int, count: Optional[int]) -> int:
    """socket.sendfile()'s own fallback, for file objects without a descriptor."""
    send = getattr(sock, "_sendfile_use_send", None)
    if send is not None:
        return int(send(file, offset, count))
    raise _errors.SendfileNotAvailableError("not a regular file")  # pragma: no cover


_warned: Set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(e: BaseException) -> None:
    """Log that the daemon is unreachable, once until it is reached again."""
    with _warned_lock:
        if "unavailable" in _warned:
            return
        _warned.add("unavailable")
    # The logger's name is "sendfiled" already: logging's formats print it
    # ("WARNING:sendfiled:..."), so the message does not repeat it.
    log.warning("%s; sending in-process instead", e)


def daemon_reached() -> None:
    """The daemon answers again: the next time it cannot be reached is logged."""
    with _warned_lock:
        _warned.clear()
