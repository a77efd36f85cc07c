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

tap_done() { [ "$_tap_failed" = 0 ]; }

# proc_gone PID: the process has exited (a zombie waiting for a parent that does not reap
# counts as gone: it runs nothing and holds no descriptors).
proc_gone() {
	[ ! -e "/proc/$1" ] && return 0
	grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# json_get JSON KEY: one member of the report, as jq prints it.
json_get() { jq -r ".$2" <<<"$1"; }

QU_BIN=${QU_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/qemu-upgrade-test}

# qemu_pids_for DIR: PIDs of live QEMU processes whose command line mentions DIR.
qemu_pids_for() {
	local p
	for p in /proc/[0-9]*; do
		case $(readlink "$p/exe" 2>/dev/null) in *qemu-system*) ;; *) continue ;; esac
		proc_gone "${p#/proc/}" && continue
		tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$1" && echo "${p#/proc/}"
	done
}
