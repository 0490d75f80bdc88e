"""Finding and loading libsendfiled with ctypes.

Only the public header (client-lib/include/sendfiled.h) is used. Every
function of the library is declared here with its exact C signature.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, NamedTuple, Optional, Tuple, Union

__all__ = [
    "Library",
    "LibraryNotFoundError",
    "Result",
    "load_library",
    "SFD_NO_FALLBACK",
    "STATUS_OK",
    "STATUS_NOT_AVAILABLE",
    "STATUS_INVALID_ARGUMENT",
    "STATUS_PEER_CLOSED",
    "STATUS_IO_ERROR",
    "STATUS_CANCELLED",
    "STATUS_LIMIT",
    "STATUS_PROTOCOL",
    "STATUS_SHUTTING_DOWN",
    "STATUS_PERMISSION_DENIED",
    "METHOD_NAMES",
    "FEATURE_NAMES",
    "PingInfo",
]

#: Flag for a request: fail with NOT_AVAILABLE rather than copy in user space.
SFD_NO_FALLBACK = 1 << 0

STATUS_OK = 0
STATUS_NOT_AVAILABLE = 1
STATUS_INVALID_ARGUMENT = 2
STATUS_PEER_CLOSED = 3
STATUS_IO_ERROR = 4
STATUS_CANCELLED = 5
STATUS_LIMIT = 6
STATUS_PROTOCOL = 7
STATUS_SHUTTING_DOWN = 8
STATUS_PERMISSION_DENIED = 9

#: enum sfd_method values, by the names the statistics use.
METHOD_NAMES = {0: "none", 1: "sendfile", 2: "splice", 3: "read_write"}

SFD_RESULT_SHORT_SOURCE = 1 << 0
SFD_MESSAGE_MAX = 256

#: enum sfd_feature (proto Feature) values, by the names every binding uses.
FEATURE_NAMES = {1: "deadline", 2: "rate_limit", 3: "close_when_done", 4: "idle_timeout"}

#: The soname the library is installed under.
SONAME = "libsendfiled.so.0"


class _CResult(ctypes.Structure):
    """struct sfd_result, field for field."""

    _fields_ = [
        ("bytes_sent", ctypes.c_uint64),
        ("final_offset", ctypes.c_uint64),
        ("status", ctypes.c_int),
        ("error", ctypes.c_int),
        ("method", ctypes.c_int),
        ("flags", ctypes.c_uint),
        ("id", ctypes.c_uint64),
        ("message", ctypes.c_char * SFD_MESSAGE_MAX),
    ]


class Result:
    """The daemon's answer to one request (a copy of struct sfd_result)."""

    __slots__ = ("bytes_sent", "final_offset", "status", "error", "method", "flags", "id",
                 "message")

    def __init__(self, c: _CResult) -> None:
        self.bytes_sent: int = c.bytes_sent
        self.final_offset: int = c.final_offset
        self.status: int = c.status
        self.error: int = c.error
        self.method: int = c.method
        self.flags: int = c.flags
        self.id: int = c.id
        self.message: str = c.message.decode("utf-8", "replace")

    @property
    def method_name(self) -> str:
        """"sendfile", "splice", "read_write", "none" or "unknown"."""
        return METHOD_NAMES.get(self.method, "unknown")

    @property
    def short_source(self) -> bool:
        """True when the source ended before the requested range did."""
        return bool(self.flags & SFD_RESULT_SHORT_SOURCE)

    def __repr__(self) -> str:
        return (f"<Result id={self.id} status={self.status} error={self.error} "
                f"bytes_sent={self.bytes_sent} final_offset={self.final_offset} "
                f"method={self.method_name} message={self.message!r}>")


class _CPingInfo(ctypes.Structure):
    """struct sfd_ping_info, field for field."""

    _fields_ = [
        ("protocol_version", ctypes.c_uint32),
        ("features", ctypes.c_uint32),
        ("daemon_version", ctypes.c_char * 32),
    ]


class PingInfo(NamedTuple):
    """Who answered a ping: the daemon's protocol version (1), its own
    version ("0.1.0"; "" from a daemon too old to say), and the optional
    features it implements, by name ("deadline", "rate_limit",
    "close_when_done", "idle_timeout"; those this package does not know are
    left out)."""

    protocol_version: int
    daemon_version: str
    features: FrozenSet[str]

    @classmethod
    def _from_c(cls, c: _CPingInfo) -> "PingInfo":
        names = frozenset(name for bit, name in FEATURE_NAMES.items() if c.features & (1 << bit))
        return cls(int(c.protocol_version), c.daemon_version.decode("utf-8", "replace"), names)


#: typedef void (*sfd_completion_fn)(struct sfd_client *, uint64_t,
#:                                   const struct sfd_result *, void *);
COMPLETION_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64,
                                 ctypes.POINTER(_CResult), ctypes.c_void_p)


class LibraryNotFoundError(OSError):
    """libsendfiled could not be loaded from any of the places tried.

    ``tried`` lists them, each as ``(place, reason)``.
    """

    def __init__(self, tried: List[Tuple[str, str]]) -> None:
        self.tried = list(tried)
        lines = "\n".join(f"  {place}: {reason}" for place, reason in self.tried)
        super().__init__(
            "libsendfiled could not be loaded; tried, in order:\n" + lines +
            "\nPass its path with Client(lib=...) or sendfiled.load_library(path), or set "
            "SENDFILED_LIB.")


class Library:
    """A loaded libsendfiled, with every public function declared."""

    def __init__(self, path: str) -> None:
        self.path = path
        cdll = ctypes.CDLL(path, use_errno=False)
        self._cdll = cdll
        vp = ctypes.c_void_p
        u64 = ctypes.c_uint64

        def fn(name: str, restype: Any, *argtypes: Any) -> Any:
            f = getattr(cdll, name)
            f.restype = restype
            f.argtypes = list(argtypes)
            return f

        self.open = fn("sfd_client_open", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(vp))
        self.free = fn("sfd_client_free", None, vp)
        self.sendfile = fn("sfd_client_sendfile", ctypes.c_int, vp, ctypes.c_int, ctypes.c_int,
                           u64, u64, ctypes.c_uint, ctypes.c_int, ctypes.POINTER(_CResult))
        self.get_fd = fn("sfd_client_get_fd", ctypes.c_int, vp)
        self.set_reconnect = fn("sfd_client_set_reconnect", ctypes.c_int, vp, ctypes.c_int)
        self.submit = fn("sfd_client_submit", ctypes.c_int, vp, ctypes.c_int, ctypes.c_int, u64,
                         u64, ctypes.c_uint, vp, ctypes.POINTER(u64))
        self.dispatch = fn("sfd_client_dispatch", ctypes.c_int, vp, COMPLETION_FN)
        self.cancel = fn("sfd_client_cancel", ctypes.c_int, vp, u64)
        self.pending = fn("sfd_client_pending", ctypes.c_uint, vp)
        self.in_flight = fn("sfd_client_in_flight", ctypes.c_uint, vp)
        self.status_str = fn("sfd_status_str", ctypes.c_char_p, ctypes.c_int)
        self.method_str = fn("sfd_method_str", ctypes.c_char_p, ctypes.c_int)
        self._default_socket_path = fn("sfd_default_socket_path", ctypes.c_int, ctypes.c_char_p,
                                       ctypes.c_size_t)
        # Added in the library's version 0.3: an older one still loads, and
        # ping() says what is missing.
        self.ping: Any = None
        if hasattr(cdll, "sfd_client_ping"):
            self.ping = fn("sfd_client_ping", ctypes.c_int, vp, ctypes.c_int,
                           ctypes.POINTER(_CPingInfo))

    def default_socket_path(self) -> str:
        """The data socket the library connects to when given no path."""
        buf = ctypes.create_string_buffer(4096)
        n = self._default_socket_path(buf, len(buf))
        if n < 0:
            raise OSError(-n, os.strerror(-n))
        return os.fsdecode(buf.value)

    def status_name(self, status: int) -> str:
        return (self.status_str(status) or b"unknown").decode()

    def __repr__(self) -> str:
        return f"<sendfiled.Library {self.path!r}>"


_cache: Dict[str, Library] = {}
_default: Optional[Library] = None
_lock = threading.Lock()


def _sanitized(build: Path) -> bool:
    """Whether @build was configured with sanitizers (meson's b_sanitize): its
    library loads only into a process started with the sanitizer's runtime."""
    try:
        opts = json.loads((build / "meson-info" / "intro-buildoptions.json").read_text())
    except (OSError, ValueError):
        return False
    return any(o.get("name") == "b_sanitize" and o.get("value") not in (None, "", "none")
               for o in opts)


def _build_tree_candidates() -> List[Path]:
    """build*/client-lib/libsendfiled.so* in this package's directory and above.

    In a checkout, the package (or a virtual environment holding it) lives
    under the source tree, whose build directories hold the library.
    """
    found: List[Path] = []
    here = Path(__file__).resolve().parent
    for d in [here, *here.parents]:
        try:
            builds = sorted(p for p in d.glob("build*") if p.is_dir())
        except OSError:
            continue
        # "build" itself first, then the others by name.
        builds.sort(key=lambda p: (p.name != "build", p.name))
        for b in builds:
            if _sanitized(b):
                continue
            for name in ("libsendfiled.so", SONAME):
                lib = b / "client-lib" / name
                if lib.exists():
                    found.append(lib)
                    break
    return found


def _recorded_libdirs() -> List[str]:
    """The directories an installed libsendfiled was expected in when this
    package was built (setup.py writes them: the install directory of each
    meson build of the checkout it was built from, and pkg-config's libdir).
    """
    try:
        from . import _paths  # type: ignore[attr-defined]
    except ImportError:
        return []
    dirs = getattr(_paths, "LIBDIRS", [])
    return [d for d in dirs if isinstance(d, str)]


def _pkg_config_libdir(tried: List[Tuple[str, str]]) -> Optional[str]:
    """`pkg-config --variable=libdir sendfiled` now, or None (and why, in tried)."""
    place = "pkg-config --variable=libdir sendfiled"
    exe = shutil.which("pkg-config")
    if exe is None:
        tried.append((place, "pkg-config is not installed"))
        return None
    try:
        r = subprocess.run([exe, "--variable=libdir", "sendfiled"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        tried.append((place, str(e) or type(e).__name__))
        return None
    libdir = r.stdout.strip()
    if r.returncode != 0 or not libdir:
        tried.append((place, "sendfiled.pc not found"))
        return None
    return libdir


def _try_libdir(libdir: str, how: str, tried: List[Tuple[str, str]]) -> Optional[Library]:
    path = os.path.join(libdir, SONAME)
    if not os.path.exists(path):
        tried.append((path, f"no such file ({how})"))
        return None
    return _try(path, tried)


def _try(path: str, tried: List[Tuple[str, str]]) -> Optional[Library]:
    if path in _cache:
        return _cache[path]
    try:
        lib = Library(path)
    except (OSError, AttributeError) as e:
        tried.append((path, str(e) or type(e).__name__))
        return None
    _cache[path] = lib
    return lib


def load_library(path: Union[str, "os.PathLike[str]", None] = None) -> Library:
    """Load libsendfiled and return it.

    With ``path``, load exactly that file and make it the default for every
    client created afterwards without ``lib=``. Otherwise try, in order: the
    ``SENDFILED_LIB`` environment variable, a build tree above this package
    (``build*/client-lib/libsendfiled.so``), the install directories recorded
    when this package was built (where ``meson install`` of the checkout it
    came from puts the library, and pkg-config's libdir then), pkg-config's
    libdir now (``pkg-config --variable=libdir sendfiled``), then the system
    library path (``ctypes.util.find_library("sendfiled")``, which reads
    ``ldconfig -p``, and ``libsendfiled.so.0``).
    The library found without ``path`` is remembered and becomes the default.

    Raises :class:`LibraryNotFoundError`, listing every place tried.
    """
    global _default
    if path is not None:
        lib = _load_path(path)
        with _lock:
            _default = lib
        return lib
    return _load_default()


def _load_path(path: Union[str, "os.PathLike[str]"]) -> Library:
    tried: List[Tuple[str, str]] = []
    lib = _try(os.fspath(path), tried)
    if lib is None:
        raise LibraryNotFoundError(tried)
    return lib


def _load_default() -> Library:
    global _default
    tried: List[Tuple[str, str]] = []
    with _lock:
        if _default is not None:
            return _default
        env = os.environ.get("SENDFILED_LIB")
        if env:
            lib = _try(env, tried)
            if lib is None:
                # An explicit setting that does not work is an error, not a
                # reason to pick some other copy silently.
                raise LibraryNotFoundError(tried)
            _default = lib
            return lib
        tried.append(("$SENDFILED_LIB", "not set"))
        candidates = _build_tree_candidates()
        if not candidates:
            here = Path(__file__).resolve().parent
            tried.append((f"build*/client-lib/libsendfiled.so in {here} and its parents",
                          "none found"))
        for c in candidates:
            lib = _try(str(c), tried)
            if lib is not None:
                _default = lib
                return lib
        recorded = _recorded_libdirs()
        if not recorded:
            tried.append(("install directories recorded when the package was built", "none"))
        for d in recorded:
            lib = _try_libdir(d, "recorded when the package was built", tried)
            if lib is not None:
                _default = lib
                return lib
        pc_libdir = _pkg_config_libdir(tried)
        if pc_libdir is not None and pc_libdir not in recorded:
            lib = _try_libdir(pc_libdir, "pkg-config's libdir", tried)
            if lib is not None:
                _default = lib
                return lib
        found = ctypes.util.find_library("sendfiled")
        if found:
            lib = _try(found, tried)
            if lib is not None:
                _default = lib
                return lib
        else:
            tried.append(('ctypes.util.find_library("sendfiled")', "not found"))
        lib = _try(SONAME, tried)
        if lib is not None:
            _default = lib
            return lib
        raise LibraryNotFoundError(tried)


def resolve(lib: Union[Library, str, "os.PathLike[str]", None]) -> Library:
    """A Library from what a caller passed as ``lib=``."""
    if isinstance(lib, Library):
        return lib
    if lib is None:
        return _load_default()
    return _load_path(lib)
