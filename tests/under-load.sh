#!/usr/bin/env bash
# under-load.sh N COMMAND...: runs COMMAND while N processes keep a CPU each busy, then stops
# them (by PID) and exits with COMMAND's status. `make check-load` runs the fault and
# interrupt tests this way: a test that only passes on an idle machine tests luck.
set -u
n=${1:?usage: under-load.sh N COMMAND...}
shift
spinners=()
stop() { [ ${#spinners[@]} -gt 0 ] && kill "${spinners[@]}" 2>/dev/null; wait "${spinners[@]}" 2>/dev/null; }
trap stop EXIT
trap 'exit 130' INT TERM
for _ in $(seq "$n"); do
	( trap - INT TERM; while :; do :; done ) &
	spinners+=($!)
done
echo "# under load: ${#spinners[@]} spinning processes (PIDs ${spinners[*]}), $(nproc) CPUs"
"$@"
