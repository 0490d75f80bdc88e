#!/bin/sh
# Build sendfiled and run every test suite: C unit, integration, fuzz corpus
# replay, protocol and bindings tests, then the same C suites under
# AddressSanitizer and UndefinedBehaviorSanitizer, and the format check.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh

[ -f build-test/build.ninja ] || meson setup build-test -Dwerror=true >/dev/null
ninja -C build-test
meson test -C build-test --print-errorlogs --num-processes 2

[ -f build-asan/build.ninja ] ||
	meson setup build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
ninja -C build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	meson test -C build-asan --print-errorlogs --num-processes 2 --no-suite bindings --no-suite format

echo "all test suites passed"
