#!/usr/bin/env bash
# run-all.sh [OUT_DIR]: every experiment recorded in docs/standby-research.md, one QEMU pair
# at a time (each run starts and removes its own namespaces and processes). Fetches 10.0.2
# (bookworm-backports), 10.0.13 (trixie) and 11.1 (sid) the way the tests do. Keeps each
# run's logs under OUT_DIR/NAME (default a new directory in /tmp) and prints its RESULT lines.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$(mktemp -d /tmp/colo-runs.XXXXXX)}
mkdir -p "$out"
q72=/usr/bin/qemu-system-x86_64
q100=$("$root/tests/qemu10/fetch.sh" "$root/build/qemu-10.0" 2>/dev/null | tail -n 1)
fetch() { "$root/tests/qemu-versions/fetch.sh" "$1" /var/cache/qemu-upgrade-tests 2>/dev/null | tail -n 1; }
q1013=$(fetch trixie)
q111=$(fetch sid)
# NAME ENV... -- BINARY
run() {
	local name=$1
	shift
	local envs=()
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	echo "== $name: ${envs[*]} $1"
	rm -rf "${out:?}/$name"
	env "${envs[@]}" COLO_OUT="$out/$name" "$here/colo-pair.sh" "$1" >"$out/$name.log" 2>&1
	echo "   exit $?"
	grep -E '^RESULT|FAILED' "$out/$name.log" | sed 's/^/   /'
}
sel=${COLO_RUNS:-all}
want() { [ "$sel" = all ] || [[ " $sel " == *" $1 "* ]]; }
want 7.2-q35 && run 7.2-q35 X=1 -- "$q72"
want 7.2-pc && run 7.2-pc COLO_MACHINE=pc -- "$q72"
want 7.2-nonet && run 7.2-nonet COLO_GUEST_NET=0 -- "$q72"
want 7.2-gdb && run 7.2-gdb COLO_GDB=1 COLO_TRACE_VMSTATE=1 -- "$q72"
want 7.2-min && run 7.2-min COLO_MINIMAL=1 -- "$q72"
want 7.2-boot && run 7.2-boot COLO_LIVE=0 -- "$q72"
want 10.0.2 && run 10.0.2 X=1 -- "$q100"
want 10.0.13 && run 10.0.13 X=1 -- "$q1013"
want 10.0.13-nonet && run 10.0.13-nonet COLO_GUEST_NET=0 -- "$q1013"
want 10.0.13-gdb && run 10.0.13-gdb COLO_GDB=1 COLO_TRACE_VMSTATE=1 -- "$q1013"
want 10.0.13-min && run 10.0.13-min COLO_MINIMAL=1 -- "$q1013"
want 11.1-1000 && run 11.1-1000 COLO_DELAY=1000 -- "$q111"
want 11.1-100 && run 11.1-100 COLO_DELAY=100 -- "$q111"
want 11.1-cut && run 11.1-cut COLO_FAULT=cut -- "$q111"
want 11.1-runtime && run 11.1-runtime COLO_RUNTIME=1 -- "$q111"
want 11.1-unix && run 11.1-unix COLO_CHANNEL=unix -- "$q111"
want 11.1-relay && run 11.1-relay COLO_CHANNEL=relay -- "$q111"
want 11.1-memfd && run 11.1-memfd COLO_RAM=memfd -- "$q111"
want 11.1-memfd-primary && run 11.1-memfd-primary COLO_RAM=memfd-primary -- "$q111"
want 11.1-relay-stop-before && run 11.1-relay-stop-before COLO_CHANNEL=relay COLO_STOP=before -- "$q111"
want 11.1-relay-stop-sync2 && run 11.1-relay-stop-sync2 COLO_CHANNEL=relay COLO_STOP=sync2 -- "$q111"
want 11.1-relay-plain && run 11.1-relay-plain COLO_CHANNEL=relay COLO_PLAIN=1 -- "$q111"
echo "logs in $out"
