#!/bin/sh
# One request at a time through the daemon against a raw two-descriptor round
# trip, pinned (bench/latency/RESULTS.md):
#   bench/latency/latency.sh [DAEMON] [bench-latency options...]
# DAEMON defaults to this tree's release build. Runs the same-CPU placement
# (client, daemon and peer on CPU 0), then the cross-CPU one (client on 0,
# daemon and peer on 1); with COLD=1, each also times 4 KiB requests alone
# and during a cold 1 GiB transfer.
set -eu
cd "$(dirname "$0")/../.."
[ -f build-release/build.ninja ] || meson setup build-release --buildtype=release -Dtests=disabled >/dev/null
ninja -C build-release daemon/sendfiled bench/bench-latency >/dev/null
daemon=./build-release/daemon/sendfiled
case "${1:-}" in -*|"") ;; *) daemon=$1; shift ;; esac
work=${BENCH_DIR:-/var/tmp/sendfiled-latency}
mkdir -p "$work"
small=$work/small.bin
[ -f "$small" ] || head -c 4096 /dev/urandom >"$small"
cold=$work/cold-1g.bin
if [ "${COLD:-0}" = 1 ] && [ ! -f "$cold" ]; then
	head -c 1073741824 /dev/urandom >"$cold"
fi

run() { # client-cpu server-cpu extra-args...
	ccpu=$1
	scpu=$2
	shift 2
	dir=$(mktemp -d)
	taskset -c "$scpu" "$daemon" --socket "$dir/s.sock" --no-control --log-level warning &
	pid=$!
	for _ in $(seq 100); do [ -S "$dir/s.sock" ] && break; sleep 0.05; done
	echo "=== $daemon, load $(cut -d' ' -f1-3 /proc/loadavg)"
	./build-release/bench/bench-latency --socket "$dir/s.sock" --file "$small" \
		--client-cpu "$ccpu" --server-cpu "$scpu" "$@"
	kill "$pid"
	wait "$pid" || true
	rm -rf "$dir"
}

extra=""
[ "${COLD:-0}" = 1 ] && extra="--cold-file $cold"
uname -r
# shellcheck disable=SC2086 # word splitting wanted
run 0 0 $extra "$@"
# shellcheck disable=SC2086
run 0 1 $extra "$@"
