#!/bin/sh
# Run the Go module's checks and tests against a build tree.
#
#   bindings/go/run-tests.sh [BUILD_DIR] [GO_TEST_ARGS...]
#
# BUILD_DIR (default: build) holds daemon/sendfiled and tools/sendfilectl; a
# relative path is taken from the current directory if it exists there, else
# from the top of the source tree. Runs gofmt, go vet and go test with the
# race detector; the tests start their own daemons from BUILD_DIR. The exit
# status is 0 when everything passed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-build}
[ $# -gt 0 ] && shift

case $build in
/*) ;;
*) if [ -d "$build" ]; then build=$(cd "$build" && pwd); else build=$top/$build; fi ;;
esac

bin=$build/daemon/sendfiled
ctl=$build/tools/sendfilectl
for f in "$bin" "$ctl"; do
	if [ ! -x "$f" ]; then
		echo "run-tests.sh: $f is missing: build first (ninja -C $build)" >&2
		exit 2
	fi
done
if ! command -v go >/dev/null 2>&1; then
	echo "run-tests.sh: the Go toolchain (go) is missing: run scripts/install-deps.sh" >&2
	exit 2
fi

cd "$here"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "run-tests.sh: not gofmt-formatted:" $unformatted >&2
	exit 1
fi
go vet ./...
# The race detector needs cgo, whatever the environment says.
SENDFILED_BIN=$bin SENDFILED_CTL=$ctl CGO_ENABLED=1 \
	exec go test -race -count=1 -timeout 30m ./... "$@"
