#!/bin/bash
# bench/run.sh [SIZES...]: qemu-upgrade (in place, by postcopy with --low-memory, and by
# precopy) against plain localhost migration (QEMU 7.2), for guests of SIZES GiB (default:
# 1 4 8), RUNS runs each (default 3), and write bench/RESULTS.md and bench/results.csv.
#
# Environment: METHODS (default "upgrade lowmem precopy migrate": qemu-upgrade of a memfd
# share=on VM, qemu-upgrade --low-memory (postcopy with release-ram) of an anonymous-RAM VM,
# qemu-upgrade's precopy of the same anonymous-RAM VM, plain migration of it; and, not by
# default, in place: "sparse" (a memfd guest of SIZE that is not filled: the firmware and a
# 64 MiB window are all it touches), "hugetlb" (memory-backend-memfd hugetlb=on
# hugetlbsize=2M) and "hugedir" (memory-backend-file mem-path= a directory on a hugetlbfs
# mount made for the run): their 2 MiB pages are reserved for each run (vm.nr_hugepages
# raised, then written back to what it was, here too if a run is interrupted), and a run is
# skipped, saying so, when the kernel cannot find them), COLD_WAIT (seconds between filling guest RAM and the measured
# operation, default 10 + 3 per GiB: see README.md, Caveats), RUNS (3), QEMU (/usr/bin/qemu-system-x86_64), ACCEL (auto: kvm if a
# SeaBIOS guest runs under it, else tcg), QU_BIN (<repo>/build/qemu-upgrade, built with
# `make` if missing), OUT (bench/RESULTS.md), CSV (bench/results.csv).
#
# One VM (or one migration pair) exists at a time; every process is started in a
# private /tmp/qu-bench-* directory and killed by PID when its run ends. A run that
# would not fit in MemAvailable (size + 1.5 GiB for qemu-upgrade in place and low-memory,
# 2 x size + 1.5 GiB for precopy and plain migration) is skipped with a message and listed in
# RESULTS.md. The command line recorded in RESULTS.md names every variable above that was
# set in the environment.
set -u
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1 4 8)
DEFAULT_METHODS="upgrade lowmem precopy migrate"
# What the run was started with, for the command line recorded in RESULTS.md.
SET_RUNS=${RUNS+set} SET_METHODS=${METHODS+set}
RUNS=${RUNS:-3}
METHODS=${METHODS:-$DEFAULT_METHODS}
COLD_WAIT=${COLD_WAIT:-}
QEMU=${QEMU:-/usr/bin/qemu-system-x86_64}
QU_BIN=${QU_BIN:-$ROOT/build/qemu-upgrade}
OUT=${OUT:-$BENCH/RESULTS.md}
CSV=${CSV:-$BENCH/results.csv}
COMMAND="bench/run.sh${*:+ $*}"
[ -z "$SET_RUNS" ] && [ "$RUNS" = 3 ] || COMMAND="RUNS=$RUNS $COMMAND"
[ -z "$SET_METHODS" ] && [ "$METHODS" = "$DEFAULT_METHODS" ] || COMMAND="METHODS=\"$METHODS\" $COMMAND"
[ -z "$COLD_WAIT" ] || COMMAND="COLD_WAIT=$COLD_WAIT $COMMAND"
[ -z "${ACCEL:-}" ] || COMMAND="ACCEL=$ACCEL $COMMAND"

die() { echo "run.sh: $*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "run as root (writes guest RAM through /proc/PID/mem, uses pidfd_getfd)"
for s in "${SIZES[@]}"; do
	[[ $s =~ ^[1-9][0-9]*$ ]] || die "sizes are whole GiB: '$s'"
done
read -ra METHOD_LIST <<<"$METHODS"
[ ${#METHOD_LIST[@]} -gt 0 ] || die "METHODS is empty"
for m in "${METHOD_LIST[@]}"; do
	case $m in
	upgrade | lowmem | precopy | migrate | sparse | hugetlb | hugedir) ;;
	*) die "unknown method '$m' in METHODS (upgrade, lowmem, precopy, migrate, sparse, hugetlb, hugedir)" ;;
	esac
done
[ -z "$COLD_WAIT" ] || [[ $COLD_WAIT =~ ^[0-9]+([.][0-9]+)?$ ]] || die "COLD_WAIT is seconds: '$COLD_WAIT'"
command -v python3 >/dev/null || die "needs python3"
command -v gcc >/dev/null || die "needs gcc"
[ -x "$QEMU" ] || die "no QEMU at $QEMU"
if [ ! -x "$QU_BIN" ]; then
	make -C "$ROOT" >&2 || die "building qemu-upgrade failed"
fi

HELPERS=$(mktemp -d /tmp/qu-bench-helpers.XXXXXX) || exit 2
child=
# bench.py gives back the huge pages of each run; this is the net under it, should it die
# holding some (it notes how many it added in HELPERS/hugepages-added).
NR_HUGEPAGES=/proc/sys/vm/nr_hugepages
cleanup() {
	if [ -n "$child" ]; then
		kill -TERM "$child" 2>/dev/null
		wait "$child" 2>/dev/null
	fi
	local added
	if added=$(cat "$HELPERS/hugepages-added" 2>/dev/null) && [[ $added =~ ^[0-9]+$ ]]; then
		local now=$(($(cat "$NR_HUGEPAGES") - added))
		echo "run.sh: giving back $added huge pages (vm.nr_hugepages $((now < 0 ? 0 : now)))" >&2
		echo "$((now < 0 ? 0 : now))" >"$NR_HUGEPAGES"
	fi
	rm -rf -- "$HELPERS"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

gcc -O2 -Wall -Wextra -o "$HELPERS/fill-ram" "$BENCH/fill-ram.c" || die "fill-ram build failed"
gcc -O2 -Wall -Wextra -o "$HELPERS/memwatch" "$BENCH/memwatch.c" || die "memwatch build failed"

if [ -z "${ACCEL:-}" ]; then
	ACCEL=$(python3 "$BENCH/bench.py" probe-accel --qemu "$QEMU") || die "accelerator probe failed"
fi
echo "run.sh: $("$QEMU" --version | head -n 1), -accel $ACCEL, sizes ${SIZES[*]} GiB, $RUNS runs each, methods ${METHOD_LIST[*]}"

rm -f "$CSV"
for size in "${SIZES[@]}"; do
	for run in $(seq "$RUNS"); do
		for method in "${METHOD_LIST[@]}"; do
			python3 "$BENCH/bench.py" run --method "$method" --size-gib "$size" --run "$run" \
				--accel "$ACCEL" --qemu "$QEMU" --tool "$QU_BIN" --helpers "$HELPERS" \
				--csv "$CSV" ${COLD_WAIT:+--cold-wait "$COLD_WAIT"} &
			child=$!
			wait "$child"
			rc=$?
			child=
			case $rc in
			0) ;;
			3) echo "run.sh: skipped $method at $size GiB run $run (see $CSV: not enough free memory or huge pages)" >&2 ;;
			130 | 143) exit "$rc" ;;
			*) echo "run.sh: $method at $size GiB run $run failed (see $CSV)" >&2 ;;
			esac
		done
	done
done

python3 "$BENCH/bench.py" report --csv "$CSV" --out "$OUT" --command "$COMMAND" \
	--accel "$ACCEL" --qemu "$QEMU" || die "report failed"
echo "run.sh: wrote $OUT and $CSV"
