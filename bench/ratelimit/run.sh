#!/bin/sh
# The rate limit's accuracy against nginx's limit_rate, and the deadline's and
# idle timeout's enforcement delay (bench/ratelimit/RESULTS.md): a release
# build, a daemon of its own, one benchmark at a time on this machine.
#
#   bench/ratelimit/run.sh [--runs 3] [--seconds 10] [--rates 1000000,...] [--only rates|limits]
set -eu
cd "$(dirname "$0")/../.."
[ -f build-release/build.ninja ] || meson setup build-release --buildtype=release -Dtests=disabled >/dev/null
ninja -C build-release >/dev/null
export SENDFILED_LIB="$PWD/build-release/client-lib/libsendfiled.so"
exec flock /work/bench.lock python3 -u bench/ratelimit/ratelimit.py \
	--daemon ./build-release/daemon/sendfiled "$@"
