#!/bin/sh
# CPU per response: the daemon (behind bench-httpd, which offloads every body
# to it) against nginx (sendfile on, 2 workers), wrk -t2 -c32 on 16 distinct
# 1 MiB page-cached files over loopback TCP, the two alternated within each
# round (bench/http/RESULTS.md):
#   flock /work/bench.lock bench/http/cpu.sh [ROUNDS [SECONDS [DAEMON]]]
# DAEMON defaults to this tree's release build. Needs wrk and nginx
# (scripts/install-deps.sh does not install them: bench/node/run.sh does).
# CPU is user + system time from /proc/PID/stat: the daemon's (every
# thread), bench-httpd's, and nginx's master and workers.
set -eu
cd "$(dirname "$0")/../.."
rounds=${1:-9}
secs=${2:-4}
[ -f build-release/build.ninja ] || meson setup build-release --buildtype=release -Dtests=disabled >/dev/null
ninja -C build-release daemon/sendfiled bench/bench-httpd >/dev/null
daemon=${3:-./build-release/daemon/sendfiled}
work=$(mktemp -d)
files=$work/files
mkdir -p "$files" "$work/nginx/logs"
# nginx workers run as nobody.
chmod 755 "$work" "$files"
i=0
while [ $i -lt 16 ]; do head -c 1048576 /dev/urandom >"$files/f$i"; i=$((i + 1)); done
cat >"$work/wrk.lua" <<'LUA'
local n = 0
request = function()
	n = n + 1
	return wrk.format("GET", "/f" .. (n % 16))
end
LUA
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 2;
daemon off;
error_log stderr error;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
	access_log off;
	sendfile on;
	keepalive_requests 1000000;
	client_body_temp_path $work/nginx;
	proxy_temp_path $work/nginx;
	fastcgi_temp_path $work/nginx;
	uwsgi_temp_path $work/nginx;
	scgi_temp_path $work/nginx;
	server { listen 127.0.0.1:18081; root $files; }
}
CONF
# wrk and nginx cannot set TCP_CONGESTION on their sockets: the default
# for the run, restored at the end (bench-httpd sets cubic itself).
cc_old=$(sysctl -n net.ipv4.tcp_congestion_control)
sysctl -qw net.ipv4.tcp_congestion_control=cubic 2>/dev/null || echo "cannot set cubic: $cc_old stays"

"$daemon" --socket "$work/s.sock" --no-control --log-level warning &
dpid=$!
for _ in $(seq 100); do [ -S "$work/s.sock" ] && break; sleep 0.05; done
./build-release/bench/bench-httpd --port 18080 --dir "$files" --socket "$work/s.sock" &
hpid=$!
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
npid=$!
sleep 0.5
trap 'kill $dpid $hpid $npid 2>/dev/null; wait 2>/dev/null; sysctl -qw net.ipv4.tcp_congestion_control=$cc_old 2>/dev/null; rm -rf $work' EXIT

ticks() { # pids... -> user + system ticks of them and their children
	t=0
	for p in "$@"; do
		for q in $p $(pgrep -P "$p" 2>/dev/null); do
			v=$(awk '{print $14 + $15}' "/proc/$q/stat" 2>/dev/null || echo 0)
			t=$((t + v))
		done
	done
	echo $t
}
tck=$(getconf CLK_TCK)

run() { # name port -> "requests cpu-ticks-of-daemon cpu-ticks-of-server"
	cat "$files"/* >/dev/null
	d0=$(ticks $dpid); h0=$(ticks $hpid); n0=$(ticks $npid)
	out=$(wrk -t2 -c32 -d"${secs}s" -s "$work/wrk.lua" "http://127.0.0.1:$2/" 2>&1)
	d1=$(ticks $dpid); h1=$(ticks $hpid); n1=$(ticks $npid)
	req=$(echo "$out" | awk '/requests in/ {print $1}')
	errs=$(echo "$out" | grep -E "Non-2xx|Socket errors" | tr '\n' ' ')
	echo "$1 $req $((d1 - d0)) $((h1 - h0)) $((n1 - n0)) $errs"
}

echo "kernel $(uname -r), $(nproc) CPUs, $(git rev-parse --short HEAD), $(nginx -v 2>&1)"
echo "load at start: $(uptime)"
echo "round order requests/s: offload nginx | CPU us per response: daemon httpd (offload) nginx | daemon/nginx"
r=0
: >"$work/ratios"
while [ $r -lt "$rounds" ]; do
	if [ $((r % 2)) -eq 0 ]; then a=$(run offload 18080); b=$(run nginx 18081); else b=$(run nginx 18081); a=$(run offload 18080); fi
	echo "$a" "$b" | awk -v tck="$tck" -v s="$secs" -v r="$r" '{
		# offload: $2 requests, $3 daemon ticks, $4 httpd ticks; nginx: after the offload fields
		n = split($0, f, " ")
		oreq = f[2]; od = f[3]; oh = f[4]
		for (i = 5; i <= n; i++) if (f[i] == "nginx") { nreq = f[i + 1]; nn = f[i + 4]; break }
		dus = od / tck * 1e6 / oreq; hus = oh / tck * 1e6 / oreq; nus = nn / tck * 1e6 / nreq
		printf "%d %s %.0f %.0f | %.1f %.1f %.1f | %.3f\n", r, (r % 2 ? "nginx-first" : "offload-first"), oreq / s, nreq / s, dus, hus, nus, dus / nus
	}' | tee -a "$work/ratios"
	r=$((r + 1))
done
sort -t'|' -k3 -g "$work/ratios" | awk -F'|' '{print $3}' | sort -g | awk '{a[NR] = $1} END {
	printf "median of per-round daemon/nginx CPU ratios: %.3f (of %d rounds; min %.3f max %.3f)\n", (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2), NR, a[1], a[NR] }'
echo "load at end: $(uptime)"
