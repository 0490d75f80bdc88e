"""sendfiled: send files over sockets zero-copy through the sendfiled daemon.

Blocking code::

    import sendfiled
    with sendfiled.Client() as client, open("big.iso", "rb") as f:
        sent = client.sendfile(sock, f)          # socket.sendfile()'s contract

asyncio (see :mod:`sendfiled.aio`)::

    import sendfiled.aio
    sendfiled.aio.install()                      # loop.sendfile now offloads
    await loop.sendfile(transport, f)            # or: await sendfiled.aio.sendfile(...)

The library libsendfiled is loaded with ctypes; see :func:`load_library` for
where it is looked for.
"""

from ._client import Client
from ._errors import (
    DaemonUnavailableError,
    OutcomeUnknownError,
    LimitError,
    PeerClosedError,
    ProtocolError,
    SendfileNotAvailableError,
    ShuttingDownError,
    TransferCancelledError,
)
from ._lib import Library, LibraryNotFoundError, PingInfo, Result, load_library
from ._stats import reset_stats, stats

__version__ = "0.1.0"

__all__ = [
    "Client",
    "DaemonUnavailableError",
    "OutcomeUnknownError",
    "LimitError",
    "Library",
    "LibraryNotFoundError",
    "PeerClosedError",
    "PingInfo",
    "ProtocolError",
    "Result",
    "SendfileNotAvailableError",
    "ShuttingDownError",
    "TransferCancelledError",
    "load_library",
    "reset_stats",
    "stats",
    "__version__",
]
