#!/bin/sh
# Draw the benchmark pictures (bench/results/*.png) from the recorded figures
# (bench/results/*.csv): makes bench/.venv with matplotlib from PyPI on first
# use, then runs bench/plot.py.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=$here/.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
	python3 -m venv "$venv"
	"$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'matplotlib==3.11.2'
fi
exec "$venv/bin/python" "$here/plot.py" "$@"
