# lib.sh: shared by the cpr-exec probes (research for issue 17 item 3, see
# docs/cpr-exec-research.md). Source it from a probe script (bash): it sources tests/lib/vm.sh
# (VMs killed by PID at exit) and sets QEMU to Debian sid's QEMU 11.1 (the only QEMU >= 10.2,
# the first with cpr-exec, this project can run).
probe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$probe_dir/../lib/vm.sh"
vm_qemu_suite sid
QEMU=$QS
export VM_MEM=256M VM_RAM=memfd

# probe_start NAME [qemu args]: a daemonized 11.1 VM with memfd RAM and aux-ram-share=on,
# running the memory checker (vm_start); waits for MEMCHECK READY.
probe_start() {
	local name=$1
	shift
	vm_start "$name" -machine aux-ram-share=on "$@" || exit 1
	vm_wait_ready 120 || exit 1
}

# probe_new_argv PID URI: fill NEW_ARGV with the command line the exec'd image needs, made
# from the running QEMU's own: without -daemonize (the process is a daemon already, and a
# second fork would change the PID), the serial file opened with append=on (a file chardev
# truncates its file on open), and -incoming URI. argv[0] is the binary that runs now.
probe_new_argv() {
	local pid=$1 uri=$2 a skip=
	NEW_ARGV=()
	while IFS= read -r -d '' a; do
		if [ -n "$skip" ]; then skip=; continue; fi
		case $a in
		-daemonize) continue ;;
		file,id=serial0,path=*) a="$a,append=on" ;;
		esac
		NEW_ARGV+=("$a")
	done <"/proc/$pid/cmdline"
	NEW_ARGV+=(-incoming "$uri")
}

# probe_wrap_stderr FILE: prefix NEW_ARGV with a shell that sends the new image's stderr to
# FILE and execs it (same PID). The daemonized QEMU's stderr is /dev/null: without this the
# new image's error messages are lost.
probe_wrap_stderr() {
	NEW_ARGV=(/bin/sh -c 'exec "$0" "$@" 2>>"$QU_PROBE_ERR"' "${NEW_ARGV[@]}")
	# shellcheck disable=SC2034
	NEW_ARGV=(env "QU_PROBE_ERR=$1" "${NEW_ARGV[@]}")
}

# probe_fds PID: one line per descriptor, "N -> target".
probe_fds() {
	local f
	for f in /proc/"$1"/fd/*; do
		printf '%s -> %s\n' "${f##*/}" "$(readlink "$f")"
	done | sort -n
}

# probe_pause LOGFILE: milliseconds between the old QEMU's STOP event and the new one's
# RESUME event (QMP event timestamps, wall clock), or "?" when one is missing.
probe_pause() {
	jq -rs '
	  def ts: .timestamp.seconds + .timestamp.microseconds / 1e6;
	  ([.[] | select(.side=="old" and .msg.event=="STOP") | .msg | ts] | first) as $a |
	  ([.[] | select(.side=="new" and .msg.event=="RESUME") | .msg | ts] | first) as $b |
	  if $a and $b then (($b - $a) * 1000 | floor) else "?" end' "$1"
}

# probe_qemu_args DIR: fill QEMU_ARGS with vm_start's command line for a VM whose files live
# in DIR (for probes that must start QEMU themselves, e.g. with an inherited descriptor).
probe_qemu_args() {
	local dir=$1
	[ -n "${VM_KERNEL:-}" ] || vm_guest_build || exit 1
	QEMU_ARGS=("$QEMU" -accel tcg -machine q35,memory-backend=mem0 -machine aux-ram-share=on
		-object memory-backend-memfd,id=mem0,size=$VM_MEM,share=on -m "$VM_MEM" -smp 1
		-nodefaults -display none -kernel "$VM_KERNEL" -initrd "$VM_INITRD"
		-append "$VM_CMDLINE memcheck_mib=32"
		-chardev "file,id=serial0,path=$dir/serial.log" -serial chardev:serial0
		-qmp "unix:$dir/qmp.sock,server=on,wait=off" -daemonize -pidfile "$dir/qemu.pid")
}
