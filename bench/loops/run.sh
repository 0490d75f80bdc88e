#!/bin/sh
# The daemon with one event loop against N loops, alternated in one run
# (bench/loops/loops.c). Run under the machine's benchmark lock:
#   flock /work/bench.lock bench/loops/run.sh [N]
# N: loops to compare with one (default: the CPUs we may run on).
# $PAIRS: pairs of runs per workload (default 10); $SECONDS_PER: seconds per
# run (default 3); $SLOW_TRANSFERS: the slow-receiver count (default 9950:
# two descriptors each must fit in the daemon's RLIMIT_NOFILE).
# Statistic, named before the run: the median of the per-pair ratios
# (N loops / 1 loop), with the min and max of those ratios.
# Results and method: bench/loops/RESULTS.md.
set -eu
n=${1:-$(nproc)}
pairs=${PAIRS:-10}
secs=${SECONDS_PER:-3}
slow=${SLOW_TRANSFERS:-9950}
cd "$(dirname "$0")/../.."
[ -f build-release/build.ninja ] || meson setup build-release --buildtype=release -Dtests=disabled >/dev/null
ninja -C build-release daemon/sendfiled bench/bench-loops >/dev/null
daemon=build-release/daemon/sendfiled
bench=build-release/bench/bench-loops
ulimit -n "$(ulimit -Hn)"
echo "kernel $(uname -r), $(nproc) cores, $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "load before: $(uptime)"
out=$(mktemp -d)

# CPU ticks of each daemon thread: "name ticks" lines.
cpu_of() {
	for t in /proc/"$1"/task/*; do
		printf '%s %s\n' "$(cat "$t/comm")" "$(awk '{print $14 + $15}' "$t/stat")"
	done
}

# one LOOPS MODE ARGS...: a fresh daemon, one bench run; prints the bench
# line and, for the loop threads, the CPU ticks used during the run.
one() {
	loops=$1
	shift
	dir=$(mktemp -d)
	# Its output goes to a file: an orphan holding our pipe would hang us.
	"$daemon" --socket "$dir/s.sock" --no-control --log-level warning --loops "$loops" \
		--max-in-flight 4096 --max-in-flight-per-uid 20000 --max-connections 64 \
		>"$dir/log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do [ -S "$dir/s.sock" ] && break; sleep 0.05; done
	cpu_of "$pid" >"$dir/before"
	line=$("$bench" --socket "$dir/s.sock" --pid "$pid" "$@" 2>&1) || line="failed: $line"
	cpu_of "$pid" >"$dir/after"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	cat "$dir/log" >&2
	# The loop threads: the main thread (loop 0, the first "sendfiled")
	# and sfd-loopN; libuv's workers are named sendfiled too, after it.
	cpu=$(paste -d' ' "$dir/before" "$dir/after" |
		awk 'NR == 1 || $1 ~ /^sfd-loop/ { printf "%s%s=%d", sep, ($1 == "sendfiled" ? "loop0" : $1), $4 - $2; sep = "," }')
	echo "$line loops=$loops cpu_ticks=$cpu"
	rm -rf "$dir"
}

value() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

for mode in small large; do
	key=$([ "$mode" = small ] && echo requests_per_s || echo gbit_per_s)
	: >"$out/$mode.ratios"
	echo "== $mode: $pairs pairs, 1 loop vs $n loops, alternating which goes first"
	for p in $(seq "$pairs"); do
		if [ $((p % 2)) = 1 ]; then
			a=$(one 1 --mode "$mode" --seconds "$secs" --size 64)
			b=$(one "$n" --mode "$mode" --seconds "$secs" --size 64)
		else
			b=$(one "$n" --mode "$mode" --seconds "$secs" --size 64)
			a=$(one 1 --mode "$mode" --seconds "$secs" --size 64)
		fi
		echo "$a"
		echo "$b"
		va=$(echo "$a" | value "$key")
		vb=$(echo "$b" | value "$key")
		echo "$vb $va" | awk '{ printf "%.3f\n", $1 / $2 }' >>"$out/$mode.ratios"
	done
	sort -n "$out/$mode.ratios" | awk -v m="$mode" -v n="$n" '
		{ r[NR] = $1 }
		END {
			med = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
			printf "%s: %d loops / 1 loop, median of %d per-pair ratios %.3f (min %.3f, max %.3f)\n",
			       m, n, NR, med, r[1], r[NR]
		}'
done

echo "== slow receivers: $slow transfers of 64 MiB, 8 connections, midpoint at 6 s"
for loops in 1 "$n"; do
	one "$loops" --mode slow --seconds 12 --size 64 --transfers "$slow"
done
echo "load after: $(uptime)"
rm -rf "$out"
