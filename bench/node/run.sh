#!/bin/sh
# The Node.js HTTP benchmark: a release build of the daemon and libsendfiled,
# the Node addon, wrk and nginx from Debian, then bench/node/bench.js.
#   flock /work/bench.lock bench/node/run.sh [bench.js options...]   e.g. --rounds 9
set -eu
cd "$(dirname "$0")/../.."
./scripts/install-deps.sh
missing=""
command -v wrk >/dev/null || missing="$missing wrk"
command -v nginx >/dev/null || missing="$missing nginx-light"
command -v node >/dev/null || missing="$missing nodejs npm"
if [ -n "$missing" ]; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >&2
fi
[ -f build-release/build.ninja ] || meson setup build-release --buildtype=release -Dtests=disabled >/dev/null
ninja -C build-release daemon/sendfiled client-lib/libsendfiled.so.0.1.0 tools/sendfilectl >/dev/null
[ -f bindings/node/build/Release/sendfiled.node ] || (cd bindings/node && node scripts/build.js)
export SENDFILED_BIN="$PWD/build-release/daemon/sendfiled"
export SENDFILED_LIB="$PWD/build-release/client-lib/libsendfiled.so.0.1.0"
echo "kernel $(uname -r), $(nproc) cores, $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
exec node bench/node/bench.js "$@"
