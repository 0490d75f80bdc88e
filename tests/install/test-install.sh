#!/bin/sh
# Install sendfiled into a temporary prefix as the current user, as a user
# would (meson setup --prefix=DIR, meson install; no DESTDIR), and check:
#   - nothing is installed outside the prefix (checked on the dry run, before
#     anything is written, and again on the install log);
#   - the installed sendfiled and sendfilectl run (--help, --version) without
#     LD_LIBRARY_PATH, and the daemon reads its configuration from the
#     prefix's sysconfdir;
#   - sendfiled.pc names libprotobuf-c for static links;
#   - a program built with `pkg-config --cflags --libs sendfiled` against the
#     prefix links, runs without LD_LIBRARY_PATH, and has the installed daemon
#     serve a transfer;
#   - the Python binding, pip-installed into a virtual environment from a
#     checkout whose build was installed, finds the prefix's library with no
#     environment variable, and lists every place it tried when there is none.
#
#   test-install.sh SRCDIR
#
# Skips the Python part (not the rest) without python3 -m venv.
set -eu

src=$(cd "$1" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sfd-install.XXXXXX")
prefix=$tmp/prefix
daemon_pid=
cleanup() {
	[ -z "$daemon_pid" ] || kill "$daemon_pid" 2>/dev/null || true
	[ -z "$daemon_pid" ] || wait "$daemon_pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# What a user's shell would not have set for this.
unset LD_LIBRARY_PATH DESTDIR PKG_CONFIG_PATH SENDFILED_LIB SENDFILED_SOCKET SENDFILED_CONFIG \
	SENDFILED_LOG_LEVEL MESON_INSTALL_DESTDIR_PREFIX 2>/dev/null || true

# The build directory sits in a tree of its own that also holds a copy of
# the Python package, laid out as a checkout is (build/ beside bindings/).
tree=$tmp/tree
build=$tree/build
mkdir -p "$tree/bindings"
echo "== meson setup --prefix=$prefix"
meson setup "$build" "$src" --prefix="$prefix" -Dtests=disabled >"$tmp/setup.log" 2>&1 || {
	cat "$tmp/setup.log"
	fail "meson setup"
}
ninja -C "$build" >"$tmp/build.log" 2>&1 || {
	cat "$tmp/build.log"
	fail "build"
}

outside_prefix() {
	while IFS= read -r p; do
		case "$p/" in
		"$prefix"/*) ;;
		*) echo "  $p" ;;
		esac
	done
}

echo "== meson install --dry-run: every destination in the prefix"
meson install -C "$build" --no-rebuild --dry-run >"$tmp/dry.log" 2>&1 || {
	cat "$tmp/dry.log"
	fail "meson install --dry-run"
}
out=$(sed -n 's/^Installing .* to \(\/.*\)$/\1/p' "$tmp/dry.log" | outside_prefix)
if [ -n "$out" ]; then
	cat "$tmp/dry.log"
	fail "meson install would write outside $prefix:
$out"
fi

echo "== meson install"
meson install -C "$build" --no-rebuild --quiet >"$tmp/install.log" 2>&1 || {
	cat "$tmp/install.log"
	fail "meson install"
}
out=$(grep -v '^#' "$build/meson-logs/install-log.txt" | outside_prefix)
[ -z "$out" ] || fail "installed outside $prefix:
$out"
echo "installed:"
(cd "$prefix" && find . ! -type d | sort | sed 's/^\./  /')

libdir=$(dirname "$(find "$prefix" -name libsendfiled.so.0 | head -n1)")
pcdir=$(dirname "$(find "$prefix" -name sendfiled.pc | head -n1)")
[ -f "$libdir/libsendfiled.so.0" ] || fail "no libsendfiled.so.0 in $prefix"
[ -f "$pcdir/sendfiled.pc" ] || fail "no sendfiled.pc in $prefix"
for f in sbin/sendfiled bin/sendfilectl include/sendfiled.h share/man/man8/sendfiled.8 \
	share/man/man5/sendfiled.conf.5 share/man/man1/sendfilectl.1 \
	etc/sendfiled/sendfiled.conf.example; do
	[ -e "$prefix/$f" ] || fail "$prefix/$f is missing"
done
if [ -e "$prefix/lib/systemd/system/sendfiled.service" ]; then
	grep -qx "ExecStart=$prefix/sbin/sendfiled" "$prefix/lib/systemd/system/sendfiled.service" ||
		fail "sendfiled.service does not run $prefix/sbin/sendfiled"
	[ -e "$prefix/lib/systemd/system/sendfiled.socket" ] || fail "sendfiled.socket is missing"
	[ -e "$prefix/lib/sysusers.d/sendfiled.conf" ] || fail "the sysusers.d entry is missing"
fi
grep -q "$prefix/etc/sendfiled/sendfiled.conf" "$prefix/share/man/man8/sendfiled.8" ||
	fail "the installed sendfiled(8) does not name $prefix/etc/sendfiled/sendfiled.conf"

echo "== the installed programs run without LD_LIBRARY_PATH"
"$prefix/sbin/sendfiled" --version | grep -q '^sendfiled [0-9]' || fail "sendfiled --version"
"$prefix/sbin/sendfiled" --help >"$tmp/help.txt" || fail "sendfiled --help"
grep -q "$prefix/etc/sendfiled/sendfiled.conf" "$tmp/help.txt" ||
	fail "sendfiled --help does not name the prefix's configuration file"
"$prefix/bin/sendfilectl" --version | grep -q '^sendfilectl [0-9]' ||
	fail "sendfilectl --version (ldd: $(ldd "$prefix/bin/sendfilectl" | grep sendfiled))"
"$prefix/bin/sendfilectl" --help >/dev/null || fail "sendfilectl --help"
ldd "$prefix/bin/sendfilectl" | grep -q "libsendfiled.so.0 => $libdir/" ||
	fail "sendfilectl does not load the prefix's library: $(ldd "$prefix/bin/sendfilectl")"

echo "== sendfiled.pc"
export PKG_CONFIG_PATH="$pcdir"
pkg-config --print-requires-private sendfiled | grep -q '^libprotobuf-c' ||
	fail "sendfiled.pc has no Requires.private: libprotobuf-c"
pkg-config --static --libs sendfiled | grep -q -- '-lprotobuf-c' ||
	fail "pkg-config --static --libs sendfiled lacks -lprotobuf-c"
echo "  cflags: $(pkg-config --cflags sendfiled)"
echo "  libs:   $(pkg-config --libs sendfiled)"

echo "== a program built with pkg-config against the prefix"
# Word splitting of pkg-config's output is intended.
# shellcheck disable=SC2046
${CC:-cc} -o "$tmp/hello-sendfiled" "$src/tests/install/hello-sendfiled.c" \
	$(pkg-config --cflags --libs sendfiled) || fail "building against the prefix"
unset PKG_CONFIG_PATH

mkdir -p "$tmp/run"
sock=$tmp/run/sendfiled.sock
: >"$tmp/empty.conf"
SENDFILED_CONFIG=$tmp/empty.conf "$prefix/sbin/sendfiled" --socket "$sock" >"$tmp/daemon.log" 2>&1 &
daemon_pid=$!
i=0
while [ ! -S "$sock" ] || [ ! -S "$tmp/run/control.sock" ]; do
	i=$((i + 1))
	[ $i -lt 500 ] || { cat "$tmp/daemon.log"; fail "the installed daemon did not start"; }
	kill -0 "$daemon_pid" 2>/dev/null || { cat "$tmp/daemon.log"; fail "the installed daemon exited"; }
	sleep 0.02
done
"$tmp/hello-sendfiled" "$sock" || fail "the program built against the prefix"
"$prefix/bin/sendfilectl" --socket "$sock" status >/dev/null ||
	fail "sendfilectl status against the installed daemon"

echo "== the Python binding, pip-installed into a virtual environment"
if ! python3 -m venv "$tmp/venv" >/dev/null 2>&1; then
	echo "python3 -m venv is not available: Python part skipped"
else
	cp -r "$src/bindings/python" "$tree/bindings/python"
	rm -rf "$tree/bindings/python/.venv" "$tree/bindings/python/build"
	"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
		"$tree/bindings/python" || fail "pip install bindings/python"
	# Run from elsewhere, so that nothing is found relative to the tree.
	(cd / && "$tmp/venv/bin/python" "$src/tests/install/check_python_lookup.py" found \
		"$libdir" "$sock") || fail "the binding did not use the prefix's library"
	# Without the library, the error lists every place tried.
	mkdir "$tmp/aside"
	mv "$libdir"/libsendfiled.so* "$tmp/aside/"
	(cd / && "$tmp/venv/bin/python" "$src/tests/install/check_python_lookup.py" missing \
		"$libdir" "$sock") || fail "the binding's error without a library"
	mv "$tmp/aside"/libsendfiled.so* "$libdir/"
fi

kill "$daemon_pid"
wait "$daemon_pid" || fail "the installed daemon did not exit cleanly"
daemon_pid=
echo "install test: ok"
