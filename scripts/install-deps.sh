#!/bin/sh
# Install what building and testing sendfiled needs on Debian (bookworm or
# later), asking apt-get only for packages that are missing. Idempotent.
set -eu

PKGS="gcc pkg-config meson ninja-build protobuf-c-compiler libprotobuf-c-dev libuv1-dev
libnng-dev libcmocka-dev libsystemd-dev systemd clang-format python3 python3-venv
python3-pip valgrind iproute2 procps g++ make"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
# The Node.js binding: node, npm (its node-gyp builds the addon) and Node's
# headers. Judged by the commands and files, not by package names: a nodejs
# from another source than Debian may bring npm and the headers itself.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
node_h=$(node -p 'require("path").resolve(process.execPath, "../../include/node/node_api.h")' \
	2>/dev/null || echo /usr/include/node/node_api.h)
[ -e "$node_h" ] || [ -e /usr/include/node/node_api.h ] || missing="$missing libnode-dev"
if [ -n "$missing" ]; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	echo "installing:$missing" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >&2
fi

# The Rust client (bindings/rust) needs cargo and rustc 1.87 or later. Debian's
# packages are older than that (bookworm has 1.63), so this does not install
# them: a missing or old toolchain is an error, fixed with rustup.
if ! command -v cargo >/dev/null 2>&1; then
	echo "install-deps.sh: cargo is missing: install Rust 1.87 or later with rustup" >&2
	echo "  (curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh)" >&2
	exit 1
fi
rustc_version=$(rustc --version | sed -n 's/^rustc \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
set -- $rustc_version
if [ "${1:-0}" -lt 1 ] || { [ "${1:-0}" -eq 1 ] && [ "${2:-0}" -lt 87 ]; }; then
	echo "install-deps.sh: $(rustc --version) is too old: the Rust client needs 1.87 or later (rustup update)" >&2
	exit 1
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
