#!/usr/bin/env bash
# A comment line inside a backslash-continued command ends that command: the lines after it
# run as a command of their own (tests/install-deps.sh once ran "clang-14 libclang-rt-14-dev
# ..." as a program, and a fresh machine's CI stopped there). Every shell script of the
# project is checked for a line ending in a backslash followed by a comment line.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/tap.sh
files=$(git ls-files '*.sh' '*.t' .ci/run 2>/dev/null)
[ -n "$files" ] || files=$(find . -name '*.sh' -o -name '*.t' | grep -v '^./build/')
tap_plan 1
bad=$(for f in $files; do
	awk -v f="$f" 'prev ~ /\\$/ && $0 ~ /^[[:space:]]*#/ { print f ":" NR } { prev = $0 }' "$f"
done)
[ -z "$bad" ]
tap_ok $? "no comment line inside a continued command${bad:+: $(echo $bad)}"
tap_done
