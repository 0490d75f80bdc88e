#!/bin/sh
# Run the Node.js binding's tests against a build tree.
#
#   bindings/node/run-tests.sh [BUILD_DIR] [NODE_TEST_ARGS...]
#
# BUILD_DIR (default: build) holds client-lib/libsendfiled.so.0,
# daemon/sendfiled and tools/sendfilectl; a relative path is taken from the
# current directory if it exists there, else from the top of the source tree.
#
# Steps:
#  1. npm install in bindings/node: the development dependencies (typescript,
#     express, fastify) and the addon, built in place;
#  2. the package installed as a user installs it, from a packed copy
#     (npm install --install-links) into a scratch project, with HOME pointed
#     at an empty directory: the build must find Node's headers on this
#     machine (no download: ~/.cache/node-gyp must stay empty) and the
#     installed copy must load libsendfiled by its lookup rules;
#  3. tsc on a typed usage of the declarations;
#  4. node --test on test/, against the daemon of BUILD_DIR.
# A missing tool is an error (scripts/install-deps.sh installs them all).
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
ctl=$build/tools/sendfilectl
for f in "$lib" "$bin" "$ctl"; do
	if [ ! -e "$f" ]; then
		echo "run-tests.sh: $f is missing: build first (ninja -C $build)" >&2
		exit 2
	fi
done
for tool in node npm cc c++ make python3; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "run-tests.sh: $tool is missing: run scripts/install-deps.sh" >&2
		exit 2
	fi
done

npm_quiet="--no-audit --no-fund --loglevel=error"

echo "== npm install (bindings/node)" >&2
(cd "$here" && npm install $npm_quiet)

echo "== npm install --install-links bindings/node, as a user" >&2
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT INT TERM
app=$here/.test-app
rm -rf "$app"
mkdir -p "$app"
printf '{ "name": "sendfiled-install-check", "private": true }\n' >"$app/package.json"
(cd "$app" && HOME=$home npm_config_cache=$home/.npm npm install $npm_quiet --install-links "$here")
if [ -e "$home/.cache/node-gyp" ] || [ -e "$home/.node-gyp" ]; then
	echo "run-tests.sh: node-gyp downloaded headers into $home; it must use the local ones" >&2
	exit 1
fi
# The installed copy finds libsendfiled by itself (a build tree above it,
# or the system) and sends a file through the daemon of BUILD_DIR.
(cd "$app" && SENDFILED_BIN=$bin node "$here/test/install-check.js")
rm -rf "$app"

echo "== tsc" >&2
(cd "$here" && ./node_modules/.bin/tsc -p test/types)

echo "== node --test" >&2
cd "$here"
SENDFILED_LIB=$lib SENDFILED_BIN=$bin SENDFILED_CTL=$ctl exec node --test \
	--test-timeout=600000 "$@" test/*.test.js
