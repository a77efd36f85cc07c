#!/usr/bin/env bash
# prove.sh LOGDIR PROVE-ARGS...: runs prove over the tests, each test's output (stdout and
# stderr) also kept in LOGDIR, and when any test fails prints, last, what each failing test
# said about its failures. CI keeps only the tail of its output: a failure must explain
# itself there, not a screen above it.
set -u
here=$(cd "$(dirname "$0")" && pwd)
logs=${1:?usage: prove.sh LOGDIR PROVE-ARGS...}
shift
rm -rf "$logs"
mkdir -p "$logs"
QU_TEST_LOGS=$(cd "$logs" && pwd) prove --exec "$here/logged.sh" "$@"
rc=$?
[ "$rc" = 0 ] || "$here/failures.sh" "$logs"
exit "$rc"
