#!/bin/sh
# Build the libFuzzer targets (clang, AddressSanitizer and
# UndefinedBehaviorSanitizer) and run each for RUNS executions, one target at
# a time in one process, on a copy of its corpus; then merge what the run
# found into tests/fuzz/corpus/<target> (-merge=1 keeps only inputs that reach
# new edges). A crash stops the script and leaves its input in
# build-fuzz/fuzz-work/<target>-crash-*.
#
#   scripts/fuzz.sh [RUNS [TARGET...]]
#
# RUNS defaults to 10000000; the targets to request response fdmsg ctl conf.
# Installs clang and its runtime (libclang-rt-<version>-dev) on Debian when
# missing. Runs at nice 10: the machine stays usable.
set -eu
cd "$(dirname "$0")/.."

runs=${1:-10000000}
[ $# -gt 0 ] && shift
targets=${*:-request response fdmsg ctl conf}

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
install() {
	echo "installing: $*" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >&2
}
command -v clang >/dev/null 2>&1 || install clang
# libFuzzer and the sanitizers' runtime come in a package named after
# clang's major version.
rt="libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev"
dpkg-query -W -f='${Status}' "$rt" 2>/dev/null | grep -q "ok installed" || install "$rt"

[ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz -Dfuzz=true
ninja -C build-fuzz

export UBSAN_OPTIONS=print_stacktrace=1
for t in $targets; do
	work=build-fuzz/fuzz-work/$t
	mkdir -p "$work"
	cp tests/fuzz/corpus/"$t"/* "$work"/
	start=$(date +%s)
	nice -n 10 ./build-fuzz/tests/fuzz/fuzz-"$t" -runs="$runs" -print_final_stats=1 \
		-artifact_prefix="build-fuzz/fuzz-work/$t-" "$work"
	echo "fuzz-$t: $runs runs in $(($(date +%s) - start)) s, clean"
	# New edges only (not hit counts): keeps the corpus small.
	nice -n 10 ./build-fuzz/tests/fuzz/fuzz-"$t" -merge=1 -use_counters=0 -use_cmp=0 \
		tests/fuzz/corpus/"$t" "$work" \
		2>&1 | grep -E "MERGE-OUTER: [0-9]+ new files" || true
	echo "tests/fuzz/corpus/$t: $(ls tests/fuzz/corpus/"$t" | wc -l) files"
done
