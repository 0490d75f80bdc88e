#!/bin/sh
# run.sh DAEMON MODE N OUT
d=$1; mode=$2; n=$3; out=$4
sock=/tmp/crashpos-strace/s-$$.sock
strace -f -c -o "$out" "$d" --socket "$sock" --control-probe-ms 0 >/dev/null 2>&1 &
pid=$!
for i in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
/tmp/crashpos-strace/drv "$sock" /tmp/crashpos-strace/src.bin "$mode" "$n" || echo "driver failed $?"
kill -TERM $(pgrep -P $pid); wait $pid
