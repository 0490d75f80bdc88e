"""Check how an installed sendfiled package finds libsendfiled.

    check_python_lookup.py found LIBDIR SOCKET    the library in LIBDIR is the one
                                                  loaded, and a transfer works
    check_python_lookup.py missing LIBDIR SOCKET  no library: LibraryNotFoundError
                                                  names LIBDIR among the places tried

Run with no SENDFILED_LIB and from outside any source tree.
"""

import os
import socket
import sys
import tempfile

import sendfiled

mode, libdir, sock_path = sys.argv[1:4]
assert "SENDFILED_LIB" not in os.environ

if mode == "found":
    lib = sendfiled.load_library()
    loaded = os.path.realpath(lib.path)
    if os.path.dirname(loaded) != os.path.realpath(libdir):
        sys.exit(f"loaded {lib.path} ({loaded}), not the one in {libdir}")
    data = os.urandom(100000)
    with tempfile.TemporaryFile() as f, sendfiled.Client(path=sock_path) as c:
        f.write(data)
        f.seek(0)
        a, b = socket.socketpair()
        with a, b:
            n = c.sendfile(a, f, offset=10, count=50000)
            got = b""
            while len(got) < n:
                got += b.recv(65536)
        if n != 50000 or got != data[10:50010] or f.tell() != 50010:
            sys.exit(f"transfer: {n} bytes, position {f.tell()}")
    print(f"found {lib.path}; a transfer through the installed daemon worked")
elif mode == "missing":
    try:
        lib = sendfiled.load_library()
    except sendfiled.LibraryNotFoundError as e:
        places = [p for p, _ in e.tried]
        print(str(e))
        if not any(libdir in p for p in places):
            sys.exit(f"{libdir} is not among the places tried: {places}")
        if "$SENDFILED_LIB" not in places:
            sys.exit(f"$SENDFILED_LIB is not among the places tried: {places}")
    else:
        # Another copy installed on this machine (a system prefix) is fine,
        # but then the error cannot be observed here.
        if os.path.dirname(os.path.realpath(lib.path)) == os.path.realpath(libdir):
            sys.exit(f"loaded {lib.path} although it was moved away")
        print(f"skipped: another libsendfiled is installed ({lib.path})")
else:
    sys.exit(f"unknown mode {mode}")
