#!/bin/sh
# Check the Rust client against a build tree: rustfmt, clippy (all targets, and
# the library without the tokio feature; warnings are errors), the tests against
# a real daemon, and the documentation.
#
#   bindings/rust/run-tests.sh [BUILD_DIR] [CARGO_TEST_ARGS...]
#
# BUILD_DIR (default: build) holds daemon/sendfiled and the static libraries
# the codec tests link against (common/libsfdcommon.a, proto/libsfdproto.a); a
# relative path is taken from the current directory if it exists there, else
# from the top of the source tree. Crates come from crates.io, at the versions
# in Cargo.lock. CARGO_BUILD_JOBS limits the compiler's parallelism as usual.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-build}
[ $# -gt 0 ] && shift

case $build in
/*) ;;
*) if [ -d "$build" ]; then build=$(cd "$build" && pwd); else build=$top/$build; fi ;;
esac

for f in "$build/daemon/sendfiled" "$build/common/libsfdcommon.a" "$build/proto/libsfdproto.a"; do
	if [ ! -e "$f" ]; then
		echo "run-tests.sh: $f is missing: build first (ninja -C $build)" >&2
		exit 2
	fi
done
if ! command -v cargo >/dev/null 2>&1; then
	echo "run-tests.sh: cargo is missing: install Rust 1.87 or later (https://rustup.rs)" >&2
	exit 2
fi

cd "$here"
export SENDFILED_BIN="$build/daemon/sendfiled"
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo clippy --locked --no-default-features -- -D warnings
cargo test --locked "$@"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps
echo "rust: all checks passed"
