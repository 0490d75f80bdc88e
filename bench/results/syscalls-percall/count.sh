#!/bin/sh
# Syscalls of the daemon (every thread) for N requests of 4 KiB:
#   cc -O2 -o drv ../syscalls-2026-12-03/small-driver.c -Iclient-lib/include -Lbuild/client-lib -lsendfiled
#   head -c 1048576 /dev/urandom >src.bin
#   count.sh DAEMON own|shared N OUT
# (own: each request opens the file anew, one at a time; shared: one
# descriptor, 64 requests in flight at consecutive offsets.)
d=$1; mode=$2; n=$3; out=$4
dir=$(mktemp -d)
sock=$dir/s.sock
strace -f -c -o "$out" "$d" --socket "$sock" --control-probe-ms 0 --no-control >/dev/null 2>&1 &
pid=$!
for i in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
${DRV:-./drv} "$sock" ${SRC:-./src.bin} "$mode" "$n" || echo "driver failed $?"
kill -TERM $(pgrep -P $pid); wait $pid
rm -rf $dir
