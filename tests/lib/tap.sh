# tap.sh: the few TAP helpers the end-to-end tests share, and facts about processes.
# Source it from a bash test; call tap_plan N first and tap_done at the end.

_tap_n=0
_tap_failed=0

tap_plan() { echo "1..$1"; }

# tap_ok STATUS DESCRIPTION: STATUS 0 is a pass.
tap_ok() {
	_tap_n=$((_tap_n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $_tap_n - $2"
	else
		echo "not ok $_tap_n - $2"
		_tap_failed=$((_tap_failed + 1))
		return 1
	fi
}

# tap_check DESCRIPTION COMMAND...: runs the command; its status is the result.
tap_check() {
	local desc=$1
	shift
	"$@"
	tap_ok $? "$desc"
}

# tap_is GOT WANT DESCRIPTION
tap_is() {
	[ "$1" = "$2" ]
	tap_ok $? "$3"
	[ "$1" = "$2" ] || echo "#   got '$1', want '$2'"
}

tap_diag() { echo "# $*"; }

# wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds, at most SECONDS; a timeout says
# what it waited for. For what another process does after ours returns (a log line, an exit).
wait_for() {
	local budget=$1 what=$2 end=$((SECONDS + $1))
	shift 2
	until "$@"; do
		[ $SECONDS -lt $end ] || { tap_diag "timeout ($budget s) waiting for $what"; return 1; }
		sleep 0.2
	done
}

tap_done() { [ "$_tap_failed" = 0 ]; }

# proc_gone PID: the process has exited (a zombie waiting for a parent that does not reap
# counts as gone: it runs nothing and holds no descriptors). One look, by the shell itself: a
# zombie reaped between two looks (`[ -e /proc/PID ]`, then a grep of its status, a fork and
# an exec later) read as "still there". Orphans' parent here is PID 1, which reaps about once
# a second, so a test that checks a QEMU just killed often finds a zombie, and under load the
# reaping fell between the two looks: settings-after.t 17 and libvirt.t 67 failed that way.
# No status to read (reaped) or a state Z or X: gone.
proc_gone() {
	local line=
	[ -n "$1" ] || return 1
	{ while IFS= read -r line && [[ $line != State:* ]]; do :; done; } 2>/dev/null <"/proc/$1/status"
	[[ $line != State:* || $line =~ ^State:[[:space:]]*[ZX] ]]
}

# proc_gone_soon PID [timeout_s]: PID is gone, or goes within timeout_s (default 30). The tool
# returns once it has killed the old QEMU of a handover; the kernel tears its mappings down
# after that (upgrade/undo.h, qu_retire_old).
proc_gone_soon() {
	local end=$((SECONDS + ${2:-30}))
	until proc_gone "$1"; do
		[ $SECONDS -lt $end ] || { echo "# PID $1 still there after ${2:-30} s: $(grep '^State' "/proc/$1/status" 2>/dev/null)"; return 1; }
		sleep 0.05
	done
}

# json_get JSON KEY: one member of the report, as jq prints it.
json_get() { jq -r ".$2" <<<"$1"; }

QU_BIN=${QU_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/qemu-upgrade-test}

# qemu_pids_for DIR: PIDs of live QEMU processes whose command line mentions DIR.
# One find over /proc, not a readlink per process: on a loaded machine that took seconds
# (longer than the pauses the fault tests stand in).
qemu_pids_for() {
	local e p
	for e in $(find /proc -maxdepth 2 -path '/proc/[0-9]*/exe' -lname '*qemu-system*' 2>/dev/null); do
		p=${e#/proc/}
		p=${p%/exe}
		proc_gone "$p" && continue
		tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$1" && echo "$p"
	done
}

# started_qemu ERRFILE: the PID of the new QEMU, as the tool logged it ("new QEMU started:
# PID N"): no scan, and exactly the process the tool started.
started_qemu() { sed -n 's/.*new QEMU started: PID \([0-9]*\).*/\1/p' "$1" | tail -n 1; }
