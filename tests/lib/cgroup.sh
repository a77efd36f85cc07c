# cgroup.sh: cgroups for a test's VMs, sourced after vm.sh. Each is removed when the test ends.
#
# memcg_new NAME: a memory cgroup (v1 where the memory controller is mounted there, else v2);
# call it before tap_plan: a host without one skips the test. Sets MEMCG (its directory) and
# MEMCG_WRAP (a VM_WRAP that starts QEMU in it). Then memcg_usage, memcg_limit BYTES|max,
# memcg_watch_start / memcg_watch_stop (the highest usage in between: MEMCG_WATCH_PEAK) and
# memcg_oom_kills (QEMUs the kernel killed in it).
#
# cg_all_new NAME: a cgroup of that name in every hierarchy there is (v1 memory and cpu, and
# v2); sets CGDIRS; bails out of the TAP run if there is none.

memcg_new() {
	local name=$1 base
	MEMCG=
	for base in /sys/fs/cgroup/memory /sys/fs/cgroup/unified /sys/fs/cgroup; do
		if [ -e "$base/memory.limit_in_bytes" ] || grep -qw memory "$base/cgroup.controllers" 2>/dev/null; then
			MEMCG=$base/$name-$$
			break
		fi
	done
	if [ -z "$MEMCG" ] || ! mkdir "$MEMCG" 2>/dev/null; then
		echo "1..0 # SKIP no memory cgroup controller on this host"
		exit 0
	fi
	vm_defer "rmdir $MEMCG 2>/dev/null || { sleep 1; rmdir $MEMCG; }"
	if [ -e "$MEMCG/memory.limit_in_bytes" ]; then
		_memcg_usage=memory.usage_in_bytes _memcg_limit=memory.limit_in_bytes
	else
		_memcg_usage=memory.current _memcg_limit=memory.max
	fi
	MEMCG_WRAP=${TMPDIR:-/tmp}/$name-wrap-$$.sh
	printf '#!/bin/sh\necho $$ >%s/cgroup.procs\nexec "$@"\n' "$MEMCG" >"$MEMCG_WRAP" && chmod +x "$MEMCG_WRAP"
	vm_defer "rm -f $MEMCG_WRAP"
}
memcg_usage() { cat "$MEMCG/$_memcg_usage"; }
memcg_limit() {
	if [ "$1" = max ]; then
		echo -1 >"$MEMCG/$_memcg_limit" 2>/dev/null || echo max >"$MEMCG/$_memcg_limit"
	else
		echo "$1" >"$MEMCG/$_memcg_limit"
	fi
}
# memcg_watch_start, then memcg_watch_stop sets MEMCG_WATCH_PEAK to the highest usage seen in
# between (sampled every 5 ms; call it in this shell, not in $(...): it waits for the sampler). Since Linux 6.12 a write to memory.peak resets it only for the file
# descriptor written to, so a reset-then-read of memory.peak can report an older peak.
memcg_watch_start() {
	_memcg_watch_stop=$(mktemp -u) _memcg_watch_out=$(mktemp)
	_vm_paths+=("$_memcg_watch_stop" "$_memcg_watch_out")
	(
		while [ ! -e "$_memcg_watch_stop" ]; do
			cat "$MEMCG/$_memcg_usage"
			sleep 0.005
		done | awk 'max < $1 { max = $1 } END { print max + 0 }' >"$_memcg_watch_out"
	) &
	_memcg_watcher=$!
}
memcg_watch_stop() {
	touch "$_memcg_watch_stop"
	wait "$_memcg_watcher"
	MEMCG_WATCH_PEAK=$(cat "$_memcg_watch_out")
}
memcg_oom_kills() {
	sed -n 's/^oom_kill \([0-9]*\)/\1/p' "$MEMCG/memory.oom_control" "$MEMCG/memory.events" 2>/dev/null | head -n 1
}

cg_all_new() {
	local name=$1-$$ h d
	CGDIRS=()
	for h in memory cpu unified; do
		d=/sys/fs/cgroup/$h/$name
		[ -d "/sys/fs/cgroup/$h" ] && mkdir "$d" 2>/dev/null && CGDIRS+=("$d")
	done
	for d in "${CGDIRS[@]}"; do vm_defer "rmdir $d 2>/dev/null || { sleep 0.5; rmdir $d; }"; done
	[ ${#CGDIRS[@]} -gt 0 ] || { echo "Bail out! no cgroup hierarchy to test with"; exit 1; }
}
