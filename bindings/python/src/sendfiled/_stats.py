"""Process-wide counters: what went through the daemon and what did not, and why."""

from __future__ import annotations

import threading
from typing import Any, Dict, Optional

_lock = threading.Lock()

_COUNTERS = (
    # Requests the daemon answered (any status), and the bytes it sent for them.
    "offloaded",
    "offloaded_bytes",
    # Of those, how many the library sent in the calling thread (small
    # ranges to non-blocking sockets), and their bytes: never seen by the
    # daemon.
    "inline",
    "inline_bytes",
    # Of those, how many ended in an error or a cancellation.
    "errors",
    "cancelled",
    # Requests not given to the daemon, by reason.
    "fallback_no_daemon",  # not reachable (or went away, or refused us)
    "fallback_tls",  # TLS in user space: never handed over
    "fallback_transport",  # a transport without a socket, or asyncio's FALLBACK/UNSUPPORTED
    "fallback_not_regular",  # no file descriptor (io.BytesIO, ...)
    "fallback_limit",  # the daemon answered LIMIT or SHUTTING_DOWN with nothing sent
    # Requests submitted and not completed yet.
    "in_flight",
)

_stats: Dict[str, Any] = {}


def _reset() -> None:
    for k in _COUNTERS:
        _stats[k] = 0
    _stats["methods"] = {"sendfile": 0, "splice": 0, "read_write": 0, "none": 0}
    _stats["last_error"] = None


_reset()


def bump(name: str, n: int = 1) -> None:
    with _lock:
        _stats[name] += n


def completed(method: str, nbytes: int, error: bool, cancelled: bool,
              inline: bool = False) -> None:
    with _lock:
        _stats["offloaded"] += 1
        _stats["offloaded_bytes"] += nbytes
        if inline:
            _stats["inline"] += 1
            _stats["inline_bytes"] += nbytes
        m = _stats["methods"]
        m[method] = m.get(method, 0) + 1
        if cancelled:
            _stats["cancelled"] += 1
        elif error:
            _stats["errors"] += 1


def set_last_error(msg: Optional[str]) -> None:
    with _lock:
        _stats["last_error"] = msg


def stats() -> Dict[str, Any]:
    """A snapshot of the process-wide counters.

    ``offloaded``: requests libsendfiled answered; ``offloaded_bytes``: bytes
    sent for them; ``inline`` and ``inline_bytes``: those of them the library
    sent in the calling thread without asking the daemon (a small range to a
    non-blocking socket); ``methods``: how many used each method (sendfile, splice,
    read_write, none); ``errors`` and ``cancelled``: those that ended so;
    ``fallback_no_daemon``, ``fallback_tls``, ``fallback_transport``,
    ``fallback_not_regular``, ``fallback_limit``: requests served in-process
    instead, by reason; ``in_flight``: submitted and not yet answered;
    ``last_error``: why the daemon was last unusable (a string) or None.
    """
    with _lock:
        out = dict(_stats)
        out["methods"] = dict(_stats["methods"])
        return out


def reset_stats() -> None:
    """Set every counter back to zero and forget ``last_error``."""
    with _lock:
        _reset()
