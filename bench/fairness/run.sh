#!/bin/sh
# Worker fairness: the delay of a 64 KiB transfer to a blocking destination
# while another client's stalled transfers wait (bench/fairness/fairness.c).
# Alternates two daemon binaries, round by round, against the same client:
#   bench/fairness/run.sh BEFORE_DAEMON AFTER_DAEMON [fairness options...]
# e.g. bench/fairness/run.sh /tmp/old/sendfiled build-release/daemon/sendfiled \
#        --stalled 1000 --conns 2 --rounds 10 --probe-uid 65534
# $ROUNDS: daemon runs of each (default 3). $DAEMON_ARGS goes to both.
# Results and method: bench/fairness/RESULTS.md.
set -eu
before=$(realpath "$1")
after=$(realpath "$2")
shift 2
cd "$(dirname "$0")/../.."
[ -f build-release/build.ninja ] || meson setup build-release --buildtype=release -Dtests=disabled >/dev/null
ninja -C build-release bench/bench-fairness >/dev/null
ulimit -n "$(ulimit -Hn)"
echo "kernel $(uname -r), $(nproc) cores, $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
uptime
one() {
	daemon=$1 label=$2
	shift 2
	dir=$(mktemp -d)
	chmod 755 "$dir"
	# shellcheck disable=SC2086 # word splitting wanted
	"$daemon" --socket "$dir/sendfiled.sock" --socket-mode 0666 --no-control --log-level warning \
		--max-in-flight 1024 --max-in-flight-per-uid 4096 ${DAEMON_ARGS:-} &
	pid=$!
	for _ in $(seq 100); do [ -S "$dir/sendfiled.sock" ] && break; sleep 0.05; done
	echo "== $label: $daemon"
	./build-release/bench/bench-fairness --socket "$dir/sendfiled.sock" "$@" | tail -1 || true
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	rm -rf "$dir"
}
for r in $(seq "${ROUNDS:-3}"); do
	if [ $((r % 2)) = 1 ]; then
		one "$before" before "$@"
		one "$after" after "$@"
	else
		one "$after" after "$@"
		one "$before" before "$@"
	fi
done
