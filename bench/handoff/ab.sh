#!/bin/sh
# Two daemon builds alternated against the same hand-off benchmark, 64 KiB
# files, 64 per round, 30 rounds of each mode per daemon run, three runs each:
#   flock /work/bench.lock bench/handoff/ab.sh OLD_DAEMON NEW_DAEMON
# (build-release/bench/bench-handoff must be built). Same placement as run.sh.
set -eu
old=$(realpath "$1")
new=$(realpath "$2")
cd "$(dirname "$0")/../.."
echo "load before: $(uptime)"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
head -c 65536 /dev/urandom >"$dir/file"
one() {
	taskset -c 1 "$1" --socket "$dir/s.sock" --no-control --log-level warning \
		--max-handoffs 4096 &
	pid=$!
	for _ in $(seq 100); do [ -S "$dir/s.sock" ] && break; sleep 0.05; done
	echo "== $2"
	./build-release/bench/bench-handoff --socket "$dir/s.sock" --file "$dir/file" \
		--per-round 64 --triples 30 --client-cpu 0 | grep -E "^  (handoff|submit|inproc) "
	kill "$pid"
	wait "$pid" 2>/dev/null || true
}
for _ in 1 2 3; do
	one "$old" old
	one "$new" new
done
echo "load after: $(uptime)"
