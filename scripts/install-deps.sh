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
