#!/usr/bin/env bash
# failures.sh LOGDIR: for each test that failed (tests/run/logged.sh's logs), its failing
# lines with the diagnostics under them, or the end of its output when it stopped early.
# Bounded, so that several failures still fit at the end of a CI log.
set -u
logs=${1:?usage: failures.sh LOGDIR}
cut_line() { cut -c1-600; }
for rcf in "$logs"/*.rc; do
	[ -e "$rcf" ] || continue
	read -r rc name <"$rcf"
	log=${rcf%.rc}.log
	grep -q '^not ok' "$log" || [ "$rc" != 0 ] || continue
	echo "=== $name failed (exit $rc); whole log: $log"
	if grep -q '^not ok' "$log"; then
		# Each "not ok" line, the two lines before it and the diagnostics ("# ...") after it.
		awk '/^not ok/ { print prev2; print prev1; print; diag = 8; prev2 = prev1; prev1 = $0; next }
		     diag > 0 && /^#/ { print; diag--; prev2 = prev1; prev1 = $0; next }
		     { diag = 0; prev2 = prev1; prev1 = $0 }' "$log" | grep -v '^$' | cut_line | head -n 40
	else
		tail -n 12 "$log" | cut_line
	fi
done
