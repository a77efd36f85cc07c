#!/usr/bin/env bash
# failures.sh LOGDIR: for each test that failed (tests/run/logged.sh's logs), its failing lines,
# then the first failure with the diagnostics around it (the "# ..." lines a step prints before
# its "not ok" and after it), or the end of its output when it stopped early. CI keeps only
# the last few KiB of its output: the first failure's own words come last, where they survive,
# and later failures (often its consequences) are listed a line each before it. Bounded.
set -u
logs=${1:?usage: failures.sh LOGDIR}
cut_line() { cut -c1-700; }
for rcf in "$logs"/*.rc; do
	[ -e "$rcf" ] || continue
	read -r rc name <"$rcf"
	log=${rcf%.rc}.log
	grep -q '^not ok' "$log" || [ "$rc" != 0 ] || continue
	echo "=== $name failed (exit $rc); whole log: $log"
	if grep -q '^not ok' "$log"; then
		grep '^not ok' "$log" | tail -n +2 | head -n 10 | cut -c1-160 | sed 's/^/# later: /'
		# The first "not ok": up to 5 comment lines before it (since the test point before),
		# and up to 4 after it.
		awk 'done { next }
		     failed { if (after > 0 && /^#/) { print; after--; next } done = 1; next }
		     /^not ok/ { for (i = 1; i <= nb; i++) print before[i]; print; after = 4; failed = 1; next }
		     /^ok / { nb = 0; next }
		     /^#/ { if (nb == 5) { for (i = 1; i < 5; i++) before[i] = before[i + 1]; nb = 4 } before[++nb] = $0 }' "$log" |
			cut_line
	else
		tail -n 12 "$log" | cut_line
	fi
done
