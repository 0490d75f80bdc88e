#!/bin/sh
# The daemon with one event loop against N loops, alternated in one run
# (bench/loops/loops.c). Run under the machine's benchmark lock:
#   flock /work/bench.lock bench/loops/run.sh [N]
# N: loops to compare with one (default: the CPUs we may run on).
# $PAIRS: rounds per workload (default 10); $SECONDS_PER: seconds per
# run (default 3); $SLOW_TRANSFERS: the slow-receiver count (default 9950:
# two descriptors each must fit in the daemon's RLIMIT_NOFILE).
# Each round runs the in-process baseline (sendfile(2) in the client's own
# threads), the daemon with 1 loop and with N, in an order that rotates.
# Statistic, named before the run: the median of the per-round ratios
# (N loops / 1 loop; each / in-process), with their min and max.
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

# CPU ticks of each daemon thread: "tid name ticks" lines.
cpu_of() {
	for t in /proc/"$1"/task/*; do
		printf '%s %s %s\n' "${t##*/}" "$(cat "$t/comm")" "$(awk '{print $14 + $15}' "$t/stat")"
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
	# The loop threads: the main thread (loop 0, whose tid is the pid) and
	# sfd-loopN; libuv's workers are named sendfiled too, after it.
	# Joined by thread id: threads started during the run (libuv's
	# workers) count from zero.
	cpu=$(awk -v main="$pid" '
		FNR == NR { before[$1] = $3; next }
		$1 == main || $2 ~ /^sfd-loop/ {
			printf "%s%s=%d", sep, ($1 == main ? "loop0" : $2), $3 - before[$1]; sep = ","
		}' "$dir/before" "$dir/after")
	echo "$line loops=$loops cpu_ticks=$cpu"
	rm -rf "$dir"
}

value() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

# ratios FILE LABEL: the median, min and max of the ratios in FILE.
ratios() {
	sort -n "$1" | awk -v label="$2" '
		{ r[NR] = $1 }
		END {
			med = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
			printf "%s: median of %d per-round ratios %.3f (min %.3f, max %.3f)\n",
			       label, NR, med, r[1], r[NR]
		}'
}

for mode in small large; do
	key=$([ "$mode" = small ] && echo requests_per_s || echo gbit_per_s)
	: >"$out/$mode.n1"
	: >"$out/$mode.1p"
	: >"$out/$mode.np"
	echo "== $mode: $pairs rounds of in-process, 1 loop, $n loops, the order rotating"
	for p in $(seq "$pairs"); do
		for k in $(seq 0 2); do
			case $(((p + k) % 3)) in
			0) c=$("$bench" --in-process --mode "$mode" --seconds "$secs" --size 64) ;;
			1) a=$(one 1 --mode "$mode" --seconds "$secs" --size 64) ;;
			2) b=$(one "$n" --mode "$mode" --seconds "$secs" --size 64) ;;
			esac
		done
		echo "$c"
		echo "$a"
		echo "$b"
		va=$(echo "$a" | value "$key")
		vb=$(echo "$b" | value "$key")
		vc=$(echo "$c" | value "$key")
		echo "$vb $va" | awk '{ printf "%.3f\n", $1 / $2 }' >>"$out/$mode.n1"
		echo "$va $vc" | awk '{ printf "%.3f\n", $1 / $2 }' >>"$out/$mode.1p"
		echo "$vb $vc" | awk '{ printf "%.3f\n", $1 / $2 }' >>"$out/$mode.np"
	done
	ratios "$out/$mode.n1" "$mode: $n loops / 1 loop"
	ratios "$out/$mode.1p" "$mode: 1 loop / in-process"
	ratios "$out/$mode.np" "$mode: $n loops / in-process"
done

echo "== slow receivers: $slow transfers of 64 MiB, 8 connections, midpoint at 6 s"
for loops in 1 "$n"; do
	one "$loops" --mode slow --seconds 12 --size 64 --transfers "$slow"
done
echo "load after: $(uptime)"
rm -rf "$out"
