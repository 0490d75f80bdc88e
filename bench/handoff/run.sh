#!/bin/sh
# Hand-off throughput (bench/handoff/handoff-bench.c): a blocking server's
# time per download and the downloads per second delivered, for
# sfd_client_handoff(), sfd_client_submit() + wait, and in-process
# sendfile(2), alternated round by round, at three file sizes.
#   bench/handoff/run.sh [TRIPLES]        (default 100 rounds of each mode)
# Run it under `flock /work/bench.lock` on a shared machine.
# Results and method: bench/handoff/RESULTS.md.
set -eu
triples=${1:-100}
cd "$(dirname "$0")/../.."
[ -f build-release/build.ninja ] || meson setup build-release --buildtype=release -Dtests=disabled >/dev/null
ninja -C build-release daemon/sendfiled bench/bench-handoff >/dev/null
ulimit -n "$(ulimit -Hn)"
echo "kernel $(uname -r), $(nproc) cores, $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "load before: $(uptime)"
dir=$(mktemp -d)
taskset -c 1 ./build-release/daemon/sendfiled --socket "$dir/sendfiled.sock" --no-control \
	--log-level warning --max-handoffs 4096 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do [ -S "$dir/sendfiled.sock" ] && break; sleep 0.05; done
echo "placement: daemon pinned to CPU 1 (taskset), client thread to CPU 0 (sched_setaffinity),"
echo "receiver thread unpinned; TCP loopback, cubic on every socket"
for spec in 65536:64 1048576:64 16777216:8; do
	size=${spec%:*}
	n=${spec#*:}
	head -c "$size" /dev/urandom >"$dir/file"
	echo "== $size bytes, $n transfers per round"
	./build-release/bench/bench-handoff --socket "$dir/sendfiled.sock" --file "$dir/file" \
		--per-round "$n" --triples "$triples" --client-cpu 0
done
echo "load after: $(uptime)"
