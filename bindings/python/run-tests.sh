#!/bin/sh
# Run the Python binding's tests against a build tree.
#
#   bindings/python/run-tests.sh [BUILD_DIR] [PYTEST_ARGS...]
#
# BUILD_DIR (default: build) holds client-lib/libsendfiled.so.0 and
# daemon/sendfiled; a relative path is taken from the current directory if it
# exists there, else from the top of the source tree. A virtual environment is
# made in bindings/python/.venv on first use; the package is installed into it
# as a user would install it (pip install bindings/python), with pytest,
# aiohttp, uvloop and gunicorn. The exit status is pytest's.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-build}
[ $# -gt 0 ] && shift

case $build in
/*) ;;
*) if [ -d "$build" ]; then build=$(cd "$build" && pwd); else build=$top/$build; fi ;;
esac

lib=$build/client-lib/libsendfiled.so.0
[ -e "$lib" ] || lib=$build/client-lib/libsendfiled.so
bin=$build/daemon/sendfiled
for f in "$lib" "$bin"; do
	if [ ! -e "$f" ]; then
		echo "run-tests.sh: $f is missing: build first (ninja -C $build)" >&2
		exit 2
	fi
done

venv=$here/.venv
if [ ! -x "$venv/bin/python" ]; then
	python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
	"$here" -r "$here/requirements-test.txt"

cd "$here"
SENDFILED_LIB=$lib SENDFILED_BIN=$bin SENDFILED_CTL=$build/tools/sendfilectl exec "$venv/bin/python" -m pytest -p no:cacheprovider \
	"$here/tests" "$@"
