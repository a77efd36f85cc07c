#!/bin/bash
# Runs each fuzz target given (build/fuzz/fuzz-NAME) for FUZZ_SECONDS over a copy of its seed
# corpus, FUZZ_JOBS at a time; `make fuzz-run` calls it. Exits 1 if any target crashed (or
# broke a property, leaked, timed out, ran out of memory), after printing the target's name,
# the end of its report and the input in hex. Inputs found that add coverage stay in
# build/fuzz/corpus/NAME for the next run; crashes are kept in build/fuzz/crashes/.
set -u
cd "$(dirname "$0")/../.."
bins=("$@")
[ ${#bins[@]} -gt 0 ] || { echo "usage: $0 build/fuzz/fuzz-NAME..." >&2; exit 2; }
jobs=${FUZZ_JOBS:-2}
# By default about 90 s of wall-clock time for all of them together.
secs=${FUZZ_SECONDS:-}
[ -n "$secs" ] || secs=$(( (90 * jobs + ${#bins[@]} - 1) / ${#bins[@]} ))
# Reports with file:line (llvm-14 has it under this name only; the package llvm adds the link).
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then
	export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi
out=build/fuzz/run
mkdir -p "$out" build/fuzz/corpus build/fuzz/crashes
rm -f "$out"/*.log "$out"/*.rc

run_one() {
	local bin=$1 name=${1##*/}
	local t=${name#fuzz-}
	local corpus=build/fuzz/corpus/$t
	mkdir -p "$corpus"
	cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null
	"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix=build/fuzz/crashes/"$name"- "$corpus" >"$out/$name.log" 2>&1
	echo $? >"$out/$name.rc"
}

start=$(date +%s)
echo "fuzz: ${#bins[@]} targets, ${secs} s each, ${jobs} at a time"
for bin in "${bins[@]}"; do
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
		wait -n
	done
	run_one "$bin" &
done
wait

failed=0 total=0
for bin in "${bins[@]}"; do
	name=${bin##*/}
	log=$out/$name.log
	rc=$(cat "$out/$name.rc" 2>/dev/null || echo 1)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	execs=${execs:-0}
	total=$((total + execs))
	if [ "$rc" = 0 ]; then
		printf '  %-22s ok      %10d executions\n' "$name" "$execs"
		continue
	fi
	failed=1
	printf '  %-22s FAILED  %10d executions (exit %s)\n' "$name" "$execs" "$rc"
	echo "---- $name: the end of its report ($log)"
	grep -v '^INFO:\|^#[0-9]' "$log" | tail -40
	artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
	if [ -n "$artifact" ] && [ -f "$artifact" ]; then
		echo "---- $name: the input ($artifact), in hex; replay: $bin $artifact"
		od -A x -t x1z -v "$artifact" | head -64
	fi
done
echo "fuzz: $total executions in $(( $(date +%s) - start )) s"
[ "$failed" = 0 ] || { echo "fuzz: FAILED"; exit 1; }
