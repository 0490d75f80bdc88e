#!/bin/sh
# Syscalls of the daemon (every thread) while bench-httpd serves 16 distinct
# 1 MiB files to wrk -t2 -c32 for 3 s, from the top of the tree:
#   bench/results/syscalls-percall/http-count.sh DAEMON OUT
# (divide by the responses bench-httpd prints).
d=$1; out=$2
work=$(mktemp -d); chmod 755 $work; mkdir $work/files
i=0; while [ $i -lt 16 ]; do head -c 1048576 /dev/urandom > $work/files/f$i; i=$((i+1)); done
cat > $work/wrk.lua <<'LUA'
local n = 0
request = function()
	n = n + 1
	return wrk.format("GET", "/f" .. (n % 16))
end
LUA
strace -f -c -o $out $d --socket $work/s.sock --no-control --log-level warning &
sp=$!
for _ in $(seq 100); do [ -S "$work/s.sock" ] && break; sleep 0.05; done
./build-release/bench/bench-httpd --port 18090 --dir $work/files --socket $work/s.sock 2>$work/h.err &
hp=$!
sleep 0.3
wrk -t2 -c32 -d3s -s $work/wrk.lua http://127.0.0.1:18090/ | grep "requests in"
kill $hp; sleep 0.2; cat $work/h.err
kill $(pgrep -P $sp); wait $sp
rm -rf $work
