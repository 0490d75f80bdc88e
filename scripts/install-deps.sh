#!/bin/sh
# Install what building and testing sendfiled needs on Debian (bookworm or
# later), asking apt-get only for packages that are missing. Idempotent.
set -eu

PKGS="gcc pkg-config meson ninja-build protobuf-c-compiler libprotobuf-c-dev libuv1-dev
libnng-dev libcmocka-dev libsystemd-dev systemd clang-format python3 python3-venv
python3-pip valgrind iproute2 procps"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	echo "installing:$missing" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >&2
fi

# The Go module (bindings/go) needs Go 1.21 or later, with cgo for the race
# detector: Debian's golang-go when no go is on PATH.
if ! command -v go >/dev/null 2>&1; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	echo "installing: golang-go" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends golang-go >&2
fi
if ! command -v go >/dev/null 2>&1; then
	echo "install-deps.sh: no Go toolchain (go) after installing golang-go" >&2
	exit 1
fi
gov=$(go env GOVERSION | sed 's/^go//')
case $gov in
1.[0-9] | 1.[0-9].* | 1.1[0-9] | 1.1[0-9].* | 1.20 | 1.20.*)
	echo "install-deps.sh: Go $gov is too old for bindings/go (1.21 or later needed;" \
		"on bookworm: apt-get install -t bookworm-backports golang-go)" >&2
	exit 1
	;;
esac
