#!/bin/sh
# Build sendfiled and run it in the foreground on the default socket
# ($SENDFILED_SOCKET, else $XDG_RUNTIME_DIR/sendfiled/sendfiled.sock, else
# /run/sendfiled/sendfiled.sock). Extra arguments go to the daemon.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null
exec ./build/daemon/sendfiled "$@"
