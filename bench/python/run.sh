#!/bin/sh
# The Python benchmark: a release build of the daemon and libsendfiled, wrk
# and nginx from Debian (installed when missing, as bench/node/run.sh does),
# the binding in bindings/python/.venv (made by bindings/python/run-tests.sh
# when absent), then bench/python/bench.py. One benchmark at a time:
#   flock /work/bench.lock bench/python/run.sh [bench.py options...]   e.g. --repeat 5
set -eu
cd "$(dirname "$0")/../.."
./scripts/install-deps.sh
missing=""
command -v wrk >/dev/null || missing="$missing wrk"
command -v nginx >/dev/null || missing="$missing nginx-light"
if [ -n "$missing" ]; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >&2
fi
[ -f build-release/build.ninja ] || meson setup build-release --buildtype=release -Dtests=disabled >/dev/null
ninja -C build-release daemon/sendfiled client-lib/libsendfiled.so.0.1.0 >/dev/null
py=bindings/python/.venv/bin/python
if [ ! -x "$py" ]; then
	python3 -m venv bindings/python/.venv
fi
"$py" -m pip install --quiet --disable-pip-version-check ./bindings/python \
	-r bindings/python/requirements-test.txt
echo "kernel $(uname -r), $(nproc) cores, $(git rev-parse --short HEAD 2>/dev/null || echo unknown); $(uptime)"
exec "$py" bench/python/bench.py --build build-release "$@"
