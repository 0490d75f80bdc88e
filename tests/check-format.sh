#!/bin/sh
# Fails when a C source differs from what the project's .clang-format asks for.
set -eu
cd "$1"
command -v clang-format >/dev/null || { echo "clang-format not installed: skipped"; exit 77; }
files=$(find common daemon client-lib tools tests bench -name '*.[ch]' -not -path '*/corpus/*' -not -path '*/.venv/*')
clang-format --dry-run --Werror $files
echo "format ok: $(echo "$files" | wc -w) files"
