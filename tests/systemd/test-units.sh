#!/bin/sh
# systemd-analyze verify on the unit files (man pages are not installed at
# test time: --man=no). Prints the service's exposure score. Skipped (77)
# without systemd-analyze.
set -eu
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not found: skipped"; exit 77; }
socket=$1
service=$2
out=$(systemd-analyze verify --man=no "$socket" "$service" 2>&1) || {
	echo "$out"
	echo "systemd-analyze verify failed"
	exit 1
}
# verify also exits 0 on some warnings (an unknown key is "ignoring"): any
# output about our units is a defect.
if [ -n "$out" ]; then
	echo "$out"
	echo "systemd-analyze verify printed warnings"
	exit 1
fi
echo "systemd-analyze verify: ok"
# The exposure score, for the record; fails if it rises above 1.0.
score=$(systemd-analyze security --offline=yes "$service" 2>/dev/null |
	sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
echo "exposure: ${score:-unknown}"
[ -n "$score" ] || exit 0
awk -v s="$score" 'BEGIN { exit !(s <= 1.0) }' || {
	echo "exposure $score is above 1.0"
	exit 1
}
