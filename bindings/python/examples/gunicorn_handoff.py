"""Downloads handed off to sendfiled from a blocking WSGI server.

A gunicorn sync worker serves one request at a time: a slow client reading a
large file would hold it for the whole download. Here the app writes the
response's status line and headers, hands the body to sendfiled with
``Client.handoff(..., shutdown=True)`` and returns at once, so that the
worker takes the next request while the daemon finishes the download, shuts
the connection's write side down after its last byte and closes it.

Run it (the daemon must be running; HANDOFF_ROOT is the directory served)::

    HANDOFF_ROOT=/srv/files gunicorn -w 1 -k sync -b 127.0.0.1:8000 \\
        --chdir bindings/python/examples gunicorn_handoff:app

Each response carries X-Worker-Pid, the process that served it.

How it works with gunicorn:
- ``environ["gunicorn.socket"]`` is the client's connection.
- The headers go out through WSGI's ``write()`` callable (PEP 3333), so that
  gunicorn knows they were sent and writes nothing after the app returns: a
  Content-Length is given, so it adds no chunked terminator either.
- After the hand-off the daemon holds its own copy of the connection. The
  app gives gunicorn's up (``sock.detach()`` and close): gunicorn's end of
  request shuts the connection's write side down (RFC 9112 graceful close),
  which would cut the body short. The detached socket object tells it there
  is nothing left to close.
- TLS connections cannot be handed off (the daemon would send plaintext):
  those, and any request when the daemon cannot take it, are served by
  gunicorn itself with ``wsgi.file_wrapper``.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any, Callable, Iterable, List, Optional, Tuple

import sendfiled

ROOT = os.path.realpath(os.environ.get("HANDOFF_ROOT", "."))

_client: Optional[sendfiled.Client] = None
_client_lock = threading.Lock()


def _daemon() -> sendfiled.Client:
    """One connection to the daemon per worker process, opened on first use."""
    global _client
    with _client_lock:
        if _client is None:
            _client = sendfiled.Client()
        return _client


def _resolve(path_info: str) -> Optional[str]:
    """The regular file under ROOT that the path names, or None."""
    path = os.path.realpath(os.path.join(ROOT, path_info.lstrip("/")))
    if os.path.commonpath([path, ROOT]) != ROOT or not os.path.isfile(path):
        return None
    return path


def app(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = _resolve(environ.get("PATH_INFO", "/"))
    if path is None or environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
        start_response("404 Not Found", [("Content-Type", "text/plain"),
                                         ("Content-Length", "10")])
        return [b"not found\n"]
    f = open(path, "rb")
    size = os.fstat(f.fileno()).st_size
    headers: List[Tuple[str, str]] = [
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", str(size)),
        ("X-Worker-Pid", str(os.getpid())),
    ]
    sock = environ.get("gunicorn.socket")
    if environ["REQUEST_METHOD"] == "HEAD" or size == 0 or not isinstance(sock, socket.socket) \
            or environ.get("wsgi.url_scheme") == "https":
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](f)
    write = start_response("200 OK", headers)
    write(b"")  # the status line and headers leave now, through gunicorn
    try:
        _daemon().handoff(sock, f, shutdown=True)
    except (sendfiled.LimitError, sendfiled.DaemonUnavailableError):
        # Not taken: nothing of the body was sent. Send it here.
        f.seek(0)
        sock.sendfile(f)
        f.close()
        return []
    f.close()
    # The daemon has the connection now: let go of ours (see above).
    os.close(sock.detach())
    return []
