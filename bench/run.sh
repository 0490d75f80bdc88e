#!/bin/sh
# Run the C benchmark against a daemon of its own: a release build, a
# temporary socket, the in-process baseline measured in the same run.
#   bench/run.sh [bench-sendfiled options...]   e.g. --size 1024 --rounds 5
# $DAEMON_ARGS goes to the daemon, e.g. DAEMON_ARGS=--no-control.
# $SENDFILED_DAEMON runs another daemon binary (say, an older build) against
# the same benchmark client, to compare two versions in one session.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
[ -f build-release/build.ninja ] || meson setup build-release --buildtype=release -Dtests=disabled >/dev/null
ninja -C build-release daemon/sendfiled bench/bench-sendfiled >/dev/null
daemon=${SENDFILED_DAEMON:-./build-release/daemon/sendfiled}
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
# shellcheck disable=SC2086 # word splitting wanted
"$daemon" --socket "$dir/sendfiled.sock" --log-level warning ${DAEMON_ARGS:-} &
pid=$!
export BENCH_DAEMON_PID=$pid
for _ in $(seq 100); do [ -S "$dir/sendfiled.sock" ] && break; sleep 0.05; done
echo "kernel $(uname -r), $(nproc) cores, $(git rev-parse --short HEAD 2>/dev/null || echo unknown), daemon $daemon"
./build-release/bench/bench-sendfiled --socket "$dir/sendfiled.sock" "$@"
