#!/bin/sh
# The Rust example server (bindings/rust/examples/http_server.rs) sending file
# bodies through sendfiled, against the same process serving the same files with
# tower-http's ServeDir (hyper 1), in the same run, alternated round by round.
#
#   bench/rust/run.sh [ROUNDS]     (default 5)
#
# Named in advance, for each server:
#   - 1 MiB files: the median over ROUNDS of wrk's Requests/sec
#     (wrk -t2 -c32 -d10s, keep-alive);
#   - a 1 GiB download: the median over ROUNDS of curl's average download
#     speed (one connection, the file in the page cache).
# The measuring phase runs under `flock /work/bench.lock` (override with
# BENCH_LOCK) so that only one benchmark runs on the machine at a time; other
# work (builds) may still share the cores, so uptime is printed before and after.
set -eu

# The measuring phase, run under the lock by the script itself (--measure).
measure() {
	echo "kernel $(uname -r), $(nproc) cores, $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "uptime before: $(uptime)"
	i=0
	while [ $i -lt "$rounds" ]; do
		i=$((i + 1))
		if [ $((i % 2)) -eq 1 ]; then order="offload servedir"; else order="servedir offload"; fi
		for which in $order; do
			if [ "$which" = offload ]; then a=$off; else a=$sd; fi
			rps=$(wrk -t2 -c32 -d10s "http://$a/1m.bin" | awk '/^Requests\/sec:/ {print $2}')
			echo "1m $which round $i: $rps req/s"
		done
	done
	i=0
	while [ $i -lt "$rounds" ]; do
		i=$((i + 1))
		if [ $((i % 2)) -eq 1 ]; then order="offload servedir"; else order="servedir offload"; fi
		for which in $order; do
			if [ "$which" = offload ]; then a=$off; else a=$sd; fi
			bps=$(curl -sf -o /dev/null -w '%{speed_download}' "http://$a/1g.bin")
			echo "1g $which round $i: $(awk -v b="$bps" 'BEGIN {printf "%.0f", b / 1048576}') MiB/s"
		done
	done
	echo "uptime after: $(uptime)"
}

if [ "${1:-}" = --measure ]; then
	measure
	exit
fi

self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
top=$(cd "$(dirname "$0")/../.." && pwd)
rounds=${1:-5}
lock=${BENCH_LOCK:-/work/bench.lock}
cd "$top"

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
for tool in wrk curl flock; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		pkg=$tool
		[ "$tool" = flock ] && pkg=util-linux
		$sudo apt-get update -qq
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$pkg" >&2
	fi
done

[ -f build-release/build.ninja ] || meson setup build-release --buildtype=release -Dtests=disabled >/dev/null
ninja -C build-release daemon/sendfiled >/dev/null
(cd bindings/rust && cargo build --locked --release --example http_server 2>&1 | tail -1)
server=bindings/rust/target/release/examples/http_server

dir=$(mktemp -d)
pids=""
cleanup() {
	st=$?
	for p in $pids; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$dir"
	exit "$st"
}
trap cleanup EXIT
mkdir "$dir/files"
head -c 1048576 /dev/urandom >"$dir/files/1m.bin"
dd if=/dev/urandom of="$dir/files/1g.bin" bs=1M count=1024 status=none

./build-release/daemon/sendfiled --socket "$dir/sendfiled.sock" --no-control --log-level warning &
pids="$pids $!"
for _ in $(seq 200); do [ -S "$dir/sendfiled.sock" ] && break; sleep 0.05; done
off=127.0.0.1:${OFFLOAD_PORT:-38080}
sd=127.0.0.1:${SERVEDIR_PORT:-38081}
"$server" "$dir/files" --socket "$dir/sendfiled.sock" --offload "$off" --servedir "$sd" 2>"$dir/server.log" &
pids="$pids $!"
for _ in $(seq 200); do grep -q serving "$dir/server.log" 2>/dev/null && break; sleep 0.05; done

# Both serve the right bytes.
want=$(sha256sum <"$dir/files/1m.bin")
for a in "$off" "$sd"; do
	got=$(curl -sf "http://$a/1m.bin" | sha256sum)
	[ "$got" = "$want" ] || { echo "http://$a/1m.bin: wrong content" >&2; exit 1; }
done
cat "$dir/files/1m.bin" "$dir/files/1g.bin" >/dev/null


export off sd rounds
results=$dir/results
flock "$lock" "$self" --measure >"$results"
cat "$results"

median() { sort -n | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo "medians over $rounds rounds:"
for which in offload servedir; do
	r=$(awk -v w="$which" '$1 == "1m" && $2 == w {print $5}' "$results" | median)
	g=$(awk -v w="$which" '$1 == "1g" && $2 == w {print $5}' "$results" | median)
	echo "  $which: 1 MiB files $r req/s, 1 GiB download $g MiB/s"
done
