"""asyncio integration: ``loop.sendfile()`` and ``loop.sock_sendfile()`` through the daemon.

Two ways to use it:

* call :func:`sendfile` / :func:`sock_sendfile` of this module where you
  would call the loop's methods, or
* :func:`install` the daemon into a loop, after which that loop's own
  ``loop.sendfile`` and ``loop.sock_sendfile`` go through it, so unmodified
  code (aiohttp's ``web.FileResponse`` calls ``loop.sendfile``) offloads.

Semantics are those of asyncio's ``loop.sendfile`` (see the DESIGN of
sendfiled): the same argument checks with the same exception types and
messages, the same handling of the transport (reading paused and the write
buffer drained before the socket is handed over, then restored), the return
value is the bytes sent, and the file position is ``offset + bytes_sent``
afterwards whenever anything was sent, on success, on error *and* on
cancellation (a cancelled task cancels the transfer in the daemon and waits
for its answer before re-raising :class:`asyncio.CancelledError`).

Requests that are not handed to the daemon go to the loop's own
implementation: a TLS transport (the daemon would send plaintext), a
transport without a socket, a file object without a descriptor, or a daemon
that cannot be reached (unless ``require_daemon``). :func:`stats` counts both
kinds, by reason.

How completions arrive: one connection to the daemon per event loop, its
descriptor watched with ``loop.add_reader``; each readable event runs
``sfd_client_dispatch()``, which resolves the futures of finished requests.
No thread is used, and any number of transfers can be in flight at once.

How :func:`install` works: it sets ``sendfile``, ``sock_sendfile`` and
``close`` as attributes of the loop *instance* (the loop's class is left
alone, so other loops are unaffected). That works for asyncio's loops and for
uvloop, whose ``uvloop.Loop`` is a Python subclass of its Cython base and so
has an instance ``__dict__``. A loop class whose instances take no
attributes raises TypeError; wrap it in a subclass. For loops created by
``asyncio.run()`` or a runner, use :func:`loop_factory`.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import errno as _errno
import os
import threading
import time
import weakref
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

from . import _checks, _errors, _lib, _stats
from ._handover import can_hand_over, handed_over, is_tls
from ._client import DEAD_CONNECTION, LibArg, PathArg, _default_path, _tell, _warn_once, \
    daemon_reached, open_raw

__all__ = [
    "sendfile",
    "sock_sendfile",
    "install",
    "uninstall",
    "installed",
    "loop_factory",
    "close",
    "stats",
    "reset_stats",
    "ping",
]

stats = _stats.stats
reset_stats = _stats.reset_stats

#: Set while the loop's original implementation runs on our behalf, so that
#: its own call to loop.sock_sendfile() (asyncio's _sendfile_native makes one)
#: is not sent back to the daemon.
_bypass: contextvars.ContextVar[bool] = contextvars.ContextVar("sendfiled_bypass",
                                                               default=False)


class _NotHandedOver(Exception):
    """Internal: the daemon did not take the request and nothing was sent;
    the loop's own implementation should run instead."""

    def __init__(self, reason: str, error: BaseException) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


class _SubmitFailed(Exception):
    """Internal: the connection was found dead at submit; nothing was sent."""

    def __init__(self, error: _errors.DaemonUnavailableError) -> None:
        super().__init__(str(error))
        self.error = error


class _Lost(Exception):
    """Internal: set on futures of requests in flight when the connection died."""

    def __init__(self, err: int) -> None:
        super().__init__(err)
        self.err = err


class _LoopClient:
    """One daemon connection serving one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, lib: _lib.Library, path: PathArg,
                 retry_interval: float) -> None:
        self._loop_ref = weakref.ref(loop)
        self.lib = lib
        self.path = path
        self.retry_interval = retry_interval
        self._c: Optional[ctypes.c_void_p] = None
        self._fd = -1
        self._futs: Dict[int, "asyncio.Future[Any]"] = {}
        self._done: List[_lib.Result] = []
        self._cb = _lib.COMPLETION_FN(self._on_completion)
        self._retry_at = 0.0
        self.last_error: Optional[BaseException] = None
        self._closed = False
        # Replaced after the daemon said it is stopping: no new requests,
        # but the ones in flight still complete here.
        self.retiring = False

    # The ctypes callback: called from sfd_client_dispatch(), in this thread.
    def _on_completion(self, c: Any, rid: int, res: Any, userdata: Any) -> None:
        self._done.append(_lib.Result(res.contents))

    @property
    def connected(self) -> bool:
        return self._c is not None

    def shown_path(self) -> Optional[str]:
        return os.fsdecode(self.path) if self.path is not None else _default_path(self.lib)

    def connect(self) -> bool:
        """Connected, or connect now (at most once per retry_interval)."""
        if self._c is not None:
            return True
        if self._closed:
            return False
        now = time.monotonic()
        if now < self._retry_at:
            return False
        try:
            c = open_raw(self.lib, self.path)
        except _errors.DaemonUnavailableError as e:
            self._retry_at = now + self.retry_interval
            self._unusable(e)
            return False
        loop = self._loop_ref()
        if loop is None:  # pragma: no cover
            self.lib.free(c)
            return False
        # The loop watches this descriptor: it must stay the same for the
        # client's life.
        self.lib.set_reconnect(c, 0)
        fd = self.lib.get_fd(c)
        self._c = c
        self._fd = fd
        loop.add_reader(fd, self._dispatch)
        daemon_reached()
        return True

    def _unusable(self, e: BaseException) -> None:
        self.last_error = e
        _stats.set_last_error(str(e))
        _warn_once(e)

    def unavailable_error(self) -> _errors.DaemonUnavailableError:
        e = self.last_error
        if isinstance(e, _errors.DaemonUnavailableError):
            return e
        return _errors.unavailable(_errno.ENOTCONN, self.shown_path())

    def submit(self, out_fd: int, in_fd: int, offset: int, count: int, flags: int
               ) -> Tuple[int, "asyncio.Future[Any]"]:
        """Start a transfer. Raises _SubmitFailed when the connection is dead
        (the request was not sent: the daemon restarted, say)."""
        assert self._c is not None
        loop = self._loop_ref()
        assert loop is not None
        rid = ctypes.c_uint64()
        r = self.lib.submit(self._c, out_fd, in_fd, offset, count, flags, None,
                            ctypes.byref(rid))
        if r < 0:
            if -r in DEAD_CONNECTION:
                # Deliver what the daemon answered before it stopped reading;
                # if the connection has ended, this notices it. A daemon that
                # is stopping may still answer the requests in flight here:
                # the caller retires this client rather than dropping it.
                self._dispatch()
                if self._c is None:
                    raise _SubmitFailed(self.unavailable_error())
                raise _SubmitFailed(_errors.unavailable(-r, self.shown_path(),
                                                        "the daemon takes no more requests"))
            raise OSError(-r, os.strerror(-r))
        fut = loop.create_future()
        self._futs[rid.value] = fut
        _stats.bump("in_flight")
        # A submit that waited for room read completions: deliver them.
        if self.lib.pending(self._c) > 0:
            self._dispatch()
        return rid.value, fut

    def cancel(self, rid: int) -> None:
        if self._c is None:
            return
        r = self.lib.cancel(self._c, rid)
        if r < 0 and -r in DEAD_CONNECTION:
            self._lost(-r)
            return
        # -ENOENT: its completion is already here, waiting for dispatch.
        if self._c is not None and self.lib.pending(self._c) > 0:
            self._dispatch()

    def _dispatch(self) -> None:
        if self._c is None:
            return
        n = self.lib.dispatch(self._c, self._cb)
        done, self._done = self._done, []
        for res in done:
            fut = self._futs.pop(res.id, None)
            if fut is None:
                continue
            _stats.bump("in_flight", -1)
            if not fut.done():
                fut.set_result(res)
        if n < 0:
            self._lost(-n, quiet=self.retiring)
        elif self.retiring and not self._futs:
            self.close()

    def retire(self) -> None:
        """Take no new requests; close once those in flight are answered."""
        self.retiring = True
        if not self._futs:
            self.close()

    def _lost(self, err: int, quiet: bool = False) -> _errors.DaemonUnavailableError:
        exc = _errors.unavailable(err, self.shown_path(), "lost the connection to the daemon")
        if not quiet:
            self._unusable(exc)
        self._release()
        futs, self._futs = self._futs, {}
        for fut in futs.values():
            _stats.bump("in_flight", -1)
            if not fut.done():
                fut.set_exception(_Lost(err))
        return exc

    def _release(self) -> None:
        if self._c is None:
            return
        loop = self._loop_ref()
        if loop is not None and self._fd >= 0:
            try:
                loop.remove_reader(self._fd)
            except Exception:  # a closed loop  # pragma: no cover
                pass
        self.lib.free(self._c)
        self._c = None
        self._fd = -1

    def close(self) -> None:
        """Free the connection. Requests still in flight are cancelled by the
        daemon (positions settled); their awaiting tasks get
        DaemonUnavailableError."""
        self._closed = True
        if self._c is not None:
            self._lost(_errno.ESHUTDOWN, quiet=True)

    def __del__(self) -> None:
        if self._c is not None:
            self.lib.free(self._c)
            self._c = None


class _LoopState:
    """What sendfiled keeps per loop: its options, client and saved methods."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.require_daemon = False
        self.path: PathArg = None
        self.lib: LibArg = None
        self.retry_interval = 1.0
        self.client: Optional[_LoopClient] = None
        self.installed = False
        # The loop's own methods, bound, captured before any patching.
        self.orig_sendfile: Callable[..., Awaitable[int]] = loop.sendfile
        self.orig_sock_sendfile: Callable[..., Awaitable[int]] = loop.sock_sendfile
        self.orig_close: Callable[[], None] = loop.close
        self.saved_attrs: Dict[str, Any] = {}

    def get_client(self, loop: asyncio.AbstractEventLoop) -> _LoopClient:
        c = self.client
        if c is None or c._closed:
            c = _LoopClient(loop, _lib.resolve(self.lib), self.path, self.retry_interval)
            self.client = c
        return c

    def replace_client(self, loop: asyncio.AbstractEventLoop, old: _LoopClient) -> _LoopClient:
        """A new connection in place of ``old``, whose daemon is stopping
        (under socket activation, the next daemon serves the new one)."""
        if self.client is old:
            self.client = None
        old.retire()
        return self.get_client(loop)


_states: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState]" = \
    weakref.WeakKeyDictionary()
_states_lock = threading.Lock()


def _state(loop: asyncio.AbstractEventLoop) -> _LoopState:
    with _states_lock:
        st = _states.get(loop)
        if st is None:
            st = _LoopState(loop)
            _states[loop] = st
        return st


def _loop_arg(loop: Optional[asyncio.AbstractEventLoop]) -> asyncio.AbstractEventLoop:
    if loop is not None:
        return loop
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError("no running event loop: pass the loop explicitly") from None


# -- the request ------------------------------------------------------------


def _settle_lost(file: Any, fileno: int, offset: int, before: Optional[int]) -> int:
    """After a lost connection: what was sent, known only from the position."""
    after = _tell(fileno)
    sent = 0
    if after is not None and before is not None and after != before:
        sent = max(0, after - offset)
    _checks.settle_position(file, sent, offset + sent)
    return sent


def _record(res: _lib.Result) -> None:
    _stats.completed(res.method_name, res.bytes_sent, res.status != _lib.STATUS_OK,
                     res.status == _lib.STATUS_CANCELLED)


async def _daemon_send(st: _LoopState, loop: asyncio.AbstractEventLoop, lc: _LoopClient,
                       sock: Any, file: Any, fileno: int, offset: int, count: Optional[int],
                       fallback: bool, require_daemon: bool) -> int:
    """Send through the daemon and wait for the answer, cancellation included.

    A request the daemon did nothing with because it is stopping (a dead
    connection at submit, or SHUTTING_DOWN with nothing sent) is sent once
    more on a new connection: under socket activation the next daemon takes
    it. If that fails too, _NotHandedOver lets the caller run the loop's own
    implementation (unless require_daemon).
    """
    flags = 0 if fallback else _lib.SFD_NO_FALLBACK
    woff, wcount = _checks.wire_range(offset, count)
    if count and not wcount:
        return 0  # offset is OFF_MAX: nothing can be there
    out_fd = sock.fileno()
    for attempt in (1, 2):
        before = _tell(fileno)
        try:
            rid, fut = lc.submit(out_fd, fileno, woff, wcount, flags)
        except _SubmitFailed as e:
            if attempt == 1:
                lc = st.replace_client(loop, lc)
                if lc.connect():
                    continue
            if require_daemon:
                raise e.error from None
            raise _NotHandedOver("fallback_no_daemon", e.error) from None
        res = await _wait(lc, rid, fut, file, fileno, offset, before)
        if res.status == _lib.STATUS_SHUTTING_DOWN and res.bytes_sent == 0 and attempt == 1:
            lc = st.replace_client(loop, lc)
            if lc.connect():
                continue
        break
    if (not require_daemon and res.bytes_sent == 0 and
            res.status in (_lib.STATUS_LIMIT, _lib.STATUS_SHUTTING_DOWN)):
        # Declined, nothing sent: served in-process, not counted as offloaded.
        raise _NotHandedOver("fallback_limit", _errors.error_from_result(res, lc.lib))
    _record(res)
    _checks.settle_position(file, res.bytes_sent, res.final_offset)
    if res.status == _lib.STATUS_OK:
        return res.bytes_sent
    raise _errors.error_from_result(res, lc.lib)


async def _wait(lc: _LoopClient, rid: int, fut: "asyncio.Future[Any]", file: Any, fileno: int,
                offset: int, before: Optional[int]) -> _lib.Result:
    """The daemon's answer to request rid. A cancelled task cancels the
    transfer and waits for the answer, so that the position is settled."""
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        lc.cancel(rid)
        while not fut.done():
            try:
                await asyncio.wait((fut,))
            except asyncio.CancelledError:
                continue
        exc = fut.exception()
        if exc is None:
            res = fut.result()
            _record(res)
            _checks.settle_position(file, res.bytes_sent, res.final_offset)
        else:
            _settle_lost(file, fileno, offset, before)
        raise
    except _Lost as e:
        sent = _settle_lost(file, fileno, offset, before)
        err = _errors.unavailable(e.err, lc.shown_path(), "lost the connection to the daemon")
        err.bytes_sent = sent
        raise err from None


async def _call_original(fn: Callable[..., Awaitable[int]], *args: Any, **kwargs: Any) -> int:
    token = _bypass.set(True)
    try:
        return await fn(*args, **kwargs)
    finally:
        _bypass.reset(token)


def _connect_or_decline(st: _LoopState, loop: asyncio.AbstractEventLoop,
                        require_daemon: bool) -> Optional[_LoopClient]:
    lc = st.get_client(loop)
    if lc.connect():
        return lc
    if require_daemon:
        raise lc.unavailable_error()
    return None


async def _transport_sendfile(loop: asyncio.AbstractEventLoop, st: _LoopState, transport: Any,
                              file: Any, offset: int, count: Optional[int], fallback: bool,
                              require_daemon: Optional[bool]) -> int:
    orig = st.orig_sendfile
    if _bypass.get():
        return await orig(transport, file, offset, count, fallback=fallback)
    req = st.require_daemon if require_daemon is None else require_daemon
    if transport.is_closing():
        raise RuntimeError("Transport is closing")
    if is_tls(transport):
        # Encrypted in user space: the daemon would send plaintext.
        _stats.bump("fallback_tls")
        return await _call_original(orig, transport, file, offset, count, fallback=fallback)
    sock = transport.get_extra_info("socket")
    if sock is None or not can_hand_over(loop, transport, sock):
        _stats.bump("fallback_transport")
        return await _call_original(orig, transport, file, offset, count, fallback=fallback)
    lc = _connect_or_decline(st, loop, req)
    if lc is None:
        _stats.bump("fallback_no_daemon")
        return await _call_original(orig, transport, file, offset, count, fallback=fallback)

    try:
        async with handed_over(loop, transport):
            # Checked where asyncio checks them: in sock_sendfile(), once
            # the transport is handed over.
            _checks.check_ssl_socket(sock)
            _checks.check_sendfile_params(sock, file, offset, count)
            src = _checks.source_fd(file)
            if src is None:
                raise _NotHandedOver("fallback_not_regular",
                                     _errors.SendfileNotAvailableError("not a regular file"))
            # A regular file of size 0 goes to the daemon too: /proc files
            # have data behind that size, and the daemon reads to the end.
            fileno = src[0]
            return await _daemon_send(st, loop, lc, sock, file, fileno, offset, count,
                                      fallback, req)
    except _NotHandedOver as e:
        # require_daemon is about reaching the daemon; a file object without
        # a descriptor is asyncio's business, decided by fallback.
        if e.reason == "fallback_not_regular" and not fallback:
            raise e.error from None
        if req and e.reason != "fallback_not_regular":
            raise e.error from None
        _stats.bump(e.reason)
        return await _call_original(orig, transport, file, offset, count, fallback=fallback)


async def _sock_sendfile(loop: asyncio.AbstractEventLoop, st: _LoopState, sock: Any, file: Any,
                         offset: int, count: Optional[int], fallback: bool,
                         require_daemon: Optional[bool]) -> int:
    orig = st.orig_sock_sendfile
    if _bypass.get():
        return await orig(sock, file, offset, count, fallback=fallback)
    req = st.require_daemon if require_daemon is None else require_daemon
    if loop.get_debug() and sock.gettimeout() != 0:
        raise ValueError("the socket must be non-blocking")
    fileno = _checks.check_source(sock, file, offset, count, fallback)
    if fileno == _checks.NOT_A_FILE:
        return await _call_original(orig, sock, file, offset, count, fallback=fallback)
    lc = _connect_or_decline(st, loop, req)
    if lc is None:
        _stats.bump("fallback_no_daemon")
        return await _call_original(orig, sock, file, offset, count, fallback=fallback)
    try:
        return await _daemon_send(st, loop, lc, sock, file, fileno, offset, count, fallback,
                                  req)
    except _NotHandedOver as e:
        if req:
            raise e.error from None
        _stats.bump(e.reason)
        return await _call_original(orig, sock, file, offset, count, fallback=fallback)


# -- the public functions ---------------------------------------------------


async def sendfile(transport: asyncio.WriteTransport, file: Any, offset: int = 0,
                   count: Optional[int] = None, *, fallback: bool = True,
                   require_daemon: Optional[bool] = None) -> int:
    """``loop.sendfile()`` through the daemon, on the running loop.

    Send ``file`` (a binary file object) to ``transport`` and return the
    number of bytes sent; ``offset``/``count`` select the range (``count``
    None: to end of file). The file position is ``offset + bytes_sent``
    afterwards whenever anything was sent, also on error and cancellation.

    ``fallback=False``: when no zero-copy method applies, raise
    :class:`sendfiled.SendfileNotAvailableError` (an
    asyncio.SendfileNotAvailableError) instead of copying.

    ``require_daemon``: raise :class:`sendfiled.DaemonUnavailableError` rather
    than send in-process when the daemon cannot be reached (None: the loop's
    setting from :func:`install`, else False).

    TLS transports and transports without a socket go to the loop's own
    implementation, unchanged.
    """
    loop = asyncio.get_running_loop()
    return await _transport_sendfile(loop, _state(loop), transport, file, offset, count,
                                     fallback, require_daemon)


async def sock_sendfile(sock: Any, file: Any, offset: int = 0, count: Optional[int] = None,
                        *, fallback: bool = True, require_daemon: Optional[bool] = None) -> int:
    """``loop.sock_sendfile()`` through the daemon, on the running loop.

    ``sock`` is a connected SOCK_STREAM socket (non-blocking, as asyncio
    expects; the daemon never changes its flags). Same contract as
    :func:`sendfile` otherwise.
    """
    loop = asyncio.get_running_loop()
    return await _sock_sendfile(loop, _state(loop), sock, file, offset, count, fallback,
                                require_daemon)


def install(loop: Optional[asyncio.AbstractEventLoop] = None, *, require_daemon: bool = False,
            path: PathArg = None, lib: LibArg = None, retry_interval: float = 1.0) -> None:
    """Make ``loop.sendfile`` and ``loop.sock_sendfile`` of ``loop`` (default:
    the running loop) go through the daemon.

    ``path``: the daemon's data socket (default: the library's default);
    ``lib``: the library to use; ``require_daemon``: raise
    DaemonUnavailableError instead of sending in-process when the daemon
    cannot be reached; ``retry_interval``: seconds between two attempts to
    reach an absent daemon (a warning is logged once until it is reached).

    The connection is made at the first transfer, and released by
    :func:`uninstall`, :func:`close` or ``loop.close()``. Installing twice
    only updates the options.
    """
    loop = _loop_arg(loop)
    st = _state(loop)
    changed = (st.path, st.lib) != (path, lib)
    st.require_daemon = require_daemon
    st.path = path
    st.lib = lib
    st.retry_interval = retry_interval
    if changed and st.client is not None:
        st.client.close()
        st.client = None
    if st.installed:
        return
    _lib.resolve(lib)  # fail now, not at the first transfer
    ref = weakref.ref(loop)

    async def sendfile(transport: Any, file: Any, offset: int = 0, count: Optional[int] = None,
                       *, fallback: bool = True) -> int:
        lp = ref()
        assert lp is not None
        return await _transport_sendfile(lp, st, transport, file, offset, count, fallback, None)

    async def sock_sendfile(sock: Any, file: Any, offset: int = 0, count: Optional[int] = None,
                            *, fallback: bool = True) -> int:
        lp = ref()
        assert lp is not None
        return await _sock_sendfile(lp, st, sock, file, offset, count, fallback, None)

    def close() -> None:
        st.orig_close()  # raises, changing nothing, while the loop runs
        if st.client is not None:
            st.client.close()
            st.client = None

    sendfile.__doc__ = st.orig_sendfile.__doc__
    sock_sendfile.__doc__ = st.orig_sock_sendfile.__doc__
    close.__doc__ = st.orig_close.__doc__
    try:
        d = vars(loop)
    except TypeError:
        raise TypeError(f"cannot install into {type(loop).__name__!r}: its instances take no "
                        "attributes; use a subclass") from None
    st.saved_attrs = {k: d[k] for k in ("sendfile", "sock_sendfile", "close") if k in d}
    loop.sendfile = sendfile  # type: ignore[method-assign]
    loop.sock_sendfile = sock_sendfile  # type: ignore[method-assign, assignment]
    loop.close = close  # type: ignore[method-assign]
    st.installed = True


def uninstall(loop: Optional[asyncio.AbstractEventLoop] = None) -> None:
    """Undo :func:`install` and release the loop's daemon connection."""
    loop = _loop_arg(loop)
    with _states_lock:
        st = _states.get(loop)
    if st is None:
        return
    if st.installed:
        d = vars(loop)
        for k in ("sendfile", "sock_sendfile", "close"):
            if k in st.saved_attrs:
                d[k] = st.saved_attrs[k]
            else:
                d.pop(k, None)
        st.installed = False
    if st.client is not None:
        st.client.close()
        st.client = None
    with _states_lock:
        _states.pop(loop, None)


def installed(loop: Optional[asyncio.AbstractEventLoop] = None) -> bool:
    """Whether :func:`install` is in effect on ``loop`` (default: the running loop)."""
    loop = _loop_arg(loop)
    with _states_lock:
        st = _states.get(loop)
    return bool(st and st.installed)


def close(loop: Optional[asyncio.AbstractEventLoop] = None) -> None:
    """Release ``loop``'s daemon connection (made again at the next transfer)."""
    loop = _loop_arg(loop)
    with _states_lock:
        st = _states.get(loop)
    if st is not None and st.client is not None:
        st.client.close()
        st.client = None


async def ping(loop: Optional[asyncio.AbstractEventLoop] = None, *,
               timeout: Optional[float] = None) -> _lib.PingInfo:
    """Ask the daemon this loop uses (the ``path`` and ``lib`` of
    :func:`install`, else the defaults) whether it is alive, and who it is:
    a :class:`sendfiled.PingInfo` (``protocol_version``, ``daemon_version``,
    ``features``, a frozenset of names such as ``"deadline"``).

    The library's ping waits for its answer, which the loop must not do: it
    runs in the loop's default executor, on a connection of its own, so the
    loop's transfers go on meanwhile. Raises
    :class:`sendfiled.DaemonUnavailableError` when no daemon answers, and
    :class:`TimeoutError` after ``timeout`` seconds.
    """
    loop = _loop_arg(loop)
    with _states_lock:
        st = _states.get(loop)
    path, lib = (st.path, st.lib) if st is not None else (None, None)

    def blocking() -> _lib.PingInfo:
        from ._client import Client

        with Client(path, lib=lib) as c:
            return c.ping(timeout=timeout)

    return await loop.run_in_executor(None, blocking)


def loop_factory(base: Optional[Callable[[], asyncio.AbstractEventLoop]] = None,
                 **options: Any) -> Callable[[], asyncio.AbstractEventLoop]:
    """A loop factory whose loops have the daemon installed.

    ``base`` makes the loop (default: asyncio.new_event_loop; for uvloop:
    uvloop.new_event_loop); ``options`` are :func:`install`'s. For
    ``asyncio.Runner(loop_factory=...)``, ``asyncio.run(..., loop_factory=...)``
    (Python 3.12+), or to build a loop for ``aiohttp.web.run_app(loop=...)``.
    """
    make = base or asyncio.new_event_loop

    def factory() -> asyncio.AbstractEventLoop:
        loop = make()
        install(loop, **options)
        return loop

    return factory


def connected(loop: Optional[asyncio.AbstractEventLoop] = None) -> bool:
    """Whether ``loop`` holds a connection to the daemon now."""
    loop = _loop_arg(loop)
    with _states_lock:
        st = _states.get(loop)
    return bool(st and st.client and st.client.connected)


def _client_fd(loop: asyncio.AbstractEventLoop) -> int:  # for tests
    st = _states.get(loop)
    return st.client._fd if st and st.client else -1

