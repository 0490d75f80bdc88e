#!/bin/sh
# Build sendfiled and run every test suite: C unit tests (also under
# valgrind), integration tests against a real daemon, fuzz-corpus replay,
# control plane, systemd integration, the raw protocol from another language,
# an install into a temporary prefix, the format check; the C suites again
# under AddressSanitizer and UndefinedBehaviorSanitizer; then the bindings'
# own tests (Python, Node.js, Go with the race detector; Rust: clippy, tests
# against the daemon, docs), and the conformance cases through every client.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh

[ -f build-test/build.ninja ] || meson setup build-test -Dwerror=true
ninja -C build-test
meson test -C build-test --print-errorlogs --num-processes 2
meson test -C build-test --print-errorlogs --setup valgrind --suite unit

[ -f build-asan/build.ninja ] ||
	meson setup build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false
ninja -C build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	LSAN_OPTIONS=suppressions="$PWD/tests/lsan.supp" \
	meson test -C build-asan --print-errorlogs --num-processes 2 --no-suite format --no-suite install

if [ -x bindings/python/run-tests.sh ]; then
	bindings/python/run-tests.sh build-test
fi
bindings/node/run-tests.sh build-test
bindings/go/run-tests.sh build-test
bindings/rust/run-tests.sh build-test

# Every client against the one list of conformance cases (after the
# bindings' own suites, which install what their runners need).
tests/conformance/run.py --build build-test --doc docs/CONFORMANCE.md

echo "all test suites passed"
