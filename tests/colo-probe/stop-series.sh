#!/usr/bin/env bash
# stop-series.sh OUT_DIR UNTIL [MODES]: colo-pair.sh runs with the relayed channel
# (COLO_CHANNEL=relay), one at a time under nice -n 5, cycling through MODES (default "live
# before sync2", the COLO_STOP values; "plain" is a COLO_PLAIN=1 run) until the time UNTIL
# (HH:MM UTC, as date -u reads it): no run starts less than 4 minutes before it. The QEMU is
# 11.1 from Debian sid, fetched as the tests fetch it (QEMU=... overrides). Keeps each run's
# logs in OUT_DIR/NN-MODE/ and its output in OUT_DIR/NN-MODE.log, and appends one summary line
# per run to OUT_DIR/summary (docs/standby-research.md, "Stopping the primary for the
# initial copy").
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:?usage: stop-series.sh OUT_DIR UNTIL [MODES]}
until_s=$(date -u -d "${2:?usage: stop-series.sh OUT_DIR UNTIL [MODES]}" +%s) || exit 2
read -ra modes <<<"${3:-live before sync2}"
q=${QEMU:-$("$root/tests/qemu-versions/fetch.sh" sid /var/cache/qemu-upgrade-tests 2>/dev/null | tail -n 1)}
[ -x "$q" ] || { echo "stop-series.sh: no QEMU 11.1 ($q)" >&2; exit 1; }
mkdir -p "$out"
r() { sed -n "s/^RESULT $1=//p" "$2" | tail -n 1; }
i=$(find "$out" -maxdepth 1 -name '[0-9]*-*.log' | wc -l)
while [ $(($(date -u +%s) + 240)) -le "$until_s" ]; do
	mode=${modes[$((i % ${#modes[@]}))]}
	i=$((i + 1))
	name=$(printf '%02d-%s' "$i" "$mode")
	envs=(COLO_CHANNEL=relay COLO_OUT="$out/$name")
	if [ "$mode" = plain ]; then envs+=(COLO_PLAIN=1); else envs+=(COLO_STOP="$mode"); fi
	start=$(date -u +%H:%M:%S)
	env "${envs[@]}" nice -n 5 "$here/colo-pair.sh" "$q" >"$out/$name.log" 2>&1
	rc=$?
	l=$out/$name.log
	echo "$name start=$start exit=$rc guest_b=$(r secondary_guest "$l") max_errors=$(r secondary_memcheck_max_errors "$l")" \
		"($(r secondary_memcheck_max_errors_pct "$l")%) colo=$(r colo_entered "$l") stop_at=$(r stop_at "$l")" \
		"sync=$(r stop_dirty_sync_count "$l") initial_pause_ms=$(r initial_pause_ms "$l")" \
		"checkpoints=$(r checkpoints "$l") pause_median=$(r pause_ms_median "$l") failover=$(r failover_running "$l")" \
		"plain=$(r plain_migration "$l") failures=$(r failures "$l")" | tee -a "$out/summary"
done
