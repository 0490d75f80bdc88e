#!/bin/sh
# check-exports.sh LIBRARY [HEADER]
#
# Fails when LIBRARY exports a symbol outside the public sfd_ prefix (the
# linker version script should make everything else local), and, given the
# public HEADER, when a function it declares is not exported.
set -eu

lib=$1
header=${2:-}
nm=${NM:-nm}

# Newer binutils print versioned names (sfd_x@@SENDFILED_0): keep the name.
exports=$("$nm" -D --defined-only "$lib" | awk '
	{ name = $3; sub(/@.*/, "", name) }
	# The version node itself is an absolute symbol named after the map.
	$2 == "A" && name ~ /^SENDFILED_[0-9_.]*$/ { next }
	{ print name }
') || { echo "check-exports: cannot read $lib" >&2; exit 1; }
exports=$(printf '%s\n' "$exports" | sort -u)

status=0
if [ -z "$exports" ]; then
	echo "check-exports: $lib exports nothing" >&2
	exit 1
fi
for sym in $exports; do
	case $sym in
	sfd_*) ;;
	*)
		echo "check-exports: $lib exports $sym, outside the sfd_ prefix" >&2
		status=1
		;;
	esac
done

if [ -n "$header" ]; then
	# Declarations start at column 0 with their return type; comments do not.
	declared=$(grep -E '^[a-z].*[ *]sfd_[a-z0-9_]+\(' "$header" |
		sed -E 's/.*[ *](sfd_[a-z0-9_]+)\(.*/\1/' | sort -u)
	if [ -z "$declared" ]; then
		echo "check-exports: no sfd_ function found in $header" >&2
		exit 1
	fi
	for sym in $declared; do
		if ! printf '%s\n' "$exports" | grep -qx "$sym"; then
			echo "check-exports: $sym is declared in $header but not exported" >&2
			status=1
		fi
	done
fi

if [ "$status" -eq 0 ]; then
	echo "check-exports: $(printf '%s\n' "$exports" | wc -l) symbols, all sfd_"
fi
exit "$status"
