#!/bin/sh
# Run the Go benchmark (see main.go and RESULTS.md) against a build tree,
# alone on the machine: other benchmarks take the same lock.
#
#   bench/go/run.sh [BUILD_DIR] [BENCH_ARGS...]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-build}
[ $# -gt 0 ] && shift
case $build in
/*) ;;
*) if [ -d "$build" ]; then build=$(cd "$build" && pwd); else build=$top/$build; fi ;;
esac
cd "$here"
go build -o "${TMPDIR:-/tmp}/sendfiled-bench-go" .
exec flock /work/bench.lock sh -c '
	echo "$(date -u +%FT%TZ) $(uname -sr) $(go env GOVERSION) cpus=$(nproc)"
	uptime
	bin=$0 build=$1
	shift
	"$bin" -daemon "$build/daemon/sendfiled" "$@"
	uptime' "${TMPDIR:-/tmp}/sendfiled-bench-go" "$build" "$@"
