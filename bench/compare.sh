#!/bin/sh
# Compare two daemon binaries with the same benchmark client, alternating
# them in one run (ABBA order, so that neither always goes first):
#   bench/compare.sh OLD_DAEMON PAIRS [bench-sendfiled options...]
# e.g. bench/compare.sh /tmp/base/build-release/daemon/sendfiled 4 --only small --seconds 3
# The new daemon is this tree's release build. Besides what bench-sendfiled
# prints, each run with --only small reports the daemon's CPU time (user +
# system, from /proc/PID/stat) per request: on a shared machine, where
# the rates swing with the neighbours' load, the CPU a request costs moves
# much less.
set -eu
cd "$(dirname "$0")/.."
old=$1
pairs=$2
shift 2
[ -f build-release/build.ninja ] || meson setup build-release --buildtype=release -Dtests=disabled >/dev/null
ninja -C build-release daemon/sendfiled bench/bench-sendfiled >/dev/null
new=./build-release/daemon/sendfiled
tick=$(getconf CLK_TCK)

run_one() { # name binary args...
	name=$1
	bin=$2
	shift 2
	dir=$(mktemp -d)
	# shellcheck disable=SC2086 # word splitting wanted
	"$bin" --socket "$dir/sendfiled.sock" --log-level warning ${DAEMON_ARGS:-} &
	pid=$!
	for _ in $(seq 100); do [ -S "$dir/sendfiled.sock" ] && break; sleep 0.05; done
	out=$(./build-release/bench/bench-sendfiled --socket "$dir/sendfiled.sock" "$@")
	cpu=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	kill "$pid"
	wait "$pid" || true
	rm -rf "$dir"
	echo "=== $name ($bin), load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "$out"
	# Requests the daemon served: each "daemon N requests/s" is the mean of
	# two runs of --seconds each. Only with --only small: the large file's
	# CPU would count too.
	case " $* " in *" --only small "*) ;; *) return 0 ;; esac
	echo "$out" | awk -v cpu="$cpu" -v tick="$tick" -v args="$*" '
		BEGIN { s = 5; n = split(args, a, " ");
			for (i = 1; i < n; i++) if (a[i] == "--seconds") s = a[i + 1] }
		/daemon [0-9]+ requests\/s/ {
			for (i = 1; i <= NF; i++) if ($i == "daemon") req += 2 * s * $(i + 1) }
		END { if (req > 0) printf "  daemon CPU: %.2f us per request\n", cpu / tick * 1e6 / req }'
}

i=0
while [ "$i" -lt "$pairs" ]; do
	if [ $((i % 2)) -eq 0 ]; then
		run_one old "$old" "$@"
		run_one new "$new" "$@"
	else
		run_one new "$new" "$@"
		run_one old "$old" "$@"
	fi
	i=$((i + 1))
done
