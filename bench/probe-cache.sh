#!/bin/bash
# bench/probe-cache.sh [RUNS]: what the probe cache (qemu-integration/probecache.h) saves. One
# firmware-only VM (KVM when a SeaBIOS guest runs under it, else TCG; 256 MiB of memfd RAM) is
# upgraded in place RUNS times (default 5) with /var/cache/qemu-upgrade emptied before each
# run (cold: every probe starts QEMU), then RUNS times with it kept (warm). Prints the medians
# of the planning (from the -v log: "inspected" to "phase planned", where the probes run), the
# report's commit_ms (the time until the commit point) and total_ms, for both, and the command
# line. Needs root and the production build (build/qemu-upgrade, made if missing).
set -u
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
RUNS=${1:-5}
QEMU=${QEMU:-/usr/bin/qemu-system-x86_64}
QU_BIN=${QU_BIN:-$ROOT/build/qemu-upgrade}
CACHE=/var/cache/qemu-upgrade
[ -x "$QU_BIN" ] || make -C "$ROOT" -s all >/dev/null || exit 2
ACCEL=${ACCEL:-$(python3 "$BENCH/bench.py" probe-accel --qemu "$QEMU")} || exit 2
work=$(mktemp -d /tmp/qu-bench-probe.XXXXXX) || exit 2
pid=
cleanup() { [ -z "$pid" ] || kill -9 "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
"$QEMU" -accel "$ACCEL" -machine q35,memory-backend=m -object memory-backend-memfd,id=m,size=256M,share=on \
	-m 256M -nodefaults -display none -qmp "unix:$work/qmp,server=on,wait=off" \
	-daemonize -pidfile "$work/pid" || exit 2
pid=$(cat "$work/pid")
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
for mode in cold warm; do
	: >"$work/$mode"
	for _ in $(seq "$RUNS"); do
		[ "$mode" = cold ] && rm -rf "$CACHE"
		report=$("$QU_BIN" --pid "$pid" --new-binary "$QEMU" --json -v 2>"$work/log") ||
			{ echo "probe-cache.sh: upgrade failed: $(tail -n 3 "$work/log")" >&2; exit 1; }
		pid=$(cat "$work/pid")
		plan=$(awk -F'[][ ]+' '/\] inspected PID/ { t0 = $2 } /debug: phase planned/ { print $2 - t0; exit }' "$work/log")
		echo "$plan $(jq -r '"\(.commit_ms) \(.total_ms)"' <<<"$report")" >>"$work/$mode"
	done
	printf '%s: planning %s ms, commit_ms %s, total_ms %s (medians of %s runs)\n' "$mode" \
		"$(cut -d' ' -f1 "$work/$mode" | median)" "$(cut -d' ' -f2 "$work/$mode" | median)" \
		"$(cut -d' ' -f3 "$work/$mode" | median)" "$RUNS"
done
echo "command: bench/probe-cache.sh $RUNS ($("$QEMU" --version | head -n 1), -accel $ACCEL)"
