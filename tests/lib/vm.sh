# vm.sh: start, inspect and clean up test VMs running the memcheck guest.
# Source it from a test script (bash). Every QEMU it starts, and every PID given
# to vm_track_pid, is killed by PID when the script exits. Tests run in
# parallel, so nothing here uses fixed paths or kills by name.
#
# Settings (environment): QEMU, VM_MEM (256M), VM_SMP (1), VM_RAM (memfd|file|anon),
# VM_MEMCHECK_MIB (32), VM_APPEND (extra kernel args), QU_BUILD (<repo>/build).
# Diagnostics go to stderr so that stdout stays clean TAP. The cleanup is an EXIT
# trap: a test that needs its own EXIT trap must call vm_cleanup from it.

VM_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
QU_ROOT=$(cd "$VM_LIB_DIR/../.." && pwd)
QU_BUILD=${QU_BUILD:-$QU_ROOT/build}
QEMU=${QEMU:-/usr/bin/qemu-system-x86_64}
# The guest kernel's command line, before the guest's own words. no_timer_check: under TCG on
# a loaded host the kernel's check of the IO-APIC timer can miss its ticks and panic ("IO-APIC
# + timer doesn't work!": seen in trust-privileges.t with two suites running); the timer
# works, the check is what fails.
VM_CMDLINE="console=ttyS0 quiet loglevel=3 no_timer_check"

_vm_tracked=()   # "PID:STARTTIME" entries, so a recycled PID is never killed
_vm_paths=()     # work dirs and /dev/shm files to remove
_vm_trap_set=
_vm_deferred=()  # commands run after every process is gone (namespaces, cgroups to remove)

# vm_defer COMMAND: run COMMAND (a string, eval'd) when the test exits, after the VMs are
# killed. Tests must not set their own EXIT trap: vm_start installs vm_cleanup as it.
vm_defer() {
	_vm_deferred+=("$1")
	_vm_set_trap
}

# vm_hugepages_add N: adds N 2 MiB huge pages to the kernel's pool for this test and takes
# them out again when it exits. The pool is the machine's, and tests run in parallel (other
# checkouts' tests and the bench too): a test that takes the pool's free pages away on purpose
# (hugepages.t), or two that each set an absolute count and restore the one they read, would
# take each other's pages mid-run. So the first call takes the machine's huge-page lock and the
# test keeps it until it exits (a second test that needs huge pages waits for it), and every
# change is relative. 0 when all N were added; else 1 (the host cannot give them) or 2 (the
# lock was not had) with HUGE_WHY saying why, the pool as it was.
vm_hugepages_add() {
	local n=$1 pool=/proc/sys/vm/nr_hugepages before after
	HUGE_WHY=
	if [ ! -w "$pool" ] || ! grep -q hugetlbfs /proc/filesystems; then
		HUGE_WHY="the kernel has no hugetlbfs"
		return 1
	fi
	if [ -z "${_vm_huge_lock:-}" ]; then
		exec {_vm_huge_lock}>/run/lock/qemu-upgrade-hugepages.lock || return 2
		# A process left behind by another test can hold it (it inherits the descriptor).
		if ! flock -w 900 "$_vm_huge_lock"; then
			HUGE_WHY="another test held the machine's huge-page lock for 15 minutes: $(
				awk '$6 ~ /:/ { print $5 }' /proc/locks | head -n 3)"
			exec {_vm_huge_lock}>&-
			_vm_huge_lock=
			return 2
		fi
	fi
	before=$(cat "$pool")
	echo $((before + n)) >"$pool" 2>/dev/null
	after=$(cat "$pool")
	if [ "$after" -lt $((before + n)) ]; then
		echo "$before" >"$pool"
		HUGE_WHY="the kernel gave $((after - before)) of $n free 2 MiB huge pages (memory too fragmented?)"
		return 1
	fi
	vm_defer "_vm_hugepages_sub $n"
}

_vm_hugepages_sub() {
	local now
	now=$(cat /proc/sys/vm/nr_hugepages)
	echo $((now > $1 ? now - $1 : 0)) >/proc/sys/vm/nr_hugepages
}

# vm_guest_build: build (once, shared between parallel tests) the guest kernel
# and initrd; sets VM_KERNEL and VM_INITRD.
vm_guest_build() {
	mkdir -p "$QU_BUILD" || return
	(
		flock 9 || exit 1
		"$QU_ROOT/tests/guest/build.sh" "$QU_BUILD/guest" >&2
	) 9>"$QU_BUILD/guest.lock" || { echo "vm_guest_build: failed" >&2; return 1; }
	export VM_KERNEL=$QU_BUILD/guest/vmlinuz VM_INITRD=$QU_BUILD/guest/initrd.img
}

# Start time of a process (field 22 of /proc/PID/stat), to tell it from a recycled PID.
_vm_starttime() {
	local stat f
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	read -r -a f <<<"${stat##*) }"   # fields from 3 on; comm may hold spaces
	echo "${f[19]}"
}

# vm_track_pid PID: kill PID (if it is still the same process) at exit.
vm_track_pid() {
	local st
	st=$(_vm_starttime "$1") || { echo "vm_track_pid: no process $1" >&2; return 1; }
	_vm_tracked+=("$1:$st")
	_vm_set_trap
}

# _vm_kill PID STARTTIME: SIGTERM, SIGKILL after 3 s; waits (5 s at most) until it is gone.
_vm_kill() {
	local pid=$1 st=$2 i
	for i in $(seq 50); do
		[ "$(_vm_starttime "$pid")" = "$st" ] || return 0
		if [ "$i" = 1 ]; then kill -TERM "$pid" 2>/dev/null; fi
		if [ "$i" = 30 ]; then kill -KILL "$pid" 2>/dev/null; fi
		sleep 0.1
	done
	echo "vm.sh: process $pid did not die" >&2
	return 1
}

# vm_stop [PID]: stop one tracked process now (default: $VM_PID).
vm_stop() {
	local pid=${1:-$VM_PID} e
	for e in "${_vm_tracked[@]}"; do
		[ "${e%%:*}" = "$pid" ] && _vm_kill "$pid" "${e#*:}"
	done
	return 0
}

vm_cleanup() {
	local e
	for e in "${_vm_tracked[@]}"; do
		_vm_kill "${e%%:*}" "${e#*:}"
	done
	_vm_tracked=()
	[ ${#_vm_paths[@]} -eq 0 ] || rm -rf -- "${_vm_paths[@]}"
	_vm_paths=()
	for e in "${_vm_deferred[@]}"; do
		eval "$e"
	done
	_vm_deferred=()
}

_vm_set_trap() {
	[ -n "$_vm_trap_set" ] && return
	_vm_trap_set=1
	trap vm_cleanup EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# vm_start NAME [extra qemu args...]: start a daemonized VM running memcheck.
# Exports VM_DIR (work dir), VM_PID, VM_QMP (QMP socket), VM_SERIAL (console log).
vm_start() {
	local name=${1:?vm_start NAME [qemu args...]} dir mem=${VM_MEM:-256M} memargs
	shift
	[ -n "${VM_KERNEL:-}" ] || vm_guest_build || return
	_vm_set_trap
	dir=$(mktemp -d "${TMPDIR:-/tmp}/vm-$name.XXXXXX") || return
	dir=$(cd "$dir" && pwd)   # -daemonize chdirs to /: keep every path absolute
	_vm_paths+=("$dir")
	# VM_OWNER: a QEMU started as another user (VM_WRAP=setpriv ...) writes its files here.
	[ -z "${VM_OWNER:-}" ] || { chown "$VM_OWNER" "$dir" && chmod 755 "$dir"; }
	case ${VM_RAM:-memfd} in
	memfd) memargs=(-machine "q35,memory-backend=mem0"
		-object "memory-backend-memfd,id=mem0,size=$mem,share=on") ;;
	file)
		local shm=/dev/shm/qu-${dir##*/}
		_vm_paths+=("$shm")
		memargs=(-machine "q35,memory-backend=mem0"
			-object "memory-backend-file,id=mem0,size=$mem,share=on,mem-path=$shm") ;;
	anon) memargs=(-machine q35) ;;
	*) echo "vm_start: VM_RAM must be memfd, file or anon" >&2; return 1 ;;
	esac
	# VM_WRAP: a command that starts QEMU for us (e.g. ip netns exec NS tapopen tap0 3).
	# shellcheck disable=SC2086
	if ! ${VM_WRAP:-} "$QEMU" -accel tcg "${memargs[@]}" -m "$mem" -smp "${VM_SMP:-1}" \
		-nodefaults -display none -kernel "$VM_KERNEL" -initrd "$VM_INITRD" \
		-append "$VM_CMDLINE memcheck_mib=${VM_MEMCHECK_MIB:-32}${VM_APPEND:+ $VM_APPEND}" \
		-chardev "file,id=serial0,path=$dir/serial.log" -serial chardev:serial0 \
		-qmp "unix:$dir/qmp.sock,server=on,wait=off" \
		-daemonize -pidfile "$dir/qemu.pid" "$@" 2>"$dir/qemu.err"; then
		echo "vm_start: $name: QEMU failed:" >&2
		cat "$dir/qemu.err" >&2
		return 1
	fi
	export VM_DIR=$dir VM_PID VM_QMP=$dir/qmp.sock VM_SERIAL=$dir/serial.log
	VM_PID=$(cat "$dir/qemu.pid") && vm_track_pid "$VM_PID"
}

# vm_upgrade [qemu-upgrade options]: upgrades $VM_PID (--json --quiet, its stderr in
# $VM_DIR/err). REPORT gets the JSON report and VM_PID the PID the pidfile names afterwards
# (tracked for cleanup). Returns the tool's exit status.
vm_upgrade() {
	local rc
	REPORT=$("$QU_BIN" --pid "$VM_PID" "$@" --json --quiet 2>"$VM_DIR/err")
	rc=$?
	VM_PID=$(cat "$VM_DIR/qemu.pid")
	vm_track_pid "$VM_PID" 2>/dev/null
	return $rc
}

# vm_wait_ready [timeout_s]: wait for "MEMCHECK READY" on $VM_SERIAL (default 90 s).
vm_wait_ready() {
	local end=$((SECONDS + ${1:-90}))
	until grep -q 'MEMCHECK READY' "$VM_SERIAL" 2>/dev/null; do
		if ! kill -0 "$VM_PID" 2>/dev/null; then
			echo "vm_wait_ready: QEMU $VM_PID is gone" >&2
			return 1
		fi
		if [ $SECONDS -ge $end ]; then
			echo "vm_wait_ready: timeout; serial log tail:" >&2
			tail -n 5 "$VM_SERIAL" >&2
			return 1
		fi
		sleep 0.2
	done
}

# vm_memcheck_status: print the last "MEMCHECK pass=... errors=..." line.
vm_memcheck_status() {
	grep -a 'MEMCHECK pass=' "$VM_SERIAL" 2>/dev/null | tail -n 1 | tr -d '\r'
}

_vm_field() { vm_memcheck_status | sed -n "s/.* $1=\([0-9]*\).*/\1/p"; }

# vm_memcheck_errors: print the error count of the last status line.
vm_memcheck_errors() { _vm_field errors; }

# vm_memcheck_progress [timeout_s]: wait until the pass count grows (default 30 s).
vm_memcheck_progress() {
	local end=$((SECONDS + ${1:-30})) start now
	start=$(_vm_field pass)
	start=${start:--1}
	while now=$(_vm_field pass); [ "${now:--1}" -le "$start" ]; do
		if [ $SECONDS -ge $end ]; then
			echo "vm_memcheck_progress: pass count stuck at $start" >&2
			return 1
		fi
		sleep 0.2
	done
}

# Read lines from fd $in until a "return"/"error" reply; sets reply (caller's locals).
_vm_qmp_reply() {
	while IFS= read -r -t "$t" line <&"$in"; do
		line=${line%$'\r'}
		# A reply's first key is "return" or "error"; an event's is "timestamp", and its data may
		# hold an "error" key or value (COLO_EXIT's reason, BLOCK_IO_ERROR) that is not a reply.
		case $line in '{"return"'* | '{"error"'*) reply=$line; return 0 ;; esac
	done
	return 1
}

# vm_qmp SOCKET JSON: negotiate capabilities, run one command, print its reply
# (the line holding "return" or "error"; greeting and events are skipped).
vm_qmp() {
	local sock=${1:?vm_qmp SOCKET JSON} cmd=${2:?vm_qmp SOCKET JSON} t=${VM_QMP_TIMEOUT:-10}
	local line reply="" rc=1 in out pid
	coproc _VM_QMP { exec timeout "$((t + 5))" socat -t 0.2 - "UNIX-CONNECT:$sock" 2>/dev/null; }
	in=${_VM_QMP[0]} out=${_VM_QMP[1]} pid=$_VM_QMP_PID
	# Wait for each reply before sending more: QEMU drops queued commands on hangup.
	if read -r -t "$t" line <&"$in" && [[ $line == *'"QMP"'* ]] &&
		echo '{"execute":"qmp_capabilities"}' >&"$out" && _vm_qmp_reply &&
		echo "$cmd" >&"$out" && _vm_qmp_reply; then
		echo "$reply"
		rc=0
	else
		echo "vm_qmp: no reply from $sock to $cmd" >&2
	fi
	{ exec {out}>&- {in}<&-; } 2>/dev/null
	wait "$pid" 2>/dev/null
	return $rc
}

# vm_runstate [SOCKET]: print the run state (running, paused, ...) from query-status.
vm_runstate() {
	vm_qmp "${1:-$VM_QMP}" '{"execute":"query-status"}' |
		sed -n 's/.*"status": *"\([^"]*\)".*/\1/p'
}

# vm_qemu10: QEMU 10.0 from bookworm-backports, unpacked once under the build directory
# (shared between parallel tests); sets Q10 to its binary, or bails out of the TAP run.
vm_qemu10() {
	Q10=$( (flock 9; "$QU_ROOT/tests/qemu10/fetch.sh" "$QU_BUILD/qemu-10.0") 9>"$QU_BUILD/qemu-10.0.lock" 2>/dev/null | tail -n 1)
	[ -x "$Q10" ] || { echo "Bail out! cannot fetch QEMU 10.0 from bookworm-backports"; exit 1; }
}

# vm_qemu_suite SUITE: QEMU from Debian's bullseye (5.2), trixie (10.0.13) or sid (11.1),
# made runnable here as a prefix (tests/qemu-versions/fetch.sh), fetched once and cached in
# /var/cache/qemu-upgrade-tests. Sets QS to its binary.
vm_qemu_suite() {
	local cache=/var/cache/qemu-upgrade-tests
	mkdir -p "$cache"
	QS=$( (flock 9; "$QU_ROOT/tests/qemu-versions/fetch.sh" "$1" "$cache") 9>"$cache/.lock" 2>"$cache/.fetch-$1.err" |
		tail -n 1)
	[ -x "$QS" ] || { echo "Bail out! cannot fetch QEMU from Debian $1: $(tail -n 3 "$cache/.fetch-$1.err")"; exit 1; }
}
