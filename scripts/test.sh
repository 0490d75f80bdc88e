#!/bin/sh
# Build sendfiled and run every test suite: C unit tests (also under
# valgrind), integration tests against a real daemon, fuzz-corpus replay,
# control plane, systemd integration, the raw protocol from another language,
# the format check; the C suites again under AddressSanitizer and
# UndefinedBehaviorSanitizer; then the Python binding's and the Go module's
# tests.
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
	meson test -C build-asan --print-errorlogs --num-processes 2 --no-suite format

if [ -x bindings/python/run-tests.sh ]; then
	bindings/python/run-tests.sh build-test
fi
bindings/go/run-tests.sh build-test

echo "all test suites passed"
