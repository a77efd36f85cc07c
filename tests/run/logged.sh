#!/usr/bin/env bash
# logged.sh TEST: runs one test for prove. Its stdout goes to prove and to
# $QU_TEST_LOGS/NAME.log, its stderr to that log only (a pipe there would make prove wait
# for every background process that inherited it), its exit status and name to NAME.rc
# (tests/run/failures.sh prints what the failing ones said).
set -u
log=$QU_TEST_LOGS/$(tr / _ <<<"${1#./}")
: >"$log.log"
"$1" 2>>"$log.log" | tee -a "$log.log"
rc=${PIPESTATUS[0]}
echo "$rc $1" >"$log.rc"
exit "$rc"
